"""Embedding backbones: an MLP and a residual MLP for tables, a small CNN for images.

Each maps inputs ``[n, ...]`` to embeddings ``[n, embed_dim]`` on which a head from
:mod:`softstep.heads` predicts.

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025 (MLP / CNN backbones).
  Gorishniy et al. "Revisiting Deep Learning Models for Tabular Data." NeurIPS 2021 (ResNet
  for tables).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["BACKBONES", "CNN", "MLP", "ResMLP", "make_backbone"]

BACKBONES = ("mlp", "resmlp", "cnn")


class MLP(nnx.Module):
    """``e = W_L(gelu(... gelu(W_1 x)))``; image inputs are flattened."""

    def __init__(self, in_features: int, hidden: Sequence[int], embed_dim: int, *,
                 rngs: nnx.Rngs):
        sizes = [in_features, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(i, o, rngs=rngs) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.out = nnx.Linear(sizes[-1], embed_dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = jax.nn.gelu(layer(x))
        return self.out(x)


class ResMLP(nnx.Module):
    """Residual MLP: ``h <- h + W2 gelu(W1 LayerNorm(h))`` blocks, then ``LayerNorm`` + linear."""

    def __init__(self, in_features: int, hidden: Sequence[int], embed_dim: int, *,
                 rngs: nnx.Rngs):
        width = hidden[0]
        self.inp = nnx.Linear(in_features, width, rngs=rngs)
        self.norms = nnx.List([nnx.LayerNorm(width, rngs=rngs) for _ in hidden])
        self.ups = nnx.List([nnx.Linear(width, h, rngs=rngs) for h in hidden])
        self.downs = nnx.List([nnx.Linear(h, width, rngs=rngs) for h in hidden])
        self.norm_out = nnx.LayerNorm(width, rngs=rngs)
        self.out = nnx.Linear(width, embed_dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.inp(x.reshape(x.shape[0], -1))
        for norm, up, down in zip(self.norms, self.ups, self.downs, strict=True):
            h = h + down(jax.nn.gelu(up(norm(h))))
        return self.out(jax.nn.gelu(self.norm_out(h)))


class CNN(nnx.Module):
    """Small CNN for ``[n, H, W]`` or ``[n, H, W, C]`` images: conv(3x3)-gelu blocks with
    stride 2 after the first, global average pooling, then a linear embedding."""

    def __init__(self, in_channels: int, hidden: Sequence[int], embed_dim: int, *,
                 rngs: nnx.Rngs):
        sizes = [in_channels, *hidden]
        self.convs = nnx.List([
            nnx.Conv(i, o, kernel_size=(3, 3), strides=(1, 1) if j == 0 else (2, 2),
                     padding="SAME", rngs=rngs)
            for j, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        ])
        self.out = nnx.Linear(sizes[-1], embed_dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim == 3:
            x = x[..., None]
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
        return self.out(jnp.mean(x, axis=(1, 2)))


def make_backbone(kind: str, input_shape: Sequence[int], *, hidden: Sequence[int] = (128, 128),
                  embed_dim: int = 64, rngs: nnx.Rngs) -> nnx.Module:
    """Builds a backbone for inputs of per-example shape ``input_shape``.

    Args:
      kind: ``"mlp"``, ``"resmlp"`` (tables, or flattened images) or ``"cnn"`` (images
        ``(H, W)`` or ``(H, W, C)``).
      input_shape: shape of one example.
      hidden: layer widths (MLP/ResMLP) or channel counts (CNN).
      embed_dim: embedding width.
      rngs: ``nnx.Rngs``.

    Raises:
      ValueError: for an unknown kind, an empty ``hidden``, non-positive sizes, or a CNN on
        inputs that are not images.
    """
    if kind not in BACKBONES:
        raise ValueError(f"make_backbone: kind must be one of {list(BACKBONES)}, got {kind!r}")
    input_shape = tuple(int(s) for s in input_shape)
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) <= 0:
        raise ValueError(f"make_backbone: hidden must be positive sizes, got {hidden!r}")
    if not isinstance(embed_dim, int) or embed_dim <= 0:
        raise ValueError(f"make_backbone: embed_dim must be a positive int, got {embed_dim!r}")
    if not input_shape or min(input_shape) <= 0:
        raise ValueError(f"make_backbone: input_shape must be positive, got {input_shape!r}")
    if kind == "cnn":
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"make_backbone: cnn needs image inputs (H, W) or (H, W, C), got {input_shape}"
            )
        channels = input_shape[2] if len(input_shape) == 3 else 1
        return CNN(channels, hidden, embed_dim, rngs=rngs)
    cls = MLP if kind == "mlp" else ResMLP
    return cls(math.prod(input_shape), hidden, embed_dim, rngs=rngs)
