"""LSTDQ: one-shot, streaming (chunked) and sharded least-squares temporal differences.

Instrumental-variable view (Amortila et al., 2026, Sec. 3): the instrument is
``Z = phi(s, a)`` and the regressor ``X = phi(s, a) - gamma * phi_bar(s')``, with
``phi_bar(s') = E_{a' ~ pi} phi(s', a')``. With ``n`` logged transitions (row weights
``w_i``, all 1 unless given; ``W = sum_i w_i``),

    A_hat = (1/W) sum_i w_i phi_i (phi_i - g_i phi_bar'_i)^T,   b_hat = (1/W) sum_i w_i phi_i r_i,
    theta_hat = (A_hat + lambda I)^{-1} b_hat,      J_hat = E_{s0~d0}[phi_bar(s0)]^T theta_hat,

where ``g_i = gamma * (1 - done_i)`` (terminal transitions carry discount 0) and
``lambda >= 0`` is an optional ridge. The estimator only needs the sufficient statistics
``(W, sum w phi phi^T, sum w phi (phi - g phi_bar')^T, sum w phi r)``; :class:`LSTDQStats`
holds them, so data that does not fit in memory is folded in chunk by chunk
(:func:`update_stats`), partial statistics from several workers are added
(:func:`merge_stats`, or :func:`sharded_stats` with a ``psum`` over a device mesh, padding
with weight 0 so no row count is inflated), and :func:`solve` gives the same ``theta_hat``
as the one-shot :func:`lstdq`.

A singular ``A_hat`` is reported, never silently turned into numbers: ``on_singular``
chooses between raising (the default: a ``ValueError`` on concrete inputs; under
``jax.jit``/``vmap``, where Python cannot raise, a :func:`jax.experimental.checkify` check
that ``checkify.checkify`` turns into an error, and NaN weights otherwise), NaN weights, or
the minimum-norm least-squares solution; ``return_info=True`` adds a traced-safe
:class:`SolveInfo` with an ``ok`` flag. :func:`value_interval` gives the plug-in standard
error and confidence interval of ``J_hat``.

References:
  P. Amortila, A. Huang, A. Krishnamurthy, N. Jiang. A Unifying View of Coverage in Linear
  Off-Policy Evaluation. ICLR 2026, arXiv:2601.19030.
  M. G. Lagoudakis, R. Parr. Least-Squares Policy Iteration. JMLR 2003 (LSTDQ).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.scipy.special import ndtri

from lstdq import _validate as V

__all__ = [
    "LSTDQStats",
    "SolveInfo",
    "ValueInterval",
    "compute_stats",
    "init_stats",
    "lstdq",
    "merge_stats",
    "sharded_stats",
    "solve",
    "update_stats",
    "value",
    "value_interval",
]


class LSTDQStats(NamedTuple):
    """Sufficient statistics of LSTDQ, as (weighted) sums over rows (add two to merge them).

    Attributes:
      count: scalar in the sums' float dtype, ``W = sum_i w_i`` (the number of rows when no
        weights are given). A float never wraps (an int32 count wrapped at ``2**31`` rows);
        it counts rows exactly up to ``2**24`` in float32 and ``2**53`` in float64, and
        beyond that its relative rounding (``~6e-8`` per addition in float32) is that of the
        sums themselves.
      sigma: ``(d, d)``, ``sum_i w_i phi_i phi_i^T`` (``W * Sigma_hat``).
      a: ``(d, d)``, ``sum_i w_i phi_i (phi_i - g_i phi_bar'_i)^T`` (``W * A_hat``).
      b: ``(d,)``, ``sum_i w_i phi_i r_i`` (``W * b_hat``).
    """

    count: jax.Array
    sigma: jax.Array
    a: jax.Array
    b: jax.Array

    @property
    def dim(self) -> int:
        return int(self.b.shape[-1])

    def means(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(Sigma_hat, A_hat, b_hat)``: the sums divided by ``count``."""
        xp = np if isinstance(self.sigma, np.ndarray) else jnp
        n = xp.where(self.count > 0, self.count, 1).astype(self.sigma.dtype)
        return self.sigma / n, self.a / n, self.b / n


class SolveInfo(NamedTuple):
    """Status of a solve (traced-safe: arrays, batched under ``vmap``).

    Attributes:
      ok: whether ``A_hat + ridge I`` was numerically nonsingular (``sigma_min > sigma_max *
        d * eps``) and ``theta_hat`` finite.
      sigma_min, sigma_max: extreme singular values of ``A_hat + ridge I``.
    """

    ok: jax.Array
    sigma_min: jax.Array
    sigma_max: jax.Array


def _float_dtype(*arrays) -> jnp.dtype:
    dt = np.result_type(*[a.dtype for a in arrays], np.float32)  # ints -> float
    return jax.dtypes.canonicalize_dtype(dt)  # float64 -> float32 unless x64 is on


def init_stats(dim: int, dtype=None) -> LSTDQStats:
    """Zero statistics for features of dimension ``dim``.

    Args:
      dim: feature dimension ``d`` (positive int).
      dtype: float dtype of the sums and the count (default: JAX's default float).

    Raises:
      ValueError: if ``dim`` is not a positive integer.
    """
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim <= 0:
        raise ValueError(f"init_stats: dim must be a positive int, got {dim!r}")
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"init_stats: dtype must be a float dtype, got {dtype}")
    d = int(dim)
    return LSTDQStats(
        count=jnp.zeros((), dtype),
        sigma=jnp.zeros((d, d), dtype),
        a=jnp.zeros((d, d), dtype),
        b=jnp.zeros((d,), dtype),
    )


