"""Coefficient schemes: Taylor coefficients against a symbolic series, the theory check."""

import numpy as np
import pytest
import sympy

import muon_ns


def _taylor_sympy(kappa):
    """Truncated series of lambda^(-1/2) about lambda = 1, expanded in powers of lambda."""
    lam = sympy.symbols("lam")
    series = sympy.series(lam ** sympy.Rational(-1, 2), lam, 1, kappa + 1).removeO()
    poly = sympy.Poly(sympy.expand(series), lam)
    return [float(poly.coeff_monomial(lam**j)) for j in range(kappa + 1)]


@pytest.mark.parametrize("kappa", range(1, 7))
def test_taylor_coeffs_match_symbolic_series(kappa):
    np.testing.assert_allclose(muon_ns.taylor_coeffs(kappa), _taylor_sympy(kappa), rtol=1e-14,
                               atol=1e-14)


def test_taylor_low_orders_are_the_papers():
    assert muon_ns.taylor_coeffs(1) == (1.5, -0.5)
    assert muon_ns.taylor_coeffs(2) == (15 / 8, -5 / 4, 3 / 8)


def test_residual_polynomial_closed_forms():
    # phi_1 = delta^2 (3 + delta) / 4 ; phi_2 = delta^3 (40 + 15 delta + 9 delta^2) / 64
    np.testing.assert_allclose(muon_ns.residual_polynomial(muon_ns.taylor_coeffs(1)),
                               [0, 0, 3 / 4, 1 / 4], atol=1e-15)
    np.testing.assert_allclose(muon_ns.residual_polynomial(muon_ns.taylor_coeffs(2)),
                               np.array([0, 0, 0, 40, 15, 9]) / 64, atol=1e-15)


@pytest.mark.parametrize("kappa", range(1, 7))
def test_taylor_family_satisfies_theory_with_order_kappa_plus_one(kappa):
    c = muon_ns.taylor_coeffs(kappa)
    assert muon_ns.convergence_order(c) == kappa + 1
    assert muon_ns.scheme_satisfies_theory(c)
    assert muon_ns.scheme_satisfies_theory(f"taylor{kappa}")


def test_tuned_schemes_do_not_satisfy_theory():
    # Jordan's quintic: p(1) = 3.4445 - 4.775 + 2.0315 = 0.701, so sigma = 1 is not fixed.
    assert not muon_ns.scheme_satisfies_theory("jordan")
    assert not muon_ns.scheme_satisfies_theory((3.4445, -4.7750, 2.0315))
    assert not muon_ns.scheme_satisfies_theory("dion")
    assert not muon_ns.scheme_satisfies_theory("polar_express")
    # p = 2 - lambda has a fixed point at 1 but only first order (phi = -delta + ...).
    assert muon_ns.convergence_order((2.0, -1.0)) == 1
    assert not muon_ns.scheme_satisfies_theory((2.0, -1.0))
    # order 2 but overshoots delta^2 on [0, 1]: (3/2, -1/2) scaled up slightly.
    assert not muon_ns.scheme_satisfies_theory((1.5 * 1.1, -0.5 * 1.1))


def test_resolve_named_and_tables():
    assert muon_ns.resolve_coeffs("jordan", 3) == ((3.4445, -4.7750, 2.0315),) * 3
    pe = muon_ns.resolve_coeffs("polar_express", 10)
    assert len(pe) == 10 and pe[-1] == (1.875, -1.25, 0.375) and pe[7:] == (pe[-1],) * 3
    np.testing.assert_allclose(pe[0], (8.28721201814563 / 1.01, -23.595886519098837 / 1.01**3,
                                       17.300387312530933 / 1.01**5))
    assert len(muon_ns.resolve_coeffs("dion", 3)) == 3
    table = ((1.5, -0.5), (1.875, -1.25, 0.375))
    assert muon_ns.resolve_coeffs(table, 2) == ((1.5, -0.5, 0.0), (1.875, -1.25, 0.375))
    # a longer table is used as optax uses one: its last `steps` rows
    assert muon_ns.resolve_coeffs(table, 1) == ((1.875, -1.25, 0.375),)
    assert muon_ns.resolve_coeffs("standard", 2) == muon_ns.resolve_coeffs("jordan", 2)
    assert muon_ns.resolve_coeffs("taylor9", 1)[0] == muon_ns.taylor_coeffs(9)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"kappa must be >= 1, got 0"):
        muon_ns.taylor_coeffs(0)
    with pytest.raises(TypeError, match=r"kappa must be an int >= 1, got 1.5"):
        muon_ns.taylor_coeffs(1.5)
    with pytest.raises(ValueError, match=r"unknown scheme 'jordon'; valid names are .*'jordan'"):
        muon_ns.resolve_coeffs("jordon", 5)
    with pytest.raises(ValueError, match=r"table has 2 rows, so steps must be <= 2, got 3"):
        muon_ns.resolve_coeffs(((1.5, -0.5), (1.5, -0.5)), 3)
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -1"):
        muon_ns.resolve_coeffs("taylor1", -1)
    with pytest.raises(ValueError, match=r"'dion' has 5 rows, so steps must be <= 5, got 6"):
        muon_ns.resolve_coeffs("dion", 6)
    with pytest.raises(ValueError, match=r"at least 2 coefficients"):
        muon_ns.residual_polynomial((1.0,))
    with pytest.raises(ValueError, match=r"non-finite coefficient"):
        muon_ns.convergence_order((1.0, float("nan")))
    with pytest.raises(ValueError, match=r"grid must be >= 101, got 5"):
        muon_ns.scheme_satisfies_theory("taylor1", grid=5)
    with pytest.raises(ValueError, match=r"unknown scheme"):
        muon_ns.scheme_order("nope")
