"""One analysed chain of thought: sentences, their types, every metric with CIs, answer
distributions and resilience, as a JSON-able record (what the browser view and plots show)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from llm_tools.thought_branches.metrics import (
    Estimate,
    RolloutSet,
    answer_distribution,
    sentence_importance,
)
from llm_tools.thought_branches.resampling import Trace, rollout_sets
from llm_tools.thought_branches.store import Rollout
from llm_tools.thought_branches.taxonomy import sentence_type

__all__ = ["CoTAnalysis", "METRIC_NAMES", "analyze"]

METRIC_NAMES = (
    "counterfactual_importance_accuracy",
    "counterfactual_importance_kl",
    "resampling_importance_accuracy",
    "resampling_importance_kl",
    "forced_importance_accuracy",
    "forced_importance_kl",
    "different_trajectories_fraction",
    "overdeterminedness",
    "accuracy",
    "forced_accuracy",
)


@dataclasses.dataclass
class CoTAnalysis:
    """Everything measured on one CoT.

    Attributes:
      problem_id: the store key.
      model: the sampler's identity.
      prompt: the prompt text.
      cot: the CoT text.
      sentences: ``[(start, end, text, type)]`` per sentence.
      target: the answer counted as correct.
      metrics: per sentence, metric name → ``(value, low, high)``.
      distributions: answer distribution of ``S_0 … S_N`` (``distributions[i + 1]`` is the
        distribution *after* sentence ``i``).
      n_rollouts: rollouts per prefix.
      resilience: sentence index → the resilience summary (``ResilienceResult.to_json()``).
      extra: free-form notes (the sampling parameters, the problem's truth, …).
    """

    problem_id: str
    model: str
    prompt: str
    cot: str
    sentences: list[tuple[int, int, str, str]]
    target: str
    metrics: list[dict[str, tuple[float, float, float]]]
    distributions: list[dict[str, float]]
    n_rollouts: int
    resilience: dict[int, dict] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resilience"] = {str(k): v for k, v in self.resilience.items()}
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CoTAnalysis:
        d = dict(d)
        d["sentences"] = [tuple(s) for s in d["sentences"]]
        d["metrics"] = [{k: tuple(v) for k, v in m.items()} for m in d["metrics"]]
        d["resilience"] = {int(k): v for k, v in d.get("resilience", {}).items()}
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def metric(self, name: str) -> list[Estimate]:
        """One metric along the CoT (``KeyError`` naming the available ones)."""
        if not self.metrics or name not in self.metrics[0]:
            have = sorted(self.metrics[0]) if self.metrics else []
            raise KeyError(f"CoTAnalysis.metric: no metric {name!r}; have {have}")
        return [Estimate(*m[name]) for m in self.metrics]


def analyze(trace: Trace, S: Sequence[Sequence[Rollout]], target: str, *, embedder,
            key: jax.Array, F: Sequence[Sequence[Rollout]] | None = None, problem_id: str = "",
            model: str = "", prompt: str = "", n_boot: int = 1000, alpha: float = 1e-9,
            threshold: float = 0.8, extra: Mapping[str, Any] | None = None) -> CoTAnalysis:
    """Every metric of every sentence of ``trace`` from its rollouts (see :mod:`metrics`).

    Raises:
      ValueError: no embedder, or rollout sets that do not match the trace.
    """
    if embedder is None:
        raise ValueError("analyze: no embedder given; counterfactual importance compares "
                         "resampled sentences with the originals by embedding")
    sets = rollout_sets(trace, S, target, embedder=embedder)
    forced = None
    if F is not None:
        forced = [RolloutSet.from_answers([r.answer for r in rs], target) for rs in F]
    m = sentence_importance(sets, forced=forced, threshold=threshold, alpha=alpha,
                            n_boot=n_boot, key=key)
    return CoTAnalysis(
        problem_id=problem_id, model=model, prompt=prompt, cot=trace.cot,
        sentences=[(s.start, s.end, s.text, sentence_type(s.text)) for s in trace.sentences],
        target=target,
        metrics=[{k: tuple(v) for k, v in mi.items()} for mi in m],
        distributions=[answer_distribution(s) for s in sets],
        n_rollouts=min(len(s) for s in sets), extra=dict(extra or {}))