def _mm(x, y):
    """Full-float32 products: no TF32/bf16 passes on accelerators (the sums are estimates)."""
    return jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST)


def _chunk_sums(features, rewards, discounts, next_features, weights, dtype):
    f = features.astype(dtype)
    x = f - discounts.astype(dtype)[:, None] * next_features.astype(dtype)
    fw = f if weights is None else f * weights.astype(dtype)[:, None]
    # One (d, n) @ (n, 2d) product gives both d x d sums.
    both = _mm(fw.T, jnp.concatenate([f, x], axis=1))
    d = f.shape[1]
    count = (jnp.asarray(f.shape[0], dtype) if weights is None
             else jnp.sum(weights.astype(dtype)))
    return count, both[:, :d], both[:, d:], _mm(fw.T, rewards.astype(dtype))


@jax.jit
def _update(stats, features, rewards, discounts, next_features, weights):
    c, s, a, b = _chunk_sums(features, rewards, discounts, next_features, weights,
                             stats.sigma.dtype)
    return LSTDQStats(count=stats.count + c.astype(stats.count.dtype), sigma=stats.sigma + s,
                      a=stats.a + a, b=stats.b + b)


def _check_stats(fn: str, stats, name: str = "stats") -> None:
    if not isinstance(stats, LSTDQStats):
        raise TypeError(f"{fn}: {name} must be an LSTDQStats, got {type(stats).__name__}")
    d = stats.b.shape[-1] if stats.b.ndim == 1 else None
    if d is None or tuple(stats.sigma.shape) != (d, d) or tuple(stats.a.shape) != (d, d):
        raise ValueError(
            f"{fn}: {name} has inconsistent shapes sigma={tuple(stats.sigma.shape)}, "
            f"a={tuple(stats.a.shape)}, b={tuple(stats.b.shape)}; expected (d, d), (d, d), (d,)"
        )


def _transitions(fn, features, rewards, discounts, next_features, weights):
    features, rewards, discounts, next_features = V.check_transitions(
        fn, features, rewards, discounts, next_features)
    if weights is not None:
        weights = V.check_weights(fn, weights, features.shape[0])
    return features, rewards, discounts, next_features, weights


def update_stats(
    stats: LSTDQStats,
    features: jax.typing.ArrayLike,
    rewards: jax.typing.ArrayLike,
    discounts: jax.typing.ArrayLike,
    next_features: jax.typing.ArrayLike,
    weights: jax.typing.ArrayLike | None = None,
) -> LSTDQStats:
    """Folds one chunk of transitions into the statistics (pure; returns new stats).

    ``count += sum w``, ``sigma += sum w phi phi^T``, ``a += sum w phi (phi - g phi_bar')^T``,
    ``b += sum w phi r``.

    Args:
      stats: the statistics so far (from :func:`init_stats`).
      features: ``(m, d)`` rows ``phi(s_i, a_i)``.
      rewards: ``(m,)`` rewards ``r_i``.
      discounts: ``(m,)`` ``g_i = gamma * (1 - done_i)`` in ``[0, 1]``.
      next_features: ``(m, d)`` rows ``phi_bar(s'_i) = E_{a'~pi} phi(s'_i, a')`` (or
        ``phi(s'_i, a'_i)`` for one sampled ``a'_i ~ pi``).
      weights: optional ``(m,)`` row weights ``>= 0`` (a 0/1 mask drops padding rows).

    Returns:
      The updated :class:`LSTDQStats`.

    Raises:
      ValueError: mismatched rows or dimension, an empty chunk, non-finite values,
        discounts outside ``[0, 1]`` or negative weights.
    """
    _check_stats("update_stats", stats)
    features, rewards, discounts, next_features, weights = _transitions(
        "update_stats", features, rewards, discounts, next_features, weights)
    if features.shape[1] != stats.dim:
        raise ValueError(
            f"update_stats: stats has dimension {stats.dim} but features has shape "
            f"{tuple(features.shape)}"
        )
    return _update(stats, features, rewards, discounts, next_features, weights)


