"""The sampling interface every LLM-facing experiment uses, and its local JAX implementation.

:class:`Sampler` is a ``typing.Protocol``: ``generate`` / ``generate_ids``, ``resample`` /
``resample_ids``, ``logprobs`` / ``logprobs_ids`` and ``chat``. :class:`JaxSampler` runs one
of our :class:`~llm_tools.model.Llama` models in process;
:class:`~llm_tools.client.OpenAISampler` speaks to an OpenAI-compatible server. Everything
random takes an explicit ``jax.random.key``: sample ``j`` of prompt ``i`` is drawn from
``fold_in(fold_in(key, i), j)`` (:func:`sample_key`) and nothing else, so adding prompts or
raising ``n`` never changes earlier samples.

Completions keep the stop/EOS token that ended them, with its log-probability
(``Completion.ends_with_stop_token``). Sampled-token logprobs are under the sampling
temperature, ``log softmax(z_t / τ)[y_t]`` (``τ = 1`` for greedy), before top-k/top-p
truncation. Scores are the model's own log-probabilities (temperature 1, no truncation):
``log p(y_t | x, y_<t) = log softmax(z_t)[y_t]``, and a continuation's total is their sum; a
text pair is tokenized once as ``prompt + continuation`` (:func:`split_at_boundary`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_tools.engine import Engine, bucket, check_generation_args
from llm_tools.model import Llama, forward, hidden_states
from llm_tools.train import token_logprobs

__all__ = [
    "Completion",
    "JaxSampler",
    "Sampler",
    "Score",
    "check_ids",
    "check_sampling_args",
    "make_completion",
    "sample_key",
    "split_at_boundary",
]


@dataclasses.dataclass(frozen=True)
class Completion:
    """One sampled continuation.

    Attributes:
      text: the continuation's text, without the stop string or stop token that ended it.
      token_ids: its token ids, *including* the stop/EOS token that ended the row (so a policy
        can be credited for stopping); with a stop string, up to the first token whose text
        completes the stop string.
      logprobs: one per token id: ``log softmax(z_t / τ)[y_t]``, the log-probability of the
        sampled token under the model at the sampling temperature ``τ`` (``τ = 1`` for greedy
        ``τ = 0``), before top-k/top-p truncation.
      finish_reason: ``"stop"`` (a stop string or stop token) or ``"length"``.
      ends_with_stop_token: True exactly when ``token_ids[-1]`` is a stop/EOS token id that
        ended the row; its text is not part of ``text``.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str
    ends_with_stop_token: bool = False


@dataclasses.dataclass(frozen=True)
class Score:
    """Log-probabilities of a given continuation: per token (temperature 1) and summed."""

    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    total: float


@runtime_checkable
class Sampler(Protocol):
    """One interface for sampling, resampling, scoring and chatting with an LM.

    Every random draw is a function of ``(key, i, j)`` only: sample ``j`` of prompt ``i`` uses
    ``fold_in(fold_in(key, i), j)``, so adding prompts or raising ``n`` leaves earlier samples
    unchanged. The ``*_ids`` methods take token ids instead of text (the same ids the
    ``tokenizer`` attribute produces).
    """

    name: str

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 stop: Sequence[str] = (), n: int = 1, key: jax.Array
                 ) -> list[list[Completion]]:
        """``n`` completions for each prompt (outer list: prompts, inner: samples)."""
        ...

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int,
                     temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                     stop: Sequence[str] = (), n: int = 1, key: jax.Array
                     ) -> list[list[Completion]]:
        """As :meth:`generate`, with each prompt given as token ids."""
        ...

    def resample(self, prefix: str, n: int, *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, stop: Sequence[str] = (),
                 key: jax.Array) -> list[Completion]:
        """``n`` continuations of one exact text prefix (``generate([prefix], n=n)[0]``)."""
        ...

    def resample_ids(self, prefix_ids: Sequence[int], n: int, *, max_new_tokens: int,
                     temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                     stop: Sequence[str] = (), key: jax.Array) -> list[Completion]:
        """``n`` continuations of one token-id prefix (``generate_ids([prefix], n=n)[0]``)."""
        ...

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[Score]:
        """Scores of each continuation given its prompt (``prompt + continuation`` tokenized
        once; a prompt/continuation boundary inside a token is a ValueError)."""
        ...

    def logprobs_ids(self, prompt_ids: Sequence[Sequence[int]],
                     continuation_ids: Sequence[Sequence[int]]) -> list[Score]:
        """Scores of each token-id continuation given its token-id prompt."""
        ...

    def chat(self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             stop: Sequence[str] = (), n: int = 1, key: jax.Array) -> list[Completion]:
        """``n`` replies to one conversation, through the model's chat template."""
        ...


