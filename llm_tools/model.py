"""A Llama-family decoder in Flax NNX: RMSNorm, RoPE, grouped-query attention, SwiGLU.

The layer parameters are stacked on a leading layer axis and the forward pass is a
``lax.scan`` over layers, so a 30-layer model compiles as fast as a 1-layer one, the KV cache
is one array per K and V (``[layers, batch, time, kv_heads, head_dim]``) updated in place,
and :func:`drop_layers` is an index into the stacked arrays.

Every layer ``l`` has a gate ``g_l`` multiplying both of its residual branches,

    h ← h + g_l · Attn(RMSNorm(h)),    h ← h + g_l · MLP(RMSNorm(h)),

so ``g_l = 0`` turns layer ``l`` into the identity (the layer-pruning hook that E³-Pruner's
Gumbel-TopK masks use), and :func:`drop_layers` removing the layer is exactly that.

References:
  Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023.
  Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021.
  Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models", 2023.
  Shazeer, "GLU Variants Improve Transformer", 2020.
  Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019.
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

__all__ = [
    "KVCache",
    "Llama",
    "LlamaConfig",
    "LayerGate",
    "drop_layers",
    "forward",
    "hidden_states",
    "init_cache",
    "shard_model",
]

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_LAYER_PARAMS = ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture of a Llama-family decoder.

    Attributes:
      vocab_size: number of tokens ``V``.
      dim: model width ``d``.
      n_layers: number of decoder layers ``L``.
      n_heads: query heads ``H``.
      n_kv_heads: key/value heads ``H_kv`` (``H`` must be a multiple; ``H_kv = H`` is MHA).
      hidden_dim: SwiGLU inner width ``F``.
      head_dim: per-head width (default ``d / H``).
      rope_base: RoPE base ``θ`` (frequencies ``θ^{-2i/d_h}``).
      norm_eps: RMSNorm ``ε``.
      tie_embeddings: output projection is the transposed input embedding.
      max_seq_len: context length; prompts plus new tokens may not exceed it.
      dtype: compute dtype, ``"float32"`` or ``"bfloat16"`` (softmax and norms stay fp32).
      param_dtype: parameter storage dtype, ``"float32"`` or ``"bfloat16"``.
      remat: recompute each layer's activations in the backward pass (training memory).
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden_dim: int
    head_dim: int | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    max_seq_len: int = 2048
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim",
                     "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LlamaConfig: {name} must be a positive int, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"LlamaConfig: n_heads ({self.n_heads}) must be a multiple of n_kv_heads "
                f"({self.n_kv_heads})")
        if self.head_dim is None:
            if self.dim % self.n_heads:
                raise ValueError(f"LlamaConfig: dim ({self.dim}) is not divisible by n_heads "
                                 f"({self.n_heads}); pass head_dim explicitly")
            object.__setattr__(self, "head_dim", self.dim // self.n_heads)
        if self.head_dim <= 0 or self.head_dim % 2:
            raise ValueError(f"LlamaConfig: head_dim must be a positive even int (RoPE rotates "
                             f"pairs), got {self.head_dim!r}")
        if not self.rope_base > 0:
            raise ValueError(f"LlamaConfig: rope_base must be > 0, got {self.rope_base!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"LlamaConfig: norm_eps must be > 0, got {self.norm_eps!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(f"LlamaConfig: {name} must be one of {sorted(_DTYPES)}, got "
                                 f"{getattr(self, name)!r}")

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    def replace(self, **changes) -> LlamaConfig:
        return dataclasses.replace(self, **changes)


class LayerGate(nnx.Variable):
    """Per-layer residual gates ``g_l`` (not an ``nnx.Param``: optimizers leave them alone)."""


class KVCache(NamedTuple):
    """Keys and values of every layer, ``[L, B, T, H_kv, d_h]`` each; slot ``t`` is time ``t``."""

    k: jax.Array
    v: jax.Array


class Llama(nnx.Module):
    """A Llama-family decoder-only transformer with stacked layer parameters.

    Call it as ``model(tokens)`` for logits of a full sequence (training, scoring), or use
    :func:`forward` with a :class:`KVCache` for incremental decoding.

    Args:
      config: the architecture.
      rngs: ``nnx.Rngs`` for initialisation (normal(0, 0.02), zero-mean; norms at one).
    """

    def __init__(self, config: LlamaConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"Llama: config must be a LlamaConfig, got {type(config).__name__}")
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"Llama: rngs must be nnx.Rngs, got {type(rngs).__name__}")
        self.config = config
        c = config
        pd = _DTYPES[c.param_dtype]
        hd, L = c.head_dim, c.n_layers

        def normal(shape, fan_in=None):
            std = 0.02 if fan_in is None else fan_in ** -0.5
            return nnx.Param((std * jax.random.normal(rngs.params(), shape)).astype(pd))

        self.embed = normal((c.vocab_size, c.dim))
        self.attn_norm = nnx.Param(jnp.ones((L, c.dim), pd))
        self.wq = normal((L, c.dim, c.n_heads * hd), c.dim)
        self.wk = normal((L, c.dim, c.n_kv_heads * hd), c.dim)
        self.wv = normal((L, c.dim, c.n_kv_heads * hd), c.dim)
        self.wo = normal((L, c.n_heads * hd, c.dim), c.n_heads * hd * 2 * L)
        self.mlp_norm = nnx.Param(jnp.ones((L, c.dim), pd))
        self.w_gate = normal((L, c.dim, c.hidden_dim), c.dim)
        self.w_up = normal((L, c.dim, c.hidden_dim), c.dim)
        self.w_down = normal((L, c.hidden_dim, c.dim), c.hidden_dim * 2 * L)
        self.final_norm = nnx.Param(jnp.ones((c.dim,), pd))
        self.lm_head = None if c.tie_embeddings else normal((c.dim, c.vocab_size), c.dim)
        self.gates = LayerGate(jnp.ones((L,), jnp.float32))

    def __call__(self, tokens: jax.Array, *, attention_mask: jax.Array | None = None,
                 gates: jax.Array | None = None) -> jax.Array:
        """Logits ``[B, S, V]`` of a full (optionally left-padded) sequence, causal attention.

        Args:
          tokens: int ``[B, S]``.
          attention_mask: optional bool ``[B, S]``, False at padding (positions count real
            tokens only, so a left-padded row gets the same logits as the unpadded one).
          gates: optional ``[L]`` layer gates overriding ``model.gates`` (differentiable).
        """
        return forward(self, tokens, attention_mask=attention_mask, gates=gates)[0]


def _rms_norm(x, weight, eps):
    """``RMSNorm(x) = x / sqrt(mean(x²) + ε) · w``, in fp32."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (y * weight.astype(jnp.float32)).astype(x.dtype)


