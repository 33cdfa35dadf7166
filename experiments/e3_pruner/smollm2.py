"""Claim 2: prune 25% of SmolLM2-135M-Instruct's 30 layers by each selection method.

Every method sees the same calibration windows, BPE-tokenized from the standard library's
training files. Each pruned model (``drop_layers``) is scored on held-out windows from the
validation files (perplexity) and on GSM-style arithmetic word problems (greedy, few-shot;
:mod:`experiments.e3_pruner.arithmetic`). The dense model is scored the same way.

Recovery (``config.recovery.steps > 0``, the full tier, for a GPU) then trains each pruned
model with LM, plain KD and entropy-aware KD on the same batches and scores it again.

Everything finished is kept in ``<workdir>/store.json`` and skipped on restart.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
import optax

import e3_pruner as E
from experiments.config import check, in_range, non_negative, positive
from experiments.e3_pruner.arithmetic import accuracy, make_problems
from experiments.e3_pruner.common import Store, mean_ci, perplexity, select_layers, windows
from experiments.workdir import Workdir
from llm_tools import JaxSampler, load_smollm2, stdlib_corpus

E3 = "e3"


def selection_methods(config) -> list[str]:
    return ["e3", "block_influence", "sleb", "last_n",
            *[f"random_{i}" for i in range(config.random_draws)]]


def tokenize_stream(tokenizer, byte_stream: np.ndarray, max_bytes: int) -> np.ndarray:
    """BPE ids of the first ``max_bytes`` bytes (0: all) of a byte-token stream (EOS dropped)."""
    raw = byte_stream[:max_bytes] if max_bytes else byte_stream
    data = bytes(raw[raw < 256].astype(np.uint8)).decode("utf-8", errors="ignore")
    return np.asarray(tokenizer.encode(data), np.int32)


def summarize(store: dict, config) -> dict:
    """Held iff the E³ mask gives the lowest held-out perplexity (ties allowed) of all
    selection methods before recovery (fixed here, before running)."""
    methods = selection_methods(config)
    ppl = {m: store[f"ppl/{m}"] for m in methods}
    acc = {m: store[f"acc/{m}"] for m in methods}
    others = {m: v for m, v in ppl.items() if m != E3}
    runner_up = min(others, key=others.get)
    out = {
        "held": bool(ppl[E3] <= others[runner_up]),
        "k": store["k"], "L": store["L"],
        "dense_ppl": store["ppl/dense"], "dense_accuracy": store["acc/dense"],
        "ppl": ppl, "accuracy": acc, "runner_up": runner_up,
        "random_ppl_mean": mean_ci([ppl[m] for m in methods if m.startswith("random_")])[0],
        "keeps": {m: store[f"select/{m}"]["keep"] for m in methods},
        "calibration_nll": {m: store[f"cal_nll/{m}"] for m in methods},
        "select_seconds": {m: store[f"select/{m}"]["seconds"] for m in methods},
        "arithmetic_problems": config.arithmetic_problems,
        "calibration_tokens": config.calibration_windows * config.seq_len,
        "valid_tokens": config.valid_windows * config.seq_len,
    }
    after = {k[len("ppl_after/"):]: v for k, v in store.items() if k.startswith("ppl_after/")}
    if after:
        out["ppl_after"] = after
        out["accuracy_after"] = {k[len("acc_after/"):]: v for k, v in store.items()
                                 if k.startswith("acc_after/")}
    return out


def run(config, workdir) -> dict:
    check(config, {"prune_fraction": in_range(0.0, 1.0, closed=False),
                   "calibration_windows": positive, "valid_windows": positive,
                   "seq_len": positive, "search_steps": positive, "search_batch": positive,
                   "arithmetic_problems": positive, "recovery.steps": non_negative})
    workdir = Path(workdir)
    wd = Workdir(workdir)
    store = Store(workdir / "store.json")
    t0 = time.perf_counter()
    pre = load_smollm2(max_seq_len=config.max_seq_len)
    dense, tok = pre.model, pre.tokenizer
    L = dense.config.n_layers
    k = L - int(round(config.prune_fraction * L))
    corpus = stdlib_corpus()
    train_ids = tokenize_stream(tok, corpus.train, config.text_bytes)
    valid_ids = tokenize_stream(tok, corpus.valid, config.text_bytes)
    cal = windows(train_ids, config.calibration_windows, config.seq_len + 1,
                  jax.random.key(config.seed))
    valid = windows(valid_ids, config.valid_windows, config.seq_len + 1,
                    jax.random.key(10_000))
    problems = make_problems(config.arithmetic_problems + 4, seed=1234)
    shots, problems = problems[:4], problems[4:]
    print(f"smollm2: loaded in {time.perf_counter() - t0:.1f} s; keep {k} of {L} layers",
          flush=True)

    def score_ppl(name: str, model) -> None:
        if f"ppl/{name}" not in store:
            store.set(f"ppl/{name}", perplexity(model, valid, batch_size=config.eval_batch))
        print(f"smollm2: {name}: ppl {store.get(f'ppl/{name}'):.3f}", flush=True)

    def score_accuracy(name: str, model) -> None:
        if f"acc/{name}" not in store:
            acc, texts = accuracy(JaxSampler(model, tok), problems, shots,
                                  max_new_tokens=config.answer_tokens)
            store.set(f"acc/{name}", acc)
            store.set(f"answers/{name}", texts)
        print(f"smollm2: {name}: arithmetic {store.get(f'acc/{name}'):.3f}", flush=True)

    # Everything the claim is decided on (selection, perplexity) comes first, the cheap
    # selections before the slow ones, so that an interrupted run has decided as much as it
    # can; the arithmetic accuracy (reported beside the claim) comes after. The order changes
    # no result: every selection draws from its own fixed key.
    score_ppl("dense", dense)
    key = jax.random.key(config.seed)
    methods = selection_methods(config)
    by_cost = sorted(methods, key=lambda m: ("e3", "sleb").index(m) + 1
                     if m in ("e3", "sleb") else 0)
    for method in by_cost:
        if f"select/{method}" not in store:
            store.set(f"select/{method}", select_layers(
                method, dense, cal, k, key=jax.random.fold_in(key, 2), config=config))
        pruned = E.prune(dense, store.get(f"select/{method}")["keep"])
        if f"cal_nll/{method}" not in store:
            store.set(f"cal_nll/{method}", E.calibration_nll(pruned, cal,
                                                              batch_size=config.eval_batch))
        score_ppl(method, pruned)
    score_accuracy("dense", dense)
    for method in methods:
        score_accuracy(method, E.prune(dense, store.get(f"select/{method}")["keep"]))
    store.set("k", k)
    store.set("L", L)

    r = config.recovery
    if r.steps > 0:
        opt = optax.adamw(optax.cosine_decay_schedule(r.learning_rate, r.steps),
                          weight_decay=0.0)
        kinds = [x.strip() for x in r.kinds.split(",") if x.strip()]
        steps = {}
        for method in selection_methods(config):
            for kind in kinds:
                name = f"{method}/{kind}"
                if f"ppl_after/{name}" in store:
                    continue
                pruned = E.prune(dense, store.get(f"select/{method}")["keep"])
                if kind not in steps:
                    steps[kind] = E.make_recovery_step(pruned, opt, kind)
                recovered, _ = E.recover(pruned, dense, train_ids, kind=kind, steps=r.steps,
                                         batch_size=r.batch_size, seq_len=config.seq_len,
                                         key=jax.random.fold_in(key, 3), optimizer=opt,
                                         train_step=steps[kind])
                store.set(f"ppl_after/{name}", perplexity(recovered, valid,
                                                          batch_size=config.eval_batch))
                acc, _ = accuracy(JaxSampler(recovered, tok), problems, shots,
                                  max_new_tokens=config.answer_tokens)
                store.set(f"acc_after/{name}", acc)

    summary = summarize(store.data, config)
    summary["seconds"] = time.perf_counter() - t0
    wd.write_results(summary)
    _plot(wd, summary)
    wd.write_report(_report(summary))
    return summary


def _report(s: dict) -> str:
    lines = ["# E³-Pruner claim 2: SmolLM2-135M-Instruct, 25% of layers removed", "",
             f"Keep {s['k']} of {s['L']} layers. Calibration {s['calibration_tokens']} tokens, "
             f"held-out {s['valid_tokens']} tokens, {s['arithmetic_problems']} arithmetic "
             "problems.", "",
             "| model | kept layers | calibration NLL | held-out ppl | arithmetic accuracy |",
             "|---|---|---|---|---|",
             f"| dense | all | | {s['dense_ppl']:.3f} | {s['dense_accuracy']:.3f} |"]
    for m in sorted(s["ppl"], key=s["ppl"].get):
        lines.append(f"| {m} | {s['keeps'][m]} | {s['calibration_nll'][m]:.4f} | "
                     f"{s['ppl'][m]:.3f} | {s['accuracy'][m]:.3f} |")
    lines += ["", f"Held: **{s['held']}** (runner-up: {s['runner_up']}).", "",
              "![perplexity and accuracy](smollm2.png)", ""]
    return "\n".join(lines)


def _plot(wd: Workdir, s: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(s["ppl"], key=s["ppl"].get)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 0.35 * len(names) + 1.5), sharey=True)
    colors = ["C3" if n == E3 else "C0" for n in names]
    a1.barh(names, [s["ppl"][n] for n in names], color=colors)
    a1.axvline(s["dense_ppl"], color="k", ls="--", lw=1, label="dense")
    a1.set_xscale("log")
    a1.set_xlabel("held-out perplexity (log)")
    a1.legend()
    a2.barh(names, [s["accuracy"][n] for n in names], color=colors)
    a2.axvline(s["dense_accuracy"], color="k", ls="--", lw=1)
    a2.set_xlabel("arithmetic accuracy")
    a1.invert_yaxis()
    fig.tight_layout()
    wd.save_figure(fig, "smollm2.png")