def sample_key(key: jax.Array, i: int, j: int) -> jax.Array:
    """The key of sample ``j`` of prompt ``i``: ``fold_in(fold_in(key, i), j)``."""
    return jax.random.fold_in(jax.random.fold_in(key, i), j)


def check_sampling_args(who: str, *, max_new_tokens, temperature, top_p, top_k, n,
                        stop=(), key=None) -> None:
    """Validates the sampling arguments shared by every :class:`Sampler` (ValueError/TypeError)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens <= 0:
        raise ValueError(f"{who}: max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float, np.floating)) or not np.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"{who}: temperature must be a finite float >= 0, got {temperature!r}")
    if not isinstance(top_p, (int, float, np.floating)) or not 0 < top_p <= 1:
        raise ValueError(f"{who}: top_p must lie in (0, 1], got {top_p!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"{who}: top_k must be an int >= 0 (0 = off), got {top_k!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"{who}: n must be a positive int, got {n!r}")
    if isinstance(stop, str) or any(not isinstance(s, str) or not s for s in stop):
        raise ValueError(f"{who}: stop must be a list of non-empty strings, got {stop!r}")
    if key is not None and (not isinstance(key, jax.Array)
                            or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                            or key.shape != ()):
        raise TypeError(f"{who}: key must be a single typed key from jax.random.key(seed), got "
                        f"{getattr(key, 'dtype', type(key).__name__)}"
                        f"{getattr(key, 'shape', '')}")


def check_texts(who: str, name: str, texts, *, allow_empty_strings: bool = True) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{who}: {name} must be a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{who}: {name} must be a non-empty list of str, got an empty list")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{who}: {name}[{i}] must be str, got {type(t).__name__}")
        if not allow_empty_strings and not t:
            raise ValueError(f"{who}: {name}[{i}] is an empty string")
    return list(texts)


def check_ids(who: str, name: str, ids, vocab_size: int, *, allow_empty: bool = False
              ) -> list[int]:
    """One list of token ids, validated: ints in ``[0, vocab_size)`` (ValueError/TypeError)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, np.ndarray)):
        raise TypeError(f"{who}: {name} must be a list of token ids, got {type(ids).__name__}")
    arr = np.asarray(ids)
    if arr.size and (arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{who}: {name} must be a flat list of int token ids, got "
                        f"{arr.dtype}{arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{who}: {name} is empty (it needs at least one token id)")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(f"{who}: {name} has ids outside the vocabulary [0, {vocab_size}): "
                         f"min {arr.min()}, max {arr.max()}")
    return [int(x) for x in arr]


def check_id_lists(who: str, name: str, lists, vocab_size: int, *,
                   allow_empty: bool = False) -> list[list[int]]:
    """A non-empty list of token-id lists, each validated by :func:`check_ids`."""
    if isinstance(lists, (str, bytes)) or not isinstance(lists, (Sequence, np.ndarray)):
        raise TypeError(f"{who}: {name} must be a list of token-id lists, got "
                        f"{type(lists).__name__}")
    if len(lists) == 0:
        raise ValueError(f"{who}: {name} must be a non-empty list of token-id lists, got an "
                         "empty list")
    return [check_ids(who, f"{name}[{i}]", x, vocab_size, allow_empty=allow_empty)
            for i, x in enumerate(lists)]


