"""How much region information the simulated LFP holds, beside what the encoder extracts.

Reads a finished study (``--study``: the folder with ``seeds/``), regenerates each seed's
cohort (the simulation is deterministic in the seed) and scores zero-shot region assignment
of the held-out subjects' channels with the same split and balanced accuracy as the study:

* hand-made spectral features: the Welch log-PSD (1 s Hann segments, 2-150 Hz, 1 Hz bins)
  of each channel's calibration data, each session's spectrum centred on its mean over
  frequency, averaged over the rest and movement sessions; read out by nearest centroid and
  by shrinkage LDA fit on the training subjects;
* the study's functional embeddings read out by shrinkage LDA instead of nearest centroid;
* the study's numbers for the embedding (nearest centroid) and for MNI coordinates at the
  paper-like error, for reference.

    python -m experiments.seeg_embed.diagnostics \
        --study=/tmp/seeg_standard/seeg_embed/study_standard --workdir=/tmp/seeg_diagnostics

Writes ``results.json`` and ``report.md`` into ``--workdir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from scipy import signal
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

import seeg_embed as S
from experiments.seeg_embed import run
from experiments.workdir import Workdir


def spectral_features(data: run.Data) -> np.ndarray:
    """``[channels, F]`` mean over sessions of the centred log-PSD of the calibration data."""
    feats = []
    for x in data.halves("calibration"):
        f, p = signal.welch(x, fs=data.fs, nperseg=int(data.fs), axis=-1)
        sel = (f >= 2) & (f <= 150)
        lp = np.log(p[data.ch_subject, data.ch_index][:, sel])
        feats.append(lp - lp.mean(-1, keepdims=True))
    return np.mean(feats, axis=0)


def _lda(train_x, train_y, test_x):
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(
        train_x, train_y).predict(test_x)


def diagnose(study: Path) -> dict:
    seeds_dir = study / "seeds"
    if not (seeds_dir / "config.json").is_file():
        raise FileNotFoundError(f"diagnostics: {seeds_dir / 'config.json'} is missing; pass the "
                                "folder of a study run (the one holding seeds/)")
    config = ml_collections.ConfigDict(json.loads((seeds_dir / "config.json").read_text()))
    out = []
    for i in range(config.num_seeds):
        path = seeds_dir / f"seed_{i}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        data = run.Data(config, i)
        if sorted(data.heldout.tolist()) != sorted(record["heldout"]):
            raise ValueError(f"diagnostics: seed {i} regenerated a different subject split")
        tr, ho = ~data.is_heldout, data.is_heldout
        y = data.ch_region
        spec = spectral_features(data)
        with np.load(seeds_dir / f"seed_{i}.npz") as z:
            emb = z["emb"]
        y_ho = y[ho]

        def score(pred, y_ho=y_ho):
            return S.accuracy_scores(y_ho, pred)["balanced_accuracy"]

        out.append({
            "seed": i,
            "spectral_centroid": score(S.nearest_centroid(spec[tr], y[tr], spec[ho])),
            "spectral_lda": score(_lda(spec[tr], y[tr], spec[ho])),
            "embedding_lda": score(_lda(emb[tr], y[tr], emb[ho])),
            "embedding_centroid": record["zero_shot_embedding"]["balanced_accuracy"],
            "coordinates_paper_like": record["zero_shot_coordinates"][
                str(config.paper_like_error_mm)]["balanced_accuracy"],
        })
    if not out:
        raise FileNotFoundError(f"diagnostics: no finished seed in {seeds_dir}")
    keys = [k for k in out[0] if k != "seed"]
    summary = {k: run._ci([r[k] for r in out]) for k in keys}
    return {"seeds": out, "summary": summary,
            "paper_like_error_mm": config.paper_like_error_mm}


def define_flags() -> None:
    """The command-line flags, defined only when run as a script (importing this module
    beside another with a --workdir flag must not collide in absl's registry)."""
    global _STUDY, _WORKDIR
    _STUDY = flags.DEFINE_string("study", None, "A finished study folder (holding seeds/).")
    _WORKDIR = flags.DEFINE_string("workdir", "/tmp/seeg_diagnostics", "Output folder.")


def main(argv):
    del argv
    if _STUDY.value is None:
        raise app.UsageError("--study is required")
    results = diagnose(Path(_STUDY.value))
    wd = Workdir(Path(_WORKDIR.value))
    wd.write_results(results)
    names = {"embedding_centroid": "functional embedding, nearest centroid (the study)",
             "embedding_lda": "functional embedding, shrinkage LDA",
             "spectral_centroid": "centred log-PSD, nearest centroid",
             "spectral_lda": "centred log-PSD, shrinkage LDA",
             "coordinates_paper_like": f"MNI coordinates at {results['paper_like_error_mm']} mm "
                                       "(the study)"}
    lines = ["# Zero-shot region assignment: readouts and features", "",
             f"Held-out subjects, balanced accuracy, {len(results['seeds'])} seed(s) "
             "(mean [95% t-interval]).", "", "| features and readout | balanced accuracy |",
             "|---|---|"]
    for k, label in names.items():
        lines.append(f"| {label} | {run._fmt(results['summary'][k])} |")
    wd.write_report("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    define_flags()
    app.run(main)
