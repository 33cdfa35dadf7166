"""Doubly robust pseudo-outcomes of the CDF contrast and the direct CQC objective.

Notation (paper): ``F_a(y | x)`` is the CDF of the potential outcome ``Y(a)`` given
``X = x``, ``pi(x) = P(A = 1 | X = x)``,

    h(y0, y1 | x) = F_1(y1 | x) - F_0(y0 | x),   g*(y0 | x) = inf{y1 : h(y0, y1 | x) >= 0}.

Nuisance CDFs are carried as values on a shared uniform grid ``t_1 < ... < t_K`` (one row per
unit) and read off by linear interpolation (constant outside the grid); their
antiderivatives are integrated exactly from the same piecewise-linear form, so
``d/dt G(t) = F(t)`` holds everywhere, which the direct objective relies on.

References:
  Givens, Liu, Reeve, Reluga. "Direct Doubly Robust Estimation of Conditional Quantile
  Contrasts." ICLR 2026, arXiv:2601.19666.
  Givens, Liu, Reeve. "Learning the Conditional Quantile Comparator" (the indirect
  estimator). NeurIPS 2024, arXiv:2410.12454.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "control_term",
    "direct_loss",
    "grid_cdf",
    "grid_integrated_cdf",
    "pseudo_outcome",
]


def _check_grid(where: str, values: jax.Array, grid: jax.Array) -> None:
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"{where}: grid must be 1-D with >= 2 points, got shape {grid.shape}")
    if values.ndim != 2 or values.shape[1] != grid.shape[0]:
        raise ValueError(
            f"{where}: values must have shape (n, {grid.shape[0]}) to match grid, "
            f"got {values.shape}"
        )


def _locate(grid: jax.Array, t: jax.Array):
    """Segment index and position ``s = (t - t_idx) / dt`` on a uniform grid."""
    k = grid.shape[0]
    dt = grid[1] - grid[0]
    idx = jnp.clip(jnp.floor((t - grid[0]) / dt).astype(jnp.int32), 0, k - 2)
    s = (t - grid[idx]) / dt
    return idx, s, dt


def grid_cdf(values: jax.Array, grid: jax.Array, t: jax.Array) -> jax.Array:
    """Reads per-unit CDFs tabulated on a uniform grid at per-unit points.

    ``F_i(t) = F_i(t_j) + (F_i(t_{j+1}) - F_i(t_j)) s`` for ``t = t_j + s dt``, ``s`` clipped to
    ``[0, 1]`` (so ``F_i`` is constant beyond the grid's ends).

    Args:
      values: ``(n, K)`` CDF values of unit ``i`` on ``grid``.
      grid: ``(K,)`` uniform increasing grid.
      t: ``(n,)`` or ``(n, M)`` evaluation points, row ``i`` for unit ``i``.

    Returns:
      Same shape as ``t``.

    Raises:
      ValueError: on mismatched shapes.
    """
    values, grid, t = jnp.asarray(values), jnp.asarray(grid), jnp.asarray(t)
    _check_grid("grid_cdf", values, grid)
    if t.shape[0] != values.shape[0] or t.ndim not in (1, 2):
        raise ValueError(
            f"grid_cdf: t must have shape ({values.shape[0]},) or ({values.shape[0]}, M), "
            f"got {t.shape}"
        )
    squeeze = t.ndim == 1
    t2 = t[:, None] if squeeze else t
    idx, s, _ = _locate(grid, t2)
    lo = jnp.take_along_axis(values, idx, axis=1)
    hi = jnp.take_along_axis(values, idx + 1, axis=1)
    out = lo + (hi - lo) * jnp.clip(s, 0.0, 1.0)
    return out[:, 0] if squeeze else out


def grid_integrated_cdf(values: jax.Array, grid: jax.Array, t: jax.Array) -> jax.Array:
    """Antiderivative ``G_i(t) = int_{t_1}^{t} F_i(u) du`` of :func:`grid_cdf`'s ``F_i``.

    Exact for the piecewise-linear ``F_i`` (trapezoids on full segments, a quadratic on the
    partial one, linear continuation beyond either end). ``G_i`` differs from
    ``E[(t - Y)_+]`` under ``F_i`` by a constant in ``t``, which the direct objective ignores.

    Args/Returns/Raises: as :func:`grid_cdf`.
    """
    values, grid, t = jnp.asarray(values), jnp.asarray(grid), jnp.asarray(t)
    _check_grid("grid_integrated_cdf", values, grid)
    if t.shape[0] != values.shape[0] or t.ndim not in (1, 2):
        raise ValueError(
            f"grid_integrated_cdf: t must have shape ({values.shape[0]},) or "
            f"({values.shape[0]}, M), got {t.shape}"
        )
    squeeze = t.ndim == 1
    t2 = t[:, None] if squeeze else t
    out = _integrated(values, cumulative_trapezoid(values, grid), grid, t2)
    return out[:, 0] if squeeze else out


def cumulative_trapezoid(values: jax.Array, grid: jax.Array) -> jax.Array:
    """``C_ij = int_{t_1}^{t_j} F_i`` for piecewise-linear ``F_i`` on a uniform grid."""
    dt = grid[1] - grid[0]
    trap = 0.5 * dt * (values[:, 1:] + values[:, :-1])
    return jnp.concatenate([jnp.zeros_like(values[:, :1]), jnp.cumsum(trap, axis=1)], axis=1)


def _integrated(values, cum, grid, t2):
    idx, s, dt = _locate(grid, t2)
    lo = jnp.take_along_axis(values, idx, axis=1)
    hi = jnp.take_along_axis(values, idx + 1, axis=1)
    base = jnp.take_along_axis(cum, idx, axis=1)
    sc = jnp.clip(s, 0.0, 1.0)
    inside = base + dt * (lo * sc + 0.5 * (hi - lo) * sc**2)
    # Beyond the ends F is constant: continue linearly with slope F(t_1) or F(t_K).
    below = values[:, :1] * (t2 - grid[0])
    above = cum[:, -1:] + values[:, -1:] * (t2 - grid[-1])
    return jnp.where(t2 < grid[0], below, jnp.where(t2 > grid[-1], above, inside))


def pseudo_outcome(y0, y1, a, y, pi, f0_y0, f1_y1) -> jax.Array:
    """Doubly robust (AIPW) pseudo-outcome of ``h(y0, y1 | X_i)``.

    For a treated unit (``A_i = 1``)

        psi_i = (1{Y_i <= y1} - F1(y1|X_i)) / pi(X_i) + F1(y1|X_i) - F0(y0|X_i),

    and for a control unit (``A_i = 0``)

        psi_i = -[(1{Y_i <= y0} - F0(y0|X_i)) / (1 - pi(X_i)) + F0(y0|X_i) - F1(y1|X_i)],

    with hats on the nuisances. ``E[psi_i | X_i = x] = h(y0, y1 | x)`` when either ``pi`` or
    ``(F0, F1)`` is correct (the error is ``(pi - pi_hat)/pi_hat (F1 - F1_hat)`` minus the
    analogous control term).

    All arguments broadcast elementwise (``a, y, pi`` typically ``(n, 1)`` against ``(n, M)``
    points). ``f0_y0 = F0_hat(y0 | X_i)`` and ``f1_y1 = F1_hat(y1 | X_i)``.

    Returns:
      The broadcast pseudo-outcomes.

    Raises:
      ValueError: if the arguments do not broadcast together.

    References:
      Givens et al., NeurIPS 2024 (arXiv:2410.12454), Eq. for the DR estimator of h;
      Givens et al., ICLR 2026 (arXiv:2601.19666).
    """
    args = [jnp.asarray(v) for v in (y0, y1, a, y, pi, f0_y0, f1_y1)]
    try:
        shape = jnp.broadcast_shapes(*(v.shape for v in args))
    except ValueError as e:
        names = ("y0", "y1", "a", "y", "pi", "f0_y0", "f1_y1")
        desc = ", ".join(f"{n}{tuple(v.shape)}" for n, v in zip(names, args, strict=True))
        raise ValueError(f"pseudo_outcome: arguments do not broadcast: {desc}") from e
    y0, y1, a, y, pi, f0, f1 = (jnp.broadcast_to(v, shape) for v in args)
    treated = (jnp.where(y <= y1, 1.0, 0.0) - f1) / pi + f1 - f0
    control = -((jnp.where(y <= y0, 1.0, 0.0) - f0) / (1.0 - pi) + f0 - f1)
    return jnp.where(a == 1, treated, control)


def control_term(y0, a, y, pi, f0_y0) -> jax.Array:
    """``c_i(y0) = (1 - A_i)/(1 - pi(X_i)) (1{Y_i <= y0} - F0(y0|X_i)) + F0(y0|X_i)``.

    The part of the DR pseudo-outcome that does not depend on ``y1``:
    ``psi_i(y0, y1) = A_i/pi_i (1{Y_i <= y1} - F1(y1|X_i)) + F1(y1|X_i) - c_i(y0)``, and
    ``E[c_i(y0) | X_i = x] = F_0(y0 | x)`` if either nuisance is right.
    """
    a, y, pi, f0, y0 = (jnp.asarray(v) for v in (a, y, pi, f0_y0, y0))
    try:
        jnp.broadcast_shapes(y0.shape, a.shape, y.shape, pi.shape, f0.shape)
    except ValueError as e:
        desc = ", ".join(f"{n}{tuple(v.shape)}" for n, v in
                         zip(("y0", "a", "y", "pi", "f0_y0"), (y0, a, y, pi, f0), strict=True))
        raise ValueError(f"control_term: arguments do not broadcast: {desc}") from e
    return (1.0 - a) / (1.0 - pi) * (jnp.where(y <= y0, 1.0, 0.0) - f0) + f0


def direct_loss(g, c, a, y, pi, f1_values, grid) -> jax.Array:
    """Per-unit direct DR objective ``l_i(g; y0)`` whose derivative in ``g`` is ``psi_i``.

    Derivation. For fixed ``(y0, x)`` let ``L(g) = int_{-inf}^{g} h(y0, t | x) dt`` (plus
    any constant). ``L'(g) = h(y0, g | x) = F_1(g|x) - F_0(y0|x)`` is non-decreasing in ``g``
    and vanishes at ``g*``, so ``L`` is convex and minimized at ``g*(y0 | x)``. Integrating
    the pseudo-outcome in ``y1`` from ``t_1`` to ``g`` (with
    ``int 1{Y <= t} dt = (g - Y)_+`` up to a constant and ``G1_hat`` the antiderivative of
    ``F1_hat``) gives the per-unit objective

        l_i(g; y0) = A_i/pi(X_i) [ (g - Y_i)_+ - G1_hat(g | X_i) ] + G1_hat(g | X_i)
                     - g c_i(y0),

    ``c_i`` from :func:`control_term`. Then ``d l_i / d g = psi_i(y0, g)`` (almost every g),
    and with either nuisance correct,
    ``E[l_i(g; y0) | X_i = x] = int^g F_1(t|x) dt - g F_0(y0|x) + const = L(g) + const``,
    so the population minimizer is ``g*``. The direct estimator minimizes over theta

        R_n(theta) = 1/(n M) sum_i sum_m l_i(g_theta(y0_im, X_i); y0_im),

    where ``y0_im`` are the untreated outcomes at which the CQC is learned for unit ``i``.

    Args:
      g: ``(n, M)`` candidate values ``g_theta(y0_im, X_i)``.
      c: ``(n, M)`` values ``c_i(y0_im)``.
      a, y, pi: ``(n,)`` treatment, outcome, (clipped) propensity.
      f1_values: ``(n, K)`` ``F1_hat(. | X_i)`` on ``grid``.
      grid: ``(K,)`` uniform grid.

    Returns:
      ``(n, M)`` per-unit, per-``y0`` objective values.

    Raises:
      ValueError: on mismatched shapes.

    References:
      Givens et al., ICLR 2026, arXiv:2601.19666 (direct estimation by gradient descent on
      the DR pseudo-outcome).
    """
    g, c = jnp.asarray(g), jnp.asarray(c)
    if g.ndim != 2 or g.shape != c.shape:
        raise ValueError(f"direct_loss: g and c must both be (n, M), got {g.shape} and {c.shape}")
    n = g.shape[0]
    for name, v in (("a", a), ("y", y), ("pi", pi)):
        if jnp.shape(v) != (n,):
            raise ValueError(f"direct_loss: {name} must have shape ({n},), got {jnp.shape(v)}")
    grid = jnp.asarray(grid)
    _check_grid("direct_loss", jnp.asarray(f1_values), grid)
    return _direct_loss(g, c, a, y, pi, f1_values, cumulative_trapezoid(f1_values, grid), grid)


def _direct_loss(g, c, a, y, pi, f1_values, f1_cum, grid):
    """:func:`direct_loss` with the cumulative table of ``F1_hat`` precomputed."""
    a, y, pi = (jnp.asarray(v)[:, None] for v in (a, y, pi))
    big_g = _integrated(f1_values, f1_cum, grid, g)
    return a / pi * (jax.nn.relu(g - y) - big_g) + big_g - g * c
