"""The mgc suite: simulate, train segmenters and classifiers, evaluate in and out of distribution.

Stages (each resumable in ``workdir``):

1. Data: ``train`` (``train_kind`` images and ground-truth masks) and ``test`` (every
   transform of ``test_kinds``), simulated in chunks (:mod:`experiments.mgc.data`).
2. Segmenters: one U-Net per seed on the training images and masks (soft Dice + BCE);
   its soft masks of the training and test images are the ``generated`` masks. The soft
   Dice of its masks against the ground truth is reported per test transform.
3. Classifiers: for every seed, MGC with each fusion and mask source, the same-budget
   spectrogram CNN (``baseline``) and the ``large_cnn``, trained on ``train_kind`` and
   evaluated on every test transform with no retraining (the segmenter also runs on the
   other transform's images).
4. Summary: accuracy, macro-F1, confusion, false positives on noise-only clips (argmax and
   at the threshold giving ``eval.recall`` on call clips below ``eval.low_snr_max`` dB),
   accuracy per SNR bin; the three claims' criteria (:func:`judge_in_distribution`,
   :func:`judge_ood`, :func:`judge_false_positives`) with paired-bootstrap intervals.

Every (model, seed) is checkpointed after each chunk of steps (orbax) and its evaluation
written to ``models/<model>/seed<k>.json`` (+ ``.npz`` of probabilities); a re-run skips
what is finished and continues a run that was interrupted mid-training.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import mgc
from experiments.checkpoint import Checkpointer
from experiments.config import load_config, validate_config
from experiments.mgc import data as D
from experiments.progress import Progress
from experiments.workdir import Workdir, atomic_write_bytes, atomic_write_json

CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "default.py"
MID_FUSIONS = ("concat", "gated", "cross_attention")
BASELINES = ("baseline", "large_cnn")
NUM_CLASSES = len(mgc.CLASSES)
PAPER = ("Razig, Soulaymani, Benabbou, Cauchy: Multi-Representation Attention Framework for "
         "Underwater Bioacoustic Denoising and Recognition")


def _list(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def validate(config) -> None:
    """Checks a config against ``configs/default.py``'s ``RULES`` and ``validate``."""
    from experiments.mgc.configs import default

    validate_config(config, default)


# -- models --------------------------------------------------------------------------------


def model_names(config) -> list[str]:
    """Every classifier, in training order: the models the claims are judged on first (MGC's
    mid-level fusions with generated masks, then the two baselines), then the true-mask and
    early-fusion models, so that a run stopped within a seed has decided the most."""
    first = [f"mgc_{f}_generated" for f, s in _fusion_sources(config)
             if f in MID_FUSIONS and s == "generated"]
    rest = [f"mgc_{f}_{s}" for f, s in _fusion_sources(config) if f"mgc_{f}_{s}" not in first]
    return first + list(BASELINES) + rest


def _fusion_sources(config) -> list[tuple[str, str]]:
    """Every (fusion, mask source) trained: mid-level fusions with each of ``mask_sources``,
    early fusion with each of ``early_mask_sources``."""
    sources, early = _list(config.mask_sources), _list(config.early_mask_sources)
    return [(f, s) for f in _list(config.fusions) for s in (early if f == "early" else sources)]


def _grid(config) -> tuple[int, int]:
    return (int(config.data.n_bins), int(config.data.n_frames))


def builders(config) -> dict[str, Callable[[nnx.Rngs], nnx.Module]]:
    """``name -> (rngs -> model)`` for every classifier; the baseline matches MGC's budget."""
    cc, grid, bands = config.classifier, _grid(config), 2
    out: dict[str, Callable[[nnx.Rngs], nnx.Module]] = {}
    for fusion, source in _fusion_sources(config):
        out[f"mgc_{fusion}_{source}"] = (
            lambda r, f=fusion: mgc.MGCClassifier(f, bands, NUM_CLASSES, cc.width, grid, rngs=r))
    target = mgc.count_params(nnx.eval_shape(lambda: mgc.MGCClassifier(
        "cross_attention", bands, NUM_CLASSES, cc.width, grid, rngs=nnx.Rngs(0))))
    width = mgc.matched_width(target, lambda w: mgc.SpectrogramCNN(bands, NUM_CLASSES, w,
                                                                   rngs=nnx.Rngs(0)))
    out["baseline"] = lambda r: mgc.SpectrogramCNN(bands, NUM_CLASSES, width, rngs=r)
    out["large_cnn"] = lambda r: mgc.large_cnn(bands, NUM_CLASSES, cc.large_width, rngs=r)
    return out


