"""Smoke test: the CQC experiments run end to end at a shrunken quick config."""

import json

import pytest

from experiments.config import ConfigError, load_config
from experiments.cqc import claims, run

CONFIG = "experiments/cqc/configs/default.py"


def _tiny(experiment):
    return load_config(CONFIG, "quick", {
        "experiment": experiment, "direct.steps": 20, "direct.grid_size": 32,
        "complexity.ns": (300,), "complexity.gammas": (0.0, 2.0), "complexity.reps": 1,
        "robustness.ns": (300, 400), "robustness.reps": 1,
        "employment.n_boot": 2, "employment.steps": 20,
    })


def test_claims_are_registered():
    assert [c.name for c in claims.CLAIMS] == [
        "error_tracks_cqc_complexity", "double_robustness", "employment_range_narrows_with_age"]


@pytest.mark.parametrize("experiment", [
    pytest.param("complexity", marks=pytest.mark.slow),
    "robustness",
    pytest.param("employment", marks=pytest.mark.slow),
])
def test_experiment_runs_and_resumes(experiment, tmp_path):
    res = run.run(_tiny(experiment), tmp_path)
    assert isinstance(res["held"], bool)
    assert (tmp_path / "results.json").exists() and (tmp_path / "report.md").exists()
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())
    if experiment != "employment":  # rerun: every cell is read back from metrics.jsonl
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        run.run(_tiny(experiment), tmp_path)
        assert (tmp_path / "metrics.jsonl").read_text().splitlines() == lines
        assert json.loads((tmp_path / "results.json").read_text())["held"] == res["held"]


def test_config_validation():
    config = load_config(CONFIG, "quick", {"complexity.ns": (50,)}, validate=False)
    with pytest.raises(ConfigError, match=r"complexity.ns must be a tuple of >= 1 items, each "
                                          r">= 100, got \(50,\)"):
        run.validate(config)
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(CONFIG, "quick", {"complexity.n": (500,)})
