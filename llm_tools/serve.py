"""Serves one of our JAX models through an OpenAI-compatible HTTP API on localhost.

    python -m llm_tools.serve --model smollm2 --port 8000          # SmolLM2-135M-Instruct
    python -m llm_tools.serve --model tiny --embedder none --port 0  # random tiny byte-level model
    python -m llm_tools.serve --model ckpt:/path/to/workdir         # a small LM we trained

Endpoints: ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/completions``,
``POST /v1/chat/completions``, ``POST /v1/embeddings`` (served by the :class:`Embedder`,
all-MiniLM-L6-v2 by default), ``POST /tokenize`` and ``POST /detokenize`` (vLLM's shapes) and
``GET /health``. The first line printed is
``listening on http://HOST:PORT``.

Requests (the OpenAI shapes; what differs is said here):

- ``model`` must name a served model (``GET /v1/models``); otherwise HTTP 404 with
  ``{"error": {"type": "not_found_error", "code": "model_not_found", ...}}``.
- Unknown parameters are rejected with HTTP 400 naming them. Accepted but inert: ``user``;
  ``presence_penalty`` / ``frequency_penalty`` only as 0, ``logit_bias`` only empty,
  ``best_of`` only equal to ``n``, ``suffix`` only empty, ``dimensions`` only the model's.
  Extensions (as vLLM has them): ``top_k`` (0 or -1 = off) and ``return_token_ids``.
- ``prompt`` (completions) is a string, a list of strings, a list of token ids or a list of
  token-id lists, as the OpenAI API allows; token ids are used as given (no BOS added).
- ``seed``: a 64-bit integer whose two 32-bit halves are the raw data of the threefry key, so
  seed ``s < 2³²`` is ``jax.random.key(s)`` and :func:`~llm_tools.client.seed_from_key` sends a
  JAX key exactly. Sample ``j`` of prompt ``i`` is drawn from ``fold_in(fold_in(key, i), j)``,
  the same as :class:`~llm_tools.sampler.JaxSampler` with that key. A request without ``seed``
  gets fresh randomness.
- ``max_tokens``: completions default to 16 (as OpenAI); chat defaults to the rest of the
  context. ``max_tokens=0`` with ``echo`` scores the prompt without generating.
- ``n`` above ``--max-n`` is rejected (400); so is a prompt that does not fit the context.
- ``logprobs`` (completions: an int, the number of alternatives; chat: ``true`` plus
  ``top_logprobs``) return per token the log-probability the sampler reports (under the
  sampling temperature, before top-k/top-p; see :class:`~llm_tools.sampler.Completion`) and
  the top alternatives under the same distribution. Echoed prompt tokens are scored at
  temperature 1 (the first has ``null``). A completion that ended on a stop/EOS token keeps it
  in ``token_ids`` and ``logprobs`` (its text is not in ``text``); the choice says so in the
  extension field ``ends_with_stop_token``. ``text_offset`` counts characters of the returned
  ``text`` (prompt included when echoed).
- ``usage``: ``prompt_tokens`` (once per prompt), ``completion_tokens`` (every choice, stop
  token included), ``total_tokens``; in a stream, a last chunk with ``usage`` when
  ``stream_options.include_usage`` is true.
- ``stream: true``: server-sent events, ``data: {chunk}`` lines ending in ``data: [DONE]``, one
  chunk per token (chat first sends the ``role`` delta at once). The decode loop is one compiled
  ``lax.while_loop`` per batch, so token chunks are sent when the batch finishes.
- Errors: ``{"error": {"message", "type", "param", "code"}}`` with ``type`` matching the
  status: 400 ``invalid_request_error``, 404 ``not_found_error``, 413
  ``invalid_request_error``, 500 ``server_error``, 503 ``service_unavailable_error`` (the
  queue is full; retry).

Batching: request threads validate, tokenize and queue their rows (prompt ids, key, budget,
temperature, top-p, top-k); one worker takes a burst of requests (each arriving less than
``--batch-window-ms`` after the previous one, for at most ``--max-wait-ms`` after the first, up
to ``--max-rows`` rows) and samples all of them in one call of
:func:`~llm_tools.engine.generate_tokens` on the sampler's :class:`~llm_tools.engine.Engine`
(each row with its own key and parameters, so a batched request returns what it returns
alone; identical prompts and ``n > 1`` are prefilled once). The queue holds at most
``--max-queue`` requests; more get 503. Nothing holds a lock around generation; scoring,
top-logprob passes and embeddings run in the request threads.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import dataclasses
import functools
import inspect
import json
import math
import queue
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_tools.engine import generate_tokens
from llm_tools.model import forward
from llm_tools.sampler import (
    Completion,
    JaxSampler,
    encode_with_offsets,
    make_completion,
    sample_key,
)

__all__ = ["APIError", "OpenAIServer", "ServerConfig", "build_sampler", "key_from_seed",
           "main", "make_server"]

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
               503: "service_unavailable_error"}

COMPLETION_PARAMS = frozenset({
    "model", "prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options",
    "logprobs", "echo", "stop", "seed", "user", "suffix", "presence_penalty",
    "frequency_penalty", "best_of", "logit_bias", "top_k", "return_token_ids"})
CHAT_PARAMS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
    "stream", "stream_options", "logprobs", "top_logprobs", "stop", "seed", "user",
    "presence_penalty", "frequency_penalty", "logit_bias", "top_k", "return_token_ids"})
EMBEDDING_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
TOKENIZE_PARAMS = frozenset({"model", "prompt", "add_special_tokens"})
DETOKENIZE_PARAMS = frozenset({"model", "tokens"})


class APIError(Exception):
    """An error answered in OpenAI's shape, with the ``type`` that matches ``status``."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status,
                                                                          "server_error"),
                          "param": self.param, "code": self.code}}


