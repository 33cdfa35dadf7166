"""simulate: the true CQC matches an empirical quantile match; exact nuisances are right."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import cqc


def _window_quantile_match(sim, s_of_x, s0, y0_levels, half_width=0.02):
    """Empirical F1^{-1}(F0(y0)) among units with s(X) within half_width of s0."""
    x, a, y = (np.asarray(v) for v in (sim.x, sim.a, sim.y))
    near = np.abs(s_of_x(x) - s0) < half_width
    y0_sample = y[near & (a == 0)]
    y1_sample = y[near & (a == 1)]
    assert y0_sample.size > 1500 and y1_sample.size > 1500
    y0 = np.quantile(y0_sample, y0_levels)
    levels = np.searchsorted(np.sort(y0_sample), y0, side="right") / y0_sample.size
    return y0, np.quantile(y1_sample, levels)


@pytest.mark.parametrize("scenario", [1, 2, 4])
def test_g_true_matches_monte_carlo_quantile_match(scenario):
    sim = cqc.simulate(scenario, 1_000_000, jax.random.key(scenario), gamma=1.0)
    for x0 in (0.0, 0.8):
        y0, g_mc = _window_quantile_match(sim, lambda x: x[:, 0], x0, np.linspace(0.1, 0.9, 9))
        g = np.asarray(sim.g_true(y0, np.full((y0.size, 1), x0)))
        np.testing.assert_allclose(g, g_mc, atol=0.12)


def test_g_true_scenario3_matches_monte_carlo_quantile_match():
    sim = cqc.simulate(3, 1_000_000, jax.random.key(7), gamma=1.0)
    beta = np.asarray(sim.g_true.beta)
    s = np.asarray(sim.x) @ beta
    s0 = float(np.median(s))
    y0, g_mc = _window_quantile_match(sim, lambda x: x @ beta, s0, np.linspace(0.1, 0.9, 9),
                                      half_width=0.01)
    x0 = np.asarray(sim.x)[np.argmin(np.abs(s - s0))]
    g = np.asarray(sim.g_true(y0, np.broadcast_to(x0, (y0.size, 10))))
    np.testing.assert_allclose(g, g_mc, atol=0.12)


def test_closed_form_cqcs_from_the_issue():
    x = np.linspace(-1, 1, 7)[:, None]
    y0 = np.linspace(-2, 2, 7)
    for scenario, expected in [(1, 2 * y0), (2, 2 * y0),
                               (4, (0.5 * x[:, 0] + 1.5) * y0 + 0.25 * x[:, 0] + 0.75)]:
        g = cqc.simulate(scenario, 3, jax.random.key(0), gamma=3.0).g_true(y0, x)
        np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-5, atol=1e-5)
    sim3 = cqc.simulate(3, 7, jax.random.key(0), gamma=3.0)
    np.testing.assert_allclose(np.asarray(sim3.g_true(y0, sim3.x)), y0 - 0.5, atol=1e-5)


def test_exact_nuisances_against_scipy():
    d = cqc.simulate(4, 3, jax.random.key(0), gamma=2.0).g_true
    x = np.array([[-0.7], [0.1], [0.8]])
    t = np.array([-1.0, 0.5, 2.0])
    mu0 = np.sin(2 * np.pi * x[:, 0]) / (0.5 * x[:, 0] + 1.5)
    mu1 = np.sin(2 * np.pi * x[:, 0]) + 0.25 * x[:, 0] + 0.75
    s1 = 0.5 * x[:, 0] + 1.5
    np.testing.assert_allclose(np.asarray(d.cdf(0, t, x)), stats.norm.cdf(t, mu0, 1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(d.cdf(1, t, x)), stats.norm.cdf(t, mu1, s1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(d.propensity(x)),
                               0.4 * np.sin(2 * np.pi * x[:, 0]) + 0.5, atol=1e-6)
    # integrated CDF = E[(t - Y)_+] by quadrature
    for i in range(3):
        ref = integrate.quad(lambda v, i=i: max(t[i] - v, 0) * stats.norm.pdf(v, mu1[i], s1[i]),
                             -30, 30, points=[t[i]])[0]
        got = float(d.integrated_cdf(1, t[i:i + 1], x[i:i + 1])[0])
        assert got == pytest.approx(ref, abs=1e-4)


def test_uniform_noise_scenario_has_unit_variance_bounded_noise():
    sim = cqc.simulate(2, 50_000, jax.random.key(1), gamma=0.0)
    y0 = np.asarray(sim.y)[np.asarray(sim.a) == 0]  # gamma=0: mu0 = 0, sigma0 = 1
    assert np.abs(y0).max() <= np.sqrt(3) + 1e-5
    assert np.var(y0) == pytest.approx(1.0, abs=0.03)


def test_shapes_and_treatment_values():
    sim = cqc.simulate(3, 100, jax.random.key(0))
    assert sim.x.shape == (100, 10) and sim.a.shape == (100,) and sim.y.shape == (100,)
    assert set(np.unique(np.asarray(sim.a)).tolist()) <= {0.0, 1.0}
    assert jnp.all(jnp.abs(sim.x) <= 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scenario=7, n=10), "scenario must be one of"),
        (dict(scenario=1, n=0), "n must be >= 1"),
        (dict(scenario=1, n=10, gamma=-1.0), "gamma must be a finite number >= 0"),
        (dict(scenario=1, n=10, gamma=float("nan")), "gamma must be a finite number"),
    ],
)
def test_simulate_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cqc.simulate(key=jax.random.key(0), **kwargs)


def test_simulate_bad_key_and_n_type():
    with pytest.raises(TypeError, match="key must be a jax.random.key"):
        cqc.simulate(1, 10, 0)
    with pytest.raises(TypeError, match="n must be an int"):
        cqc.simulate(1, 10.0, jax.random.key(0))


def test_design_call_rejects_wrong_columns():
    d = cqc.simulate(4, 3, jax.random.key(0)).g_true
    with pytest.raises(ValueError, match="x has 2 column"):
        d(np.zeros(3), np.zeros((3, 2)))
