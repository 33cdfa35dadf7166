"""The SoftStep suite: datasets x backbones x heads, seeds vmapped, resumable per cell.

For each dataset, each seed draws its own train/validation/test split; inputs and targets
are standardised with the training split's statistics, so every MSE below is in units of
the training targets' variance. For each (dataset, backbone, head) *cell* all seeds train
at once (``jax.vmap`` of :func:`softstep.train_model`, early stopping keeping the best
validation model), then the cell records per seed:

* ``test_mse``/``val_mse`` of the head attending over the training split;
* ``knn_test_mse``: a ``KNeighborsRegressor`` on the same learned embeddings, with
  ``n_neighbors`` and ``weights`` grid-searched on the validation split;
* ``spearman``: rank correlation between embedding distance and target distance over
  random pairs of test points (metric learning);
* ``support_exact`` / ``support_1e-6``: the mean fraction of training neighbours whose
  weight is non-zero / above 1e-6 for a test query (sparsity).

Each finished cell is written to ``cells/<dataset>__<backbone>__<head>.json`` atomically;
a restarted run skips finished cells.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy.stats import spearmanr
from sklearn.neighbors import KNeighborsRegressor

from experiments.config import load_config, validate_config
from experiments.progress import Progress
from experiments.softstep.configs import default as default_config
from experiments.workdir import Workdir, atomic_write_bytes, atomic_write_json
from softstep import ModelSpec, TrainConfig, load_dataset, make_model, train_model

HEADS = {
    "linear": dict(head="linear"),
    "nw": dict(head="nw"),
    "s1_pointwise": dict(head="softstep", step="s1", mode="pointwise"),
    "s2_pointwise": dict(head="softstep", step="s2", mode="pointwise"),
    "s1_global": dict(head="softstep", step="s1", mode="global"),
    "s2_global": dict(head="softstep", step="s2", mode="global"),
}
SOFTSTEP_HEADS = tuple(h for h in HEADS if h.startswith("s"))
CONFIG_PATH = Path(__file__).parent / "configs" / "default.py"


def split_list(text: str) -> list[str]:
    return [p.strip() for p in str(text).split(",") if p.strip()]


def validate(config) -> None:
    """Checks ``config`` against ``configs/default.py``'s ``RULES`` and ``validate``."""
    validate_config(config, default_config)


def make_splits(n: int, num_seeds: int, seed: int, val_fraction: float, test_fraction: float):
    """Per seed, a random ``(train, val, test)`` index split of ``n`` rows."""
    n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
    out = []
    for s in range(num_seeds):
        perm = np.random.default_rng([seed, s]).permutation(n)
        out.append((perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]))
    return out


def scaled_split(x, y, split):
    """Standardises with training statistics (per feature for tables, global for images)."""
    tr, va, te = split
    axis = 0 if x.ndim == 2 else None
    mu, sd = x[tr].mean(axis=axis), x[tr].std(axis=axis)
    sd = np.where(sd > 0, sd, 1.0)
    ym, ys = y[tr].mean(), y[tr].std()
    ys = ys if ys > 0 else 1.0
    f = lambda idx: (((x[idx] - mu) / sd).astype(np.float32),
                     ((y[idx] - ym) / ys).astype(np.float32)[:, None])
    return f(tr), f(va), f(te)


def knn_grid(etr, ytr, eva, yva, ete, yte, grid):
    """Grid-searches ``n_neighbors`` x ``weights`` on validation; returns (test MSE, k)."""
    best = (np.inf, None)
    for k in grid:
        if k > len(etr):
            continue
        for weights in ("uniform", "distance"):
            m = KNeighborsRegressor(n_neighbors=k, weights=weights).fit(etr, ytr[:, 0])
            mse = float(np.mean((m.predict(eva) - yva[:, 0]) ** 2))
            if mse < best[0]:
                best = (mse, (k, weights))
    k, weights = best[1]
    m = KNeighborsRegressor(n_neighbors=k, weights=weights).fit(etr, ytr[:, 0])
    return float(np.mean((m.predict(ete) - yte[:, 0]) ** 2)), k


