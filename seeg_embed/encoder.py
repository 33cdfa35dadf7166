"""The Siamese 1-D CNN that maps a single-channel LFP segment to a functional embedding.

Architecture (the authors' prototype): per-segment robust standardisation, then

    Conv1d(1→32, k=32, s=8) → BatchNorm → ReLU → Dropout
    → Conv1d(32→64, k=32, s=2) → ReLU → Conv1d(64→64, k=4, s=2) → ReLU
    → global average pool over time → Linear(64→32).

The prototype lists activations only after the first block; we put a ReLU after the second
and third convolutions too (without them everything after the first ReLU is one linear
map). Both branches of the Siamese pair share these weights; an electrode's embedding is
the mean of its segments' embeddings (:func:`channel_embeddings`).

Standardisation: ``(x - median(x)) / (1.4826 · MAD(x))``, clipped to ``±clip``, so gains,
DC offsets and rare large artefacts do not dominate.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["SiameseEncoder", "channel_embeddings", "embed_segments", "robust_standardize"]


def robust_standardize(x: jax.Array, clip: float = 20.0, eps: float = 1e-6) -> jax.Array:
    """Per-row ``(x - median) / (1.4826 MAD)``, clipped to ``[-clip, clip]`` (last axis)."""
    med = jnp.median(x, axis=-1, keepdims=True)
    mad = jnp.median(jnp.abs(x - med), axis=-1, keepdims=True)
    return jnp.clip((x - med) / (1.4826 * mad + eps), -clip, clip)


class SiameseEncoder(nnx.Module):
    """1-D CNN encoder of single-channel segments ``[B, L] -> [B, embed_dim]``.

    Args:
      embed_dim: output width (32 in the paper).
      widths: channels of the three convolutions.
      kernels: their kernel sizes.
      strides: their strides.
      dropout: dropout rate after the first block.
      clip: clip of the robust standardisation.
      rngs: ``nnx.Rngs`` for the parameters.
    """

    def __init__(self, embed_dim: int = 32, *, widths: Sequence[int] = (32, 64, 64),
                 kernels: Sequence[int] = (32, 32, 4), strides: Sequence[int] = (8, 2, 2),
                 dropout: float = 0.2, clip: float = 20.0, rngs: nnx.Rngs):
        if not (len(widths) == len(kernels) == len(strides) == 3):
            raise ValueError(f"SiameseEncoder: widths, kernels and strides need 3 entries each, "
                             f"got {len(widths)}, {len(kernels)}, {len(strides)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SiameseEncoder: dropout must be in [0, 1), got {dropout!r}")
        if int(embed_dim) < 1:
            raise ValueError(f"SiameseEncoder: embed_dim must be >= 1, got {embed_dim!r}")
        w, k, s = list(widths), list(kernels), list(strides)
        self.kernels, self.strides, self.clip = tuple(k), tuple(s), float(clip)
        self.conv1 = nnx.Conv(1, w[0], k[0], s[0], padding="VALID", rngs=rngs)
        self.bn = nnx.BatchNorm(w[0], rngs=rngs)
        self.drop = nnx.Dropout(dropout)
        self.conv2 = nnx.Conv(w[0], w[1], k[1], s[1], padding="VALID", rngs=rngs)
        self.conv3 = nnx.Conv(w[1], w[2], k[2], s[2], padding="VALID", rngs=rngs)
        self.head = nnx.Linear(w[2], int(embed_dim), rngs=rngs)

    @property
    def min_length(self) -> int:
        """The shortest segment with at least one output step after every convolution."""
        n = 1
        for k, s in zip(reversed(self.kernels), reversed(self.strides), strict=True):
            n = (n - 1) * s + k
        return n

    def __call__(self, x: jax.Array, *, train: bool = False,
                 key: jax.Array | None = None) -> jax.Array:
        """Embeds segments ``x [B, L]``.

        Args:
          x: ``[B, L]`` raw segments (any scale).
          train: batch statistics and dropout on (needs ``key`` if dropout > 0).
          key: ``jax.random.key`` for dropout.

        Raises:
          ValueError: if ``x`` is not 2-D or shorter than :attr:`min_length`.
        """
        if x.ndim != 2:
            raise ValueError(f"SiameseEncoder: x must be [batch, samples], got shape {x.shape}")
        if x.shape[1] < self.min_length:
            raise ValueError(f"SiameseEncoder: segments have {x.shape[1]} samples, fewer than "
                             f"the {self.min_length} the convolutions need")
        h = robust_standardize(x.astype(jnp.float32), self.clip)[..., None]
        h = nnx.relu(self.bn(self.conv1(h), use_running_average=not train))
        if train and self.drop.rate > 0:
            if key is None:
                raise ValueError("SiameseEncoder: train=True with dropout needs a key")
            h = self.drop(h, deterministic=False, rngs=key)
        h = nnx.relu(self.conv2(h))
        h = nnx.relu(self.conv3(h))
        return self.head(jnp.mean(h, axis=1))


def embed_segments(model: SiameseEncoder, segments: jax.typing.ArrayLike,
                   batch_size: int = 256) -> np.ndarray:
    """Embeddings ``[M, D]`` of segments ``[M, L]`` in evaluation mode, in batches.

    Raises:
      ValueError: on a non-2-D input or ``batch_size < 1``.
    """
    segments = np.asarray(segments)
    if segments.ndim != 2:
        raise ValueError(f"embed_segments: segments must be [M, L], got {segments.shape}")
    if int(batch_size) < 1:
        raise ValueError(f"embed_segments: batch_size must be >= 1, got {batch_size!r}")
    out = []
    for i in range(0, len(segments), batch_size):
        chunk = segments[i:i + batch_size]
        pad = batch_size - len(chunk)
        if pad and len(segments) > batch_size:
            chunk = np.concatenate([chunk, np.zeros((pad, chunk.shape[1]), chunk.dtype)])
        out.append(np.asarray(_embed(model, jnp.asarray(chunk)))[:len(segments[i:i + batch_size])])
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), np.float32)


@nnx.jit
def _embed(model: SiameseEncoder, x: jax.Array) -> jax.Array:
    return model(x, train=False)


def channel_embeddings(segment_embeddings: jax.typing.ArrayLike, owner: jax.typing.ArrayLike,
                       n_channels: int) -> np.ndarray:
    """Per-channel mean of segment embeddings ``[n_channels, D]``.

    Args:
      segment_embeddings: ``[M, D]``.
      owner: ``[M]`` channel index of each segment in ``[0, n_channels)``.
      n_channels: number of channels.

    Raises:
      ValueError: on mismatched lengths, owners out of range, or a channel with no segment.
    """
    e = np.asarray(segment_embeddings, np.float64)
    owner = np.asarray(owner)
    if e.ndim != 2 or owner.shape != e.shape[:1]:
        raise ValueError(f"channel_embeddings: need [M, D] embeddings and [M] owners, got "
                         f"{e.shape} and {owner.shape}")
    if owner.size and (owner.min() < 0 or owner.max() >= n_channels):
        raise ValueError(f"channel_embeddings: owner ids must be in [0, {n_channels})")
    counts = np.bincount(owner, minlength=n_channels)
    if np.any(counts == 0):
        raise ValueError(f"channel_embeddings: channel(s) {np.flatnonzero(counts == 0).tolist()} "
                         "have no segment")
    sums = np.zeros((n_channels, e.shape[1]))
    np.add.at(sums, owner, e)
    return (sums / counts[:, None]).astype(np.float32)
