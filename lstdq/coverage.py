"""Coverage parameters of linear off-policy evaluation.

Feature-dynamics coverage (Amortila et al., 2026). With ``Sigma = E_mu[phi phi^T]`` and
``M = Sigma^{-1} E_mu[phi(s,a) phi_bar(s')^T]``, features evolve under the induced linear
system ``x_{t+1} = M^T x_t`` from ``x_0 = E_{d0}[phi_bar(s0)]``; its normalized occupancy is

    nu = (1 - gamma) sum_t gamma^t (M^T)^t E_{d0}[phi_bar(s0)],
    C^pi_phi = nu^T Sigma^{-1} nu.

Since ``A = E_mu[phi (phi - gamma phi_bar')^T] = Sigma (I - gamma M)``, the series has the
closed form ``nu = (1 - gamma) Sigma A^{-T} phi_bar_0`` (used here; it needs only ``A``
invertible) and ``C^pi_phi = (1-gamma)^2 phi_bar_0^T A^{-1} Sigma A^{-T} phi_bar_0``. The
first-order error of LSTDQ is ``J_hat - J ~ (1/(1-gamma)) nu^T Sigma^{-1} (b_hat - A_hat
theta)``, whose variance is at most ``V_max^2 C^pi_phi / n`` -- hence
``|J_hat - J| <~ V_max/(1-gamma) sqrt(C d log(1/delta) / n)`` after a burn-in.

Two reductions (tested): with one-hot features ``nu = d^pi`` and ``C = 1 + chi^2(d^pi||mu)``;
under Bellman completeness (``P^pi Phi = Phi M``) ``nu = E_{d^pi}[phi]`` and
``C = ||E_{d^pi} phi||^2_{Sigma^{-1}}``.

The literature's other quantities are provided for comparison: ``1/sigma_min(A)``, the
Bellman-complete linear coverage, the relative condition number
``sup_w w^T Sigma_pi w / w^T Sigma_mu w`` and the tabular ``1 + chi^2``.

References:
  Amortila, Huang, Krishnamurthy, Jiang. A Unifying View of Coverage in Linear Off-Policy
  Evaluation. ICLR 2026, arXiv:2601.19030.
  Duan, Jia, Wang. Minimax-Optimal Off-Policy Evaluation with Linear Function
  Approximation. ICML 2020 (relative condition numbers / chi^2 coverage).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstdq import _validate as V
from lstdq import mdp as M
from lstdq.estimator import LSTDQStats, _check_stats

__all__ = [
    "CoverageParams",
    "bellman_complete_coverage",
    "chi2_coverage",
    "feature_dynamics_coverage",
    "feature_occupancy",
    "inverse_sigma_min",
    "plugin_coverage",
    "population_coverage",
    "relative_condition_number",
]


def _square(fn: str, name: str, x, d: int | None = None):
    x = V.as_array(fn, name, x)
    if x.ndim != 2 or x.shape[0] != x.shape[1] or (d is not None and x.shape[0] != d):
        want = f"({d}, {d})" if d is not None else "square (d, d)"
        raise ValueError(f"{fn}: {name} must be {want}, got shape {tuple(x.shape)}")
    V.check_finite(fn, name, x)
    return x


def _vector(fn: str, name: str, x, d: int):
    x = V.as_array(fn, name, x)
    if tuple(x.shape) != (d,):
        raise ValueError(f"{fn}: {name} must have shape ({d},), got {tuple(x.shape)}")
    V.check_finite(fn, name, x)
    return x


def _nonsingular(fn: str, name: str, x) -> None:
    if V.is_concrete(x):
        arr = np.asarray(x, np.float64)
        s = np.linalg.svd(arr, compute_uv=False)
        eps = float(jnp.finfo(jnp.asarray(x).dtype).eps)
        if not s[-1] > s[0] * arr.shape[0] * eps:
            raise ValueError(
                f"{fn}: {name} is singular (sigma_min={s[-1]:.3g}, sigma_max={s[0]:.3g}); "
                "coverage is infinite or undefined for these features/data"
            )


def feature_occupancy(sigma, a_matrix, init_features, gamma: float) -> jax.Array:
    """``nu = (1 - gamma) sum_t gamma^t (M^T)^t phi_bar_0 = (1 - gamma) Sigma A^{-T} phi_bar_0``.

    Args:
      sigma: ``(d, d)`` ``Sigma = E_mu[phi phi^T]``.
      a_matrix: ``(d, d)`` ``A = E_mu[phi (phi - gamma phi_bar')^T]``.
      init_features: ``(d,)`` ``phi_bar_0 = E_{d0}[phi_bar(s0)]``.
      gamma: discount in ``[0, 1)`` (the normalization ``1 - gamma``).

    Returns:
      ``nu`` of shape ``(d,)``.

    Raises:
      ValueError: shape mismatch, non-finite input, bad gamma, or a singular ``A``.
    """
    fn = "feature_occupancy"
    gamma = V.check_gamma(fn, gamma)
    sigma = _square(fn, "sigma", sigma)
    d = sigma.shape[0]
    a_matrix = _square(fn, "a_matrix", a_matrix, d)
    init_features = _vector(fn, "init_features", init_features, d)
    _nonsingular(fn, "a_matrix", a_matrix)
    sigma, a_matrix, x0 = (jnp.asarray(v) for v in (sigma, a_matrix, init_features))
    return (1 - gamma) * sigma @ jnp.linalg.solve(a_matrix.T, x0)


def feature_dynamics_coverage(sigma, a_matrix, init_features, gamma: float) -> jax.Array:
    """``C^pi_phi = nu^T Sigma^{-1} nu`` with ``nu`` from :func:`feature_occupancy`.

    Computed as ``(1-gamma)^2 |Sigma^{1/2} A^{-T} phi_bar_0|^2`` (no ``Sigma^{-1}`` needed).

    Args/Raises: as :func:`feature_occupancy`; ``sigma`` must also be nonsingular.

    References:
      Amortila, Huang, Krishnamurthy, Jiang (ICLR 2026), arXiv:2601.19030.
    """
    fn = "feature_dynamics_coverage"
    gamma = V.check_gamma(fn, gamma)
    sigma = _square(fn, "sigma", sigma)
    d = sigma.shape[0]
    a_matrix = _square(fn, "a_matrix", a_matrix, d)
    init_features = _vector(fn, "init_features", init_features, d)
    _nonsingular(fn, "sigma", sigma)
    _nonsingular(fn, "a_matrix", a_matrix)
    sigma, a_matrix, x0 = (jnp.asarray(v) for v in (sigma, a_matrix, init_features))
    u = jnp.linalg.solve(a_matrix.T, x0)  # A^{-T} phi_bar_0 = Sigma^{-1} nu / (1 - gamma)
    return (1 - gamma) ** 2 * u @ sigma @ u


def plugin_coverage(stats: LSTDQStats, init_features, gamma: float) -> jax.Array:
    """Plug-in ``C^pi_phi`` from data: ``Sigma_hat``, ``A_hat`` of the LSTDQ statistics.

    Args:
      stats: :class:`lstdq.LSTDQStats` of the logged data (built with discount ``gamma``).
      init_features: ``(d,)`` ``E_{d0}[phi_bar(s0)]`` (or its sample mean).
      gamma: the discount used in the data's ``discounts``.

    Raises:
      ValueError: empty statistics, shape mismatch, singular ``Sigma_hat`` or ``A_hat``.
    """
    _check_stats("plugin_coverage", stats)
    if V.is_concrete(stats.count) and int(stats.count) <= 0:
        raise ValueError("plugin_coverage: stats holds no rows (count=0)")
    sigma, a, _ = stats.means()
    return feature_dynamics_coverage(sigma, a, init_features, gamma)


def inverse_sigma_min(a_matrix) -> jax.Array:
    """``1 / sigma_min(A)``, the coverage proxy of earlier LSTDQ analyses (not scale-free).

    Raises:
      ValueError: a non-square or non-finite ``a_matrix``.
    """
    a_matrix = _square("inverse_sigma_min", "a_matrix", a_matrix)
    return 1.0 / jnp.linalg.svd(jnp.asarray(a_matrix), compute_uv=False)[-1]


def bellman_complete_coverage(target_mean_features, sigma) -> jax.Array:
    """Linear coverage under Bellman completeness: ``||E_{d^pi} phi||^2_{Sigma^{-1}}``.

    Args:
      target_mean_features: ``(d,)`` ``E_{(s,a) ~ d^pi}[phi(s, a)]``.
      sigma: ``(d, d)`` ``Sigma = E_mu[phi phi^T]`` (nonsingular).
    """
    fn = "bellman_complete_coverage"
    sigma = _square(fn, "sigma", sigma)
    m = _vector(fn, "target_mean_features", target_mean_features, sigma.shape[0])
    _nonsingular(fn, "sigma", sigma)
    m = jnp.asarray(m)
    return m @ jnp.linalg.solve(jnp.asarray(sigma), m)


def relative_condition_number(sigma_target, sigma_behavior) -> jax.Array:
    """``sup_w (w^T Sigma_pi w) / (w^T Sigma_mu w)``: the top generalized eigenvalue.

    Computed as ``lambda_max(L^{-1} Sigma_pi L^{-T})`` with ``Sigma_mu = L L^T``.

    Args:
      sigma_target: ``(d, d)`` ``Sigma_pi = E_{d^pi}[phi phi^T]``.
      sigma_behavior: ``(d, d)`` ``Sigma_mu = E_mu[phi phi^T]`` (positive definite).
    """
    fn = "relative_condition_number"
    sigma_b = _square(fn, "sigma_behavior", sigma_behavior)
    sigma_t = _square(fn, "sigma_target", sigma_target, sigma_b.shape[0])
    _nonsingular(fn, "sigma_behavior", sigma_b)
    chol = jnp.linalg.cholesky(jnp.asarray(sigma_b))
    half = jax.scipy.linalg.solve_triangular(chol, jnp.asarray(sigma_t), lower=True)
    whitened = jax.scipy.linalg.solve_triangular(chol, half.T, lower=True)
    return jnp.linalg.eigvalsh(0.5 * (whitened + whitened.T))[-1]


def chi2_coverage(target_distribution, behavior_distribution) -> jax.Array:
    """Tabular coverage ``1 + chi^2(d^pi || mu) = sum_x d^pi(x)^2 / mu(x)``.

    Raises:
      ValueError: shapes differ, negative entries, sums not 1, or ``mu(x) = 0`` where
        ``d^pi(x) > 0`` (infinite coverage).
    """
    fn = "chi2_coverage"
    d = V.as_array(fn, "target_distribution", target_distribution)
    mu = V.as_array(fn, "behavior_distribution", behavior_distribution)
    if d.shape != mu.shape:
        raise ValueError(
            f"{fn}: target_distribution has shape {tuple(d.shape)} but behavior_distribution "
            f"has {tuple(mu.shape)}"
        )
    for name, p in (("target_distribution", d), ("behavior_distribution", mu)):
        V.check_finite(fn, name, p)
        if V.is_concrete(p):
            arr = np.asarray(p, np.float64)
            if arr.min() < 0 or abs(arr.sum() - 1) > 1e-5:
                raise ValueError(
                    f"{fn}: {name} must be a probability distribution (non-negative, sum 1), "
                    f"got min {arr.min():.3g} and sum {arr.sum():.6g}"
                )
    if V.is_concrete(d) and V.is_concrete(mu):
        if np.any((np.asarray(mu) == 0) & (np.asarray(d) > 0)):
            raise ValueError(f"{fn}: behavior_distribution is 0 where target_distribution is "
                             "positive; the coverage is infinite")
    d, mu = jnp.asarray(d), jnp.asarray(mu)
    return jnp.sum(jnp.where(d > 0, d**2 / jnp.where(mu > 0, mu, 1.0), 0.0))


class CoverageParams(NamedTuple):
    """Population coverage parameters of one (MDP, policy, mu, features, gamma).

    Attributes:
      feature_dynamics: ``C^pi_phi = nu^T Sigma^{-1} nu``.
      inverse_sigma_min: ``1 / sigma_min(A)``.
      bellman_complete: ``||E_{d^pi} phi||^2_{Sigma^{-1}}`` (the right coverage only under
        Bellman completeness; reported for comparison in every case).
      relative_condition: ``sup_w w^T Sigma_pi w / w^T Sigma_mu w``.
      chi2: tabular ``1 + chi^2(d^pi || mu)`` over state-action pairs.
      nu: the feature occupancy ``nu`` (``(d,)``).
      target_mean: ``E_{d^pi}[phi]`` (``(d,)``).
    """

    feature_dynamics: float
    inverse_sigma_min: float
    bellman_complete: float
    relative_condition: float
    chi2: float
    nu: np.ndarray
    target_mean: np.ndarray


def population_coverage(mdp, policy, behavior, features, gamma: float) -> CoverageParams:
    """Every coverage parameter from the known model, in float64 NumPy.

    Args:
      mdp: :class:`lstdq.FiniteMDP`.
      policy: ``(S, A)`` target policy ``pi``.
      behavior: ``(S, A)`` data distribution ``mu`` over state-action pairs.
      features: ``(S, A, d)``.
      gamma: discount in ``[0, 1)``.

    Returns:
      :class:`CoverageParams` (``chi2`` is ``inf`` if ``mu`` misses pairs ``d^pi`` visits).

    Raises:
      ValueError: malformed inputs, or ``Sigma`` / ``A`` singular under ``mu``.
    """
    fn = "population_coverage"
    st = M.population_stats(mdp, policy, behavior, features, gamma)
    sigma, a = np.asarray(st.sigma), np.asarray(st.a)
    for name, x in (("Sigma = E_mu[phi phi^T]", sigma), ("A", a)):
        s = np.linalg.svd(x, compute_uv=False)
        if not s[-1] > s[0] * x.shape[0] * np.finfo(np.float64).eps:
            raise ValueError(f"{fn}: {name} is singular under behavior (sigma_min={s[-1]:.3g})")
    phi = np.asarray(features, np.float64)
    x0 = M.init_features(mdp, policy, phi)
    u = np.linalg.solve(a.T, x0)
    nu = (1 - gamma) * sigma @ u
    c = float((1 - gamma) ** 2 * u @ sigma @ u)
    d_pi = M.occupancy(mdp, policy, gamma)
    mean = np.einsum("sa,sad->d", d_pi, phi)
    bc = float(mean @ np.linalg.solve(sigma, mean))
    flat = phi.reshape(d_pi.size, -1)
    sigma_pi = flat.T @ (d_pi.reshape(-1, 1) * flat)
    chol = np.linalg.cholesky(sigma)
    w = np.linalg.solve(chol, np.linalg.solve(chol, sigma_pi).T)
    rel = float(np.linalg.eigvalsh(0.5 * (w + w.T))[-1])
    mu = np.asarray(behavior, np.float64)
    if np.any((mu == 0) & (d_pi > 1e-15)):
        chi2 = float("inf")
    else:
        chi2 = float(np.sum(np.where(mu > 0, d_pi**2 / np.where(mu > 0, mu, 1.0), 0.0)))
    inv_smin = float(1.0 / np.linalg.svd(a, compute_uv=False)[-1])
    return CoverageParams(c, inv_smin, bc, rel, chi2, nu, mean)