def _bad(message, param=None, code="invalid_value"):
    return APIError(400, message, code=code, param=param)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Limits of one server.

    Attributes:
      max_n: largest ``n`` accepted.
      max_rows: rows (prompt × sample) sampled together in one decode loop.
      batch_window_s: a batch stays open while requests keep arriving less than this apart...
      max_wait_s: ...but no longer than this after its first request.
      max_queue: requests waiting at most; more are answered 503.
      max_logprobs: largest ``logprobs`` / ``top_logprobs``.
      max_body_bytes: largest request body.
    """

    max_n: int = 16
    max_rows: int = 32
    batch_window_s: float = 0.02
    max_wait_s: float = 0.25
    max_queue: int = 64
    max_logprobs: int = 20
    max_body_bytes: int = 16 << 20

    def __post_init__(self):
        for f in ("max_n", "max_rows", "max_queue", "max_logprobs", "max_body_bytes"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"ServerConfig: {f} must be a positive int, got {v!r}")
        for f in ("batch_window_s", "max_wait_s"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"ServerConfig: {f} must be a float >= 0, got {v!r}")


def key_from_seed(seed: int) -> jax.Array:
    """The threefry key whose raw data are the two 32-bit halves of ``seed mod 2⁶⁴``.

    For ``0 <= seed < 2³²`` this is ``jax.random.key(seed)``; it inverts
    :func:`~llm_tools.client.seed_from_key`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"key_from_seed: seed must be an int, got {type(seed).__name__}")
    u = int(seed) % (1 << 64)
    data = jnp.asarray([u >> 32, u & 0xFFFFFFFF], jnp.uint32)
    return jax.random.wrap_key_data(data, impl="threefry2x32")


# -- request parsing ----------------------------------------------------------------------------

def _check_params(body: Mapping, allowed: frozenset) -> None:
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise _bad(f"Unrecognized request argument(s) supplied: {', '.join(unknown)}",
                   param=unknown[0], code="unknown_parameter")


def _get(body, name, kind, default=None, *, lo=None, hi=None, required=False):
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(f"Missing required parameter: {name!r}", param=name,
                       code="missing_required_parameter")
        return default
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "num": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
          and math.isfinite(v),
          "bool": lambda v: isinstance(v, bool),
          "str": lambda v: isinstance(v, str),
          "dict": lambda v: isinstance(v, dict)}[kind]
    if not ok(value):
        raise _bad(f"Invalid type for {name!r}: expected {kind}, got {type(value).__name__} "
                   f"({json.dumps(value)[:60]})", param=name, code="invalid_type")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise _bad(f"Invalid value for {name!r}: {value} is outside [{lo}, {hi}]", param=name)
    return value


def _neutral(body, name, ok, expected):
    if name in body and body[name] is not None and not ok(body[name]):
        raise _bad(f"Unsupported value for {name!r}: only {expected} is supported, got "
                   f"{json.dumps(body[name])[:60]}", param=name, code="unsupported_value")


@dataclasses.dataclass
class _Sampling:
    max_new: int | None
    temperature: float
    top_p: float
    top_k: int
    n: int
    stop: list[str]
    key: jax.Array
    stream: bool
    include_usage: bool
    return_token_ids: bool


def _sampling(body, config: ServerConfig) -> _Sampling:
    n = _get(body, "n", "int", 1, lo=1)
    if n > config.max_n:
        raise _bad(f"Invalid value for 'n': {n} is above this server's limit of "
                   f"{config.max_n} (--max-n)", param="n")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or any(not isinstance(s, str) or not s for s in stop):
        raise _bad("Invalid value for 'stop': expected a non-empty string or a list of them",
                   param="stop")
    if len(stop) > 4:
        raise _bad(f"Invalid value for 'stop': at most 4 sequences, got {len(stop)}",
                   param="stop")
    for name in ("presence_penalty", "frequency_penalty"):
        _neutral(body, name, lambda v: v == 0, "0")
    _neutral(body, "logit_bias", lambda v: v == {}, "{}")
    seed = _get(body, "seed", "int", None, lo=-(1 << 63), hi=(1 << 64) - 1)
    if seed is None:
        seed = secrets.randbits(63)
    top_k = _get(body, "top_k", "int", 0, lo=-1)
    stream = _get(body, "stream", "bool", False)
    opts = _get(body, "stream_options", "dict", None)
    if opts is not None and not stream:
        raise _bad("'stream_options' is only allowed when 'stream' is true",
                   param="stream_options")
    opts = opts or {}
    unknown = sorted(set(opts) - {"include_usage"})
    if unknown:
        raise _bad(f"Unrecognized stream_options: {', '.join(unknown)}",
                   param="stream_options", code="unknown_parameter")
    include_usage = _get(opts, "include_usage", "bool", False)
    top_p = float(_get(body, "top_p", "num", 1.0, lo=0, hi=1))
    if top_p <= 0:  # a bad row must never reach (and fail) a shared batch
        raise _bad("Invalid value for 'top_p': must lie in (0, 1], got 0", param="top_p")
    return _Sampling(max_new=None, temperature=float(_get(body, "temperature", "num", 1.0, lo=0)),
                     top_p=top_p, top_k=max(0, top_k),
                     n=n, stop=stop, key=key_from_seed(seed), stream=stream,
                     include_usage=include_usage,
                     return_token_ids=_get(body, "return_token_ids", "bool", False))


