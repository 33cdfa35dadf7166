"""The OpenAI HTTP API's request side for ``llm_tools.serve``: errors in OpenAI's shape (with the
``type`` that matches the status), the server's limits, parameter checking and parsing, and
the seed -> key rule.

Every check raises :class:`APIError` with a message naming the parameter, so a bad request is
answered 400 (or 404 for an unknown model) before anything is queued for sampling.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["APIError", "ServerConfig", "key_from_seed"]

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


def bad(message, param=None, code="invalid_value"):
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

def check_params(body: Mapping, allowed: frozenset) -> None:
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise bad(f"Unrecognized request argument(s) supplied: {', '.join(unknown)}",
                   param=unknown[0], code="unknown_parameter")


def get_param(body, name, kind, default=None, *, lo=None, hi=None, required=False):
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"Missing required parameter: {name!r}", param=name,
                       code="missing_required_parameter")
        return default
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "num": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
          and math.isfinite(v),
          "bool": lambda v: isinstance(v, bool),
          "str": lambda v: isinstance(v, str),
          "dict": lambda v: isinstance(v, dict)}[kind]
    if not ok(value):
        raise bad(f"Invalid type for {name!r}: expected {kind}, got {type(value).__name__} "
                   f"({json.dumps(value)[:60]})", param=name, code="invalid_type")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise bad(f"Invalid value for {name!r}: {value} is outside [{lo}, {hi}]", param=name)
    return value


def neutral(body, name, ok, expected):
    if name in body and body[name] is not None and not ok(body[name]):
        raise bad(f"Unsupported value for {name!r}: only {expected} is supported, got "
                   f"{json.dumps(body[name])[:60]}", param=name, code="unsupported_value")


@dataclasses.dataclass
class Sampling:
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


def parse_sampling(body, config: ServerConfig) -> Sampling:
    n = get_param(body, "n", "int", 1, lo=1)
    if n > config.max_n:
        raise bad(f"Invalid value for 'n': {n} is above this server's limit of "
                   f"{config.max_n} (--max-n)", param="n")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or any(not isinstance(s, str) or not s for s in stop):
        raise bad("Invalid value for 'stop': expected a non-empty string or a list of them",
                   param="stop")
    if len(stop) > 4:
        raise bad(f"Invalid value for 'stop': at most 4 sequences, got {len(stop)}",
                   param="stop")
    for name in ("presence_penalty", "frequency_penalty"):
        neutral(body, name, lambda v: v == 0, "0")
    neutral(body, "logit_bias", lambda v: v == {}, "{}")
    seed = get_param(body, "seed", "int", None, lo=-(1 << 63), hi=(1 << 64) - 1)
    if seed is None:
        seed = secrets.randbits(63)
    top_k = get_param(body, "top_k", "int", 0, lo=-1)
    stream = get_param(body, "stream", "bool", False)
    opts = get_param(body, "stream_options", "dict", None)
    if opts is not None and not stream:
        raise bad("'stream_options' is only allowed when 'stream' is true",
                   param="stream_options")
    opts = opts or {}
    unknown = sorted(set(opts) - {"include_usage"})
    if unknown:
        raise bad(f"Unrecognized stream_options: {', '.join(unknown)}",
                   param="stream_options", code="unknown_parameter")
    include_usage = get_param(opts, "include_usage", "bool", False)
    top_p = float(get_param(body, "top_p", "num", 1.0, lo=0, hi=1))
    if top_p <= 0:  # a bad row must never reach (and fail) a shared batch
        raise bad("Invalid value for 'top_p': must lie in (0, 1], got 0", param="top_p")
    temperature = float(get_param(body, "temperature", "num", 1.0, lo=0))
    return Sampling(max_new=None, temperature=temperature, top_p=top_p, top_k=max(0, top_k),
                    n=n, stop=stop, key=key_from_seed(seed), stream=stream,
                    include_usage=include_usage,
                    return_token_ids=get_param(body, "return_token_ids", "bool", False))


def parse_messages(messages):
    from llm_tools.tokenizer import _check_messages

    if not isinstance(messages, list) or not messages:
        raise bad("Invalid value for 'messages': expected a non-empty list of {role, content}",
                   param="messages", code="missing_required_parameter" if messages is None
                   else "invalid_value")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad(f"Invalid value for 'messages[{i}]': expected an object",
                       param="messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text"
                       and isinstance(p.get("text"), str) for p in content):
                raise bad(f"Invalid value for 'messages[{i}].content': only text parts are "
                           "supported", param="messages")
            content = "".join(p["text"] for p in content)
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra:
            raise bad(f"Unrecognized fields in 'messages[{i}]': {', '.join(extra)}",
                       param="messages", code="unknown_parameter")
        out.append({"role": m.get("role"), "content": content})
    try:
        _check_messages(out, "chat")
    except ValueError as e:
        raise bad(f"Invalid value for 'messages': {e}", param="messages") from None
    return out
