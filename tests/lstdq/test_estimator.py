"""LSTDQ against exact ground truth; streaming and sharded statistics; bad inputs."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstdq as L
from tests.lstdq.conftest import bellman_q, occupancy_series

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_population_statistics_give_exact_q(seed, x64):
    k = jax.random.split(jax.random.key(seed), 4)
    mdp = L.random_mdp(k[0], 6, 2)
    pi = L.random_policy(k[1], 6, 2)
    gamma = 0.9
    q = bellman_q(mdp, pi, gamma)  # value iteration, not the library's solve
    phi = L.realizable_features(k[2], q, 4)
    mu = L.random_policy(k[3], 6, 2) / 6
    st = L.population_stats(mdp, pi, mu, phi, gamma)
    theta = L.solve(L.LSTDQStats(*(jnp.asarray(x) for x in st)))
    np.testing.assert_allclose(phi @ np.asarray(theta), q, atol=1e-8)
    j_true = float(np.sum(mdp.initial[:, None] * pi * q))
    j_hat = float(L.value(theta, np.einsum("s,sa,sad->d", mdp.initial, pi, phi)))
    assert abs(j_hat - j_true) < 1e-8


def test_linear_mdp_population_is_exact(x64):
    mdp, phi = L.linear_mdp(jax.random.key(4), 9, 3, 4)
    pi = L.random_policy(jax.random.key(5), 9, 3)
    mu = np.full((9, 3), 1 / 27)
    st = L.population_stats(mdp, pi, mu, phi, 0.95)
    theta = L.solve(L.LSTDQStats(*(jnp.asarray(x) for x in st)))
    np.testing.assert_allclose(phi @ np.asarray(theta), bellman_q(mdp, pi, 0.95, 6000),
                               atol=1e-7)


def test_sampled_error_matches_first_order_theory(realizable_problem):
    """RMSE of J_hat over repetitions equals the closed-form asymptotic standard deviation
    sqrt(E_mu[(w delta)^2] / n) / (1 - gamma), w = nu^T Sigma^{-1} phi, nu summed as a series."""
    mdp, pi, gamma, q, phi, mu = realizable_problem
    s_n, a_n, d = phi.shape
    flat = phi.reshape(-1, d)
    m = mu.reshape(-1)
    sigma = flat.T @ (m[:, None] * flat)
    phibar = np.einsum("sa,sad->sd", pi, phi)
    cross = np.einsum("x,xd,xt,te->de", m, flat, mdp.transitions.reshape(-1, s_n), phibar)
    mmat = np.linalg.solve(sigma, cross)
    x = np.einsum("s,sd->d", mdp.initial, phibar)
    nu, term = np.zeros(d), x.copy()
    for _ in range(400):  # nu = (1-gamma) sum_t gamma^t (M^T)^t x0
        nu += term
        term = gamma * mmat.T @ term
    nu *= 1 - gamma
    theta = np.linalg.lstsq(flat, q.reshape(-1), rcond=None)[0]
    w = flat @ np.linalg.solve(sigma, nu)
    delta = (mdp.rewards.reshape(-1)[:, None]
             + gamma * (phibar @ theta)[None, :] - (flat @ theta)[:, None])  # (SA, S')
    var = np.sum(m * w**2 * np.sum(mdp.transitions.reshape(-1, s_n) * delta**2, axis=1))
    sampler = L.make_sampler(mdp, pi, mu, phi, gamma)
    x0 = jnp.asarray(x, jnp.float32)
    j_true = float(np.sum(mdp.initial[:, None] * pi * q))
    reps, small, large = 150, 1_000, 16_000

    def one(key):  # the first `small` rows and all `large` rows of one sample: one compile
        ds = sampler(key, large)
        head = L.Dataset(*(x[:small] for x in ds))
        small_ci, large_ci = L.value_interval(*head, x0), L.value_interval(*ds, x0)
        return (jnp.stack([L.value(L.lstdq(*head), x0), L.value(L.lstdq(*ds), x0)]),
                jnp.stack([small_ci.value, large_ci.value]), jnp.stack([small_ci.se, large_ci.se]),
                jnp.stack([small_ci.lower, large_ci.lower]),
                jnp.stack([small_ci.upper, large_ci.upper]))

    est, j_ci, se, lo, hi = (np.asarray(v, np.float64) for v in
                             jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), reps)))
    errs = est - j_true
    np.testing.assert_allclose(j_ci, est, rtol=1e-4, atol=1e-5)
    for col, n in enumerate((small, large)):  # the 1/sqrt(n) rate and its constant
        sd = np.sqrt(var / n) / (1 - gamma)
        rmse = np.sqrt(np.mean(errs[:, col] ** 2))
        assert 0.75 * sd < rmse < 1.33 * sd, (n, rmse, sd)
        assert abs(errs[:, col].mean()) < 4 * sd / np.sqrt(reps) + 0.1 * sd, (n, sd)
        # the plug-in standard error estimates that same constant from each sample...
        assert 0.85 * sd < np.median(se[:, col]) < 1.15 * sd, (n, np.median(se[:, col]), sd)
        # ...and its 95% interval covers the true J about 95% of the time (150 reps: the
        # binomial sd is 1.8 points)
        cover = np.mean((lo[:, col] <= j_true) & (j_true <= hi[:, col]))
        assert 0.88 <= cover <= 0.995, (n, cover)


def test_sampled_next_action_is_unbiased_too(realizable_problem):
    mdp, pi, gamma, q, phi, mu = realizable_problem
    ds = L.sample_dataset(jax.random.key(1), mdp, pi, mu, phi, gamma, 100_000,
                          next_action="sampled")
    x0 = np.einsum("s,sa,sad->d", mdp.initial, pi, phi)
    j_true = float(np.sum(mdp.initial[:, None] * pi * q))
    assert abs(float(L.value(L.lstdq(*ds), x0)) - j_true) < 0.02 * abs(j_true) + 0.05


def _data(n=1000, d=4, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d)).astype(np.float32)
    fn = rng.normal(size=(n, d)).astype(np.float32)
    r = rng.normal(size=n).astype(np.float32)
    g = (0.9 * (rng.random(n) > 0.1)).astype(np.float32)
    return f, r, g, fn


def test_one_shot_matches_numpy_formula():
    f, r, g, fn = _data()
    a = f.astype(np.float64).T @ (f - g[:, None] * fn) / len(r)
    b = f.astype(np.float64).T @ r / len(r)
    np.testing.assert_allclose(L.lstdq(f, r, g, fn), np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)
    lam = 0.3
    np.testing.assert_allclose(L.lstdq(f, r, g, fn, ridge=lam),
                               np.linalg.solve(a + lam * np.eye(4), b), rtol=1e-4, atol=1e-5)


def test_streaming_equals_one_shot():
    f, r, g, fn = _data(n=1003)
    st = L.init_stats(4)
    for lo, hi in [(0, 10), (10, 500), (500, 501), (501, 1003)]:
        st = L.update_stats(st, f[lo:hi], r[lo:hi], g[lo:hi], fn[lo:hi])
    one = L.compute_stats(f, r, g, fn)
    assert int(st.count) == 1003
    for a, b in zip(st, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)
    left = L.compute_stats(f[:300], r[:300], g[:300], fn[:300])
    right = L.compute_stats(f[300:], r[300:], g[300:], fn[300:])
    merged = L.merge_stats(right, left)
    np.testing.assert_allclose(L.solve(st), L.lstdq(f, r, g, fn), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(L.solve(merged), L.lstdq(f, r, g, fn), rtol=1e-4, atol=1e-5)
    upd = jax.jit(L.update_stats)
    np.testing.assert_allclose(upd(L.init_stats(4), f, r, g, fn).a, one.a, rtol=1e-5, atol=1e-4)


def test_lstdq_jits_and_vmaps():
    f, r, g, fn = _data(n=200)
    batch = [np.stack([x, x[::-1]]) for x in (f, r, g, fn)]
    out = jax.vmap(L.lstdq)(*batch)
    np.testing.assert_allclose(out[0], L.lstdq(f, r, g, fn), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(L.lstdq)(f, r, g, fn), out[0], rtol=1e-4, atol=1e-5)


def test_eight_device_sharded_stats_equal_single_device():
    out = subprocess.run([sys.executable, "-m", "tests.lstdq.multidevice_stats"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK 8 devices" in out.stdout


def test_single_device_sharded_stats():
    f, r, g, fn = _data(n=64)
    st = L.sharded_stats(f, r, g, fn, jax.make_mesh((1,), ("data",)))
    np.testing.assert_allclose(st.a, L.compute_stats(f, r, g, fn).a, rtol=1e-5, atol=1e-4)


def test_baird_needs_ridge_and_then_gets_q(x64):
    # Non-zero rewards (with zero rewards theta = 0 for any A_hat, so Q^pi = 0 proves nothing)
    mdp, phi, pi, mu = L.baird_counterexample()
    mdp = mdp._replace(rewards=np.random.default_rng(0).normal(size=(7, 2)))
    q = bellman_q(mdp, pi, 0.99, iters=20000)  # value iteration, not the library's solve
    # 16 features on 14 pairs: A is singular even in the population; any ridge -> 0 solution
    # reproduces Q^pi (Phi has full row rank)
    st = L.population_stats(mdp, pi, mu, phi, 0.99)
    with pytest.raises(ValueError, match=r"A_hat is singular .*Pass ridge > 0"):
        L.solve(st)
    np.testing.assert_allclose(phi @ np.asarray(L.solve(st, ridge=1e-9)), q, atol=1e-4)
    ds = L.sample_dataset(jax.random.key(0), mdp, pi, mu, phi, 0.99, 5000)
    with pytest.raises(ValueError, match=r"A_hat is singular .*Pass ridge > 0"):
        L.lstdq(*ds)
    # A_hat has rank 14 < 16 on any sample too (phi takes 14 values): a small ridge, or the
    # minimum-norm solution, both give Q^pi up to sampling error (only the dashed rows' next
    # states are random), against |Q| ~ 21 here. A large ridge biases: the smallest non-zero
    # singular value of the population A is 3e-4, so ridge 1e-3 is off by ~10.
    assert np.abs(q).max() > 10
    for theta in (L.lstdq(*ds, ridge=1e-5), L.lstdq(*ds, on_singular="lstsq")):
        assert np.abs(phi @ np.asarray(theta, np.float64) - q).max() < 0.5


def test_singular_status_is_traced_safe():
    from jax.experimental import checkify

    f, r, g, fn = _data(n=50, d=3)
    singular = np.zeros_like(f)
    # jit and vmap: the ok flag says which solves failed; weights are NaN there, not numbers
    theta, info = jax.jit(lambda *a: L.lstdq(*a, return_info=True))(singular, r, g, singular)
    assert not bool(info.ok) and np.isnan(np.asarray(theta)).all()
    batch = [np.stack([x, z]) for x, z in ((f, singular), (r, r), (g, g), (fn, singular))]
    thetas, info = jax.vmap(lambda *a: L.lstdq(*a, on_singular="nan", return_info=True))(*batch)
    np.testing.assert_array_equal(np.asarray(info.ok), [True, False])
    np.testing.assert_allclose(thetas[0], L.lstdq(f, r, g, fn), rtol=1e-4, atol=1e-5)
    assert np.isnan(np.asarray(thetas[1])).all()
    # checkify turns the default "raise" into an error value under jit
    err, _ = checkify.checkify(jax.jit(L.lstdq))(singular, r, g, singular)
    assert "A_hat is singular" in str(err.get())
    err, _ = checkify.checkify(jax.jit(L.lstdq))(f, r, g, fn)
    assert err.get() is None
    # eager: an error naming the singular values
    with pytest.raises(ValueError, match="A_hat is singular"):
        L.lstdq(singular, r, g, singular)


def test_lstsq_fallback_is_the_minimum_norm_solution():
    f, r, g, fn = _data(n=200, d=3)
    f[:, 2], fn[:, 2] = f[:, 1], fn[:, 1]  # a repeated feature: rank 2
    theta, info = L.lstdq(f, r, g, fn, on_singular="lstsq", return_info=True)
    assert not bool(info.ok) and float(info.sigma_min) < 1e-5 * float(info.sigma_max)
    a = f.astype(np.float64).T @ (f - g[:, None] * fn) / len(r)
    b = f.astype(np.float64).T @ r / len(r)
    np.testing.assert_allclose(theta, np.linalg.pinv(a, rcond=1e-5) @ b, rtol=1e-3, atol=1e-4)


def test_float64_statistics_are_solved_in_float64():
    # without JAX's x64: population statistics (float64 NumPy) are not rounded to float32
    mdp = L.random_mdp(jax.random.key(0), 6, 2)
    pi = L.random_policy(jax.random.key(1), 6, 2)
    q = bellman_q(mdp, pi, 0.9)
    phi = L.realizable_features(jax.random.key(2), q, 4)
    st = L.population_stats(mdp, pi, L.random_policy(jax.random.key(3), 6, 2) / 6, phi, 0.9)
    theta = L.solve(st)
    assert theta.dtype == np.float64
    np.testing.assert_allclose(phi @ theta, q, atol=1e-10)
    j = L.value(theta, np.einsum("s,sa,sad->d", mdp.initial, pi, phi))
    assert abs(float(j) - float(np.sum(mdp.initial[:, None] * pi * q))) < 1e-10


def test_count_does_not_wrap():
    st = L.init_stats(2)._replace(count=jnp.asarray(2**31 - 10, jnp.float32))
    ones = np.ones((20, 2), np.float32)
    st = L.update_stats(st, ones, np.ones(20, np.float32), np.zeros(20, np.float32), ones)
    assert float(st.count) == pytest.approx(2**31 + 10, rel=1e-6)  # the int32 count wrapped
    st = L.init_stats(2)
    for _ in range(3):  # exact below 2**24 rows
        st = L.update_stats(st, ones, np.ones(20, np.float32), np.zeros(20, np.float32), ones)
    assert float(st.count) == 60.0


def test_weights_equal_duplicating_rows_and_a_mask_drops_rows():
    f, r, g, fn = _data(n=120)
    w = np.where(np.arange(120) % 3 == 0, 2.0, 1.0).astype(np.float32)
    rep = np.repeat(np.arange(120), w.astype(int))
    weighted = L.compute_stats(f, r, g, fn, weights=w)
    copies = L.compute_stats(f[rep], r[rep], g[rep], fn[rep])
    for x, y in zip(weighted, copies, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(L.lstdq(f, r, g, fn, weights=w), L.lstdq(*(x[rep] for x in
                               (f, r, g, fn))), rtol=1e-4, atol=1e-5)
    mask = (np.arange(120) < 100).astype(np.float32)
    masked = L.compute_stats(f, r, g, fn, weights=mask)
    head = L.compute_stats(f[:100], r[:100], g[:100], fn[:100])
    assert float(masked.count) == 100.0
    for x, y in zip(masked, head, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-4)


def test_sharded_stats_pad_with_weight_zero():
    # 13 rows on a 1-device mesh, and 13 rows padded by hand with weight 0: same statistics,
    # count 13 (padding rows by hand without weights inflated count and the plug-in C)
    f, r, g, fn = _data(n=13)
    mesh = jax.make_mesh((1,), ("data",))
    st = L.sharded_stats(f, r, g, fn, mesh)
    pad = [np.concatenate([x, np.zeros((3,) + x.shape[1:], x.dtype)]) for x in (f, r, g, fn)]
    st_pad = L.sharded_stats(*pad, mesh, weights=np.r_[np.ones(13), np.zeros(3)])
    ref = L.compute_stats(f, r, g, fn)
    x0 = np.array([1.0, 0.5, 0.0, 0.2], np.float32)
    for got in (st, st_pad):
        assert float(got.count) == 13.0
        np.testing.assert_allclose(got.a, ref.a, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(L.plugin_coverage(got, x0, 0.9),
                                   L.plugin_coverage(ref, x0, 0.9), rtol=1e-4)


@pytest.mark.parametrize("ridge", [0.0, 0.05])
def test_value_interval_se_is_the_norm_of_the_numerical_influence(ridge):
    # Independent of the closed form: J(w) = x0^T (A(w) + ridge I)^{-1} b(w) in float64 NumPy,
    # differentiated by central differences in each row weight. At unit weights the
    # sandwich se is sqrt(sum_i (dJ/dw_i)^2) (the influence of row i is W dJ/dw_i). Next
    # features that permute the current ones make A far from symmetric, so u = A^{-T} x0 is
    # not A^{-1} x0.
    f, r, g, fn = _data(n=80, d=3, seed=5)
    fn = (f[:, [1, 2, 0]] + 0.3 * fn).astype(np.float32)  # s' features a rotation of s's
    x0 = np.array([0.7, -0.2, 0.4])
    f64, r64, g64, fn64 = (v.astype(np.float64) for v in (f, r, g, fn))

    def j_of(w):
        a = (f64 * w[:, None]).T @ (f64 - g64[:, None] * fn64) / w.sum() + ridge * np.eye(3)
        return x0 @ np.linalg.solve(a, (f64 * w[:, None]).T @ r64 / w.sum())

    h, ones = 1e-6, np.ones(80)
    grad = np.array([(j_of(ones + h * e) - j_of(ones - h * e)) / (2 * h) for e in np.eye(80)])
    a = f64.T @ (f64 - g64[:, None] * fn64) / 80
    assert np.linalg.norm(a - a.T) > 0.5 * np.linalg.norm(a)  # strongly asymmetric
    ci = L.value_interval(f, r, g, fn, x0.astype(np.float32), ridge=ridge, level=0.9)
    assert float(ci.value) == pytest.approx(j_of(ones), rel=1e-4, abs=1e-5)
    assert float(ci.se) == pytest.approx(np.sqrt(np.sum(grad**2)), rel=1e-3)
    z = 1.6448536269514722  # scipy.stats.norm.ppf(0.95)
    assert float(ci.upper - ci.lower) == pytest.approx(2 * z * float(ci.se), rel=1e-5)


def test_value_averages_rows():
    theta = jnp.array([1.0, 2.0])
    rows = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert float(L.value(theta, rows)) == pytest.approx(1.5)
    assert float(L.value(theta, rows[0])) == pytest.approx(1.0)


def test_bad_inputs():
    f, r, g, fn = _data(n=10)
    with pytest.raises(ValueError, match=r"features has shape \(10, 4\) but next_features has"):
        L.lstdq(f, r, g, fn[:9])
    with pytest.raises(ValueError, match="features has 10 rows but rewards has 9"):
        L.lstdq(f, r[:9], g, fn)
    with pytest.raises(ValueError, match="features contains 1 non-finite"):
        L.lstdq(np.where(np.arange(40).reshape(10, 4) == 3, np.nan, f), r, g, fn)
    with pytest.raises(ValueError, match="rewards contains 1 non-finite"):
        L.lstdq(f, np.where(np.arange(10) == 2, np.inf, r), g, fn)
    with pytest.raises(ValueError, match=r"discounts must lie in \[0.0, 1.0\]"):
        L.lstdq(f, r, g + 0.5, fn)
    with pytest.raises(ValueError, match="the dataset is empty"):
        L.lstdq(f[:0], r[:0], g[:0], fn[:0])
    with pytest.raises(ValueError, match="A_hat is singular"):
        L.lstdq(np.zeros((10, 4)), r, g, fn)
    with pytest.raises(ValueError, match="ridge must be a finite float >= 0"):
        L.lstdq(f, r, g, fn, ridge=-1.0)
    with pytest.raises(TypeError, match="features must be a real numeric array"):
        L.lstdq(np.array([["a"] * 4] * 10), r, g, fn)
    with pytest.raises(ValueError, match="compute_stats: features has 10 rows but rewards has 9"):
        L.compute_stats(f, r[:9], g, fn)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        L.init_stats(0)
    with pytest.raises(ValueError, match="stats has dimension 3"):
        L.update_stats(L.init_stats(3), f, r, g, fn)
    with pytest.raises(ValueError, match="first has dimension 3 but second has 4"):
        L.merge_stats(L.init_stats(3), L.init_stats(4))
    with pytest.raises(TypeError, match="stats must be an LSTDQStats"):
        L.solve((1, 2, 3, 4))
    with pytest.raises(ValueError, match="stats holds no rows"):
        L.solve(L.init_stats(4))
    with pytest.raises(ValueError, match="axis_name 'model' is not an axis"):
        L.sharded_stats(f, r, g, fn, jax.make_mesh((1,), ("data",)), axis_name="model")
    with pytest.raises(ValueError, match=r"init_features must have shape \(4,\)"):
        L.value(jnp.ones(4), jnp.ones(3))
    with pytest.raises(ValueError, match="init_features has no rows"):
        L.value(jnp.ones(4), jnp.ones((0, 4)))
    with pytest.raises(ValueError, match="on_singular must be 'raise', 'nan' or 'lstsq'"):
        L.lstdq(f, r, g, fn, on_singular="pinv")
    with pytest.raises(ValueError, match="features has 10 rows but weights has 9"):
        L.compute_stats(f, r, g, fn, weights=np.ones(9))
    with pytest.raises(ValueError, match=r"weights must lie in \[0.0, inf\]"):
        L.update_stats(L.init_stats(4), f, r, g, fn, weights=-np.ones(10))
    with pytest.raises(ValueError, match="level must be a float in"):
        L.value_interval(f, r, g, fn, np.ones(4), level=1.5)
    with pytest.raises(ValueError, match=r"init_features must have shape \(4,\) or \(m, 4\)"):
        L.value_interval(f, r, g, fn, np.ones(3))
    with pytest.raises(ValueError, match="A_hat is singular"):
        L.value_interval(np.zeros((10, 4)), r, g, fn, np.ones(4))


def test_ground_truth_helpers_agree(realizable_problem):
    mdp, pi, gamma, q, phi, mu = realizable_problem
    np.testing.assert_allclose(L.exact_q(mdp, pi, gamma), q, atol=1e-10)
    d = occupancy_series(mdp, pi, gamma)
    np.testing.assert_allclose(L.occupancy(mdp, pi, gamma), d, atol=1e-12)
    assert L.policy_value(mdp, pi, gamma) == pytest.approx(
        np.sum(d * mdp.rewards) / (1 - gamma), rel=1e-10)