def compute_stats(features, rewards, discounts, next_features, weights=None) -> LSTDQStats:
    """Statistics of one in-memory batch (``update_stats(init_stats(d), ...)``).

    Args/Raises: as :func:`update_stats`.
    """
    features, rewards, discounts, next_features, weights = _transitions(
        "compute_stats", features, rewards, discounts, next_features, weights)
    dtype = _float_dtype(features, next_features)
    return _update(init_stats(int(features.shape[1]), dtype), features, rewards, discounts,
                   next_features, weights)


def merge_stats(first: LSTDQStats, second: LSTDQStats) -> LSTDQStats:
    """Adds two sets of statistics (from disjoint chunks of the same dataset).

    Raises:
      TypeError/ValueError: if either is not an :class:`LSTDQStats` or dimensions differ.
    """
    _check_stats("merge_stats", first, "first")
    _check_stats("merge_stats", second, "second")
    if first.dim != second.dim:
        raise ValueError(
            f"merge_stats: first has dimension {first.dim} but second has {second.dim}"
        )
    return jax.tree.map(jnp.add, first, second)


def _is_global(x, sharding) -> bool:
    return isinstance(x, jax.Array) and x.sharding == sharding


def _place(x, sharding, local_k: int):
    """A host array of this process's rows, padded with zeros to a multiple of the devices
    this process holds on the axis, as one global array (``make_array_from_process_local_data``;
    on one process that is the whole array)."""
    x = np.asarray(x)
    pad = (-x.shape[0]) % local_k
    if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    return jax.make_array_from_process_local_data(sharding, x)


def sharded_stats(
    features, rewards, discounts, next_features, mesh: jax.sharding.Mesh, *,
    weights=None, axis_name: str = "data",
) -> LSTDQStats:
    """Statistics of a batch whose rows are split over the devices of ``mesh``.

    Each device sums its own rows; one ``psum`` over ``axis_name`` adds the partial sums, so
    the result (replicated on every device) equals :func:`compute_stats` of all rows.

    Input: global ``jax.Array`` s already sharded as ``NamedSharding(mesh, P(axis_name))``
    (with a row count divisible by the axis size) are used as they are. Host arrays are this
    process's rows: with several processes (multi-host), each process passes its own rows
    (the same number on every process) and the global arrays are built with
    ``jax.make_array_from_process_local_data``; on one process they are simply all rows. Host
    rows are padded to a multiple of the local devices with **weight 0**, so padding changes
    neither the sums nor ``count`` (padding by hand with zero rows would inflate ``count``
    and bias ``means()`` and the plug-in coverage by ``n_pad / n``).

    Args:
      features, rewards, discounts, next_features: as :func:`update_stats`.
      mesh: a ``jax.sharding.Mesh`` with an axis ``axis_name``.
      weights: optional ``(n,)`` row weights ``>= 0`` (a mask: 0 drops a row).
      axis_name: the mesh axis the rows are split over.

    Raises:
      ValueError: as :func:`update_stats`, an unknown axis, or pre-sharded global arrays
        whose rows do not divide over the axis.
    """
    fn = "sharded_stats"
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"{fn}: mesh must be a jax.sharding.Mesh, got {type(mesh)}")
    if axis_name not in mesh.axis_names:
        raise ValueError(
            f"{fn}: axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
    features, rewards, discounts, next_features, weights = _transitions(
        fn, features, rewards, discounts, next_features, weights)
    sharding = jax.NamedSharding(mesh, jax.P(axis_name))
    k = mesh.shape[axis_name]
    local_k = mesh.local_mesh.shape[axis_name] if jax.process_count() > 1 else k
    arrays = [features, rewards, discounts, next_features]
    if all(_is_global(x, sharding) for x in arrays):
        n = features.shape[0]
        if n % k:
            raise ValueError(f"{fn}: global arrays of {n} rows do not divide over the {k} "
                             f"devices of mesh axis {axis_name!r}; pass host arrays (padded "
                             "with weight 0 for you) or pad with weights=0")
        if weights is None:
            weights = jax.make_array_from_callback(
                (n,), sharding, lambda idx: np.ones(n, np.float32)[idx])
        elif not _is_global(weights, sharding):
            weights = jax.device_put(jnp.asarray(weights), sharding)
        placed = [*arrays, weights]
    else:
        n_local = int(np.shape(features)[0])
        w = np.ones(n_local, np.float32) if weights is None else np.asarray(weights)
        placed = [_place(x, sharding, local_k) for x in (*arrays, w)]
    dtype = _float_dtype(features, next_features)

    def local(f, r, g, fn_, w):
        return jax.lax.psum(_chunk_sums(f, r, g, fn_, w, dtype), axis_name)

    spec = jax.P(axis_name)
    summed = jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 5,
                           out_specs=(jax.P(),) * 4)
    c, s, a, b = jax.jit(summed)(*placed)
    return LSTDQStats(count=c, sigma=s, a=a, b=b)


