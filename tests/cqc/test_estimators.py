"""Estimators: recovery of g* with exact and estimated nuisances, effect, bands, weights,
NaN reporting and bad input."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn.exceptions import NotFittedError

import cqc

EVAL_X = np.linspace(-0.8, 0.8, 9)
EVAL_U = np.linspace(0.1, 0.9, 9)


def _eval_points(design):
    x = np.repeat(EVAL_X, EVAL_U.size)[:, None]
    y0 = np.asarray(design.quantile(0, np.tile(EVAL_U, EVAL_X.size), x))
    return y0, x, np.asarray(design(y0, x))


def _oracle(design):
    return cqc.Nuisance(cqc.OraclePropensity(design), cqc.OracleCDF(design))


def _fit(est, sim, key=1, **kw):
    return est.fit(np.asarray(sim.x), np.asarray(sim.y), a=np.asarray(sim.a),
                   key=jax.random.key(key), **kw)


@pytest.fixture(scope="module")
def scenario4():
    return cqc.simulate(4, 20_000, jax.random.key(0), gamma=2.0)


@pytest.fixture(scope="module")
def direct_oracle(scenario4):
    est = cqc.DirectCQC(model="linear", nuisance=_oracle(scenario4.g_true), standardize=False,
                        steps=300, grid_size=96)
    return _fit(est, scenario4)


def test_direct_with_exact_nuisances_recovers_the_linear_cqc(direct_oracle):
    # scenario 4: g* = 0.75 + 1.5 y0 + 0.25 x + 0.5 x y0
    m = direct_oracle.module_
    got = [float(m.bias[...]), float(m.slope[...]), float(m.w[...][0]), float(m.v[...][0])]
    np.testing.assert_allclose(got, [0.75, 1.5, 0.25, 0.5], atol=0.12)


def test_direct_predict_broadcasts_and_matches_truth(direct_oracle, scenario4):
    y0, x, truth = _eval_points(scenario4.g_true)
    pred = np.asarray(direct_oracle.predict(x, y0=y0))
    assert pred.shape == truth.shape
    assert np.mean((pred - truth) ** 2) < 0.02
    one_x = np.asarray(direct_oracle.predict(np.array([0.5]), y0=np.array([0.0, 1.0])))
    pair = np.asarray(direct_oracle.predict(np.array([[0.5], [0.5]]), y0=np.array([0.0, 1.0])))
    np.testing.assert_allclose(one_x, pair, atol=1e-6)
    assert direct_oracle.predict(np.array([[0.1]]), y0=0.3).shape == (1,)


def test_direct_with_estimated_nuisances_is_close_to_the_truth():
    # Cross-fitted CV-kernel nuisances (no oracle): the DR objective's nuisance error is
    # second order, so Direct stays near g* where the plug-in (SeparateCQC, same CDF model)
    # keeps the kernel's smoothing bias.
    sim = cqc.simulate(4, 3000, jax.random.key(7), gamma=2.0)
    y0, x, truth = _eval_points(sim.g_true)
    nuisance = cqc.Nuisance(cqc.KernelPropensity(), cqc.KernelCDF())
    direct = _fit(cqc.DirectCQC(nuisance=nuisance, steps=300, grid_size=96), sim)
    plug_in = _fit(cqc.SeparateCQC(nuisance, grid_size=96), sim)
    mse = np.mean((direct.predict(x, y0=y0) - truth) ** 2)
    mse_plug_in = np.mean((plug_in.predict(x, y0=y0) - truth) ** 2)
    assert mse < 0.06, mse
    assert mse < 0.5 * mse_plug_in, (mse, mse_plug_in)
    assert direct.nuisance_models_ is not None and len(direct.nuisances_) == 1


def test_effect_is_the_quantile_contrast(direct_oracle, scenario4):
    design = scenario4.g_true
    x = np.array([[-0.5], [0.0], [0.6]])
    u = np.array([0.2, 0.5, 0.8])
    q0 = np.asarray(design.quantile(0, np.tile(u, (3, 1)), x))  # F0^{-1}(u | x), closed form
    truth = np.asarray(design(q0.reshape(-1), np.repeat(x, 3, axis=0))).reshape(3, 3) - q0
    got = direct_oracle.effect(x, u=u)
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, truth, atol=0.08)
    assert direct_oracle.effect(x).shape == (3, len(cqc.DEFAULT_LEVELS))


def test_bootstrap_and_effect_bands():
    sim = cqc.simulate(4, 600, jax.random.key(11), gamma=1.0)
    est = _fit(cqc.DirectCQC(nuisance=_oracle(sim.g_true), steps=80, grid_size=48), sim)
    y0, x, _ = _eval_points(sim.g_true)
    bands = est.bootstrap(x, y0=y0, n_boot=6, key=jax.random.key(2), level=0.9,
                          return_samples=True)
    mid, lo, hi = (np.asarray(v) for v in bands[:3])
    assert bands.samples.shape == (6, y0.size)
    assert np.all(lo <= hi) and np.all(hi - lo > 1e-4)  # the replicates differ
    np.testing.assert_allclose(mid, est.predict(x, y0=y0), atol=1e-5)
    # percentile bands are the replicates' quantiles, pointwise
    np.testing.assert_allclose(lo, np.quantile(bands.samples, 0.05, axis=0), atol=1e-6)
    assert np.abs(bands.samples.mean(0) - mid).max() < 0.3
    eff = est.effect_interval(x[:3], u=[0.3, 0.7], n_boot=4, key=jax.random.key(3))
    assert eff.estimate.shape == eff.lower.shape == (3, 2)
    np.testing.assert_allclose(eff.estimate, est.effect(x[:3], u=[0.3, 0.7]), atol=1e-5)
    assert np.all(eff.lower <= eff.upper)
    est.set_params(learning_rate=float("inf"))  # replicates diverge: an error, not NaN bands
    with pytest.raises(FloatingPointError, match="bootstrap: a bootstrap replicate became NaN"):
        est.bootstrap(x, y0=y0, n_boot=2, key=jax.random.key(3))


def test_repeated_cross_fitting_spreads_replicates_over_splits():
    sim = cqc.simulate(4, 500, jax.random.key(12), gamma=1.0)
    nuisance = cqc.Nuisance(cqc.LogisticPropensity(), cqc.KernelCDF(bandwidth=0.3))
    est = _fit(cqc.DirectCQC(nuisance=nuisance, n_repeats=2, steps=60, grid_size=48), sim)
    assert len(est.nuisances_) == 2
    assert len(est.nuisance_models_.params) == 4  # 2 repeats x 2 folds, averaged in effect
    pi0, pi1 = (np.asarray(nv.pi) for nv in est.nuisances_)
    assert np.abs(pi0 - pi1).max() > 1e-4  # different fold splits
    bands = est.bootstrap(np.zeros((2, 1)), y0=[0.0, 1.0], n_boot=4, key=jax.random.key(1))
    assert np.all(bands.lower <= bands.upper)


def test_monotone_model_is_increasing_and_learns():
    sim = cqc.simulate(1, 500, jax.random.key(5), gamma=1.0)  # g* = 2 y0
    y0, x, truth = _eval_points(sim.g_true)
    mono = _fit(cqc.DirectCQC(model="monotone", nuisance=_oracle(sim.g_true), steps=80,
                              learning_rate=0.02, grid_size=48), sim, key=6)
    pred = np.asarray(mono.predict(x, y0=y0)).reshape(EVAL_X.size, EVAL_U.size)
    assert np.all(np.diff(pred, axis=1) > 0)  # increasing in y0 at every x
    identity = np.mean((y0 - truth) ** 2)  # the model starts near g = y0
    assert np.mean((pred.reshape(-1) - truth) ** 2) < 0.5 * identity


def test_polynomial_model_recovers_scenario5():
    sim = cqc.simulate(5, 4000, jax.random.key(13), gamma=2.0, degree=3)
    y0, x, truth = _eval_points(sim.g_true)
    np.testing.assert_allclose(truth - y0, 0.5 * (5 * x[:, 0] ** 3 - 3 * x[:, 0]), atol=1e-5)
    est = _fit(cqc.DirectCQC(model="poly3", nuisance=_oracle(sim.g_true), steps=300,
                             grid_size=64), sim)
    assert np.mean((est.predict(x, y0=y0) - truth) ** 2) < 0.02


def test_indirect_ipw_and_separate_with_exact_nuisances():
    # gamma = 0: h(y0, y1 | x) = Phi(y1 / 2) - Phi(y0) does not depend on x, so a wide kernel
    # leaves only sampling noise; x still confounds nothing, but pi and the CDFs are exact.
    sim = cqc.simulate(1, 3000, jax.random.key(3), gamma=0.0)
    y0, x, truth = _eval_points(sim.g_true)
    np.testing.assert_allclose(truth, 2 * y0, atol=1e-5)
    oracle = _oracle(sim.g_true)
    sep = _fit(cqc.SeparateCQC(oracle, grid_size=256), sim, key=4)
    # exact CDFs: only the grid interpolation of the inverse remains
    np.testing.assert_allclose(np.asarray(sep.predict(x, y0=y0)), truth, atol=0.05)
    nv = cqc.cross_fit(sim.x, sim.a, sim.y, nuisance=oracle, grid=cqc.make_grid(sim.y),
                       key=jax.random.key(4))
    ind = _fit(cqc.IndirectCQC(oracle, bandwidth=3.0), sim, key=4, nuisances=nv)
    assert np.mean((np.asarray(ind.predict(x, y0=y0)) - truth) ** 2) < 0.02
    ipw = _fit(cqc.IPWCQC(oracle, bandwidth=3.0), sim, key=4, nuisances=nv)
    assert np.mean((np.asarray(ipw.predict(x, y0=y0)) - truth) ** 2) < 0.05
    cv = _fit(cqc.IndirectCQC(oracle), sim, key=4, nuisances=nv)
    assert cv.bandwidth_ >= 0.5  # CV sees no x-dependence: smooth wide


def test_ipw_0_over_0_is_nan_with_a_warning_not_a_grid_boundary():
    # The reported case: a bandwidth so small that at a control unit's x no treated unit has
    # kernel weight; the Hajek ratio is 0/0 there. It used to come out as the grid's top.
    sim = cqc.simulate(4, 400, jax.random.key(0), gamma=1.0)
    x, a = np.asarray(sim.x), np.asarray(sim.a)
    ipw = _fit(cqc.IPWCQC(bandwidth=1e-4), sim)
    d = ipw.data_
    w = cqc.kernel.kernel_weights(ipw.scaler_.x(x[a == 0]), d.z, d.bandwidth, d.unit_weights)
    no_treated = np.asarray(w @ d.s1) == 0  # independent check of where 0/0 happens
    assert no_treated.sum() > 5
    with pytest.warns(RuntimeWarning, match=r"have no estimate \(NaN\).*no weight to one arm"):
        pred = ipw.predict(x[a == 0], y0=np.zeros(int((a == 0).sum())))
    assert np.isnan(pred[no_treated]).all()
    assert np.isfinite(pred[~no_treated]).all()
    assert not np.any(np.isclose(pred, float(d.grid[-1])))


def test_separate_reports_quantiles_above_the_grid():
    # Exact Gaussian CDFs: F1 < 1 at the grid's top, so a y0 far above the controls
    # (F0(y0 | x) = 1 in float32) has no treated quantile on the grid: NaN and a warning,
    # where the old inversion returned the grid's top edge.
    sim = cqc.simulate(1, 400, jax.random.key(2), gamma=0.0)
    sep = _fit(cqc.SeparateCQC(_oracle(sim.g_true)), sim)
    with pytest.warns(RuntimeWarning, match="stays below 0 on the whole outcome grid"):
        pred = sep.predict(np.zeros((2, 1)), y0=[0.5, 12.0])
    assert np.isfinite(pred[0]) and abs(pred[0] - 1.0) < 0.05  # g* = 2 y0
    assert np.isnan(pred[1])


class _PlainModule(nnx.Module):
    """A user module without ``grid_y0``: g = b + s y0 (called on flattened (y0, x) pairs)."""

    def __init__(self, num_features, rngs):
        self.b = nnx.Param(jnp.zeros(()))
        self.s = nnx.Param(jnp.ones(()))

    def __call__(self, y0, x):
        assert y0.ndim == 1 and x.shape[0] == y0.shape[0]
        return self.b[...] + self.s[...] * y0


def test_direct_fits_a_user_module_on_flattened_pairs():
    sim = cqc.simulate(1, 400, jax.random.key(5), gamma=0.0)  # g* = 2 y0
    est = cqc.DirectCQC(model=_PlainModule, nuisance=_oracle(sim.g_true), steps=150,
                        grid_size=64, standardize=False, learning_rate=0.05)
    _fit(est, sim, key=6)
    assert est.losses_[-1] < est.losses_[0]
    assert abs(float(est.module_.s[...]) - 2.0) < 0.5


def test_sample_weight_equals_duplicating_rows():
    sim = cqc.simulate(4, 300, jax.random.key(8), gamma=1.0)
    x, a, y = (np.asarray(v) for v in (sim.x, sim.a, sim.y))
    w = np.ones(300)
    w[::3] = 2.0
    rep = np.repeat(np.arange(300), w.astype(int))
    y0, xq, _ = _eval_points(sim.g_true)
    key = jax.random.key(3)
    for make in (lambda: cqc.DirectCQC(nuisance=cqc.Nuisance(cqc.LogisticPropensity(),
                                                             cqc.OracleCDF(sim.g_true)),
                                       n_folds=1, steps=120, grid_size=48),
                 lambda: cqc.IndirectCQC(nuisance=cqc.Nuisance(cqc.KernelPropensity(0.4),
                                                               cqc.OracleCDF(sim.g_true)),
                                         n_folds=1, bandwidth=0.5, grid_size=48)):
        weighted = make().fit(x, y, a=a, sample_weight=w, key=key).predict(xq, y0=y0)
        copies = make().fit(x[rep], y[rep], a=a[rep], key=key).predict(xq, y0=y0)
        unweighted = make().fit(x, y, a=a, key=key).predict(xq, y0=y0)
        # equal up to float32 rounding (amplified a little by Adam in Direct's 120 steps)...
        np.testing.assert_allclose(weighted, copies, atol=3e-3)
        # ...and the weights matter
        assert np.abs(weighted - unweighted).max() > 0.05


def test_random_state_and_key():
    sim = cqc.simulate(4, 300, jax.random.key(9), gamma=1.0)
    x, a, y = (np.asarray(v) for v in (sim.x, sim.a, sim.y))
    nuisance = cqc.Nuisance(cqc.LogisticPropensity(), cqc.KernelCDF(bandwidth=0.3))

    def fit(**kw):
        est = cqc.DirectCQC(nuisance=nuisance, steps=40, grid_size=32,
                            random_state=kw.pop("random_state", None))
        return est.fit(x, y, a=a, **kw).predict(np.zeros((1, 1)), y0=0.5)

    assert fit(random_state=3) == fit(random_state=3)
    assert fit(random_state=3) != fit(random_state=4)  # a different fold split
    assert fit(random_state=3, key=jax.random.key(0)) == fit(random_state=4,
                                                           key=jax.random.key(0))


ESTIMATORS = [
    lambda **kw: cqc.DirectCQC(**kw),
    lambda **kw: cqc.IndirectCQC(**kw),
    lambda **kw: cqc.IPWCQC(**kw),
]


def _small():
    sim = cqc.simulate(1, 200, jax.random.key(9))
    return np.asarray(sim.x).copy(), np.asarray(sim.a).copy(), np.asarray(sim.y).copy()


@pytest.mark.parametrize("make", ESTIMATORS + [lambda **kw: cqc.SeparateCQC()])
def test_fit_bad_input(make):
    x, a, y = _small()
    est = make()
    key = jax.random.key(0)
    a_bad = a.copy()
    a_bad[0] = 0.5
    with pytest.raises(ValueError, match="a must contain only 0 and 1"):
        est.fit(x, y, a=a_bad, key=key)
    x_nan = x.copy()
    x_nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):  # scikit-learn's message
        est.fit(x_nan, y, a=a, key=key)
    y_nan = y.copy()
    y_nan[7] = np.inf
    with pytest.raises(ValueError, match="Input y contains infinity"):
        est.fit(x, y_nan, a=a, key=key)
    with pytest.raises(ValueError, match="mismatched lengths: X has 200, y has 200, a has 199"):
        est.fit(x, y, a=a[:-1], key=key)
    few = a.copy()
    few[:] = 0
    few[:3] = 1
    with pytest.raises(ValueError, match="unit.* with treatment 1; need at least"):
        est.fit(x, y, a=few, key=key)
    with pytest.raises(TypeError, match="key must be a jax.random.key"):
        est.fit(x, y, a=a, key=0)
    with pytest.raises(ValueError, match=r"a \(the 0/1 treatment of each row\) is required"):
        est.fit(x, y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        est.fit(x, None, a=a)
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        est.fit(x, y, a=a, sample_weight=-np.ones(200), key=key)
    with pytest.raises(TypeError):
        est.fit(x, a, y, key=key)  # the old positional (x, a, y) order fails loudly
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(np.zeros((2, 1)), y0=np.zeros(2))


@pytest.mark.parametrize("make", ESTIMATORS)
def test_parameters_are_checked_in_fit(make):
    x, a, y = _small()
    for kw, err, match in [
        (dict(clip=(0.0, 0.9)), ValueError, "clip bounds must satisfy 0 < lo < hi < 1"),
        (dict(clip=(0.5, 1.2)), ValueError, "clip bounds must satisfy"),
        (dict(n_folds=0), ValueError, "n_folds must be >= 1"),
        (dict(grid_size=1), ValueError, "grid_size must be >= 2"),
        (dict(nuisance="kernel"), TypeError, "nuisance must be a cqc.Nuisance"),
        (dict(nuisance=cqc.Nuisance(propensity="logit")), TypeError, "propensity must be"),
        (dict(random_state="seed"), ValueError, "random_state must be None, an int"),
    ]:
        est = make(**kw)  # the constructor stores arguments as given...
        assert est.get_params()[next(iter(kw))] is kw[next(iter(kw))]
        with pytest.raises(err, match=match):  # ...and fit validates them
            est.fit(x, y, a=a)


def test_direct_and_indirect_specific_parameters_are_checked_in_fit():
    x, a, y = _small()
    for est, match in [
        (cqc.DirectCQC(levels=[0.0, 0.5]), "levels must lie in"),
        (cqc.DirectCQC(y0_design="grid"), "y0_design must be"),
        (cqc.DirectCQC(learning_rate=-1.0), "learning_rate must be a finite number > 0"),
        (cqc.DirectCQC(n_repeats=0), "n_repeats must be >= 1"),
        (cqc.DirectCQC(model="poly0"), "model must be 'linear'"),
        (cqc.IndirectCQC(bandwidth=-1.0), "bandwidth must be 'cv', None or a finite"),
        (cqc.IndirectCQC(pseudo="tmle"), "pseudo must be 'dr' or 'ipw'"),
    ]:
        with pytest.raises(ValueError, match=match):
            est.fit(x, y, a=a, key=jax.random.key(0))


def test_predict_effect_score_and_bootstrap_bad_input(direct_oracle):
    with pytest.raises(ValueError, match="X has 2 column.* fit with 1"):
        direct_oracle.predict(np.zeros((3, 2)), y0=np.zeros(3))
    with pytest.raises(ValueError, match="y0 has 3 value.* X has 2 row"):
        direct_oracle.predict(np.zeros((2, 1)), y0=np.zeros(3))
    with pytest.raises(ValueError, match="y0 has NaN"):
        direct_oracle.predict(np.zeros((1, 1)), y0=np.array([np.nan]))
    with pytest.raises(TypeError, match=r"y0 \(the untreated outcomes to map\) is required"):
        direct_oracle.predict(np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"u must lie in \(0, 1\)"):
        direct_oracle.effect(np.zeros((1, 1)), u=[0.5, 1.0])
    with pytest.raises(ValueError, match="level must be in"):
        direct_oracle.bootstrap(np.zeros((1, 1)), y0=0.0, key=jax.random.key(0), level=1.5)
    with pytest.raises(ValueError, match="n_boot must be >= 2"):
        direct_oracle.bootstrap(np.zeros((1, 1)), y0=0.0, key=jax.random.key(0), n_boot=1)
    with pytest.raises(TypeError, match="key must be a jax.random.key"):
        direct_oracle.bootstrap(np.zeros((1, 1)), y0=0.0, key=None)
    with pytest.raises(ValueError, match="a .* is required"):
        direct_oracle.score(np.zeros((2, 1)), np.zeros(2))
    with pytest.raises(NotFittedError, match="DirectCQC.bootstrap: this DirectCQC is not"):
        cqc.DirectCQC().bootstrap(np.zeros((1, 1)), y0=0.0, key=jax.random.key(0))
    with pytest.raises(NotFittedError):
        cqc.IndirectCQC().effect(np.zeros((1, 1)))


def test_effect_and_score_need_nuisance_models():
    x, a, y = _small()
    nv = cqc.cross_fit(x, a, y, nuisance=cqc.Nuisance(cqc.ConstantPropensity(),
                                                       cqc.MarginalCDF()),
                       grid=cqc.make_grid(y, 32), key=jax.random.key(0))
    est = cqc.DirectCQC(steps=10, grid_size=32).fit(x, y, a=a, nuisances=nv._replace(models=None))
    with pytest.raises(ValueError, match="needs the fitted nuisance models"):
        est.effect(np.zeros((1, 1)))
    sep = cqc.SeparateCQC(cqc.Nuisance(cdf=cqc.MarginalCDF())).fit(x, y, a=a)
    assert sep.effect(np.zeros((1, 1)), u=[0.5]).shape == (1, 1)
    with pytest.raises(ValueError, match="needs a propensity model"):
        sep.score(x, y, a=a)
    with pytest.raises(ValueError, match="X has 3 column"):
        sep.predict(np.zeros((2, 3)), y0=np.zeros(2))


def test_make_grid_bad_input():
    with pytest.raises(ValueError, match="size must be >= 2"):
        cqc.make_grid(np.zeros(3), 1)
    with pytest.raises(ValueError, match="y has 1 NaN"):
        cqc.make_grid(np.array([0.0, np.nan]))
