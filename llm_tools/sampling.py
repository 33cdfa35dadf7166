"""Jitted batched sampling from a :class:`~llm_tools.model.Llama`: masks, one step, the loop.

A batch of prompts is left-padded to a common length ``P`` (a power-of-two bucket), prefilled
into a :class:`~llm_tools.model.KVCache` of ``P + N`` slots (``N`` the new-token bucket), then
decoded by a ``lax.while_loop`` that stops when every row has met a stop id or its own
``max_new_tokens``. The compiled function depends only on the (batch, ``P``, ``N``) bucket
and on whether top-k / top-p are used, so requests of similar size reuse one compilation.

Row ``b``'s token ``i`` is drawn with ``fold_in(key_b, i)``, so a row's output depends on its
own key and prompt only: batched, left-padded sampling equals one-by-one sampling.

Sampling with temperature ``τ``: ``y_i ~ softmax(z / τ)`` restricted to the top-k set and the
nucleus (the smallest set of most likely tokens whose probability reaches ``p``), drawn by the
Gumbel-max trick ``argmax(z/τ + G)``; ``τ = 0`` is greedy ``argmax z``.

References:
  Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020 (top-p).
  Fan et al., "Hierarchical Neural Story Generation", ACL 2018 (top-k).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_tools.model import KVCache, Llama, forward

__all__ = [
    "GenerationOutput",
    "generate_tokens",
    "sample_logits",
    "top_k_mask",
    "top_p_mask",
]

_NEG = -jnp.inf


def top_k_mask(logits: jax.Array, k: jax.Array | int) -> jax.Array:
    """Sets every logit below the row's k-th largest to ``-inf`` (``k <= 0``: no masking).

    Ties with the k-th largest value are kept, so a row may keep more than ``k`` tokens.

    Args:
      logits: ``[..., V]``.
      k: int scalar or per-row ``[...]``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim < 1:
        raise ValueError(f"top_k_mask: logits must have a vocabulary axis, got shape "
                         f"{logits.shape}")
    V = logits.shape[-1]
    k = jnp.broadcast_to(jnp.asarray(k, jnp.int32), logits.shape[:-1])
    desc = -jnp.sort(-logits, axis=-1)
    kk = jnp.clip(k, 1, V)
    thresh = jnp.take_along_axis(desc, (kk - 1)[..., None], axis=-1)
    masked = jnp.where(logits < thresh, _NEG, logits)
    return jnp.where((k <= 0)[..., None], logits, masked)


