"""Smoke test of the mgc suite (quick config shrunk to seconds), resume, and the claims' logic."""

import copy
import json

import numpy as np
import pytest

from experiments.claims import discover_claims
from experiments.config import ConfigError, load_config
from experiments.mgc import claims, run

SHRUNK = {
    "num_seeds": 1, "data.train_clips": 24, "data.test_clips": 24, "data.chunk": 12,
    "data.n_bins": 64, "data.n_frames": 32, "fusions": "gated",
    "mask_sources": "true,generated",
    "segmenter.width": 4, "segmenter.steps": 4, "classifier.width": 4,
    "classifier.large_width": 8, "classifier.steps": 4, "chunk_steps": 2,
    "eval.low_snr_max": 10.0, "eval.bootstrap": 10,
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("mgc")
    config = load_config(run.CONFIG_PATH, "quick", SHRUNK)
    results = run.run(config, root / "suite_quick")
    return root, config, results


def test_suite_writes_results_and_resumes(suite, monkeypatch):
    root, config, results = suite
    wd = root / "suite_quick"
    for name in ("results.json", "report.md", "metrics.jsonl", "in_distribution.png", "ood.png",
                 "false_positives.png", "examples.png"):
        assert (wd / name).exists(), name
    names = ["mgc_gated_generated", "baseline", "large_cnn", "mgc_gated_true"]
    assert list(results["models"]) == names
    assert results["kinds"] == ["stft", "mel", "pcen", "logfreq"]
    for name in names:
        rec = json.loads((wd / "models" / name / "seed0.json").read_text())
        for kind in results["kinds"]:
            acc = rec["kinds"][kind]["accuracy"]
            assert 0.0 <= acc <= 1.0
            assert np.sum(rec["kinds"][kind]["confusion"]) == 24
        row = results["models"][name]
        assert row["accuracy"]["stft"]["mean"] == rec["kinds"]["stft"]["accuracy"]
        assert row["drop"]["mel"]["mean"] == pytest.approx(
            rec["kinds"]["stft"]["accuracy"] - rec["kinds"]["mel"]["accuracy"])
    assert set(results["claims"]) == {"in_distribution", "ood", "false_positives"}
    # the stored verdicts are the comparisons of the per-model means (one gated model here)
    m = results["models"]
    acc = {n: m[n]["accuracy"]["stft"]["mean"] for n in m}
    gen = results["claims"]
    assert gen["in_distribution"]["generated"]["held"] is (
        acc["mgc_gated_generated"] > max(acc["baseline"], acc["large_cnn"]))
    assert gen["ood"]["generated"]["held"] is (
        m["mgc_gated_generated"]["mean_drop"] < min(m["baseline"]["mean_drop"],
                                                   m["large_cnn"]["mean_drop"]))
    fpr = {n: m[n]["fpr_at_recall"]["stft"]["mean"] for n in m}
    assert gen["false_positives"]["generated"]["held"] is (
        fpr["mgc_gated_generated"] < min(fpr["baseline"], fpr["large_cnn"]))
    assert 0.0 <= results["segmenter"][0]["dice_stft"] <= 1.0
    assert (wd / "data" / "train" / "chunk_000012.npz").exists()
    # a resumed segmenter (checkpoint at its last step) keeps its training record
    first = results["segmenter"][0]
    assert isinstance(first["final_loss"], float) and first["train_seconds"] > 0
    data = [run.D.make_split(config.data, split, n, kinds, key, wd) for split, n, kinds, key in (
        ("train", 24, ("stft",), run.jax.random.fold_in(run.jax.random.key(0), 0)),
        ("test", 24, tuple(results["kinds"]), run.jax.random.fold_in(run.jax.random.key(0), 1)))]
    _, _, quality = run.segmenters(config, *data, results["kinds"], wd, run._Compiled())
    assert quality[0]["final_loss"] == first["final_loss"]
    assert quality[0]["train_seconds"] == first["train_seconds"]
    # resuming trains nothing and gives the same summary
    monkeypatch.setattr(run, "_train", lambda *a, **k: pytest.fail("retrained a model"))
    monkeypatch.setattr(run.D.mgc, "simulate_scenes",
                        lambda *a, **k: pytest.fail("re-simulated data"))
    seg = copy.deepcopy(results["segmenter"])
    monkeypatch.setattr(run, "segmenters", lambda *a, **k: (
        [np.zeros((24, 64, 32, 2), np.float16)], [{}], seg))
    again = run.run(config, wd)
    assert again["models"] == results["models"]


def test_claims_on_the_shrunk_suite(suite, monkeypatch):
    root, _, results = suite
    monkeypatch.setattr(claims, "_suite", lambda tier, workdir: results)
    for claim in claims.CLAIMS:
        workdir = root / "mgc" / claim.name
        out = claim.run("quick", workdir)
        key = {"ood_transform": "ood"}.get(claim.name, claim.name)
        what = {"in_distribution": "accuracy", "ood_transform": "drop",
                "false_positives": "fpr_at_recall"}[claim.name]
        assert out.numbers["held_on_means"] == results["claims"][key]["generated"]["held"]
        assert out.held is run.ci_verdict(results["bootstrap"]["generated"], what)
        assert {"held": True, "not held": False, "undecided": None}[
            out.summary.rsplit("; ", 1)[1].rstrip(".")] is out.held
        if claim.name == "in_distribution":  # names the one fusion that ran, not three
            assert "MGC (gated; generated masks)" in out.summary, out.summary
    assert [c.name for c in discover_claims(["mgc"])] == [c.name for c in claims.CLAIMS]


def test_ci_verdict_needs_the_interval_to_clear_zero():
    def boot(metric, base, large):
        return {"mgc_minus_baseline": {metric: {"ci95": base}},
                "mgc_minus_large_cnn": {metric: {"ci95": large}}}

    # accuracy: better is above zero
    assert run.ci_verdict(boot("accuracy", [0.02, 0.09], [0.01, 0.03]), "accuracy") is True
    assert run.ci_verdict(boot("accuracy", [0.05, 0.09], [-0.019, 0.022]), "accuracy") is None
    assert run.ci_verdict(boot("accuracy", [0.05, 0.09], [-0.04, -0.01]), "accuracy") is False
    # drop and false positives: better is below zero
    assert run.ci_verdict(boot("drop", [0.024, 0.069], [-0.03, 0.011]), "drop") is False
    assert run.ci_verdict(boot("drop", [-0.2, -0.1], [-0.03, -0.01]), "drop") is True
    assert run.ci_verdict(boot("fpr_at_recall", [-0.2, -0.06], [-0.15, -0.02]),
                          "fpr_at_recall") is True
    assert run.ci_verdict(boot("fpr_at_recall", [-0.2, -0.06], [-0.15, 0.02]),
                          "fpr_at_recall") is None
    assert run.ci_verdict({}, "accuracy") is None  # no interval: undecided
    with pytest.raises(ValueError, match=r"ci_verdict: metric must be one of \['accuracy', "
                                         r"'drop', 'fpr_at_recall'\], got 'f1'"):
        run.ci_verdict({}, "f1")


def _row(acc, drop=0.1, fpr=0.2):
    return {"accuracy": {"stft": {"mean": acc}}, "mean_drop": drop,
            "fpr_at_recall": {"stft": {"mean": fpr}}}


def test_judges_on_hand_made_tables():
    table = {"mgc_concat_generated": _row(0.80, 0.05, 0.10),
             "mgc_gated_generated": _row(0.70, 0.10, 0.20),
             "mgc_cross_attention_generated": _row(0.90, 0.15, 0.30),
             "mgc_concat_true": _row(0.99, 0.0, 0.0),
             "baseline": _row(0.75, 0.12, 0.25), "large_cnn": _row(0.79, 0.20, 0.19)}
    res = run.judge_in_distribution(table, "stft")
    assert res["mgc_accuracy"] == pytest.approx(0.8) and res["held"] is True
    table["large_cnn"] = _row(0.81, 0.20, 0.19)
    assert run.judge_in_distribution(table, "stft")["held"] is False
    # OOD: MGC's mean drop 0.10 < 0.12 and < 0.20
    res = run.judge_ood(table)
    assert res["mgc_drop"] == pytest.approx(0.10) and res["held"] is True
    table["baseline"] = _row(0.75, 0.09, 0.25)
    assert run.judge_ood(table)["held"] is False
    # false positives: MGC 0.20 vs 0.25 and 0.19 -> not below the large CNN
    res = run.judge_false_positives(table, "stft")
    assert res["mgc_fpr"] == pytest.approx(0.20) and res["held"] is False
    table["large_cnn"] = _row(0.81, 0.20, 0.21)
    assert run.judge_false_positives(table, "stft")["held"] is True
    # the true-mask setting uses only the true-mask models
    assert run.judge_in_distribution(table, "stft", "true")["per_fusion"] == {
        "mgc_concat_true": 0.99}
    with pytest.raises(ValueError, match="need mgc_\\*_generated models and"):
        run.judge_ood({"baseline": _row(0.5)})


def test_bad_config():
    def bad(overrides, match):
        with pytest.raises(ConfigError, match=match):
            load_config(run.CONFIG_PATH, "quick", overrides)
        config = load_config(run.CONFIG_PATH, "quick", overrides, validate=False)
        with pytest.raises(ConfigError, match=match):
            run.run(config, "/nonexistent/never_written")

    bad({"fusions": "sum"}, r"config.fusions must be a comma-separated list of \[")
    bad({"classifier.steps": 61}, "classifier.steps=61 must be a multiple of "
                                  "config.chunk_steps=20")
    bad({"train_kind": "cqt"}, r"config.train_kind must be one of \['stft'")
    bad({"test_kinds": "mel,pcen"}, "config.train_kind='stft' must be one of "
                                    r"config.test_kinds=\['mel', 'pcen'\]")
    bad({"mask_sources": "oracle"}, "config.mask_sources must be a comma-separated list")
    bad({"early_mask_sources": ""}, "config.early_mask_sources must be a comma-separated list")
    bad({"num_seeds": 0}, "config.num_seeds must be > 0, got 0")
    bad({"eval.snr_edges": "0,-6"}, "config.eval.snr_edges must be >= 2 increasing")
    bad({"data.snr_high": -20.0}, "config.data.snr_high must be >= config.data.snr_low")
    with pytest.raises(ConfigError, match="data.bogus"):
        load_config(run.CONFIG_PATH, "quick", {"data.bogus": 1})


def test_config_names_agree_with_the_package():
    import mgc
    from experiments.mgc.configs import default

    assert default.KINDS == tuple(mgc.KINDS)
    assert default.FUSIONS == tuple(mgc.FUSIONS)


def test_model_names_per_tier():
    """Early fusion takes its own mask sources; the judged models come first."""
    standard = load_config(run.CONFIG_PATH, "standard")
    assert run.model_names(standard) == [
        "mgc_concat_generated", "mgc_gated_generated", "mgc_cross_attention_generated",
        "baseline", "large_cnn", "mgc_concat_true", "mgc_gated_true",
        "mgc_cross_attention_true", "mgc_early_true"]
    assert set(run.builders(standard)) == set(run.model_names(standard))
    full = load_config(run.CONFIG_PATH, "full")
    assert {"mgc_early_true", "mgc_early_generated"} <= set(run.model_names(full))
    assert len(run.model_names(full)) == 10
    quick = load_config(run.CONFIG_PATH, "quick")
    assert run.model_names(quick) == ["mgc_concat_generated", "baseline", "large_cnn"]
