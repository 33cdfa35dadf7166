"""newton_schulz / polar_svd / ns_diagnostics against float64 NumPy/SciPy references."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optax.contrib import _muon as optax_muon

import muon_ns
from muon_ns import theory
from tests.muon_ns._reference import ns_numpy, polar_scipy, residual_on_range


def _ns(x, coeffs, steps, **kw):
    """Jitted newton_schulz (eager dispatch of every small op is slow on a shared CPU)."""
    table = muon_ns.resolve_coeffs(coeffs, steps)
    return jax.jit(lambda a: muon_ns.newton_schulz(a, table, steps, **kw))(x)


def _gauss(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _log_uniform(m, n, cond, seed=0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((m, m)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    k = min(m, n)
    s = np.exp(rng.uniform(-np.log(cond), 0.0, k))
    s[0], s[-1] = 1.0, 1.0 / cond
    return (u[:, :k] * s) @ v[:, :k].T


def test_polar_svd_matches_scipy_polar():
    for shape in [(12, 20), (20, 12), (16, 16)]:
        x = _gauss(shape)
        np.testing.assert_allclose(muon_ns.polar_svd(x), polar_scipy(x), atol=2e-5)
    xb = _gauss((3, 8, 5), seed=1)
    got = np.asarray(muon_ns.polar_svd(xb))
    for i in range(3):
        np.testing.assert_allclose(got[i], polar_scipy(xb[i]), atol=2e-5)


@pytest.mark.parametrize("kappa,q,normalization", [
    (1, 1, "max1_frobenius"), (1, 6, "frobenius"), (2, 3, "max1_frobenius"),
    (2, 6, "max1_frobenius"), (3, 2, "frobenius"), (4, 4, "max1_frobenius"),
])
def test_ns_error_within_theorem_bound(kappa, q, normalization):
    # eps_q = ||X_q - Polar(M)||_op <= 1 - sqrt(1 - delta_0^{(kappa+1)^q}), delta_0 measured
    # independently from X_0's singular values in float64.
    m = _gauss((24, 40), seed=kappa) * 0.3
    x_q = np.asarray(_ns(m, f"taylor{kappa}", q, normalization=normalization),
                     np.float64)
    fro = np.linalg.norm(m.astype(np.float64))
    x0 = m / (max(1.0, fro) if normalization == "max1_frobenius" else fro + 1e-8)
    delta_0 = residual_on_range(x0)
    err = np.linalg.norm(x_q - polar_scipy(m), 2)
    bound = float(theory.eps_bound(delta_0, kappa, q))
    assert err <= bound + 1e-5, (err, bound)
    assert residual_on_range(x_q) <= float(theory.delta_bound(delta_0, kappa, q)) + 1e-5


def test_ns_converges_to_polar_for_many_steps():
    m = _log_uniform(16, 24, cond=10.0)
    x = _ns(jnp.asarray(m, jnp.float32), "taylor2", 12, normalization="spectral_bound")
    np.testing.assert_allclose(x, polar_scipy(m), atol=2e-5)


@pytest.mark.parametrize("scheme,shape", [("taylor1", (10, 18)), ("taylor3", (18, 10)),
                                          ("jordan", (18, 10)), ("polar_express", (10, 18))])
def test_ns_matches_float64_numpy_iteration(scheme, shape):
    x = _gauss(shape, seed=3)
    rows = muon_ns.resolve_coeffs(scheme, 4)
    got = _ns(x, scheme, 4)
    np.testing.assert_allclose(got, ns_numpy(x, rows), atol=5e-5)


def test_ns_per_step_table_and_mixed_degrees():
    x = _gauss((9, 14), seed=4)
    table = ((1.5, -0.5), (1.875, -1.25, 0.375), (3.4445, -4.7750, 2.0315))
    np.testing.assert_allclose(_ns(x, table, 3), ns_numpy(x, table), atol=5e-5)


@pytest.mark.parametrize("scheme,shape", [("jordan", (16, 64)), ("taylor3", (40, 8)),
                                          ("polar_express", (2, 12, 40))])
def test_gram_iteration_equals_direct_iteration(scheme, shape):
    x = _gauss(shape, seed=9)
    gram = _ns(x, scheme, 5, method="gram")
    direct = _ns(x, scheme, 5, method="direct")
    np.testing.assert_allclose(gram, direct, atol=2e-5)
    rows = muon_ns.resolve_coeffs(scheme, 5)
    ref = ns_numpy(x, rows) if x.ndim == 2 else np.stack([ns_numpy(v, rows) for v in x])
    np.testing.assert_allclose(gram, ref, atol=2e-5)


def test_ns_matches_optax_orthogonalizer():
    x = _gauss((32, 48), seed=5)
    coeffs = jnp.asarray((3.4445, -4.7750, 2.0315))
    ref = optax_muon.orthogonalize_via_newton_schulz(x, coeffs, 5)
    np.testing.assert_allclose(_ns(x, "jordan", 5), ref, atol=1e-6)
    ref_t = optax_muon.orthogonalize_via_newton_schulz(x.T, coeffs, 5)
    np.testing.assert_allclose(_ns(x.T, "jordan", 5), ref_t, atol=1e-6)


def test_batched_equals_per_matrix_and_jit_vmap():
    xb = _gauss((2, 3, 8, 12), seed=6)
    got = np.asarray(jax.jit(lambda x: muon_ns.newton_schulz(x, "taylor2", 5))(xb))
    chex.assert_shape(got, xb.shape)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(got[i, j], ns_numpy(xb[i, j],
                                                           muon_ns.resolve_coeffs("taylor2", 5)),
                                       atol=5e-5)
    via_vmap = jax.jit(jax.vmap(jax.vmap(lambda x: muon_ns.newton_schulz(x, "taylor2", 5))))(xb)
    np.testing.assert_allclose(got, via_vmap, atol=1e-6)


def test_compute_dtype_bfloat16():
    x = _gauss((64, 96), seed=7)
    got = _ns(x, "jordan", 5, compute_dtype=jnp.bfloat16)
    assert got.dtype == jnp.float32
    ref = ns_numpy(x, muon_ns.resolve_coeffs("jordan", 5))
    err = np.max(np.abs(np.asarray(got) - ref))
    assert 0 < err < 0.1  # bf16 has 8 mantissa bits; it differs, but only at that level
    x16 = jnp.asarray(x, jnp.bfloat16)
    assert _ns(x16, "jordan", 5).dtype == jnp.bfloat16


def test_zero_steps_is_the_normalization():
    x = _gauss((5, 7))
    np.testing.assert_allclose(muon_ns.newton_schulz(x, "taylor1", 0,
                                                     normalization="max1_frobenius"),
                               x / max(1.0, np.linalg.norm(x)), rtol=1e-6)
    # spectral_bound: X / ||X X^T||_F^{1/2} has operator norm <= 1
    y = np.asarray(muon_ns.newton_schulz(x, "taylor1", 0, normalization="spectral_bound"))
    g = x @ x.T
    np.testing.assert_allclose(y, x / np.sqrt(np.linalg.norm(g)), rtol=1e-5)
    assert np.linalg.norm(y, 2) <= 1 + 1e-6


def test_zero_matrix_with_eps_zero_gives_zero_not_nan():
    # X / (||X|| + 0) is 0/0 at X = 0; the NS image of the zero matrix is the zero matrix.
    for normalization in ("frobenius", "spectral_bound"):
        got = np.asarray(muon_ns.newton_schulz(jnp.zeros((3, 4)), "taylor1", 3,
                                               normalization=normalization, eps=0.0))
        np.testing.assert_array_equal(got, np.zeros((3, 4)))


def test_ns_diagnostics_against_direct_measurement():
    m = _gauss((3, 12, 20), seed=8)
    d = jax.jit(lambda a: muon_ns.ns_diagnostics(a, "taylor2", 3,
                                                 normalization="max1_frobenius"))(m)
    d = muon_ns.NSDiagnostics(*(np.asarray(f) for f in d))
    chex.assert_shape(d.delta_0, (3,))
    x_q = np.asarray(_ns(m, "taylor2", 3, normalization="max1_frobenius"), np.float64)
    for i in range(3):
        x0 = m[i] / max(1.0, np.linalg.norm(m[i]))
        eps_q = np.linalg.norm(x_q[i] - polar_scipy(m[i]), 2)
        np.testing.assert_allclose(d.delta_0[i], residual_on_range(x0), rtol=1e-4)
        np.testing.assert_allclose(d.delta_q[i], residual_on_range(x_q[i]), rtol=1e-3)
        np.testing.assert_allclose(d.eps_q[i], eps_q, rtol=1e-3)
        np.testing.assert_allclose(d.chi[i], 1 / (1 - eps_q), rtol=1e-3)
        bound = (1 - residual_on_range(x0) ** (3**3)) ** -0.5
        np.testing.assert_allclose(d.chi_bound[i], bound, rtol=1e-4)
        assert d.chi[i] <= d.chi_bound[i]
    # Jordan's scheme is outside the theory: no finite bound.
    assert np.all(np.isinf(muon_ns.ns_diagnostics(m, "jordan", 3).chi_bound))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"newton_schulz: x must be a matrix .*got shape \(5,\)"):
        muon_ns.newton_schulz(jnp.ones(5))
    with pytest.raises(TypeError, match=r"floating or complex dtype, got int32"):
        muon_ns.newton_schulz(jnp.ones((3, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"table has 2 rows, so steps must be <= 2, got 5"):
        muon_ns.newton_schulz(jnp.ones((3, 4)), ((1.5, -0.5), (1.5, -0.5)), 5)
    with pytest.raises(ValueError, match=r"unknown scheme 'taylor0'"):
        muon_ns.newton_schulz(jnp.ones((3, 4)), "taylor0", 5)
    with pytest.raises(ValueError, match=r"normalization must be one of .*got 'l2'"):
        muon_ns.newton_schulz(jnp.ones((3, 4)), normalization="l2")
    with pytest.raises(ValueError, match=r"method must be one of \['auto', 'direct', 'gram'\]"):
        muon_ns.newton_schulz(jnp.ones((3, 4)), method="fast")
    with pytest.raises(ValueError, match=r"eps must be >= 0, got -1"):
        muon_ns.newton_schulz(jnp.ones((3, 4)), eps=-1)
    with pytest.raises(ValueError, match=r"non-empty matrix axes"):
        muon_ns.newton_schulz(jnp.ones((0, 4)))
    with pytest.raises(ValueError, match=r"polar_svd: x must be a matrix"):
        muon_ns.polar_svd(jnp.ones(3))
    with pytest.raises(ValueError, match=r"ns_diagnostics: x must be a matrix"):
        muon_ns.ns_diagnostics(jnp.ones(3))
    with pytest.raises(ValueError, match=r"ns_diagnostics: output has shape \(4, 3\) but x "
                                         r"has \(3, 4\)"):
        muon_ns.ns_diagnostics(jnp.ones((3, 4)), output=jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"gram_restart must be an int >= 1, got 0"):
        muon_ns.newton_schulz(jnp.ones((3, 4)), gram_restart=0)


def test_ns_diagnostics_report_nan_as_nan():
    m = _gauss((6, 10), seed=11)
    m[2, 3] = np.nan
    d = muon_ns.ns_diagnostics(jnp.asarray(m), "taylor2", 3)
    assert all(np.isnan(np.asarray(f)) for f in d), d
    # a finite input with a non-finite output (the blow-up the diagnostics must show)
    good = jnp.asarray(_gauss((6, 10), seed=12))
    bad_out = jnp.full((6, 10), jnp.inf)
    d = muon_ns.ns_diagnostics(good, "taylor2", 3, output=bad_out)
    assert np.isnan(np.asarray(d.eps_q)) and np.isnan(np.asarray(d.chi))


def test_ns_diagnostics_measure_the_output_given():
    # The measured eps_q / delta_q are those of the matrix passed as output, not of an ideal
    # iteration: compare with a float64 NumPy measurement of a perturbed polar factor.
    rng = np.random.default_rng(13)
    m = rng.standard_normal((8, 5)) @ rng.standard_normal((5, 14))  # rank 5
    u, s, vh = np.linalg.svd(m, full_matrices=False)
    u_r, v_r = u[:, :5], vh[:5].T
    out = u_r @ v_r.T + 0.05 * rng.standard_normal((8, 14))
    d = muon_ns.ns_diagnostics(jnp.asarray(m, jnp.float32), "taylor2", 5,
                               output=jnp.asarray(out, jnp.float32))
    y = u_r.T @ out
    np.testing.assert_allclose(d.eps_q, np.linalg.norm(y - v_r.T, 2), rtol=1e-4)
    np.testing.assert_allclose(d.delta_q, np.abs(np.linalg.eigvalsh(y @ y.T) - 1).max(),
                               rtol=1e-4)
    # bfloat16 compute: the measured error is that of the bf16 output, far above the ideal
    x = jnp.asarray(_gauss((16, 40), seed=14))
    d16 = muon_ns.ns_diagnostics(x, "taylor2", 12, compute_dtype=jnp.bfloat16)
    out16 = np.asarray(muon_ns.newton_schulz(x, "taylor2", 12, compute_dtype=jnp.bfloat16),
                       np.float64)
    np.testing.assert_allclose(d16.eps_q, np.linalg.norm(out16 - polar_scipy(x), 2), rtol=1e-3)
    assert float(d16.eps_q) > 10 * float(d16.eps_q_ideal)
