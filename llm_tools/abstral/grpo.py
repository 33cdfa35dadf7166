"""Group Relative Policy Optimization as pure, jittable functions.

For each prompt :math:`q` the policy samples a group of :math:`G` completions
:math:`o_1..o_G` with rewards :math:`r_1..r_G`. GRPO replaces PPO's value baseline by the
group's statistics:

.. math::

    \\hat A_i = \\frac{r_i - \\mathrm{mean}(r_{1..G})}{\\max(\\mathrm{std}(r_{1..G}), s_{\\min})}

(``scale="group"``; Dr. GRPO drops the division, ``scale="none"``; ``scale="batch"`` divides by
the whole batch's std). The std is the unbiased one (:math:`G-1`), as in TRL. A group whose
rewards are all equal has :math:`r_i - \\mathrm{mean} = 0` exactly and gets zero advantage;
the floor :math:`s_{\\min}` keeps nearly-equal groups from blowing up and never divides by 0.

Per token :math:`t` of completion :math:`i`, with
:math:`\\rho_{i,t} = \\pi_\\theta(o_{i,t}|q,o_{i,<t}) / \\pi_{\\theta_{old}}(o_{i,t}|q,o_{i,<t})`,

.. math::

    \\ell_{i,t} = -\\Big[\\min\\big(\\rho_{i,t}\\hat A_i,\\;
        \\mathrm{clip}(\\rho_{i,t}, 1-\\varepsilon_{low}, 1+\\varepsilon_{high})\\hat A_i\\big)
        - \\beta\\, \\mathbb{D}_{i,t}\\Big],\\qquad
    \\mathbb{D}_{i,t} = \\frac{\\pi_{ref}}{\\pi_\\theta} - \\log\\frac{\\pi_{ref}}{\\pi_\\theta} - 1

(the k3 estimator of :math:`\\mathrm{KL}(\\pi_\\theta\\|\\pi_{ref})`, Schulman 2020; asymmetric
clipping as in DAPO). Reductions over the token mask :math:`m_{i,t}`:

- ``grpo`` (DeepSeekMath):
  :math:`\\frac1N\\sum_i \\frac{\\sum_t m_{i,t}\\ell_{i,t}}{\\sum_t m_{i,t}}`;
- ``bnpo``: :math:`\\sum_{i,t} m_{i,t}\\ell_{i,t} / \\sum_{i,t} m_{i,t}` (token-level mean);
- ``dr_grpo`` (Dr. GRPO): :math:`\\sum_{i,t} m_{i,t}\\ell_{i,t} / (N \\cdot L)`, with
  :math:`L` a fixed maximum completion length (the array's length by default).

References:
  Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
  Models", 2024 (GRPO).
  Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective", 2025 (Dr. GRPO).
  Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale", 2025
  (clip-higher, token-level loss).
  Schulman, "Approximating KL Divergence", 2020 (k3).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

__all__ = ["REDUCTIONS", "GRPOAux", "grpo_loss", "group_advantages", "k3_kl"]

REDUCTIONS = ("grpo", "bnpo", "dr_grpo")


def group_advantages(rewards: jax.Array, *, scale: str = "group",
                     std_floor: float = 1e-4) -> jax.Array:
    """Group-relative advantages.

    Args:
      rewards: ``[num_prompts, group_size]``.
      scale: ``"group"`` (divide by the group's std, GRPO), ``"batch"`` (by the batch's std)
        or ``"none"`` (Dr. GRPO: centre only).
      std_floor: the smallest divisor :math:`s_{\\min}` (> 0).

    Returns:
      ``[num_prompts, group_size]`` advantages; exactly 0 for a group of equal rewards.

    Raises:
      ValueError: if ``rewards`` is not 2-D, the group size is below 2, ``scale`` is unknown
        or ``std_floor`` is not positive.
    """
    rewards = jnp.asarray(rewards)
    if rewards.ndim != 2:
        raise ValueError(f"group_advantages: rewards must be [num_prompts, group_size], got "
                         f"shape {rewards.shape}")
    if rewards.shape[1] < 2:
        raise ValueError(f"group_advantages: group size must be at least 2 (GRPO compares "
                         f"completions of one prompt), got {rewards.shape[1]}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"group_advantages: scale must be 'group', 'batch' or 'none', got "
                         f"{scale!r}")
    if not std_floor > 0:
        raise ValueError(f"group_advantages: std_floor must be > 0, got {std_floor}")
    rewards = rewards.astype(jnp.float32)
    centred = rewards - rewards.mean(axis=1, keepdims=True)
    if scale == "none":
        return centred
    if scale == "group":
        std = jnp.std(rewards, axis=1, ddof=1, keepdims=True)
    else:
        std = jnp.std(rewards, ddof=1)
    return centred / jnp.maximum(std, std_floor)


def k3_kl(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
    """Per-token k3 estimate of KL(pi || ref): ``exp(ref - logp) - (ref - logp) - 1`` (>= 0)."""
    delta = ref_logp - logp
    return jnp.exp(delta) - delta - 1.0


class GRPOAux(NamedTuple):
    """Diagnostics of one loss evaluation (means over the masked tokens)."""

    clip_fraction: jax.Array
    kl: jax.Array
    ratio: jax.Array
    tokens: jax.Array


def grpo_loss(logp: jax.Array, old_logp: jax.Array, advantages: jax.Array, mask: jax.Array,
              ref_logp: jax.Array | None = None, *, epsilon_low: float = 0.2,
              epsilon_high: float = 0.2, beta: float = 0.0, reduction: str = "grpo",
              max_completion_length: int | None = None) -> tuple[jax.Array, GRPOAux]:
    """The clipped GRPO objective (to minimize) with an optional k3 KL penalty.

    Args:
      logp: ``[N, T]`` log-probabilities of the sampled completion tokens under the policy
        being trained (differentiate through this one).
      old_logp: ``[N, T]`` the same under the policy that sampled them (no gradient flows).
      advantages: ``[N]`` one advantage per completion (see :func:`group_advantages`).
      mask: ``[N, T]`` 1 for completion tokens (the stop token included), 0 for padding.
      ref_logp: ``[N, T]`` under the frozen reference policy; required when ``beta > 0``.
      epsilon_low, epsilon_high: the ratio is clipped to ``[1 - low, 1 + high]``.
      beta: KL coefficient (0 drops the term; TRL's default).
      reduction: ``"grpo"``, ``"bnpo"`` or ``"dr_grpo"`` (see the module docstring).
      max_completion_length: ``L`` of ``dr_grpo`` (default ``T``).

    Returns:
      ``(loss, GRPOAux)``.

    Raises:
      ValueError: on mismatched shapes, an unknown reduction, negative epsilons or beta, or
        ``beta > 0`` without ``ref_logp``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"grpo_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if epsilon_low < 0 or epsilon_high < 0 or beta < 0:
        raise ValueError(f"grpo_loss: epsilon_low, epsilon_high and beta must be >= 0, got "
                         f"{epsilon_low}, {epsilon_high}, {beta}")
    if beta > 0 and ref_logp is None:
        raise ValueError("grpo_loss: beta > 0 needs ref_logp (the reference policy's "
                         "log-probabilities)")
    chex.assert_rank([logp, old_logp, mask], 2)
    chex.assert_equal_shape([logp, old_logp, mask])
    chex.assert_rank(advantages, 1)
    if advantages.shape[0] != logp.shape[0]:
        raise ValueError(f"grpo_loss: advantages has {advantages.shape[0]} rows but logp has "
                         f"{logp.shape[0]}")
    if ref_logp is not None:
        chex.assert_equal_shape([logp, ref_logp])
    n, t = logp.shape
    length = t if max_completion_length is None else max_completion_length
    if length < 1:
        raise ValueError(f"grpo_loss: max_completion_length must be >= 1, got {length}")
    mask = mask.astype(logp.dtype)
    adv = advantages.astype(logp.dtype)[:, None]
    ratio = jnp.exp(logp - jax.lax.stop_gradient(old_logp))
    clipped = jnp.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    objective = jnp.minimum(ratio * adv, clipped * adv)
    kl = k3_kl(logp, jax.lax.stop_gradient(ref_logp)) if ref_logp is not None else \
        jnp.zeros_like(logp)
    per_token = -(objective - beta * kl)
    tokens = mask.sum()
    safe_tokens = jnp.maximum(tokens, 1.0)
    if reduction == "grpo":
        per_seq = (per_token * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)
        loss = per_seq.mean()
    elif reduction == "bnpo":
        loss = (per_token * mask).sum() / safe_tokens
    else:
        loss = (per_token * mask).sum() / (n * length)
    is_clipped = ((ratio < 1.0 - epsilon_low) & (adv < 0)) | ((ratio > 1.0 + epsilon_high)
                                                               & (adv > 0))
    aux = GRPOAux(clip_fraction=(is_clipped * mask).sum() / safe_tokens,
                  kl=(kl * mask).sum() / safe_tokens,
                  ratio=(ratio * mask).sum() / safe_tokens, tokens=tokens)
    return loss, aux
