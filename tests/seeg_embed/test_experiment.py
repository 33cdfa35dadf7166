"""Smoke test of the seeg_embed study (quick config shrunk to seconds), its resume, the
claims' logic on hand-made summaries, and the NumPy baseline simulator of the benchmark."""

import json

import jax
import numpy as np
import pytest
from scipy import signal

import seeg_embed as S
from experiments.claims import discover_claims
from experiments.config import ConfigError, load_config
from experiments.seeg_embed import claims, run
from experiments.seeg_embed.numpy_sim import simulate_session_numpy

SHRUNK = {"sim.n_subjects": 6, "sim.max_channels": 8, "n_heldout": 2, "rest_s": 20.0,
          "move_s": 20.0, "segment_s": 0.5, "encoder.steps": 4, "encoder.batch_pairs": 8,
          "encoder.embed_dim": 8, "recon.steps": 4, "recon.batch_size": 8, "recon.d_model": 16,
          "recon.num_layers": 1, "recon.mlp_dim": 16, "discrimination_pairs": 200,
          "checkpoint_every": 3, "loc_errors_mm": "0,1.5,4"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeg")
    config = load_config(run.CONFIG_PATH, "quick", SHRUNK)
    results = run.run(config, root / "study_quick")
    return root, config, results


def test_study_writes_results_and_resumes(study, monkeypatch):
    root, config, results = study
    wd = root / "study_quick"
    for name in ("results.json", "report.md", "embeddings.png", "zero_shot_sweep.png",
                 "reconstruction.png", "spectra.png", "seeds/seed_0.json", "seeds/seed_0.npz"):
        assert (wd / name).exists(), name
    seed = json.loads((wd / "seeds" / "seed_0.json").read_text())
    assert seed["n_subjects"] == 6 and len(seed["heldout"]) == 2
    assert set(seed["zero_shot_coordinates"]) == {"0.0", "1.5", "4.0"}
    for v in seed["reconstruction"]["random"].values():
        if isinstance(v, float):
            assert np.isfinite(v)
    s = results["summary"]
    assert s["zero_shot_embedding"]["mean"] == pytest.approx(
        seed["zero_shot_embedding"]["balanced_accuracy"])
    assert (wd / "seeds" / "seed_0" / "encoder_ckpt").is_dir()
    # a finished seed is not rerun
    monkeypatch.setattr(run, "run_seed", lambda *a, **k: pytest.fail("reran a finished seed"))
    again = run.run_study(config, wd)
    assert again["summary"] == results["summary"]


def test_changed_config_refuses_to_resume(study):
    root, _, _ = study
    other = load_config(run.CONFIG_PATH, "quick", {**SHRUNK, "encoder.steps": 5})
    with pytest.raises(ValueError, match=r"holds a run with a different config: "
                                         r"encoder.steps 4 -> 5"):
        run.run_study(other, root / "study_quick")
    # adding seeds is allowed (finished seeds stay valid); it is not run here
    more = load_config(run.CONFIG_PATH, "quick", {**SHRUNK, "num_seeds": 2})
    from experiments.seeg_embed.configs import default

    assert "num_seeds" in default.RESUME_ALLOW and more.num_seeds == 2


def test_claims_run_on_the_shrunk_study(study, monkeypatch):
    root, _, results = study
    monkeypatch.setattr(claims, "_study", lambda tier, workdir: results)
    for claim in claims.CLAIMS:
        out = claim.run("quick", root / claim.name)
        assert isinstance(out.held, bool) and out.numbers
        for plot in out.plots:
            assert (root / claim.name / plot).exists(), plot
    assert [c.name for c in discover_claims(["seeg_embed"])] == [c.name for c in claims.CLAIMS]


@pytest.mark.filterwarnings("ignore:Only one sample available")  # a one-channel region in LDA
def test_diagnostics_on_the_shrunk_study(study, tmp_path):
    from experiments.seeg_embed import diagnostics

    root, _, results = study
    out = diagnostics.diagnose(root / "study_quick")
    (seed,) = out["seeds"]
    assert seed["embedding_centroid"] == results["seeds"][0]["zero_shot_embedding"][
        "balanced_accuracy"]
    for k in ("spectral_centroid", "spectral_lda", "embedding_lda"):
        assert 0.0 <= seed[k] <= 1.0
    with pytest.raises(FileNotFoundError, match="seeds/config.json is missing"):
        diagnostics.diagnose(tmp_path)


def ci(mean, lo, hi, n=3):
    return {"mean": mean, "lo": lo, "hi": hi, "sd": 0.1, "n": n}


def summary(diff_lo=0.02, ari_lo=0.01, sil=0.1, recon_hi=(-0.01, -0.02)):
    sweep = {e: {"coordinates": ci(c, c - 0.05, c + 0.05), "difference": ci(0.6 - c, 0, 0)}
             for e, c in (("0.0", 0.8), ("1.5", 0.55), ("4.0", 0.4))}
    sweep["1.5"]["difference"] = ci(0.05, diff_lo, 0.08)
    return {
        "num_seeds": 3, "paper_like_error_mm": 1.5, "zero_shot_embedding": ci(0.6, 0.55, 0.65),
        "zero_shot_sweep": sweep, "zero_shot_paper_like": sweep["1.5"],
        "embeddings_win_from_error_mm": 1.5,
        "cluster_ari": {"embedding": ci(0.4, 0.3, 0.5), "coordinates": ci(0.3, 0.2, 0.4),
                        "true_coordinates": ci(0.6, 0.5, 0.7), "difference": ci(0.1, ari_lo, 0.2)},
        "cluster_silhouette": {"embedding": ci(sil, 0, 0.2), "coordinates": ci(0.2, 0.1, 0.3),
                               "true_coordinates": ci(0.3, 0.2, 0.4),
                               "difference": ci(0, -1, 1)},
        "discrimination": {"balanced_accuracy": ci(0.7, 0.6, 0.8), "auc": ci(0.8, 0.7, 0.9)},
        "reconstruction": {mask: {
            "transformer": ci(0.8, 0.7, 0.9), "linear_regression": ci(0.9, 0.8, 1.0),
            "mean_of_others": ci(1.1, 1.0, 1.2), "zero": ci(1.3, 1.2, 1.4),
            "transformer_minus_mean_of_others": ci(-0.3, -0.4, recon_hi[0]),
            "transformer_minus_linear_regression": ci(-0.1, -0.2, recon_hi[1]),
            "transformer_minus_zero": ci(-0.5, -0.6, -0.4)} for mask in ("random", "region")},
    }


def test_claim_criteria_on_hand_made_summaries():
    held, numbers = claims.judge_functional(summary())
    assert held and numbers["difference_ci_lo"] == 0.02
    assert numbers["coordinates_balanced_acc@0.0mm"] == 0.8
    assert not claims.judge_functional(summary(diff_lo=-0.01))[0]   # interval crosses 0
    one_seed = summary(diff_lo=-0.5)
    one_seed["zero_shot_paper_like"]["difference"]["n"] = 1          # one seed: the sign
    assert claims.judge_functional(one_seed)[0]
    assert claims.judge_clusters(summary())[0]
    assert not claims.judge_clusters(summary(ari_lo=-0.01))[0]
    assert not claims.judge_clusters(summary(sil=-0.05))[0]
    assert claims.judge_reconstruction(summary())[0]
    assert not claims.judge_reconstruction(summary(recon_hi=(-0.01, 0.01)))[0]
    assert not claims.judge_reconstruction(summary(recon_hi=(0.01, -0.01)))[0]


def test_summary_intervals_are_t_intervals():
    out = run._ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / np.sqrt(3)   # t_{0.975, 2} * sd / sqrt(n)
    assert out["mean"] == 2.0 and out["lo"] == pytest.approx(2 - half)
    assert out["hi"] == pytest.approx(2 + half)


def test_bad_config():
    for overrides, message in (
            ({"paper_like_error_mm": 2.5}, r"paper_like_error_mm \(2.5\) must be one of"),
            ({"n_heldout": 9}, r"n_heldout \(9\) leaves fewer than 2 training"),
            ({"rest_s": 25.0}, r"rest_s \(25.0\) must be a multiple of sim.block_s"),
            ({"encoder.loss": "triplet"}, "config.encoder.loss must be one of"),
            ({"loc_errors_mm": "0,a"}, "loc_errors_mm must be comma-separated numbers"),
            ({"sim.min_channels": 1}, "min_channels must be >= 2"),
            ({"recon.num_heads": 3}, r"num_heads \(3\) must divide recon.d_model")):
        with pytest.raises(ConfigError, match=message):
            load_config(run.CONFIG_PATH, "quick", overrides)
    config = load_config(run.CONFIG_PATH, "quick", {"n_heldout": 9}, validate=False)
    with pytest.raises(ConfigError, match="leaves fewer than 2 training"):
        run.validate(config)


def test_numpy_baseline_simulates_the_same_model():
    """Band powers of the NumPy baseline and the JAX simulator agree channel by channel."""
    config = run.sim_config(load_config(run.CONFIG_PATH, "quick", SHRUNK))  # compiled above
    cohort = S.make_cohort(jax.random.key(0), config)
    x_jax = S.simulate_session(jax.random.key(1), cohort, 0, 0, 20.0, config)[:3]
    x_jax = np.concatenate([x_jax, S.simulate_session(jax.random.key(2), cohort, 0, 0, 20.0,
                                                      config)[:3]], axis=-1)
    first = cohort._replace(**{k: v[:3] for k, v in cohort._asdict().items()})
    x_np = simulate_session_numpy(1, first, 0, 0, 40.0, config)
    mask = np.asarray(first.mask)
    assert x_np.shape == x_jax.shape and (x_np[~mask] == 0).all()
    f, pj = signal.welch(x_jax[mask], fs=1000.0, nperseg=1000)
    _, pn = signal.welch(x_np[mask], fs=1000.0, nperseg=1000)
    for lo, hi in ((2, 8), (8, 13), (13, 30), (30, 45), (60, 90)):
        band = (f >= lo) & (f < hi)
        ratio = np.log(pj[:, band].sum(1) / pn[:, band].sum(1))
        assert abs(np.median(ratio)) < 0.2, (lo, hi, np.median(ratio))