def _rope(x, positions, base):
    """Rotary embedding, half-split convention: ``x·cos(pθ) + rotate_half(x)·sin(pθ)``.

    ``θ_i = base^{-2i/d_h}`` for ``i < d_h/2``; ``rotate_half([x1, x2]) = [-x2, x1]``.
    ``x`` is ``[B, S, heads, d_h]`` and ``positions`` ``[B, S]``.
    """
    d = x.shape[-1]
    inv_freq = 1.0 / (base ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, S, d/2]
    cos = jnp.concatenate([jnp.cos(angles)] * 2, -1)[:, :, None, :]
    sin = jnp.concatenate([jnp.sin(angles)] * 2, -1)[:, :, None, :]
    x32 = x.astype(jnp.float32)
    x1, x2 = x32[..., : d // 2], x32[..., d // 2:]
    rotated = jnp.concatenate([-x2, x1], -1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


def _embed_lookup(table, tokens):
    """``table[tokens]``, keeping the batch sharding of ``tokens`` under an explicit mesh."""
    sharding = jax.typeof(tokens).sharding
    spec = getattr(sharding, "spec", None)
    if spec is not None and any(p is not None for p in spec):
        out = jax.NamedSharding(sharding.mesh, jax.P(*spec, None))
        return table.at[tokens].get(out_sharding=out)
    return table[tokens]


def init_cache(config: LlamaConfig, batch_size: int, length: int) -> KVCache:
    """An all-zero :class:`KVCache` for ``batch_size`` rows and ``length`` time slots."""
    if not isinstance(config, LlamaConfig):
        raise TypeError(f"init_cache: config must be a LlamaConfig, got {type(config).__name__}")
    for name, value in (("batch_size", batch_size), ("length", length)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"init_cache: {name} must be a positive int, got {value!r}")
    shape = (config.n_layers, batch_size, length, config.n_kv_heads, config.head_dim)
    return KVCache(jnp.zeros(shape, config.compute_dtype), jnp.zeros(shape, config.compute_dtype))


def forward(model: Llama, tokens: jax.Array, *, positions: jax.Array | None = None,
            attention_mask: jax.Array | None = None, cache: KVCache | None = None,
            cache_index: jax.Array | int | None = None, kv_mask: jax.Array | None = None,
            gates: jax.Array | None = None, last_only: bool = False, logits: bool = True,
            return_kv: bool = False, remat: bool | None = None
            ) -> tuple[jax.Array | None, KVCache | None, jax.Array]:
    """One forward pass: ``(logits [B,S,V] fp32, updated cache or None, hidden [B,S,d])``.

    Without a cache, attention is causal over the ``S`` given tokens, restricted to
    ``attention_mask``; positions default to the running count of real tokens. With a cache,
    the ``S`` tokens are written to slots ``cache_index … cache_index+S-1`` and attend to every
    earlier slot where ``kv_mask`` ``[B, T]`` is True (plus themselves, causally).

    Attention per head group: ``softmax(q kᵀ / sqrt(d_h) + mask) v``, with query head ``h``
    reading key/value head ``h // (H / H_kv)``. ``last_only=True`` computes the logits of the
    last position only (``[B, 1, V]``; a prefill needs nothing else); ``logits=False`` skips
    the output projection (the first result is then None: hidden states only).
    ``return_kv=True`` (without a cache) returns the keys and values of the ``S`` tokens as a
    :class:`KVCache` of ``S`` slots (what a prefill needs). ``remat`` recomputes each layer's
    activations in the backward pass instead of storing them (default ``config.remat``).

    Raises:
      ValueError: on wrong ranks/shapes or a missing ``cache_index``/``kv_mask`` with a cache.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"forward: model must be a Llama, got {type(model).__name__}")
    c = model.config
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"forward: tokens must be an int array [batch, seq], got "
                         f"{tokens.dtype}{tokens.shape}")
    B, S = tokens.shape
    if attention_mask is not None:
        attention_mask = jnp.asarray(attention_mask, bool)
        if attention_mask.shape != (B, S):
            raise ValueError(f"forward: attention_mask must have shape {(B, S)}, got "
                             f"{attention_mask.shape}")
    if positions is None:
        if attention_mask is None:
            positions = jnp.broadcast_to(jnp.arange(S), (B, S))
        else:
            positions = jnp.maximum(jnp.cumsum(attention_mask, axis=1) - 1, 0)
    positions = jnp.asarray(positions)
    if positions.shape != (B, S):
        raise ValueError(f"forward: positions must have shape {(B, S)}, got {positions.shape}")
    if gates is None:
        gates = model.gates[...]
    gates = jnp.asarray(gates, jnp.float32)
    if gates.shape != (c.n_layers,):
        raise ValueError(f"forward: gates must have shape ({c.n_layers},), got {gates.shape}")
    if cache is not None:
        if cache_index is None or kv_mask is None:
            raise ValueError("forward: with a cache, cache_index and kv_mask are required")
        T = cache.k.shape[2]
        if cache.k.shape != (c.n_layers, B, T, c.n_kv_heads, c.head_dim):
            raise ValueError(f"forward: cache.k has shape {cache.k.shape}, expected "
                             f"{(c.n_layers, B, T, c.n_kv_heads, c.head_dim)}")
        if kv_mask.shape != (B, T):
            raise ValueError(f"forward: kv_mask must have shape {(B, T)}, got {kv_mask.shape}")

    if return_kv and cache is not None:
        raise ValueError("forward: return_kv=True is for a pass without a cache")
    if cache is not None:
        cache_index = jnp.asarray(cache_index, jnp.int32)
        kv_mask = jnp.asarray(kv_mask, bool)
    remat = c.remat if remat is None else bool(remat)
    graphdef, state = nnx.split(model)
    logits_out, cache_out, h, _ = _forward_jit(
        graphdef, state, tokens, positions, attention_mask, cache, cache_index, kv_mask, gates,
        last_only=bool(last_only), logits=bool(logits), return_kv=bool(return_kv), remat=remat)
    return logits_out, cache_out, h


def hidden_states(model: Llama, tokens: jax.Array, *, attention_mask: jax.Array | None = None,
                  gates: jax.Array | None = None) -> jax.Array:
    """The residual stream entering every layer and leaving the last: ``[L+1, B, S, d]``.

    ``hidden_states(...)[0]`` is the token embedding and ``[l]`` the output of layer ``l``
    (before the final RMSNorm), for interpretability probes and layer-wise distillation.

    Raises:
      ValueError: as :func:`forward`.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"hidden_states: model must be a Llama, got {type(model).__name__}")
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"hidden_states: tokens must be an int array [batch, seq], got "
                         f"{tokens.dtype}{tokens.shape}")
    B, S = tokens.shape
    c = model.config
    if attention_mask is not None:
        attention_mask = jnp.asarray(attention_mask, bool)
        if attention_mask.shape != (B, S):
            raise ValueError(f"hidden_states: attention_mask must have shape {(B, S)}, got "
                             f"{attention_mask.shape}")
        positions = jnp.maximum(jnp.cumsum(attention_mask, axis=1) - 1, 0)
    else:
        positions = jnp.broadcast_to(jnp.arange(S), (B, S))
    gates = jnp.asarray(model.gates[...] if gates is None else gates, jnp.float32)
    if gates.shape != (c.n_layers,):
        raise ValueError(f"hidden_states: gates must have shape ({c.n_layers},), got "
                         f"{gates.shape}")
    graphdef, state = nnx.split(model)
    return _forward_jit(graphdef, state, tokens, positions, attention_mask, None, None, None,
                        gates, logits=False, all_hidden=True)[3]