# -- the batching worker --------------------------------------------------------------------

@dataclasses.dataclass
class _Row:
    prompt: list[int]
    key: jax.Array
    max_new: int
    temperature: float
    top_p: float
    top_k: int


class _Batcher:
    """One worker thread sampling the rows of requests that arrive together."""

    def __init__(self, sampler: JaxSampler, config: ServerConfig):
        self.sampler, self.config = sampler, config
        self.queue: queue.Queue = queue.Queue(maxsize=config.max_queue)
        self.batches = 0  # decode loops run (for tests and the benchmark)
        self._thread = threading.Thread(target=self._loop, name="llm_tools-batcher", daemon=True)
        self._thread.start()

    def submit(self, rows: list[_Row]) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            self.queue.put_nowait((rows, fut))
        except queue.Full:
            raise APIError(503, f"The server is overloaded: {self.config.max_queue} requests "
                                "are already waiting (--max-queue); retry later",
                           code="server_is_overloaded") from None
        return fut

    def _loop(self):
        while True:
            jobs = [self.queue.get()]
            nrows = len(jobs[0][0])
            cap = time.monotonic() + self.config.max_wait_s
            while nrows < self.config.max_rows:
                left = min(self.config.batch_window_s, cap - time.monotonic())
                try:
                    job = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                nrows += len(job[0])
            self._run(jobs)

    def _run(self, jobs):
        rows = [r for rs, _ in jobs for r in rs]
        try:
            results = []
            for s in range(0, len(rows), self.config.max_rows):
                chunk = rows[s:s + self.config.max_rows]
                tok = self.sampler.tokenizer
                out = generate_tokens(  # the sampler's engine: shared prefixes, its weights
                    self.sampler.engine, [r.prompt for r in chunk],
                    jnp.stack([r.key for r in chunk]),
                    max_new_tokens=[r.max_new for r in chunk],
                    temperature=[r.temperature for r in chunk], top_p=[r.top_p for r in chunk],
                    top_k=[r.top_k for r in chunk], stop_ids=tok.stop_ids,
                    pad_id=tok.pad_id or 0)
                self.batches += 1
                results += [(out.tokens[b, :out.lengths[b]], out.logprobs[b, :out.lengths[b]],
                             bool(out.stopped[b])) for b in range(len(chunk))]
        except Exception as e:  # noqa: BLE001 - every waiting request gets the error
            for _, fut in jobs:
                fut.set_exception(e)
            return
        i = 0
        for rs, fut in jobs:
            fut.set_result(results[i:i + len(rs)])
            i += len(rs)


# -- token details (top logprobs, echoed prompt scores) ---------------------------------------

def _bucket(n: int, minimum: int = 16) -> int:
    return max(minimum, 1 << (max(n, 1) - 1).bit_length())


@functools.partial(jax.jit, static_argnums=(0, 5))
def _details_jit(graphdef, state, tokens, mask, inv_temp, k):
    model = nnx.merge(graphdef, state)
    logits, _, _ = forward(model, tokens, attention_mask=mask)
    lp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32) * inv_temp[:, None, None], -1)
    picked = jnp.take_along_axis(lp, tokens[:, 1:, None], axis=-1)[..., 0]
    if k == 0:
        return picked, None, None
    top_v, top_i = jax.lax.top_k(lp, k)
    return picked, top_v, top_i


