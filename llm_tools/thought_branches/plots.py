"""Plots: importance along a chain of thought with CIs, and the resilience histogram."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llm_tools.thought_branches.analysis import CoTAnalysis

__all__ = ["plot_importance", "plot_resilience"]

_TYPE_COLORS = {"plan": "#8e24aa", "compute": "#1e88e5", "check": "#fb8c00",
                "answer": "#43a047", "other": "#757575"}


def plot_importance(analyses: CoTAnalysis | Sequence[CoTAnalysis],
                    metric: str = "counterfactual_importance_accuracy", *, ncols: int = 2):
    """One panel per CoT: the metric of each sentence with its 95% CI, coloured by type.

    Returns:
      A matplotlib figure.

    Raises:
      ValueError: for no analyses; KeyError for an unknown metric.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(analyses, CoTAnalysis):
        analyses = [analyses]
    if not analyses:
        raise ValueError("plot_importance: no analyses to plot")
    ncols = min(ncols, len(analyses))
    nrows = -(-len(analyses) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 2.6 * nrows), squeeze=False)
    for ax, a in zip(axes.flat, analyses, strict=False):
        est = a.metric(metric)
        x = np.arange(len(est))
        v = np.array([e.value for e in est])
        err = np.array([[e.value - e.low for e in est], [e.high - e.value for e in est]])
        colors = [_TYPE_COLORS.get(s[3], "#757575") for s in a.sentences]
        ax.axhline(0, color="#999", lw=0.8)
        ax.errorbar(x, v, yerr=np.maximum(err, 0), fmt="none", ecolor="#888", lw=1)
        ax.scatter(x, v, c=colors, s=22, zorder=3)
        ax.set_title(f"{a.problem_id} ({a.model[:28]})", fontsize=9)
        ax.set_xlabel("sentence")
        ax.set_ylabel(metric.replace("_", " "), fontsize=8)
    for ax in list(axes.flat)[len(analyses):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=t)
               for t, c in _TYPE_COLORS.items()]
    fig.legend(handles=handles, loc="upper center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def plot_resilience(scores: Sequence[int] | np.ndarray, *, max_iterations: int = 20,
                    by_type: dict[str, Sequence[int]] | None = None):
    """Histogram of resilience scores (how many times the content came back).

    Args:
      scores: all rollouts' scores.
      max_iterations: the iteration cap (the last bin = persisted to the end).
      by_type: optional scores per sentence type, drawn as stacked bars.

    Raises:
      ValueError: if there are no scores.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.asarray(scores, np.int64).reshape(-1)
    if scores.size == 0:
        raise ValueError("plot_resilience: no scores to plot")
    bins = np.arange(max_iterations + 2) - 0.5
    fig, ax = plt.subplots(figsize=(6, 3))
    if by_type:
        bottom = np.zeros(len(bins) - 1)
        for t, s in by_type.items():
            h, _ = np.histogram(np.asarray(s), bins)
            ax.bar(np.arange(len(h)), h, bottom=bottom, color=_TYPE_COLORS.get(t, "#757575"),
                   label=t)
            bottom += h
        ax.legend(fontsize=8)
    else:
        ax.hist(scores, bins=bins, color="#5c6bc0")
    ax.set_xlabel("resilience score (times the content came back)")
    ax.set_ylabel("rollouts")
    ax.set_title(f"{scores.size} rollouts; mean {scores.mean():.2f}; "
                 f"{np.mean(scores >= max_iterations):.0%} persisted to the cap", fontsize=9)
    fig.tight_layout()
    return fig