def top_p_mask(logits: jax.Array, p: jax.Array | float) -> jax.Array:
    """Keeps the nucleus: the fewest most-likely tokens whose softmax mass reaches ``p``.

    Token ``j`` (in descending-probability order) is kept iff the mass of the tokens before it
    is ``< p``; so the most likely token is always kept, and ``p = 1`` keeps everything.

    Args:
      logits: ``[..., V]`` (already temperature-scaled if a temperature applies).
      p: scalar or per-row ``[...]`` in ``(0, 1]``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim < 1:
        raise ValueError(f"top_p_mask: logits must have a vocabulary axis, got shape "
                         f"{logits.shape}")
    p = jnp.broadcast_to(jnp.asarray(p, jnp.float32), logits.shape[:-1])
    order = jnp.argsort(-logits, axis=-1)
    desc = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(desc.astype(jnp.float32), axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = before < p[..., None]
    keep_sorted = keep_sorted.at[..., 0].set(True)
    # the smallest kept logit is the threshold (ties at it are kept too)
    thresh = jnp.min(jnp.where(keep_sorted, desc, jnp.inf), axis=-1, keepdims=True)
    masked = jnp.where(logits < thresh, _NEG, logits)
    return jnp.where((p >= 1.0)[..., None], logits, masked)


def sample_logits(key: jax.Array, logits: jax.Array, temperature: jax.Array | float,
                  top_p: jax.Array | float = 1.0, top_k: jax.Array | int = 0, *,
                  use_top_p: bool = True, use_top_k: bool = True) -> jax.Array:
    """Draws one token per row from ``logits [B, V]`` (one key per row, ``[B]`` keys).

    Greedy where ``temperature == 0``; otherwise Gumbel-max over ``top_p(top_k(z)) / τ``.
    """
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim != 2:
        raise ValueError(f"sample_logits: logits must be [batch, vocab], got {logits.shape}")
    B = logits.shape[0]
    t = jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (B,))
    greedy = jnp.argmax(logits, axis=-1)
    z = logits / jnp.where(t > 0, t, 1.0)[:, None]
    if use_top_k:
        z = top_k_mask(z, top_k)
    if use_top_p:
        z = top_p_mask(z, top_p)
    gumbel = jax.vmap(lambda k: jax.random.gumbel(k, (logits.shape[1],)))(key)
    sampled = jnp.argmax(z + gumbel, axis=-1)
    return jnp.where(t > 0, sampled, greedy).astype(jnp.int32)


class GenerationOutput(NamedTuple):
    """Result of :func:`generate_tokens` (numpy, one row per prompt).

    Attributes:
      tokens: ``[B, N]`` generated ids; entries past ``lengths[b]`` are padding.
      logprobs: ``[B, N]`` log-probabilities of each generated token under the model
        (temperature 1, untruncated: ``log softmax(z)_y``).
      lengths: ``[B]`` number of generated tokens (including a final stop id).
      stopped: ``[B]`` True where the row ended on a stop id (else on its token budget).
    """

    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray
    stopped: np.ndarray


def _bucket(n: int, minimum: int = 16) -> int:
    return max(minimum, 1 << (int(n) - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("graphdef", "n_new", "use_top_p", "use_top_k"))
def _generate_jit(graphdef, state, tokens, pad, keys, max_new, temperature, top_p, top_k,
                  stop_ids, *, n_new, use_top_p, use_top_k):
    model = nnx.merge(graphdef, state)
    B, P = tokens.shape
    T = P + n_new
    c = model.config
    shape = (c.n_layers, B, T, c.n_kv_heads, c.head_dim)
    cache = KVCache(jnp.zeros(shape, c.compute_dtype), jnp.zeros(shape, c.compute_dtype))
    slots = jnp.arange(T)
    kv_mask = slots[None, :] >= pad[:, None]
    positions = jnp.maximum(jnp.arange(P)[None, :] - pad[:, None], 0)
    logits, cache, _ = forward(model, tokens, positions=positions, cache=cache, cache_index=0,
                               kv_mask=kv_mask, last_only=True)
    sample = functools.partial(sample_logits, use_top_p=use_top_p, use_top_k=use_top_k)

    def pick(logits, i):
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
        tok = sample(step_keys, logits, temperature, top_p, top_k)
        lp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tok[:, None], -1)[:, 0]
        return tok, lp

    def is_stop(tok):
        return jnp.any(tok[:, None] == stop_ids[None, :], axis=-1)

    tok, lp = pick(logits[:, -1], 0)
    out_tok = jnp.zeros((B, n_new), jnp.int32).at[:, 0].set(tok)
    out_lp = jnp.zeros((B, n_new), jnp.float32).at[:, 0].set(lp)
    stopped = is_stop(tok)
    lengths = jnp.ones((B,), jnp.int32)
    done = stopped | (lengths >= max_new)

    def cond(state):
        i, _, _, _, _, _, done = state
        return (i < n_new) & ~jnp.all(done)

    def body(state):
        i, cache, out_tok, out_lp, lengths, stopped, done = state
        prev = out_tok[:, i - 1]
        slot = P + i - 1
        logits, cache, _ = forward(model, prev[:, None], positions=(slot - pad)[:, None],
                                   cache=cache, cache_index=slot, kv_mask=kv_mask)
        tok, lp = pick(logits[:, 0], i)
        tok = jnp.where(done, 0, tok)
        lp = jnp.where(done, 0.0, lp)
        out_tok = out_tok.at[:, i].set(tok)
        out_lp = out_lp.at[:, i].set(lp)
        lengths = lengths + (~done).astype(jnp.int32)
        stopped = stopped | (~done & is_stop(tok))
        done = done | stopped | (lengths >= max_new)
        return i + 1, cache, out_tok, out_lp, lengths, stopped, done

    state = (jnp.int32(1), cache, out_tok, out_lp, lengths, stopped, done)
    _, _, out_tok, out_lp, lengths, stopped, _ = jax.lax.while_loop(cond, body, state)
    return out_tok, out_lp, lengths, stopped


def _per_row(name, value, B, dtype):
    arr = np.asarray(value, dtype)
    if arr.ndim == 0:
        arr = np.full((B,), arr, dtype)
    if arr.shape != (B,):
        raise ValueError(f"generate_tokens: {name} must be a scalar or have shape ({B},), got "
                         f"shape {arr.shape}")
    return arr


def generate_tokens(model: Llama, prompts: Sequence[Sequence[int]], keys: jax.Array, *,
                    max_new_tokens: int | Sequence[int], temperature: float | Sequence[float] = 1.0,
                    top_p: float | Sequence[float] = 1.0, top_k: int | Sequence[int] = 0,
                    stop_ids: Sequence[int] = (), pad_id: int = 0) -> GenerationOutput:
    """Samples continuations of a batch of token-id prompts with one jitted decode loop.

    Args:
      model: the decoder.
      prompts: B non-empty lists of token ids (different lengths are left-padded).
      keys: ``[B]`` typed PRNG keys (``jax.random.split(key, B)``), one per row.
      max_new_tokens: positive int, or one per row.
      temperature: ``τ >= 0`` (0 = greedy), scalar or per row.
      top_p: in ``(0, 1]``, scalar or per row (1 = off).
      top_k: int ``>= 0`` (0 = off), scalar or per row.
      stop_ids: token ids that end a row (the stop id is kept as its last token).
      pad_id: id used for left padding (masked out; any valid id works).

    Returns:
      A :class:`GenerationOutput`.

    Raises:
      ValueError: empty prompts, an empty prompt, ids outside the vocabulary, bad sampling
        parameters, or ``len(prompt) + max_new_tokens`` over ``model.config.max_seq_len``.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"generate_tokens: model must be a Llama, got {type(model).__name__}")
    c = model.config
    if isinstance(prompts, (str, bytes)) or len(prompts) == 0:
        raise ValueError("generate_tokens: prompts must be a non-empty list of token-id lists, "
                         f"got {prompts!r:.60}")
    prompts = [np.asarray(p, np.int64).reshape(-1) for p in prompts]
    B = len(prompts)
    for b, p in enumerate(prompts):
        if p.size == 0:
            raise ValueError(f"generate_tokens: prompt {b} is empty; every prompt needs at least "
                             "one token (e.g. a BOS id)")
        if p.min() < 0 or p.max() >= c.vocab_size:
            raise ValueError(f"generate_tokens: prompt {b} has ids outside [0, {c.vocab_size}): "
                             f"min {p.min()}, max {p.max()}")
    max_new = _per_row("max_new_tokens", max_new_tokens, B, np.int64)
    if np.any(max_new <= 0):
        raise ValueError(f"generate_tokens: max_new_tokens must be > 0, got {max_new_tokens!r}")
    temperature = _per_row("temperature", temperature, B, np.float32)
    if np.any(~np.isfinite(temperature)) or np.any(temperature < 0):
        raise ValueError(f"generate_tokens: temperature must be finite and >= 0, got "
                         f"{temperature.tolist()}")
    top_p = _per_row("top_p", top_p, B, np.float32)
    if np.any(~(top_p > 0)) or np.any(top_p > 1):
        raise ValueError(f"generate_tokens: top_p must lie in (0, 1], got {top_p.tolist()}")
    top_k = _per_row("top_k", top_k, B, np.int64)
    if np.any(top_k < 0):
        raise ValueError(f"generate_tokens: top_k must be >= 0 (0 = off), got {top_k.tolist()}")
    lengths = np.array([p.size for p in prompts])
    too_long = np.flatnonzero(lengths + max_new > c.max_seq_len)
    if too_long.size:
        b = int(too_long[0])
        raise ValueError(f"generate_tokens: prompt {b} has {lengths[b]} tokens + "
                         f"max_new_tokens {max_new[b]} > the context length {c.max_seq_len}")
    keys = jnp.asarray(keys)
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.shape != (B,):
        raise ValueError(f"generate_tokens: keys must be {B} typed PRNG keys "
                         f"(jax.random.split(key, {B})), got {keys.dtype}{keys.shape}")
    stop = np.asarray(list(stop_ids) or [-1], np.int32)

    Bb, Pb, Nb = _bucket(B, 1), _bucket(lengths.max()), _bucket(max_new.max())
    tokens = np.full((Bb, Pb), pad_id, np.int32)
    pad = np.full((Bb,), Pb - 1, np.int32)
    for b, p in enumerate(prompts):
        tokens[b, Pb - p.size:] = p
        pad[b] = Pb - p.size
    if Bb > B:  # dummy rows: one token, one step
        keys = jnp.concatenate([keys, jax.random.split(jax.random.key(0), Bb - B)])
    fill = lambda a, v: np.concatenate([a, np.full((Bb - B,), v, a.dtype)])
    graphdef, state = nnx.split(model)
    out = _generate_jit(
        graphdef, state, jnp.asarray(tokens), jnp.asarray(pad), keys,
        jnp.asarray(fill(max_new.astype(np.int32), 1)), jnp.asarray(fill(temperature, 0.0)),
        jnp.asarray(fill(top_p, 1.0)), jnp.asarray(fill(top_k.astype(np.int32), 0)),
        jnp.asarray(stop), n_new=Nb, use_top_p=bool(np.any(top_p < 1)),
        use_top_k=bool(np.any(top_k > 0)))
    tok, lp, n, stopped = (np.asarray(x)[:B] for x in out)
    return GenerationOutput(tok[:, : int(max_new.max())], lp[:, : int(max_new.max())], n,
                            stopped)
