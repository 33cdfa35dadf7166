"""LSTDQ: one-shot, streaming (chunked) and sharded least-squares temporal differences.

Instrumental-variable view (Amortila et al., 2026, Sec. 3): the instrument is
``Z = phi(s, a)`` and the regressor ``X = phi(s, a) - gamma * phi_bar(s')``, with
``phi_bar(s') = E_{a' ~ pi} phi(s', a')``. With ``n`` logged transitions,

    A_hat = (1/n) sum_i phi_i (phi_i - g_i phi_bar'_i)^T,     b_hat = (1/n) sum_i phi_i r_i,
    theta_hat = (A_hat + lambda I)^{-1} b_hat,      J_hat = E_{s0~d0}[phi_bar(s0)]^T theta_hat,

where ``g_i = gamma * (1 - done_i)`` (terminal transitions carry discount 0) and
``lambda >= 0`` is an optional ridge. The estimator only needs the sufficient statistics
``(n, sum phi phi^T, sum phi (phi - g phi_bar')^T, sum phi r)``; :class:`LSTDQStats` holds
them, so data that does not fit in memory is folded in chunk by chunk
(:func:`update_stats`), partial statistics from several workers are added
(:func:`merge_stats`, or :func:`sharded_stats` with a ``psum`` over a device mesh), and
:func:`solve` gives the same ``theta_hat`` as the one-shot :func:`lstdq`.

References:
  P. Amortila, A. Huang, A. Krishnamurthy, N. Jiang. A Unifying View of Coverage in Linear
  Off-Policy Evaluation. ICLR 2026, arXiv:2601.19030.
  M. G. Lagoudakis, R. Parr. Least-Squares Policy Iteration. JMLR 2003 (LSTDQ).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstdq import _validate as V

__all__ = [
    "LSTDQStats",
    "compute_stats",
    "init_stats",
    "lstdq",
    "merge_stats",
    "sharded_stats",
    "solve",
    "update_stats",
    "value",
]


class LSTDQStats(NamedTuple):
    """Sufficient statistics of LSTDQ, as sums over rows (add two to merge them).

    Attributes:
      count: int32 scalar, number of rows folded in (``n``; at most ``2**31 - 1``).
      sigma: ``(d, d)``, ``sum_i phi_i phi_i^T`` (``n * Sigma_hat``).
      a: ``(d, d)``, ``sum_i phi_i (phi_i - g_i phi_bar'_i)^T`` (``n * A_hat``).
      b: ``(d,)``, ``sum_i phi_i r_i`` (``n * b_hat``).
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
        n = jnp.maximum(self.count, 1).astype(self.sigma.dtype)
        return self.sigma / n, self.a / n, self.b / n


def _float_dtype(*arrays) -> jnp.dtype:
    dt = np.result_type(*[a.dtype for a in arrays], np.float32)  # ints -> float
    return jax.dtypes.canonicalize_dtype(dt)  # float64 -> float32 unless x64 is on


def init_stats(dim: int, dtype=None) -> LSTDQStats:
    """Zero statistics for features of dimension ``dim``.

    Args:
      dim: feature dimension ``d`` (positive int).
      dtype: float dtype of the sums (default: JAX's default float).

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
        count=jnp.zeros((), jnp.int32),
        sigma=jnp.zeros((d, d), dtype),
        a=jnp.zeros((d, d), dtype),
        b=jnp.zeros((d,), dtype),
    )


def _mm(x, y):
    """Full-float32 products: no TF32/bf16 passes on accelerators (the sums are estimates)."""
    return jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST)


def _chunk_sums(features, rewards, discounts, next_features, dtype):
    f = features.astype(dtype)
    x = f - discounts.astype(dtype)[:, None] * next_features.astype(dtype)
    # One (d, n) @ (n, 2d) product gives both d x d sums.
    both = _mm(f.T, jnp.concatenate([f, x], axis=1))
    d = f.shape[1]
    return both[:, :d], both[:, d:], _mm(f.T, rewards.astype(dtype))


@jax.jit
def _update(stats, features, rewards, discounts, next_features):
    s, a, b = _chunk_sums(features, rewards, discounts, next_features, stats.sigma.dtype)
    return LSTDQStats(
        count=stats.count + jnp.asarray(features.shape[0], jnp.int32),
        sigma=stats.sigma + s,
        a=stats.a + a,
        b=stats.b + b,
    )


def _check_stats(fn: str, stats, name: str = "stats") -> None:
    if not isinstance(stats, LSTDQStats):
        raise TypeError(f"{fn}: {name} must be an LSTDQStats, got {type(stats).__name__}")
    d = stats.b.shape[-1] if stats.b.ndim == 1 else None
    if d is None or tuple(stats.sigma.shape) != (d, d) or tuple(stats.a.shape) != (d, d):
        raise ValueError(
            f"{fn}: {name} has inconsistent shapes sigma={tuple(stats.sigma.shape)}, "
            f"a={tuple(stats.a.shape)}, b={tuple(stats.b.shape)}; expected (d, d), (d, d), (d,)"
        )


def update_stats(
    stats: LSTDQStats,
    features: jax.typing.ArrayLike,
    rewards: jax.typing.ArrayLike,
    discounts: jax.typing.ArrayLike,
    next_features: jax.typing.ArrayLike,
) -> LSTDQStats:
    """Folds one chunk of transitions into the statistics (pure; returns new stats).

    ``sigma += sum phi phi^T``, ``a += sum phi (phi - g phi_bar')^T``, ``b += sum phi r``.

    Args:
      stats: the statistics so far (from :func:`init_stats`).
      features: ``(m, d)`` rows ``phi(s_i, a_i)``.
      rewards: ``(m,)`` rewards ``r_i``.
      discounts: ``(m,)`` ``g_i = gamma * (1 - done_i)`` in ``[0, 1]``.
      next_features: ``(m, d)`` rows ``phi_bar(s'_i) = E_{a'~pi} phi(s'_i, a')`` (or
        ``phi(s'_i, a'_i)`` for one sampled ``a'_i ~ pi``).

    Returns:
      The updated :class:`LSTDQStats`.

    Raises:
      ValueError: mismatched rows or dimension, an empty chunk, non-finite values or
        discounts outside ``[0, 1]``.
    """
    _check_stats("update_stats", stats)
    features, rewards, discounts, next_features = V.check_transitions(
        "update_stats", features, rewards, discounts, next_features
    )
    if features.shape[1] != stats.dim:
        raise ValueError(
            f"update_stats: stats has dimension {stats.dim} but features has shape "
            f"{tuple(features.shape)}"
        )
    return _update(stats, features, rewards, discounts, next_features)


def compute_stats(features, rewards, discounts, next_features) -> LSTDQStats:
    """Statistics of one in-memory batch (``update_stats(init_stats(d), ...)``).

    Args/Raises: as :func:`update_stats`.
    """
    features, rewards, discounts, next_features = V.check_transitions(
        "compute_stats", features, rewards, discounts, next_features
    )
    dtype = _float_dtype(features, next_features)
    return _update(init_stats(int(features.shape[1]), dtype), features, rewards, discounts,
                   next_features)


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


def sharded_stats(
    features, rewards, discounts, next_features, mesh: jax.sharding.Mesh, *,
    axis_name: str = "data",
) -> LSTDQStats:
    """Statistics of a batch whose rows are split over the devices of ``mesh``.

    Each device sums its own rows; one ``psum`` over ``axis_name`` adds the partial
    sums, so the result (replicated on every device) equals :func:`compute_stats`.

    Args:
      features, rewards, discounts, next_features: as :func:`update_stats`; the row count
        must be divisible by the size of the mesh axis.
      mesh: a ``jax.sharding.Mesh`` with an axis ``axis_name``.
      axis_name: the mesh axis the rows are split over.

    Raises:
      ValueError: as :func:`update_stats`, an unknown axis, or rows not divisible by the
        number of devices on the axis.
    """
    features, rewards, discounts, next_features = V.check_transitions(
        "sharded_stats", features, rewards, discounts, next_features
    )
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"sharded_stats: mesh must be a jax.sharding.Mesh, got {type(mesh)}")
    if axis_name not in mesh.axis_names:
        raise ValueError(
            f"sharded_stats: axis_name {axis_name!r} is not an axis of the mesh "
            f"{mesh.axis_names}"
        )
    k = mesh.shape[axis_name]
    n = features.shape[0]
    if n % k:
        raise ValueError(
            f"sharded_stats: {n} rows are not divisible by the {k} devices of mesh axis "
            f"{axis_name!r}; pad or drop rows"
        )
    dtype = _float_dtype(features, next_features)

    def local(f, r, g, fn):
        s, a, b = _chunk_sums(f, r, g, fn, dtype)
        s, a, b = jax.lax.psum((s, a, b), axis_name)
        return s, a, b

    spec = jax.P(axis_name)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec, spec),
                       out_specs=(jax.P(), jax.P(), jax.P()))
    placed = [jax.device_put(x, jax.NamedSharding(mesh, spec))
              for x in (features, rewards, discounts, next_features)]
    s, a, b = jax.jit(fn)(*placed)
    return LSTDQStats(count=jnp.asarray(n, jnp.int32), sigma=s, a=a, b=b)


@jax.jit
def _solve(stats: LSTDQStats, ridge):
    _, a, b = stats.means()
    d = b.shape[0]
    a = a + ridge * jnp.eye(d, dtype=a.dtype)
    theta = jnp.linalg.solve(a, b)
    sv = jnp.linalg.svd(a, compute_uv=False)
    return theta, sv[0], sv[-1]


def solve(stats: LSTDQStats, *, ridge: float = 0.0) -> jax.Array:
    """``theta_hat = (A_hat + ridge I)^{-1} b_hat`` from accumulated statistics.

    Args:
      stats: statistics with ``count > 0``.
      ridge: ``lambda >= 0`` added to the diagonal of ``A_hat``.

    Returns:
      ``theta_hat``, shape ``(d,)``.

    Raises:
      ValueError: if ``stats`` is empty, ``ridge`` is negative, or ``A_hat + ridge I`` is
        numerically singular (the message gives its singular values and suggests ``ridge``).
    """
    _check_stats("solve", stats)
    ridge = V.check_ridge("solve", ridge)
    if V.is_concrete(stats.count) and int(stats.count) <= 0:
        raise ValueError("solve: stats holds no rows (count=0); the dataset is empty")
    stats = LSTDQStats(*(jnp.asarray(x) for x in stats))
    theta, smax, smin = _solve(stats, jnp.asarray(ridge, stats.a.dtype))
    if V.is_concrete(theta):
        eps = float(jnp.finfo(stats.a.dtype).eps)
        smax, smin = float(smax), float(smin)
        if not (np.isfinite(smax) and smin > smax * stats.dim * eps) or not bool(
            jnp.all(jnp.isfinite(theta))
        ):
            raise ValueError(
                f"lstdq: A_hat{' + ridge*I' if ridge else ''} is singular "
                f"(sigma_min={smin:.3g}, sigma_max={smax:.3g}, d={stats.dim}); the data do not "
                f"identify theta. Pass ridge > 0 (e.g. ridge={max(smax, 1.0) * 1e-4:.1g}) or "
                "use features that are linearly independent on the data"
            )
    return theta


def lstdq(
    features: jax.typing.ArrayLike,
    rewards: jax.typing.ArrayLike,
    discounts: jax.typing.ArrayLike,
    next_features: jax.typing.ArrayLike,
    *,
    ridge: float = 0.0,
) -> jax.Array:
    """One-shot LSTDQ: ``theta_hat = (A_hat + ridge I)^{-1} b_hat``.

    ``A_hat = (1/n) sum phi (phi - g phi_bar')^T`` and ``b_hat = (1/n) sum phi r`` (see the
    module docstring). ``Q_hat(s, a) = phi(s, a)^T theta_hat``.

    Args:
      features: ``(n, d)`` ``phi(s_i, a_i)``.
      rewards: ``(n,)``.
      discounts: ``(n,)``, ``gamma * (1 - done_i)`` in ``[0, 1]``.
      next_features: ``(n, d)`` ``phi_bar(s'_i)`` (expected under ``pi``, or one sampled
        ``a'_i ~ pi``).
      ridge: ``lambda >= 0``.

    Returns:
      ``theta_hat`` of shape ``(d,)``.

    Raises:
      ValueError: mismatched row counts, an empty dataset, non-finite features or
        rewards, discounts outside ``[0, 1]``, or a singular ``A_hat`` (suggesting ``ridge``).

    References:
      Amortila, Huang, Krishnamurthy, Jiang (ICLR 2026), arXiv:2601.19030, Sec. 3.
    """
    features, rewards, discounts, next_features = V.check_transitions(
        "lstdq", features, rewards, discounts, next_features
    )
    ridge = V.check_ridge("lstdq", ridge)
    return solve(_ab_stats(features, rewards, discounts, next_features), ridge=ridge)


@jax.jit
def _ab_stats(features, rewards, discounts, next_features) -> LSTDQStats:
    """Only ``A`` and ``b`` (``sigma`` left zero): what the one-shot solve needs, one GEMM."""
    dtype = _float_dtype(features, next_features)
    f = features.astype(dtype)
    x = f - discounts.astype(dtype)[:, None] * next_features.astype(dtype)
    d = f.shape[1]
    return LSTDQStats(count=jnp.asarray(f.shape[0], jnp.int32),
                      sigma=jnp.zeros((d, d), dtype), a=_mm(f.T, x),
                      b=_mm(f.T, rewards.astype(dtype)))


def value(theta: jax.typing.ArrayLike, init_features: jax.typing.ArrayLike) -> jax.Array:
    """Policy value ``J_hat(pi) = E_{s0 ~ d0}[phi_bar(s0)]^T theta``.

    Args:
      theta: ``(d,)`` weights.
      init_features: ``(d,)`` the mean ``E_{d0}[phi_bar(s0)]``, or ``(m, d)`` rows
        ``phi_bar(s0_j)`` for sampled initial states (averaged).

    Returns:
      Scalar estimate.

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
    mean = init_features if init_features.ndim == 1 else jnp.mean(init_features, axis=0)
    return jnp.dot(jnp.asarray(mean), jnp.asarray(theta))
