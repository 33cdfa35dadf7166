"""Isotonic (monotone non-decreasing) least-squares projection and grid inversion, in JAX.

The projection uses the min-max characterisation of isotonic regression (Barlow et al.,
1972, Thm 1.4): for weights ``w > 0``,

    yhat_i = max_{j <= i} min_{k >= i} (sum_{l=j}^{k} w_l y_l) / (sum_{l=j}^{k} w_l),

which equals the pool-adjacent-violators answer exactly. Block means come from cumulative
sums, so the whole projection is an ``O(K^2)`` vectorized computation: well defined,
branch-free, ``jit``/``vmap``-able, and intended for grids of a few hundred points.

References:
  Barlow, Bartholomew, Bremner, Brunk. Statistical Inference under Order Restrictions, 1972.
  Givens, Liu, Reeve, Reluga. ICLR 2026, arXiv:2601.19666 (the indirect baseline's
  monotone projection in y1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["first_crossing", "isotonic_increasing"]


def _check_last_axis(where: str, name: str, arr: jax.Array, minimum: int = 1) -> None:
    if arr.ndim < 1 or arr.shape[-1] < minimum:
        raise ValueError(
            f"{where}: {name} must have at least {minimum} point(s) on its last axis, "
            f"got shape {arr.shape}"
        )


def isotonic_increasing(y: jax.typing.ArrayLike, w: jax.typing.ArrayLike | None = None):
    """Weighted L2 projection of ``y`` onto non-decreasing sequences along the last axis.

    Solves ``min_z sum_i w_i (y_i - z_i)^2  s.t.  z_1 <= ... <= z_K`` with the min-max
    formula in the module docstring. Leading axes are batch axes.

    Args:
      y: values, shape ``(..., K)``.
      w: positive weights broadcastable to ``y`` (default: all ones).

    Returns:
      The projection, same shape as ``y``.

    Raises:
      ValueError: if ``y`` has no last axis or a weight is not positive (checked when
        ``w`` is concrete).
    """
    y = jnp.asarray(y)
    _check_last_axis("isotonic_increasing", "y", y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.float32)
    w = jnp.ones_like(y) if w is None else jnp.broadcast_to(jnp.asarray(w, y.dtype), y.shape)
    if not isinstance(w, jax.core.Tracer) and bool(jnp.any(w <= 0)):
        raise ValueError("isotonic_increasing: w must be positive everywhere, got a value <= 0")
    k = y.shape[-1]
    zero = jnp.zeros(y.shape[:-1] + (1,), y.dtype)
    s = jnp.concatenate([zero, jnp.cumsum(w * y, axis=-1)], axis=-1)  # s[j] = sum_{l<j}
    c = jnp.concatenate([zero, jnp.cumsum(w, axis=-1)], axis=-1)
    # mean[j, k] of block j..k (inclusive) = (s[k+1] - s[j]) / (c[k+1] - c[j]), j <= k.
    num = s[..., None, 1:] - s[..., :-1, None]
    den = c[..., None, 1:] - c[..., :-1, None]
    jj = jnp.arange(k)[:, None]
    kk = jnp.arange(k)[None, :]
    valid = kk >= jj
    means = jnp.where(valid, num / jnp.where(valid, den, 1.0), jnp.inf)
    # inner[j, i] = min_{k >= i} mean[j, k]: reverse cumulative minimum along k.
    inner = jnp.flip(jax.lax.cummin(jnp.flip(means, -1), axis=means.ndim - 1), -1)
    # outer[i] = max_{j <= i} inner[j, i]; entries with j > i are excluded.
    inner = jnp.where(valid, inner, -jnp.inf)
    return jnp.max(inner, axis=-2)


def first_crossing(h: jax.typing.ArrayLike, grid: jax.typing.ArrayLike) -> jax.Array:
    """Smallest ``t`` with ``h(t) >= 0`` for a non-decreasing ``h`` tabulated on ``grid``.

    Between the last grid point with ``h < 0`` and the next one, ``h`` is taken as linear, so
    the answer is the linear interpolation of the zero crossing. If ``h >= 0`` already at the
    first grid point the first point is returned (the infimum over the grid). Where there is
    no answer on the grid the result is NaN, never a boundary value: when ``h < 0`` at every
    grid point (the crossing lies above the grid) or ``h`` has a NaN (an undefined contrast,
    e.g. a 0/0 kernel average). Callers report such points (the estimators warn).

    Args:
      h: values, shape ``(..., K)``, non-decreasing along the last axis.
      grid: increasing grid, shape ``(K,)``.

    Returns:
      Shape ``h.shape[:-1]``; NaN where there is no crossing on the grid.

    Raises:
      ValueError: if the shapes disagree or the grid has fewer than 2 points.
    """
    h = jnp.asarray(h)
    if not jnp.issubdtype(h.dtype, jnp.floating):
        h = h.astype(jnp.float32)
    grid = jnp.asarray(grid, h.dtype)
    _check_last_axis("first_crossing", "h", h, 2)
    if grid.ndim != 1 or grid.shape[0] != h.shape[-1]:
        raise ValueError(
            f"first_crossing: grid must have shape ({h.shape[-1]},) to match h, got {grid.shape}"
        )
    k = h.shape[-1]
    nonneg = h >= 0
    idx = jnp.argmax(nonneg, axis=-1)  # first index with h >= 0 (0 if none)
    found = jnp.any(nonneg, axis=-1) & ~jnp.any(jnp.isnan(h), axis=-1)
    lo = jnp.clip(idx - 1, 0, k - 1)
    h_lo = jnp.take_along_axis(h, lo[..., None], -1)[..., 0]
    h_hi = jnp.take_along_axis(h, idx[..., None], -1)[..., 0]
    t_lo, t_hi = grid[lo], grid[idx]
    gap = h_hi - h_lo
    frac = jnp.where(gap > 0, -h_lo / jnp.where(gap > 0, gap, 1.0), 1.0)
    t = t_lo + jnp.clip(frac, 0.0, 1.0) * (t_hi - t_lo)
    t = jnp.where(idx == 0, grid[0], t)
    return jnp.where(found, t, jnp.nan)
