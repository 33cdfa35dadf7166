"""Fit-time benchmark: DirectCQC vs IndirectCQC at n = 10^4, DirectCQC at n = 10^5.

    python -m experiments.cqc.bench --workdir=/tmp/cqc_bench

Times are wall-clock seconds, measured in one process after a warm-up call of the same
shapes: ``fit`` plus ``predict`` on a 19 x 9 grid, and ``predict`` alone at 10^4 query points
(where the indirect estimator does its work). Nuisances are shared (computed once, timed
separately), so the ratios compare the estimators themselves. At n = 10^5 the nuisances are a
logistic propensity and the neural (mixture-of-logistics) CDF, with the linear direct model
(target: under a minute).
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

import cqc
from experiments.workdir import Workdir

FLAGS = flags.DEFINE_string("workdir", "/tmp/cqc_bench", "Where to write results.json.")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - t0


def bench(n_small: int = 10_000, n_large: int = 100_000) -> dict[str, float]:
    xq = np.repeat(np.linspace(-0.9, 0.9, 19), 9)[:, None]
    y0q = np.tile(np.linspace(-1.5, 1.5, 9), 19)
    out = {}
    sim = cqc.simulate(4, n_small, jax.random.key(0), gamma=2.0)
    X, y, a = (np.asarray(v, np.float64) for v in (sim.x, sim.y, sim.a))
    nuisance = cqc.Nuisance(cqc.KernelPropensity(), cqc.KernelCDF())
    grid = cqc.make_grid(sim.y)
    nv = cqc.cross_fit(sim.x, sim.a, sim.y, nuisance=nuisance, grid=grid, key=jax.random.key(1))
    out["nuisance_s_n1e4"] = _timed(lambda: cqc.cross_fit(
        sim.x, sim.a, sim.y, nuisance=nuisance, grid=grid, key=jax.random.key(2)).f1)
    for name, make in (("direct", lambda: cqc.DirectCQC(nuisance=nuisance)),
                       ("indirect", lambda: cqc.IndirectCQC(nuisance))):
        run = lambda make=make: make().fit(X, y, a=a, key=jax.random.key(3),  # noqa: E731
                                           nuisances=nv).predict(xq, y0=y0q)
        run()  # warm-up (compilation)
        out[f"{name}_s_n1e4"] = _timed(run)
    out["indirect_over_direct_n1e4"] = out["indirect_s_n1e4"] / out["direct_s_n1e4"]
    # evaluation cost: predict at 10^4 query points from the fitted estimators
    rng = np.random.default_rng(0)
    xq_big = rng.uniform(-0.9, 0.9, (10_000, 1))
    y0q_big = rng.normal(size=10_000)
    for name, make in (("direct", lambda: cqc.DirectCQC(nuisance=nuisance)),
                       ("indirect", lambda: cqc.IndirectCQC(nuisance))):
        est = make().fit(X, y, a=a, key=jax.random.key(3), nuisances=nv)
        est.predict(xq_big, y0=y0q_big)  # warm-up
        out[f"{name}_predict_s_1e4_queries"] = _timed(
            lambda est=est: est.predict(xq_big, y0=y0q_big))
    out["indirect_over_direct_predict_1e4_queries"] = (
        out["indirect_predict_s_1e4_queries"] / out["direct_predict_s_1e4_queries"])
    big = cqc.simulate(4, n_large, jax.random.key(4), gamma=2.0)
    big_nuisance = cqc.Nuisance(cqc.LogisticPropensity(), cqc.NeuralCDF(steps=200))
    t0 = time.perf_counter()
    nv_big = cqc.cross_fit(big.x, big.a, big.y, nuisance=big_nuisance,
                           grid=cqc.make_grid(big.y), key=jax.random.key(5))
    jax.block_until_ready(nv_big.f1)
    out["nuisance_s_n1e5_first_call"] = time.perf_counter() - t0
    bx, by, ba = (np.asarray(v, np.float64) for v in (big.x, big.y, big.a))
    direct = lambda: cqc.DirectCQC(nuisance=big_nuisance).fit(  # noqa: E731
        bx, by, a=ba, key=jax.random.key(6), nuisances=nv_big).state_
    out["direct_s_n1e5_first_call"] = _timed(direct)
    out["direct_s_n1e5"] = _timed(direct)
    return out


def main(argv):
    del argv
    results = bench()
    for k, v in results.items():
        print(f"{k}: {v:.3f}")
    Workdir(FLAGS.value).write_results(results)


if __name__ == "__main__":
    app.run(main)
