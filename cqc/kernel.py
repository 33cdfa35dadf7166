"""Gaussian-kernel smoothing shared by the kernel nuisances and the indirect estimators.

One implementation of each piece that :mod:`cqc.nuisance` (kernel propensity and CDFs) and
:mod:`cqc.estimators` (the indirect / IPW pseudo-outcome smoothers) both use:

* Nadaraya-Watson weights ``w_j(x) = v_j exp(-|z(x) - Z_j|^2 / (2 h^2)) / sum_k (...)`` on
  standardized covariates, with optional unit weights ``v_j >= 0`` (sample weights, or a
  0/1 mask selecting one arm), computed as a softmax of ``-|z - Z_j|^2 / (2 h^2) + log v_j``;
* the bandwidth: a number, Scott's rule ``h = 1.06 n^{-1/(d+4)}`` (``None``), or
  leave-one-out cross-validation (``"cv"``, :func:`cv_bandwidth`);
* :func:`map_blocks`: evaluation over query points in blocks sized so that one block's
  working set stays under :data:`BLOCK_ELEMENTS` floats, whatever ``n``.

References:
  Nadaraya (1964); Watson (1964). Scott, "Multivariate Density Estimation", 1992 (rule of
  thumb). Givens, Liu, Reeve, Reluga. ICLR 2026, arXiv:2601.19666.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BLOCK_ELEMENTS",
    "CV_BANDWIDTHS",
    "block_rows",
    "check_bandwidth",
    "cv_bandwidth",
    "kernel_weights",
    "map_blocks",
    "scott_bandwidth",
    "select_bandwidth",
]

# Largest number of float32 elements one block of query rows may touch (32 MiB): bounds the
# memory of kernel evaluation at (block rows) x (training rows) x (values per pair).
BLOCK_ELEMENTS = 2**23
# Candidate bandwidths (standardized units) of the leave-one-out search.
CV_BANDWIDTHS = tuple(float(h) for h in np.geomspace(0.02, 2.0, 15))
# Rows of the leave-one-out search; larger samples are subsampled (see cv_bandwidth).
CV_MAX_UNITS = 800


def check_bandwidth(where: str, bandwidth) -> None:
    """Accepts ``"cv"``, ``None`` or a finite number > 0; raises ``ValueError`` otherwise."""
    if bandwidth is None or (isinstance(bandwidth, str) and bandwidth == "cv"):
        return
    if isinstance(bandwidth, str | bool) or not isinstance(bandwidth, int | float | np.number):
        raise ValueError(
            f"{where}: bandwidth must be 'cv', None or a finite number > 0, got {bandwidth!r}")
    if not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(
            f"{where}: bandwidth must be 'cv', None or a finite number > 0, got {bandwidth!r}")


def scott_bandwidth(n_eff, d: int):
    """Scott's rule of thumb for standardized covariates: ``1.06 n_eff^{-1/(d+4)}``."""
    return 1.06 * jnp.maximum(n_eff, 1.0) ** (-1.0 / (d + 4.0))


