"""AbstRaL's training pieces: data formats, the SFT step and the GRPO step (rollouts included).

Formats (plain text for the small byte-level models; SmolLM2 runs use its chat template):

- chain of thought (the baseline): ``"Question: {question}\\nAnswer:\\n"`` then the GSM8K-style
  solution ending ``#### <number>``;
- abstraction: ``"Question: {abstract question}\\nAbstraction:\\n"`` then the granular
  abstraction (equations ``outK = expr`` and ``#### outK``; or the prose form).

Both are followed by the tokenizer's EOS, which is trained on (the policy is credited for
stopping). Sequences are ``[prompt | completion | EOS | padding]``, right-padded, and the loss
mask covers the positions that predict the completion and the EOS.

SFT minimizes the mean next-token cross-entropy over the masked positions. GRPO
(:mod:`~llm_tools.abstral.grpo`) samples ``group_size`` completions per prompt from the current
policy, scores them with the reward, and takes a clipped policy-gradient step on the group
advantages; the log-probabilities are those of the sampling distribution (logits divided by the
sampling temperature), as in TRL. Both steps are :func:`llm_tools.make_train_step` with a
custom loss over :func:`llm_tools.token_logprobs` (differentiable, padding-aware): jitted and,
with a mesh, data-parallel over its ``'data'`` axis (batch sharded, parameters replicated,
gradients all-reduced by ``jit``).

References:
  Gao, Bosselut, Bengio, Abbe, "AbstRaL: Augmenting LLMs' Reasoning by Reinforcing Abstract
  Thinking", arXiv:2506.07751, 2025.
  Shao et al., "DeepSeekMath", 2024 (GRPO).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from llm_tools.abstral.grpo import REDUCTIONS, group_advantages, grpo_loss
from llm_tools.abstral.perturb import Problem
from llm_tools.abstral.rewards import AbstractionTask
from llm_tools.model import Llama
from llm_tools.train import make_train_step, token_logprobs

__all__ = [
    "Batch",
    "GRPOConfig",
    "Rollouts",
    "abstraction_example",
    "cot_example",
    "encode_examples",
    "grpo_objective",
    "make_grpo_step",
    "make_sft_step",
    "pad_length",
    "rollout_batch",
    "sample_rollouts",
    "sft_loss",
]


def cot_example(problem: Problem) -> tuple[str, str]:
    """``(prompt, completion)`` of the chain-of-thought baseline."""
    return f"Question: {problem.question}\nAnswer:\n", problem.answer


def abstraction_example(task: AbstractionTask, *, style: str = "equations") -> tuple[str, str]:
    """``(prompt, completion)`` of AbstRaL: the abstract question, then the gold abstraction
    (``style="equations"`` or ``"prose"``)."""
    if style not in ("equations", "prose"):
        raise ValueError(f"abstraction_example: style must be 'equations' or 'prose', got "
                         f"{style!r}")
    text = task.gold.equations_text() if style == "equations" else task.gold.prose_text()
    return abstraction_prompt(task), text


def abstraction_prompt(task: AbstractionTask) -> str:
    return f"Question: {task.prompt}\nAbstraction:\n"


class Batch(NamedTuple):
    """``tokens [B, L]`` (right-padded), ``real [B, L]`` (True at real tokens) and ``mask
    [B, L-1]`` (1 where position ``t`` predicts a completion token ``tokens[:, t+1]``, EOS
    included)."""

    tokens: np.ndarray
    real: np.ndarray
    mask: np.ndarray


def _pack(rows: Sequence[list[int]], starts: Sequence[int], pad_id: int,
          length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tokens = np.full((len(rows), length), pad_id, np.int32)
    real = np.zeros((len(rows), length), bool)
    mask = np.zeros((len(rows), length - 1), np.float32)
    for i, (ids, start) in enumerate(zip(rows, starts, strict=True)):
        tokens[i, :len(ids)] = ids
        real[i, :len(ids)] = True
        mask[i, start - 1:len(ids) - 1] = 1.0
    return tokens, real, mask


def pad_length(n: int, multiple: int = 128) -> int:
    """``n`` rounded up to a multiple (few distinct shapes, so few compilations)."""
    return -(-n // multiple) * multiple


def encode_examples(tokenizer, examples: Sequence[tuple[str, str]], *, max_len: int,
                    multiple: int = 128) -> Batch:
    """Tokenizes ``(prompt, completion)`` pairs into a right-padded :class:`Batch`.

    Raises:
      ValueError: if ``examples`` is empty or a sequence exceeds ``max_len`` tokens.
    """
    if not examples:
        raise ValueError("encode_examples: examples is empty")
    rows, starts = [], []
    for i, (prompt, completion) in enumerate(examples):
        p = tokenizer.encode(prompt)
        ids = p + tokenizer.encode(completion) + [tokenizer.eos_id]
        if len(ids) > max_len:
            raise ValueError(f"encode_examples: example {i} has {len(ids)} tokens, more than "
                             f"max_len={max_len}")
        rows.append(ids)
        starts.append(len(p))
    length = min(pad_length(max(map(len, rows)), multiple), max_len)
    return Batch(*_pack(rows, starts, tokenizer.pad_id, length))


def sft_loss(model: Llama, batch: Batch) -> tuple[jax.Array, dict]:
    """Mean next-token cross-entropy over the masked (completion) positions; ``(loss, aux)``
    for :func:`llm_tools.make_train_step`."""
    logp = token_logprobs(model, batch.tokens, batch.real)
    mask = batch.mask.astype(logp.dtype)
    return -(logp * mask).sum() / jnp.maximum(mask.sum(), 1.0), {"tokens": mask.sum()}


def make_sft_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                  mesh: jax.sharding.Mesh | None = None) -> Callable:
    """``step(state, batch) -> (state, loss)`` minimizing :func:`sft_loss` (jitted,
    data-parallel with a mesh)."""
    step = make_train_step(graphdef, optimizer, sft_loss, mesh=mesh)

    def run(state, batch: Batch):
        state, loss, _ = step(state, Batch(*(jnp.asarray(x) for x in batch)))
        return state, loss

    return run


class GRPOConfig(NamedTuple):
    """GRPO hyperparameters (TRL's names where they exist)."""

    group_size: int = 8
    temperature: float = 1.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.28
    beta: float = 0.0
    reduction: str = "grpo"
    scale: str = "group"
    std_floor: float = 1e-4
    max_new_tokens: int = 128

    def validate(self) -> GRPOConfig:
        if self.group_size < 2:
            raise ValueError(f"GRPOConfig: group_size must be at least 2, got {self.group_size}")
        if self.temperature <= 0:
            raise ValueError(f"GRPOConfig: temperature must be > 0, got {self.temperature}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"GRPOConfig: reduction must be one of {REDUCTIONS}, got "
                             f"{self.reduction!r}")
        if self.max_new_tokens < 1:
            raise ValueError(f"GRPOConfig: max_new_tokens must be >= 1, got "
                             f"{self.max_new_tokens}")
        return self


class Rollouts(NamedTuple):
    """One GRPO batch: ``tokens [N, L]``, ``real [N, L]``, ``mask [N, L-1]``, ``advantages
    [N]``, ``rewards [P, G]``, the completions' texts, and optional ``ref_logp [N, L-1]``."""

    tokens: np.ndarray
    real: np.ndarray
    mask: np.ndarray
    advantages: np.ndarray
    rewards: np.ndarray
    texts: tuple[str, ...]
    ref_logp: np.ndarray | None = None


def _completion_ids(completion: Any, eos_id: int) -> list[int]:
    """The sampled ids with the stop token that ended the row (credited to the policy)."""
    ids = list(completion.token_ids)
    ended = getattr(completion, "ends_with_stop_token", None)
    if ended is None:  # samplers that drop the stop token: a "stop" finish was the EOS
        if completion.finish_reason == "stop":
            ids.append(eos_id)
    return ids


def sample_rollouts(sampler, prompts: Sequence[str], key: jax.Array, config: GRPOConfig):
    """``group_size`` completions per prompt: ``[[Completion] * G] * P``."""
    return sampler.generate(list(prompts), max_new_tokens=config.max_new_tokens,
                            temperature=config.temperature, n=config.group_size, key=key)


def rollout_batch(tokenizer, prompts: Sequence[str], completions, rewards: np.ndarray,
                  config: GRPOConfig, *, multiple: int = 128,
                  length: int | None = None) -> Rollouts:
    """Packs sampled groups and their rewards ``[P, G]`` into a :class:`Rollouts` batch.

    Args:
      length: pad every batch to exactly this many tokens (one compiled update step for a
        whole run: longest prompt + ``max_new_tokens``); default: the longest row rounded up
        to ``multiple``.
    """
    rewards = np.asarray(rewards, np.float32)
    if rewards.shape != (len(prompts), config.group_size):
        raise ValueError(f"rollout_batch: rewards must have shape "
                         f"{(len(prompts), config.group_size)}, got {rewards.shape}")
    adv = np.asarray(group_advantages(rewards, scale=config.scale,
                                      std_floor=config.std_floor)).reshape(-1)
    rows, starts, texts = [], [], []
    for prompt, group in zip(prompts, completions, strict=True):
        p = tokenizer.encode(prompt)
        for c in group:
            rows.append(p + _completion_ids(c, tokenizer.eos_id))
            starts.append(len(p))
            texts.append(c.text)
    longest = max(map(len, rows))
    if length is None:
        length = pad_length(longest, multiple)
    elif length < longest:
        raise ValueError(f"rollout_batch: length {length} is shorter than the longest row "
                         f"({longest} tokens)")
    tokens, real, mask = _pack(rows, starts, tokenizer.pad_id, length)
    return Rollouts(tokens, real, mask, adv.astype(np.float32), rewards, tuple(texts))


def grpo_objective(config: GRPOConfig) -> Callable:
    """``loss_fn(model, batch) -> (loss, GRPOAux)`` on fresh on-policy samples: the old policy
    is the current one (its log-probabilities detached), so the ratio starts at 1 and the
    clipped objective's gradient is the advantage-weighted log-probability gradient."""
    config = config.validate()

    def loss_fn(model: Llama, batch: dict):
        logp = token_logprobs(model, batch["tokens"], batch["real"],
                              temperature=config.temperature)
        return grpo_loss(logp, jax.lax.stop_gradient(logp), batch["advantages"],
                         batch["mask"], batch.get("ref_logp"), epsilon_low=config.epsilon_low,
                         epsilon_high=config.epsilon_high, beta=config.beta,
                         reduction=config.reduction)

    return loss_fn


def make_grpo_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                   config: GRPOConfig, mesh: jax.sharding.Mesh | None = None) -> Callable:
    """``step(state, rollouts) -> (state, metrics)``: one GRPO update (jitted, data-parallel
    with a mesh)."""
    config = config.validate()
    step = make_train_step(graphdef, optimizer, grpo_objective(config), mesh=mesh)

    def run(state, rollouts: Rollouts):
        if config.beta > 0 and rollouts.ref_logp is None:
            raise ValueError("GRPO step: beta > 0 needs rollouts.ref_logp")
        batch = {"tokens": rollouts.tokens, "real": rollouts.real, "mask": rollouts.mask,
                 "advantages": rollouts.advantages}
        if rollouts.ref_logp is not None:
            batch["ref_logp"] = rollouts.ref_logp
        state, loss, aux = step(state, jax.tree.map(jnp.asarray, batch))
        return state, {"loss": loss, "kl": aux.kl, "clip_fraction": aux.clip_fraction}

    return run


def make_scorer(graphdef: nnx.GraphDef, temperature: float = 1.0) -> Callable:
    """A jitted ``score(params, rest, tokens, real) -> [B, L-1]`` log-probabilities (no
    gradient), e.g. the frozen reference policy's for the KL term."""

    @jax.jit
    def score(params, rest, tokens, real):
        return token_logprobs(nnx.merge(graphdef, params, rest), tokens, real,
                              temperature=temperature)

    return score