@functools.partial(jax.jit, static_argnames=("graphdef", "last_only", "logits", "return_kv",
                                             "all_hidden", "remat"))
def _forward_jit(graphdef, state, tokens, positions, attention_mask, cache, index, kv_mask,
                 gates, *, last_only=False, logits=True, return_kv=False, all_hidden=False,
                 remat=False):
    model = nnx.merge(graphdef, state)
    c = model.config
    B, S = tokens.shape
    cd = c.compute_dtype
    hd, H, Hkv = c.head_dim, c.n_heads, c.n_kv_heads
    G = H // Hkv
    h = _embed_lookup(model.embed[...].astype(cd), tokens)
    neg = jnp.finfo(jnp.float32).min

    if cache is None:
        causal = jnp.tril(jnp.ones((S, S), bool))[None]
        mask = causal if attention_mask is None else causal & attention_mask[:, None, :]
        mask = mask | jnp.eye(S, dtype=bool)[None]  # padding queries see themselves: no NaN
    else:
        q_slot = index + jnp.arange(S)
        k_slot = jnp.arange(cache.k.shape[2])
        causal = k_slot[None, :] <= q_slot[:, None]  # [S, T]
        mask = causal[None] & (kv_mask[:, None, :] | (k_slot[None, :] == q_slot[:, None])[None])

    layer_params = {name: getattr(model, name)[...] for name in _LAYER_PARAMS}

    def layer(carry, xs):
        h, ck, cv = carry
        p, g, li = xs
        x = _rms_norm(h, p["attn_norm"], c.norm_eps)
        q = (x @ p["wq"].astype(cd)).reshape(B, S, H, hd)
        k = (x @ p["wk"].astype(cd)).reshape(B, S, Hkv, hd)
        v = (x @ p["wv"].astype(cd)).reshape(B, S, Hkv, hd)
        q = _rope(q, positions, c.rope_base)
        k = _rope(k, positions, c.rope_base)
        if ck is not None:
            ck = jax.lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), (li, 0, index, 0, 0))
            cv = jax.lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), (li, 0, index, 0, 0))
            keys, values = ck[li], cv[li]
        else:
            keys, values = k, v
        qg = q.reshape(B, S, Hkv, G, hd)
        scores = jnp.einsum("bskgd,btkd->bkgst", qg, keys.astype(cd),
                            preferred_element_type=jnp.float32) * (hd ** -0.5)
        scores = jnp.where(mask[:, None, None], scores, neg)
        probs = jax.nn.softmax(scores, axis=-1).astype(cd)
        attn = jnp.einsum("bkgst,btkd->bskgd", probs, values.astype(cd)).reshape(B, S, H * hd)
        h = h + (g * (attn @ p["wo"].astype(cd)).astype(jnp.float32)).astype(cd)
        x = _rms_norm(h, p["mlp_norm"], c.norm_eps)
        mlp = (jax.nn.silu(x @ p["w_gate"].astype(cd)) * (x @ p["w_up"].astype(cd)))
        h_out = h + (g * (mlp @ p["w_down"].astype(cd)).astype(jnp.float32)).astype(cd)
        ys = ((k, v) if return_kv else None, h_out if all_hidden else None)
        return (h_out, ck, cv), ys

    if remat:
        layer = jax.checkpoint(layer)
    ck0 = None if cache is None else cache.k
    cv0 = None if cache is None else cache.v
    h_in = h
    (h, ck, cv), (kv, hs) = jax.lax.scan(
        layer, (h, ck0, cv0), (layer_params, gates, jnp.arange(c.n_layers)))
    all_h = jnp.concatenate([h_in[None], hs]) if all_hidden else None
    h = _rms_norm(h, model.final_norm[...], c.norm_eps)
    if last_only:
        h = h[:, -1:]
    new_cache = KVCache(*kv) if return_kv else None if cache is None else KVCache(ck, cv)
    if not logits:
        return None, new_cache, h, all_h
    head = model.embed[...].T if model.lm_head is None else model.lm_head[...]
    out = jnp.einsum("bsd,dv->bsv", h, head.astype(cd), preferred_element_type=jnp.float32)
    return out, new_cache, h, all_h