_SINGULAR_MSG = ("lstdq: A_hat{ridge} is singular (sigma_min={smin:.3g}, sigma_max={smax:.3g}, "
                 "d={d}); the data do not identify theta. Pass ridge > 0 (e.g. "
                 "ridge={hint:.1g}), use features that are linearly independent on the data, or "
                 "on_singular='lstsq' for the minimum-norm solution")


@functools.partial(jax.jit, static_argnames=("mode",))
def _solve(stats: LSTDQStats, ridge, mode: str):
    _, a, b = stats.means()
    d = b.shape[0]
    a = a + ridge * jnp.eye(d, dtype=a.dtype)
    u, s, vt = jnp.linalg.svd(a)
    smax, smin = s[0], s[-1]
    tol = smax * d * jnp.finfo(a.dtype).eps
    theta = jnp.linalg.solve(a, b)
    ok = (stats.count > 0) & jnp.isfinite(smax) & (smin > tol) & jnp.all(jnp.isfinite(theta))
    if mode == "lstsq":
        inv = jnp.where(s > tol, 1.0 / jnp.where(s > tol, s, 1.0), 0.0)
        theta = jnp.where(ok, theta, vt.T @ (inv * (u.T @ b)))
    else:
        theta = jnp.where(ok, theta, jnp.nan)
    return theta, SolveInfo(ok, smin, smax)


def _solve_host(stats: LSTDQStats, ridge: float, mode: str):
    """:func:`_solve` in float64 NumPy (statistics kept in float64 without JAX's x64)."""
    _, a, b = stats.means()
    d = b.shape[0]
    a = a + ridge * np.eye(d)
    u, s, vt = np.linalg.svd(a)
    smax, smin = s[0], s[-1]
    tol = smax * d * np.finfo(np.float64).eps
    ok = bool(stats.count > 0 and np.isfinite(smax) and smin > tol)
    theta = np.linalg.solve(a, b) if ok else np.full(d, np.nan)
    ok = ok and bool(np.all(np.isfinite(theta)))
    if not ok and mode == "lstsq":
        inv = np.where(s > tol, 1.0 / np.where(s > tol, s, 1.0), 0.0)
        theta = vt.T @ (inv * (u.T @ b))
    elif not ok:
        theta = np.full(d, np.nan)
    return theta, SolveInfo(np.bool_(ok), np.float64(smin), np.float64(smax))


def _host_float64(stats: LSTDQStats) -> bool:
    return (not jax.config.jax_enable_x64
            and all(isinstance(x, np.ndarray | np.generic) for x in stats)
            and any(np.asarray(x).dtype == np.float64 for x in stats[1:]))


