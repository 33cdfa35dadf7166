"""FQE: converges to the LSTDQ fixed point when stable, diverges on the classic
two-state counterexample (where LSTDQ is exact), bad inputs."""

import jax
import numpy as np
import pytest

import lstdq as L


def test_fqe_reaches_lstdq_fixed_point_when_stable(realizable_problem, x64):
    mdp, pi, gamma, q, phi, mu = realizable_problem
    ds = L.sample_dataset(jax.random.key(0), mdp, pi, mu, phi, gamma, 20_000)
    ds = L.Dataset(*(np.asarray(x, np.float64) for x in ds))
    flat = ds.features
    a = flat.T @ (flat - ds.discounts[:, None] * ds.next_features) / len(flat)
    b = flat.T @ ds.rewards / len(flat)
    k = flat.T @ (ds.discounts[:, None] * ds.next_features) / len(flat)
    rho = np.max(np.abs(np.linalg.eigvals(np.linalg.solve(flat.T @ flat / len(flat), k))))
    assert rho < 1  # FQE is a contraction here
    res = L.fqe(*ds, num_iterations=5000, tol=1e-12)
    assert bool(res.converged)
    np.testing.assert_allclose(res.theta, np.linalg.solve(a, b), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(res.theta, L.lstdq(*ds), rtol=1e-7, atol=1e-8)


def _two_state(mu0=0.9):
    """Tsitsiklis & Van Roy: s0 -> s1 -> s1, phi(s0)=1, phi(s1)=2. Rewards r(s0) = -4,
    r(s1) = 1 make Q^pi = (5, 10) = 5 phi at gamma = 0.9 (realizable, and not 0: with zero
    rewards theta = 0 whatever A_hat is)."""
    p = np.zeros((2, 1, 2))
    p[:, 0, 1] = 1.0
    mdp = L.FiniteMDP(p, np.array([[-4.0], [1.0]]), np.array([1.0, 0.0]))
    phi = np.array([[[1.0]], [[2.0]]])
    return mdp, phi, np.ones((2, 1)), np.array([[mu0], [1 - mu0]])


def test_fqe_diverges_where_lstdq_is_exact():
    mdp, phi, pi, mu = _two_state()
    # population FQE map: theta <- c + gamma (mu0*2 + mu1*4) / (mu0 + 4 mu1) theta
    # = c + 1.52 theta: unstable, while LSTDQ solves the fixed point exactly
    ds = L.sample_dataset(jax.random.key(0), mdp, pi, mu, phi, 0.9, 1000)
    theta = L.lstdq(*ds)
    assert abs(float(theta[0]) - 5.0) < 1e-4  # Q^pi = 5 phi (transitions are deterministic)
    with pytest.raises(ValueError, match="fqe: the iteration diverged"):
        L.fqe(*ds, theta0=np.ones(1), num_iterations=2000)


def test_bad_inputs():
    rng = np.random.default_rng(0)
    f, fn = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    r, g = rng.normal(size=20), np.full(20, 0.9)
    with pytest.raises(ValueError, match="num_iterations must be a positive int"):
        L.fqe(f, r, g, fn, num_iterations=0)
    with pytest.raises(ValueError, match=r"theta0 must have shape \(3,\)"):
        L.fqe(f, r, g, fn, theta0=np.ones(2))
    with pytest.raises(ValueError, match="tol must be a float >= 0"):
        L.fqe(f, r, g, fn, tol=-1.0)
    with pytest.raises(ValueError, match="Sigma_hat .* is singular.*ridge"):
        L.fqe(np.zeros((20, 3)), r, g, fn)
    with pytest.raises(ValueError, match="features has 20 rows but discounts has 19"):
        L.fqe(f, r, g[:19], fn)
