"""The SoftStep mask: a learned, sparse, instance-wise step over normalised similarities.

Given a query's normalised similarities ``s~ in [0, 1]`` to its candidate neighbours and
parameters ``(a, b, t) in (0, 1)^3`` with ``a <= b``, SoftStep adds a term to the
similarity logits that is ``-inf`` (weight exactly 0) for dissimilar neighbours, 0 for the
most similar ones and a smooth ramp in between:

* **S1** (hard-edged soft step)::

      m(s~) = 0                                                for s~ <= a
      m(s~) = |s~-a|^{1/t} / (|s~-a|^{1/t} + |b-s~|^{1/t})    for a < s~ < b
      m(s~) = 1                                                for s~ >= b
      term  = log m(s~)

* **S2** (log-barrier step)::

      term = (t / (1 - t)) (b - s~) log(s~ / b)    for s~ <= b,   0 otherwise.

The prediction is ``softmax(s + term) @ y`` over the neighbours.

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["MODES", "STEP_KINDS", "SoftStep", "SoftStepParams", "soft_step"]

STEP_KINDS = ("s1", "s2")
MODES = ("pointwise", "global")

# t is kept inside [T_MIN, 1 - T_MIN] so that 1/t and t/(1-t) stay finite in float32.
T_MIN = 1e-4


class SoftStepParams(NamedTuple):
    """Step parameters, each broadcastable against the ``[n, m]`` similarity matrix.

    Attributes:
      a: lower edge in [0, 1] (``[n, 1]`` per query, or a scalar).
      b: upper edge in [a, 1].
      t: temperature in (0, 1); small t is a sharp step.
    """

    a: jax.Array
    b: jax.Array
    t: jax.Array


def check_step_kind(kind: str, where: str) -> None:
    if kind not in STEP_KINDS:
        raise ValueError(f"{where}: kind must be one of {list(STEP_KINDS)}, got {kind!r}")


def _s1(s, a, b, t):
    above = s >= b
    below = (s <= a) & ~above
    mid = ~above & ~below
    lo = jnp.where(mid, s - a, 1.0)  # double-where: finite gradients in unused branches
    hi = jnp.where(mid, b - s, 1.0)
    la, lb = jnp.log(lo) / t, jnp.log(hi) / t
    log_m = la - jnp.logaddexp(la, lb)
    return jnp.where(above, 0.0, jnp.where(below, -jnp.inf, log_m))


def _s2(s, b, t):
    above = s >= b
    zero = (s <= 0) & ~above
    mid = ~above & ~zero
    safe_s = jnp.where(mid, s, 1.0)
    safe_b = jnp.where(mid, b, 1.0)
    val = (t / (1.0 - t)) * (safe_b - safe_s) * jnp.log(safe_s / safe_b)
    return jnp.where(above, 0.0, jnp.where(zero, -jnp.inf, val))


def soft_step(
    similarity: jax.Array,
    params: SoftStepParams,
    *,
    kind: str = "s1",
    valid: jax.Array | None = None,
    clamp_to_row_max: bool = True,
) -> jax.Array:
    """The SoftStep term added to similarity logits.

    With ``s~`` the normalised similarity and ``(a, b, t)`` from ``params``:

    S1: ``log m(s~)``, ``m = 0`` for ``s~ <= a``, ``1`` for ``s~ >= b`` (this case wins when
    ``a = b``), and ``|s~-a|^{1/t} / (|s~-a|^{1/t} + |b-s~|^{1/t})`` in between (computed
    in log space).

    S2: ``(t/(1-t)) (b - s~) log(s~/b)`` for ``s~ <= b`` (``-inf`` at ``s~ = 0``), else 0.
    S2 does not use ``a`` except through ``b = a + b'(1 - a)`` (see :class:`SoftStep`).

    Every row keeps at least one neighbour: with ``clamp_to_row_max`` the edges are clamped,
    ``a <- min(a, max_j s~_ij)`` and ``b <- min(b, max_j s~_ij)`` over the valid ``j``, so the
    most similar valid neighbour has ``s~ >= b`` and term 0. After
    :func:`~softstep.minmax_normalize` that maximum is 1 and the clamp changes nothing.
    ``t`` is clipped to ``[1e-4, 1 - 1e-4]`` so the exponents stay finite.

    Args:
      similarity: ``[n, m]`` normalised similarities in [0, 1].
      params: :class:`SoftStepParams`, each broadcastable to ``[n, m]``.
      kind: ``"s1"`` or ``"s2"``.
      valid: optional ``[n, m]`` mask of candidate neighbours; invalid entries get ``-inf``.
      clamp_to_row_max: clamp ``a`` and ``b`` to each row's largest valid similarity.

    Returns:
      ``[n, m]`` terms in ``[-inf, 0]``.

    Raises:
      ValueError: for an unknown ``kind`` or a non-2-D ``similarity``.
      TypeError: if ``params`` is not a :class:`SoftStepParams`.

    References:
      Susman et al., SoftStep, arXiv:2506.08139 (S1 and S2 step functions).
    """
    check_step_kind(kind, "soft_step")
    if not isinstance(params, SoftStepParams):
        raise TypeError(f"soft_step: params must be SoftStepParams, got {type(params).__name__}")
    s = jnp.asarray(similarity)
    if s.ndim != 2:
        raise ValueError(f"soft_step: similarity must be 2-D [n, m], got shape {s.shape}")
    a, b, t = (jnp.asarray(p, s.dtype) for p in params)
    t = jnp.clip(t, T_MIN, 1.0 - T_MIN)
    valid = jnp.ones(s.shape, bool) if valid is None else jnp.broadcast_to(valid, s.shape)
    if clamp_to_row_max:
        top = jnp.max(jnp.where(valid, s, -jnp.inf), axis=1, keepdims=True)
        top = jnp.where(jnp.isfinite(top), top, 1.0)
        a, b = jnp.minimum(a, top), jnp.minimum(b, top)
    term = _s1(s, a, b, t) if kind == "s1" else _s2(s, b, t)
    return jnp.where(valid, term, -jnp.inf)


class SoftStep(nnx.Module):
    """Learns the step parameters ``(a, b, t)``, per instance or globally.

    ``pointwise``: ``(a, b', t) = sigmoid(W e + c)`` from the query embedding ``e``;
    ``global``: ``(a, b', t) = sigmoid(theta)`` with three learned scalars. Then
    ``b = a + b'(1 - a)`` so that ``a <= b <= 1``.

    Args:
      in_features: embedding width (used by ``pointwise``).
      mode: ``"pointwise"`` or ``"global"``.
      rngs: ``nnx.Rngs`` for the pointwise projection.

    Raises:
      ValueError: for an unknown mode or a non-positive ``in_features``.

    References:
      Susman et al., SoftStep, arXiv:2506.08139 (pointwise and global SoftStep).
    """

    def __init__(self, in_features: int, *, mode: str = "pointwise", rngs: nnx.Rngs):
        if mode not in MODES:
            raise ValueError(f"SoftStep: mode must be one of {list(MODES)}, got {mode!r}")
        if not isinstance(in_features, int) or in_features <= 0:
            raise ValueError(f"SoftStep: in_features must be a positive int, got {in_features!r}")
        self.mode = mode
        self.in_features = in_features
        if mode == "pointwise":
            self.proj = nnx.Linear(
                in_features, 3, kernel_init=nnx.initializers.normal(0.01), rngs=rngs
            )
        else:
            self.theta = nnx.Param(jnp.zeros((3,)))

    def __call__(self, embeddings: jax.Array) -> SoftStepParams:
        """Returns ``[n, 1]`` parameters for ``[n, d]`` query embeddings."""
        embeddings = jnp.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.in_features:
            raise ValueError(
                f"SoftStep: embeddings must have shape [n, {self.in_features}], "
                f"got {embeddings.shape}"
            )
        n = embeddings.shape[0]
        if self.mode == "pointwise":
            raw = jax.nn.sigmoid(self.proj(embeddings))
        else:
            raw = jnp.broadcast_to(jax.nn.sigmoid(self.theta[...]), (n, 3))
        a, b_raw, t = raw[:, 0:1], raw[:, 1:2], raw[:, 2:3]
        return SoftStepParams(a=a, b=a + b_raw * (1.0 - a), t=t)
