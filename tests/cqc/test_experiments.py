"""The CQC experiments: each claim's criterion on hand-made result tables, and smoke runs
of the experiments at a shrunken quick config (with resume)."""

import json

import numpy as np
import pytest

from experiments.config import ConfigError, load_config
from experiments.cqc import claims, run

CONFIG = "experiments/cqc/configs/default.py"


def _tiny(experiment):
    return load_config(CONFIG, "quick", {
        "experiment": experiment, "direct.steps": 20, "direct.grid_size": 32,
        "nuisance_complexity.ns": (300,), "nuisance_complexity.gammas": (1.0, 2.0),
        "nuisance_complexity.reps": 2,
        "cqc_complexity.ns": (300,), "cqc_complexity.degrees": (1, 2),
        "cqc_complexity.reps": 2,
        "robustness.ns": (300, 400), "robustness.reps": 1,
        "employment.n_boot": 2, "employment.steps": 20,
    })


def test_claims_are_registered():
    assert [c.name for c in claims.CLAIMS] == [
        "nuisance_complexity_costs_direct_little", "error_tracks_cqc_complexity",
        "double_robustness", "employment_range_narrows_with_age"]


def _factor_table(values, n=1000):
    """``values[column][factor] = per-rep MSEs`` -> the table layout the runners build."""
    return {f"{col}/n={n}/{f:g}": {"values": list(v), "mse": float(np.mean(v))}
            for col, by_f in values.items() for f, v in by_f.items()}


def test_nuisance_complexity_criterion_on_hand_made_tables():
    rng = np.random.default_rng(0)
    noise = lambda: 0.002 * rng.normal(size=10)  # noqa: E731

    def table(d_lo, d_hi, i_lo, i_hi, oracle_hi):
        return _factor_table({
            "direct_est": {1: d_lo + noise(), 8: d_hi + noise()},
            "indirect_est": {1: i_lo + noise(), 8: i_hi + noise()},
            "direct_oracle": {1: 0.01 + noise(), 8: oracle_hi + noise()},
            "indirect_oracle": {1: 0.1 + noise(), 8: 0.2 + noise()},
        })

    ok = run.judge_nuisance_complexity(table(0.02, 0.03, 0.05, 0.20, 0.02), (1, 8), (1000,))
    assert ok["held"] and ok["difference_ci90"][0] > 0
    assert ok["direct_increase"] == pytest.approx(0.01, abs=0.003)
    # Indirect's MSE rises less than Direct's: not held
    worse = run.judge_nuisance_complexity(table(0.02, 0.20, 0.05, 0.06, 0.02), (1, 8), (1000,))
    assert not worse["held"] and not worse["costs_direct_less"]
    # the nuisance excess (0.03 - 0.01) exceeds the exact-nuisance error (0.01): not held
    excess = run.judge_nuisance_complexity(table(0.02, 0.03, 0.05, 0.20, 0.01), (1, 8), (1000,))
    assert excess["costs_direct_less"] and not excess["held"]
    # a difference inside the noise is not enough: v_r = 0.005 +- 0.05 (mean 0.005, its 90%
    # half-width 1.645 * 0.053 / sqrt(10) = 0.027)
    swing = 0.05 * np.array([1, -1] * 5)
    d_hi = np.full(10, 0.03)
    noisy = _factor_table({
        "direct_est": {1: np.full(10, 0.02), 8: d_hi},
        "indirect_est": {1: np.full(10, 0.02), 8: d_hi + 0.005 + swing},
        "direct_oracle": {1: np.full(10, 0.02), 8: np.full(10, 0.03)},
        "indirect_oracle": {1: np.full(10, 0.02), 8: np.full(10, 0.03)},
    })
    verdict = run.judge_nuisance_complexity(noisy, (1, 8), (1000,))
    assert verdict["difference_of_increases"] == pytest.approx(0.005)
    assert not verdict["held"]


