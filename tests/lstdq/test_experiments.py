"""Smoke test of the lstdq experiments: the quick config shrunk to seconds, resume, claims."""

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.config import ConfigError, load_config
from experiments.lstdq import claims, run

CONFIG = Path(run.__file__).resolve().parent / "configs" / "default.py"

SHRINK = {
    "coverage.num_settings": 4, "coverage.n": 200, "coverage.reps": 4,
    "coverage.chain_states": 8,  # same table shapes as the random MDPs: one compilation
    "rate.log10_n_max": 2.5, "rate.num_n": 2, "rate.reps": 4,
    "unification.num_mdps": 2,
    "cartpole.n": 500, "cartpole.mc_episodes": 50, "cartpole.per_dim": 2,
    "cartpole.fqe_iterations": 50,
}


def test_all_experiments_shrunk(tmp_path):
    config = load_config(CONFIG, "quick", SHRINK)
    out = run.run(config, tmp_path)
    assert set(out) == set(run.EXPERIMENTS)
    for name in run.EXPERIMENTS:
        res = json.loads((tmp_path / name / "results.json").read_text())
        assert isinstance(res["held"], bool)
        assert (tmp_path / name / "report.md").exists()
    assert (tmp_path / "coverage" / "coverage.png").exists()
    assert out["unification"]["max_rel_diff_tabular"] < 1e-9
    cov = out["coverage"]  # singular solves are counted and reported, never dropped silently
    assert 0.0 <= cov["singular_fraction"] <= 1.0
    assert cov["singular_estimates"] == round(cov["singular_fraction"] * 4 * 4)
    assert "numerically singular A_hat" in (tmp_path / "coverage" / "report.md").read_text()
    # resume: a second run reads the logged settings instead of recomputing them
    lines = (tmp_path / "coverage" / "metrics.jsonl").read_text().splitlines()
    config2 = load_config(CONFIG, "quick", {**SHRINK, "experiment": "coverage"})
    again = run.run(config2, tmp_path / "coverage")
    assert (tmp_path / "coverage" / "metrics.jsonl").read_text().splitlines() == lines
    assert again["spearman_C_fd"] == out["coverage"]["spearman_C_fd"]


def test_claims_registered():
    names = {c.name for c in claims.CLAIMS}
    assert names == {"coverage_predicts_error", "error_rate_inverse_sqrt_n",
                     "coverage_unification", "lstdq_vs_fqe_cartpole"}


def test_bad_config():
    with pytest.raises(ConfigError, match="config.experiment must be one of"):
        run.run(load_config(CONFIG, "quick", {"experiment": "nope"}), "/tmp/unused")
    with pytest.raises(ConfigError, match="config.cartpole.epsilon must be in"):
        run.run(load_config(CONFIG, "quick", {"cartpole.epsilon": 1.5}), "/tmp/unused")
    with pytest.raises(ConfigError, match="unknown config key 'coverage.bogus'"):
        load_config(CONFIG, "quick", {"coverage.bogus": 1})


def test_coverage_criterion_on_hand_made_tables():
    # error ranks follow C exactly and 1/sigma_min inversely: held; swapped: not held
    c = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    inv_s = np.array([9.0, 7.0, 5.0, 3.0, 1.0])
    err = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    v = run.judge_coverage(c, inv_s, c, err)
    assert v["held"] and v["spearman_C_fd"] == pytest.approx(1.0)
    assert v["spearman_inv_sigma_min"] == pytest.approx(-1.0)
    assert not run.judge_coverage(inv_s, c, c, err)["held"]
    # ties: equal correlations do not count as "C predicts better"
    assert not run.judge_coverage(c, c, c, err)["held"]
    # a setting with no nonsingular estimate (NaN) is left out and counted, not ranked
    err_nan = np.array([0.1, 0.2, np.nan, 0.4, 0.5])
    v = run.judge_coverage(c, inv_s, c, err_nan)
    assert v["settings_without_estimate"] == 1 and v["spearman_C_fd"] == pytest.approx(1.0)


def test_rate_criterion_on_hand_made_tables():
    ns = np.array([100.0, 1000.0, 10000.0])
    for slope, held in ((-0.5, True), (-0.41, True), (-0.3, False), (-0.65, False)):
        med = 2.0 * ns**slope
        v = run.judge_rate(ns, list(med), list(1.2 * med))
        assert v["slope_median_abs_err"] == pytest.approx(slope) and v["held"] is held
    # a size where every repetition was singular (None) is left out of the fit
    v = run.judge_rate(ns, [None, *(ns[1:] ** -0.5)], [None, *(ns[1:] ** -0.5)])
    assert v["slope_median_abs_err"] == pytest.approx(-0.5) and v["held"]
    with pytest.raises(ValueError, match="need >= 2 sizes"):
        run.judge_rate(ns, [None, None, 0.1], [None, None, 0.1])


def test_unification_and_cartpole_criteria_on_hand_made_tables():
    assert run.judge_unification([1e-12, 5e-7], [0.0, 1e-9])
    assert not run.judge_unification([1e-12, 2e-6], [0.0])
    assert not run.judge_unification([0.0], [1e-3])
    assert run.judge_cartpole(0.005, 0.1, 2.0)
    assert not run.judge_cartpole(0.02, 0.1, 2.0)  # disagree by 2% of J
    assert not run.judge_cartpole(0.005, 2.0, 0.1)  # LSTDQ slower
