"""The :class:`~llm_tools.sampler.Sampler` and :class:`~llm_tools.embedder.Embedder`
interfaces over an OpenAI-compatible HTTP server.

Works against ``python -m llm_tools.serve``, vLLM, llama.cpp's server and the OpenAI API (as
far as each supports a feature: token ids need ``return_token_ids``, scoring needs ``echo``).

- ``encode`` / ``decode`` use the server's ``/tokenize`` / ``/detokenize`` (vLLM's routes, which
  ``llm_tools.serve`` has too), for id-level work with ``generate_ids`` and ``logprobs_ids``.
- One request per call where the API allows: ``generate`` sends every prompt in one
  ``/v1/completions`` request (``prompt`` as a list of strings, or of token-id lists for
  ``generate_ids``), ``logprobs`` scores every pair in one ``echo`` request, ``embed`` sends
  every text in one ``/v1/embeddings`` request. ``chat`` sends one conversation (the API has no
  batch of conversations).
- A JAX key becomes the request's integer ``seed`` (:func:`seed_from_key`: the two 32-bit words
  of the threefry key, which ``llm_tools.serve`` turns back into the same key), so against our
  server ``OpenAISampler`` and :class:`~llm_tools.sampler.JaxSampler` with the same key return
  the same samples.
- Responses are cached on disk under ``sha256(url, model, endpoint, payload)`` (the payload
  holds the seed and every sampling parameter). Requests retry with exponential backoff on
  connection errors, timeouts, HTTP 429 and 5xx, at most ``max_concurrency`` run at once (per
  client, across threads), and failures name the URL.

Scores (``logprobs``): ``prompt + continuation`` is sent as one text with ``echo=True,
max_tokens=0``; the server tokenizes it once and returns every token's log-probability, its
id and its character offset. The continuation is the tokens from the one starting exactly at
``len(prompt)``; if a token starts before that and ends after it (``"Hello wor" + "ld"``, where
``" world"`` is one token) the pair has no token-level score and ``ValueError`` says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
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
    resample_ids_via_generate_ids,
    resample_via_generate,
)

__all__ = ["OpenAIEmbedder", "OpenAISampler", "ServerError", "seed_from_key"]


class ServerError(ConnectionError):
    """The server could not be reached or kept failing; the message names the URL."""


def seed_from_key(key: jax.Array) -> int:
    """The integer ``seed`` a JAX key becomes in a request.

    For a threefry key (JAX's default) this is its raw data, two 32-bit words ``(hi, lo)``, as
    one signed 64-bit integer (``hi·2³² + lo``, minus 2⁶⁴ if that is ≥ 2⁶³), which
    ``llm_tools.serve.key_from_seed`` turns back into the same key; so
    ``seed_from_key(jax.random.key(s)) == s`` for ``0 <= s < 2³²``. Other key types become
    ``randint(key, (), 0, 2³¹ - 1)``.

    Raises:
      TypeError: if ``key`` is not a single typed key.
    """
    if (not isinstance(key, jax.Array) or not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
            or key.shape != ()):
        raise TypeError(f"seed_from_key: key must be a single typed key from jax.random.key(seed), "
                        f"got {getattr(key, 'dtype', type(key).__name__)}"
                        f"{getattr(key, 'shape', '')}")
    if str(jax.random.key_impl(key)) != "threefry2x32":
        return int(jax.random.randint(key, (), 0, 2**31 - 1))
    hi, lo = (int(x) for x in np.asarray(jax.random.key_data(key), np.uint64))
    u = (hi << 32) | lo
    return u - (1 << 64) if u >= 1 << 63 else u


class _Transport:
    """POST with cache, retries, backoff, timeouts and a per-client concurrency limit."""

    def __init__(self, who, base_url, model, *, api_key, timeout, max_retries, backoff,
                 max_concurrency, cache_dir):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{who}: base_url must start with http:// or https://, got "
                             f"{base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"{who}: model must be a non-empty str, got {model!r}")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"{who}: timeout must be > 0, got {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"{who}: max_retries must be an int >= 0, got {max_retries!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
                or max_concurrency <= 0:
            raise ValueError(f"{who}: max_concurrency must be a positive int, got "
                             f"{max_concurrency!r}")
        if not isinstance(backoff, (int, float)) or not backoff >= 0:
            raise ValueError(f"{who}: backoff must be >= 0, got {backoff!r}")
        self.who = who
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_concurrency = max_concurrency
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.requests_sent = 0  # HTTP requests actually sent (cache hits excluded)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()

    def _cache_path(self, endpoint, payload):
        if self.cache_dir is None:
            return None
        blob = json.dumps([self.base_url, self.model, endpoint, payload], sort_keys=True)
        return self.cache_dir / (hashlib.sha256(blob.encode()).hexdigest() + ".json")

    def url(self, endpoint: str) -> str:
        return f"{self.base_url}/{endpoint}"

    def post(self, endpoint: str, payload: dict) -> dict:
        payload = {"model": self.model, **payload}
        cache = self._cache_path(endpoint, payload)
        if cache is not None and cache.is_file():
            return json.loads(cache.read_text())
        url = self.url(endpoint)
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
                with self._slots:
                    with self._lock:
                        self.requests_sent += 1
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                if e.code == 429 or e.code >= 500:
                    last = f"HTTP {e.code}: {detail}"
                    continue
                raise ValueError(f"{self.who}: {url} rejected the request (HTTP {e.code}): "
                                 f"{detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
                continue
            try:
                out = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"{self.who}: malformed response from {url}: not JSON "
                                 f"({raw[:200]!r})") from None
            if not isinstance(out, dict):
                raise ValueError(f"{self.who}: malformed response from {url}: expected a "
                                 f"JSON object, got {type(out).__name__}")
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(out))
                os.replace(tmp, cache)
            return out
        raise ServerError(f"{self.who}: {url} failed after {self.max_retries + 1} attempts "
                          f"(last error: {last})")


def _malformed(who, url, what):
    return ValueError(f"{who}: malformed response from {url}: {what}")


def _ids_arg(who, name, lists):
    """A non-empty list of non-empty lists of non-negative ints."""
    if isinstance(lists, (str, bytes)) or not isinstance(lists, (Sequence, np.ndarray)) \
            or len(lists) == 0:
        raise ValueError(f"{who}: {name} must be a non-empty list of token-id lists, got "
                         f"{lists!r:.60}")
    out = []
    for i, x in enumerate(lists):
        if isinstance(x, (str, bytes)) or not isinstance(x, (Sequence, np.ndarray)) \
                or len(x) == 0:
            raise ValueError(f"{who}: {name}[{i}] must be a non-empty list of token ids, got "
                             f"{x!r:.60}")
        arr = np.asarray(x)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0:
            raise ValueError(f"{who}: {name}[{i}] must hold non-negative int token ids, got "
                             f"{x!r:.60}")
        out.append([int(t) for t in arr])
    return out


class OpenAISampler:
    """:class:`~llm_tools.sampler.Sampler` backed by an OpenAI-compatible server.

    Args:
      base_url: e.g. ``http://127.0.0.1:8000/v1``.
      model: the model name to request.
      api_key: sent as a Bearer token if given.
      timeout: seconds per request.
      max_retries: retries after the first failure (so ``max_retries + 1`` attempts).
      backoff: first retry delay in seconds, doubled each retry.
      max_concurrency: requests in flight at once from this client (across threads).
      cache_dir: directory of the on-disk response cache (None: no cache).
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout: float = 600.0, max_retries: int = 3, backoff: float = 0.5,
                 max_concurrency: int = 4, cache_dir: str | os.PathLike | None = None):
        self._t = _Transport("OpenAISampler", base_url, model, api_key=api_key, timeout=timeout,
                             max_retries=max_retries, backoff=backoff,
                             max_concurrency=max_concurrency, cache_dir=cache_dir)
        self.name = model
        self._tok_transport = None

    @property
    def base_url(self) -> str:
        return self._t.base_url

    @property
    def model(self) -> str:
        return self._t.model

    @property
    def requests_sent(self) -> int:
        """HTTP requests actually sent (cache hits excluded)."""
        return self._t.requests_sent

    # -- token ids ----------------------------------------------------------------------------
    def _root_post(self, path, payload):
        """POST to ``path`` beside ``/v1`` (vLLM's ``/tokenize`` and ``/detokenize``)."""
        root = self._t.base_url[:-3] if self._t.base_url.endswith("/v1") else self._t.base_url
        t = self._tok_transport
        if t is None:
            t = self._tok_transport = _Transport(
                "OpenAISampler", root, self._t.model, api_key=self._t.api_key,
                timeout=self._t.timeout, max_retries=self._t.max_retries,
                backoff=self._t.backoff, max_concurrency=self._t.max_concurrency,
                cache_dir=self._t.cache_dir)
        return t.post(path, payload), t.url(path)

    def encode(self, text: str) -> list[int]:
        """The token ids the server makes of ``text`` (``POST /tokenize``, as vLLM has it)."""
        if not isinstance(text, str):
            raise TypeError(f"OpenAISampler.encode: text must be str, got {type(text).__name__}")
        out, url = self._root_post("tokenize", {"prompt": text})
        ids = out.get("tokens")
        if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
            raise _malformed("OpenAISampler", url, f"expected token ids, got {ids!r:.200}")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids (``POST /detokenize``, as vLLM has it)."""
        ids = _ids_arg("OpenAISampler.decode", "ids", [ids])[0] if len(ids) else []
        out, url = self._root_post("detokenize", {"tokens": ids})
        text = out.get("prompt")
        if not isinstance(text, str):
            raise _malformed("OpenAISampler", url, f"expected text, got {text!r:.200}")
        return text

    # -- response parsing ---------------------------------------------------------------------
    def _choices(self, out, url, n):
        choices = out.get("choices")
        if not isinstance(choices, list) or len(choices) != n:
            raise _malformed("OpenAISampler", url, f"expected {n} choices, got "
                             f"{choices!r:.200}")
        return sorted(choices, key=lambda c: c.get("index", 0))

    def _to_completion(self, choice, text, url):
        if not isinstance(text, str):
            raise _malformed("OpenAISampler", url, f"choice text is {text!r:.100}")
        reason = choice.get("finish_reason") or "length"
        ids = tuple(int(t) for t in choice.get("token_ids") or ())
        lp = choice.get("logprobs") or {}
        try:
            if "token_logprobs" in lp:
                lps = tuple(float(x) for x in lp["token_logprobs"])
            elif "content" in lp:
                lps = tuple(float(x["logprob"]) for x in lp["content"])
            else:
                lps = ()
        except (TypeError, KeyError, ValueError):
            raise _malformed("OpenAISampler", url, f"bad logprobs {lp!r:.200}") from None
        if ids and lps and len(ids) != len(lps):
            raise _malformed("OpenAISampler", url, f"{len(ids)} token ids but {len(lps)} "
                             "logprobs")
        return Completion(text, ids, lps, "stop" if reason == "stop" else "length",
                          bool(choice.get("ends_with_stop_token", False)))

    # -- generation ---------------------------------------------------------------------------
    def _complete(self, who, prompt, count, *, max_new_tokens, temperature, top_p, top_k, stop,
                  n, key):
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        payload = dict(prompt=prompt, max_tokens=int(max_new_tokens),
                       temperature=float(temperature), top_p=float(top_p), n=int(n),
                       seed=seed_from_key(key), logprobs=0, return_token_ids=True)
        if stop:
            payload["stop"] = list(stop)
        if top_k:
            payload["top_k"] = int(top_k)
        out = self._t.post("completions", payload)
        url = self._t.url("completions")
        choices = self._choices(out, url, count * n)
        comps = [self._to_completion(c, c.get("text"), url) for c in choices]
        return [comps[i * n:(i + 1) * n] for i in range(count)]

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), n=1, key):
        """``n`` completions per prompt, all prompts in one request seeded from ``key``."""
        who = "OpenAISampler.generate"
        prompts = check_texts(who, "prompts", prompts)
        return self._complete(who, prompts, len(prompts), max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, top_k=top_k, stop=stop,
                              n=n, key=key)

    def generate_ids(self, prompt_ids, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                     stop=(), n=1, key):
        """As :meth:`generate`, each prompt sent as token ids (the API's token-array prompt)."""
        who = "OpenAISampler.generate_ids"
        ids = _ids_arg(who, "prompt_ids", prompt_ids)
        return self._complete(who, ids, len(ids), max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, top_k=top_k, stop=stop,
                              n=n, key=key)

    def resample(self, prefix, n, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                 stop=(), key):
        """``n`` continuations of one exact text prefix."""
        return resample_via_generate(self, "OpenAISampler.resample", prefix, n,
                                     max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_p=top_p, top_k=top_k, stop=stop, key=key)

    def resample_ids(self, prefix_ids, n, *, max_new_tokens, temperature=1.0, top_p=1.0,
                     top_k=0, stop=(), key):
        """``n`` continuations of one token-id prefix."""
        return resample_ids_via_generate_ids(
            self, "OpenAISampler.resample_ids", prefix_ids, n, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, top_k=top_k, stop=stop, key=key)

    # -- scoring ------------------------------------------------------------------------------
    def _echo(self, prompts):
        out = self._t.post("completions", dict(prompt=prompts, max_tokens=0, echo=True,
                                               logprobs=0, temperature=0.0, seed=0,
                                               return_token_ids=True))
        url = self._t.url("completions")
        parsed = []
        for c in self._choices(out, url, len(prompts)):
            lp, ids = c.get("logprobs"), c.get("prompt_token_ids")
            if ids is None:
                raise ValueError(f"OpenAISampler: {url} returned no prompt_token_ids; scoring "
                                 "needs a server that honours return_token_ids with echo "
                                 "(llm_tools.serve, vLLM)")
            try:
                offsets, lps = list(lp["text_offset"]), list(lp["token_logprobs"])
                if not len(offsets) == len(lps) == len(ids):
                    raise KeyError("lengths")
            except (TypeError, KeyError):
                raise _malformed("OpenAISampler", url, "echo logprobs need text_offset and "
                                 f"token_logprobs, one per prompt token; got {lp!r:.200}"
                                 ) from None
            parsed.append(([int(t) for t in ids], offsets, lps))
        return parsed

    def logprobs(self, prompts, continuations):
        """Scores of each continuation given its prompt (see the module docstring).

        Raises:
          ValueError: empty lists, different lengths, an empty prompt or continuation, or a
            prompt/continuation boundary inside a token.
        """
        who = "OpenAISampler.logprobs"
        prompts = check_texts(who, "prompts", prompts)
        continuations = check_texts(who, "continuations", continuations,
                                    allow_empty_strings=False)
        if len(prompts) != len(continuations):
            raise ValueError(f"{who}: prompts has {len(prompts)} entries but continuations has "
                             f"{len(continuations)}")
        joined = [p + c for p, c in zip(prompts, continuations, strict=True)]
        scores = []
        for i, (ids, offsets, lps) in enumerate(self._echo(joined)):
            cut = len(prompts[i])
            ends = offsets[1:] + [len(joined[i])]
            inside = [t for t in range(len(ids)) if offsets[t] < cut < ends[t]]
            if inside:
                t = inside[0]
                raise ValueError(
                    f"{who}: pair {i}: the prompt/continuation boundary (character {cut}) falls "
                    f"inside token {ids[t]} ({joined[i][offsets[t]:ends[t]]!r}, characters "
                    f"{offsets[t]}:{ends[t]}); move the boundary to a token edge or score token "
                    "ids with logprobs_ids")
            k = next((t for t in range(len(ids)) if offsets[t] >= cut), None)
            if k is None:
                raise _malformed(who, self._t.url("completions"), f"pair {i}: no token starts "
                                 f"at or after character {cut}")
            if k == 0 or lps[k] is None:
                raise ValueError(f"{who}: prompt {i} is empty (it encodes to no tokens)")
            picked = [float(x) for x in lps[k:]]
            scores.append(Score(tuple(ids[k:]), tuple(picked), float(np.sum(picked))))
        return scores

    def logprobs_ids(self, prompt_ids, continuation_ids):
        """Scores of each token-id continuation given its token-id prompt (one request).

        Raises:
          ValueError: empty or mismatched lists, or ids the server rejects.
        """
        who = "OpenAISampler.logprobs_ids"
        prompts = _ids_arg(who, "prompt_ids", prompt_ids)
        conts = _ids_arg(who, "continuation_ids", continuation_ids)
        if len(prompts) != len(conts):
            raise ValueError(f"{who}: prompt_ids has {len(prompts)} entries but "
                             f"continuation_ids has {len(conts)}")
        url = self._t.url("completions")
        scores = []
        for (ids, _, lps), p, c in zip(self._echo([a + b for a, b in zip(prompts, conts,
                                                                        strict=True)]),
                                       prompts, conts, strict=True):
            if ids != p + c:
                raise _malformed(who, url, "prompt_token_ids differ from the ids sent")
            picked = [float(x) for x in lps[len(p):]]
            scores.append(Score(tuple(c), tuple(picked), float(np.sum(picked))))
        return scores

    # -- chat ---------------------------------------------------------------------------------
    def chat(self, messages: Sequence[Mapping[str, str]], *, max_new_tokens, temperature=1.0,
             top_p=1.0, top_k=0, stop=(), n=1, key):
        """``n`` replies to one conversation; the server applies its chat template."""
        from llm_tools.tokenizer import _check_messages

        who = "OpenAISampler.chat"
        _check_messages(messages, who)
        check_sampling_args(who, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, n=n, stop=stop, key=key)
        payload = dict(messages=[dict(m) for m in messages], max_tokens=int(max_new_tokens),
                       temperature=float(temperature), top_p=float(top_p), n=int(n),
                       seed=seed_from_key(key), logprobs=True, return_token_ids=True)
        if stop:
            payload["stop"] = list(stop)
        if top_k:
            payload["top_k"] = int(top_k)
        out = self._t.post("chat/completions", payload)
        url = self._t.url("chat/completions")
        comps = []
        for c in self._choices(out, url, n):
            msg = c.get("message")
            if not isinstance(msg, dict):
                raise _malformed("OpenAISampler", url, f"choice has no message ({c!r:.200})")
            comps.append(self._to_completion(c, msg.get("content"), url))
        return comps


class OpenAIEmbedder:
    """:class:`~llm_tools.embedder.Embedder` over ``/v1/embeddings``.

    Rows are L2-normalized on arrival (a no-op for servers that already normalize, as ours and
    OpenAI's do), so ``cosine = a @ b`` holds whatever the server.

    Args:
      base_url: e.g. ``http://127.0.0.1:8000/v1``.
      model: the embedding model's name (``all-MiniLM-L6-v2`` on ``llm_tools.serve``).
      dim: the width if known; otherwise learnt from the first response (or, if ``dim`` is read
        first, from embedding one short text).
      api_key, timeout, max_retries, backoff, max_concurrency, cache_dir: as
        :class:`OpenAISampler`.
    """

    def __init__(self, base_url: str, model: str, *, dim: int | None = None,
                 api_key: str | None = None, timeout: float = 120.0, max_retries: int = 3,
                 backoff: float = 0.5, max_concurrency: int = 4,
                 cache_dir: str | os.PathLike | None = None):
        self._t = _Transport("OpenAIEmbedder", base_url, model, api_key=api_key,
                             timeout=timeout, max_retries=max_retries, backoff=backoff,
                             max_concurrency=max_concurrency, cache_dir=cache_dir)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
            raise ValueError(f"OpenAIEmbedder: dim must be a positive int or None, got {dim!r}")
        self.name = model
        self._dim = dim

    @property
    def requests_sent(self) -> int:
        return self._t.requests_sent

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32 unit rows, all texts in one request.

        Raises:
          TypeError / ValueError: texts not a non-empty list of str; a malformed response.
        """
        who = "OpenAIEmbedder.embed"
        texts = check_texts(who, "texts", texts)
        url = self._t.url("embeddings")
        out = self._t.post("embeddings", dict(input=texts, encoding_format="float"))
        data = out.get("data")
        if not isinstance(data, list) or len(data) != len(texts):
            raise _malformed("OpenAIEmbedder", url, f"expected {len(texts)} embeddings, got "
                             f"{data!r:.200}")
        try:
            data = sorted(data, key=lambda d: d["index"])
            vecs = np.asarray([d["embedding"] for d in data], np.float32)
        except (KeyError, TypeError, ValueError):
            raise _malformed("OpenAIEmbedder", url, "bad embedding entries") from None
        if vecs.ndim != 2 or not np.all(np.isfinite(vecs)):
            raise _malformed("OpenAIEmbedder", url, f"embeddings of shape {vecs.shape} with "
                             "non-finite values or ragged rows")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise _malformed("OpenAIEmbedder", url, "a zero embedding cannot be normalized")
        if self._dim is not None and vecs.shape[1] != self._dim:
            raise _malformed("OpenAIEmbedder", url, f"embeddings have {vecs.shape[1]} "
                             f"dimensions, expected {self._dim}")
        self._dim = int(vecs.shape[1])
        return (vecs / norms).astype(np.float32)
