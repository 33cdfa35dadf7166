"""The rollout engine: resample a chain of thought from every sentence, through any Sampler.

A :class:`Trace` is a prompt and a chain of thought as *token ids* (the ids the model
generated, or the CoT tokenized once), its text, its sentences and, for every sentence ``i``,
the token cut ``k_i``: the number of CoT tokens that end at or before the sentence's first
character. ``S_i`` continues ``prompt_ids + cot_ids[:k_i]`` (the resampled first sentence
replaces ``s_i``); ``S_N`` continues the whole CoT. A token that straddles a sentence start
(``" The"`` in BPE vocabularies) is left out of the prefix, so the model regenerates it: the cut
is always on a token boundary of the original ids, never a re-tokenized string.

Keys: sample ``j`` of prefix ``i`` of problem ``p`` in experiment ``kind`` is drawn with
``fold_in(fold_in(key_{p,kind,i}, 0), j)`` where ``key_{p,kind,i} = fold_in(fold_in(fold_in(key,
crc32(p)), crc32(kind)), i)``, i.e. ``resample_ids(prefix, n, key=key_{p,kind,i})``'s sample ``j``
under the engine's fold_in contract. So a rollout depends on (key, problem, kind, prefix,
sample index) only: resuming, reordering or raising ``n`` never changes a stored rollout.

References:
  Bogdan et al., "Thought Anchors", 2025; Macar et al., "Thought Branches", 2025.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from llm_tools.thought_branches.metrics import RolloutSet
from llm_tools.thought_branches.splitter import Sentence, first_sentence, split_sentences
from llm_tools.thought_branches.store import Rollout, RolloutStore, SamplingParams

__all__ = [
    "Trace",
    "collect",
    "embed_similarities",
    "prefix_key",
    "rollout_sets",
    "sampler_identity",
    "sweep",
    "token_access",
]


# -- token access --------------------------------------------------------------------------

def token_access(sampler) -> Any:
    """The object with ``encode``/``decode`` for id-level work (``sampler.tokenizer`` or the
    sampler itself).

    Raises:
      TypeError: if the sampler offers neither.
    """
    tok = getattr(sampler, "tokenizer", None)
    if tok is not None and hasattr(tok, "encode") and hasattr(tok, "decode"):
        return tok
    if hasattr(sampler, "encode") and hasattr(sampler, "decode"):
        return sampler
    raise TypeError(f"{type(sampler).__name__} gives no token-level access (a tokenizer "
                    "attribute or encode/decode methods); resampling cuts token ids")


def sampler_identity(sampler) -> str:
    """``name`` of the sampler, plus a hash of its weights when it holds a JAX model.

    Two trained models that share a name get different identities, so a store refuses to
    mix their rollouts.
    """
    name = getattr(sampler, "name", None) or type(sampler).__name__
    model = getattr(sampler, "model", None)
    if model is None:
        return str(name)
    try:
        from flax import nnx

        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    except Exception:  # noqa: BLE001 - not an NNX model: the name is all we have
        return str(name)
    h = hashlib.blake2b(digest_size=6)
    for leaf in leaves:
        a = np.asarray(leaf)
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).view(np.uint8).data)
    return f"{name}@{h.hexdigest()}"


def _token_char_ends(tok, ids: Sequence[int], text: str) -> list[int]:
    """Character offset in ``text`` where each token ends (exact; via token bytes if possible)."""
    if hasattr(tok, "token_bytes"):
        pieces = [tok.token_bytes(int(i)) for i in ids]
        raw = b"".join(pieces)
        if raw == text.encode("utf-8"):
            ends, pos = [], 0
            for p in pieces:
                pos += len(p)
                # the number of characters whose UTF-8 bytes end at or before ``pos``
                ends.append(len(raw[:pos].decode("utf-8", errors="ignore")))
            return ends
    ends = [len(tok.decode(list(ids[: k + 1]))) for k in range(len(ids))]
    if not ends or ends[-1] != len(text):
        raise ValueError("Trace: the CoT's token ids do not decode to its text")
    return ends


@dataclasses.dataclass(frozen=True)
class Trace:
    """A prompt and a chain of thought as token ids, split into sentences.

    Attributes:
      prompt_ids: the prompt's token ids (with BOS or chat markup as the model expects).
      cot_ids: the CoT's token ids (no stop token).
      cot: the CoT text (``decode(cot_ids)``).
      sentences: its sentences with offsets into ``cot``.
      cuts: ``N + 1`` token cuts: ``S_i`` continues ``prompt_ids + cot_ids[:cuts[i]]``.
      cut_chars: the character offset in ``cot`` of each cut.
    """

    prompt_ids: tuple[int, ...]
    cot_ids: tuple[int, ...]
    cot: str
    sentences: tuple[Sentence, ...]
    cuts: tuple[int, ...]
    cut_chars: tuple[int, ...]

    @property
    def num_sentences(self) -> int:
        return len(self.sentences)

    def prefix_ids(self, i: int) -> list[int]:
        """Token ids that ``S_i`` continues (``0 <= i <= N``).

        Raises:
          ValueError: if ``i`` is out of range.
        """
        self._check_index("Trace.prefix_ids", i, allow_end=True)
        return [*self.prompt_ids, *self.cot_ids[: self.cuts[i]]]

    def prefix_text(self, i: int) -> str:
        """The CoT text before the cut of ``S_i``."""
        self._check_index("Trace.prefix_text", i, allow_end=True)
        return self.cot[: self.cut_chars[i]]

    def _check_index(self, who: str, i, *, allow_end: bool) -> None:
        hi = self.num_sentences if allow_end else self.num_sentences - 1
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i <= hi:
            raise ValueError(f"{who}: sentence index must be an int in [0, {hi}] (the CoT has "
                             f"{self.num_sentences} sentences), got {i!r}")

    @classmethod
    def from_ids(cls, sampler_or_tokenizer, prompt_ids: Sequence[int], cot_ids: Sequence[int],
                 *, min_chars: int = 10) -> Trace:
        """A trace from token ids (e.g. the prompt and a completion's ``token_ids``).

        Stop tokens at the end of ``cot_ids`` (ids that decode to nothing) are dropped.

        Raises:
          ValueError: an empty prompt, or a CoT with no text (an empty CoT).
        """
        tok = (sampler_or_tokenizer if hasattr(sampler_or_tokenizer, "decode")
               and not hasattr(sampler_or_tokenizer, "generate")
               else token_access(sampler_or_tokenizer))
        prompt_ids = tuple(int(i) for i in prompt_ids)
        cot_ids = [int(i) for i in cot_ids]
        if not prompt_ids:
            raise ValueError("Trace: prompt_ids is empty; the model needs a prompt to continue")
        while cot_ids and tok.decode(cot_ids[-1:]) == "":
            cot_ids.pop()
        cot = tok.decode(cot_ids)
        if not cot.strip():
            raise ValueError("Trace: the chain of thought is empty")
        sentences = split_sentences(cot, min_chars=min_chars)
        ends = _token_char_ends(tok, cot_ids, cot)
        cuts, chars = [], []
        for s in sentences:
            k = int(np.searchsorted(np.asarray(ends), s.start, side="right"))
            cuts.append(k)
            chars.append(ends[k - 1] if k else 0)
        cuts.append(len(cot_ids))
        chars.append(len(cot))
        return cls(prompt_ids, tuple(cot_ids), cot, tuple(sentences), tuple(cuts), tuple(chars))

    @classmethod
    def from_text(cls, sampler, prompt: str, cot: str, *, add_bos: bool | None = None,
                  min_chars: int = 10) -> Trace:
        """A trace from text: prompt and CoT are each tokenized once (separately).

        Raises:
          ValueError: an empty prompt or CoT.
        """
        if not isinstance(prompt, str) or not isinstance(cot, str):
            raise TypeError("Trace.from_text: prompt and cot must be str")
        if not cot.strip():
            raise ValueError("Trace.from_text: the chain of thought is empty")
        tok = token_access(sampler)
        add_bos = getattr(sampler, "add_bos", False) if add_bos is None else add_bos
        prompt_ids = tok.encode(prompt, add_bos=True) if add_bos else tok.encode(prompt)
        return cls.from_ids(tok, prompt_ids, tok.encode(cot), min_chars=min_chars)


# -- keys ----------------------------------------------------------------------------------

def _crc(s: str) -> int:
    return zlib.crc32(s.encode("utf-8")) & 0x7FFFFFFF


def prefix_key(key: jax.Array, problem_id: str, kind: str, index: int) -> jax.Array:
    """``fold_in(fold_in(fold_in(key, crc32(problem_id)), crc32(kind)), index)``."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, _crc(problem_id)),
                                                 _crc(kind)), int(index))


