"""E³-Pruner's mask search: learn which ``k`` of ``L`` layers to keep, model frozen.

Layer ``l`` gets a logit ``θ_l`` (held in the model's ``LayerGate`` variable, the only thing
``llm_tools.make_train_step`` trains here: ``init_train_state(..., wrt=LayerGate)``). Each
step draws Gumbel noise, forms the straight-through
k-hot mask ``m = ST-top-k(θ + g; t)`` (:func:`~e3_pruner.masks.straight_through_topk_mask`;
hard in the forward pass, relaxed gradient), runs the frozen model with its residual branches
gated, ``h ← h + m_l · f_l(h)``, and takes an Adam step on ``θ`` for the calibration objective

- ``"kd"``: ``KL(p_dense ‖ p_masked)`` per token (the dense model is the same weights with
  every gate at 1, so no second copy is held), or
- ``"lm"``: the masked model's next-token cross-entropy.

The temperature is annealed geometrically, ``t_i = t_0 (t_1 / t_0)^{i/(n−1)}``, so early
steps explore (soft gradients spread over near-tied layers) and late ones commit. The
result is the top-k of the learned ``θ`` (no noise).

References:
  Yuan et al., "E³-Pruner: Towards Efficient, Economical, and Effective Layer Pruning for
  Large Language Models", arXiv:2511.17205, 2025.
  Kool et al., ICML 2019; Xie & Ermon, IJCAI 2019 (see :mod:`e3_pruner.masks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from e3_pruner.baselines import check_tokens
from e3_pruner.masks import check_k, relaxed_topk_mask, straight_through_topk_mask
from llm_tools import (
    LayerGate,
    Llama,
    forward,
    init_train_state,
    make_train_step,
)
from llm_tools.train import token_logprobs  # not re-exported by llm_tools (yet)

__all__ = ["MaskSearchResult", "anneal_temperature", "make_search_loss", "search_mask"]

OBJECTIVES = ("kd", "lm")
ESTIMATORS = ("straight_through", "relaxed")


class MaskSearchResult(NamedTuple):
    """What :func:`search_mask` learned.

    Attributes:
      keep: sorted int ``[k]``, the layers kept (top-k of ``logits``).
      logits: float ``[L]``, the learned ``θ``.
      losses: float ``[steps]``, the objective at each step (on the sampled mask).
      temperatures: float ``[steps]``.
      logit_history: float ``[steps, L]``, ``θ`` after each step.
    """

    keep: np.ndarray
    logits: np.ndarray
    losses: np.ndarray
    temperatures: np.ndarray
    logit_history: np.ndarray


def anneal_temperature(step, steps: int, t_start: float, t_end: float):
    """Geometric annealing ``t_start · (t_end / t_start)^{step / (steps − 1)}``."""
    if not (t_start > 0 and t_end > 0):
        raise ValueError(f"anneal_temperature: temperatures must be > 0, got t_start={t_start!r}"
                         f", t_end={t_end!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"anneal_temperature: steps must be a positive int, got {steps!r}")
    frac = jnp.asarray(step, jnp.float32) / max(steps - 1, 1)
    return t_start * (t_end / t_start) ** frac


def make_search_loss(k: int, *, objective: str = "kd", estimator: str = "straight_through"):
    """``loss_fn(model, batch) -> (loss, aux)`` whose trainable part is ``model.gates = θ``.

    ``batch`` holds ``"tokens"`` ``[B, S]``, ``"mask"`` (bool, False at padding), ``"key"``
    (the step's Gumbel noise) and ``"temperature"``. The model is run with the sampled k-hot
    gates; with ``objective="kd"`` the teacher is the same weights with every gate at 1.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"make_search_loss: objective must be one of {OBJECTIVES}, got "
                         f"{objective!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"make_search_loss: estimator must be one of {ESTIMATORS}, got "
                         f"{estimator!r}")
    sample = straight_through_topk_mask if estimator == "straight_through" else relaxed_topk_mask

    def loss_fn(model, batch):
        theta = model.gates[...]
        gates = sample(batch["key"], theta, k, batch["temperature"])
        tokens, mask = batch["tokens"], batch["mask"]
        weight = (mask[:, :-1] & mask[:, 1:]).astype(jnp.float32)
        denom = jnp.maximum(jnp.sum(weight), 1.0)
        if objective == "lm":
            lp = token_logprobs(model, tokens, mask, gates=gates)
            loss = -jnp.sum(lp * weight) / denom
        else:
            inputs, in_mask = tokens[:, :-1], mask[:, :-1]
            log_s = jax.nn.log_softmax(
                forward(model, inputs, attention_mask=in_mask, gates=gates)[0], axis=-1)
            teacher = forward(model, inputs, attention_mask=in_mask,
                              gates=jnp.ones_like(theta))[0]
            log_t = jax.nn.log_softmax(jax.lax.stop_gradient(teacher), axis=-1)
            kl = jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)
            loss = jnp.sum(kl * weight) / denom
        return loss, {"gates": gates}

    return loss_fn


