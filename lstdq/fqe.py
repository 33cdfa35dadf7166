"""Fitted Q evaluation (FQE) with linear features: the iterative baseline to LSTDQ.

Each iteration regresses the bootstrapped target on the features (least squares with an
optional ridge):

    y_i^{(k)} = r_i + g_i phi_bar'_i^T theta_k,
    theta_{k+1} = argmin_theta (1/n) sum_i (phi_i^T theta - y_i^{(k)})^2 + lambda |theta|^2
                = (Sigma_hat + lambda I)^{-1} (b_hat + (1/n) sum_i phi_i g_i phi_bar'_i^T theta_k).

A fixed point satisfies ``(Sigma_hat - K_hat) theta = b_hat`` with
``K_hat = (1/n) sum g phi phi_bar'^T``, i.e. ``A_hat theta = b_hat``: when the iteration is
stable (spectral radius of ``(Sigma_hat + lambda I)^{-1} K_hat`` below 1) FQE converges to the
LSTDQ solution; otherwise it diverges (the classic off-policy counterexamples).

References:
  R. Munos, C. Szepesvari. Finite-Time Bounds for Fitted Value Iteration. JMLR 2008.
  H. Le, C. Voloshin, Y. Yue. Batch Policy Learning under Constraints. ICML 2019 (FQE).
  Amortila, Huang, Krishnamurthy, Jiang. arXiv:2601.19030 (ICLR 2026), the LSTDQ comparison.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstdq import _validate as V
from lstdq.estimator import _mm

__all__ = ["FQEResult", "fqe"]


class FQEResult(NamedTuple):
    """Outcome of :func:`fqe`.

    Attributes:
      theta: ``(d,)`` final weights.
      iterations: int32, regressions performed.
      change: the last iteration's largest change of ``Q_hat`` on the data's next-state
        features, ``max_i |phi_bar'_i^T (theta_k - theta_{k-1})|`` (function space, so
        ill-conditioned parameter directions do not stall it).
      converged: whether ``change <= tol * max(1, max_i |phi_bar'_i^T theta_k|)``.
    """

    theta: jax.Array
    iterations: jax.Array
    change: jax.Array
    converged: jax.Array


def _fqe_loop(features, rewards, discounts, next_features, theta0, ridge, tol, max_iter):
    n, d = features.shape
    dtype = theta0.dtype
    f = features.astype(dtype)
    fn = next_features.astype(dtype)
    g = discounts.astype(dtype)
    r = rewards.astype(dtype)
    gram = _mm(f.T, f) / n + ridge * jnp.eye(d, dtype=dtype)
    chol = jax.scipy.linalg.cho_factor(gram, lower=True)

    def body(carry):
        k, _, pred, _, _ = carry
        new = jax.scipy.linalg.cho_solve(chol, _mm(r + g * pred, f) / n)
        new_pred = _mm(fn, new)
        change = jnp.max(jnp.abs(new_pred - pred))
        return k + 1, new, new_pred, change, jnp.max(jnp.abs(new_pred))

    def cond(carry):
        k, _, _, change, scale = carry
        return (k < max_iter) & jnp.isfinite(change) & (change > tol * jnp.maximum(1.0, scale))

    pred0 = _mm(fn, theta0)
    first = body((jnp.asarray(0, jnp.int32), theta0, pred0, jnp.asarray(jnp.inf, dtype),
                  jnp.max(jnp.abs(pred0))))
    k, theta, _, change, scale = jax.lax.while_loop(cond, body, first)
    converged = change <= tol * jnp.maximum(1.0, scale)
    ev = jnp.linalg.eigvalsh(gram)
    ok = jnp.all(jnp.isfinite(chol[0])) & (ev[0] > ev[-1] * d * jnp.finfo(dtype).eps)
    return FQEResult(theta, k, change, converged), ok


_fqe_jit = jax.jit(_fqe_loop)


def fqe(
    features: jax.typing.ArrayLike,
    rewards: jax.typing.ArrayLike,
    discounts: jax.typing.ArrayLike,
    next_features: jax.typing.ArrayLike,
    *,
    num_iterations: int = 1000,
    tol: float = 1e-5,
    ridge: float = 0.0,
    theta0: jax.typing.ArrayLike | None = None,
) -> FQEResult:
    """Linear fitted Q evaluation, iterated to a fixed point or ``num_iterations``.

    Args:
      features, rewards, discounts, next_features: as :func:`lstdq.lstdq`.
      num_iterations: the most regressions to run (positive int).
      tol: stop when ``max_i |phi_bar'_i^T (theta_{k+1} - theta_k)| <= tol * max(1,
        max_i |phi_bar'_i^T theta_{k+1}|)`` (relative change of ``Q_hat`` on the data).
      ridge: ``lambda >= 0`` in each regression (needed when ``Sigma_hat`` is singular).
      theta0: ``(d,)`` starting weights (default zeros, i.e. ``Q_0 = 0``).

    Returns:
      :class:`FQEResult`; the iteration is one jitted ``lax.while_loop``.

    Raises:
      ValueError: the transition checks of :func:`lstdq.lstdq`, bad ``num_iterations`` /
        ``tol`` / ``theta0``, a singular ``Sigma_hat`` without ridge, or an iteration that
        diverged to non-finite weights (FQE is unstable on these data; use LSTDQ).
    """
    features, rewards, discounts, next_features = V.check_transitions(
        "fqe", features, rewards, discounts, next_features
    )
    ridge = V.check_ridge("fqe", ridge)
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, int | np.integer) \
            or num_iterations < 1:
        raise ValueError(f"fqe: num_iterations must be a positive int, got {num_iterations!r}")
    if not (isinstance(tol, int | float) and tol >= 0):
        raise ValueError(f"fqe: tol must be a float >= 0, got {tol!r}")
    d = features.shape[1]
    dtype = jax.dtypes.canonicalize_dtype(
        np.result_type(features.dtype, next_features.dtype, np.float32))
    if theta0 is None:
        theta0 = jnp.zeros((d,), dtype)
    else:
        theta0 = V.as_array("fqe", "theta0", theta0)
        if tuple(theta0.shape) != (d,):
            raise ValueError(f"fqe: theta0 must have shape ({d},), got {tuple(theta0.shape)}")
        V.check_finite("fqe", "theta0", theta0)
        theta0 = jnp.asarray(theta0, dtype)
    result, chol_ok = _fqe_jit(features, rewards, discounts, next_features, theta0,
                               jnp.asarray(ridge, dtype), jnp.asarray(tol, dtype),
                               jnp.asarray(int(num_iterations), jnp.int32))
    if V.is_concrete(chol_ok) and not bool(chol_ok):
        raise ValueError(
            "fqe: Sigma_hat = (1/n) sum phi phi^T is singular, so the regression is not "
            "identified; pass ridge > 0 (e.g. ridge=1e-6) or use linearly independent features"
        )
    if V.is_concrete(result.theta) and not bool(jnp.all(jnp.isfinite(result.theta))):
        raise ValueError(
            f"fqe: the iteration diverged (non-finite weights after {int(result.iterations)} "
            "regressions); FQE is unstable on these data, use lstdq instead"
        )
    return result