def block_rows(num_queries: int, per_query: int) -> int:
    """Query rows per block so that ``rows * per_query <= BLOCK_ELEMENTS`` (at least 1)."""
    return int(max(1, min(num_queries, BLOCK_ELEMENTS // max(per_query, 1))))


def map_blocks(fn: Callable, xs: tuple, block: int):
    """``fn`` over the leading axis of every array in ``xs``, ``block`` rows at a time.

    The last block is padded by repeating the last row (results for padding are dropped), so
    one compiled body serves every block (``lax.map``).
    """
    m = xs[0].shape[0]
    pad = (-m) % block
    padded = [jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0) for x in xs]
    blocked = [x.reshape((-1, block) + x.shape[1:]) for x in padded]
    out = jax.lax.map(lambda args: fn(*args), tuple(blocked))
    return jax.tree.map(lambda o: o.reshape((-1,) + o.shape[2:])[:m], out)


def _sq_dist(zq, z):
    """``|zq_i - z_j|^2`` from the differences (exact to rounding even for tiny bandwidths,
    unlike ``|zq|^2 + |z|^2 - 2 zq.z``); the ``(B, n, d)`` differences count toward a
    block's working set in :func:`block_rows`."""
    return jnp.sum((zq[:, None, :] - z[None, :, :]) ** 2, axis=-1)


def kernel_weights(zq, z, bandwidth, unit_weights=None):
    """Row-normalized Gaussian kernel weights ``(B, n)`` of queries ``zq`` over ``z``.

    ``w_ij ∝ v_j exp(-|zq_i - z_j|^2 / (2 h^2))``; units with ``v_j = 0`` get weight 0. A row
    whose units all have ``v_j = 0`` is all zeros (never NaN). Rows sum to 1 otherwise, and
    the softmax form never underflows to an all-zero row while some ``v_j > 0``.
    """
    logits = -0.5 * _sq_dist(zq, z) / bandwidth**2
    if unit_weights is not None:
        v = jnp.asarray(unit_weights, logits.dtype)
        logits = jnp.where(v[None, :] > 0, logits + jnp.log(jnp.where(v > 0, v, 1.0))[None, :],
                           -jnp.inf)
    w = jax.nn.softmax(logits, axis=1)
    return jnp.where(jnp.isfinite(w), w, 0.0)


@jax.jit
def _loo_errors(z, targets, weights, candidates):
    """Weighted leave-one-out squared error of Nadaraya-Watson for each candidate bandwidth
    (shapes depend only on the number of rows, not on which units have weight)."""
    d2 = _sq_dist(z, z)
    drop = jnp.eye(z.shape[0], dtype=bool) | (weights[None, :] <= 0)
    logv = jnp.log(jnp.where(weights > 0, weights, 1.0))[None, :]
    score_w = weights / jnp.maximum(jnp.sum(weights), 1e-12)

    def err(h):
        w = jax.nn.softmax(jnp.where(drop, -jnp.inf, -0.5 * d2 / h**2 + logv), axis=1)
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        return jnp.sum(score_w * jnp.mean((targets - w @ targets) ** 2, axis=1))

    return jax.vmap(err)(candidates)


def cv_bandwidth(z, targets, weights) -> float:
    """Bandwidth (standardized units) minimizing the weighted leave-one-out squared error of
    Nadaraya-Watson regression of ``targets (n, T)`` on ``z``, over :data:`CV_BANDWIDTHS`.

    ``weights (n,)`` are unit weights (0 excludes a unit: another arm's units, say). Above
    :data:`CV_MAX_UNITS` rows the search runs on a fixed random subset of that many rows and
    the chosen ``h_sub`` is rescaled to the full sample with the usual rate,
    ``h = h_sub (m_sub / m)^{1/(d+4)}`` (``m`` = total weight of the units, ``d`` = covariate
    dimension).
    """
    z, targets = jnp.asarray(z, jnp.float32), jnp.asarray(targets, jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    m_full = max(float(jnp.sum(weights)), 1.0)
    if z.shape[0] > CV_MAX_UNITS:
        idx = np.sort(np.random.default_rng(0).choice(z.shape[0], CV_MAX_UNITS, replace=False))
        z, targets, weights = z[idx], targets[idx], weights[idx]
    errs = np.asarray(_loo_errors(z, targets, weights, jnp.asarray(CV_BANDWIDTHS, jnp.float32)))
    m_sub = max(float(jnp.sum(weights)), 1.0)
    return CV_BANDWIDTHS[int(np.argmin(errs))] * (m_sub / m_full) ** (1.0 / (z.shape[1] + 4))


def select_bandwidth(bandwidth, z, weights, cv_targets=None):
    """The bandwidth a ``bandwidth`` setting means for standardized covariates ``z``.

    Args:
      bandwidth: a number, ``None`` (Scott's rule with the total unit weight as ``n``) or
        ``"cv"`` (:func:`cv_bandwidth` on ``cv_targets``).
      z: ``(n, d)`` standardized covariates.
      weights: ``(n,)`` unit weights.
      cv_targets: ``(n, T)`` targets of the leave-one-out search (needed for ``"cv"``).

    Returns:
      A float32 scalar.
    """
    if isinstance(bandwidth, str):
        return jnp.asarray(cv_bandwidth(z, cv_targets, weights), jnp.float32)
    if bandwidth is None:
        return jnp.asarray(scott_bandwidth(jnp.sum(jnp.asarray(weights, jnp.float32)),
                                           z.shape[1]), jnp.float32)
    return jnp.asarray(bandwidth, jnp.float32)