def test_cqc_complexity_criterion_on_hand_made_tables():
    rng = np.random.default_rng(2)

    def table(lo, hi, sd=0.002):
        return _factor_table({
            "direct_est": {1: lo + sd * rng.normal(size=12), 6: hi + sd * rng.normal(size=12)},
            "indirect_est": {1: np.full(12, 0.05), 6: np.full(12, 0.06)},
            "direct_oracle": {1: np.full(12, 0.01), 6: np.full(12, 0.02)},
            "indirect_oracle": {1: np.full(12, 0.05), 6: np.full(12, 0.06)},
        })

    grows = run.judge_cqc_complexity(table(0.005, 0.02), (1, 6), (1000,))
    assert grows["held"] and grows["direct_ratio"] == pytest.approx(4.0, rel=0.2)
    assert not run.judge_cqc_complexity(table(0.01, 0.01), (1, 6), (1000,))["held"]
    assert not run.judge_cqc_complexity(table(0.01, 0.012, sd=0.02), (1, 6), (1000,))["held"]


def test_robustness_criterion_on_hand_made_tables():
    def table(**mse):
        return {f"{k}/n={n}": {"mse": v[i]} for k, v in mse.items()
                for i, n in enumerate((1000, 16000))}

    good = dict(both_right=(0.02, 0.003), pi_right_cdf_wrong=(0.04, 0.004),
                pi_wrong_cdf_right=(0.014, 0.001), both_wrong=(0.8, 0.84))
    assert run.judge_robustness(table(**good), (1000, 16000))["held"]
    stuck = {**good, "pi_right_cdf_wrong": (0.04, 0.05)}  # one-right MSE does not fall
    assert not run.judge_robustness(table(**stuck), (1000, 16000))["held"]
    close = {**good, "both_wrong": (0.02, 0.01)}  # both wrong is not clearly worse
    assert not run.judge_robustness(table(**close), (1000, 16000))["held"]


def test_employment_criterion_on_hand_made_tables():
    ages = np.arange(18, 51)
    assert run.judge_employment(ages, 3.0 - 0.02 * (ages - 18))
    assert not run.judge_employment(ages, 2.0 + 0.02 * (ages - 18))
    # negative slope but the oldest age is not below the youngest
    bump = 3.0 - 0.05 * (ages - 18) + np.where(ages == 50, 3.0, 0.0)
    assert not run.judge_employment(ages, bump)


@pytest.mark.parametrize("experiment", [
    pytest.param("nuisance_complexity", marks=pytest.mark.slow),
    "cqc_complexity",
    "robustness",
    pytest.param("employment", marks=pytest.mark.slow),
])
def test_experiment_runs_and_resumes(experiment, tmp_path):
    res = run.run(_tiny(experiment), tmp_path)
    assert res["held"] in (True, False)
    assert (tmp_path / "results.json").exists() and (tmp_path / "report.md").exists()
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())
    if experiment != "employment":  # rerun: every cell is read back from metrics.jsonl
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        run.run(_tiny(experiment), tmp_path)
        assert (tmp_path / "metrics.jsonl").read_text().splitlines() == lines
        assert json.loads((tmp_path / "results.json").read_text())["held"] == res["held"]


def test_config_validation():
    config = load_config(CONFIG, "quick", {"nuisance_complexity.ns": (50,)}, validate=False)
    with pytest.raises(ConfigError, match=r"nuisance_complexity.ns must be a tuple of >= 1 "
                                          r"items, each >= 100, got \(50,\)"):
        run.validate(config)
    with pytest.raises(ConfigError, match="only integer gamma >= 1 share one overlap"):
        load_config(CONFIG, "quick", {"nuisance_complexity.gammas": (1.0, 2.5)})
    with pytest.raises(ConfigError, match=r"nuisance_complexity.gammas must be a tuple of >= 2"):
        load_config(CONFIG, "quick", {"nuisance_complexity.gammas": (0.0, 2.0)})
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(CONFIG, "quick", {"complexity.ns": (500,)})
