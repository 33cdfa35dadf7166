"""A channel-agnostic transformer over a variable set of electrodes, with masked-channel
reconstruction.

Each channel ``c`` of a window is one token

    t_c = W_e q(e_c) + (m_c ? u_mask : W_w x_c),

where ``e_c`` is the channel's functional embedding (optionally quantized by a learned
codebook ``q``), ``x_c`` its signal window (or any per-window features), ``m_c`` whether it
is masked and ``u_mask`` a learned vector. There is no positional or subject-specific
parameter: channel identity comes only from ``e_c``, so the model is permutation-equivariant
over channels and runs on any channel count. Pre-LayerNorm blocks (multi-head self-attention
whose keys exclude padded channels, then an MLP) are followed by a linear head that
reconstructs each masked channel's window; the loss is the mean squared error over masked,
real channels.

Codebook (van den Oord et al., 2017): ``q(e) = c_k`` with ``k = argmin_k ||e - c_k||``, the
straight-through estimator ``e + sg(q(e) - e)``, and the loss
``||sg(e) - q(e)||² + β ||e - sg(q(e))||²``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "ChannelTransformer",
    "Codebook",
    "ReconOutput",
    "check_masks",
    "masked_reconstruction_loss",
    "random_channel_mask",
    "region_channel_mask",
]


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_masks(channel_mask, target_mask, where: str = "check_masks") -> None:
    """Raises ``ValueError`` if a window masks a padded channel or has no visible channel.

    Only checks concrete (non-traced) arrays.
    """
    if not (_concrete(channel_mask) and _concrete(target_mask)):
        return
    cm, tm = np.asarray(channel_mask, bool), np.asarray(target_mask, bool)
    if cm.shape != tm.shape:
        raise ValueError(f"{where}: channel_mask {cm.shape} and target_mask {tm.shape} differ")
    if np.any(tm & ~cm):
        raise ValueError(f"{where}: target_mask masks padded channels")
    visible = np.sum(cm & ~tm, axis=-1)
    if np.any(visible == 0):
        rows = np.flatnonzero(visible.reshape(-1) == 0)[:10].tolist()
        raise ValueError(f"{where}: zero channels left after masking in window(s) {rows}; "
                         "keep at least one visible channel per window")


class Codebook(nnx.Module):
    """A learned vector-quantization codebook of ``num_codes`` vectors of width ``dim``."""

    def __init__(self, num_codes: int, dim: int, *, beta: float = 0.25, rngs: nnx.Rngs):
        if int(num_codes) < 2:
            raise ValueError(f"Codebook: num_codes must be >= 2, got {num_codes!r}")
        self.codes = nnx.Param(jax.random.normal(rngs.params(), (int(num_codes), int(dim))))
        self.beta = float(beta)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(straight-through quantized x, code ids, per-row VQ loss)`` for ``x [..., dim]``."""
        codes = self.codes[...]
        d = jnp.sum((x[..., None, :] - codes) ** 2, axis=-1)
        ids = jnp.argmin(d, axis=-1)
        q = codes[ids]
        loss = (jnp.sum((jax.lax.stop_gradient(x) - q) ** 2, -1)
                + self.beta * jnp.sum((x - jax.lax.stop_gradient(q)) ** 2, -1))
        return x + jax.lax.stop_gradient(q - x), ids, loss


