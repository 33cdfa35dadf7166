"""Resilience: how often a sentence's content comes back when it is resampled away.

For sentence ``i`` with text ``s_i`` (Thought Branches, "fighting back"; reference
``measure_determination.py``): each of ``R`` rollouts starts from the original CoT with target
index ``t = i`` and repeats, up to ``max_iterations`` (20) times:

1. resample from the prefix before the target (the first new sentence replaces it) and let
   the model continue to its answer;
2. look among the new sentences (the replacement included, as the reference does) for the one
   most similar to the *original* ``s_i``; if its cosine similarity is ``≥ τ`` (0.6) the content
   came back: it becomes the new target and the loop repeats on the new trace;
3. otherwise the content is abandoned and the rollout stops.

A rollout's *resilience score* is the number of iterations in which the content came back; it
*persisted* if it was still present when the iterations ran out, else it was *abandoned*. Its
final answer is that of the last continuation. Over rollouts: the score distribution, the
persistence and abandonment rates, and CF++ ``= acc(S_{i+1}) − acc(final answers of the
abandoned rollouts)``: the base rate with the sentence kept minus the rate once its content is
finally gone (compare ``acc(S_{i+1}) − acc(D_i)``, the plain counterfactual effect of removing it
once, which the content can undo by coming back).

Keys and resumption: iteration ``t`` draws one continuation for each still-active rollout in
one ``generate_ids`` call with key ``fold_in(prefix_key(key, problem, "resilience<i>", 0), t)``
(rows in rollout order), and stores them under kind ``resilience<i>``, index ``t``, sample = the
rollout's number. A resumed run replays the stored iterations, so it reaches the same state and
the same result as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from llm_tools.thought_branches.metrics import Estimate, RolloutSet
from llm_tools.thought_branches.resampling import (
    Trace,
    _to_rollout,
    embed_similarities,
    prefix_key,
    token_access,
)
from llm_tools.thought_branches.store import Rollout, RolloutStore

__all__ = ["ResilienceResult", "cf_plus_plus", "resilience"]

RESILIENCE_THRESHOLD = 0.6


@dataclasses.dataclass(frozen=True)
class ResilienceResult:
    """Resilience of one sentence.

    Attributes:
      sentence: the sentence index ``i``.
      scores: per rollout, the number of iterations in which the content came back.
      persisted: per rollout, whether it was still present after the last iteration.
      final_answers: per rollout, the answer of its last continuation.
      iterations: per rollout, how many iterations ran.
      last_match: per rollout, the text that last carried the content (``""`` if none).
    """

    sentence: int
    scores: np.ndarray
    persisted: np.ndarray
    final_answers: tuple[str, ...]
    iterations: np.ndarray
    last_match: tuple[str, ...]

    @property
    def persistence_rate(self) -> float:
        return float(np.mean(self.persisted))

    @property
    def abandonment_rate(self) -> float:
        return 1.0 - self.persistence_rate

    def to_json(self) -> dict:
        return {"sentence": self.sentence, "scores": self.scores.tolist(),
                "persisted": self.persisted.tolist(), "final_answers": list(self.final_answers),
                "iterations": self.iterations.tolist(), "last_match": list(self.last_match),
                "persistence_rate": self.persistence_rate,
                "abandonment_rate": self.abandonment_rate,
                "mean_score": float(np.mean(self.scores))}


def _check_pos_int(who, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {v!r}")


def resilience(sampler, trace: Trace, i: int, store: RolloutStore, problem_id: str, *,
               embedder, key: jax.Array, answer_fn: Callable[[str], str], n_rollouts: int = 30,
               max_iterations: int = 20, threshold: float = RESILIENCE_THRESHOLD,
               progress: Callable[[int, int], None] | None = None) -> ResilienceResult:
    """Runs the resilience loop of sentence ``i`` (see the module docstring).

    Args:
      sampler: a Sampler with ``generate_ids``.
      trace: the analysed CoT.
      i: the sentence index.
      store: rollout store (the iterations are stored and replayed on resume).
      problem_id: store key of the trace.
      embedder: an :class:`~llm_tools.Embedder` (MiniLM in the papers).
      key: base key.
      answer_fn: ``text -> normalized answer``.
      n_rollouts: rollouts ``R`` (30 in the reference).
      max_iterations: at most this many resamples per rollout (20).
      threshold: cosine at or above which the content counts as back (0.6).
      progress: ``progress(iteration, max_iterations)``.

    Raises:
      ValueError: a sentence index out of range, no embedder, non-positive counts, or a
        threshold outside (0, 1].
    """
    who = "resilience"
    trace._check_index(who, i, allow_end=False)
    if embedder is None:
        raise ValueError(f"{who}: no embedder given; resilience compares sentences by cosine "
                         "similarity of their embeddings (e.g. llm_tools.MiniLMEmbedder)")
    _check_pos_int(who, "n_rollouts", n_rollouts)
    _check_pos_int(who, "max_iterations", max_iterations)
    if not 0 < threshold <= 1:
        raise ValueError(f"{who}: threshold must lie in (0, 1], got {threshold!r}")
    if not hasattr(sampler, "generate_ids"):
        raise TypeError(f"{who}: {type(sampler).__name__} has no generate_ids")
    tok = token_access(sampler)
    original = trace.sentences[i].text
    kind = f"resilience{i}"
    store.register_problem(problem_id, {"prompt_ids": list(trace.prompt_ids),
                                        "cot_ids": list(trace.cot_ids)})
    base_key = prefix_key(key, problem_id, kind, 0)
    traces = [trace] * n_rollouts
    targets = [i] * n_rollouts
    active = list(range(n_rollouts))
    scores = np.zeros(n_rollouts, np.int64)
    iters = np.zeros(n_rollouts, np.int64)
    persisted = np.zeros(n_rollouts, bool)
    finals = [""] * n_rollouts
    last = [""] * n_rollouts
    for it in range(max_iterations):
        if not active:
            break
        rollouts = _iteration(sampler, store, problem_id, kind, it, base_key,
                              [(r, traces[r], targets[r]) for r in active], answer_fn)
        news = []
        for r in active:
            tr, t = traces[r], targets[r]
            ro = rollouts[r]
            new_ids = list(tr.cot_ids[: tr.cuts[t]]) + _content_ids(tok, ro.token_ids)
            new = Trace.from_ids(tok, tr.prompt_ids, new_ids) if _has_text(tok, new_ids) else None
            cut_char = tr.cut_chars[t]
            cands = [] if new is None else [s for s in new.sentences if s.start >= cut_char]
            news.append((r, new, cands, ro))
        sims = embed_similarities(embedder, [original] * len(news),
                                  [[s.text for s in c] for _, _, c, _ in news])
        still = []
        for (r, new, cands, ro), sim in zip(news, sims, strict=True):
            iters[r] += 1
            finals[r] = ro.answer
            if len(cands) and float(np.max(sim)) >= threshold:
                best = cands[int(np.argmax(sim))]
                scores[r] += 1
                last[r] = best.text
                traces[r], targets[r] = new, best.index
                still.append(r)
        active = still
        if progress:
            progress(it + 1, max_iterations)
    for r in active:  # content still present when the iterations ran out
        persisted[r] = True
    return ResilienceResult(i, scores, persisted, tuple(finals), iters, tuple(last))


def _has_text(tok, ids) -> bool:
    return bool(ids) and bool(tok.decode(ids).strip())


def _content_ids(tok, ids: Sequence[int]) -> list[int]:
    ids = list(ids)
    while ids and tok.decode(ids[-1:]) == "":
        ids.pop()  # a final stop token
    return ids


def _iteration(sampler, store, problem_id, kind, it, base_key, rows, answer_fn
               ) -> dict[int, Rollout]:
    """One continuation per active rollout (``rows``: (rollout, trace, target)), stored."""
    have = store.load(problem_id, kind, it)
    if any(r not in have for r, _, _ in rows):
        prompts = [tr.prefix_ids(t) for _, tr, t in rows]
        comps = sampler.generate_ids(prompts, n=1, key=jax.random.fold_in(base_key, it),
                                     **store.params.sampler_kwargs())
        store.append(problem_id, kind, it,
                     [_to_rollout(r, comps[k][0], tr.prefix_text(t), answer_fn)
                      for k, (r, tr, t) in enumerate(rows) if r not in have])
        have = store.load(problem_id, kind, it)
    return {r: have[r] for r, _, _ in rows}


def cf_plus_plus(base_next: RolloutSet, result: ResilienceResult, target: str, *,
                 n_boot: int = 1000, ci: float = 0.95, key: jax.Array) -> Estimate:
    """CF++ ``= acc(S_{i+1}) − acc(final answers of the abandoned rollouts)`` with a bootstrap CI.

    Args:
      base_next: ``S_{i+1}`` (rollouts with sentence ``i`` kept).
      result: the resilience run of sentence ``i``.
      target: the answer counted as correct (normalized).
      n_boot, ci, key: bootstrap settings (both sets resampled independently).

    Raises:
      ValueError: if no rollout was abandoned or ``S_{i+1}`` has fewer than 2 rollouts.
    """
    from llm_tools.thought_branches.metrics import _check_boot, _estimate, _rows

    _check_boot("cf_plus_plus", n_boot, ci, key)
    if not isinstance(result, ResilienceResult):
        raise TypeError(f"cf_plus_plus: result must be a ResilienceResult, got "
                        f"{type(result).__name__}")
    if len(base_next) < 2:
        raise ValueError(f"cf_plus_plus: base_next has {len(base_next)} rollouts; a "
                         "distribution needs n >= 2")
    finals = [a for a, p in zip(result.final_answers, result.persisted, strict=True) if not p]
    if not finals:
        raise ValueError("cf_plus_plus: no rollout abandoned the content (every one persisted "
                         f"for {int(result.iterations.max())} iterations); CF++ is undefined")
    removed = RolloutSet.from_answers(finals, target)
    k1, k2 = jax.random.split(key)
    rb, rr = _rows(k1, n_boot, len(base_next)), _rows(k2, n_boot, len(removed))

    def acc_rows(s, rows):
        answered = np.array([a != "" for a in s.answers])
        c, a = s.correct[rows].sum(1), answered[rows].sum(1)
        return np.where(a > 0, c / np.maximum(a, 1), 0.0)

    return _estimate(acc_rows(base_next, rb) - acc_rows(removed, rr), ci)