# -- the sweep -----------------------------------------------------------------------------

AnswerFn = Callable[[str], str]


def _to_rollout(j: int, completion, prefix_text: str, answer_fn: AnswerFn,
                answer_prefix: str = "") -> Rollout:
    text = completion.text
    return Rollout(sample=j, text=text, token_ids=tuple(int(t) for t in completion.token_ids),
                   logprobs=tuple(float(x) for x in completion.logprobs),
                   finish_reason=str(completion.finish_reason),
                   answer=answer_fn(prefix_text + answer_prefix + text),
                   resampled=first_sentence(text) if not answer_prefix else "")


def collect(sampler, store: RolloutStore, problem_id: str, kind: str, index: int,
            prefix_ids: Sequence[int], n: int, *, key: jax.Array, answer_fn: AnswerFn,
            prefix_text: str = "", answer_prefix: str = "",
            params: SamplingParams | None = None) -> list[Rollout]:
    """Samples ``0 … n-1`` of one prefix, drawing only those not yet in ``store``.

    The sampler is called as ``resample_ids(prefix_ids, n, key=prefix_key(...))`` and the
    samples already stored are not overwritten (they are the same draws).

    Args:
      sampler: a :class:`~llm_tools.Sampler` with ``resample_ids``.
      store: where rollouts live; its params are used unless ``params`` overrides the budget.
      problem_id, kind, index: the store key of this prefix.
      prefix_ids: token ids to continue.
      n: number of samples.
      key: the experiment's base key.
      answer_fn: maps ``prefix_text + answer_prefix + continuation`` to a normalized answer.
      prefix_text: the CoT text before the cut (for answer extraction).
      answer_prefix: text appended after the prefix (forced answers); its ids must already be
        part of ``prefix_ids``.
      params: sampling params (default ``store.params``).

    Raises:
      ValueError: ``n < 1``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"collect: n must be a positive int, got {n!r}")
    if not hasattr(sampler, "resample_ids"):
        raise TypeError(f"collect: {type(sampler).__name__} has no resample_ids (the token-level "
                        "Sampler API)")
    missing = store.missing(problem_id, kind, index, n)
    if missing:
        params = params or store.params
        comps = sampler.resample_ids(list(prefix_ids), n, key=prefix_key(key, problem_id, kind,
                                                                         index),
                                     **params.sampler_kwargs())
        if len(comps) != n:
            raise ValueError(f"collect: the sampler returned {len(comps)} completions, asked {n}")
        store.append(problem_id, kind, index,
                     [_to_rollout(j, comps[j], prefix_text, answer_fn, answer_prefix)
                      for j in missing])
    return store.get(problem_id, kind, index, n)


def sweep(sampler, trace: Trace, store: RolloutStore, problem_id: str, *, n: int = 100,
          key: jax.Array, answer_fn: AnswerFn, forced_suffix: str | None = None,
          forced_max_new_tokens: int = 16, sentences: Sequence[int] | None = None,
          progress: Callable[[int, int], None] | None = None
          ) -> tuple[list[list[Rollout]], list[list[Rollout]] | None]:
    """Resamples ``n`` rollouts from every cut ``0 … N`` (and forced answers if asked).

    Args:
      sampler: any :class:`~llm_tools.Sampler` (JAX in process or an OpenAI-compatible server).
      trace: the analysed CoT.
      store: the rollout store (resumes from what it holds).
      problem_id: the store key of this trace (its prompt and CoT are recorded under it).
      n: rollouts per prefix (100 in the papers).
      key: base key.
      answer_fn: ``text -> normalized answer`` (e.g. ``lambda t: extract_answer(t, "numeric")``).
      forced_suffix: when given (e.g. ``"\\n</think>\\n\\nTherefore, the final answer is
        \\\\boxed{"``), also draw forced-answer rollouts ``F_i`` from ``prefix_i + suffix``
        with ``forced_max_new_tokens``.
      sentences: restrict to these cut indices (default all ``0 … N``).
      progress: ``progress(done, total)`` after each prefix.

    Returns:
      ``(S, F)``: ``S[i]`` the rollouts of cut ``i`` (in the order of ``sentences``), ``F``
      likewise or ``None``.

    Raises:
      ValueError: a sentence index out of range, ``n < 1``, or a store holding another trace
        under ``problem_id``.
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"sweep: trace must be a Trace, got {type(trace).__name__}")
    idx = list(range(trace.num_sentences + 1)) if sentences is None else list(sentences)
    for i in idx:
        trace._check_index("sweep", i, allow_end=True)
    store.register_problem(problem_id, {"prompt_ids": list(trace.prompt_ids),
                                        "cot_ids": list(trace.cot_ids)})
    suffix_ids = []
    if forced_suffix is not None:
        suffix_ids = list(token_access(sampler).encode(forced_suffix))
    total = len(idx) * (2 if forced_suffix is not None else 1)
    S, F = [], [] if forced_suffix is not None else None
    done = 0
    for i in idx:
        S.append(collect(sampler, store, problem_id, "resample", i, trace.prefix_ids(i), n,
                         key=key, answer_fn=answer_fn, prefix_text=trace.prefix_text(i)))
        done += 1
        if progress:
            progress(done, total)
        if forced_suffix is not None:
            F.append(collect(sampler, store, problem_id, "forced", i,
                             trace.prefix_ids(i) + suffix_ids, n, key=key, answer_fn=answer_fn,
                             prefix_text=trace.prefix_text(i), answer_prefix=forced_suffix,
                             params=store.params.replace(max_new_tokens=forced_max_new_tokens)))
            done += 1
            if progress:
                progress(done, total)
    return S, F


def embed_similarities(embedder, originals: Sequence[str], resampled: Sequence[Sequence[str]]
                       ) -> list[np.ndarray]:
    """Cosine similarity of each resampled sentence to its original (``a @ b`` of unit rows).

    Every distinct string is embedded once; an empty resampled sentence has similarity 0.

    Raises:
      ValueError: if no embedder is given or the lengths differ.
    """
    if embedder is None:
        raise ValueError("embed_similarities: no embedder given; counterfactual importance "
                         "and resilience compare sentences by embedding (e.g. "
                         "llm_tools.MiniLMEmbedder)")
    if not hasattr(embedder, "embed"):
        raise TypeError(f"embed_similarities: embedder must have embed(texts), got "
                        f"{type(embedder).__name__}")
    if len(originals) != len(resampled):
        raise ValueError(f"embed_similarities: {len(originals)} originals but "
                         f"{len(resampled)} lists of resampled sentences")
    texts = sorted({t for t in originals if t} | {t for rs in resampled for t in rs if t})
    vecs = np.asarray(embedder.embed(texts), np.float64) if texts else np.zeros((0, 1))
    if vecs.shape[0] != len(texts):
        raise ValueError(f"embed_similarities: the embedder returned {vecs.shape[0]} rows for "
                         f"{len(texts)} texts")
    row = {t: k for k, t in enumerate(texts)}
    out = []
    for orig, rs in zip(originals, resampled, strict=True):
        if not orig:
            out.append(np.zeros(len(rs)))
            continue
        o = vecs[row[orig]]
        out.append(np.array([float(vecs[row[t]] @ o) if t else 0.0 for t in rs]))
    return out


def rollout_sets(trace: Trace, S: Sequence[Sequence[Rollout]], target: str, *,
                 embedder=None) -> list[RolloutSet]:
    """``S_0 … S_N`` as :class:`RolloutSet` (similarities from ``embedder`` when given).

    Raises:
      ValueError: if ``S`` does not hold ``N + 1`` sets.
    """
    if len(S) != trace.num_sentences + 1:
        raise ValueError(f"rollout_sets: expected {trace.num_sentences + 1} rollout sets (S_0 … "
                         f"S_N), got {len(S)}")
    sims = None
    if embedder is not None:
        sims = embed_similarities(embedder, [s.text for s in trace.sentences],
                                  [[r.resampled for r in S[i]]
                                   for i in range(trace.num_sentences)])
    out = []
    for i, rs in enumerate(S):
        sim = sims[i] if sims is not None and i < trace.num_sentences else None
        out.append(RolloutSet.from_answers([r.answer for r in rs], target,
                                           resampled=[r.resampled for r in rs], similarity=sim))
    return out