def _arch(name: str) -> str:
    """Models that share an architecture (and so a compiled step): mgc_<fusion>_<source>."""
    return name.rsplit("_", 1)[0] if name.startswith("mgc_") else name


class _Compiled:
    """One compiled train chunk and forward pass per architecture, reused across seeds."""

    def __init__(self):
        self.train: dict[str, Any] = {}
        self.forward: dict[str, Any] = {}


def _train(name: str, build, seed: int, data: tuple, loss_fn, tc, chunk_steps: int,
           workdir: Path, compiled: _Compiled, arch: str):
    """Trains one model with checkpoints after every chunk; returns (graphdef, params, log)."""
    graphdef, params = mgc.init_params(build, seed)
    opt = mgc.make_optimizer(tc.learning_rate, tc.steps,
                             weight_decay=float(tc.get("weight_decay", 1e-4)))
    state = {"params": params, "opt_state": opt.init(params),
             "key": jax.random.fold_in(jax.random.key(seed), 17)}
    if arch not in compiled.train:
        compiled.train[arch] = mgc.make_train_chunk(graphdef, loss_fn, opt,
                                                    batch_size=tc.batch_size, steps=chunk_steps)
    step_fn = compiled.train[arch]
    ckpt = Checkpointer(workdir / "checkpoints", save_every=chunk_steps, max_to_keep=1)
    state, start = ckpt.restore_or(state)
    progress = Progress(tc.steps, name=f"mgc/{name}/seed{seed}", interval_s=30.0,
                        start_step=start)
    log = []
    t0 = time.perf_counter()
    for step in range(start + chunk_steps, tc.steps + 1, chunk_steps):
        p, s, k, loss = step_fn(state["params"], state["opt_state"], state["key"], *data)
        loss = float(loss)
        if not np.isfinite(loss):
            ckpt.close()
            raise FloatingPointError(
                f"mgc: {name} seed {seed}: non-finite loss at step {step}; stopped. The last "
                f"good checkpoint (step {ckpt.latest_step}) is in {workdir / 'checkpoints'}")
        state = {"params": p, "opt_state": s, "key": k}
        log.append({"step": step, "loss": loss})
        ckpt.maybe_save(step, state)
        progress.update(step, f"loss {loss:.4f}")
    ckpt.close()
    return graphdef, state["params"], log, time.perf_counter() - t0


# -- segmenter -------------------------------------------------------------------------------


def _seg_loss(model, batch):
    return mgc.segmentation_loss(model(batch[0]), batch[1])


