"""The sampling interface every LLM-facing experiment uses, and its local JAX implementation.

:class:`Sampler` is a ``typing.Protocol``: ``generate``, ``resample``, ``logprobs``, ``embed``
and ``chat``. :class:`JaxSampler` runs one of our :class:`~llm_tools.model.Llama` models in
process; :class:`~llm_tools.client.OpenAISampler` speaks to an OpenAI-compatible server.
Everything random takes an explicit ``jax.random.key``: same key, same output.

Scores are the model's own log-probabilities (temperature 1, no truncation):
``log p(y_t | x, y_<t) = log softmax(z_t)[y_t]``, and a continuation's total is their sum.
Embeddings are mean-pooled final hidden states, ``e = (1/T) Σ_t RMSNorm(h_L)_t``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from llm_tools.model import Llama, forward
from llm_tools.sampling import _bucket, generate_tokens

__all__ = ["Completion", "JaxSampler", "Sampler", "Score", "check_sampling_args"]


@dataclasses.dataclass(frozen=True)
class Completion:
    """One sampled continuation.

    Attributes:
      text: the continuation's text (without the stop string or stop token that ended it).
      token_ids: its token ids (without a final stop token).
      logprobs: the model's log-probability of each of ``token_ids``.
      finish_reason: ``"stop"`` (a stop string or stop token) or ``"length"``.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str


@dataclasses.dataclass(frozen=True)
class Score:
    """Log-probabilities of a given continuation: per token and summed."""

    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    total: float


@runtime_checkable
class Sampler(Protocol):
    """One interface for sampling, resampling, scoring, embedding and chatting with an LM."""

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 stop: Sequence[str] = (), n: int = 1, key: jax.Array
                 ) -> list[list[Completion]]:
        """``n`` completions for each prompt (outer list: prompts, inner: samples)."""
        ...

    def resample(self, prefix: str, n: int, *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, stop: Sequence[str] = (),
                 key: jax.Array) -> list[Completion]:
        """``n`` continuations of one exact text prefix."""
        ...

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[Score]:
        """Per-token and summed log-probabilities of each continuation given its prompt."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text, ``[len(texts), d]``."""
        ...

    def chat(self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             stop: Sequence[str] = (), n: int = 1, key: jax.Array) -> list[Completion]:
        """``n`` replies to one conversation, through the model's chat template."""
        ...


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


def resample_via_generate(sampler, who: str, prefix, n, **kwargs) -> list:
    """``n`` continuations of one exact text ``prefix``: ``sampler.generate([prefix], n=n)[0]``.

    Shared by every backend, so ``resample`` means the same thing everywhere.

    Raises:
      TypeError: if ``prefix`` is not a str (``who`` names the caller in the message).
    """
    if not isinstance(prefix, str):
        raise TypeError(f"{who}: prefix must be str, got {type(prefix).__name__}")
    return sampler.generate([prefix], n=n, **kwargs)[0]


def _cut_at_stop(tokenizer, ids, logprobs, stop_strings):
    """Shortest token prefix whose text contains a stop string; text cut before it."""
    text = tokenizer.decode(ids)
    hits = [text.find(s) for s in stop_strings if s in text]
    if not hits:
        return text, ids, logprobs, False
    cut = min(hits)
    for j in range(1, len(ids) + 1):
        prefix = tokenizer.decode(ids[:j])
        if any(s in prefix for s in stop_strings):
            return text[:cut], ids[:j], logprobs[:j], True
    return text[:cut], ids, logprobs, True  # pragma: no cover (text came from these ids)


