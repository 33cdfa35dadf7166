"""Nuisance models against sklearn / numpy references; cross-fitting checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import cqc


def _data(n=600, seed=0):
    sim = cqc.simulate(4, n, jax.random.key(seed), gamma=1.0)
    return np.asarray(sim.x), np.asarray(sim.a), np.asarray(sim.y), sim.g_true


def test_logistic_propensity_matches_sklearn():
    x, a, _, _ = _data()
    model = cqc.LogisticPropensity(ridge=0.0)
    got = np.asarray(model.predict(model.fit(x, a), x))
    ref = LogisticRegression(C=1e8, max_iter=2000).fit(x, a).predict_proba(x)[:, 1]
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_kernel_cdf_matches_numpy_nadaraya_watson():
    x, a, y, _ = _data(200)
    grid = np.linspace(-4, 5, 7).astype(np.float32)
    model = cqc.KernelCDF(bandwidth=0.3)
    params = model.fit(x, y, a, 1)
    got = np.asarray(model.cdf(params, grid, x[:5]))
    z = (x - x.mean(0)) / x.std(0)
    for i in range(5):
        w = np.exp(-0.5 * ((z[i, 0] - z[:, 0]) / 0.3) ** 2) * a
        ref = (w[:, None] * (y[:, None] <= grid[None, :])).sum(0) / w.sum()
        np.testing.assert_allclose(got[i], ref, atol=1e-5)


def test_kernel_propensity_matches_numpy():
    x, a, _, _ = _data(200)
    model = cqc.KernelPropensity(bandwidth=0.5)
    got = np.asarray(model.predict(model.fit(x, a), x[:4]))
    z = (x - x.mean(0)) / x.std(0)
    w = np.exp(-0.5 * ((z[:4, :1] - z[:, 0][None, :]) / 0.5) ** 2)
    np.testing.assert_allclose(got, (w * a).sum(1) / w.sum(1), atol=1e-5)


def test_marginal_cdf_is_the_empirical_cdf():
    x, a, y, _ = _data(100)
    grid = np.linspace(-3, 3, 5).astype(np.float32)
    got = np.asarray(cqc.MarginalCDF().cdf(cqc.MarginalCDF().fit(x, y, 1 - a, 0), grid, x[:2]))
    ref = np.array([(y[a == 0] <= t).mean() for t in grid])
    np.testing.assert_allclose(got, np.stack([ref, ref]), atol=1e-6)


def test_neural_cdf_is_monotone_and_close_to_truth():
    x, a, y, design = _data(2000, 1)
    model = cqc.NeuralCDF(hidden=(16,), components=3, steps=200)
    params = model.fit(x, y, a, 1, jax.random.key(0))
    grid = np.linspace(-5, 6, 45).astype(np.float32)
    xq = np.array([[-0.5], [0.0], [0.5]], np.float32)
    f = np.asarray(model.cdf(params, grid, xq))
    assert np.all(np.diff(f, axis=1) >= -1e-6)
    truth = np.asarray(design.cdf(1, np.broadcast_to(grid, (3, 45)), xq))
    assert np.max(np.abs(f - truth)) < 0.12


def test_mlp_propensity_learns_the_sine_propensity():
    x, a, _, design = _data(4000, 2)
    model = cqc.MLPPropensity(hidden=(16,), steps=300)
    got = np.asarray(model.predict(model.fit(x, a, jax.random.key(0)), x))
    assert np.mean(np.abs(got - np.asarray(design.propensity(x)))) < 0.08


def test_cross_fit_oracle_returns_the_truth_and_clips():
    x, a, y, design = _data(300)
    grid = cqc.make_grid(y, 16)
    nv = cqc.cross_fit(x, a, y, nuisance=cqc.Nuisance(cqc.OraclePropensity(design),
                                                       cqc.OracleCDF(design)),
                       grid=grid, key=jax.random.key(0), clip=(0.2, 0.8))
    np.testing.assert_allclose(np.asarray(nv.pi),
                               np.clip(np.asarray(design.propensity(x)), 0.2, 0.8), atol=1e-6)
    ref = np.asarray(design.cdf(1, jnp.broadcast_to(grid, (300, 16)), x))
    np.testing.assert_allclose(np.asarray(nv.f1), ref, atol=1e-6)


def test_cross_fit_evaluates_each_fold_with_a_model_fit_on_the_others():
    x, a, y, _ = _data(300)
    nv = cqc.cross_fit(x, a, y, nuisance=cqc.Nuisance(cqc.ConstantPropensity(), cqc.MarginalCDF()),
                       grid=cqc.make_grid(y, 8), key=jax.random.key(3), n_folds=3,
                       clip=(0.01, 0.99))
    ids = cqc.nuisance.fold_ids(300, 3, jax.random.split(jax.random.key(3), 4)[0])
    for k in range(3):
        expected = a[ids != k].mean()
        np.testing.assert_allclose(np.asarray(nv.pi)[ids == k], expected, atol=1e-6)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(a="bad_treatment"), "a must contain only 0 and 1"),
        (dict(y="nan"), "y has 1 NaN/inf"),
        (dict(x="nan"), "x has 1 NaN/inf"),
        (dict(y="short"), "mismatched lengths"),
        (dict(clip=(0.0, 0.9)), "clip bounds must satisfy 0 < lo < hi < 1"),
        (dict(clip=(0.2, 1.5)), "clip bounds must satisfy"),
        (dict(n_folds=20), "fold 0 has .* unit"),
    ],
)
def test_cross_fit_bad_input(change, match):
    x, a, y, _ = _data(100)
    kwargs = dict(x=x.copy(), a=a.copy(), y=y.copy(), clip=(0.05, 0.95), n_folds=2)
    for k, v in change.items():
        if v == "bad_treatment":
            kwargs["a"][3] = 2.0
        elif v == "nan":
            kwargs[k][(5,) if k == "y" else (5, 0)] = np.nan
        elif v == "short":
            kwargs["y"] = y[:-1]
        else:
            kwargs[k] = v
    with pytest.raises(ValueError, match=match):
        cqc.cross_fit(nuisance=cqc.Nuisance(cqc.ConstantPropensity(), cqc.MarginalCDF()),
                      grid=np.linspace(-5, 5, 8), key=jax.random.key(0), min_per_fold=5,
                      **kwargs)


def test_nuisance_models_bad_input():
    x, a, y, _ = _data(50)
    with pytest.raises(ValueError, match="LogisticPropensity.fit: a must contain only 0 and 1"):
        cqc.LogisticPropensity().fit(x, a + 1)
    with pytest.raises(ValueError, match="mismatched lengths"):
        cqc.KernelPropensity().fit(x, a[:-1])
    with pytest.raises(ValueError, match="bandwidth must be 'cv', None or a finite number > 0"):
        cqc.KernelCDF(bandwidth=-1.0).fit(x, y, a, 1)
    with pytest.raises(TypeError, match="NeuralCDF.fit: key must be a jax.random.key"):
        cqc.NeuralCDF().fit(x, y, a, 1, key=3)
    with pytest.raises(TypeError, match="MLPPropensity.fit: key must be a jax.random.key"):
        cqc.MLPPropensity().fit(x, a, key=None)
    with pytest.raises(ValueError, match="ConstantPropensity.fit: a must contain only 0 and 1"):
        cqc.ConstantPropensity().fit(x, a - 1)
    with pytest.raises(TypeError, match=r"OraclePropensity: design must have a propensity\(x\)"):
        cqc.OraclePropensity("scenario1")
    with pytest.raises(TypeError, match=r"OracleCDF: design must have a cdf\(arm, t, x\) method"):
        cqc.OracleCDF(None)


def test_cv_bandwidth_adapts_to_nuisance_complexity():
    smooth = cqc.simulate(4, 800, jax.random.key(0), gamma=0.5)
    wiggly = cqc.simulate(4, 800, jax.random.key(0), gamma=8.0)
    h = {}
    for name, sim in (("smooth", smooth), ("wiggly", wiggly)):
        params = cqc.KernelPropensity().fit(sim.x, sim.a)
        h[name] = float(params.bandwidth)
        h_cdf = float(cqc.KernelCDF().fit(sim.x, sim.y, sim.a, 1).bandwidth)
        assert 0 < h_cdf <= max(cqc.nuisance.CV_BANDWIDTHS)
    # period of sin(8 pi x) is 0.25 (0.43 standardized units): the bandwidth must shrink
    assert h["wiggly"] < 0.1 < h["smooth"]
