"""The sampling engine: shared-prefix prefill, then a jitted decode loop in decode-friendly layout.

A request is a list of rows; row ``b`` continues the first ``c_b`` tokens of a *source*
sequence ``s(b)``. Identical prompts, the ``n`` samples of one prompt and prompts that are
prefixes of another prompt (the sentence cut points of one chain of thought) share a source,
so each source is prefilled once and its keys/values are read by every row that continues it
(causal attention makes the cache of a prefix a prefix of the cache).

Decoding runs in one ``lax.while_loop`` with

- per-layer weights (``wq|wk|wv`` and ``w_gate|w_up`` fused, the layer gate folded into
  ``wo`` and ``w_down``, the tied output head stored ``[d, V]``), so no step slices stacked
  parameters;
- a read-only *prefix* cache per layer, ``K_p [U, H_kv, d_h, S]`` and ``V_p [U, H_kv, S, d_h]``
  (``U`` sources), attended by all ``R`` rows of a source with one matmul per source and
  head (``[R·G, d_h] × [d_h, S]``), and a per-row *suffix* cache ``K_s [U, R, H_kv, d_h, N]``,
  ``V_s [U, R, H_kv, N, d_h]`` written one column per step in place; the two parts are merged
  with one softmax (``m = max(m_p, m_s)``,
  ``o = (Σ_t e^{s_t - m} v_t + Σ_n e^{s_n - m} v_n) / (Σ_t e^{s_t - m} + Σ_n e^{s_n - m})``);
- suffix attention over the filled blocks only (``lax.switch`` on the number of filled
  blocks of ``block`` slots);
- sampling on a capped candidate set (see :func:`llm_tools.sampling.sample_ranked`).

Shapes are bucketed (a quarter-octave grid, :func:`bucket`) so requests of similar size reuse
one compilation. On accelerators the decode weights and caches are bfloat16 (fp32
accumulation, fp32 logits); on CPU fp32.

References:
  Juravsky et al., "Hydragen: High-Throughput LLM Inference with Shared Prefixes", 2024
  (attention split over a shared prefix and per-row suffixes).
  Pope et al., "Efficiently Scaling Transformer Inference", MLSys 2023 (cache layouts).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_tools.model import Llama, LlamaConfig, forward
from llm_tools.sampling import sample_step

__all__ = [
    "DecodeWeights",
    "Engine",
    "EngineOutput",
    "GenerationOutput",
    "LayerWeights",
    "bucket",
    "decode_weights",
    "generate_tokens",
    "plan_sources",
]


def bucket(n: int, minimum: int = 16) -> int:
    """``n`` rounded up on a quarter-octave grid (at most 25% waste), at least ``minimum``.

    Between ``2^k`` and ``2^(k+1)`` the grid step is ``2^(k-2)``: 16, 20, 24, 28, 32, 40, 48,
    56, 64, 80, ... (with ``minimum=1``: 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, ...).
    """
    n = max(int(n), int(minimum), 1)
    if n <= 4:
        return n
    step = 1 << max(0, (n - 1).bit_length() - 3)
    return -(-n // step) * step


class LayerWeights(NamedTuple):
    """One decoder layer in decode layout (gate ``g_l`` folded into ``wo`` and ``w_down``)."""

    attn_norm: jax.Array  # [d]
    wqkv: jax.Array  # [d, (H + 2 H_kv) d_h]
    wo: jax.Array  # [H d_h, d]
    mlp_norm: jax.Array  # [d]
    w_gate_up: jax.Array  # [d, 2F]
    w_down: jax.Array  # [F, d]


class DecodeWeights(NamedTuple):
    """Per-layer weights for decoding (a pytree; :func:`decode_weights` builds it)."""

    embed: jax.Array  # [V, d]
    head: jax.Array  # [d, V]
    final_norm: jax.Array  # [d]
    layers: tuple[LayerWeights, ...]


def _convert_impl(p, *, dtype, tied):
    dt = jnp.dtype(dtype)
    g = p["gates"].astype(jnp.float32)
    layers = []
    for i in range(p["wq"].shape[0]):
        layers.append(LayerWeights(
            attn_norm=p["attn_norm"][i].astype(jnp.float32),
            wqkv=jnp.concatenate([p["wq"][i], p["wk"][i], p["wv"][i]], axis=1).astype(dt),
            wo=(p["wo"][i].astype(jnp.float32) * g[i]).astype(dt),
            mlp_norm=p["mlp_norm"][i].astype(jnp.float32),
            w_gate_up=jnp.concatenate([p["w_gate"][i], p["w_up"][i]], axis=1).astype(dt),
            w_down=(p["w_down"][i].astype(jnp.float32) * g[i]).astype(dt)))
    head = p["embed"].T if tied else p["lm_head"]
    return DecodeWeights(p["embed"].astype(dt), head.astype(dt),
                         p["final_norm"].astype(jnp.float32), tuple(layers))


_convert = jax.jit(_convert_impl, static_argnames=("dtype", "tied"))


@functools.partial(jax.jit, static_argnames=("dtype", "tied"), donate_argnames=("old",),
                   keep_unused=True)
def _convert_into(p, old, *, dtype, tied):
    """As ``_convert``, donating the previous decode weights so the refresh reuses them."""
    del old
    return _convert_impl(p, dtype=dtype, tied=tied)


def default_dtype() -> str:
    """``"bfloat16"`` on accelerators, ``"float32"`` on CPU (where bf16 matmuls are slow)."""
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def decode_weights(model: Llama, dtype: str | None = None, *,
                   previous: DecodeWeights | None = None) -> DecodeWeights:
    """The model's weights in decode layout, cast to ``dtype`` (default :func:`default_dtype`).

    One jitted conversion (compiled once per shape), so refreshing it after a training step
    costs one pass over the weights and no recompilation of the decode loop. ``previous``
    (decode weights of the same shapes, no longer used afterwards) is donated: the new
    weights are written into its buffers instead of doubling the memory.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"decode_weights: model must be a Llama, got {type(model).__name__}")
    dtype = default_dtype() if dtype is None else dtype
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"decode_weights: dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    names = ("embed", "attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up",
             "w_down", "final_norm", "gates")
    p = {n: getattr(model, n)[...] for n in names}
    tied = model.lm_head is None
    if not tied:
        p["lm_head"] = model.lm_head[...]
    if previous is not None:
        return _convert_into(p, previous, dtype=dtype, tied=tied)
    return _convert(p, dtype=dtype, tied=tied)


