"""Claim 1: on a small byte-level Llama trained on the standard library's sources, which
25%-of-layers pruning gives the lowest validation perplexity after an equal recovery budget?

Per seed: train a dense model (``experiments/llm_tools`` training, resumable), draw
calibration windows from the training files, select ``k = L − round(fraction·L)`` layers by
every method on the same calibration windows (E³ mask search, Block Influence, SLEB, last-n,
random draws; plus an exhaustive search over every mask, as a reference), measure validation
perplexity before recovery, then recover each pruned model with each loss (LM, plain KD,
entropy-aware KD; the fixed 50/50 mix on the E³ mask) on the same batches and token budget
and measure validation perplexity again. Validation windows come from the held-out files
and are the same for every seed.

Everything finished is kept in ``<workdir>/seed<i>/store.json`` and skipped on restart.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import optax

import e3_pruner as E
from experiments.config import check, in_range, load_config, positive
from experiments.e3_pruner.common import (
    Store,
    exhaustive_best,
    mean_ci,
    perplexity,
    select_layers,
    windows,
)
from experiments.workdir import Workdir
from llm_tools import load_model, stdlib_corpus

_LM_CONFIG = Path(__file__).parents[1] / "llm_tools" / "configs" / "lm.py"
E3 = ("e3", "ekd")  # the method the claim is about: E³ mask + entropy-aware KD


def num_kept(n_layers: int, fraction: float) -> int:
    drop = int(round(fraction * n_layers))
    return n_layers - drop


def selection_methods(config) -> list[str]:
    return ["e3", "block_influence", "sleb", "last_n",
            *[f"random_{i}" for i in range(config.random_draws)]]


def recovery_runs(config) -> list[tuple[str, str]]:
    kinds = [k.strip() for k in config.recovery.kinds.split(",") if k.strip()]
    runs = [(sel, kind) for sel in selection_methods(config) for kind in kinds]
    if config.recovery.e3_mix:
        runs.append(("e3", "mix"))
    return runs


def _train_dense(config, seed: int, workdir: Path):
    from experiments.llm_tools.train import run as train_lm

    dense_dir = workdir / "dense"
    if (dense_dir / "results.json").is_file() and (dense_dir / "model" / "params.npz").is_file():
        return load_model(dense_dir / "model")
    d = config.dense
    overrides = {"seed": seed, "steps": d.steps, "batch_size": d.batch_size,
                 "seq_len": d.seq_len, "learning_rate": d.learning_rate,
                 "warmup_steps": d.warmup_steps, "eval_every": d.steps,
                 "eval_batches": 4, "checkpoint_every": d.checkpoint_every or d.steps,
                 "max_corpus_bytes": config.max_corpus_bytes,
                 **{f"model.{k}": v for k, v in d.model.items()}}
    train_lm(load_config(_LM_CONFIG, "quick", overrides), dense_dir)
    return load_model(dense_dir / "model")


def recovery_optimizer(config) -> optax.GradientTransformation:
    """AdamW with a cosine decay over the recovery steps (one object, so one compile)."""
    r = config.recovery
    return optax.adamw(optax.cosine_decay_schedule(r.learning_rate, r.steps), weight_decay=0.0)


def run_seed(config, seed: int, workdir: Path, corpus, valid, optimizer=None,
             steps: dict | None = None) -> dict:
    """One seed's whole pipeline; returns its store's data.

    ``steps`` maps a recovery kind to its compiled train step (filled here on first use and
    shared by every selection and seed: the pruned models all have the same shape).
    """
    optimizer = optimizer or recovery_optimizer(config)
    steps = {} if steps is None else steps
    workdir.mkdir(parents=True, exist_ok=True)
    store = Store(workdir / "store.json")
    dense = _train_dense(config, seed, workdir)
    L = dense.config.n_layers
    k = num_kept(L, config.prune_fraction)
    key = jax.random.key(seed)
    cal = windows(corpus.train, config.calibration_windows, config.seq_len + 1,
                  jax.random.fold_in(key, 1))
    if "dense_ppl" not in store:
        store.set("dense_ppl", perplexity(dense, valid, batch_size=config.eval_batch))
    for method in selection_methods(config):
        if f"select/{method}" not in store:
            store.set(f"select/{method}", select_layers(
                method, dense, cal, k, key=jax.random.fold_in(key, 2), config=config))
    if config.exhaustive and "select/exhaustive" not in store:
        store.set("select/exhaustive", exhaustive_best(dense, cal, k,
                                                       batch_size=config.eval_batch))
    for method in [*selection_methods(config), *(["exhaustive"] if config.exhaustive else [])]:
        name = f"ppl_before/{method}"
        if name not in store:
            pruned = E.prune(dense, store.get(f"select/{method}")["keep"])
            store.set(name, perplexity(pruned, valid, batch_size=config.eval_batch))
    r = config.recovery
    for sel, kind in recovery_runs(config):
        name = f"ppl_after/{sel}/{kind}"
        if name in store:
            continue
        pruned = E.prune(dense, store.get(f"select/{sel}")["keep"])
        if kind not in steps:
            steps[kind] = E.make_recovery_step(pruned, optimizer, kind, alpha=r.mix_alpha)
        recovered, hist = E.recover(pruned, dense, corpus.train, kind=kind, steps=r.steps,
                                    batch_size=r.batch_size, seq_len=config.seq_len,
                                    key=jax.random.fold_in(key, 3), optimizer=optimizer,
                                    alpha=r.mix_alpha, train_step=steps[kind])
        ppl = perplexity(recovered, valid, batch_size=config.eval_batch)
        print(f"seed {seed}: {sel} + {kind}: ppl {ppl:.3f}", flush=True)
        store.set(name, ppl)
        store.set(f"history/{sel}/{kind}", {k_: v for k_, v in hist.items()})
    store.set("k", k)
    store.set("L", L)
    return store.data


def summarize(per_seed: list[dict], config) -> dict:
    """Means and 95% intervals over seeds; the claim's decision (fixed here, before running).

    Held iff the mean validation perplexity of E³ (mask + entropy-aware KD) after recovery is
    the lowest (ties allowed: two methods that pick the same layers get identical recoveries)
    among every pruned-and-recovered model.
    """
    runs = recovery_runs(config)
    after = {f"{s}/{k}": [d[f"ppl_after/{s}/{k}"] for d in per_seed] for s, k in runs}
    methods = [*selection_methods(config), *(["exhaustive"] if config.exhaustive else [])]
    before = {m: [d[f"ppl_before/{m}"] for d in per_seed] for m in methods}
    dense = [d["dense_ppl"] for d in per_seed]
    mean_after = {name: mean_ci(v) for name, v in after.items()}
    e3_name = "/".join(E3)
    others = {n: m for n, m in mean_after.items() if n != e3_name}
    runner_up = min(others, key=lambda n: others[n][0])
    held = mean_after[e3_name][0] <= others[runner_up][0]
    diffs = np.asarray(after[e3_name]) - np.asarray(after[runner_up])
    same_mask = {m: [d[f"select/{m}"]["keep"] == d["select/e3"]["keep"] for d in per_seed]
                 for m in methods if m != "e3"}
    # rank (1 = best) of each method's mask among all masks by calibration KL to the dense model
    kl_rank = {}
    if config.exhaustive:
        for m in methods:
            ranks = []
            for d in per_seed:
                order = [keep for keep, _ in d["select/exhaustive"]["all"]]
                ranks.append(order.index(d[f"select/{m}"]["keep"]) + 1)
            kl_rank[m] = ranks
    return {
        "held": bool(held),
        "seeds": len(per_seed),
        "k": per_seed[0]["k"], "L": per_seed[0]["L"],
        "dense_ppl": mean_ci(dense),
        "ppl_before": {m: mean_ci(v) for m, v in before.items()},
        "ppl_after": mean_after,
        "ppl_after_per_seed": after,
        "runner_up": runner_up,
        "e3_minus_runner_up": mean_ci(diffs),
        "same_mask_as_e3": same_mask,
        "calibration_kl_rank": kl_rank,
        "num_masks": len(per_seed[0]["select/exhaustive"]["all"]) if config.exhaustive else None,
        "keeps": {m: [d[f"select/{m}"]["keep"] for d in per_seed] for m in methods},
        "select_seconds": {m: mean_ci([d[f"select/{m}"]["seconds"] for d in per_seed])[0]
                           for m in selection_methods(config)},
    }


def run(config, workdir) -> dict:
    """Runs every seed (resumable), writes results.json, report.md and plots."""
    check(config, {"seeds": positive, "prune_fraction": in_range(0.0, 1.0, closed=False),
                   "calibration_windows": positive, "valid_windows": positive,
                   "seq_len": positive, "search_steps": positive, "search_batch": positive,
                   "recovery.steps": positive, "recovery.batch_size": positive})
    workdir = Path(workdir)
    wd = Workdir(workdir)
    if config.seq_len + 1 > config.dense.model.max_seq_len:
        raise ValueError(f"config: seq_len + 1 ({config.seq_len + 1}) exceeds "
                         f"dense.model.max_seq_len ({config.dense.model.max_seq_len})")
    corpus = stdlib_corpus(config.max_corpus_bytes or None)
    valid = windows(corpus.valid, config.valid_windows, config.seq_len + 1,
                    jax.random.key(10_000))
    optimizer, steps = recovery_optimizer(config), {}
    per_seed = [run_seed(config, s, workdir / f"seed{s}", corpus, valid, optimizer, steps)
                for s in range(config.seeds)]
    summary = summarize(per_seed, config)
    wd.write_results(summary)
    _plot(wd, summary, per_seed)
    wd.write_report(_report(summary))
    return summary


def _report(s: dict) -> str:
    lines = [
        "# E³-Pruner claim 1: small byte-level Llama on the standard library",
        "",
        f"{s['L']} layers, {s['L'] - s['k']} removed (keep {s['k']}), {s['seeds']} seeds. "
        f"Dense validation perplexity {s['dense_ppl'][0]:.3f} ± {s['dense_ppl'][1]:.3f}.",
        "",
        "| selection | recovery | ppl after (mean ± 95% CI) |",
        "|---|---|---|",
    ]
    for name, (m, h) in sorted(s["ppl_after"].items(), key=lambda kv: kv[1][0]):
        sel, kind = name.split("/")
        lines.append(f"| {sel} | {kind} | {m:.3f} ± {h:.3f} |")
    lines += ["", "| selection | ppl before recovery | calibration-KL rank of its mask, per seed |",
              "|---|---|---|"]
    for name, (m, h) in sorted(s["ppl_before"].items(), key=lambda kv: kv[1][0]):
        lines.append(f"| {name} | {m:.3f} ± {h:.3f} | {s['calibration_kl_rank'].get(name, '')} |")
    if s["num_masks"]:
        lines.append(f"\nRanks are among all {s['num_masks']} masks (1 = lowest calibration KL).")
    d, h = s["e3_minus_runner_up"]
    lines += ["", f"Held: **{s['held']}** (E³ = e3 mask + ekd; runner-up {s['runner_up']}; "
              f"paired difference {d:+.4f} ± {h:.4f}).", "",
              "![after recovery](ppl_after.png)", "", "![mask search](mask_search.png)", ""]
    return "\n".join(lines)


def _plot(wd: Workdir, s: dict, per_seed: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(s["ppl_after"], key=lambda n: s["ppl_after"][n][0])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    for i, n in enumerate(names):
        vals = s["ppl_after_per_seed"][n]
        ax.plot(vals, [i] * len(vals), "o", color="C0" if n != "e3/ekd" else "C3", alpha=0.6)
        ax.plot([np.mean(vals)], [i], "|", color="k", ms=14)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("validation perplexity after recovery (per seed; bar = mean)")
    ax.invert_yaxis()
    fig.tight_layout()
    wd.save_figure(fig, "ppl_after.png")

    hist = np.asarray(per_seed[0]["select/e3"]["logit_history"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for layer in range(hist.shape[1]):
        ax.plot(hist[:, layer], lw=1, label=f"layer {layer}")
    ax.set_xlabel("mask-search step")
    ax.set_ylabel("layer logit θ_l")
    ax.set_title("E³ mask search (seed 0); dropped layers sink")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    wd.save_figure(fig, "mask_search.png")
