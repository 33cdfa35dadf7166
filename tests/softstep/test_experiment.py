"""Smoke test of the SoftStep suite (quick config shrunk to seconds) and its claims."""

import json

import numpy as np
import pytest

from experiments.claims import discover_claims
from experiments.config import load_config
from experiments.softstep import claims, run

SHRUNK = {"datasets": "manifold", "heads": "linear,nw,s1_pointwise", "num_seeds": 2,
          "epochs": 3, "patience": 2, "hidden_table": "16", "embed_dim": 4,
          "knn_grid": "1,5", "rank_pairs": 200}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("softstep")
    config = load_config(run.CONFIG_PATH, "quick", SHRUNK)
    results = run.run(config, root / "suite_quick")
    return root, config, results


def test_suite_writes_results_and_resumes(suite, monkeypatch):
    root, config, results = suite
    wd = root / "suite_quick"
    for name in ("results.json", "report.md", "metrics.jsonl"):
        assert (wd / name).exists(), name
    cells = sorted((wd / "cells").glob("manifold__mlp__*.json"))
    assert len(cells) == 3
    record = json.loads(cells[0].read_text())
    assert len(record["test_mse"]) == 2 and np.all(np.isfinite(record["test_mse"]))
    s = results["summary"]["manifold"]["mlp"]
    assert s["linear"]["test_mse"]["mean"] == pytest.approx(
        np.mean(json.loads((wd / "cells" / "manifold__mlp__linear.json").read_text())
                ["test_mse"]))
    assert "support_exact" in s["s1_pointwise"] and "support_exact" not in s["linear"]
    # Resuming does not retrain finished cells.
    monkeypatch.setattr(run, "train_cell", lambda *a, **k: pytest.fail("retrained a cell"))
    again = run.run_suite(config, wd)
    assert again["summary"] == results["summary"]


def test_claims_on_the_shrunk_suite(suite, monkeypatch):
    root, _, results = suite
    monkeypatch.setattr(claims, "_suite", lambda tier, workdir: results)
    for claim in claims.CLAIMS:
        out = claim.run("quick", root / claim.name)
        assert isinstance(out.held, bool) and out.numbers
        for plot in out.plots:
            assert (root / claim.name / plot).exists(), plot
    assert [c.name for c in discover_claims(["softstep"])] == [c.name for c in claims.CLAIMS]


def test_knn_grid_and_rank_correlation_against_direct_computation():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(60, 3))
    y = (e[:, :1] * 2).astype(np.float32)
    # Target distance is a monotone function of distance along axis 0 only.
    rho = run.rank_correlation(e[:, :1], y, 500, 0)
    assert rho == pytest.approx(1.0)
    mse, k = run.knn_grid(e[:40], y[:40], e[40:50], y[40:50], e[50:], y[50:], [1, 3])
    # Independent brute-force kNN in numpy: pick (k, weights) by validation MSE, report test.
    def knn(q, kk, weights):
        d = np.linalg.norm(q[:, None] - e[:40][None], axis=2)
        idx = np.argsort(d, axis=1)[:, :kk]
        w = np.ones_like(idx, float) if weights == "uniform" else 1 / np.take_along_axis(
            d, idx, 1)
        return (w * y[:40, 0][idx]).sum(1) / w.sum(1)

    grid = [(kk, wt) for kk in (1, 3) for wt in ("uniform", "distance")]
    val = [np.mean((knn(e[40:50], kk, wt) - y[40:50, 0]) ** 2) for kk, wt in grid]
    kk, wt = grid[int(np.argmin(val))]
    assert k == kk
    assert mse == pytest.approx(np.mean((knn(e[50:], kk, wt) - y[50:, 0]) ** 2), rel=1e-5)


def test_bad_config():
    config = load_config(run.CONFIG_PATH, "quick", {"datasets": "mnist"}, validate=False)
    with pytest.raises(ValueError, match=r"config.datasets: expected some of .* got \['mnist'\]"):
        run.validate(config)
    config = load_config(run.CONFIG_PATH, "quick", {"val_fraction": 0.9}, validate=False)
    with pytest.raises(ValueError, match="config.val_fraction must be in"):
        run.validate(config)


def test_changed_config_refuses_to_resume(suite):
    root, config, _ = suite
    other = load_config(run.CONFIG_PATH, "quick", {**SHRUNK, "epochs": 4})
    with pytest.raises(ValueError, match="holds cells of a different config"):
        run.run_suite(other, root / "suite_quick")


def _hand_summary(softstep_mse):
    """summary[dataset][backbone][head][metric] = {"mean": ...}; linear MSE 1.0 everywhere."""
    def cell(v):
        return {"test_mse": {"mean": v}, "knn_test_mse": {"mean": 2.0}}
    return {f"d{i}": {"mlp": {"linear": cell(1.0), "softstep_valsel": cell(s), "nw": cell(1.5)}}
            for i, s in enumerate(softstep_mse)}


@pytest.mark.parametrize("mse, held, wins", [((0.5, 0.9, 1.2), True, "2/3"),
                                              ((0.5, 1.1, 1.2), False, "1/3")])
def test_neighbour_claim_counts_datasets_on_a_hand_made_summary(tmp_path, monkeypatch, mse,
                                                                held, wins):
    monkeypatch.setattr(claims, "_suite", lambda tier, workdir: {"summary": _hand_summary(mse)})
    out = claims.neighbour_heads_beat_linear("quick", tmp_path)
    assert out.held is held
    assert out.numbers["datasets_softstep_beats_linear"] == wins
    assert out.numbers["d0/softstep"] == 0.5 and out.numbers["d0/linear"] == 1.0
