"""Losses and a jit-compiled training loop for the segmenter and classifiers.

:func:`make_train_chunk` compiles ``steps`` AdamW steps as one ``lax.scan`` (one call of the
returned function runs them all); a caller loops over chunks in Python to log, checkpoint
and resume between them, and over seeds. Seeds run one after another rather than under
``vmap``: a ``vmap`` over convolution weights becomes a grouped convolution, which XLA's
CPU backend runs far slower than the plain one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

__all__ = [
    "classification_loss",
    "init_params",
    "make_optimizer",
    "make_predict",
    "make_train_chunk",
    "predict",
    "segmentation_loss",
    "soft_dice_loss",
]


def soft_dice_loss(logits: jax.Array, targets: jax.Array, eps: float = 1.0) -> jax.Array:
    """Per-example soft Dice loss ``1 - (2 sum p g + eps) / (sum p + sum g + eps)``, p = sigma(z).

    Args:
      logits: mask logits ``(B, ...)``.
      targets: soft targets in [0, 1], same shape.
      eps: smoothing (keeps empty masks finite: an all-zero target and prediction give 0).

    Returns:
      ``(B,)`` losses.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"soft_dice_loss: logits have shape {tuple(logits.shape)} but targets "
                         f"have {tuple(targets.shape)}")
    p = jax.nn.sigmoid(logits)
    axes = tuple(range(1, logits.ndim))
    inter = jnp.sum(p * targets, axis=axes)
    total = jnp.sum(p, axis=axes) + jnp.sum(targets, axis=axes)
    return 1.0 - (2.0 * inter + eps) / (total + eps)


def segmentation_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean binary cross-entropy (soft targets) plus mean soft Dice loss."""
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, targets))
    return bce + jnp.mean(soft_dice_loss(logits, targets))


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy with integer labels."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"classification_loss: expected logits (B, K) and labels (B,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def make_optimizer(learning_rate: float, total_steps: int, warmup_steps: int = 50,
                   weight_decay: float = 1e-4) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay to 0 over ``total_steps``."""
    if total_steps <= 0:
        raise ValueError(f"make_optimizer: total_steps must be > 0, got {total_steps}")
    warmup = min(warmup_steps, max(total_steps // 2, 1))
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, total_steps)
    return optax.adamw(schedule, weight_decay=weight_decay)


def init_params(build: Callable[[nnx.Rngs], nnx.Module],
                seed: int) -> tuple[nnx.GraphDef, nnx.State]:
    """Builds the model with ``nnx.Rngs(seed)``; returns ``(graphdef, params)``."""
    return nnx.split(build(nnx.Rngs(int(seed))), nnx.Param)


def make_train_chunk(
    graphdef: nnx.GraphDef,
    loss_fn: Callable[[nnx.Module, tuple[jax.Array, ...]], jax.Array],
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    steps: int,
) -> Callable[..., Any]:
    """A jitted ``(params, opt_state, key, *data) -> (params, opt_state, key, mean_loss)``.

    Each of the ``steps`` steps draws ``batch_size`` example indices uniformly (with
    replacement) from the first axis of the ``data`` arrays, casts floating data to float32
    (data may be stored as float16) and takes one optimizer step on ``loss_fn(model, batch)``.
    ``params`` and ``opt_state`` are donated.

    Raises:
      ValueError: non-positive ``batch_size`` or ``steps``.
    """
    if batch_size <= 0 or steps <= 0:
        raise ValueError(f"make_train_chunk: batch_size and steps must be > 0, got "
                         f"{batch_size}, {steps}")

    def chunk(params, opt_state, key, *data):
        n = data[0].shape[0]

        def step(carry, _):
            p, s, k = carry
            k, sub = jax.random.split(k)
            idx = jax.random.randint(sub, (batch_size,), 0, n)
            batch = tuple(jnp.take(a, idx, axis=0).astype(jnp.float32)
                          if jnp.issubdtype(a.dtype, jnp.floating) else jnp.take(a, idx, axis=0)
                          for a in data)
            loss, grads = jax.value_and_grad(
                lambda q: loss_fn(nnx.merge(graphdef, q), batch))(p)
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s, k), loss

        (params, opt_state, key), losses = jax.lax.scan(step, (params, opt_state, key), None,
                                                       length=steps)
        return params, opt_state, key, jnp.mean(losses)

    return jax.jit(chunk, donate_argnums=(0, 1))


def make_predict(graphdef: nnx.GraphDef,
                 apply: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """A jitted ``(params, *batch) -> apply(nnx.merge(graphdef, params), *batch)``.

    Build it once per architecture and pass it to :func:`predict` for every seed and data
    set, so the forward pass is compiled once.
    """
    return jax.jit(lambda p, *xs: apply(nnx.merge(graphdef, p), *xs))


def predict(
    fn: Callable[..., jax.Array],
    params: nnx.State,
    inputs: Sequence[Any],
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """``fn(params, *batch)`` over a data set in batches of ``batch_size``; a NumPy array.

    Args:
      fn: from :func:`make_predict`.
      params: the model's parameters.
      inputs: arrays sharing their first (example) axis; cast to float32 per batch.
      batch_size: examples per call (the last batch is padded, so one shape is compiled).

    Raises:
      ValueError: no inputs, or inputs of different lengths.
    """
    if not inputs:
        raise ValueError("predict: inputs must hold at least one array")
    n = inputs[0].shape[0]
    if any(x.shape[0] != n for x in inputs):
        raise ValueError(f"predict: inputs differ in length: {[x.shape[0] for x in inputs]}")
    outs = []
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        batch = [jnp.asarray(x[lo:hi], jnp.float32) for x in inputs]
        if hi - lo < batch_size and n > batch_size:
            batch = [jnp.pad(b, [(0, batch_size - (hi - lo))] + [(0, 0)] * (b.ndim - 1))
                     for b in batch]
        outs.append(np.asarray(fn(params, *batch))[: hi - lo])
    return np.concatenate(outs, axis=0)