def _token_details(sampler: JaxSampler, seqs: Sequence[Sequence[int]], temps: Sequence[float],
                   k: int):
    """Per sequence: ``log p(x_t | x_<t)`` for ``t >= 1`` under ``softmax(z / τ)`` and the
    top-``k`` alternatives ``(ids, logprobs)`` at each position; logits stay on the device."""
    vocab = sampler.model.config.vocab_size
    per_chunk = max(1, (1 << 25) // (vocab * _bucket(max(map(len, seqs)))))
    graphdef, state = nnx.split(sampler.model)
    out = []
    for s in range(0, len(seqs), per_chunk):
        chunk = seqs[s:s + per_chunk]
        T = _bucket(max(map(len, chunk)))
        B = _bucket(len(chunk), 1)
        buf = np.zeros((B, T), np.int32)
        mask = np.zeros((B, T), bool)
        inv = np.ones(B, np.float32)
        for b, ids in enumerate(chunk):
            buf[b, :len(ids)] = ids
            mask[b, :len(ids)] = True
            tau = temps[s + b]
            inv[b] = 1.0 / tau if tau > 0 else 1.0
        picked, top_v, top_i = _details_jit(graphdef, state, jnp.asarray(buf),
                                            jnp.asarray(mask), jnp.asarray(inv), k)
        picked = np.asarray(picked)
        top_v = None if top_v is None else np.asarray(top_v)
        top_i = None if top_i is None else np.asarray(top_i)
        for b, ids in enumerate(chunk):
            L = len(ids) - 1
            out.append((picked[b, :L].tolist(),
                        None if top_i is None else top_i[b, :L].tolist(),
                        None if top_v is None else top_v[b, :L].tolist()))
    return out


# -- the application ----------------------------------------------------------------------

@dataclasses.dataclass
class _Choice:
    index: int
    prompt_ids: list[int]
    prompt_text: str
    comp: Completion
    temperature: float


class OpenAIServer:
    """The OpenAI-compatible API over a :class:`JaxSampler` and an optional :class:`Embedder`.

    ``handle(method, path, body)`` returns ``(status, json)`` or, for a stream,
    ``(200, iterator of SSE chunks)``; :func:`make_server` puts it behind HTTP.

    Args:
      sampler: the language model.
      embedder: the sentence model for ``/v1/embeddings`` (None: that route answers 404).
      config: limits (:class:`ServerConfig`).
    """

    def __init__(self, sampler: JaxSampler, embedder=None, config: ServerConfig | None = None):
        from llm_tools.embedder import Embedder

        if not isinstance(sampler, JaxSampler):
            raise TypeError(f"OpenAIServer: sampler must be a JaxSampler, got "
                            f"{type(sampler).__name__}")
        if embedder is not None and not isinstance(embedder, Embedder):
            raise TypeError(f"OpenAIServer: embedder must implement Embedder (embed, dim, "
                            f"name), got {type(embedder).__name__}")
        config = config or ServerConfig()
        if not isinstance(config, ServerConfig):
            raise TypeError(f"OpenAIServer: config must be a ServerConfig, got "
                            f"{type(config).__name__}")
        if embedder is not None and embedder.name == sampler.name:
            raise ValueError(f"OpenAIServer: the sampler and the embedder are both named "
                             f"{sampler.name!r}; model names must differ")
        self.sampler, self.embedder, self.config = sampler, embedder, config
        self.batcher = _Batcher(sampler, config)
        self.created = int(time.time())
        params = inspect.signature(sampler.tokenizer.decode).parameters
        self._decode_kw = {"skip_special": False} if "skip_special" in params else {}

    # -- models -----------------------------------------------------------------------------
    def models(self) -> list[str]:
        return [self.sampler.name] + ([self.embedder.name] if self.embedder else [])

    def _model_card(self, name):
        return {"id": name, "object": "model", "created": self.created, "owned_by": "llm_tools"}

    def _check_model(self, body, kind):
        name = _get(body, "model", "str", required=True)
        if name not in self.models():
            raise APIError(404, f"The model {name!r} does not exist; this server has "
                                f"{self.models()} (GET /v1/models)", code="model_not_found",
                           param="model")
        want = self.sampler.name if kind == "lm" else (self.embedder.name if self.embedder
                                                       else None)
        if name != want:
            what = "an embedding model; use /v1/embeddings" if kind == "lm" else \
                "a language model; use /v1/completions or /v1/chat/completions"
            raise _bad(f"The model {name!r} is {what}", param="model", code="invalid_model")
        return name

    # -- dispatch -----------------------------------------------------------------------------
    def handle(self, method: str, path: str, body: Mapping | None):
        """One API call -> ``(status, JSON object or iterator of SSE chunk objects)``."""
        path = path.split("?", 1)[0].rstrip("/")
        try:
            if method == "GET":
                if path == "/health":
                    return 200, {"status": "ok"}
                if path == "/v1/models":
                    return 200, {"object": "list",
                                 "data": [self._model_card(m) for m in self.models()]}
                if path.startswith("/v1/models/"):
                    name = path[len("/v1/models/"):]
                    if name not in self.models():
                        raise APIError(404, f"The model {name!r} does not exist",
                                       code="model_not_found")
                    return 200, self._model_card(name)
            elif method == "POST":
                routes = {"/v1/completions": self.completions,
                          "/v1/chat/completions": self.chat_completions,
                          "/v1/embeddings": self.embeddings,
                          "/tokenize": self.tokenize, "/detokenize": self.detokenize}
                if path in routes:
                    if not isinstance(body, Mapping):
                        raise _bad("The request body must be a JSON object", code="invalid_json")
                    return 200, routes[path](body)
            raise APIError(404, f"Unknown route: {method} {path}", code="unknown_url")
        except APIError as e:
            return e.status, e.body()
        except (ValueError, TypeError) as e:
            return 400, APIError(400, str(e)).body()
        except Exception as e:  # noqa: BLE001 - answer, keep serving
            return 500, APIError(500, f"{type(e).__name__}: {e}").body()

    # -- shared pieces ------------------------------------------------------------------------
    def _context_check(self, i, ids, max_new):
        limit = self.sampler.model.config.max_seq_len
        if len(ids) + max_new > limit:
            raise _bad(f"This model's maximum context length is {limit} tokens; prompt {i} has "
                       f"{len(ids)} tokens and max_tokens is {max_new} ({len(ids) + max_new} in "
                       "all)", param="max_tokens", code="context_length_exceeded")

    def _submit(self, prompts: list[list[int]], s: _Sampling) -> concurrent.futures.Future:
        rows = [_Row(p, sample_key(s.key, i, j), s.max_new, s.temperature, s.top_p, s.top_k)
                for i, p in enumerate(prompts) for j in range(s.n)]
        return self.batcher.submit(rows)

    def _sample(self, prompts: list[list[int]], s: _Sampling, fut=None
                ) -> list[list[Completion]]:
        results = (fut or self._submit(prompts, s)).result()
        tok = self.sampler.tokenizer
        comps = [make_completion(tok, ids, lps, stopped=st, stop_strings=s.stop)
                 for ids, lps, st in results]
        return [comps[i * s.n:(i + 1) * s.n] for i in range(len(prompts))]

    def _token_str(self, t: int) -> str:
        """A token's text, special tokens spelled out (``<|im_end|>``)."""
        return self.sampler.tokenizer.decode([t], **self._decode_kw)

    def _usage(self, prompts, choices):
        p = sum(len(x) for x in prompts)
        c = sum(len(ch.comp.token_ids) for ch in choices)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _offsets_in(self, text: str, ids: Sequence[int], start: int) -> list[int]:
        """Character offset of each generated token in ``text`` (clipped to its end)."""
        tok = self.sampler.tokenizer
        out, end = [], len(text)
        for i in range(len(ids)):
            out.append(min(start + len(tok.decode(list(ids[:i]))), end))
        return out

    # -- /v1/completions ----------------------------------------------------------------------
    def _parse_prompts(self, body):
        prompt = body.get("prompt")
        vocab = self.sampler.model.config.vocab_size
        tok = self.sampler.tokenizer

        def ids_ok(x):
            return isinstance(x, list) and x and all(
                isinstance(t, int) and not isinstance(t, bool) for t in x)

        if prompt is None:
            raise _bad("Missing required parameter: 'prompt'", param="prompt",
                       code="missing_required_parameter")
        if isinstance(prompt, str):
            items = [prompt]
        elif ids_ok(prompt):
            items = [prompt]
        elif isinstance(prompt, list) and prompt and (
                all(isinstance(p, str) for p in prompt) or all(ids_ok(p) for p in prompt)):
            items = prompt
        else:
            raise _bad("Invalid value for 'prompt': expected a string, a list of strings, a "
                       "list of token ids or a list of token-id lists (non-empty)",
                       param="prompt")
        out = []
        for i, p in enumerate(items):
            if isinstance(p, str):
                ids = tok.encode(p, add_bos=self.sampler.add_bos)
                if not ids:
                    raise _bad(f"Invalid value for 'prompt': prompt {i} is empty (it encodes to "
                               "no tokens)", param="prompt")
                out.append((ids, p, True))
            else:
                bad = [t for t in p if not 0 <= t < vocab]
                if bad:
                    raise _bad(f"Invalid value for 'prompt': prompt {i} has token ids outside "
                               f"[0, {vocab}): {bad[:5]}", param="prompt")
                out.append((list(p), tok.decode(p), False))
        return out

    def _prompt_offsets(self, ids, text, from_text):
        """Character offset of each prompt token in ``text``."""
        if not from_text:
            return self._offsets_in(text, ids, 0)
        got, spans = encode_with_offsets(self.sampler.tokenizer, text)
        bos = len(ids) - len(got)
        if got != list(ids[bos:]):  # pragma: no cover - the same tokenizer made both
            raise RuntimeError("serve: encode_with_offsets disagrees with encode")
        return [0] * bos + [start for start, _ in spans]

    def completions(self, body: Mapping):
        _check_params(body, COMPLETION_PARAMS)
        name = self._check_model(body, "lm")
        s = _sampling(body, self.config)
        s.max_new = _get(body, "max_tokens", "int", 16, lo=0)
        echo = _get(body, "echo", "bool", False)
        k = _get(body, "logprobs", "int", None, lo=0, hi=self.config.max_logprobs)
        _neutral(body, "best_of", lambda v: v in (1, s.n), f"n ({s.n})")
        _neutral(body, "suffix", lambda v: v == "", "an empty string")
        _get(body, "user", "str")
        prompts = self._parse_prompts(body)
        for i, (ids, _, _) in enumerate(prompts):
            self._context_check(i, ids, s.max_new)
        if s.max_new == 0:
            empty = Completion("", (), (), "length", False)
            comps = [[empty] * s.n for _ in prompts]
        else:
            comps = self._sample([p[0] for p in prompts], s)
        choices = [_Choice(i * s.n + j, p[0], p[1], c, s.temperature)
                   for i, (p, cs) in enumerate(zip(prompts, comps, strict=True))
                   for j, c in enumerate(cs)]
        offsets = [self._prompt_offsets(*p) if echo and k is not None else None
                   for p in prompts]
        objs = [self._completion_choice(ch, offsets[ch.index // s.n], echo=echo, k=k,
                                        token_ids=s.return_token_ids) for ch in choices]
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        usage = self._usage([p[0] for p in prompts], choices)
        head = {"id": rid, "object": "text_completion", "created": created, "model": name}
        if not s.stream:
            return {**head, "choices": objs, "usage": usage}
        return self._stream_completions(head, objs, usage if s.include_usage else None)

    def _completion_choice(self, ch: _Choice, prompt_offsets, *, echo, k, token_ids):
        c = ch.comp
        text = (ch.prompt_text if echo else "") + c.text
        obj = {"index": ch.index, "text": text, "logprobs": None,
               "finish_reason": c.finish_reason, "ends_with_stop_token": c.ends_with_stop_token}
        if token_ids:
            obj["token_ids"] = list(c.token_ids)
            if echo:
                obj["prompt_token_ids"] = list(ch.prompt_ids)
        if k is None:
            return obj
        base = len(ch.prompt_text) if echo else 0
        gen_off = self._offsets_in(text, c.token_ids, base)
        seqs, temps = [list(ch.prompt_ids) + list(c.token_ids)], [ch.temperature]
        tokens, lps, tops, offs = [], [], [], []
        if echo:  # prompt tokens, scored at temperature 1
            picked, ti, tv = _token_details(self.sampler, [ch.prompt_ids], [1.0], k)[0]
            for t in range(len(ch.prompt_ids)):
                tokens.append(self._token_str(ch.prompt_ids[t]))
                offs.append(int(prompt_offsets[t]))
                if t == 0:
                    lps.append(None)
                    tops.append(None)
                else:
                    lps.append(picked[t - 1])
                    tops.append(self._top_dict(ti, tv, t - 1, ch.prompt_ids[t], picked[t - 1]))
        if c.token_ids:
            _, ti, tv = _token_details(self.sampler, seqs, temps, k)[0]
            P = len(ch.prompt_ids)
            for t, (tid, lp) in enumerate(zip(c.token_ids, c.logprobs, strict=True)):
                tokens.append(self._token_str(tid))
                lps.append(float(lp))
                offs.append(gen_off[t])
                tops.append(self._top_dict(ti, tv, P - 1 + t, tid, float(lp)))
        obj["logprobs"] = {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
                           "text_offset": offs}
        return obj

    def _top_dict(self, ti, tv, pos, chosen, chosen_lp):
        d = {}
        if ti is not None:
            for i, v in zip(ti[pos], tv[pos], strict=True):
                d.setdefault(self._token_str(int(i)), float(v))
        d.setdefault(self._token_str(int(chosen)), float(chosen_lp))
        return d

    def _stream_completions(self, head, objs, usage) -> Iterator[dict]:
        for o in objs:
            lp = o["logprobs"]
            n_tok = len(lp["tokens"]) if lp else None
            pieces = self._pieces(o, n_tok)
            for t, piece in enumerate(pieces):
                chunk = {"index": o["index"], "text": piece, "logprobs": None,
                         "finish_reason": None}
                if lp:
                    chunk["logprobs"] = {key: [lp[key][t]] for key in lp}
                yield {**head, "choices": [chunk]}
            last = {"index": o["index"], "text": "", "logprobs": None,
                    "finish_reason": o["finish_reason"],
                    "ends_with_stop_token": o["ends_with_stop_token"]}
            for key in ("token_ids", "prompt_token_ids"):
                if key in o:
                    last[key] = o[key]
            yield {**head, "choices": [last]}
        if usage is not None:
            yield {**head, "choices": [], "usage": usage}

    @staticmethod
    def _pieces(o, n_tok):
        """The choice's text cut into one piece per logprob token (or one piece)."""
        text = o["text"]
        if not n_tok:
            return [text] if text else []
        offs = o["logprobs"]["text_offset"] + [len(text)]
        pieces = [text[offs[t]:offs[t + 1]] for t in range(n_tok)]
        pieces[0] = text[:offs[1]]  # anything before the first offset goes with the first
        return pieces

    # -- /v1/chat/completions -------------------------------------------------------------------
    def chat_completions(self, body: Mapping):
        _check_params(body, CHAT_PARAMS)
        name = self._check_model(body, "lm")
        s = _sampling(body, self.config)
        messages = _messages(body.get("messages"))
        use_lp = _get(body, "logprobs", "bool", False)
        k = _get(body, "top_logprobs", "int", None, lo=0, hi=self.config.max_logprobs)
        if k is not None and not use_lp:
            raise _bad("'top_logprobs' requires 'logprobs' to be true", param="top_logprobs")
        _get(body, "user", "str")
        tok = self.sampler.tokenizer
        text = tok.apply_chat_template(messages, add_generation_prompt=True)
        ids = tok.encode(text, add_bos=self.sampler.add_bos)
        limit = self.sampler.model.config.max_seq_len
        a = _get(body, "max_tokens", "int", None, lo=1)
        b = _get(body, "max_completion_tokens", "int", None, lo=1)
        if a is not None and b is not None and a != b:
            raise _bad("'max_tokens' and 'max_completion_tokens' differ", param="max_tokens")
        s.max_new = a if a is not None else b if b is not None else limit - len(ids)
        if s.max_new <= 0:
            raise _bad(f"This model's maximum context length is {limit} tokens and the "
                       f"messages take {len(ids)}", param="messages",
                       code="context_length_exceeded")
        self._context_check(0, ids, s.max_new)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "object": "chat.completion", "created": created, "model": name}
        if s.stream:
            return self._stream_chat(head, ids, s, use_lp, k)
        comps = self._sample([ids], s)[0]
        choices = [_Choice(j, ids, text, c, s.temperature) for j, c in enumerate(comps)]
        objs = [self._chat_choice(ch, use_lp, k, s.return_token_ids) for ch in choices]
        return {**head, "choices": objs, "usage": self._usage([ids], choices)}

    def _chat_choice(self, ch: _Choice, use_lp, k, token_ids):
        c = ch.comp
        obj = {"index": ch.index, "message": {"role": "assistant", "content": c.text},
               "logprobs": None, "finish_reason": c.finish_reason,
               "ends_with_stop_token": c.ends_with_stop_token}
        if token_ids:
            obj["token_ids"] = list(c.token_ids)
        if use_lp:
            obj["logprobs"] = {"content": self._chat_logprobs(ch, k or 0)}
        return obj

    def _chat_logprobs(self, ch: _Choice, k):
        c = ch.comp
        if not c.token_ids:
            return []
        _, ti, tv = _token_details(self.sampler, [list(ch.prompt_ids) + list(c.token_ids)],
                                   [ch.temperature], k)[0]
        P, out = len(ch.prompt_ids), []
        for t, (tid, lp) in enumerate(zip(c.token_ids, c.logprobs, strict=True)):
            top = [] if ti is None else [
                self._chat_entry(int(i), float(v)) for i, v in zip(ti[P - 1 + t],
                                                                  tv[P - 1 + t], strict=True)]
            out.append({**self._chat_entry(int(tid), float(lp)), "top_logprobs": top})
        return out

    def _chat_entry(self, tid, lp):
        tok = self.sampler.tokenizer
        raw = tok.token_bytes(tid) if hasattr(tok, "token_bytes") else b""
        s = self._token_str(tid)
        return {"token": s, "logprob": lp, "bytes": list(raw or s.encode())}

    def _stream_chat(self, head, ids, s: _Sampling, use_lp, k) -> Iterator[dict]:
        head = {**head, "object": "chat.completion.chunk"}
        fut = self._submit([ids], s)  # queued now, before the first chunk is read

        def gen():
            for j in range(s.n):
                yield {**head, "choices": [{"index": j, "delta": {"role": "assistant",
                                                                  "content": ""},
                                            "logprobs": None, "finish_reason": None}]}
            comps = self._sample([ids], s, fut)[0]
            choices = [_Choice(j, ids, "", c, s.temperature) for j, c in enumerate(comps)]
            for ch in choices:
                c = ch.comp
                lps = self._chat_logprobs(ch, k or 0) if use_lp else None
                offs = self._offsets_in(c.text, c.token_ids, 0) + [len(c.text)]
                for t in range(len(c.token_ids)):
                    piece = c.text[offs[t]:offs[t + 1]]
                    yield {**head, "choices": [{
                        "index": ch.index, "delta": {"content": piece},
                        "logprobs": {"content": [lps[t]]} if lps else None,
                        "finish_reason": None}]}
                last = {"index": ch.index, "delta": {}, "logprobs": None,
                        "finish_reason": c.finish_reason,
                        "ends_with_stop_token": c.ends_with_stop_token}
                if s.return_token_ids:
                    last["token_ids"] = list(c.token_ids)
                yield {**head, "choices": [last]}
            if s.include_usage:
                yield {**head, "choices": [], "usage": self._usage([ids], choices)}

        return gen()

    # -- /tokenize, /detokenize (vLLM's shapes) -------------------------------------------------
    def tokenize(self, body: Mapping):
        """``{"model", "prompt"}`` -> ``{"tokens", "count", "max_model_len"}``; the ids a text
        prompt becomes on ``/v1/completions`` (BOS included when the model adds one)."""
        _check_params(body, TOKENIZE_PARAMS)
        self._check_model(body, "lm")
        prompt = _get(body, "prompt", "str", required=True)
        add = _get(body, "add_special_tokens", "bool", True)
        ids = self.sampler.tokenizer.encode(prompt, add_bos=self.sampler.add_bos and add)
        return {"tokens": ids, "count": len(ids),
                "max_model_len": self.sampler.model.config.max_seq_len}

    def detokenize(self, body: Mapping):
        """``{"model", "tokens"}`` -> ``{"prompt"}`` (special tokens skipped)."""
        _check_params(body, DETOKENIZE_PARAMS)
        self._check_model(body, "lm")
        ids = body.get("tokens")
        vocab = self.sampler.model.config.vocab_size
        if not isinstance(ids, list) or not all(
                isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in ids):
            raise _bad(f"Invalid value for 'tokens': expected a list of token ids in [0, "
                       f"{vocab})", param="tokens")
        return {"prompt": self.sampler.tokenizer.decode(ids)}

    # -- /v1/embeddings -------------------------------------------------------------------------
    def embeddings(self, body: Mapping):
        _check_params(body, EMBEDDING_PARAMS)
        if self.embedder is None:
            raise APIError(404, "This server has no embedding model (start it with "
                                "--embedder minilm)", code="model_not_found", param="model")
        name = self._check_model(body, "embedding")
        inp = body.get("input")
        if isinstance(inp, str):
            inp = [inp]
        if not isinstance(inp, list) or not inp:
            raise _bad("Invalid value for 'input': expected a string or a non-empty list of "
                       "strings", param="input")
        if not all(isinstance(t, str) for t in inp):
            raise _bad("Invalid value for 'input': token-id input is not supported by this "
                       "embedding model; send strings", param="input")
        fmt = _get(body, "encoding_format", "str", "float")
        if fmt not in ("float", "base64"):
            raise _bad(f"Invalid value for 'encoding_format': expected 'float' or 'base64', got "
                       f"{fmt!r}", param="encoding_format")
        _neutral(body, "dimensions", lambda v: v == self.embedder.dim,
                 f"the model's dimension ({self.embedder.dim})")
        _get(body, "user", "str")
        vecs = np.asarray(self.embedder.embed(inp), np.float32)
        ntok = sum(len(x) for x in self.embedder.tokenize(inp)) if hasattr(
            self.embedder, "tokenize") else 0

        def enc(v):
            if fmt == "base64":
                return base64.b64encode(v.astype("<f4").tobytes()).decode()
            return v.tolist()

        return {"object": "list", "model": name,
                "data": [{"object": "embedding", "index": i, "embedding": enc(v)}
                         for i, v in enumerate(vecs)],
                "usage": {"prompt_tokens": ntok, "total_tokens": ntok}}


def _messages(messages):
    from llm_tools.tokenizer import _check_messages

    if not isinstance(messages, list) or not messages:
        raise _bad("Invalid value for 'messages': expected a non-empty list of {role, content}",
                   param="messages", code="missing_required_parameter" if messages is None
                   else "invalid_value")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"Invalid value for 'messages[{i}]': expected an object",
                       param="messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text"
                       and isinstance(p.get("text"), str) for p in content):
                raise _bad(f"Invalid value for 'messages[{i}].content': only text parts are "
                           "supported", param="messages")
            content = "".join(p["text"] for p in content)
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra:
            raise _bad(f"Unrecognized fields in 'messages[{i}]': {', '.join(extra)}",
                       param="messages", code="unknown_parameter")
        out.append({"role": m.get("role"), "content": content})
    try:
        _check_messages(out, "chat")
    except ValueError as e:
        raise _bad(f"Invalid value for 'messages': {e}", param="messages") from None
    return out