def drop_layers(model: Llama, keep: Sequence[int] | np.ndarray) -> Llama:
    """A new, smaller model with only the layers in ``keep`` (in the given, increasing order).

    The result equals the original with the gates of the removed layers set to zero.

    Args:
      model: the model (not modified).
      keep: distinct layer indices in ``[0, L)``, strictly increasing, at least one; or a
        bool mask of length ``L``.

    Raises:
      ValueError: on out-of-range, repeated, unsorted or empty ``keep``.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"drop_layers: model must be a Llama, got {type(model).__name__}")
    L = model.config.n_layers
    keep = np.asarray(keep)
    if keep.dtype == bool:
        if keep.shape != (L,):
            raise ValueError(f"drop_layers: a bool keep mask must have shape ({L},), got "
                             f"{keep.shape}")
        keep = np.flatnonzero(keep)
    if keep.ndim != 1 or keep.size == 0 or not np.issubdtype(keep.dtype, np.integer):
        raise ValueError(f"drop_layers: keep must be a non-empty 1-D list of layer indices, got "
                         f"{keep.tolist()!r}")
    if keep.min() < 0 or keep.max() >= L:
        raise ValueError(f"drop_layers: keep indices must lie in [0, {L}), got {keep.tolist()}")
    if np.any(np.diff(keep) <= 0):
        raise ValueError(f"drop_layers: keep must be strictly increasing (no repeats), got "
                         f"{keep.tolist()}")
    new = nnx.clone(model)
    new.config = model.config.replace(n_layers=int(keep.size))
    idx = jnp.asarray(keep)
    for name in _LAYER_PARAMS:
        setattr(new, name, nnx.Param(getattr(model, name)[...][idx]))
    new.gates = LayerGate(model.gates[...][idx])
    return new


def _param_spec(name: str, ndim: int, axis: str) -> jax.P:
    column = ("wq", "wk", "wv", "w_gate", "w_up")  # shard the output features
    row = ("wo", "w_down")  # shard the input features
    if name in column:
        return jax.P(*([None] * (ndim - 1)), axis)
    if name in row:
        return jax.P(*([None] * (ndim - 2)), axis, None)
    return jax.P()


def shard_model(model: Llama, mesh: jax.sharding.Mesh, axis: str | None = None) -> Llama:
    """Places the parameters on ``mesh``: replicated, or Megatron-sharded over ``axis``.

    With ``axis`` given, the column projections (``wq, wk, wv, w_gate, w_up``) are split on
    their output features and the row projections (``wo, w_down``) on their input features;
    the rest is replicated. ``jit`` then inserts the collectives (build the mesh with
    ``axis_types=AxisType.Auto`` for the model axis so XLA propagates the shardings).
    Modifies ``model`` in place and returns it.

    Raises:
      ValueError: if ``axis`` is not a mesh axis.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"shard_model: model must be a Llama, got {type(model).__name__}")
    if axis is not None and axis not in mesh.axis_names:
        raise ValueError(f"shard_model: axis must be one of the mesh axes {mesh.axis_names}, "
                         f"got {axis!r}")
    for name in (*_LAYER_PARAMS, "embed", "final_norm", "lm_head", "gates"):
        var = getattr(model, name)
        if var is None:
            continue
        value = var[...]
        spec = jax.P() if axis is None else _param_spec(name, value.ndim, axis)
        var.set_value(jax.device_put(value, jax.NamedSharding(mesh, spec)))
    return model
