"""Off-policy edits vs on-policy resampling: two ways to put a sentence into a chain of thought.

An *off-policy* edit writes the sentence in by hand (or takes it from another model): the
prefix is the original CoT through sentence ``i`` followed by the inserted sentence, so the
model continues from text it would not have written itself.

The *on-policy* alternative (Thought Branches; reference ``onpolicy_chain_disruption.py``)
searches the model's own samples for a branch that arrives at the sentence naturally. Each
iteration (at most ``n_iterations`` = 6) draws ``n_candidates`` (12) replacements ``s_i'`` of
sentence ``i`` from the prefix before it, then ``n_continuations`` (8) short continuations after
each, and scores the first sentence ``x`` of every continuation by

    score = w_cos · cos(target, x) + w_lp · sigmoid(mean log p(x) / 5),

keeping the best. The search succeeds when the best ``cos(target, x) ≥ τ`` (0.7 in the
reference; the log-probability term only ranks). The intervened prefix is then the original
before ``i``, the chosen ``s_i'`` and its continuation's sentence ``x``: the target content at
position ``i + 1``, like the off-policy insertion, but sampled by the model itself. (As in the
reference, the prefix before ``i`` does not change between iterations, so iterations are more
draws from the same place.)

The *effect* of an intervention is ``acc(rollouts after it) − acc(S_{i+1})``: how the answer
distribution moves relative to keeping the original sentence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np

from llm_tools.thought_branches.resampling import (
    Trace,
    _token_char_ends,
    embed_similarities,
    prefix_key,
    token_access,
)
from llm_tools.thought_branches.splitter import first_sentence
from llm_tools.thought_branches.store import SamplingParams

__all__ = ["OnPolicyResult", "candidate_score", "off_policy_prefix", "on_policy_search"]


def candidate_score(cosine: float, mean_logprob: float, *, w_cos: float = 1.0,
                    w_lp: float = 0.0) -> float:
    """``w_cos · cosine + w_lp · sigmoid(mean_logprob / 5)`` (reference defaults 1 and 0)."""
    return w_cos * cosine + w_lp / (1.0 + math.exp(-mean_logprob / 5.0))


@dataclasses.dataclass(frozen=True)
class OnPolicyResult:
    """Outcome of an on-policy search at sentence ``sentence``.

    Attributes:
      sentence: the resampled sentence ``i``.
      target: the sentence the search aimed for at ``i + 1``.
      success: whether some continuation reached ``cos ≥ threshold``.
      cosine: cosine of the best next sentence to the target.
      score: its combined score.
      candidate: the chosen replacement ``s_i'``.
      next_sentence: the chosen continuation's first sentence.
      prefix_ids: prompt + CoT before ``i`` + ``s_i'`` + that sentence (token ids as sampled).
      iterations: iterations run.
    """

    sentence: int
    target: str
    success: bool
    cosine: float
    score: float
    candidate: str
    next_sentence: str
    prefix_ids: tuple[int, ...]
    iterations: int

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["prefix_ids"] = list(self.prefix_ids)
        return d


def off_policy_prefix(sampler, trace: Trace, i: int, sentence: str) -> list[int]:
    """Prompt + the CoT through sentence ``i`` + ``" " + sentence`` (hand-written insertion).

    Raises:
      ValueError: a sentence index out of range or an empty sentence.
    """
    trace._check_index("off_policy_prefix", i, allow_end=False)
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError(f"off_policy_prefix: sentence must be a non-empty str, got {sentence!r}")
    tok = token_access(sampler)
    end = trace.sentences[i].end
    ends = _token_char_ends(tok, trace.cot_ids, trace.cot)
    k = int(np.searchsorted(np.asarray(ends), end, side="left")) + 1
    return [*trace.prompt_ids, *trace.cot_ids[:k], *tok.encode(" " + sentence.strip())]


def _first_sentence_ids(tok, completion):
    """(first sentence, ids through it, mean logprob of those ids) of a completion."""
    ids = list(completion.token_ids)
    lps = list(completion.logprobs)
    while ids and tok.decode(ids[-1:]) == "":
        ids.pop()
    text = tok.decode(ids)
    first = first_sentence(text)
    if not first:
        return "", [], 0.0
    end = text.find(first) + len(first)
    ends = _token_char_ends(tok, ids, text)
    k = int(np.searchsorted(np.asarray(ends), end, side="left")) + 1
    lp = lps[:k]
    return first, ids[:k], (float(np.mean(lp)) if lp else float("nan"))


def on_policy_search(sampler, trace: Trace, i: int, target: str, *, embedder, key: jax.Array,
                     params: SamplingParams | None = None, n_iterations: int = 6,
                     n_candidates: int = 12, n_continuations: int = 8,
                     candidate_tokens: int = 48, next_tokens: int = 64, threshold: float = 0.7,
                     w_cos: float = 1.0, w_lp: float = 0.0) -> OnPolicyResult:
    """Searches the model's own resamples of sentence ``i`` for one followed by ``target``.

    Args:
      sampler: a Sampler with ``resample_ids`` and ``generate_ids`` (logprobs needed when
        ``w_lp > 0``).
      trace: the CoT.
      i: the sentence to resample.
      target: the sentence wanted at ``i + 1``.
      embedder: sentence embedder for the cosine.
      key: base key (iteration ``t`` uses ``fold_in`` of it with ``2t`` and ``2t + 1``).
      params: temperature / top-p of the short samples (default ``SamplingParams()``).
      n_iterations, n_candidates, n_continuations: search sizes (6, 12, 8).
      candidate_tokens, next_tokens: token budgets of the short samples (48, 64).
      threshold: success cosine (0.7).
      w_cos, w_lp: score weights.

    Raises:
      ValueError: index out of range, no embedder, an empty target, bad sizes, or ``w_lp > 0``
        with a sampler that returns no logprobs.
    """
    who = "on_policy_search"
    trace._check_index(who, i, allow_end=False)
    if embedder is None:
        raise ValueError(f"{who}: no embedder given; the search scores sentences by cosine "
                         "similarity to the target")
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"{who}: target must be a non-empty sentence, got {target!r}")
    for name, v in (("n_iterations", n_iterations), ("n_candidates", n_candidates),
                    ("n_continuations", n_continuations), ("candidate_tokens", candidate_tokens),
                    ("next_tokens", next_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{who}: {name} must be a positive int, got {v!r}")
    params = SamplingParams() if params is None else params
    tok = token_access(sampler)
    base = trace.prefix_ids(i)
    k0 = prefix_key(key, "onpolicy", target[:64], i)
    short = dict(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    best = None
    it = 0
    for it in range(1, n_iterations + 1):
        cands = sampler.resample_ids(base, n_candidates, max_new_tokens=candidate_tokens,
                                     key=jax.random.fold_in(k0, 2 * it), **short)
        firsts = [_first_sentence_ids(tok, c) for c in cands]
        firsts = [f for f in firsts if f[0]]
        if not firsts:
            continue
        conts = sampler.generate_ids([base + ids for _, ids, _ in firsts], n=n_continuations,
                                     max_new_tokens=next_tokens,
                                     key=jax.random.fold_in(k0, 2 * it + 1), **short)
        nexts = [[_first_sentence_ids(tok, c) for c in row] for row in conts]
        if w_lp > 0 and any(not c.logprobs for row in conts for c in row):
            raise ValueError(f"{who}: w_lp = {w_lp} needs token logprobs, but the sampler "
                             "returned completions without them")
        sims = embed_similarities(embedder, [target] * len(nexts),
                                  [[x[0] for x in row] for row in nexts])
        for (cand, cand_ids, _), row, sim in zip(firsts, nexts, sims, strict=True):
            for (nxt, nxt_ids, lp), cos in zip(row, sim, strict=True):
                if not nxt:
                    continue
                score = candidate_score(float(cos), 0.0 if math.isnan(lp) else lp, w_cos=w_cos,
                                        w_lp=w_lp)
                if best is None or score > best[0]:
                    best = (score, float(cos), cand, nxt, base + cand_ids + nxt_ids)
        if best is not None and best[1] >= threshold:
            break
    if best is None:
        return OnPolicyResult(i, target, False, 0.0, float("-inf"), "", "", tuple(base), it)
    score, cos, cand, nxt, ids = best
    return OnPolicyResult(i, target, cos >= threshold, cos, score, cand, nxt, tuple(ids), it)


def intervention_effects(base_next: Sequence, after: Sequence) -> float:
    """``acc(after) − acc(base_next)`` for two :class:`RolloutSet` s (convenience)."""
    from llm_tools.thought_branches.metrics import accuracy

    return accuracy(after) - accuracy(base_next)