def _dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over clips of the soft Dice coefficient ``2 sum(p g) / (sum p + sum g)``."""
    p, g = pred.astype(np.float64), target.astype(np.float64)
    axes = tuple(range(1, p.ndim))
    inter = (p * g).sum(axes)
    total = p.sum(axes) + g.sum(axes)
    return float(np.mean((2 * inter + 1.0) / (total + 1.0)))


def _seeds(config) -> list[int]:
    return list(range(config.seed, config.seed + config.num_seeds))


def segmenters(config, train, test, kinds, workdir: Path, compiled: _Compiled,
               seeds: list[int] | None = None):
    """Trains (or restores) one segmenter per seed of ``seeds`` (default: every seed of the
    config); returns its generated masks (train, and test per kind) and their quality."""
    sc = config.segmenter
    build = lambda r: mgc.UNet(2, 2, sc.width, rngs=r)  # noqa: E731
    gen_train, gen_test, quality = [], [], []
    for seed in _seeds(config) if seeds is None else seeds:
        wd = workdir / "segmenter" / f"seed{seed}"
        graphdef, params, log, secs = _train(
            "segmenter", build, seed, (train[f"image_{config.train_kind}"],
                                       train[f"mask_{config.train_kind}"]), _seg_loss, sc,
            config.chunk_steps, wd, compiled, "segmenter")
        if "segmenter" not in compiled.forward:
            compiled.forward["segmenter"] = mgc.make_predict(
                graphdef, lambda m, x: jax.nn.sigmoid(m(x)).astype(jnp.float16))
        fwd = compiled.forward["segmenter"]
        gen_train.append(mgc.predict(fwd, params, [train[f"image_{config.train_kind}"]]))
        per_kind = {k: mgc.predict(fwd, params, [test[f"image_{k}"]]) for k in kinds}
        gen_test.append(per_kind)
        # A resumed seed trains nothing; its training record is the one kept on disk.
        record = wd / "train.json"
        if log:
            atomic_write_json(record, {"train_seconds": secs, "final_loss": log[-1]["loss"]})
        q = {"seed": seed, **(json.loads(record.read_text()) if record.exists() else
                              {"train_seconds": secs, "final_loss": None})}
        q.update({f"dice_{k}": _dice(per_kind[k], test[f"mask_{k}"]) for k in kinds})
        quality.append(q)
    return gen_train, gen_test, quality


# -- classifiers ----------------------------------------------------------------------------


def _cls_loss(model, batch):
    return mgc.classification_loss(model(batch[0], batch[1]), batch[2])


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def evaluate(probs: np.ndarray, test: dict, ec) -> dict[str, Any]:
    """Metrics of one model on one test set from its class probabilities ``(n, K)``."""
    labels = test["labels"].astype(np.int64)
    preds = probs.argmax(1).astype(np.int64)
    snr = test["snr_db"]
    low = (labels != 0) & (snr < ec.low_snr_max)
    fpr, tau = mgc.fpr_at_recall(1.0 - probs[:, 0], labels, low, recall=ec.recall)
    return {
        "accuracy": mgc.accuracy(labels, preds),
        "macro_f1": mgc.macro_f1(labels, preds, NUM_CLASSES),
        "false_positive_rate": mgc.false_positive_rate(labels, preds),
        "fpr_at_recall": fpr,
        "threshold_at_recall": tau,
        "confusion": mgc.confusion_matrix(labels, preds, NUM_CLASSES).tolist(),
        "per_snr": mgc.per_snr_accuracy(labels, preds, snr,
                                        [float(e) for e in _list(ec.snr_edges)]),
    }


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def classifiers(config, train, test, kinds, gen_train, gen_test, workdir: Path,
                compiled: _Compiled, seeds: list[int] | None = None) -> dict[str, list[dict]]:
    """Trains and evaluates every (model, seed) not already finished; returns their records.

    Seed-major: every model of the first seed before the next seed, so that an interrupted
    run holds complete comparisons for the seeds it finished. ``gen_train[i]`` and
    ``gen_test[i]`` are the generated masks of ``seeds[i]`` (default: every seed).
    """
    tk = config.train_kind
    build = builders(config)
    wd = Workdir(workdir)
    names = model_names(config)
    records: dict[str, list[dict]] = {name: [] for name in names}
    seeds = _seeds(config) if seeds is None else list(seeds)
    total = len(names) * config.num_seeds
    progress = Progress(total, name="mgc/classifiers", interval_s=0.0,
                        start_step=(seeds[0] - config.seed) * len(names) if seeds else 0)
    for i, seed in enumerate(seeds):
        for j, name in enumerate(names):
            done = (seed - config.seed) * len(names) + j + 1
            source = name.rsplit("_", 1)[1] if name.startswith("mgc_") else "none"
            out = workdir / "models" / name / f"seed{seed}.json"
            if out.exists():
                records[name].append(json.loads(out.read_text()))
                continue
            masks_tr = gen_train[i] if source == "generated" else train[f"mask_{tk}"]
            graphdef, params, log, secs = _train(
                name, build[name], seed, (train[f"image_{tk}"], masks_tr, train["labels"]),
                _cls_loss, config.classifier, config.chunk_steps,
                workdir / "models" / name / f"seed{seed}", compiled, _arch(name))
            arch = _arch(name)
            if arch not in compiled.forward:
                compiled.forward[arch] = mgc.make_predict(graphdef, lambda m, x, k: m(x, k))
            fwd = compiled.forward[arch]
            rec: dict[str, Any] = {"model": name, "seed": seed, "train_seconds": secs,
                                   "final_loss": log[-1]["loss"] if log else None,
                                   "params": mgc.count_params(nnx.merge(graphdef, params)),
                                   "kinds": {}}
            probs_all = {}
            for k in kinds:
                masks = gen_test[i][k] if source == "generated" else test[f"mask_{k}"]
                probs = _softmax(mgc.predict(fwd, params, [test[f"image_{k}"], masks]))
                probs_all[k] = probs.astype(np.float32)
                rec["kinds"][k] = evaluate(probs, test, config.eval)
            _save_npz(out.with_suffix(".npz"), probs_all)
            atomic_write_json(out, rec)
            records[name].append(rec)
            wd.log_metrics(done, model=name, seed=seed,
                           **{f"accuracy_{k}": rec["kinds"][k]["accuracy"] for k in kinds})
            progress.update(done, f"{name} seed {seed}: acc {rec['kinds'][tk]['accuracy']:.3f}")
    return records


# -- summary and the claims' criteria --------------------------------------------------------


def _stats(values: list[float]) -> dict[str, Any]:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "values": [float(x) for x in v]}


def summarize(records: dict[str, list[dict]], train_kind: str, kinds: list[str]
              ) -> dict[str, Any]:
    """Per model: mean/std over seeds of each metric per test transform, and OOD drops."""
    out: dict[str, Any] = {}
    for name, recs in records.items():
        row: dict[str, Any] = {"params": recs[0]["params"],
                               "train_seconds": float(np.mean([r["train_seconds"] for r in recs]))}
        for metric in ("accuracy", "macro_f1", "false_positive_rate", "fpr_at_recall"):
            row[metric] = {k: _stats([r["kinds"][k][metric] for r in recs]) for k in kinds}
        others = [k for k in kinds if k != train_kind]
        row["drop"] = {k: _stats([r["kinds"][train_kind]["accuracy"] - r["kinds"][k]["accuracy"]
                                  for r in recs]) for k in others}
        row["mean_drop"] = (float(np.mean([row["drop"][k]["mean"] for k in others]))
                            if others else None)
        bins = recs[0]["kinds"][train_kind]["per_snr"]
        row["per_snr_accuracy"] = [
            {"lo": b["lo"], "hi": b["hi"],
             "accuracy": float(np.mean([r["kinds"][train_kind]["per_snr"][j]["accuracy"]
                                        for r in recs]))}
            for j, b in enumerate(bins) if b["count"] > 0]
        out[name] = row
    return out


def _mgc_names(summary: dict, source: str) -> list[str]:
    return [f"mgc_{f}_{source}" for f in MID_FUSIONS if f"mgc_{f}_{source}" in summary]


def judge_in_distribution(summary: dict, train_kind: str, source: str = "generated") -> dict:
    """Claim 1. Held when MGC's accuracy on ``train_kind`` -- the mean over its mid-level
    fusions (concat, gated, cross_attention) with ``source`` masks, each a mean over
    seeds -- is above the mean accuracy of the same-budget baseline and of the large CNN."""
    names = _mgc_names(summary, source)
    if not names or any(b not in summary for b in BASELINES):
        raise ValueError(f"judge_in_distribution: need mgc_*_{source} models and {BASELINES}")
    acc = {n: summary[n]["accuracy"][train_kind]["mean"] for n in names + list(BASELINES)}
    mgc_acc = float(np.mean([acc[n] for n in names]))
    return {"mgc_accuracy": mgc_acc, "baseline_accuracy": acc["baseline"],
            "large_cnn_accuracy": acc["large_cnn"],
            "per_fusion": {n: acc[n] for n in names},
            "held": bool(mgc_acc > acc["baseline"] and mgc_acc > acc["large_cnn"])}


def judge_ood(summary: dict, source: str = "generated") -> dict:
    """Claim 2. Held when MGC's accuracy drop from the training transform to the others --
    averaged over the other transforms, the seeds and its mid-level fusions with ``source``
    masks -- is smaller than the drop of the baseline and of the large CNN."""
    names = _mgc_names(summary, source)
    if not names or any(b not in summary for b in BASELINES):
        raise ValueError(f"judge_ood: need mgc_*_{source} models and {BASELINES}")
    drops = {n: summary[n]["mean_drop"] for n in names + list(BASELINES)}
    if any(d is None for d in drops.values()):
        raise ValueError("judge_ood: the models were evaluated on the training transform only")
    mgc_drop = float(np.mean([drops[n] for n in names]))
    return {"mgc_drop": mgc_drop, "baseline_drop": drops["baseline"],
            "large_cnn_drop": drops["large_cnn"], "per_fusion": {n: drops[n] for n in names},
            "held": bool(mgc_drop < drops["baseline"] and mgc_drop < drops["large_cnn"])}


def judge_false_positives(summary: dict, train_kind: str, source: str = "generated") -> dict:
    """Claim 3. Held when MGC's false-positive rate on noise-only clips -- at the threshold
    that detects ``recall`` of the low-SNR call clips; mean over seeds and mid-level
    fusions -- is below the baseline's and the large CNN's."""
    names = _mgc_names(summary, source)
    if not names or any(b not in summary for b in BASELINES):
        raise ValueError(f"judge_false_positives: need mgc_*_{source} models and {BASELINES}")
    fpr = {n: summary[n]["fpr_at_recall"][train_kind]["mean"] for n in names + list(BASELINES)}
    mgc_fpr = float(np.mean([fpr[n] for n in names]))
    return {"mgc_fpr": mgc_fpr, "baseline_fpr": fpr["baseline"],
            "large_cnn_fpr": fpr["large_cnn"], "per_fusion": {n: fpr[n] for n in names},
            "held": bool(mgc_fpr < fpr["baseline"] and mgc_fpr < fpr["large_cnn"])}


# Which side of zero MGC minus a baseline must lie on for MGC to be better, per metric.
BETTER_SIGN = {"accuracy": 1.0, "drop": -1.0, "fpr_at_recall": -1.0}


def ci_verdict(boot: dict, metric: str) -> bool | None:
    """The claims' verdict from the paired-bootstrap 95% intervals of MGC minus each baseline
    (:func:`bootstrap_differences`): ``True`` when, against every baseline, the interval lies
    wholly on MGC's better side of zero (``BETTER_SIGN``); ``False`` when, against some
    baseline, it lies wholly on the worse side; otherwise ``None`` (undecided).

    The point criteria of :func:`judge_in_distribution` and the others compare means only; the
    standard tier's first run showed why that is not enough (MGC 0.5794 vs the larger CNN's
    0.5785 counted as held, with the interval of the difference [-0.019, +0.022])."""
    if metric not in BETTER_SIGN:
        raise ValueError(f"ci_verdict: metric must be one of {list(BETTER_SIGN)}, got "
                         f"{metric!r}")
    sign = BETTER_SIGN[metric]
    sides = []
    for b in BASELINES:
        entry = boot.get(f"mgc_minus_{b}", {}).get(metric)
        if entry is None:
            return None
        lo, hi = sorted(sign * np.asarray(entry["ci95"], float))
        sides.append(1 if lo > 0 else -1 if hi < 0 else 0)
    if all(s == 1 for s in sides):
        return True
    return False if any(s == -1 for s in sides) else None


def _load_probs(workdir: Path, name: str, seeds: list[int]) -> list[dict[str, np.ndarray]]:
    out = []
    for s in seeds:
        with np.load(workdir / "models" / name / f"seed{s}.npz") as z:
            out.append({k: z[k] for k in z.files})
    return out


def bootstrap_differences(workdir: Path, config, test: dict, kinds: list[str],
                          source: str = "generated") -> dict[str, Any]:
    """Paired bootstrap (over test clips) 95% intervals of MGC minus each baseline.

    MGC is the mean over its mid-level fusions with ``source`` masks and over seeds, as in
    the criteria; each resample redraws the test clips (the same ones for every model).
    """
    seeds = list(range(config.seed, config.seed + config.num_seeds))
    tk, ec = config.train_kind, config.eval
    names = [f"mgc_{f}_{source}" for f in MID_FUSIONS
             if f in _list(config.fusions) and source in _list(config.mask_sources)]
    if not names:
        return {}
    probs = {n: _load_probs(workdir, n, seeds) for n in names + list(BASELINES)}
    labels = test["labels"].astype(np.int64)
    low = (labels != 0) & (test["snr_db"] < ec.low_snr_max)
    others = [k for k in kinds if k != tk]

    def stats(idx):
        y, lo = labels[idx], low[idx]
        out = {}
        for n, per_seed in probs.items():
            acc = np.mean([np.mean(p[tk][idx].argmax(1) == y) for p in per_seed])
            drop = np.mean([np.mean(p[tk][idx].argmax(1) == y) - np.mean(p[k][idx].argmax(1) == y)
                            for p in per_seed for k in others]) if others else 0.0
            fprs = []
            for p in per_seed:
                if lo.any() and (y == 0).any():
                    fprs.append(mgc.fpr_at_recall(1 - p[tk][idx][:, 0], y, lo, ec.recall)[0])
            out[n] = (acc, drop, np.mean(fprs) if fprs else np.nan)
        m = np.mean([out[n] for n in names], axis=0)
        return {b: m - np.asarray(out[b]) for b in BASELINES}

    rng = np.random.default_rng(config.seed)
    n = labels.size
    point = stats(np.arange(n))
    draws = {b: [] for b in BASELINES}
    for _ in range(int(ec.bootstrap)):
        d = stats(rng.integers(0, n, n))
        for b in BASELINES:
            draws[b].append(d[b])
    result = {}
    for b in BASELINES:
        arr = np.asarray(draws[b])
        res = {}
        for j, what in enumerate(("accuracy", "drop", "fpr_at_recall")):
            col = arr[:, j][np.isfinite(arr[:, j])]
            if col.size:
                res[what] = {"diff": float(point[b][j]), "ci95": [float(np.quantile(col, 0.025)),
                                                                   float(np.quantile(col, 0.975))]}
        result[f"mgc_minus_{b}"] = res
    return result


# -- plots -----------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_examples(wd: Workdir, ex: dict, kinds: list[str], gen_masks: np.ndarray | None,
                  name: str) -> None:
    """One row per class: high and low band of each transform's image, then the true (and
    generated) mask of the training transform ``kinds[0]``."""
    plt = _plt()
    cols = [(k, "image") for k in kinds] + [(kinds[0], "true mask")]
    if gen_masks is not None:
        cols.append((kinds[0], "generated mask"))
    labels, snr = ex["labels"], ex["snr_db"]
    fig, axes = plt.subplots(len(labels), 2 * len(cols), figsize=(2.0 * 2 * len(cols),
                                                                  1.8 * len(labels)))
    for r, lab in enumerate(labels):
        for c, (k, what) in enumerate(cols):
            if what == "image":
                arr = ex[f"image_{k}"][r]
            elif what == "true mask":
                arr = ex[f"mask_{k}"][r]
            else:
                arr = gen_masks[r]
            for b, band in enumerate(("high", "low")):
                ax = axes[r, 2 * c + b]
                kw = {"vmin": 0.0, "vmax": 1.0, "cmap": "magma"} if what != "image" else {
                    "cmap": "viridis"}
                ax.imshow(np.asarray(arr[:, :, 1 - b], np.float32), origin="lower",
                          aspect="auto", **kw)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{k} {what}\n{band} band", fontsize=7)
                if c == 0 and b == 0:
                    extra = "" if lab == 0 else f"\n{snr[r]:+.0f} dB"
                    ax.set_ylabel(mgc.CLASSES[lab].replace("_", "\n") + extra, fontsize=7)
    fig.tight_layout()
    wd.save_figure(fig, name, dpi=90)


def plot_in_distribution(wd: Workdir, summary: dict, train_kind: str) -> None:
    plt = _plt()
    names = list(summary)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 3.6))
    for j, metric in enumerate(("accuracy", "macro_f1")):
        means = [summary[n][metric][train_kind]["mean"] for n in names]
        stds = [summary[n][metric][train_kind]["std"] for n in names]
        ax.bar(np.arange(len(names)) + (j - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=2,
               label=metric)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels([n.replace("mgc_", "").replace("_", "\n") for n in names], fontsize=7)
    ax.set_ylabel(f"test on {train_kind} (mean +- sd over seeds)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    wd.save_figure(fig, "in_distribution.png")


def plot_ood(wd: Workdir, summary: dict, kinds: list[str]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for n, row in summary.items():
        style = "-" if n.endswith("_generated") else ("--" if n.endswith("_true") else ":")
        ax.plot(kinds, [row["accuracy"][k]["mean"] for k in kinds], style, marker="o",
                label=n.replace("mgc_", ""), linewidth=2.2 if n in BASELINES else 1.2)
    ax.set_ylabel("accuracy (mean over seeds)")
    ax.set_xlabel(f"test transform (trained on {kinds[0]})")
    ax.legend(fontsize=6, ncol=2)
    wd.save_figure(fig, "ood.png")


def plot_false_positives(wd: Workdir, summary: dict, train_kind: str) -> None:
    plt = _plt()
    names = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    fpr = [summary[n]["fpr_at_recall"][train_kind]["mean"] for n in names]
    err = [summary[n]["fpr_at_recall"][train_kind]["std"] for n in names]
    axes[0].bar(np.arange(len(names)), fpr, yerr=err, capsize=2)
    axes[0].set_xticks(np.arange(len(names)))
    axes[0].set_xticklabels([n.replace("mgc_", "").replace("_", "\n") for n in names],
                            fontsize=6)
    axes[0].set_ylabel("FPR on noise-only clips\n(at fixed recall on low-SNR calls)")
    for n in names:
        rows = summary[n]["per_snr_accuracy"]
        axes[1].plot([(r["lo"] + r["hi"]) / 2 for r in rows], [r["accuracy"] for r in rows],
                     marker="o", label=n.replace("mgc_", ""))
    axes[1].set_xlabel("in-band SNR (dB, bin centre)")
    axes[1].set_ylabel("accuracy on call clips")
    axes[1].legend(fontsize=6, ncol=2)
    wd.save_figure(fig, "false_positives.png")


# -- driver ----------------------------------------------------------------------------------


def _load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen}


def run(config, workdir) -> dict[str, Any]:
    """Runs (or resumes) the whole suite; returns ``results`` (also written to results.json)."""
    validate(config)
    workdir = Path(workdir)
    wd = Workdir(workdir)
    kinds = [config.train_kind] + [k for k in _list(config.test_kinds) if k != config.train_kind]
    timing: dict[str, Any] = {"load_at_start": _load(), "cpu_count": os.cpu_count()}
    t0 = time.perf_counter()
    key = jax.random.key(config.seed)
    train = D.make_split(config.data, "train", config.data.train_clips, (config.train_kind,),
                         jax.random.fold_in(key, 0), workdir)
    test = D.make_split(config.data, "test", config.data.test_clips, tuple(kinds),
                        jax.random.fold_in(key, 1), workdir)
    timing["data_seconds"] = time.perf_counter() - t0
    compiled = _Compiled()
    names = model_names(config)
    records: dict[str, list[dict]] = {name: [] for name in names}
    seg_quality: list[dict] = []
    timing["segmenter_seconds"] = timing["classifier_seconds"] = 0.0
    for seed in _seeds(config):  # seed-major: an interrupted run keeps whole seeds
        t1 = time.perf_counter()
        gen_train, gen_test, quality = segmenters(config, train, test, kinds, workdir,
                                                  compiled, [seed])
        seg_quality += quality
        t2 = time.perf_counter()
        timing["segmenter_seconds"] += t2 - t1
        for name, recs in classifiers(config, train, test, kinds, gen_train, gen_test,
                                      workdir, compiled, [seed]).items():
            records[name] += recs
        timing["classifier_seconds"] += time.perf_counter() - t2
        partial = _summary_and_claims(records, seg_quality, config, kinds, test)
        atomic_write_json(workdir / "partial.json", {"seeds_done": seed - config.seed + 1,
                                                     **partial})
    results = _summary_and_claims(records, seg_quality, config, kinds, test)
    summary = results["models"]
    results["bootstrap"] = {s: bootstrap_differences(workdir, config, test, kinds, s)
                            for s in _list(config.mask_sources)}
    plot_in_distribution(wd, summary, config.train_kind)
    plot_ood(wd, summary, kinds)
    plot_false_positives(wd, summary, config.train_kind)
    ex = _examples(test)
    plot_examples(wd, ex, kinds, _example_masks(config, workdir, ex), "examples.png")
    timing["total_seconds"] = time.perf_counter() - t0
    timing["load_at_end"] = _load()
    results["timing"] = timing
    wd.write_results(results)
    wd.write_report(report(results, config))
    return results


def _summary_and_claims(records: dict[str, list[dict]], seg_quality: list[dict], config,
                        kinds: list[str], test: dict) -> dict[str, Any]:
    """The summary of ``records`` (the seeds finished so far) and the claims' criteria on it."""
    tk = config.train_kind
    summary = summarize(records, tk, kinds)
    results: dict[str, Any] = {
        "train_kind": tk, "kinds": kinds, "num_seeds": len(seg_quality),
        "train_clips": config.data.train_clips, "test_clips": config.data.test_clips,
        "models": summary, "segmenter": seg_quality,
        "test_label_counts": np.bincount(test["labels"], minlength=NUM_CLASSES).tolist(),
    }
    judges = {"in_distribution": lambda src: judge_in_distribution(summary, tk, src),
              "ood": lambda src: judge_ood(summary, src),
              "false_positives": lambda src: judge_false_positives(summary, tk, src)}
    results["claims"] = {}
    for claim, judge in judges.items():
        for source in _list(config.mask_sources):
            try:
                res = judge(source)
            except ValueError as e:  # e.g. a config without the baselines' counterparts
                res = {"error": str(e)}
            results["claims"].setdefault(claim, {})[source] = res
    return results