class JaxSampler:
    """:class:`Sampler` over one of our JAX models, in process.

    Args:
      model: a :class:`~llm_tools.model.Llama`.
      tokenizer: a :class:`~llm_tools.tokenizer.BPETokenizer` or
        :class:`~llm_tools.tokenizer.ByteTokenizer`.
      add_bos: prepend the BOS id to every prompt (SmolLM2 does not).
      max_batch: rows per jitted call (rows are independent, so chunking does not change
        results).
      name: model name reported by the server.
    """

    def __init__(self, model: Llama, tokenizer, *, add_bos: bool = False, max_batch: int = 32,
                 name: str = "jax-llama"):
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

    @classmethod
    def from_smollm2(cls, *, dtype: str = "float32", max_seq_len: int = 2048,
                     **kwargs) -> JaxSampler:
        """SmolLM2-135M-Instruct (after ``python -m llm_tools.fetch smollm2``)."""
        from llm_tools.gguf_loader import load_smollm2

        pre = load_smollm2(dtype=dtype, max_seq_len=max_seq_len)
        return cls(pre.model, pre.tokenizer, name="SmolLM2-135M-Instruct", **kwargs)

    # -- helpers ---------------------------------------------------------------------------
    def _encode_prompt(self, who, i, text):
        ids = self.tokenizer.encode(text, add_bos=self.add_bos)
        if not ids:
            raise ValueError(f"{who}: prompt {i} is empty (it encodes to no tokens)")
        return ids

    def _generate_ids(self, prompt_ids, keys, *, max_new_tokens, temperature, top_p, top_k):
        outs = []
        for s in range(0, len(prompt_ids), self.max_batch):
            outs.append(generate_tokens(
                self.model, prompt_ids[s:s + self.max_batch], keys[s:s + self.max_batch],
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                top_k=top_k, stop_ids=self.tokenizer.stop_ids,
                pad_id=self.tokenizer.pad_id or 0))
        return [(o.tokens[b], o.logprobs[b], int(o.lengths[b]), bool(o.stopped[b]))
                for o in outs for b in range(len(o.lengths))]

    def _completion(self, tokens, logprobs, length, stopped, stop):
        ids = [int(t) for t in tokens[:length]]
        lps = [float(x) for x in logprobs[:length]]
        if stopped:  # drop the stop token itself
            ids, lps = ids[:-1], lps[:-1]
        text, ids, lps, hit = _cut_at_stop(self.tokenizer, ids, lps, stop) if stop else (
            self.tokenizer.decode(ids), ids, lps, False)
        return Completion(text, tuple(ids), tuple(lps),
                          "stop" if (stopped or hit) else "length")

    # -- the interface ---------------------------------------------------------------------
    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), n=1, key):
        """``n`` completions per prompt; row ``(i, j)`` uses ``split(key, len·n)[i·n + j]``.

        The tokenizer's stop ids (EOS, ``<|im_end|>``) end a row inside the jitted loop; stop
        *strings* are applied to the decoded text afterwards (the text and tokens are cut at
        the first occurrence), so they cost the full ``max_new_tokens`` of compute.

        Raises:
          ValueError: empty prompt list or prompt, bad sampling arguments, or a prompt plus
            ``max_new_tokens`` longer than the model's context.
        """
        who = "JaxSampler.generate"
        prompts = check_texts(who, "prompts", prompts)
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        ids = [self._encode_prompt(who, i, p) for i, p in enumerate(prompts)]
        rows = [p for p in ids for _ in range(n)]
        keys = jax.random.split(key, len(rows))
        raw = self._generate_ids(rows, keys, max_new_tokens=max_new_tokens,
                                 temperature=temperature, top_p=top_p, top_k=top_k)
        comps = [self._completion(*r, stop=list(stop)) for r in raw]
        return [comps[i * n:(i + 1) * n] for i in range(len(prompts))]

    def resample(self, prefix, n, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), key):
        """``n`` continuations of the exact text ``prefix`` (``generate([prefix], n=n)``)."""
        return resample_via_generate(self, "JaxSampler.resample", prefix, n,
                                     max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_p=top_p, top_k=top_k, stop=stop, key=key)

    def logprobs(self, prompts, continuations):
        """Scores each continuation given its prompt (tokenized separately, then joined).

        Raises:
          ValueError: empty lists, different lengths, an empty prompt or continuation, or a
            pair longer than the context.
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
            pi = self._encode_prompt(who, i, p)
            ci = self.tokenizer.encode(c)
            if len(pi) + len(ci) > self.model.config.max_seq_len:
                raise ValueError(f"{who}: pair {i} has {len(pi) + len(ci)} tokens > the context "
                                 f"length {self.model.config.max_seq_len}")
            pairs.append((pi, ci))
        scores = []
        for s in range(0, len(pairs), self.max_batch):
            chunk = pairs[s:s + self.max_batch]
            T = _bucket(max(len(a) + len(b) for a, b in chunk))
            buf = np.zeros((_bucket(len(chunk), 1), T), np.int32)  # right padding: causal
            for r, (a, b) in enumerate(chunk):
                buf[r, : len(a) + len(b)] = a + b
            logp = np.asarray(_token_logprobs(self.model, jnp.asarray(buf)))
            for r, (a, b) in enumerate(chunk):
                lp = [float(logp[r, len(a) - 1 + t, tok]) for t, tok in enumerate(b)]
                scores.append(Score(tuple(b), tuple(lp), float(np.sum(lp))))
        return scores

    def score_ids(self, ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[:t])`` for ``t = 1 … len(ids)-1`` (the model's own scores)."""
        ids = [int(i) for i in ids]
        if len(ids) > self.model.config.max_seq_len:
            raise ValueError(f"JaxSampler.score_ids: {len(ids)} tokens > the context length "
                             f"{self.model.config.max_seq_len}")
        if len(ids) < 2:
            return []
        buf = np.zeros((1, _bucket(len(ids))), np.int32)
        buf[0, : len(ids)] = ids
        logp = np.asarray(_token_logprobs(self.model, jnp.asarray(buf)))[0]
        return [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]

    def embed(self, texts):
        """Mean-pooled final hidden states, ``[len(texts), d]`` float32.

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
            T = _bucket(max(map(len, chunk)))
            buf = np.zeros((_bucket(len(chunk), 1), T), np.int32)
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


def _token_logprobs(model: Llama, tokens: jax.Array) -> jax.Array:
    logits, _, _ = forward(model, tokens)
    return jax.nn.log_softmax(logits, axis=-1)


def _mean_hidden(model: Llama, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    _, _, h = forward(model, tokens, attention_mask=mask)
    w = mask.astype(jnp.float32)[..., None]
    return (h.astype(jnp.float32) * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
