"""The :class:`~llm_tools.sampler.Sampler` interface over an OpenAI-compatible HTTP server.

Works against vLLM, llama.cpp's server and ``python -m llm_tools.serve``. A JAX key becomes
the request's integer ``seed`` (``seed = randint(key, 0, 2³¹-1)``), so the same key sends the
same request; responses are cached on disk under ``sha256(url, model, endpoint, payload)``
(the payload includes the seed and every sampling parameter). Requests retry with exponential
backoff on connection errors, timeouts, HTTP 429 and 5xx, run at most ``max_concurrency`` at
a time, and fail with an error naming the URL.

Scores (``logprobs``) use the completions endpoint with ``echo=True``: the server returns the
log-probability of every prompt token, and the continuation's tokens are those whose
``text_offset`` is at or past the end of the prompt (the joined text is tokenized as a whole).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from llm_tools.sampler import (
    Completion,
    Score,
    check_sampling_args,
    check_texts,
    resample_via_generate,
)

__all__ = ["OpenAISampler", "ServerError", "seed_from_key"]


class ServerError(ConnectionError):
    """The server could not be reached or kept failing; the message names the URL."""


def seed_from_key(key: jax.Array) -> int:
    """The integer seed a JAX key becomes in a request: ``randint(key, (), 0, 2**31 - 1)``."""
    if (not isinstance(key, jax.Array) or not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
            or key.shape != ()):
        raise TypeError(f"seed_from_key: key must be a single typed key from jax.random.key(seed), "
                        f"got {getattr(key, 'dtype', type(key).__name__)}"
                        f"{getattr(key, 'shape', '')}")
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


class OpenAISampler:
    """:class:`~llm_tools.sampler.Sampler` backed by an OpenAI-compatible server.

    Args:
      base_url: e.g. ``http://127.0.0.1:8000/v1``.
      model: the model name to request.
      api_key: sent as a Bearer token if given.
      timeout: seconds per request.
      max_retries: retries after the first failure (so ``max_retries + 1`` attempts).
      backoff: first retry delay in seconds, doubled each retry.
      max_concurrency: requests in flight at once.
      cache_dir: directory of the on-disk response cache (None: no cache).
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5,
                 max_concurrency: int = 4, cache_dir: str | os.PathLike | None = None):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"OpenAISampler: base_url must start with http:// or https://, got "
                             f"{base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"OpenAISampler: model must be a non-empty str, got {model!r}")
        if not timeout > 0:
            raise ValueError(f"OpenAISampler: timeout must be > 0, got {timeout!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"OpenAISampler: max_retries must be an int >= 0, got "
                             f"{max_retries!r}")
        if not isinstance(max_concurrency, int) or max_concurrency <= 0:
            raise ValueError(f"OpenAISampler: max_concurrency must be a positive int, got "
                             f"{max_concurrency!r}")
        if not backoff >= 0:
            raise ValueError(f"OpenAISampler: backoff must be >= 0, got {backoff!r}")
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_concurrency = max_concurrency
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.requests_sent = 0  # HTTP requests actually sent (cache hits excluded)

    # -- transport --------------------------------------------------------------------------
    def _cache_path(self, endpoint, payload):
        if self.cache_dir is None:
            return None
        blob = json.dumps([self.base_url, self.model, endpoint, payload], sort_keys=True)
        return self.cache_dir / (hashlib.sha256(blob.encode()).hexdigest() + ".json")

    def _post(self, endpoint: str, payload: dict) -> dict:
        payload = {"model": self.model, **payload}
        cache = self._cache_path(endpoint, payload)
        if cache is not None and cache.is_file():
            return json.loads(cache.read_text())
        url = f"{self.base_url}/{endpoint}"
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                self.requests_sent += 1
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code == 429 or e.code >= 500:
                    last = f"HTTP {e.code}: {detail}"
                    continue
                raise ValueError(f"OpenAISampler: {url} rejected the request (HTTP {e.code}): "
                                 f"{detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
                continue
            try:
                out = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"OpenAISampler: malformed response from {url}: not JSON "
                                 f"({raw[:200]!r})") from None
            if not isinstance(out, dict):
                raise ValueError(f"OpenAISampler: malformed response from {url}: expected a "
                                 f"JSON object, got {type(out).__name__}")
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(out))
                os.replace(tmp, cache)
            return out
        raise ServerError(f"OpenAISampler: {url} failed after {self.max_retries + 1} attempts "
                          f"(last error: {last})")

    def _map(self, fn, items):
        if len(items) == 1:
            return [fn(items[0])]
        with concurrent.futures.ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(fn, items))

    @staticmethod
    def _choices(out, url, n):
        choices = out.get("choices")
        if not isinstance(choices, list) or len(choices) != n:
            raise ValueError(f"OpenAISampler: malformed response from {url}: expected {n} "
                             f"choices, got {choices!r:.200}")
        return sorted(choices, key=lambda c: c.get("index", 0))

    @staticmethod
    def _to_completion(choice, text, url):
        if not isinstance(text, str):
            raise ValueError(f"OpenAISampler: malformed response from {url}: choice text is "
                             f"{text!r:.100}")
        reason = choice.get("finish_reason") or "length"
        ids = tuple(int(t) for t in choice.get("token_ids") or ())
        lp = choice.get("logprobs") or {}
        if "token_logprobs" in lp:
            lps = tuple(float(x) for x in lp["token_logprobs"])
        elif "content" in lp:
            lps = tuple(float(x["logprob"]) for x in lp["content"])
        else:
            lps = ()
        return Completion(text, ids, lps, "stop" if reason == "stop" else "length")

    # -- the interface ----------------------------------------------------------------------
    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), n=1, key):
        """``n`` completions per prompt, one request per prompt (seeded from ``key``)."""
        who = "OpenAISampler.generate"
        prompts = check_texts(who, "prompts", prompts)
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        keys = jax.random.split(key, len(prompts))
        url = f"{self.base_url}/completions"

        def one(i):
            payload = dict(prompt=prompts[i], max_tokens=int(max_new_tokens),
                           temperature=float(temperature), top_p=float(top_p), n=int(n),
                           stop=list(stop) or None, seed=seed_from_key(keys[i]), logprobs=0,
                           return_token_ids=True)
            if top_k:
                payload["top_k"] = int(top_k)
            out = self._post("completions", payload)
            return [self._to_completion(c, c.get("text"), url)
                    for c in self._choices(out, url, n)]

        return self._map(one, list(range(len(prompts))))

    def resample(self, prefix, n, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), key):
        """``n`` continuations of one exact text prefix."""
        return resample_via_generate(self, "OpenAISampler.resample", prefix, n,
                                     max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_p=top_p, top_k=top_k, stop=stop, key=key)

    def logprobs(self, prompts, continuations):
        """Scores via ``echo=True`` prompt log-probabilities (see the module docstring)."""
        who = "OpenAISampler.logprobs"
        prompts = check_texts(who, "prompts", prompts)
        continuations = check_texts(who, "continuations", continuations,
                                    allow_empty_strings=False)
        if len(prompts) != len(continuations):
            raise ValueError(f"{who}: prompts has {len(prompts)} entries but continuations has "
                             f"{len(continuations)}")
        url = f"{self.base_url}/completions"

        def one(i):
            out = self._post("completions", dict(
                prompt=prompts[i] + continuations[i], max_tokens=0, echo=True, logprobs=0,
                temperature=0.0, seed=0))
            choice = self._choices(out, url, 1)[0]
            lp = choice.get("logprobs")
            try:
                offsets, lps = lp["text_offset"], lp["token_logprobs"]
                if len(offsets) != len(lps):
                    raise KeyError("lengths")
            except (TypeError, KeyError):
                raise ValueError(f"OpenAISampler: malformed response from {url}: echo logprobs "
                                 f"need text_offset and token_logprobs, got {lp!r:.200}") from None
            start = len(prompts[i])
            picked = [float(x) for o, x in zip(offsets, lps, strict=True) if o >= start
                      and x is not None]
            return Score((), tuple(picked), float(np.sum(picked)))

        return self._map(one, list(range(len(prompts))))

    def embed(self, texts):
        """``/v1/embeddings`` vectors, ``[len(texts), d]``."""
        texts = check_texts("OpenAISampler.embed", "texts", texts)
        url = f"{self.base_url}/embeddings"
        out = self._post("embeddings", dict(input=texts))
        data = out.get("data")
        if not isinstance(data, list) or len(data) != len(texts):
            raise ValueError(f"OpenAISampler: malformed response from {url}: expected "
                             f"{len(texts)} embeddings, got {data!r:.200}")
        data = sorted(data, key=lambda d: d.get("index", 0))
        try:
            return np.asarray([d["embedding"] for d in data], np.float32)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"OpenAISampler: malformed response from {url}: bad embedding "
                             "entries") from None

    def chat(self, messages: Sequence[Mapping[str, str]], *, max_new_tokens, temperature=1.0,
             top_p=1.0, top_k=0, stop=(), n=1, key):
        """``n`` replies to one conversation; the server applies its chat template."""
        from llm_tools.tokenizer import _check_messages

        who = "OpenAISampler.chat"
        _check_messages(messages, who)
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        url = f"{self.base_url}/chat/completions"
        payload = dict(messages=[dict(m) for m in messages], max_tokens=int(max_new_tokens),
                       temperature=float(temperature), top_p=float(top_p), n=int(n),
                       stop=list(stop) or None, seed=seed_from_key(key), logprobs=True,
                       return_token_ids=True)
        if top_k:
            payload["top_k"] = int(top_k)
        out = self._post("chat/completions", payload)
        comps = []
        for c in self._choices(out, url, n):
            msg = c.get("message")
            if not isinstance(msg, dict):
                raise ValueError(f"OpenAISampler: malformed response from {url}: choice has no "
                                 f"message ({c!r:.200})")
            comps.append(self._to_completion(c, msg.get("content"), url))
        return comps