def search_mask(model: Llama, tokens, k: int, *, key: jax.Array, steps: int = 100,
                batch_size: int = 8, learning_rate: float = 0.1, t_start: float = 1.0,
                t_end: float = 0.05, objective: str = "kd",
                estimator: str = "straight_through", attention_mask=None,
                init_logits=None,
                callback: Callable[[int, float, float], None] | None = None
                ) -> MaskSearchResult:
    """Learns the ``k`` layers to keep with annealed Gumbel-top-k masks (model frozen).

    Args:
      model: the dense model (its weights are not changed).
      tokens: calibration sequences ``[N, S ≥ 2]``.
      k: layers to keep, ``0 < k < L``.
      key: typed PRNG key (mini-batch order and Gumbel noise).
      steps: Adam steps on the logits.
      batch_size: calibration rows per step (``≤ N``).
      learning_rate: Adam step size on ``θ``.
      t_start, t_end: temperature at the first and last step (``> 0``).
      objective: ``"kd"`` (KL from the dense model) or ``"lm"`` (cross-entropy).
      estimator: ``"straight_through"`` (hard mask forward) or ``"relaxed"``.
      attention_mask: optional bool ``[N, S]`` (False at padding).
      init_logits: optional float ``[L]`` starting ``θ`` (default zeros: no prior).
      callback: optional ``callback(step, loss, temperature)`` after each step.

    Returns:
      a :class:`MaskSearchResult`.

    Raises:
      ValueError: on ``k`` outside ``(0, L)``, a temperature ``≤ 0``, calibration data
        shorter than 2 tokens per row or with fewer rows than ``batch_size``, an unknown
        objective/estimator, or a non-finite loss.
    """
    who = "search_mask"
    if not isinstance(model, Llama):
        raise TypeError(f"{who}: model must be an llm_tools.Llama, got {type(model).__name__}")
    L = model.config.n_layers
    k = check_k(who, k, L)
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(f"{who}: key must be a typed key from jax.random.key(seed), got "
                        f"{getattr(key, 'dtype', type(key).__name__)}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    for name, value in (("t_start", t_start), ("t_end", t_end),
                        ("learning_rate", learning_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{who}: {name} must be a finite float > 0, got {value!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"{who}: objective must be one of {OBJECTIVES}, got {objective!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"{who}: estimator must be one of {ESTIMATORS}, got {estimator!r}")
    tokens, attention_mask = check_tokens(who, tokens, attention_mask,
                                          vocab_size=model.config.vocab_size)
    n = tokens.shape[0]
    if batch_size > n:
        raise ValueError(f"{who}: batch_size ({batch_size}) exceeds the {n} calibration rows")
    mask = jnp.ones(tokens.shape, bool) if attention_mask is None else attention_mask
    if init_logits is None:
        theta = jnp.zeros((L,), jnp.float32)
    else:
        theta = jnp.asarray(init_logits, jnp.float32)
        if theta.shape != (L,) or not bool(jnp.all(jnp.isfinite(theta))):
            raise ValueError(f"{who}: init_logits must be finite with shape ({L},), got "
                             f"{theta.shape}")

    # θ lives in the model's LayerGate variable; only it is trained (the weights are frozen).
    opt = optax.adam(learning_rate)
    graphdef, state = init_train_state(model, opt, wrt=LayerGate)
    params = jax.tree.map(lambda _: theta, state.params)
    state = state._replace(params=params, opt_state=opt.init(params))
    step = make_train_step(graphdef, opt, make_search_loss(k, objective=objective,
                                                            estimator=estimator))
    order_key, noise_key = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(order_key)).ravel().tolist())
    perm, pos = rng.permutation(n), 0
    losses, temps, history = [], [], []
    for i in range(steps):
        if pos + batch_size > n:
            perm, pos = rng.permutation(n), 0
        rows = perm[pos:pos + batch_size]
        pos += batch_size
        t = anneal_temperature(i, steps, t_start, t_end)
        state, loss, _ = step(state, {"tokens": tokens[rows], "mask": mask[rows],
                                      "key": jax.random.fold_in(noise_key, i),
                                      "temperature": t})
        loss = float(loss)
        theta = jax.tree.leaves(state.params)[0]
        if not np.isfinite(loss):
            raise ValueError(f"{who}: the objective is {loss} at step {i + 1}")
        losses.append(loss)
        temps.append(float(t))
        history.append(np.asarray(theta))
        if callback is not None:
            callback(i + 1, loss, float(t))
    theta_np = np.asarray(theta)
    keep = np.sort(np.argsort(-theta_np, kind="stable")[:k])
    return MaskSearchResult(keep=keep, logits=theta_np, losses=np.asarray(losses),
                            temperatures=np.asarray(temps), logit_history=np.stack(history))