def _examples(test: dict) -> dict[str, np.ndarray]:
    """The first test clip of each class present (no extra simulation or compilation)."""
    idx = [int(np.flatnonzero(test["labels"] == c)[0]) for c in range(NUM_CLASSES)
           if np.any(test["labels"] == c)]
    return {k: v[idx] for k, v in test.items()}


def _example_masks(config, workdir: Path, ex: dict) -> np.ndarray | None:
    """The first seed's segmenter masks of the example clips (None if it is not saved)."""
    path = workdir / "segmenter" / f"seed{config.seed}" / "checkpoints"
    if not path.exists():
        return None
    build = lambda r: mgc.UNet(2, 2, config.segmenter.width, rngs=r)  # noqa: E731
    graphdef, params = mgc.init_params(build, config.seed)
    opt = mgc.make_optimizer(config.segmenter.learning_rate, config.segmenter.steps)
    template = {"params": params, "opt_state": opt.init(params),
                "key": jax.random.fold_in(jax.random.key(config.seed), 17)}
    ckpt = Checkpointer(path, save_every=config.chunk_steps, max_to_keep=1)
    state = ckpt.restore(template)
    ckpt.close()
    fwd = mgc.make_predict(graphdef, lambda m, x: jax.nn.sigmoid(m(x)))
    return mgc.predict(fwd, state["params"], [ex[f"image_{config.train_kind}"]])