def solve(stats: LSTDQStats, *, ridge: float = 0.0, on_singular: str = "raise",
          return_info: bool = False):
    """``theta_hat = (A_hat + ridge I)^{-1} b_hat`` from accumulated statistics.

    Statistics in float64 NumPy arrays (e.g. :func:`lstdq.population_stats`) are solved in
    float64 even when JAX runs in float32 (on the host, returning NumPy); anything else is
    solved with JAX in the statistics' dtype.

    Args:
      stats: statistics with ``count > 0``.
      ridge: ``lambda >= 0`` added to the diagonal of ``A_hat``.
      on_singular: what a numerically singular ``A_hat + ridge I`` gives: ``"raise"`` (a
        ``ValueError`` on concrete inputs; inside ``jax.jit``/``vmap`` a
        ``checkify.debug_check``, reported when the caller is wrapped in
        ``jax.experimental.checkify.checkify``, and NaN weights), ``"nan"`` (NaN weights,
        never an error) or ``"lstsq"`` (the minimum-norm least-squares solution, singular
        values below ``sigma_max * d * eps`` dropped).
      return_info: also return a :class:`SolveInfo` (the ``ok`` flag and singular values).

    Returns:
      ``theta_hat`` of shape ``(d,)``, and the :class:`SolveInfo` with ``return_info``.

    Raises:
      ValueError: empty ``stats``, negative ``ridge``, an unknown ``on_singular``, or (with
        ``"raise"``, concrete inputs) a singular ``A_hat + ridge I``; the message gives its
        singular values and suggests ``ridge``.
    """
    _check_stats("solve", stats)
    ridge = V.check_ridge("solve", ridge)
    mode = V.check_on_singular("solve", on_singular)
    if V.is_concrete(stats.count) and float(stats.count) <= 0:
        raise ValueError("solve: stats holds no rows (count=0); the dataset is empty")
    if _host_float64(stats):
        host = LSTDQStats(*(np.asarray(x, np.float64) for x in stats))
        theta, info = _solve_host(host, ridge, mode)
    else:
        stats = LSTDQStats(*(jnp.asarray(x) for x in stats))
        theta, info = _solve(stats, jnp.asarray(ridge, stats.a.dtype), mode)
    if mode == "raise":
        fmt = dict(ridge=" + ridge*I" if ridge else "", d=stats.dim)
        if V.is_concrete(info.ok):
            if not bool(info.ok):
                smax = float(info.sigma_max)
                raise ValueError(_SINGULAR_MSG.format(smin=float(info.sigma_min), smax=smax,
                                                      hint=max(smax, 1.0) * 1e-4, **fmt))
        else:
            checkify.debug_check(
                info.ok, "lstdq: A_hat is singular (sigma_min={smin}, sigma_max={smax}); pass "
                "ridge > 0 or on_singular='lstsq'", smin=info.sigma_min, smax=info.sigma_max)
    return (theta, info) if return_info else theta


def lstdq(
    features: jax.typing.ArrayLike,
    rewards: jax.typing.ArrayLike,
    discounts: jax.typing.ArrayLike,
    next_features: jax.typing.ArrayLike,
    *,
    ridge: float = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    on_singular: str = "raise",
    return_info: bool = False,
):
    """One-shot LSTDQ: ``theta_hat = (A_hat + ridge I)^{-1} b_hat``.

    ``A_hat = (1/W) sum w phi (phi - g phi_bar')^T`` and ``b_hat = (1/W) sum w phi r`` (see
    the module docstring). ``Q_hat(s, a) = phi(s, a)^T theta_hat``.

    Args:
      features: ``(n, d)`` ``phi(s_i, a_i)``.
      rewards: ``(n,)``.
      discounts: ``(n,)``, ``gamma * (1 - done_i)`` in ``[0, 1]``.
      next_features: ``(n, d)`` ``phi_bar(s'_i)`` (expected under ``pi``, or one sampled
        ``a'_i ~ pi``).
      ridge: ``lambda >= 0``.
      weights: optional ``(n,)`` row weights ``>= 0``.
      on_singular, return_info: as :func:`solve`.

    Returns:
      ``theta_hat`` of shape ``(d,)`` (and a :class:`SolveInfo` with ``return_info``).

    Raises:
      ValueError: mismatched row counts, an empty dataset, non-finite features or
        rewards, discounts outside ``[0, 1]``, or (``on_singular="raise"``) a singular
        ``A_hat`` (suggesting ``ridge``).

    References:
      Amortila, Huang, Krishnamurthy, Jiang (ICLR 2026), arXiv:2601.19030, Sec. 3.
    """
    features, rewards, discounts, next_features, weights = _transitions(
        "lstdq", features, rewards, discounts, next_features, weights)
    ridge = V.check_ridge("lstdq", ridge)
    return solve(_ab_stats(features, rewards, discounts, next_features, weights), ridge=ridge,
                 on_singular=on_singular, return_info=return_info)


