"""Coverage parameters: the two identities of the paper, the series definition, scale
invariance, the literature's quantities against scipy, plug-in consistency, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import lstdq as L
from tests.lstdq.conftest import occupancy_series


def _problem(seed, s=6, a=3):
    k = jax.random.split(jax.random.key(seed), 3)
    mdp = L.random_mdp(k[0], s, a)
    pi = L.random_policy(k[1], s, a)
    mu = L.random_policy(k[2], s, a, concentration=0.7) / s
    return mdp, pi, mu


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tabular_identity_one_plus_chi2(seed):
    mdp, pi, mu = _problem(seed)
    gamma = 0.9
    d = occupancy_series(mdp, pi, gamma)  # forward simulation of the state distribution
    expected = np.sum(d**2 / mu)  # 1 + chi^2(d^pi || mu)
    got = L.population_coverage(mdp, pi, mu, L.one_hot_features(6, 3), gamma)
    assert got.feature_dynamics == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(got.nu, d.reshape(-1), atol=1e-12)  # nu = d^pi
    assert got.chi2 == pytest.approx(expected, rel=1e-9)
    assert got.relative_condition == pytest.approx(np.max(d / mu), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bellman_complete_reduction(seed):
    k = jax.random.split(jax.random.key(10 + seed), 3)
    mdp, phi = L.linear_mdp(k[0], 10, 3, 4)
    pi = L.random_policy(k[1], 10, 3)
    mu = L.random_policy(k[2], 10, 3) / 10
    gamma = 0.9
    d = occupancy_series(mdp, pi, gamma)
    mean = np.einsum("sa,sad->d", d, phi)
    flat = phi.reshape(30, 4)
    sigma = flat.T @ (mu.reshape(-1, 1) * flat)
    expected = mean @ np.linalg.solve(sigma, mean)
    got = L.population_coverage(mdp, pi, mu, phi, gamma)
    assert got.feature_dynamics == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(got.nu, mean, atol=1e-12)
    assert got.bellman_complete == pytest.approx(expected, rel=1e-9)


def test_without_completeness_the_reduction_fails():
    """Realizable but not Bellman-complete features: C differs from the BC formula (so the
    identity test above can fail)."""
    mdp, pi, mu = _problem(7)
    q = L.exact_q(mdp, pi, 0.9)
    phi = L.realizable_features(jax.random.key(1), q, 4)
    got = L.population_coverage(mdp, pi, mu, phi, 0.9)
    assert abs(got.feature_dynamics - got.bellman_complete) > 1e-3 * got.bellman_complete


def test_matches_series_definition_and_is_scale_invariant():
    mdp, pi, mu = _problem(4)
    gamma = 0.8
    phi = L.random_features(jax.random.key(2), 6, 3, 5)
    flat, m = phi.reshape(18, 5), mu.reshape(-1)
    sigma = flat.T @ (m[:, None] * flat)
    phibar = np.einsum("sa,sad->sd", pi, phi)
    cross = np.einsum("x,xd,xt,te->de", m, flat, mdp.transitions.reshape(18, 6), phibar)
    mm = np.linalg.solve(sigma, cross)
    x0 = np.einsum("s,sd->d", mdp.initial, phibar)
    assert np.max(np.abs(np.linalg.eigvals(gamma * mm))) < 1  # series converges
    nu, term = np.zeros(5), x0.copy()
    for _ in range(2000):
        nu, term = nu + term, gamma * mm.T @ term
    nu *= 1 - gamma
    expected = nu @ np.linalg.solve(sigma, nu)
    a = sigma - gamma * cross
    with jax.enable_x64(True):
        got = float(L.feature_dynamics_coverage(sigma, a, x0, gamma))
        np.testing.assert_allclose(L.feature_occupancy(sigma, a, x0, gamma), nu, rtol=1e-9)
    assert got == pytest.approx(expected, rel=1e-9)
    pop = L.population_coverage(mdp, pi, mu, phi, gamma)
    assert pop.feature_dynamics == pytest.approx(expected, rel=1e-9)
    # reparametrize phi -> phi W: C is invariant, 1/sigma_min(A) is not
    w = np.diag([10.0, 0.1, 1.0, 3.0, 1.0]) @ np.eye(5)[::-1]
    pop_w = L.population_coverage(mdp, pi, mu, phi @ w, gamma)
    assert pop_w.feature_dynamics == pytest.approx(pop.feature_dynamics, rel=1e-8)
    assert pop_w.relative_condition == pytest.approx(pop.relative_condition, rel=1e-8)
    assert abs(np.log(pop_w.inverse_sigma_min / pop.inverse_sigma_min)) > 1.0


def test_plugin_coverage_converges_to_population():
    mdp, pi, mu = _problem(5)
    gamma = 0.8
    phi = L.random_features(jax.random.key(3), 6, 3, 4)
    pop = L.population_coverage(mdp, pi, mu, phi, gamma)
    ds = L.sample_dataset(jax.random.key(0), mdp, pi, mu, phi, gamma, 200_000)
    x0 = L.init_features(mdp, pi, phi)
    c_hat = float(L.plugin_coverage(L.compute_stats(*ds), x0, gamma))
    assert c_hat == pytest.approx(pop.feature_dynamics, rel=0.1)


def test_literature_quantities_against_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    y = rng.normal(size=(50, 4)) * np.array([1, 2, 3, 0.5])
    sb, st = x.T @ x / 50, y.T @ y / 50
    assert float(L.relative_condition_number(st, sb)) == pytest.approx(
        scipy.linalg.eigh(st, sb, eigvals_only=True)[-1], rel=1e-4)
    a = rng.normal(size=(4, 4))
    assert float(L.inverse_sigma_min(a)) == pytest.approx(
        1 / scipy.linalg.svdvals(a)[-1], rel=1e-4)
    m = rng.normal(size=4)
    assert float(L.bellman_complete_coverage(m, sb)) == pytest.approx(
        m @ scipy.linalg.solve(sb, m, assume_a="pos"), rel=1e-4)
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert float(L.chi2_coverage(p, q)) == pytest.approx(2.0)  # 1 + chi^2 = 0.25/.25*2
    assert float(jax.jit(L.chi2_coverage)(jnp.asarray(p), jnp.asarray(q))) == pytest.approx(2.0)


def test_bad_inputs():
    eye = np.eye(3)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\), got 1.0"):
        L.feature_dynamics_coverage(eye, eye, np.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"a_matrix must be \(3, 3\), got shape \(2, 2\)"):
        L.feature_dynamics_coverage(eye, np.eye(2), np.ones(3), 0.9)
    with pytest.raises(ValueError, match=r"init_features must have shape \(3,\)"):
        L.feature_occupancy(eye, eye, np.ones(2), 0.9)
    with pytest.raises(ValueError, match="a_matrix is singular"):
        L.feature_dynamics_coverage(eye, np.zeros((3, 3)), np.ones(3), 0.9)
    with pytest.raises(ValueError, match="sigma contains 1 non-finite"):
        L.feature_dynamics_coverage(np.where(eye == 1, eye, 0) + np.diag([np.nan, 0, 0]), eye,
                                    np.ones(3), 0.9)
    with pytest.raises(ValueError, match="stats holds no rows"):
        L.plugin_coverage(L.init_stats(3), np.ones(3), 0.9)
    with pytest.raises(ValueError, match=r"a_matrix must be square"):
        L.inverse_sigma_min(np.ones((2, 3)))
    with pytest.raises(ValueError, match="sigma_behavior is singular"):
        L.relative_condition_number(eye, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"target_mean_features must have shape \(3,\)"):
        L.bellman_complete_coverage(np.ones(4), eye)
    with pytest.raises(ValueError, match="behavior_distribution is 0 where"):
        L.chi2_coverage(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="must be a probability distribution"):
        L.chi2_coverage(np.array([0.5, 0.6]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="target_distribution has shape"):
        L.chi2_coverage(np.ones(2) / 2, np.ones(3) / 3)
    mdp, pi, mu = _problem(0)
    with pytest.raises(ValueError, match="Sigma = E_mu.* is singular"):
        L.population_coverage(mdp, pi, mu, np.zeros((6, 3, 2)), 0.9)
    with pytest.raises(ValueError, match=r"policy probabilities must sum to 1 \(row \(0,\)\)"):
        L.population_coverage(mdp, pi * 0.5, mu, L.one_hot_features(6, 3), 0.9)
