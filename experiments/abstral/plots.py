"""Plots of the robustness experiment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.workdir import Workdir

LABELS = {"cot_sft": "CoT SFT", "abs_sft": "abstraction SFT", "abstral": "AbstRaL (SFT+GRPO)"}


def plot_accuracy(wd: Workdir, results: dict) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = [s for s in ("train", "held_out") if s in results["accuracy"]]
    if not splits:
        return None
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 3.4), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        table = results["accuracy"][split]
        methods = list(table)
        variants = list(next(iter(table.values())))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            means = np.array([table[m][v]["mean"] for v in variants])
            err = np.array([[means[j] - table[m][v]["lo"], table[m][v]["hi"] - means[j]]
                            for j, v in enumerate(variants)]).T
            ax.bar(np.arange(len(variants)) + (i - (len(methods) - 1) / 2) * width, means,
                   width, yerr=err, capsize=2, label=LABELS.get(m, m))
        ax.set_xticks(np.arange(len(variants)), variants)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        name = "training templates (new draws)" if split == "train" else "held-out templates"
        ax.set_title(name, fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    wd.save_figure(fig, "accuracy.png")
    return "accuracy.png"


def plot_grpo(wd: Workdir, workdir: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(Path(workdir).glob("seed_*/grpo"))
    rows = [Workdir(r).read_metrics() for r in runs]
    rows = [r for r in rows if r]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for seed_rows in rows:
        steps = [r["step"] for r in seed_rows]
        axes[0].plot(steps, [r["reward"] for r in seed_rows], lw=0.8)
        axes[1].plot(steps, [r["accuracy"] for r in seed_rows], lw=0.8, label="correct")
        axes[1].plot(steps, [r["faithful"] for r in seed_rows], lw=0.8, ls="--",
                     label="faithful")
    axes[0].set_title("GRPO mean reward", fontsize=10)
    axes[1].set_title("sampled completions: correct / faithful", fontsize=10)
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    wd.save_figure(fig, "grpo.png")
    return "grpo.png"