def split_at_boundary(tokenizer, prompt: str, continuation: str, *, add_bos: bool = False,
                      who: str = "logprobs") -> tuple[list[int], int]:
    """Tokenizes ``prompt + continuation`` once; returns ``(ids, k)``, ``ids[:k]`` the prompt's.

    ``k`` is the number of tokens whose text ends at or before ``len(prompt)``; the
    continuation is scored on ``ids[k:]``.

    Raises:
      ValueError: if a token straddles the boundary (e.g. ``"Hello wor" + "ld"``, where
        ``" world"`` is one token): that continuation has no token-level score of its own.
    """
    ids, offsets = encode_with_offsets(tokenizer, prompt + continuation)
    cut = len(prompt)
    k = sum(1 for _, end in offsets if end <= cut)
    straddle = [i for i, (start, end) in enumerate(offsets) if start < cut < end]
    if straddle:
        i = straddle[0]
        piece = (prompt + continuation)[offsets[i][0]:offsets[i][1]]
        raise ValueError(
            f"{who}: the prompt/continuation boundary falls inside token {ids[i]} ({piece!r}, "
            f"characters {offsets[i][0]}:{offsets[i][1]} of prompt+continuation, prompt ends "
            f"at {cut}); move the boundary to a token edge or score token ids with "
            "logprobs_ids")
    if any(start < cut for start, _ in offsets[k:]) or any(end > cut for _, end in offsets[:k]):
        raise ValueError(f"{who}: the tokens of prompt+continuation do not split at the end of "
                         "the prompt; score token ids with logprobs_ids")  # pragma: no cover
    if add_bos:
        ids, k = [tokenizer.bos_id, *ids], k + 1
    return ids, k


def encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """``(ids, [(start, end)])``: token ids and the character span of each in ``text``."""
    if hasattr(tokenizer, "encode_with_offsets"):
        ids, offsets = tokenizer.encode_with_offsets(text)
        return list(ids), [tuple(o) for o in offsets]
    ids = tokenizer.encode(text)
    # fall back to decoding prefixes: token i spans decode(ids[:i]) .. decode(ids[:i+1])
    offsets, prev = [], 0
    for i in range(len(ids)):
        end = len(tokenizer.decode(ids[: i + 1]))
        offsets.append((prev, end))
        prev = end
    return ids, offsets


def resample_via_generate(sampler, who: str, prefix, n, **kwargs) -> list:
    """``n`` continuations of one exact text ``prefix``: ``sampler.generate([prefix], n=n)[0]``.

    Shared by every backend, so ``resample`` means the same thing everywhere.

    Raises:
      TypeError: if ``prefix`` is not a str (``who`` names the caller in the message).
    """
    if not isinstance(prefix, str):
        raise TypeError(f"{who}: prefix must be str, got {type(prefix).__name__}")
    return sampler.generate([prefix], n=n, **kwargs)[0]


def resample_ids_via_generate_ids(sampler, who: str, prefix_ids, n, **kwargs) -> list:
    """``n`` continuations of one token-id prefix: ``generate_ids([prefix_ids], n=n)[0]``."""
    if isinstance(prefix_ids, (str, bytes)) or not isinstance(prefix_ids,
                                                              (Sequence, np.ndarray)):
        raise TypeError(f"{who}: prefix_ids must be a list of token ids, got "
                        f"{type(prefix_ids).__name__}")
    return sampler.generate_ids([prefix_ids], n=n, **kwargs)[0]


def make_completion(tokenizer, ids, logprobs, *, stopped: bool, stop_strings=()
                    ) -> Completion:
    """A :class:`Completion` from a row's ids and logprobs (including a final stop id).

    ``stopped`` says the row ended on a stop/EOS id (kept in ``token_ids`` with its logprob,
    ``ends_with_stop_token=True``). Stop strings cut the text before their first occurrence
    and the tokens after the first token whose text completes one.
    """
    ids, lps = [int(t) for t in ids], [float(x) for x in logprobs]
    body = ids[:-1] if stopped else ids
    text = tokenizer.decode(body)
    hits = [text.find(s) for s in stop_strings if s in text]
    if hits:
        cut = min(hits)
        for j in range(1, len(body) + 1):
            if any(s in tokenizer.decode(body[:j]) for s in stop_strings):
                return Completion(text[:cut], tuple(ids[:j]), tuple(lps[:j]), "stop", False)
    return Completion(text, tuple(ids), tuple(lps), "stop" if stopped else "length",
                      bool(stopped))


_SCORE_BUDGET = 128 << 20  # bytes of attention scores per scoring call


