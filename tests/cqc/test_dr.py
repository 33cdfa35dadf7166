"""DR pseudo-outcome and the direct objective: double robustness, gradient, minimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import cqc

X0 = 0.25
GAMMA = 1.0


def _draws_at_x0(n, seed):
    """(A, Y) drawn at fixed X = X0 from scenario 1, written out from the issue's formulas."""
    rng = np.random.default_rng(seed)
    pi = 0.4 * np.sin(GAMMA * np.pi * X0) + 0.5
    a = (rng.uniform(size=n) < pi).astype(np.float32)
    eps = rng.normal(size=n)
    mu = np.sin(GAMMA * np.pi * X0)
    y = np.where(a == 1, 2 * mu + 2 * eps, mu + eps).astype(np.float32)
    return a, y, pi, mu


def test_pseudo_outcome_is_doubly_robust_with_exact_nuisances():
    n = 400_000
    a, y, pi, mu = _draws_at_x0(n, 0)
    y0, y1 = 0.4, 1.6
    f0_true, f1_true = stats.norm.cdf(y0, mu, 1), stats.norm.cdf(y1, 2 * mu, 2)
    h_true = f1_true - f0_true
    pi_wrong, f0_wrong, f1_wrong = 0.5 * pi + 0.1, 0.5 * f0_true + 0.4, 0.3 * f1_true

    def mean_psi(p, f0, f1):
        psi = np.asarray(cqc.pseudo_outcome(y0, y1, a, y, p, f0, f1))
        return psi.mean(), psi.std() / np.sqrt(n)

    for p, f0, f1 in [(pi, f0_true, f1_true), (pi, f0_wrong, f1_wrong),
                      (pi_wrong, f0_true, f1_true)]:
        m, se = mean_psi(p, f0, f1)
        assert abs(m - h_true) < 4 * se + 1e-4, (m, h_true, se)
    m, se = mean_psi(pi_wrong, f0_wrong, f1_wrong)
    assert abs(m - h_true) > 10 * se  # both wrong: biased


def test_pseudo_outcome_hand_computed_values():
    # treated, Y <= y1: (1 - 0.3)/0.5 + 0.3 - 0.6 = 1.1 ; control, Y > y0: -[(0-0.6)/0.5+0.6-0.3]
    got = cqc.pseudo_outcome(0.0, 1.0, jnp.array([1.0, 0.0]), jnp.array([0.5, 0.5]),
                             0.5, 0.6, 0.3)
    np.testing.assert_allclose(np.asarray(got), [1.1, 0.9], atol=1e-6)


def test_grid_cdf_and_integral_match_numpy_and_quadrature():
    grid = jnp.linspace(-3, 3, 31)
    values = jnp.asarray(stats.norm.cdf(np.asarray(grid))[None, :].repeat(2, 0), jnp.float32)
    t = jnp.array([[-4.0, -1.23, 0.0, 2.9], [3.5, 1.0, -2.5, 0.01]])
    got = np.asarray(cqc.grid_cdf(values, grid, t))
    ref = np.stack([np.interp(np.asarray(r), np.asarray(grid), np.asarray(values[0])) for r in t])
    np.testing.assert_allclose(got, ref, atol=1e-6)
    big = np.asarray(cqc.grid_integrated_cdf(values, grid, t))
    for i in range(2):
        for j in range(4):
            fine = np.linspace(-3.0, float(t[i, j]), 100_001)
            vals = np.interp(fine, np.asarray(grid), np.asarray(values[0]))
            assert big[i, j] == pytest.approx(np.trapezoid(vals, fine), abs=1e-4)


