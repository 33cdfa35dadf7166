"""Recovery losses: LM, plain KD, fixed-mix KD and entropy-aware adaptive KD.

At every predicted position ``t`` the pruned student ``p_S`` is trained from the dense teacher
``p_T`` and the observed next token ``y_t``. With the teacher's predictive entropy

    H_t = −Σ_v p_T(v | x_<t) log p_T(v | x_<t),

E³-Pruner's *entropy-aware adaptive* distillation mixes a distillation term and the LM term
per token. The paper does not publish its formula; ours is

    α_t = H_t / (H_t + H̄ + ε),    H̄ = mean of H over the batch's real tokens (a constant),
    ℓ_t = α_t · τ² KL(p_T^τ ‖ p_S^τ)_t + (1 − α_t) · (−log p_S(y_t | x_<t)),
    L   = Σ_t m_t ℓ_t / Σ_t m_t,

with ``p^τ`` the softmax at temperature ``τ`` (default 1), ``m`` the padding mask and
``ε = 10⁻⁶`` nats (so that a batch of one-hot teachers gets ``α = 0``, not ``0/0``).

Why this form. Where the teacher is confident (``H_t → 0``) its distribution is nearly the
one-hot of its own argmax: it carries no information beyond a label, and a label that can be
wrong, so the observed token is the better target (``α_t → 0``). Where the teacher is uncertain
(``H_t ≫ H̄``) the observed token is one noisy draw among several plausible continuations,
while the teacher's distribution spells out their relative weights (the "dark knowledge"
that makes distillation work), so the student should follow the teacher (``α_t → 1``).
Normalising by the batch mean ``H̄`` makes the weight scale-free (byte-level and 49k-token
vocabularies have very different entropies) and puts the average token at ``α = 1/2``, so
the comparison with a fixed 50/50 mix isolates the *per-token adaptivity*; the weight is
bounded in ``[0, 1)`` and needs no tuned constant. It is computed from the teacher alone, so
no gradient flows through it.

The ablation (``kind``): ``"lm"`` (``α ≡ 0``: fine-tuning on the data), ``"kd"`` (``α ≡ 1``:
plain forward-KL distillation, Hinton et al. 2015), ``"mix"`` (``α ≡ alpha``, default 1/2) and
``"ekd"`` (entropy-aware, above).

References:
  Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015.
  Yuan et al., "E³-Pruner", arXiv:2511.17205, 2025 (entropy-aware adaptive KD).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["KINDS", "distillation_loss", "entropy_weights", "token_entropy"]

KINDS = ("lm", "kd", "mix", "ekd")
ENTROPY_EPS = 1e-6  # nats


def _check_logits(who: str, name: str, logits) -> jax.Array:
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"{who}: {name} must be a float array [..., V], got "
                         f"{logits.dtype}{logits.shape}")
    return logits


def _check_temperature(who: str, temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not temperature > 0 or temperature == float("inf"):
        raise ValueError(f"{who}: temperature must be a finite float > 0, got {temperature!r}")
    return float(temperature)


def token_entropy(logits: jax.Array, temperature: float = 1.0) -> jax.Array:
    """Predictive entropy ``H = −Σ_v p_v log p_v`` (nats) of ``softmax(logits / τ)``.

    Args:
      logits: float ``[..., V]``.
      temperature: ``τ > 0``.

    Returns:
      float32 ``[...]``.
    """
    logits = _check_logits("token_entropy", "logits", logits)
    t = _check_temperature("token_entropy", temperature)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32) / t, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def entropy_weights(teacher_logits: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Per-token distillation weights ``α_t = H_t / (H_t + H̄ + ε)`` from the teacher's entropy.

    ``H̄`` is the mean entropy over the positions where ``mask`` is on (all by default) and
    ``ε = 10⁻⁶`` nats, so when every teacher distribution is one-hot all weights are 0.

    Args:
      teacher_logits: float ``[..., V]``.
      mask: optional ``[...]`` weights of the real positions.

    Returns:
      float32 ``[...]`` in ``[0, 1)`` (0 where ``mask`` is off), without gradient.
    """
    teacher_logits = _check_logits("entropy_weights", "teacher_logits", teacher_logits)
    h = jax.lax.stop_gradient(token_entropy(teacher_logits))
    m = _check_mask("entropy_weights", mask, h.shape)
    h_bar = jnp.sum(h * m) / jnp.maximum(jnp.sum(m), 1.0)
    alpha = h / (h + h_bar + ENTROPY_EPS)
    return alpha * (m > 0)