# -- planning: which rows share which source -------------------------------------------------

class SourcePlan(NamedTuple):
    """Rows mapped onto sources: row ``b`` continues ``sources[source_of[b]][:prefix_len[b]]``."""

    sources: list[tuple[int, ...]]
    source_of: np.ndarray  # [rows] int
    prefix_len: np.ndarray  # [rows] int


def plan_sources(prompts: Sequence[Sequence[int]], *, share: bool = True) -> SourcePlan:
    """Maps each prompt to a source it is a prefix of (identical prompts included).

    With ``share=False`` every row is its own source (no sharing; for testing that sharing
    changes nothing). Sources are the prompts that are no proper prefix of another prompt.
    """
    prompts = [tuple(int(t) for t in p) for p in prompts]
    if not share:
        return SourcePlan(prompts, np.arange(len(prompts)), np.array([len(p) for p in prompts]))
    unique = sorted(set(prompts), key=len, reverse=True)
    sources: list[tuple[int, ...]] = []
    index: dict[tuple[int, ...], int] = {}  # every prefix of every source -> that source
    for p in unique:
        if p in index:
            continue
        sid = len(sources)
        sources.append(p)
        for k in range(1, len(p) + 1):
            index.setdefault(p[:k], sid)
    source_of = np.array([index[p] for p in prompts])
    return SourcePlan(sources, source_of, np.array([len(p) for p in prompts]))