@jax.jit
def _ab_stats(features, rewards, discounts, next_features, weights) -> LSTDQStats:
    """Only ``A`` and ``b`` (``sigma`` left zero): what the one-shot solve needs, one GEMM."""
    dtype = _float_dtype(features, next_features)
    f = features.astype(dtype)
    x = f - discounts.astype(dtype)[:, None] * next_features.astype(dtype)
    fw = f if weights is None else f * weights.astype(dtype)[:, None]
    count = (jnp.asarray(f.shape[0], dtype) if weights is None
             else jnp.sum(weights.astype(dtype)))
    d = f.shape[1]
    return LSTDQStats(count=count, sigma=jnp.zeros((d, d), dtype), a=_mm(fw.T, x),
                      b=_mm(fw.T, rewards.astype(dtype)))


def value(theta: jax.typing.ArrayLike, init_features: jax.typing.ArrayLike) -> jax.Array:
    """Policy value ``J_hat(pi) = E_{s0 ~ d0}[phi_bar(s0)]^T theta``.

    Args:
      theta: ``(d,)`` weights.
      init_features: ``(d,)`` the mean ``E_{d0}[phi_bar(s0)]``, or ``(m, d)`` rows
        ``phi_bar(s0_j)`` for sampled initial states (averaged).

    Returns:
      Scalar estimate (float64 NumPy when both inputs are float64 NumPy and JAX's x64 is
      off, so float64 statistics are not rounded to float32 here either).

    Raises:
      ValueError: on shape mismatch, an empty set of initial states or non-finite input.
    """
    theta = V.as_array("value", "theta", theta)
    init_features = V.as_array("value", "init_features", init_features)
    V.check_ndim("value", "theta", theta, 1)
    if init_features.ndim not in (1, 2) or init_features.shape[-1] != theta.shape[0]:
        raise ValueError(
            f"value: init_features must have shape ({theta.shape[0]},) or (m, "
            f"{theta.shape[0]}) to match theta, got {tuple(init_features.shape)}"
        )
    if init_features.ndim == 2 and init_features.shape[0] == 0:
        raise ValueError("value: init_features has no rows (no initial states)")
    V.check_finite("value", "theta", theta)
    V.check_finite("value", "init_features", init_features)
    if (not jax.config.jax_enable_x64 and isinstance(theta, np.ndarray)
            and isinstance(init_features, np.ndarray) and theta.dtype == np.float64):
        mean = init_features if init_features.ndim == 1 else init_features.mean(axis=0)
        return np.float64(np.dot(mean.astype(np.float64), theta))
    mean = init_features if init_features.ndim == 1 else jnp.mean(init_features, axis=0)
    return jnp.dot(jnp.asarray(mean), jnp.asarray(theta))


class ValueInterval(NamedTuple):
    """``J_hat`` with its plug-in standard error and a normal confidence interval.

    Attributes:
      value: ``J_hat``. se: the plug-in standard error. lower, upper: ``J_hat -/+ z se``.
      theta: ``theta_hat``. info: the :class:`SolveInfo` of the solve.
    """

    value: jax.Array
    se: jax.Array
    lower: jax.Array
    upper: jax.Array
    theta: jax.Array
    info: SolveInfo


@functools.partial(jax.jit, static_argnames=("level", "mode"))
def _interval(features, rewards, discounts, next_features, weights, x0, ridge, level, mode):
    dtype = _float_dtype(features, next_features)
    f = features.astype(dtype)
    x = f - discounts.astype(dtype)[:, None] * next_features.astype(dtype)
    r = rewards.astype(dtype)
    w = jnp.ones(f.shape[0], dtype) if weights is None else weights.astype(dtype)
    stats = LSTDQStats(jnp.sum(w), jnp.zeros((f.shape[1],) * 2, dtype), _mm((f * w[:, None]).T, x),
                       _mm((f * w[:, None]).T, r))
    theta, info = _solve(stats, ridge, mode)
    _, a, _ = stats.means()
    a = a + ridge * jnp.eye(f.shape[1], dtype=dtype)
    u = jnp.linalg.solve(a.T, x0.astype(dtype))  # (A_hat + lambda I)^{-T} x0
    delta = r - _mm(x, theta)  # TD errors
    psi = _mm(f, u) * delta - ridge * jnp.dot(u, theta)  # u^T (phi_i delta_i - lambda theta)
    big_w = jnp.sum(w)
    centred = psi - jnp.sum(w * psi) / big_w
    se = jnp.sqrt(jnp.sum(w * centred**2)) / big_w
    j = jnp.dot(x0.astype(dtype), theta)
    z = ndtri(0.5 + level / 2.0).astype(dtype)
    return ValueInterval(j, se, j - z * se, j + z * se, theta, info)