def rank_correlation(emb, y, pairs: int, seed: int) -> float:
    """Spearman correlation of ``||e_i - e_j||`` with ``|y_i - y_j|`` over random pairs."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(y), pairs), rng.integers(0, len(y), pairs)
    keep = i != j
    i, j = i[keep], j[keep]
    d_emb = np.linalg.norm(emb[i] - emb[j], axis=1)
    d_y = np.abs(y[i, 0] - y[j, 0])
    return float(spearmanr(d_emb, d_y).statistic)


def _evaluate(graphdef, params, xtr, ytr, xva, xte, yte):
    model = nnx.merge(graphdef, params)
    head = model.inference_head
    etr, eva, ete = model.embed(xtr), model.embed(xva), model.embed(xte)
    pred = head(ete, etr, ytr)
    out = {"test_mse": jnp.mean((pred - yte) ** 2), "etr": etr, "eva": eva, "ete": ete}
    if hasattr(head, "neighbor_weights"):
        w = head.neighbor_weights(ete, etr)
        out["support_exact"] = jnp.mean(jnp.sum(w > 0, axis=1) / w.shape[1])
        out["support_1e-6"] = jnp.mean(jnp.sum(w > 1e-6, axis=1) / w.shape[1])
    return out


def train_cell(config, data, backbone: str, head: str, splits) -> tuple[dict, dict]:
    """Trains one (dataset, backbone, head) cell for every seed; returns (record, arrays)."""
    scaled = [scaled_split(data.x, data.y, s) for s in splits]
    stack = lambda i, j: jnp.asarray(np.stack([sc[i][j] for sc in scaled]))
    xtr, ytr, xva, yva, xte, yte = (stack(i, j) for i in range(3) for j in range(2))
    hidden = split_list(config.hidden_cnn if backbone == "cnn" else config.hidden_table)
    spec = ModelSpec(input_shape=tuple(data.x.shape[1:]), out_dim=1, backbone=backbone,
                     hidden=tuple(int(h) for h in hidden), embed_dim=config.embed_dim,
                     similarity=config.similarity, **HEADS[head])
    epochs = config.image_epochs if data.kind == "image" else config.epochs
    tc = TrainConfig(epochs=epochs, batch_size=config.batch_size,
                     learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                     patience=config.patience)
    seeds = len(splits)
    base = jax.random.key(config.seed)
    init_keys = jnp.stack([jax.random.fold_in(base, 2 * s) for s in range(seeds)])
    train_keys = jnp.stack([jax.random.fold_in(base, 2 * s + 1) for s in range(seeds)])
    graphdef, _ = make_model(spec, init_keys[0])
    params = jax.vmap(lambda k: make_model(spec, k)[1])(init_keys)
    t0 = time.perf_counter()
    one = functools.partial(train_model, graphdef, config=tc)
    if backbone == "cnn":  # batched convolutions are slow on CPU: seeds one after another
        fit = jax.jit(lambda *args: jax.lax.map(lambda a: one(*a), args))
    else:
        fit = jax.jit(jax.vmap(one))
    res = fit(params, train_keys, xtr, ytr, xva, yva)
    if bool(jnp.any(res.diverged)):
        raise FloatingPointError(
            f"softstep suite: {data.name}/{backbone}/{head} diverged (non-finite validation "
            f"loss) for seeds {np.flatnonzero(np.asarray(res.diverged)).tolist()}"
        )
    ev = jax.jit(jax.vmap(functools.partial(_evaluate, graphdef)))(
        res.params, xtr, ytr, xva, xte, yte)
    ev = jax.tree.map(np.asarray, ev)
    train_s = time.perf_counter() - t0
    grid = [int(k) for k in split_list(config.knn_grid)]
    knn = [knn_grid(ev["etr"][s], np.asarray(ytr[s]), ev["eva"][s], np.asarray(yva[s]),
                    ev["ete"][s], np.asarray(yte[s]), grid) for s in range(seeds)]
    record = {
        "dataset": data.name, "backbone": backbone, "head": head,
        "test_mse": ev["test_mse"].tolist(),
        "val_mse": np.asarray(res.best_val_mse).tolist(),
        "knn_test_mse": [k[0] for k in knn], "knn_k": [k[1] for k in knn],
        "spearman": [rank_correlation(ev["ete"][s], np.asarray(yte[s]), config.rank_pairs, s)
                     for s in range(seeds)],
        "best_epoch": np.asarray(res.best_epoch).tolist(),
        "epochs_run": np.asarray(res.epochs_run).tolist(),
        "train_s": round(train_s, 2),
    }
    for key in ("support_exact", "support_1e-6"):
        if key in ev:
            record[key] = ev[key].tolist()
    arrays = {"test_embeddings": ev["ete"][0], "test_targets": np.asarray(yte[0, :, 0])}
    return record, arrays


def cells(config, datasets_kinds: dict[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for name in split_list(config.datasets):
        key = "image_backbones" if datasets_kinds[name] == "image" else "table_backbones"
        for backbone in split_list(config[key]):
            for head in split_list(config.heads):
                out.append((name, backbone, head))
    return out


def summarize(records: list[dict]) -> dict[str, Any]:
    """Nested ``dataset -> backbone -> head -> {metric: (mean, sd)}`` plus SoftStep selected
    per seed by validation MSE (``softstep_valsel``)."""
    out: dict[str, Any] = {}
    by_cell = {(r["dataset"], r["backbone"], r["head"]): r for r in records}
    metrics = ("test_mse", "knn_test_mse", "spearman", "support_exact", "support_1e-6",
               "best_epoch", "epochs_run")
    for (d, b, h), r in by_cell.items():
        cell = out.setdefault(d, {}).setdefault(b, {}).setdefault(h, {})
        for m in metrics:
            if m in r:
                v = np.asarray(r[m], float)
                cell[m] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1
                           else 0.0}
    for d in out:
        for b in out[d]:
            ss = [by_cell[(d, b, h)] for h in SOFTSTEP_HEADS if (d, b, h) in by_cell]
            if not ss:
                continue
            val = np.array([r["val_mse"] for r in ss])
            test = np.array([r["test_mse"] for r in ss])
            pick = test[np.argmin(val, axis=0), np.arange(val.shape[1])]
            out[d][b]["softstep_valsel"] = {"test_mse": {
                "mean": float(pick.mean()),
                "sd": float(pick.std(ddof=1)) if len(pick) > 1 else 0.0}}
    return out


def run_suite(config, workdir: str | Path, *, shard: tuple[int, int] | None = None
              ) -> dict[str, Any]:
    """Runs (or resumes) every cell; writes ``results.json`` and returns it.

    Args:
      config: the suite config (see ``configs/default.py``).
      workdir: the suite's folder; finished cells in ``workdir/cells`` are reused.
      shard: ``(index, count)`` to train only cells ``i`` with ``i % count == index`` (for
        parallel workers sharing ``workdir``); then nothing is aggregated and ``{}`` is
        returned. A final call without ``shard`` collects every cell.
    """
    validate(config)
    if shard is not None and not (0 <= shard[0] < shard[1]):
        raise ValueError(f"run_suite: shard must be (index, count) with 0 <= index < count, "
                         f"got {shard!r}")
    wd = Workdir(workdir)
    cell_dir = wd.path / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = cell_dir / "_config.json"
    current = json.loads(json.dumps(config.to_dict(), sort_keys=True))
    if fingerprint.exists() and json.loads(fingerprint.read_text()) != current:
        raise ValueError(
            f"softstep suite: {cell_dir} holds cells of a different config; "
            "use a fresh --workdir (or delete it) to rerun"
        )
    atomic_write_json(fingerprint, current)
    data = {n: load_dataset(n, seed=config.seed) for n in split_list(config.datasets)}
    todo = cells(config, {n: d.kind for n, d in data.items()})
    progress = Progress(len(todo), name="softstep suite", interval_s=0.0)
    records = []
    for i, (name, backbone, head) in enumerate(todo, 1):
        if shard is not None and (i - 1) % shard[1] != shard[0]:
            continue
        path = cell_dir / f"{name}__{backbone}__{head}.json"
        if path.exists():
            record = json.loads(path.read_text())
        else:
            splits = make_splits(len(data[name].y), config.num_seeds, config.seed,
                                 config.val_fraction, config.test_fraction)
            record, arrays = train_cell(config, data[name], backbone, head, splits)
            if name == config.plot_dataset:
                import io

                buf = io.BytesIO()
                np.savez(buf, **arrays)
                atomic_write_bytes(cell_dir / f"{name}__{backbone}__{head}.npz", buf.getvalue())
            atomic_write_json(path, record)
            wd.log_metrics(i, cell=f"{name}/{backbone}/{head}",
                           test_mse=float(np.mean(record["test_mse"])), train_s=record["train_s"])
        records.append(record)
        progress.update(i, extra=f"{name}/{backbone}/{head} "
                              f"test_mse={np.mean(record['test_mse']):.3f}")
    if shard is not None:
        return {}
    results = {"tier": config.tier, "num_seeds": config.num_seeds,
               "summary": summarize(records), "records": records}
    wd.write_results(results)
    return results


def fmt(stat: dict | None) -> str:
    return "-" if stat is None else f"{stat['mean']:.3f} ± {stat['sd']:.3f}"


def report_tables(summary: dict[str, Any], metric: str, heads: list[str]) -> list[str]:
    lines = []
    for d, by_b in summary.items():
        backbones = list(by_b)
        lines += [f"**{d}** ({metric})", "", "| head | " + " | ".join(backbones) + " |",
                  "|---" * (len(backbones) + 1) + "|"]
        for h in heads:
            row = [fmt(by_b[b].get(h, {}).get(metric)) for b in backbones]
            if any(r != "-" for r in row):
                lines.append(f"| {h} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def run(config, workdir) -> dict[str, Any]:
    """Entry point of ``experiments.softstep.main``: the suite plus ``report.md``."""
    results = run_suite(config, workdir)
    heads = split_list(config.heads)
    lines = ["# SoftStep suite", "", f"Tier `{config.tier}`, {config.num_seeds} seeds; "
             "MSE in units of the training targets' variance (mean ± sd over seeds).", ""]
    lines += report_tables(results["summary"], "test_mse", heads + ["softstep_valsel"])
    lines += ["KNN (grid-searched on validation) on each model's learned embedding:", ""]
    lines += report_tables(results["summary"], "knn_test_mse", heads)
    lines += report_tables(results["summary"], "spearman", heads)
    lines += report_tables(results["summary"], "support_exact", heads)
    Workdir(workdir).write_report("\n".join(lines) + "\n")
    return results


def suite_for_tier(tier: str, workdir: str | Path) -> dict[str, Any]:
    """Loads the default config at ``tier`` and runs (or resumes) the suite in ``workdir``."""
    config = load_config(CONFIG_PATH, tier)
    Workdir(workdir).write_config(config)
    return run(config, workdir)