class _Block(nnx.Module):
    def __init__(self, d: int, heads: int, mlp: int, dropout: float, rngs: nnx.Rngs):
        self.heads = heads
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.out = nnx.Linear(d, d, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.fc1 = nnx.Linear(d, mlp, rngs=rngs)
        self.fc2 = nnx.Linear(mlp, d, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, h, key_mask, train, key):
        B, C, d = h.shape
        q, k, v = jnp.split(self.qkv(self.ln1(h)), 3, axis=-1)
        split = lambda t: t.reshape(B, C, self.heads, d // self.heads)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // self.heads)
        logits = jnp.where(key_mask[:, None, None, :], logits, -1e30)
        att = jax.nn.softmax(logits, axis=-1)
        a = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(B, C, d)
        a = self.out(a)
        k1 = k2 = None
        if train and self.drop.rate > 0:
            k1, k2 = jax.random.split(key)
            a = self.drop(a, deterministic=False, rngs=k1)
        h = h + a
        m = self.fc2(nnx.gelu(self.fc1(self.ln2(h))))
        if k2 is not None:
            m = self.drop(m, deterministic=False, rngs=k2)
        return h + m


class ReconOutput(NamedTuple):
    """``pred [B, C, out_dim]`` (zero on padded channels) and the codebook loss (scalar)."""

    pred: jax.Array
    vq_loss: jax.Array


class ChannelTransformer(nnx.Module):
    """Masked-channel reconstruction over a padded channel set.

    Args:
      embed_dim: width of the functional embeddings.
      window_len: width of each channel's window (samples or features).
      d_model: token width.
      num_heads: attention heads (divides ``d_model``).
      num_layers: transformer blocks.
      mlp_dim: hidden width of each block's MLP.
      out_dim: reconstruction width (default ``window_len``).
      codebook_size: ``0`` for none, else the number of codes quantizing the embeddings.
      dropout: dropout rate in the blocks.
      rngs: ``nnx.Rngs``.
    """

    def __init__(self, embed_dim: int, window_len: int, *, d_model: int = 64,
                 num_heads: int = 4, num_layers: int = 2, mlp_dim: int = 128,
                 out_dim: int | None = None, codebook_size: int = 0, dropout: float = 0.0,
                 rngs: nnx.Rngs):
        for name, v in (("embed_dim", embed_dim), ("window_len", window_len),
                        ("d_model", d_model), ("num_heads", num_heads),
                        ("num_layers", num_layers), ("mlp_dim", mlp_dim)):
            if not (isinstance(v, int | np.integer) and v >= 1):
                raise ValueError(f"ChannelTransformer: {name} must be a positive int, got {v!r}")
        if d_model % num_heads:
            raise ValueError(f"ChannelTransformer: num_heads ({num_heads}) must divide d_model "
                             f"({d_model})")
        self.embed_dim, self.window_len = int(embed_dim), int(window_len)
        self.out_dim = int(out_dim or window_len)
        self.codebook = Codebook(codebook_size, embed_dim, rngs=rngs) if codebook_size else None
        self.embed_proj = nnx.Linear(embed_dim, d_model, rngs=rngs)
        self.window_proj = nnx.Linear(window_len, d_model, rngs=rngs)
        self.mask_token = nnx.Param(0.02 * jax.random.normal(rngs.params(), (d_model,)))
        self.blocks = nnx.List([_Block(d_model, num_heads, mlp_dim, dropout, rngs)
                                for _ in range(num_layers)])
        self.ln = nnx.LayerNorm(d_model, rngs=rngs)
        self.head = nnx.Linear(d_model, self.out_dim, rngs=rngs)

    def __call__(self, embeddings: jax.Array, windows: jax.Array, channel_mask: jax.Array,
                 target_mask: jax.Array, *, train: bool = False,
                 key: jax.Array | None = None) -> ReconOutput:
        """Reconstructs the masked channels.

        Args:
          embeddings: ``[B, C, embed_dim]`` functional embedding per channel.
          windows: ``[B, C, window_len]``; masked channels' windows are ignored.
          channel_mask: ``[B, C]`` True for real (non-padded) channels.
          target_mask: ``[B, C]`` True for the channels to hide and reconstruct.
          train: dropout on (needs ``key`` when dropout > 0).
          key: ``jax.random.key``.

        Raises:
          ValueError: on wrong shapes, a masked padded channel, or a window with zero
            visible channels after masking.
        """
        if embeddings.ndim != 3 or embeddings.shape[-1] != self.embed_dim:
            raise ValueError(f"ChannelTransformer: embeddings must be [B, C, {self.embed_dim}], "
                             f"got {embeddings.shape}")
        B, C, _ = embeddings.shape
        if windows.shape != (B, C, self.window_len):
            raise ValueError(f"ChannelTransformer: windows must be {(B, C, self.window_len)}, "
                             f"got {windows.shape}")
        if channel_mask.shape != (B, C) or target_mask.shape != (B, C):
            raise ValueError(f"ChannelTransformer: channel_mask and target_mask must be {(B, C)},"
                             f" got {channel_mask.shape} and {target_mask.shape}")
        check_masks(channel_mask, target_mask, "ChannelTransformer")
        channel_mask = jnp.asarray(channel_mask, bool)
        target_mask = jnp.asarray(target_mask, bool) & channel_mask
        vq_loss = jnp.zeros(())
        e = embeddings
        if self.codebook is not None:
            e, _, per = self.codebook(e)
            vq_loss = jnp.sum(per * channel_mask) / jnp.maximum(jnp.sum(channel_mask), 1)
        w = jnp.where(target_mask[..., None], 0.0, windows)
        tok = jnp.where(target_mask[..., None], self.mask_token[...], self.window_proj(w))
        h = self.embed_proj(e) + tok
        keys = (jax.random.split(key, len(self.blocks)) if (train and key is not None)
                else [None] * len(self.blocks))
        for block, k in zip(self.blocks, keys, strict=True):
            h = block(h, channel_mask, train and k is not None, k)
        pred = self.head(self.ln(h))
        return ReconOutput(jnp.where(channel_mask[..., None], pred, 0.0), vq_loss)


def masked_reconstruction_loss(pred: jax.Array, target: jax.Array, target_mask: jax.Array,
                               channel_mask: jax.Array | None = None) -> jax.Array:
    """Mean squared error over masked real channels (and over the window axis).

    Raises:
      ValueError: on shapes that do not match.
    """
    if pred.shape != target.shape or pred.shape[:2] != target_mask.shape:
        raise ValueError(f"masked_reconstruction_loss: pred {pred.shape}, target {target.shape} "
                         f"and target_mask {target_mask.shape} do not match")
    m = jnp.asarray(target_mask, bool)
    if channel_mask is not None:
        m = m & jnp.asarray(channel_mask, bool)
    err = jnp.mean((pred - target) ** 2, axis=-1)
    return jnp.sum(jnp.where(m, err, 0.0)) / jnp.maximum(jnp.sum(m), 1)


def random_channel_mask(key: jax.Array, channel_mask: jax.Array, fraction: float) -> jax.Array:
    """Masks ``clip(round(fraction · n), 1, n - 1)`` random real channels of each window.

    Windows with a single real channel get no masked channel (nothing would stay visible).

    Raises:
      ValueError: if ``fraction`` is not in (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"random_channel_mask: fraction must be in (0, 1), got {fraction!r}")
    cm = jnp.asarray(channel_mask, bool)
    n = jnp.sum(cm, axis=-1, keepdims=True)
    k = jnp.clip(jnp.round(fraction * n), 1, n - 1)
    scores = jnp.where(cm, jax.random.uniform(key, cm.shape), jnp.inf)
    rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
    return (rank < k) & cm


def region_channel_mask(key: jax.Array, channel_mask: jax.Array, region: jax.Array) -> jax.Array:
    """Masks every channel of one random region present in each window (the authors'
    masked-region protocol); windows whose channels all share one region get no mask.

    Args:
      key: ``jax.random.key``.
      channel_mask: ``[B, C]`` real channels.
      region: ``[B, C]`` region ids (``-1`` unknown: never masked).
    """
    cm = jnp.asarray(channel_mask, bool) & (jnp.asarray(region) >= 0)
    region = jnp.asarray(region)
    B, C = cm.shape
    # pick a random labelled channel; mask its whole region
    scores = jnp.where(cm, jax.random.uniform(key, (B, C)), -1.0)
    chosen = region[jnp.arange(B), jnp.argmax(scores, axis=-1)]
    mask = cm & (region == chosen[:, None])
    leaves_visible = jnp.any(jnp.asarray(channel_mask, bool) & ~mask, axis=-1, keepdims=True)
    return mask & leaves_visible