# -- HTTP ---------------------------------------------------------------------------------

def make_server(app_or_sampler, host: str = "127.0.0.1", port: int = 0, *, embedder=None,
                config: ServerConfig | None = None) -> ThreadingHTTPServer:
    """An HTTP server (not started) answering the OpenAI-compatible API.

    Args:
      app_or_sampler: an :class:`OpenAIServer`, or a :class:`JaxSampler` (then ``embedder`` and
        ``config`` build one).
    """
    app = app_or_sampler if isinstance(app_or_sampler, OpenAIServer) else OpenAIServer(
        app_or_sampler, embedder, config)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, chunks):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for c in chunks:
                    self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            except Exception as e:  # noqa: BLE001 - the status line is out; report in-band
                err = APIError(500, f"{type(e).__name__}: {e}").body()
                self.wfile.write(b"data: " + json.dumps(err).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _answer(self, method, body):
            status, out = app.handle(method, self.path, body)
            if isinstance(out, dict):
                self._send(status, out)
            else:
                self._stream(out)

        def do_GET(self):
            self._answer("GET", None)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > app.config.max_body_bytes:
                self.close_connection = True
                self._send(413, APIError(413, f"The request body has {n} bytes, more than "
                                              f"{app.config.max_body_bytes}").body())
                return
            raw = self.rfile.read(n)
            try:
                body = json.loads(raw or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                self._send(400, _bad(f"The request body is not valid JSON: {e}",
                                     code="invalid_json").body())
                return
            self._answer("POST", body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the default listen backlog (5) resets bursts of clients

    server = Server((host, port), Handler)
    server.app = app
    return server


def build_sampler(spec: str, *, max_seq_len: int = 2048, max_batch: int = 32) -> JaxSampler:
    """``smollm2`` | ``tiny`` | ``ckpt:<workdir of llm_tools.train>``."""
    if spec == "smollm2":
        return JaxSampler.from_smollm2(max_seq_len=max_seq_len, max_batch=max_batch)
    if spec == "tiny":
        from llm_tools.model import Llama
        from llm_tools.tiny import tiny_config
        from llm_tools.tokenizer import ByteTokenizer

        return JaxSampler(Llama(tiny_config(), rngs=nnx.Rngs(0)), ByteTokenizer(),
                          name="tiny-random", max_batch=max_batch)
    if spec.startswith("ckpt:"):
        from llm_tools.train import load_trained

        model, tok = load_trained(spec[len("ckpt:"):])
        return JaxSampler(model, tok, name=f"trained:{spec[5:]}", max_batch=max_batch)
    raise ValueError(f"serve: --model must be smollm2, tiny or ckpt:<dir>, got {spec!r}")


def build_embedder(spec: str):
    """``minilm`` (all-MiniLM-L6-v2, after ``python -m llm_tools.fetch minilm``) | ``none``."""
    if spec == "none":
        return None
    if spec == "minilm":
        from llm_tools.embedder import MiniLMEmbedder

        try:
            return MiniLMEmbedder.from_pretrained()
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e} (or start the server with --embedder none)") from None
    raise ValueError(f"serve: --embedder must be minilm or none, got {spec!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_tools.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = ServerConfig()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--embedder", default="minilm", help="minilm | none")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--max-n", type=int, default=d.max_n)
    parser.add_argument("--max-rows", type=int, default=d.max_rows,
                        help="rows sampled together in one decode loop")
    parser.add_argument("--batch-window-ms", type=float, default=d.batch_window_s * 1000,
                        help="a batch stays open while requests arrive less than this apart")
    parser.add_argument("--max-wait-ms", type=float, default=d.max_wait_s * 1000,
                        help="... for at most this long after its first request")
    parser.add_argument("--max-queue", type=int, default=d.max_queue)
    args = parser.parse_args(argv)
    config = ServerConfig(max_n=args.max_n, max_rows=args.max_rows,
                          batch_window_s=args.batch_window_ms / 1000,
                          max_wait_s=args.max_wait_ms / 1000, max_queue=args.max_queue)
    sampler = build_sampler(args.model, max_seq_len=args.max_seq_len, max_batch=args.max_rows)
    server = make_server(sampler, args.host, args.port, embedder=build_embedder(args.embedder),
                         config=config)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
