"""Smoke test of the lstdq experiments: the quick config shrunk to seconds, resume, claims."""

import json
from pathlib import Path

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