class JaxSampler:
    """:class:`Sampler` over one of our JAX models, in process.

    Args:
      model: a :class:`~llm_tools.model.Llama`.
      tokenizer: a :class:`~llm_tools.tokenizer.BPETokenizer` or
        :class:`~llm_tools.tokenizer.ByteTokenizer`.
      add_bos: prepend the BOS id to every text prompt (SmolLM2 does not).
      max_batch: rows per jitted call (rows are independent, so chunking does not change
        results).
      name: model name reported by the server.
      dtype: decode weights and cache dtype (default bfloat16 on accelerators, float32 on
        CPU).
      cap: candidate-set size for top-k/top-p (exact; see
        :func:`llm_tools.sampling.truncation_mask`).
      share_prefixes: prefill identical prompts and prompts that are prefixes of another
        once (False only to check that sharing changes nothing).
    """

    def __init__(self, model: Llama, tokenizer, *, add_bos: bool = False, max_batch: int = 32,
                 name: str = "jax-llama", dtype: str | None = None, cap: int = 256,
                 share_prefixes: bool = True):
        if not isinstance(model, Llama):
            raise TypeError(f"JaxSampler: model must be a Llama, got {type(model).__name__}")
        for attr in ("encode", "decode", "stop_ids", "apply_chat_template"):
            if not hasattr(tokenizer, attr):
                raise TypeError(f"JaxSampler: tokenizer lacks {attr!r} "
                                f"(got {type(tokenizer).__name__})")
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"JaxSampler: tokenizer vocab_size {tokenizer.vocab_size} exceeds "
                             f"the model's {model.config.vocab_size}")
        if not isinstance(max_batch, int) or max_batch <= 0:
            raise ValueError(f"JaxSampler: max_batch must be a positive int, got {max_batch!r}")
        self.model, self.tokenizer = model, tokenizer
        self.add_bos, self.max_batch, self.name = add_bos, max_batch, name
        self._engine_kw = dict(dtype=dtype, max_batch=max_batch, cap=cap,
                               share_prefixes=share_prefixes)
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The sampling :class:`~llm_tools.engine.Engine` (built on first use, so a sampler
        used only for scoring holds no decode-layout copy of the weights)."""
        if self._engine is None:
            self._engine = Engine(self.model, **self._engine_kw)
        return self._engine

    def update_weights(self, model_or_params) -> None:
        """Refreshes the sampler's weights from a model or its ``nnx.State`` of parameters.

        The architecture must not change; nothing is recompiled (one pass over the weights
        to build the decode layout). Typical use in RL: ``sampler.update_weights(
        state.params)`` after each optimizer step.

        Raises:
          TypeError: for anything but a :class:`~llm_tools.model.Llama` or an ``nnx.State``.
          ValueError: if the shapes or the architecture differ.
        """
        if isinstance(model_or_params, Llama):
            new = model_or_params
        elif isinstance(model_or_params, nnx.State):
            new = nnx.clone(self.model)
            try:
                nnx.update(new, model_or_params)
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"JaxSampler.update_weights: the state does not fit the "
                                 f"model ({e})") from e
        else:
            raise TypeError(f"JaxSampler.update_weights: expected a Llama or an nnx.State of "
                            f"its parameters, got {type(model_or_params).__name__}")
        old = jax.tree.map(lambda x: (x.shape, x.dtype), nnx.state(self.model))
        now = jax.tree.map(lambda x: (x.shape, x.dtype), nnx.state(new))
        if old != now:
            raise ValueError("JaxSampler.update_weights: the new weights' shapes/dtypes differ "
                             "from the sampler's model")
        if self._engine is not None:
            self._engine.update_weights(new)
        self.model = new

    @classmethod
    def from_smollm2(cls, *, dtype: str = "float32", max_seq_len: int = 2048,
                     **kwargs) -> JaxSampler:
        """SmolLM2-135M-Instruct (after ``python -m llm_tools.fetch smollm2``)."""
        from llm_tools.gguf_loader import load_smollm2

        pre = load_smollm2(dtype=dtype, max_seq_len=max_seq_len)
        return cls(pre.model, pre.tokenizer, name="SmolLM2-135M-Instruct", **kwargs)

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size

    # -- helpers ---------------------------------------------------------------------------
    def _encode_prompt(self, who, i, text):
        ids = self.tokenizer.encode(text, add_bos=self.add_bos)
        if not ids:
            raise ValueError(f"{who}: prompt {i} is empty (it encodes to no tokens)")
        return ids

    def _sample_rows(self, prompt_ids, *, n, key, max_new_tokens, temperature, top_p, top_k):
        """Rows ``(i, j)`` in order; returns ``(tokens, logprobs, stopped)`` per row."""
        rows = [p for p in prompt_ids for _ in range(n)]
        keys = jax.vmap(lambda i, j: sample_key(key, i, j))(
            jnp.repeat(jnp.arange(len(prompt_ids)), n), jnp.tile(jnp.arange(n), len(prompt_ids)))
        rows, keys, max_new, t, p, k = check_generation_args(
            self.model.config, rows, keys, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, top_k=top_k, who="JaxSampler")
        o = self.engine.generate(rows, keys, max_new_tokens=max_new, temperature=t, top_p=p,
                                 top_k=k, stop_ids=self.tokenizer.stop_ids)
        return [(o.tokens[b], o.logprobs[b], bool(o.stopped[b])) for b in range(len(rows))]

    def _generate(self, who, prompt_ids, *, max_new_tokens, temperature, top_p, top_k, stop, n,
                  key):
        for i, p in enumerate(prompt_ids):
            if len(p) + max_new_tokens > self.model.config.max_seq_len:
                raise ValueError(f"{who}: prompt {i} has {len(p)} tokens + max_new_tokens "
                                 f"{max_new_tokens} > the context length "
                                 f"{self.model.config.max_seq_len}")
        raw = self._sample_rows(prompt_ids, n=n, key=key, max_new_tokens=max_new_tokens,
                                temperature=temperature, top_p=top_p, top_k=top_k)
        comps = [make_completion(self.tokenizer, t, lp, stopped=st, stop_strings=list(stop))
                 for t, lp, st in raw]
        return [comps[i * n:(i + 1) * n] for i in range(len(prompt_ids))]

    # -- the interface ---------------------------------------------------------------------
    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), n=1, key):
        """``n`` completions per prompt; sample ``j`` of prompt ``i`` uses
        :func:`sample_key` ``(key, i, j)`` and nothing else.

        The tokenizer's stop ids (EOS, ``<|im_end|>``) end a row inside the jitted loop (the
        id is kept in ``token_ids``, see :class:`Completion`); stop *strings* are applied to
        the decoded text afterwards, so they cost the full ``max_new_tokens`` of compute.

        Raises:
          ValueError: empty prompt list or prompt, bad sampling arguments, or a prompt plus
            ``max_new_tokens`` longer than the model's context.
        """
        who = "JaxSampler.generate"
        prompts = check_texts(who, "prompts", prompts)
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        ids = [self._encode_prompt(who, i, p) for i, p in enumerate(prompts)]
        return self._generate(who, ids, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=top_p, top_k=top_k, stop=stop, n=n, key=key)

    def generate_ids(self, prompt_ids, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                     stop=(), n=1, key):
        """As :meth:`generate`, each prompt given as token ids (no BOS is added).

        Raises:
          ValueError: an empty list or prompt, ids outside the vocabulary, bad sampling
            arguments, or a prompt plus ``max_new_tokens`` longer than the context.
        """
        who = "JaxSampler.generate_ids"
        ids = check_id_lists(who, "prompt_ids", prompt_ids, self.vocab_size)
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        return self._generate(who, ids, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=top_p, top_k=top_k, stop=stop, n=n, key=key)

    def resample(self, prefix, n, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), key):
        """``n`` continuations of the exact text ``prefix`` (``generate([prefix], n=n)``)."""
        return resample_via_generate(self, "JaxSampler.resample", prefix, n,
                                     max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_p=top_p, top_k=top_k, stop=stop, key=key)

    def resample_ids(self, prefix_ids, n, *, max_new_tokens, temperature=1.0, top_p=1.0,
                     top_k=0, stop=(), key):
        """``n`` continuations of token ids ``prefix_ids`` (``generate_ids([prefix], n=n)``)."""
        return resample_ids_via_generate_ids(
            self, "JaxSampler.resample_ids", prefix_ids, n, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, top_k=top_k, stop=stop, key=key)

    def logprobs(self, prompts, continuations):
        """Scores each continuation given its prompt: ``prompt + continuation`` is tokenized
        once and split at the end of the prompt (:func:`split_at_boundary`).

        Raises:
          ValueError: empty lists, different lengths, an empty prompt or continuation, a
            boundary inside a token, or a pair longer than the context.
        """
        who = "JaxSampler.logprobs"
        prompts = check_texts(who, "prompts", prompts)
        continuations = check_texts(who, "continuations", continuations,
                                    allow_empty_strings=False)
        if len(prompts) != len(continuations):
            raise ValueError(f"{who}: prompts has {len(prompts)} entries but continuations has "
                             f"{len(continuations)}")
        pairs = []
        for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
            ids, k = split_at_boundary(self.tokenizer, p, c, add_bos=self.add_bos,
                                       who=f"{who}: pair {i}")
            if k == 0:
                raise ValueError(f"{who}: prompt {i} is empty (it encodes to no tokens)")
            pairs.append((ids[:k], ids[k:]))
        return self._score(who, pairs)

    def logprobs_ids(self, prompt_ids, continuation_ids):
        """Scores each token-id continuation given its token-id prompt.

        Raises:
          ValueError: empty lists, different lengths, an empty prompt or continuation, ids
            outside the vocabulary, or a pair longer than the context.
        """
        who = "JaxSampler.logprobs_ids"
        prompts = check_id_lists(who, "prompt_ids", prompt_ids, self.vocab_size)
        conts = check_id_lists(who, "continuation_ids", continuation_ids, self.vocab_size)
        if len(prompts) != len(conts):
            raise ValueError(f"{who}: prompt_ids has {len(prompts)} entries but "
                             f"continuation_ids has {len(conts)}")
        return self._score(who, list(zip(prompts, conts, strict=True)))

    def _score(self, who, pairs):
        for i, (a, b) in enumerate(pairs):
            if len(a) + len(b) > self.model.config.max_seq_len:
                raise ValueError(f"{who}: pair {i} has {len(a) + len(b)} tokens > the context "
                                 f"length {self.model.config.max_seq_len}")
        # similar lengths together; rows per call bounded by max_batch and by the attention
        # scores' size (rows * T^2 * heads * 4 bytes <= 128 MB), so memory stays bounded
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        per_row = self.model.config.n_heads * 4
        scores: list = [None] * len(pairs)
        start = 0
        length = [len(a) + len(b) for a, b in pairs]
        while start < len(order):
            rows = 1 << (self.max_batch.bit_length() - 1)  # powers of two: few compilations
            while True:
                T = bucket(max(length[i] for i in order[start:start + rows]))
                if rows == 1 or rows * T * T * per_row <= _SCORE_BUDGET:
                    break
                rows //= 2
            chunk = order[start:start + rows]
            start += rows
            buf = np.zeros((bucket(len(chunk), 1), T), np.int32)  # right padding
            mask = np.zeros(buf.shape, bool)
            for r, i in enumerate(chunk):
                a, b = pairs[i]
                buf[r, : len(a) + len(b)] = a + b
                mask[r, : len(a) + len(b)] = True
            logp = np.asarray(_next_token_logprobs(self.model, jnp.asarray(buf),
                                                   jnp.asarray(mask)))
            for r, i in enumerate(chunk):
                a, b = pairs[i]
                lp = [float(x) for x in logp[r, len(a) - 1: len(a) - 1 + len(b)]]
                scores[i] = Score(tuple(b), tuple(lp), float(np.sum(lp)))
        return scores

    def score_ids(self, ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[:t])`` for ``t = 1 … len(ids)-1`` (the model's own scores)."""
        ids = check_ids("JaxSampler.score_ids", "ids", ids, self.vocab_size, allow_empty=True)
        if len(ids) > self.model.config.max_seq_len:
            raise ValueError(f"JaxSampler.score_ids: {len(ids)} tokens > the context length "
                             f"{self.model.config.max_seq_len}")
        if len(ids) < 2:
            return []
        return list(self._score("JaxSampler.score_ids", [(ids[:1], ids[1:])])[0].token_logprobs)

    def hidden_states_ids(self, prompt_ids, layers: Sequence[int] | None = None
                          ) -> list[np.ndarray]:
        """Per-layer hidden states of each token-id sequence: ``[len(layers), T_i, d]`` each.

        Layer ``0`` is the token embedding and ``l`` the output of decoder layer ``l`` (before
        the final norm); ``layers`` defaults to all ``L + 1``. For differentiable use in
        training see :func:`llm_tools.model.hidden_states`.

        Raises:
          ValueError: empty lists, ids outside the vocabulary, layers outside ``[0, L]``, or a
            sequence longer than the context.
        """
        who = "JaxSampler.hidden_states_ids"
        seqs = check_id_lists(who, "prompt_ids", prompt_ids, self.vocab_size)
        L = self.model.config.n_layers
        layers = list(range(L + 1)) if layers is None else [int(x) for x in layers]
        if not layers or min(layers) < 0 or max(layers) > L:
            raise ValueError(f"{who}: layers must be a non-empty list of indices in [0, {L}], "
                             f"got {layers}")
        for i, x in enumerate(seqs):
            if len(x) > self.model.config.max_seq_len:
                raise ValueError(f"{who}: prompt_ids[{i}] has {len(x)} tokens > the context "
                                 f"length {self.model.config.max_seq_len}")
        graphdef, state = nnx.split(self.model)
        out = []
        for s in range(0, len(seqs), self.max_batch):
            chunk = seqs[s:s + self.max_batch]
            buf = np.zeros((bucket(len(chunk), 1), bucket(max(map(len, chunk)))), np.int32)
            mask = np.zeros(buf.shape, bool)
            for r, x in enumerate(chunk):
                buf[r, : len(x)], mask[r, : len(x)] = x, True
            hs = np.asarray(_hidden_jit(graphdef, state, jnp.asarray(buf), jnp.asarray(mask),
                                        jnp.asarray(layers)), np.float32)
            out += [hs[:, r, : len(x)] for r, x in enumerate(chunk)]
        return out

    def embed(self, texts):
        """Mean-pooled final hidden states of the LM, ``[len(texts), d]`` float32.

        A convenience for probing the LM; for sentence similarity use an
        ``llm_tools.embedder.Embedder`` (a trained sentence encoder).

        Raises:
          ValueError: an empty list, an empty text, or a text longer than the context.
        """
        who = "JaxSampler.embed"
        texts = check_texts(who, "texts", texts)
        ids = [self._encode_prompt(who, i, t) for i, t in enumerate(texts)]
        too_long = [i for i, x in enumerate(ids) if len(x) > self.model.config.max_seq_len]
        if too_long:
            raise ValueError(f"{who}: text {too_long[0]} has {len(ids[too_long[0]])} tokens > "
                             f"the context length {self.model.config.max_seq_len}")
        out = []
        for s in range(0, len(ids), self.max_batch):
            chunk = ids[s:s + self.max_batch]
            T = bucket(max(map(len, chunk)))
            buf = np.zeros((bucket(len(chunk), 1), T), np.int32)
            mask = np.zeros_like(buf, bool)
            for r, x in enumerate(chunk):
                buf[r, : len(x)] = x
                mask[r, : len(x)] = True
            out.append(np.asarray(_mean_hidden(self.model, jnp.asarray(buf),
                                               jnp.asarray(mask)))[: len(chunk)])
        return np.concatenate(out).astype(np.float32)

    def chat(self, messages, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0, stop=(),
             n=1, key):
        """``n`` replies to one conversation (a list of ``{"role", "content"}`` dicts)."""
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return self.generate([prompt], max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, top_k=top_k, stop=stop, n=n, key=key)[0]


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _next_token_logprobs_jit(graphdef, state, tokens, mask):
    return token_logprobs(nnx.merge(graphdef, state), tokens, mask)


def _next_token_logprobs(model: Llama, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """``[B, T-1]``: ``log p(tokens[t+1] | tokens[≤t])``, gathered on device in chunks (never
    ``[B, T, V]`` logits at once)."""
    graphdef, state = nnx.split(model)
    return _next_token_logprobs_jit(graphdef, state, tokens, mask)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _hidden_jit(graphdef, state, tokens, mask, layers):
    return hidden_states(nnx.merge(graphdef, state), tokens, attention_mask=mask)[layers]


def _mean_hidden(model: Llama, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    _, _, h = forward(model, tokens, attention_mask=mask, logits=False)
    w = mask.astype(jnp.float32)[..., None]
    return (h.astype(jnp.float32) * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