# -- the prefill -------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("graphdef",))
def _prefill_jit(graphdef, state, tokens, pad, gather, head):
    """Keys/values of the left-padded sources and the next-token logits at ``gather``."""
    model = nnx.merge(graphdef, state)
    U, S = tokens.shape
    positions = jnp.maximum(jnp.arange(S)[None, :] - pad[:, None], 0)
    mask = jnp.arange(S)[None, :] >= pad[:, None]
    _, kv, h = forward(model, tokens, positions=positions, attention_mask=mask, logits=False,
                       return_kv=True)
    hs = h.reshape(U * S, -1)[gather]  # [P, d], already final-normed
    logits = jnp.einsum("pd,dv->pv", hs.astype(head.dtype), head,
                        preferred_element_type=jnp.float32)
    k, v = kv
    return k.astype(head.dtype), v.astype(head.dtype), logits


# -- the decode loop ---------------------------------------------------------------------------

def _rms(x, w, eps):
    x32 = x.astype(jnp.float32)
    return x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + eps) * w


def _rope_tables(positions, hd, base):
    inv = 1.0 / (base ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
    ang = positions.astype(jnp.float32)[..., None] * inv
    return (jnp.concatenate([jnp.cos(ang)] * 2, -1), jnp.concatenate([jnp.sin(ang)] * 2, -1))


def _rope(x, cos, sin):
    d = x.shape[-1]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + jnp.concatenate([-x2, x1], -1) * sin


class _Dims(NamedTuple):
    U: int
    R: int
    S: int
    N: int
    block: int


def _suffix_attention(q, ks, vs, j, dims, dt):
    """Scores and values of the suffix slots ``0..j`` over the filled blocks only.

    Returns ``(max [U,R,Hkv,G], sum_exp(·-max) [..], Σ e·v [..., d_h])`` as fp32 partials.
    """
    N, blk = dims.N, dims.block
    nb = N // blk
    scale = q.shape[-1] ** -0.5

    def part(n_blocks):
        L = n_blocks * blk
        s = jnp.einsum("urkgd,urkdn->urkgn", q, ks[..., :L],
                       preferred_element_type=jnp.float32) * scale
        s = jnp.where(jnp.arange(L) <= j, s, -jnp.inf)
        m = jnp.max(s, -1)
        e = jnp.exp(s - m[..., None])
        o = jnp.einsum("urkgn,urknd->urkgd", e.astype(dt), vs[..., :L, :],
                       preferred_element_type=jnp.float32)
        return m, e.sum(-1), o

    if nb == 1:
        return part(1)
    return jax.lax.switch(j // blk, [functools.partial(part, b + 1) for b in range(nb)])


def _layer_step(h, lw, kp, vp, pmask, ks, vs, cos, sin, j, c: LlamaConfig, dims: _Dims, dt):
    """One layer for one new token per row; writes the suffix slot ``j``."""
    U, R = dims.U, dims.R
    B = U * R
    H, Hkv, hd = c.n_heads, c.n_kv_heads, c.head_dim
    G = H // Hkv
    x = _rms(h, lw.attn_norm, c.norm_eps).astype(dt)
    qkv = jnp.dot(x, lw.wqkv, preferred_element_type=jnp.float32)
    q = _rope(qkv[:, : H * hd].reshape(B, H, hd), cos[:, None], sin[:, None])
    k = _rope(qkv[:, H * hd:(H + Hkv) * hd].reshape(B, Hkv, hd), cos[:, None], sin[:, None])
    v = qkv[:, (H + Hkv) * hd:].reshape(B, Hkv, hd)
    ks = jax.lax.dynamic_update_slice(ks, k.reshape(U, R, Hkv, hd, 1).astype(ks.dtype),
                                      (0, 0, 0, 0, j))
    vs = jax.lax.dynamic_update_slice(vs, v.reshape(U, R, Hkv, 1, hd).astype(vs.dtype),
                                      (0, 0, 0, j, 0))
    q = q.reshape(U, R, Hkv, G, hd).astype(dt)
    # prefix part: one [R·G, d_h] x [d_h, S] matmul per (source, kv head)
    qp = q.transpose(0, 2, 1, 3, 4).reshape(U, Hkv, R * G, hd)
    sp = jnp.einsum("ukqd,ukdt->ukqt", qp, kp, preferred_element_type=jnp.float32)
    sp = sp.reshape(U, Hkv, R, G, dims.S) * (hd ** -0.5)
    sp = jnp.where(pmask[:, None, :, None, :], sp, -jnp.inf)
    mp = jnp.max(sp, -1)  # [U, Hkv, R, G]; every row sees >= 1 prefix slot
    # suffix part (this row's own new tokens, including the one just written)
    ms, ls, os_ = _suffix_attention(q, ks, vs, j, dims, dt)
    m = jnp.maximum(mp.transpose(0, 2, 1, 3), ms)  # [U, R, Hkv, G]
    ep = jnp.exp(sp - m.transpose(0, 2, 1, 3)[..., None])
    op = jnp.einsum("ukqt,uktd->ukqd", ep.reshape(U, Hkv, R * G, dims.S).astype(dt), vp,
                    preferred_element_type=jnp.float32)
    op = op.reshape(U, Hkv, R, G, hd).transpose(0, 2, 1, 3, 4)
    corr = jnp.exp(ms - m)
    den = ep.sum(-1).transpose(0, 2, 1, 3) + ls * corr
    attn = (op + os_ * corr[..., None]) / den[..., None]
    attn = attn.reshape(B, H * hd).astype(dt)
    h = h + jnp.dot(attn, lw.wo, preferred_element_type=jnp.float32)
    x = _rms(h, lw.mlp_norm, c.norm_eps).astype(dt)
    gu = jnp.dot(x, lw.w_gate_up, preferred_element_type=jnp.float32)
    F = gu.shape[-1] // 2
    act = (jax.nn.silu(gu[:, :F]) * gu[:, F:]).astype(dt)
    h = h + jnp.dot(act, lw.w_down, preferred_element_type=jnp.float32)
    return h, ks, vs


def _step(dw, kp, vp, pmask, ks, vs, prev, positions, j, c, dims):
    """One decode step of every row: feeds ``prev`` at ``positions``, writes suffix slot
    ``j`` of every layer; returns ``(logits [B, V] fp32, ks, vs)``."""
    dt = dw.head.dtype
    cos, sin = _rope_tables(positions, c.head_dim, c.rope_base)
    h = dw.embed[prev].astype(jnp.float32)
    new_ks, new_vs = [], []
    for layer in range(c.n_layers):
        h, k_l, v_l = _layer_step(h, dw.layers[layer], kp[layer], vp[layer], pmask, ks[layer],
                                  vs[layer], cos, sin, j, c, dims, dt)
        new_ks.append(k_l)
        new_vs.append(v_l)
    h = _rms(h, dw.final_norm, c.norm_eps).astype(dt)
    logits = jnp.dot(h, dw.head, preferred_element_type=jnp.float32)
    return logits, tuple(new_ks), tuple(new_vs)


@functools.partial(jax.jit, static_argnames=(
    "config", "dims", "cap", "all_greedy", "use_plain", "use_trunc"))
def _decode_jit(dw, kp_all, vp_all, src, first_logits, prefix_len, pad, keys, max_new,
                temperature, top_p, top_k, stop_ids, *, config, dims, cap, all_greedy,
                use_plain, use_trunc):
    c, (U, R, S, N, _) = config, dims
    B = U * R
    dt = dw.head.dtype
    L = c.n_layers
    # per-layer prefix caches of this batch's sources, in the layout the dots want
    kp = [kp_all[i][src].transpose(0, 2, 3, 1) for i in range(L)]  # [U, Hkv, hd, S]
    vp = [vp_all[i][src].transpose(0, 2, 1, 3) for i in range(L)]  # [U, Hkv, S, hd]
    slots = jnp.arange(S)
    plen = prefix_len.reshape(U, R)
    start = pad[src][:, None, None]
    pmask = (slots >= start) & (slots < start + plen[..., None])  # [U, R, S]
    shape_k = (U, R, c.n_kv_heads, c.head_dim, N)
    shape_v = (U, R, c.n_kv_heads, N, c.head_dim)
    ks = tuple(jnp.zeros(shape_k, dt) for _ in range(L))
    vs = tuple(jnp.zeros(shape_v, dt) for _ in range(L))
    sample = functools.partial(sample_step, cap=cap, all_greedy=all_greedy,
                               use_plain=use_plain, use_trunc=use_trunc)

    def is_stop(tok):
        return jnp.any(tok[:, None] == stop_ids[None, :], axis=-1)

    def pick(logits, i):
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
        return sample(step_keys, logits, temperature, top_p, top_k)

    tok, lp = pick(first_logits, 0)
    out_tok = jnp.zeros((B, N), jnp.int32).at[:, 0].set(tok)
    out_lp = jnp.zeros((B, N), jnp.float32).at[:, 0].set(lp)
    stopped = is_stop(tok)
    lengths = jnp.ones((B,), jnp.int32)
    done = stopped | (lengths >= max_new)
    pos0 = prefix_len  # position of the first new token

    def cond(st):
        return (st[0] < N) & ~jnp.all(st[-1])

    def body(st):
        i, ks, vs, out_tok, out_lp, lengths, stopped, done = st
        j = i - 1  # suffix slot of the token fed now
        logits, ks, vs = _step(dw, kp, vp, pmask, ks, vs, out_tok[:, j], pos0 + j, j, c, dims)
        tok, lp = pick(logits, i)
        tok = jnp.where(done, 0, tok)
        lp = jnp.where(done, 0.0, lp)
        out_tok = out_tok.at[:, i].set(tok)
        out_lp = out_lp.at[:, i].set(lp)
        lengths = lengths + (~done).astype(jnp.int32)
        stopped = stopped | (~done & is_stop(tok))
        done = done | stopped | (lengths >= max_new)
        return i + 1, ks, vs, out_tok, out_lp, lengths, stopped, done

    st = (jnp.int32(1), ks, vs, out_tok, out_lp, lengths, stopped, done)
    _, _, _, out_tok, out_lp, lengths, stopped, _ = jax.lax.while_loop(cond, body, st)
    return out_tok, out_lp, lengths, stopped


# -- the engine --------------------------------------------------------------------------------

class EngineOutput(NamedTuple):
    """Per row (numpy): ``tokens [N]`` incl. a final stop id, ``logprobs [N]``, ``stopped``."""

    tokens: list[np.ndarray]
    logprobs: list[np.ndarray]
    stopped: np.ndarray


@dataclasses.dataclass
class _Piece:
    source: int
    rows: list[int]


class Engine:
    """Prefill-once, fan-out sampling from a :class:`~llm_tools.model.Llama`.

    Args:
      model: the decoder (its weights are converted once to decode layout).
      dtype: decode weights/cache dtype; default bf16 on accelerators, fp32 on CPU.
      max_batch: rows per decode call (and sources per prefill call).
      cap: size of the candidate set for top-k/top-p (see
        :func:`llm_tools.sampling.sample_step`).
      block: suffix-cache block size for attention over filled blocks.
      share_prefixes: prefill each distinct source once (False: every row alone; the
        results are the same, up to float rounding).
    """

    def __init__(self, model: Llama, *, dtype: str | None = None, max_batch: int = 32,
                 cap: int = 256, block: int = 64, share_prefixes: bool = True):
        if not isinstance(model, Llama):
            raise TypeError(f"Engine: model must be a Llama, got {type(model).__name__}")
        for name, value in (("max_batch", max_batch), ("cap", cap), ("block", block)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Engine: {name} must be a positive int, got {value!r}")
        self.config = model.config
        self.dtype = default_dtype() if dtype is None else dtype
        self.max_batch, self.cap, self.block = int(max_batch), int(cap), int(block)
        self.share_prefixes = bool(share_prefixes)
        self.update_weights(model)

    def update_weights(self, model: Llama) -> None:
        """Takes ``model``'s current weights (same architecture): no recompilation."""
        if not isinstance(model, Llama):
            raise TypeError(f"Engine.update_weights: model must be a Llama, got "
                            f"{type(model).__name__}")
        same = dict(max_seq_len=self.config.max_seq_len, remat=False)
        if model.config.replace(**same) != self.config.replace(**same):
            raise ValueError(f"Engine.update_weights: model config {model.config} differs from "
                             f"the engine's {self.config}")
        self._graphdef, self._state = nnx.split(model)
        old = getattr(self, "weights", None)
        self.weights = decode_weights(model, self.dtype, previous=old)

    def generate(self, prompts: Sequence[Sequence[int]], keys: jax.Array, *,
                 max_new_tokens: int, temperature: np.ndarray, top_p: np.ndarray,
                 top_k: np.ndarray, stop_ids: Sequence[int] = ()) -> EngineOutput:
        """Samples every row; arguments already validated (see ``generate_tokens``).

        ``temperature``, ``top_p``, ``top_k`` are per row ``[B]``; ``max_new_tokens`` an int
        or per row.
        """
        B = len(prompts)
        max_new = np.broadcast_to(np.asarray(max_new_tokens, np.int32), (B,))
        plan = plan_sources(prompts, share=self.share_prefixes)
        stop = np.asarray(list(stop_ids) or [-1], np.int32)
        N = bucket(int(max_new.max()), 1)
        if N > self.block:
            N = -(-N // self.block) * self.block
        block = min(self.block, N)
        out_tok: list = [None] * B
        out_lp: list = [None] * B
        out_stop = np.zeros(B, bool)
        # rows per source; sources in groups of <= max_batch, prefilled together
        rows_of: dict[int, list[int]] = {}
        for b, s in enumerate(plan.source_of):
            rows_of.setdefault(int(s), []).append(b)
        order = sorted(rows_of, key=lambda s: -len(rows_of[s]))
        for g in range(0, len(order), self.max_batch):
            group = order[g:g + self.max_batch]
            self._run_group(plan, group, rows_of, prompts, keys, max_new, temperature, top_p,
                            top_k, stop, N, block, out_tok, out_lp, out_stop)
        return EngineOutput(out_tok, out_lp, out_stop)

    def _run_group(self, plan, group, rows_of, prompts, keys, max_new, temperature, top_p,
                   top_k, stop, N, block, out_tok, out_lp, out_stop):
        c = self.config
        srcs = [plan.sources[s] for s in group]
        S = bucket(max(len(s) for s in srcs))
        Ug = bucket(len(group), 1)
        tokens = np.zeros((Ug, S), np.int32)
        pad = np.full((Ug,), S - 1, np.int32)
        for u, s in enumerate(srcs):
            tokens[u, S - len(s):] = s
            pad[u] = S - len(s)
        # pieces: up to R rows of one source; R from the largest source of the group
        R = min(bucket(max(len(rows_of[s]) for s in group), 1), self.max_batch)
        pieces = [_Piece(u, rows_of[s][i:i + R]) for u, s in enumerate(group)
                  for i in range(0, len(rows_of[s]), R)]
        per_call = max(1, self.max_batch // R)
        # first-token logits, once per distinct (source, prefix length): rows that continue
        # the same prompt share them
        flat_rows = [b for p in pieces for b in p.rows]
        slot_of: dict[int, int] = {}
        row_logit = {}
        for b in flat_rows:
            u = group.index(int(plan.source_of[b]))
            flat = u * S + int(pad[u]) + int(plan.prefix_len[b]) - 1
            row_logit[b] = slot_of.setdefault(flat, len(slot_of))
        gather = np.zeros((bucket(len(slot_of), 1),), np.int32)
        gather[: len(slot_of)] = list(slot_of)
        kp, vp, logits = _prefill_jit(self._graphdef, self._state, jnp.asarray(tokens),
                                      jnp.asarray(pad), jnp.asarray(gather), self.weights.head)
        for s in range(0, len(pieces), per_call):
            batch = pieces[s:s + per_call]
            U = bucket(len(batch), 1)
            rows = np.full((U, R), -1, np.int64)
            for u, p in enumerate(batch):
                rows[u, : len(p.rows)] = p.rows
            flat = rows.reshape(-1)
            real = flat >= 0
            take = np.where(real, flat, flat_rows[0])
            src = np.array([p.source for p in batch] + [batch[0].source] * (U - len(batch)),
                           np.int32)
            plen = np.where(real, plan.prefix_len[take], 1).astype(np.int32)
            # dummy rows: prefix of 1 token, greedy, one step
            idx = np.array([row_logit[int(b)] for b in take])
            first = logits[jnp.asarray(idx)]
            row_keys = keys[jnp.asarray(take)]
            temp = np.where(real, temperature[take], 0.0).astype(np.float32)
            tp = np.where(real, top_p[take], 1.0).astype(np.float32)
            tk = np.where(real, top_k[take], 0).astype(np.int32)
            mn = np.where(real, max_new[take], 1).astype(np.int32)
            sampled = temp > 0
            trunc = sampled & ((tk > 0) | (tp < 1))
            cap = min(max(self.cap, 1 << int(max(tk.max(), 1) - 1).bit_length()), c.vocab_size)
            dims = _Dims(U, R, int(kp.shape[2]), N, block)
            res = _decode_jit(self.weights, kp, vp, jnp.asarray(src), first,
                              jnp.asarray(plen), jnp.asarray(pad), row_keys, jnp.asarray(mn),
                              jnp.asarray(temp), jnp.asarray(tp), jnp.asarray(tk),
                              jnp.asarray(stop), config=c, dims=dims, cap=cap,
                              all_greedy=not sampled.any(),
                              use_plain=bool((sampled & ~trunc).any()),
                              use_trunc=bool(trunc.any()))
            tok, lp, n, st = (np.asarray(x) for x in res)
            for i, b in enumerate(flat):
                if b >= 0:
                    out_tok[b] = tok[i, : n[i]]
                    out_lp[b] = lp[i, : n[i]]
                    out_stop[b] = st[i]


# -- the functional entry point ----------------------------------------------------------------

class GenerationOutput(NamedTuple):
    """Result of :func:`generate_tokens` (numpy, one row per prompt).

    Attributes:
      tokens: ``[B, N]`` generated ids; entries past ``lengths[b]`` are padding.
      logprobs: ``[B, N]`` log-probabilities of each generated token under the model at the
        sampling temperature, untruncated: ``log softmax(z / τ)_y`` (``τ = 1`` where greedy).
      lengths: ``[B]`` number of generated tokens (including a final stop id).
      stopped: ``[B]`` True where the row ended on a stop id (else on its token budget).
    """

    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray
    stopped: np.ndarray


def _per_row(name, value, B, dtype):
    arr = np.asarray(value, dtype)
    if arr.ndim == 0:
        arr = np.full((B,), arr, dtype)
    if arr.shape != (B,):
        raise ValueError(f"generate_tokens: {name} must be a scalar or have shape ({B},), got "
                         f"shape {arr.shape}")
    return arr


def check_generation_args(config: LlamaConfig, prompts, keys, *, max_new_tokens, temperature,
                          top_p, top_k, who: str = "generate_tokens"):
    """Validates :func:`generate_tokens`' arguments; returns them as numpy per-row arrays."""
    if isinstance(prompts, (str, bytes)) or len(prompts) == 0:
        raise ValueError(f"{who}: prompts must be a non-empty list of token-id lists, "
                         f"got {prompts!r:.60}")
    prompts = [np.asarray(p, np.int64).reshape(-1) for p in prompts]
    B = len(prompts)
    for b, p in enumerate(prompts):
        if p.size == 0:
            raise ValueError(f"{who}: prompt {b} is empty; every prompt needs at least "
                             "one token (e.g. a BOS id)")
        if p.min() < 0 or p.max() >= config.vocab_size:
            raise ValueError(f"{who}: prompt {b} has ids outside [0, {config.vocab_size}): "
                             f"min {p.min()}, max {p.max()}")
    max_new = _per_row("max_new_tokens", max_new_tokens, B, np.int64)
    if np.any(max_new <= 0):
        raise ValueError(f"{who}: max_new_tokens must be > 0, got {max_new_tokens!r}")
    temperature = _per_row("temperature", temperature, B, np.float32)
    if np.any(~np.isfinite(temperature)) or np.any(temperature < 0):
        raise ValueError(f"{who}: temperature must be finite and >= 0, got "
                         f"{temperature.tolist()}")
    top_p = _per_row("top_p", top_p, B, np.float32)
    if np.any(~(top_p > 0)) or np.any(top_p > 1):
        raise ValueError(f"{who}: top_p must lie in (0, 1], got {top_p.tolist()}")
    top_k = _per_row("top_k", top_k, B, np.int64)
    if np.any(top_k < 0):
        raise ValueError(f"{who}: top_k must be >= 0 (0 = off), got {top_k.tolist()}")
    lengths = np.array([p.size for p in prompts])
    too_long = np.flatnonzero(lengths + max_new > config.max_seq_len)
    if too_long.size:
        b = int(too_long[0])
        raise ValueError(f"{who}: prompt {b} has {lengths[b]} tokens + "
                         f"max_new_tokens {max_new[b]} > the context length {config.max_seq_len}")
    keys = jnp.asarray(keys)
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.shape != (B,):
        raise ValueError(f"{who}: keys must be {B} typed PRNG keys "
                         f"(jax.random.split(key, {B})), got {keys.dtype}{keys.shape}")
    return ([p.tolist() for p in prompts], keys, max_new.astype(np.int32), temperature, top_p,
            top_k.astype(np.int32))


def generate_tokens(model: Llama | Engine, prompts: Sequence[Sequence[int]], keys: jax.Array,
                    *, max_new_tokens: int | Sequence[int],
                    temperature: float | Sequence[float] = 1.0,
                    top_p: float | Sequence[float] = 1.0, top_k: int | Sequence[int] = 0,
                    stop_ids: Sequence[int] = (), pad_id: int = 0) -> GenerationOutput:
    """Samples continuations of a batch of token-id prompts with the jitted decode loop.

    Row ``b``'s token ``t`` is drawn with ``fold_in(keys[b], t)``, so a row's output depends on
    its own key, prompt and parameters only: batched sampling equals one-by-one sampling, and
    identical prompts (or prompts that are prefixes of another) are prefilled once.

    Args:
      model: the decoder, or an :class:`Engine` (reuses its decode-layout weights; pass one
        when calling repeatedly).
      prompts: B non-empty lists of token ids (any lengths).
      keys: ``[B]`` typed PRNG keys, one per row.
      max_new_tokens: positive int, or one per row.
      temperature: ``τ >= 0`` (0 = greedy), scalar or per row.
      top_p: in ``(0, 1]``, scalar or per row (1 = off).
      top_k: int ``>= 0`` (0 = off), scalar or per row.
      stop_ids: token ids that end a row (the stop id is kept as its last token).
      pad_id: unused (kept for compatibility; padding is masked).

    Returns:
      A :class:`GenerationOutput`.

    Raises:
      ValueError: empty prompts, an empty prompt, ids outside the vocabulary, bad sampling
        parameters, or ``len(prompt) + max_new_tokens`` over ``model.config.max_seq_len``.
    """
    del pad_id
    if isinstance(model, Llama):
        engine = Engine(model)
    elif isinstance(model, Engine):
        engine = model
    else:
        raise TypeError(f"generate_tokens: model must be a Llama or an Engine, got "
                        f"{type(model).__name__}")
    prompts, keys, max_new, temperature, top_p, top_k = check_generation_args(
        engine.config, prompts, keys, max_new_tokens=max_new_tokens, temperature=temperature,
        top_p=top_p, top_k=top_k)
    out = engine.generate(prompts, keys, max_new_tokens=max_new, temperature=temperature,
                          top_p=top_p, top_k=top_k, stop_ids=stop_ids)
    B, N = len(prompts), int(max_new.max())
    tokens = np.zeros((B, N), np.int32)
    logprobs = np.zeros((B, N), np.float32)
    lengths = np.zeros((B,), np.int32)
    for b in range(B):
        n = len(out.tokens[b])
        tokens[b, :n], logprobs[b, :n], lengths[b] = out.tokens[b], out.logprobs[b], n
    return GenerationOutput(tokens, logprobs, lengths, out.stopped)