def _check_mask(who: str, mask, shape) -> jax.Array:
    if mask is None:
        return jnp.ones(shape, jnp.float32)
    mask = jnp.asarray(mask, jnp.float32)
    if mask.shape != tuple(shape):
        raise ValueError(f"{who}: mask must have shape {tuple(shape)}, got {mask.shape}")
    return mask


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array, targets: jax.Array,
                      mask: jax.Array | None = None, *, kind: str = "ekd", alpha: float = 0.5,
                      temperature: float = 1.0) -> tuple[jax.Array, dict]:
    """Mean per-token recovery loss ``Σ m_t [α_t τ² KL_t + (1 − α_t) CE_t] / Σ m_t``.

    Args:
      student_logits: float ``[B, T, V]`` of the pruned model.
      teacher_logits: float ``[B, T, V]`` of the dense model (no gradient flows into it).
      targets: int ``[B, T]``, the observed next tokens.
      mask: optional ``[B, T]`` weights of real positions.
      kind: ``"lm"`` (α=0), ``"kd"`` (α=1), ``"mix"`` (α=``alpha``) or ``"ekd"``
        (α from the teacher's entropy, :func:`entropy_weights`).
      alpha: the constant weight of ``"mix"``, in ``[0, 1]``.
      temperature: distillation temperature ``τ > 0`` (the LM term always uses ``τ = 1``).

    Returns:
      ``(loss, aux)`` with ``aux = {"kl", "ce", "alpha", "teacher_entropy"}`` (masked means).

    Raises:
      ValueError: on an unknown ``kind``, mismatched shapes, ``alpha`` outside ``[0, 1]``
        or ``τ ≤ 0``.
    """
    who = "distillation_loss"
    if kind not in KINDS:
        raise ValueError(f"{who}: kind must be one of {KINDS}, got {kind!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"{who}: alpha must be a float in [0, 1], got {alpha!r}")
    t = _check_temperature(who, temperature)
    student_logits = _check_logits(who, "student_logits", student_logits)
    teacher_logits = _check_logits(who, "teacher_logits", teacher_logits)
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 3:
        raise ValueError(f"{who}: student_logits and teacher_logits must both be [B, T, V]; got "
                         f"{student_logits.shape} and {teacher_logits.shape}")
    targets = jnp.asarray(targets)
    if targets.shape != student_logits.shape[:2] or not jnp.issubdtype(targets.dtype,
                                                                        jnp.integer):
        raise ValueError(f"{who}: targets must be int {student_logits.shape[:2]}, got "
                         f"{targets.dtype}{targets.shape}")
    m = _check_mask(who, mask, targets.shape)
    denom = jnp.maximum(jnp.sum(m), 1.0)
    teacher_logits = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32))
    s32 = student_logits.astype(jnp.float32)

    log_s1 = jax.nn.log_softmax(s32, axis=-1)
    ce = -jnp.take_along_axis(log_s1, targets[..., None], axis=-1)[..., 0]
    log_t = jax.nn.log_softmax(teacher_logits / t, axis=-1)
    log_s = log_s1 if t == 1.0 else jax.nn.log_softmax(s32 / t, axis=-1)
    kl = (t * t) * jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)
    h = -jnp.sum(jnp.exp(log_t) * log_t, axis=-1) if t == 1.0 else token_entropy(teacher_logits)

    if kind == "lm":
        a = jnp.zeros_like(ce)
    elif kind == "kd":
        a = jnp.ones_like(ce)
    elif kind == "mix":
        a = jnp.full_like(ce, float(alpha))
    else:
        a = entropy_weights(teacher_logits, m)
    per_token = a * kl + (1.0 - a) * ce
    loss = jnp.sum(per_token * m) / denom
    aux = {"kl": jnp.sum(kl * m) / denom, "ce": jnp.sum(ce * m) / denom,
           "alpha": jnp.sum(a * m) / denom, "teacher_entropy": jnp.sum(h * m) / denom}
    return loss, aux
