"""Theory utilities against the paper's closed forms and independent computations."""

import jax.numpy as jnp
import numpy as np
import pytest

import muon_ns
from muon_ns import theory


def test_residual_map_closed_forms():
    d = np.linspace(0, 1, 101)
    np.testing.assert_allclose(theory.residual_map(d, 1), d**2 * (3 + d) / 4, atol=1e-6)
    np.testing.assert_allclose(theory.residual_map(d, 2), d**3 * (40 + 15 * d + 9 * d**2) / 64,
                               atol=1e-6)


@pytest.mark.parametrize("kappa", [1, 2, 3])
def test_residual_map_is_one_ns_step_on_singular_values(kappa):
    # X = diag(sigma) with sigma^2 = 1 - delta: one NS step gives 1 - sigma_1^2 = phi(delta).
    delta = np.array([0.05, 0.3, 0.6, 0.9])
    x = np.diag(np.sqrt(1 - delta)).astype(np.float32)
    x1 = np.asarray(muon_ns.newton_schulz(x, f"taylor{kappa}", 1, normalization="none"))
    np.testing.assert_allclose(1 - np.diag(x1) ** 2, theory.residual_map(delta, kappa),
                               atol=1e-5)
    assert np.all(np.asarray(theory.residual_map(delta, kappa)) <= delta ** (kappa + 1) + 1e-7)


def test_bounds_formulas_and_their_relation():
    d0, kappa, q = 0.9, 2, 3
    b = d0 ** (3**3)
    np.testing.assert_allclose(theory.delta_bound(d0, kappa, q), b, rtol=1e-6)
    np.testing.assert_allclose(theory.eps_bound(d0, kappa, q), 1 - np.sqrt(1 - b), rtol=1e-5)
    np.testing.assert_allclose(theory.chi_bound(d0, kappa, q),
                               1 / (1 - theory.eps_bound(d0, kappa, q)), rtol=1e-5)
    assert float(theory.chi_bound(0.5, 1, 6)) == pytest.approx(1.0, abs=1e-12)


def test_iterated_residual_map_respects_bound():
    d0 = np.linspace(0.0, 0.999, 50)
    for kappa in (1, 2, 4):
        d = d0
        for q in range(1, 6):
            d = np.asarray(theory.residual_map(np.clip(d, 0, 1), kappa))
            bound = np.asarray(theory.delta_bound(d0, kappa, q))
            assert np.all(d <= bound + 1e-6)  # float32 cancellation in 1 - lambda p^2


def test_theorem1_tuning_hand_values():
    assert theory.theorem1_step_size(L=2.0, D=8.0, T=100, beta=0.75) == pytest.approx(0.1)
    # sqrt(L D B) / (sigma sqrt(r T)) = sqrt(64) / (2 sqrt(256)) = 0.25
    assert theory.theorem1_momentum(L=1.0, D=4.0, B=16, sigma=2.0, rank=4, T=64) == \
        pytest.approx(0.75)
    assert theory.theorem1_momentum(L=100.0, D=100.0, B=100, sigma=0.1, rank=1, T=1) == 0.0


def test_nuclear_norm_and_stationarity():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((4, 6, 9)).astype(np.float32)
    nuc = [np.linalg.norm(gi.astype(np.float64), "nuc") for gi in g]
    np.testing.assert_allclose(theory.nuclear_norm(g), nuc, rtol=1e-5)
    np.testing.assert_allclose(theory.stationarity(g), np.mean(nuc), rtol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"residual_map: kappa must be an int >= 1, got 0"):
        theory.residual_map(0.5, 0)
    with pytest.raises(ValueError, match=r"residual_map: delta must lie in \[0, 1\]"):
        theory.residual_map(1.5, 1)
    with pytest.raises(ValueError, match=r"delta_bound: q must be an int >= 0, got -1"):
        theory.delta_bound(0.5, 1, -1)
    with pytest.raises(ValueError, match=r"eps_bound: delta must lie in \[0, 1\]"):
        theory.eps_bound(-0.1, 1, 1)
    with pytest.raises(ValueError, match=r"chi_bound: delta must lie in \[0, 1\)"):
        theory.chi_bound(1.0, 1, 1)
    with pytest.raises(ValueError, match=r"residual_map: delta must lie in"):
        theory.residual_map(jnp.nan, 1)
    with pytest.raises(ValueError, match=r"theorem1_step_size: L must be a finite number > 0"):
        theory.theorem1_step_size(L=0.0, D=1.0, T=10, beta=0.5)
    with pytest.raises(ValueError, match=r"theorem1_step_size: beta must be in \[0, 1\), got 1"):
        theory.theorem1_step_size(L=1.0, D=1.0, T=10, beta=1)
    with pytest.raises(TypeError, match=r"theorem1_momentum: rank must be a number"):
        theory.theorem1_momentum(L=1.0, D=1.0, B=1, sigma=1.0, rank="4", T=1)
    with pytest.raises(ValueError, match=r"theorem1_momentum: sigma must be a finite number > 0"):
        theory.theorem1_momentum(L=1.0, D=1.0, B=1, sigma=-1.0, rank=4, T=1)
    with pytest.raises(ValueError, match=r"nuclear_norm: g must be a matrix"):
        theory.nuclear_norm(np.ones(3))
    with pytest.raises(ValueError, match=r"stationarity: grad_history must have shape \(T, m, n\)"):
        theory.stationarity(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"stationarity: grad_history contains NaN or inf"):
        theory.stationarity(np.full((2, 3, 3), np.inf))