def report(results: dict, config) -> str:
    tk = results["train_kind"]
    kinds = results["kinds"]
    lines = [f"# mgc suite ({config.tier} tier)", "", f"Paper: {PAPER}.", "",
             f"{results['num_seeds']} seed(s); {results['train_clips']} training and "
             f"{results['test_clips']} test clips; trained on `{tk}` images.", "",
             "| model | params | " + " | ".join(f"acc {k}" for k in kinds)
             + f" | macro-F1 {tk} | FPR@recall | mean OOD drop |",
             "|---|---|" + "---|" * (len(kinds) + 3)]
    for n, row in results["models"].items():
        accs = " | ".join(f"{row['accuracy'][k]['mean']:.3f} ± {row['accuracy'][k]['std']:.3f}"
                          for k in kinds)
        drop = "" if row["mean_drop"] is None else f"{row['mean_drop']:.3f}"
        lines.append(f"| {n} | {row['params']} | {accs} | {row['macro_f1'][tk]['mean']:.3f} | "
                     f"{row['fpr_at_recall'][tk]['mean']:.3f} | {drop} |")
    lines += ["", "Segmenter soft Dice against the ground-truth masks, per test transform: "
              + ", ".join(f"{k} {np.mean([q[f'dice_{k}'] for q in results['segmenter']]):.3f}"
                          for k in kinds), "", "Claims (generated masks; true masks in "
              "results.json):", ""]
    for claim, by_source in results.get("claims", {}).items():
        lines.append(f"- {claim}: {json.dumps(by_source.get('generated'))}")
    lines += ["", "![in distribution](in_distribution.png)", "![ood](ood.png)",
              "![false positives](false_positives.png)", "![examples](examples.png)"]
    return "\n".join(lines) + "\n"


def suite_for_tier(tier: str, workdir: str | Path) -> dict[str, Any]:
    """Loads the default config at ``tier`` and runs (or resumes) the suite in ``workdir``."""
    from experiments.mgc.configs import default

    config = load_config(CONFIG_PATH, tier)
    Workdir(workdir).write_config(config, resume_allow=default.RESUME_ALLOW)
    return run(config, workdir)
