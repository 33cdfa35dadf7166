"""Flax NNX models of Mask-Guided Classification: U-Net segmenter, encoders, fusions, baselines.

Images and masks are channels-last ``(batch, n_bins, n_frames, n_bands)`` (as made by
:mod:`mgc.representation`). Every model standardises each image per example and band
(zero mean, unit variance over time and frequency), so spectrograms made by different
transforms (dB, PCEN) reach the network on the same scale.

MGC: an image encoder ``E_x`` and a mask encoder ``E_m`` (same architecture, separate
weights) map the spectrogram ``x`` and the soft mask ``m`` to mid-level feature maps
``h_x = E_x(x)``, ``h_m = E_m(m)`` (a quarter of the input size), a fusion combines them,
and a convolutional head classifies the fused map. Fusions:

* ``concat``: ``h = W [h_x; h_m]`` (1x1 convolution of the stacked channels);
* ``gated``: ``g = sigma(W_g [h_x; h_m])``, ``h = g * h_x + (1 - g) * h_m``;
* ``cross_attention``: image tokens attend to mask tokens (2x2-pooled, so keys are a
  quarter as many; learned positions ``p_q``, ``p_k``),
  ``h = LN(h_x + MHA(q = h_x + p_q, k = pool(h_m) + p_k, v = pool(h_m)))``;
* ``early``: no mask encoder; ``x`` and ``m`` are stacked as input channels.

Baselines: :class:`SpectrogramCNN` (the same encoder and head on the spectrogram alone, its
width chosen by :func:`matched_width` for the same parameter budget) and a larger CNN
(:func:`large_cnn`).

References:
  Razig, Soulaymani, Benabbou, Cauchy: Multi-Representation Attention Framework for
  Underwater Bioacoustic Denoising and Recognition. Ronneberger, Fischer, Brox: U-Net,
  MICCAI 2015.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "FUSIONS",
    "Encoder",
    "MGCClassifier",
    "SpectrogramCNN",
    "UNet",
    "count_params",
    "large_cnn",
    "matched_width",
    "standardize",
]

FUSIONS = ("concat", "gated", "cross_attention", "early")


def standardize(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Zero mean, unit variance over (frequency, time) per example and channel."""
    mean = jnp.mean(x, axis=(-3, -2), keepdims=True)
    std = jnp.std(x, axis=(-3, -2), keepdims=True)
    return (x - mean) / (std + eps)


def _check_image(fn: str, name: str, x: jax.Array, channels: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"{fn}: {name} must be (batch, n_bins, n_frames, channels), got shape "
                         f"{tuple(x.shape)}")
    if x.shape[-1] != channels:
        raise ValueError(f"{fn}: {name} has {x.shape[-1]} channels, expected {channels}")


def _pool(x: jax.Array) -> jax.Array:
    return nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


class _Block(nnx.Module):
    """Two 3x3 convolutions with GELU."""

    def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, cout, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, kernel_size=(3, 3), rngs=rngs)

    def __call__(self, x):
        return jax.nn.gelu(self.conv2(jax.nn.gelu(self.conv1(x))))