def value_interval(features, rewards, discounts, next_features, init_features, *,
                   ridge: float = 0.0, weights=None, level: float = 0.95,
                   on_singular: str = "raise") -> ValueInterval:
    """``J_hat`` with its plug-in (sandwich) standard error and confidence interval.

    To first order ``J_hat - J = u^T (1/W) sum_i w_i psi_i`` with
    ``u = (A_hat + lambda I)^{-T} x0``, ``x0 = E_{d0}[phi_bar(s0)]``,
    ``psi_i = phi_i delta_i - lambda theta_hat`` and the TD errors
    ``delta_i = r_i - (phi_i - g_i phi_bar'_i)^T theta_hat`` (``u^T phi_i`` is the
    paper's ``nu^T Sigma^{-1} phi_i / (1 - gamma)``, so ``Var(J_hat) <= V^2 C^pi_phi / n``).
    The plug-in variance is ``sum_i w_i (u^T psi_i - mean)^2 / W^2`` (weights act as
    frequencies), the interval ``J_hat +/- z_{(1+level)/2} se``. It is valid once ``n`` is
    past the burn-in the paper's bounds need (large next to ``1/sigma_min(A)``); with a
    ridge it is the interval of the ridge-regularized ``J``. Rows are needed again (a second
    pass), so this takes the data, not :class:`LSTDQStats`.

    Args:
      features, rewards, discounts, next_features: as :func:`lstdq`.
      init_features: ``(d,)`` ``x0``, or ``(m, d)`` rows ``phi_bar(s0_j)`` (averaged).
      ridge, weights, on_singular: as :func:`lstdq`.
      level: confidence level in (0, 1).

    Returns:
      :class:`ValueInterval`.

    Raises:
      ValueError: as :func:`lstdq`, a bad ``init_features`` or ``level``.

    References:
      Amortila, Huang, Krishnamurthy, Jiang (ICLR 2026), arXiv:2601.19030 (first-order
      error of LSTDQ); Duan, Jia, Wang, ICML 2020 (asymptotic normality of linear OPE).
    """
    fn = "value_interval"
    features, rewards, discounts, next_features, weights = _transitions(
        fn, features, rewards, discounts, next_features, weights)
    ridge = V.check_ridge(fn, ridge)
    mode = V.check_on_singular(fn, on_singular)
    if not (isinstance(level, float | int) and 0.0 < level < 1.0):
        raise ValueError(f"{fn}: level must be a float in (0, 1), got {level!r}")
    x0 = V.as_array(fn, "init_features", init_features)
    d = features.shape[1]
    if x0.ndim not in (1, 2) or x0.shape[-1] != d or (x0.ndim == 2 and x0.shape[0] == 0):
        raise ValueError(f"{fn}: init_features must have shape ({d},) or (m, {d}) with m >= 1, "
                         f"got {tuple(x0.shape)}")
    V.check_finite(fn, "init_features", x0)
    x0 = jnp.asarray(x0)
    x0 = x0 if x0.ndim == 1 else jnp.mean(x0, axis=0)
    out = _interval(features, rewards, discounts, next_features, weights, x0,
                    jnp.asarray(ridge, _float_dtype(features, next_features)), float(level),
                    "nan" if mode == "raise" else mode)
    if mode == "raise" and V.is_concrete(out.info.ok) and not bool(out.info.ok):
        smax = float(out.info.sigma_max)
        raise ValueError(_SINGULAR_MSG.format(smin=float(out.info.sigma_min), smax=smax, d=d,
                                              ridge=" + ridge*I" if ridge else "",
                                              hint=max(smax, 1.0) * 1e-4))
    if mode == "raise" and not V.is_concrete(out.info.ok):
        checkify.debug_check(out.info.ok, "lstdq: A_hat is singular; pass ridge > 0")
    return out
