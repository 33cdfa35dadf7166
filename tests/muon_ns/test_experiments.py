"""Smoke tests of the muon_ns experiments at a shrunk quick tier (seconds each)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.claims import discover_claims
from experiments.config import load_config
from experiments.muon_ns import convergence, lm_sweep, rank, run, training

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
    assert set(r) >= {"sgdm_own_slope_log_steps_vs_log_r", "muon_own_slope_log_steps_vs_log_r",
                      "sgdm_shared_slope_log_steps_vs_log_r", "held"}
    assert np.isfinite(r["slope_gap_own"]) and np.isfinite(r["slope_gap_shared"])
    assert r["held"] == (r["slope_gap_own"] >= 0.25)


def _recs(vals, times=None):
    """A run's records from validation losses at steps 0, 10, 20, ..."""
    times = times or [float(i) for i in range(len(vals))]
    return [{"step": 10 * i, "val_loss": v, "wall_s": t} for i, (v, t) in
            enumerate(zip(vals, times, strict=True))]


def test_judge_digits_uses_best_validation_loss():
    svd = _recs([2.0, 1.0, 1.2])  # best 1.0 at step 10, overfits to 1.2
    ns_ok = _recs([2.0, 1.5, 1.01, 1.3], [0.0, 0.1, 0.2, 0.3])  # best 1.01 <= 1.02, fast
    ns_late = _recs([2.0, 1.5, 1.01, 1.3], [0.0, 5.0, 6.0, 7.0])  # good but slower than SVD
    ns_bad = _recs([2.0, 1.5, 1.05])  # best 1.05 > 1.02
    r = training.judge_digits({"muon_svd": [svd], "muon_ns_k2_q3": [ns_ok]})
    assert r["held"] is True and r["svd_best_val_loss"] == 1.0
    assert r["muon_ns_k2_q3_best_val_loss"] == 1.01 and r["muon_ns_k2_q3_final_val_loss"] == 1.3
    assert training.judge_digits({"muon_svd": [svd], "muon_ns_k2_q3": [ns_late]})["held"] is False
    assert training.judge_digits({"muon_svd": [svd], "muon_ns_k2_q5": [ns_bad]})["held"] is False
    # q < 3 is not judged; no judged run means not held
    r = training.judge_digits({"muon_svd": [svd], "muon_ns_k2_q1": [ns_bad]})
    assert r["num_ns_runs_judged"] == 0 and r["held"] is False
    with pytest.raises(ValueError, match="needs a muon_svd run"):
        training.judge_digits({"sgdm": [svd]})


def _lm_config(**kw):
    return _cfg(**{"lm.normalizations": "frobenius", "lm.margin": 0.01, **kw}).lm


def test_lm_judge_on_hand_tables():
    lc = _lm_config()
    svd = [2.00, 2.10, 1.90, 2.05]
    # q=1: chi 10 (eps 0.9), clearly worse; q=5: chi ~1, gaps +0.1%, -0.2%, +0.05%, 0
    best = {"muon_svd": svd,
            "muon_ns_k2_q1_fro": [2.20, 2.30, 2.12, 2.24],
            "muon_ns_k2_q5_fro": [2.002, 2.0958, 1.90095, 2.05]}
    eps = {"muon_ns_k2_q1_fro": 0.9, "muon_ns_k2_q5_fro": 1e-4}
    r = lm_sweep.judge(best, eps, lc)
    assert r["fro_q_lo"] == 1 and r["fro_q_hi"] == 5
    assert r["fro_shrinks"] and r["fro_within_margin"] and r["held"] is True
    np.testing.assert_allclose(r["fro_q1_chi"], 10.0)
    gaps = (np.asarray(best["muon_ns_k2_q5_fro"]) - svd) / svd
    np.testing.assert_allclose(r["fro_q5_gap"], gaps.mean())
    # the chi-nearest-1 run 3% worse: shrinks, but not within the margin
    worse = dict(best, muon_ns_k2_q5_fro=[1.03 * v for v in svd])
    r = lm_sweep.judge(worse, eps, lc)
    assert r["fro_shrinks"] and not r["fro_within_margin"] and r["held"] is False
    # no shrink: the large-chi run is as good as the small-chi one
    flat = dict(best, muon_ns_k2_q1_fro=best["muon_ns_k2_q5_fro"][::-1])
    assert lm_sweep.judge(flat, eps, lc)["fro_shrinks"] is False
    with pytest.raises(ValueError, match=r"needs >= 2 values of q"):
        lm_sweep.judge({"muon_svd": svd, "muon_ns_k2_q5_fro": svd}, eps, lc)


@pytest.mark.slow  # ~20 s of compilation (two optimizers, run twice); run with -m slow
def test_digits_smoke_and_resume(tmp_path):
    cfg = _cfg(**{"experiment": "digits", "train.optimizers": "muon_svd,muon_ns_k2_q3",
                  "digits.steps": 10, "digits.eval_every": 5, "digits.hidden": 8,
                  "train.checkpoint_every": 5})
    r = run.run(cfg, tmp_path)
    assert {"svd_best_val_loss", "muon_ns_k2_q3_ok", "held"} <= set(r)
    assert json.loads((tmp_path / "results.json").read_text())["num_ns_runs_judged"] == 1
    metrics = tmp_path / "digits" / "muon_ns_k2_q3" / "seed0" / "metrics.jsonl"
    n_lines = len(metrics.read_text().splitlines())
    run.run(cfg, tmp_path)  # resumes from the final checkpoint: nothing is retrained
    assert len(metrics.read_text().splitlines()) == n_lines


@pytest.mark.slow  # ~60 s of compilation on a shared CPU; run with -m slow
def test_lm_smoke(tmp_path):
    cfg = _cfg(**{"experiment": "lm", "lm.qs": (1, 3), "lm.steps": 4, "lm.eval_every": 2,
                  "lm.seq_len": 16, "lm.d_model": 16, "lm.num_heads": 2, "lm.eval_batches": 1,
                  "lm.batch_size": 4, "lm.max_train_bytes": 20_000, "lm.seeds": 2})
    r = run.run(cfg, tmp_path)
    assert r["data_val_files"] > 0 and r["data_train_bytes"] == 20_000
    assert (tmp_path / "lm_val_loss.png").exists() and (tmp_path / "lm_gap_vs_chi.png").exists()
    assert 0 < r["fro_q1_chi"] and r["muon_ns_k2_q3_fro_lr"] == 0.02


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    cfg = _cfg(**{"experiment": "digits", "train.optimizers": "sgdm",
                  "train.sgdm_lr": 1e30, "digits.steps": 40, "digits.eval_every": 5,
                  "digits.hidden": 8, "train.checkpoint_every": 5})
    with pytest.raises(FloatingPointError,
                       match=r"digits/sgdm/seed0: non-finite loss at step (\d+).*"
                       r"last good checkpoint \(step (\d+|None)\)"):
        run.run(cfg, tmp_path)
    ckpts = tmp_path / "digits" / "sgdm" / "seed0" / "checkpoints"
    assert ckpts.is_dir()


def test_bad_config(tmp_path):
    with pytest.raises(ValueError, match=r"unknown optimizer\(s\) \['lion'\]"):
        training.parse_optimizers("muon_svd,lion")
    with pytest.raises(ValueError, match=r"config.lm.normalizations"):
        _cfg(**{"experiment": "lm", "lm.normalizations": "l2"})
    with pytest.raises(ValueError, match=r"config.lm.qs"):
        _cfg(**{"experiment": "lm", "lm.qs": (0, 1)})
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
