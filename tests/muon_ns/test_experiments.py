"""Smoke tests of the muon_ns experiments at a shrunk quick tier (seconds each)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.claims import discover_claims
from experiments.config import load_config
from experiments.muon_ns import convergence, rank, run, training

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "muon_ns" / "configs" / "default.py"


def _cfg(**overrides):
    return load_config(CONFIG, "quick", overrides)


def test_claims_are_registered():
    ids = [c.id for c in discover_claims(["muon_ns"])]
    assert ids == ["muon_ns/ns_doubly_exponential", "muon_ns/ns_matches_svd_digits",
                   "muon_ns/ns_matches_svd_lm", "muon_ns/no_sqrt_rank_loss"]


def test_convergence_smoke(tmp_path):
    r = convergence.run(_cfg(**{"convergence.shape": (8, 12), "convergence.kappas": (1, 2),
                                "convergence.max_q": 3}), tmp_path)
    assert r["num_measurements"] == 2 * 2 * 4 and r["held"] is True
    assert (tmp_path / "ns_convergence.png").exists()


def test_rank_smoke(tmp_path):
    r = rank.run(_cfg(**{"rank.ranks": (1, 4), "rank.dim": 8, "rank.num_samples": 256,
                         "rank.max_steps": 100, "rank.eval_every": 20}), tmp_path)
    assert set(r) >= {"sgdm_slope_log_steps_vs_log_r", "muon_slope_log_steps_vs_log_r", "held"}
    assert np.isfinite(r["slope_gap_sgdm_minus_muon"])


@pytest.mark.slow  # ~20 s of compilation (two optimizers, run twice); run with -m slow
def test_digits_smoke_and_resume(tmp_path):
    cfg = _cfg(**{"experiment": "digits", "train.optimizers": "muon_svd,muon_ns_k2_q3",
                  "digits.steps": 10, "digits.eval_every": 5, "digits.hidden": 8,
                  "train.checkpoint_every": 5})
    r = run.run(cfg, tmp_path)
    assert {"svd_final_val_loss", "muon_ns_k2_q3_ok", "held"} <= set(r)
    assert json.loads((tmp_path / "results.json").read_text())["num_ns_runs_judged"] == 1
    metrics = tmp_path / "digits" / "muon_ns_k2_q3" / "metrics.jsonl"
    n_lines = len(metrics.read_text().splitlines())
    run.run(cfg, tmp_path)  # resumes from the final checkpoint: nothing is retrained
    assert len(metrics.read_text().splitlines()) == n_lines


@pytest.mark.slow  # ~30 s of compilation on a shared CPU; run with -m slow
def test_lm_smoke(tmp_path):
    cfg = _cfg(**{"experiment": "lm", "train.optimizers_lm": "muon_svd,muon_ns_k2_q3",
                  "lm.steps": 4, "lm.eval_every": 2, "lm.seq_len": 16, "lm.d_model": 16,
                  "lm.num_heads": 2, "lm.eval_batches": 1, "lm.batch_size": 4,
                  "lm.max_train_bytes": 20_000})
    r = run.run(cfg, tmp_path)
    assert r["data_val_files"] > 0 and r["data_train_bytes"] == 20_000
    assert (tmp_path / "lm_val_loss.png").exists()


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    cfg = _cfg(**{"experiment": "digits", "train.optimizers": "sgdm",
                  "train.sgdm_lr": 1e30, "digits.steps": 40, "digits.eval_every": 5,
                  "digits.hidden": 8, "train.checkpoint_every": 5})
    with pytest.raises(FloatingPointError, match=r"sgdm: non-finite loss at step (\d+).*"
                       r"last good checkpoint \(step (\d+|None)\)"):
        run.run(cfg, tmp_path)
    ckpts = tmp_path / "digits" / "sgdm" / "checkpoints"
    assert ckpts.is_dir()


def test_bad_config(tmp_path):
    with pytest.raises(ValueError, match=r"unknown optimizer\(s\) \['lion'\]"):
        training.parse_optimizers("muon_svd,lion")
    with pytest.raises(ValueError, match=r"config.experiment must be one of"):
        run.run(_cfg(experiment="nope"), tmp_path)
    with pytest.raises(ValueError, match=r"ranks must be <= dim=8"):
        rank.run(_cfg(**{"rank.ranks": (1, 16), "rank.dim": 8}), tmp_path)
    with pytest.raises(ValueError, match=r"digits.steps \(30\) must be a multiple"):
        run.run(_cfg(**{"experiment": "digits", "digits.steps": 30}), tmp_path)


@pytest.mark.slow
def test_main_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.muon_ns.main", f"--config={CONFIG}:quick",
         "--config.experiment=convergence", "--config.convergence.shape=(6, 9)",
         "--config.convergence.kappas=(1,)", "--config.convergence.max_q=2",
         f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "results.json").read_text())["num_measurements"] == 6
    assert (tmp_path / "report.md").exists() and (tmp_path / "config.json").exists()
