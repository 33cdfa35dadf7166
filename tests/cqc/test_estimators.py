"""Estimators: recovery of g* with exact nuisances, shapes, bands and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cqc

EVAL_X = np.linspace(-0.8, 0.8, 9)
EVAL_U = np.linspace(0.1, 0.9, 9)


def _eval_points(design):
    x = np.repeat(EVAL_X, EVAL_U.size)[:, None]
    y0 = np.asarray(design.quantile(0, np.tile(EVAL_U, EVAL_X.size), x))
    return y0, x, np.asarray(design(y0, x))


def _oracle(design):
    return cqc.Nuisance(cqc.OraclePropensity(design), cqc.OracleCDF(design))


@pytest.fixture(scope="module")
def scenario4():
    return cqc.simulate(4, 20_000, jax.random.key(0), gamma=2.0)


@pytest.fixture(scope="module")
def direct_oracle(scenario4):
    sim = scenario4
    return cqc.DirectCQC(model="linear", nuisance=_oracle(sim.g_true), standardize=False,
                         steps=300, grid_size=96).fit(sim.x, sim.a, sim.y, key=jax.random.key(1))


def test_direct_with_exact_nuisances_recovers_the_linear_cqc(direct_oracle):
    # scenario 4: g* = 0.75 + 1.5 y0 + 0.25 x + 0.5 x y0
    m = direct_oracle.module_
    got = [float(m.bias[...]), float(m.slope[...]), float(m.w[...][0]), float(m.v[...][0])]
    np.testing.assert_allclose(got, [0.75, 1.5, 0.25, 0.5], atol=0.12)


def test_direct_predict_broadcasts_and_matches_truth(direct_oracle, scenario4):
    y0, x, truth = _eval_points(scenario4.g_true)
    pred = np.asarray(direct_oracle.predict(y0, x))
    assert pred.shape == truth.shape
    assert np.mean((pred - truth) ** 2) < 0.02
    one_x = np.asarray(direct_oracle.predict(np.array([0.0, 1.0]), np.array([0.5])))
    pair = np.asarray(direct_oracle.predict(np.array([0.0, 1.0]), np.array([[0.5], [0.5]])))
    np.testing.assert_allclose(one_x, pair, atol=1e-6)
    assert direct_oracle.predict(0.3, np.array([[0.1]])).shape == (1,)


@pytest.mark.slow  # keeps the default suite under 5 min on 2 cores
def test_direct_bootstrap_bands():
    sim = cqc.simulate(4, 1000, jax.random.key(11), gamma=1.0)
    est = cqc.DirectCQC(nuisance=_oracle(sim.g_true), steps=150, grid_size=64)
    est.fit(sim.x, sim.a, sim.y, key=jax.random.key(1))
    y0, x, truth = _eval_points(sim.g_true)
    bands = est.bootstrap(y0, x, n_boot=6, key=jax.random.key(2), level=0.9)
    lo, hi = np.asarray(bands.lower), np.asarray(bands.upper)
    assert np.all(lo <= hi) and np.all(hi - lo > 0)
    np.testing.assert_allclose(np.asarray(bands.estimate), np.asarray(est.predict(y0, x)),
                               atol=1e-5)
    est_v = np.asarray(bands.estimate)
    assert np.mean((lo <= est_v) & (est_v <= hi)) >= 0.8  # replicates scatter around the fit
    assert np.asarray(bands.samples is None)
    est.learning_rate = float("inf")  # replicates diverge: an error, not silently NaN bands
    with pytest.raises(FloatingPointError, match="bootstrap: a bootstrap replicate became NaN"):
        est.bootstrap(y0, x, n_boot=2, key=jax.random.key(3))


def test_indirect_ipw_and_separate_with_exact_nuisances():
    # gamma = 0: h(y0, y1 | x) = Phi(y1 / 2) - Phi(y0) does not depend on x, so a wide kernel
    # leaves only sampling noise; x still confounds nothing, but pi and the CDFs are exact.
    sim = cqc.simulate(1, 3000, jax.random.key(3), gamma=0.0)
    y0, x, truth = _eval_points(sim.g_true)
    np.testing.assert_allclose(truth, 2 * y0, atol=1e-5)
    oracle = _oracle(sim.g_true)
    key = jax.random.key(4)
    sep = cqc.SeparateCQC(oracle, grid_size=256).fit(sim.x, sim.a, sim.y, key=key)
    # exact CDFs: only the grid interpolation of the inverse remains
    np.testing.assert_allclose(np.asarray(sep.predict(y0, x)), truth, atol=0.05)
    nv = cqc.cross_fit(sim.x, sim.a, sim.y, nuisance=oracle, grid=cqc.make_grid(sim.y), key=key)
    ind = cqc.IndirectCQC(oracle, bandwidth=3.0).fit(sim.x, sim.a, sim.y, key=key, nuisances=nv)
    assert np.mean((np.asarray(ind.predict(y0, x)) - truth) ** 2) < 0.02
    ipw = cqc.IPWCQC(oracle, bandwidth=3.0).fit(sim.x, sim.a, sim.y, key=key, nuisances=nv)
    assert np.mean((np.asarray(ipw.predict(y0, x)) - truth) ** 2) < 0.05
    cv = cqc.IndirectCQC(oracle).fit(sim.x, sim.a, sim.y, key=key, nuisances=nv)
    assert float(cv.fitted_["data"].bandwidth) >= 0.5  # CV sees no x-dependence: smooth wide


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
    est.fit(sim.x, sim.a, sim.y, key=jax.random.key(6))
    losses = np.asarray(est.fitted_["losses"])
    assert losses[-1] < losses[0]
    assert abs(float(est.module_.s[...]) - 2.0) < 0.5


@pytest.mark.slow
def test_direct_monotone_model_and_user_module_fit():
    sim = cqc.simulate(1, 1500, jax.random.key(5), gamma=1.0)
    oracle = _oracle(sim.g_true)
    nv = cqc.cross_fit(sim.x, sim.a, sim.y, nuisance=oracle, grid=cqc.make_grid(sim.y, 64),
                       key=jax.random.key(0))
    y0, x, truth = _eval_points(sim.g_true)
    mono = cqc.DirectCQC(model="monotone", steps=150, learning_rate=0.01, grid_size=64)
    mono.fit(sim.x, sim.a, sim.y, key=jax.random.key(6), nuisances=nv)
    pred = np.asarray(mono.predict(y0, x)).reshape(EVAL_X.size, EVAL_U.size)
    assert np.all(np.diff(pred, axis=1) > 0)  # increasing in y0 at every x
    assert np.mean((pred.reshape(-1) - truth) ** 2) < 0.3
    user = cqc.DirectCQC(model=lambda d, rngs: cqc.LinearCQC(d, interactions=False, rngs=rngs),
                         steps=150, grid_size=64)
    user.fit(sim.x, sim.a, sim.y, key=jax.random.key(6), nuisances=nv)
    assert np.mean((np.asarray(user.predict(y0, x)) - truth) ** 2) < 0.1


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
        est.fit(x, a_bad, y, key=key)
    x_nan = x.copy()
    x_nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="x has 1 NaN/inf"):
        est.fit(x_nan, a, y, key=key)
    y_nan = y.copy()
    y_nan[7] = np.inf
    with pytest.raises(ValueError, match="y has 1 NaN/inf"):
        est.fit(x, a, y_nan, key=key)
    with pytest.raises(ValueError, match="mismatched lengths: x has 200, a has 199"):
        est.fit(x, a[:-1], y, key=key)
    few = a.copy()
    few[:] = 0
    few[:3] = 1
    with pytest.raises(ValueError, match="unit.* with treatment 1; need at least"):
        est.fit(x, few, y, key=key)
    with pytest.raises(TypeError, match="key must be a jax.random.key"):
        est.fit(x, a, y, key=0)
    with pytest.raises(cqc.NotFittedError, match="call fit"):
        est.predict(np.zeros(2), np.zeros((2, 1)))


@pytest.mark.parametrize("make", ESTIMATORS)
def test_constructor_bad_input(make):
    with pytest.raises(ValueError, match="clip bounds must satisfy 0 < lo < hi < 1"):
        make(clip=(0.0, 0.9))
    with pytest.raises(ValueError, match="clip bounds must satisfy"):
        make(clip=(0.5, 1.2))
    with pytest.raises(ValueError, match="n_folds must be >= 1"):
        make(n_folds=0)
    with pytest.raises(TypeError, match="nuisance must be a cqc.Nuisance"):
        make(nuisance="kernel")


def test_direct_constructor_bad_input():
    with pytest.raises(ValueError, match="levels must lie in"):
        cqc.DirectCQC(levels=[0.0, 0.5])
    with pytest.raises(ValueError, match="y0_design must be"):
        cqc.DirectCQC(y0_design="grid")
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        cqc.DirectCQC(learning_rate=-1.0)


def test_predict_and_bootstrap_bad_input(direct_oracle):
    with pytest.raises(ValueError, match="x has 2 column.* fit with 1"):
        direct_oracle.predict(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="y0 has 3 value.* x has 2 row"):
        direct_oracle.predict(np.zeros(3), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="y0 has NaN"):
        direct_oracle.predict(np.array([np.nan]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="level must be in"):
        direct_oracle.bootstrap(0.0, np.zeros((1, 1)), key=jax.random.key(0), level=1.5)
    with pytest.raises(ValueError, match="n_boot must be >= 2"):
        direct_oracle.bootstrap(0.0, np.zeros((1, 1)), key=jax.random.key(0), n_boot=1)
    with pytest.raises(cqc.NotFittedError, match="bootstrap: call fit"):
        cqc.DirectCQC().bootstrap(0.0, np.zeros((1, 1)), key=jax.random.key(0))


def test_separate_and_indirect_reject_wrong_columns():
    x, a, y = _small()
    sep = cqc.SeparateCQC(cqc.Nuisance(cdf=cqc.MarginalCDF())).fit(x, a, y, key=jax.random.key(0))
    with pytest.raises(ValueError, match="x has 3 column"):
        sep.predict(np.zeros(2), np.zeros((2, 3)))


def test_make_grid_bad_input():
    with pytest.raises(ValueError, match="size must be >= 2"):
        cqc.make_grid(np.zeros(3), 1)
    with pytest.raises(ValueError, match="y has 1 NaN"):
        cqc.make_grid(np.array([0.0, np.nan]))