def space_to_depth(x: jax.Array, r: int) -> jax.Array:
    """``(B, F, T, C) -> (B, F/r, T/r, r*r*C)``: each r x r patch becomes one position."""
    b, f, t, c = x.shape
    x = x.reshape(b, f // r, r, t // r, r, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, f // r, t // r, r * r * c)


def depth_to_space(x: jax.Array, r: int) -> jax.Array:
    """Inverse of :func:`space_to_depth`."""
    b, f, t, c = x.shape
    x = x.reshape(b, f, t, r, r, c // (r * r))
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, f * r, t * r, c // (r * r))


class Encoder(nnx.Module):
    """A patchify stem and ``stages`` blocks; output ``(B, F/2^(stages+1), T/2^(stages+1), D)``.

    The stem turns 4x4 patches into channels (:func:`space_to_depth`, like a 4x4 convolution
    with stride 4), then stage 1 applies two 3x3 convolutions (``2 width`` channels) and each
    later stage a 2x2 average pool and two 3x3 convolutions doubling the width. GELU after
    every convolution. With the default ``stages=1`` the output is a quarter of the input
    grid with ``D = 2 width`` channels. (Patchifying first keeps every convolution at >= 16
    channels, which XLA's CPU backend runs several times faster per FLOP than full-grid
    convolutions over 2-8 channels.)
    """

    def __init__(self, in_channels: int, width: int, stages: int = 1, *, rngs: nnx.Rngs):
        if stages < 1:
            raise ValueError(f"Encoder: stages must be >= 1, got {stages}")
        widths = [2 * width * 2**s for s in range(stages)]
        self.blocks = nnx.List([_Block(i, o, rngs=rngs) for i, o in
                                zip([16 * in_channels] + widths[:-1], widths, strict=True)])
        self.out_features = widths[-1]

    def __call__(self, x):
        x = space_to_depth(x, 4)
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else _pool(x))
        return x


class _Head(nnx.Module):
    """3x3 conv, pool, 3x3 conv, global average, linear classifier."""

    def __init__(self, cin: int, num_classes: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, 2 * cin, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(2 * cin, 2 * cin, kernel_size=(3, 3), rngs=rngs)
        self.out = nnx.Linear(2 * cin, num_classes, rngs=rngs)

    def __call__(self, h):
        h = _pool(jax.nn.gelu(self.conv1(h)))
        h = jax.nn.gelu(self.conv2(h))
        return self.out(jnp.mean(h, axis=(1, 2)))


class MGCClassifier(nnx.Module):
    """Mask-guided classifier: ``logits = head(fuse(E_x(x), E_m(m)))`` (``early``: stacked input).

    Args:
      fusion: one of :data:`FUSIONS`.
      in_channels: bands per image (and per mask).
      num_classes: output classes.
      width: encoder width (mid-level features have ``2 * width`` channels).
      grid: (n_bins, n_frames) of the input (sets the attention positions; divisible by 8).
      num_heads: attention heads of ``cross_attention``.
      rngs: ``nnx.Rngs``.

    Raises:
      ValueError: an unknown fusion, or a grid not divisible by 8.
    """

    def __init__(self, fusion: str, in_channels: int, num_classes: int, width: int = 8,
                 grid: tuple[int, int] = (64, 64), num_heads: int = 2, *, rngs: nnx.Rngs):
        if fusion not in FUSIONS:
            raise ValueError(f"MGCClassifier: fusion must be one of {list(FUSIONS)}, got "
                             f"{fusion!r}")
        if grid[0] % 8 or grid[1] % 8:
            raise ValueError(f"MGCClassifier: grid must be divisible by 8, got {grid}")
        self.fusion = fusion
        self.in_channels = in_channels
        self.num_classes = num_classes
        stacked = 2 * in_channels if fusion == "early" else in_channels
        self.image_encoder = Encoder(stacked, width, rngs=rngs)
        d = self.image_encoder.out_features
        if fusion != "early":
            self.mask_encoder = Encoder(in_channels, width, rngs=rngs)
        if fusion == "concat":
            self.mix = nnx.Conv(2 * d, d, kernel_size=(1, 1), rngs=rngs)
        elif fusion == "gated":
            self.gate = nnx.Conv(2 * d, d, kernel_size=(1, 1), rngs=rngs)
        elif fusion == "cross_attention":
            tokens = (grid[0] // 4) * (grid[1] // 4)
            self.query_positions = nnx.Param(0.02 * jax.random.normal(rngs.params(),
                                                                      (tokens, d)))
            self.key_positions = nnx.Param(0.02 * jax.random.normal(rngs.params(),
                                                                    (tokens // 4, d)))
            self.attention = nnx.MultiHeadAttention(num_heads, d, qkv_features=d, out_features=d,
                                                    decode=False, rngs=rngs)
            self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.head = _Head(d, num_classes, rngs=rngs)

    def features(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """The fused mid-level feature map ``(B, F/4, T/4, 2 width)``."""
        _check_image("MGCClassifier", "x", x, self.in_channels)
        _check_image("MGCClassifier", "mask", mask, self.in_channels)
        if mask.shape != x.shape:
            raise ValueError(f"MGCClassifier: mask has shape {tuple(mask.shape)} but x has "
                             f"{tuple(x.shape)}")
        x = standardize(x)
        if self.fusion == "early":
            return self.image_encoder(jnp.concatenate([x, mask], axis=-1))
        hx, hm = self.image_encoder(x), self.mask_encoder(mask)
        if self.fusion == "concat":
            return self.mix(jnp.concatenate([hx, hm], axis=-1))
        if self.fusion == "gated":
            g = jax.nn.sigmoid(self.gate(jnp.concatenate([hx, hm], axis=-1)))
            return g * hx + (1.0 - g) * hm
        b, f, t, d = hx.shape
        qx = hx.reshape(b, f * t, d)
        km = _pool(hm).reshape(b, (f // 2) * (t // 2), d)
        attended = self.attention(qx + self.query_positions[...], km + self.key_positions[...],
                                  km, deterministic=True)
        return self.norm(qx + attended).reshape(b, f, t, d)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """Class logits ``(B, num_classes)`` of spectrograms ``x`` guided by soft masks ``mask``."""
        return self.head(self.features(x, mask))


class SpectrogramCNN(nnx.Module):
    """The baseline: encoder + head on the spectrogram alone (``mask`` is accepted, ignored).

    Args:
      in_channels, num_classes: as for :class:`MGCClassifier`.
      width: encoder width.
      stages: encoder stages (1 as in MGC; more for the larger CNN).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 8, stages: int = 1, *,
                 rngs: nnx.Rngs):
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.encoder = Encoder(in_channels, width, stages, rngs=rngs)
        self.head = _Head(self.encoder.out_features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        _check_image("SpectrogramCNN", "x", x, self.in_channels)
        return self.head(self.encoder(standardize(x)))


def large_cnn(in_channels: int, num_classes: int, width: int = 16, *,
              rngs: nnx.Rngs) -> SpectrogramCNN:
    """The high-capacity baseline: a wider, two-stage :class:`SpectrogramCNN`."""
    return SpectrogramCNN(in_channels, num_classes, width=width, stages=2, rngs=rngs)


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars."""
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param))))


def matched_width(target_params: int, build: Callable[[int], nnx.Module],
                  widths: range = range(4, 65)) -> int:
    """The width whose model's parameter count is closest to ``target_params``.

    Args:
      target_params: the budget (e.g. ``count_params`` of an MGC model).
      build: ``width -> model`` (built abstractly with ``nnx.eval_shape``: no weights are
        initialised).
      widths: candidates.
    """
    if target_params <= 0:
        raise ValueError(f"matched_width: target_params must be > 0, got {target_params}")
    best, best_gap = None, None
    for w in widths:
        n = count_params(nnx.eval_shape(lambda w=w: build(w)))
        gap = abs(n - target_params)
        if best_gap is None or gap < best_gap:
            best, best_gap = w, gap
    return int(best)


class UNet(nnx.Module):
    """U-Net segmenter: soft-mask logits ``(B, F, T, out_channels)`` of ``(B, F, T, C)`` images.

    2x2 patches to channels (:func:`space_to_depth`), then three resolutions (widths
    ``w, 2w, 4w``) with skip connections by concatenation and nearest upsampling, and a 1x1
    convolution predicting each 2x2 patch's logits (:func:`depth_to_space`, a pixel
    shuffle). ``jax.nn.sigmoid`` of the output is the soft mask.

    Raises:
      ValueError: an input whose grid is not divisible by 8 or has the wrong channels.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, width: int = 16, *,
                 rngs: nnx.Rngs):
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.enc1 = _Block(4 * in_channels, width, rngs=rngs)
        self.enc2 = _Block(width, 2 * width, rngs=rngs)
        self.bottleneck = _Block(2 * width, 4 * width, rngs=rngs)
        self.dec2 = _Block(4 * width + 2 * width, 2 * width, rngs=rngs)
        self.dec1 = _Block(2 * width + width, width, rngs=rngs)
        self.out = nnx.Conv(width, 4 * out_channels, kernel_size=(1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_image("UNet", "x", x, self.in_channels)
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"UNet: n_bins and n_frames must be divisible by 8, got "
                             f"{tuple(x.shape[1:3])}")
        e1 = self.enc1(space_to_depth(standardize(x), 2))
        e2 = self.enc2(_pool(e1))
        b = self.bottleneck(_pool(e2))
        up = jnp.repeat(jnp.repeat(b, 2, axis=1), 2, axis=2)
        d2 = self.dec2(jnp.concatenate([up, e2], axis=-1))
        up = jnp.repeat(jnp.repeat(d2, 2, axis=1), 2, axis=2)
        d1 = self.dec1(jnp.concatenate([up, e1], axis=-1))
        return depth_to_space(self.out(d1), 2)