def test_direct_loss_gradient_is_the_pseudo_outcome():
    rng = np.random.default_rng(1)
    n, m, k = 50, 3, 41
    grid = jnp.linspace(-4, 4, k)
    f0 = jnp.asarray(np.sort(rng.uniform(size=(n, k)), axis=1), jnp.float32)
    f1 = jnp.asarray(np.sort(rng.uniform(size=(n, k)), axis=1), jnp.float32)
    a = jnp.asarray(rng.integers(0, 2, n), jnp.float32)
    y = jnp.asarray(rng.normal(size=n), jnp.float32)
    pi = jnp.asarray(rng.uniform(0.1, 0.9, n), jnp.float32)
    y0 = jnp.asarray(rng.normal(size=(n, m)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(n, m)) * 1.5, jnp.float32)
    f0_y0 = cqc.grid_cdf(f0, grid, y0)
    c = cqc.control_term(y0, a[:, None], y[:, None], pi[:, None], f0_y0)
    grad = jax.grad(lambda gg: jnp.sum(cqc.direct_loss(gg, c, a, y, pi, f1, grid)))(g)
    psi = cqc.pseudo_outcome(y0, g, a[:, None], y[:, None], pi[:, None], f0_y0,
                             cqc.grid_cdf(f1, grid, g))
    np.testing.assert_allclose(np.asarray(grad), np.asarray(psi), atol=1e-5)


@pytest.mark.parametrize("which", ["both_right", "pi_right", "cdf_right"])
def test_direct_objective_minimizer_is_g_star_with_exact_nuisances(which):
    """At X = X0, the sample mean of l_i(t; y0) over many units is minimized at 2 y0."""
    n = 40_000
    a, y, pi, mu = _draws_at_x0(n, 2)
    grid = jnp.linspace(-8, 8, 161)
    f0_row = stats.norm.cdf(np.asarray(grid), mu, 1)
    f1_row = stats.norm.cdf(np.asarray(grid), 2 * mu, 2)
    pi_hat = pi if which != "cdf_right" else 0.5 * pi + 0.1
    if which == "pi_right":
        f0_row, f1_row = stats.norm.cdf(np.asarray(grid), 0, 3), stats.norm.cdf(np.asarray(grid))
    f0 = jnp.broadcast_to(jnp.asarray(f0_row, jnp.float32), (n, grid.shape[0]))
    f1 = jnp.broadcast_to(jnp.asarray(f1_row, jnp.float32), (n, grid.shape[0]))
    pi_v = jnp.full((n,), pi_hat, jnp.float32)
    for y0 in (-1.0, 0.3, 1.5):
        ts = np.linspace(2 * y0 - 1.5, 2 * y0 + 1.5, 61)
        y0_col = jnp.full((n, ts.size), y0)
        c = cqc.control_term(y0_col, a[:, None], y[:, None], pi_v[:, None],
                             cqc.grid_cdf(f0, grid, y0_col))
        g = jnp.broadcast_to(jnp.asarray(ts, jnp.float32), (n, ts.size))
        risk = np.asarray(jnp.mean(cqc.direct_loss(g, c, a, y, pi_v, f1, grid), axis=0))
        t_min = ts[int(np.argmin(risk))]
        assert abs(t_min - 2 * y0) < 0.2, (which, y0, t_min)


def test_pseudo_outcome_bad_input():
    with pytest.raises(ValueError, match="pseudo_outcome: arguments do not broadcast"):
        cqc.pseudo_outcome(np.zeros(3), np.zeros(4), 1.0, 0.0, 0.5, 0.1, 0.2)


def test_control_term_bad_input():
    with pytest.raises(ValueError, match=r"control_term: arguments do not broadcast: y0\(3,\)"):
        cqc.control_term(np.zeros(3), np.zeros(4), 0.0, 0.5, 0.1)


def test_grid_functions_bad_input():
    grid = jnp.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"values must have shape \(n, 5\)"):
        cqc.grid_cdf(jnp.zeros((3, 4)), grid, jnp.zeros(3))
    with pytest.raises(ValueError, match="t must have shape"):
        cqc.grid_integrated_cdf(jnp.zeros((3, 5)), grid, jnp.zeros(4))
    with pytest.raises(ValueError, match="grid must be 1-D with >= 2 points"):
        cqc.grid_cdf(jnp.zeros((3, 1)), jnp.zeros(1), jnp.zeros(3))


def test_direct_loss_bad_input():
    grid = jnp.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="g and c must both be"):
        cqc.direct_loss(jnp.zeros((3, 2)), jnp.zeros((3, 1)), jnp.zeros(3), jnp.zeros(3),
                        jnp.ones(3) / 2, jnp.zeros((3, 5)), grid)
    with pytest.raises(ValueError, match=r"pi must have shape \(3,\)"):
        cqc.direct_loss(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros(3),
                        jnp.ones(4) / 2, jnp.zeros((3, 5)), grid)
