"""Jitted, data-parallel training steps for the encoder and the channel transformer.

A model is split once into ``(graphdef, TrainState)`` where the state holds the trainable
parameters, the rest of the model state (BatchNorm statistics), the optax state and the step.
With a mesh, every batch array is sharded over ``'data'`` and the state replicated; ``jit``
computes BatchNorm statistics and gradient means over the global batch.

Encoder objectives: ``"hadsell"`` (batch of pairs ``(x_a, x_b, different)``, the mean of
:func:`~seeg_embed.contrastive_loss`) or ``"supcon"`` (batch ``(x, labels)``,
:func:`~seeg_embed.supcon_loss`). Transformer objective: :func:`masked_reconstruction_loss`
plus the codebook loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from seeg_embed.encoder import SiameseEncoder
from seeg_embed.losses import contrastive_loss, supcon_loss
from seeg_embed.transformer import ChannelTransformer, masked_reconstruction_loss

__all__ = [
    "ENCODER_LOSSES",
    "ReconBatch",
    "TrainState",
    "init_train_state",
    "make_encoder_step",
    "make_transformer_step",
    "merge_model",
]

ENCODER_LOSSES = ("hadsell", "supcon")


class TrainState(NamedTuple):
    """Trainable parameters, the rest of the model state, the optimizer state, the step."""

    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState
    step: jax.Array


class ReconBatch(NamedTuple):
    """One transformer batch (``[B, C, ...]``; targets are the windows to reconstruct)."""

    embeddings: jax.Array
    windows: jax.Array
    targets: jax.Array
    channel_mask: jax.Array
    target_mask: jax.Array


def init_train_state(model: nnx.Module, optimizer: optax.GradientTransformation
                     ) -> tuple[nnx.GraphDef, TrainState]:
    """Splits ``model`` into ``(graphdef, TrainState)`` with a fresh optimizer state.

    Raises:
      TypeError: if ``model`` is not an ``nnx.Module`` or ``optimizer`` not an optax
        ``GradientTransformation``.
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"init_train_state: model must be an nnx.Module, got "
                        f"{type(model).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"init_train_state: optimizer must be an optax GradientTransformation, "
                        f"got {type(optimizer).__name__}")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, TrainState(params, rest, optimizer.init(params), jnp.zeros((), jnp.int32))


def merge_model(graphdef: nnx.GraphDef, state: TrainState) -> nnx.Module:
    """The model of a :class:`TrainState`."""
    return nnx.merge(graphdef, state.params, state.rest)


def _shard(step: Callable, mesh: jax.sharding.Mesh | None, where: str) -> Callable:
    if mesh is None:
        return step
    if "data" not in mesh.axis_names:
        raise ValueError(f"{where}: mesh must have a 'data' axis, got {mesh.axis_names}")
    data = jax.NamedSharding(mesh, jax.P("data"))
    replicated = jax.NamedSharding(mesh, jax.P())
    n = mesh.shape["data"]

    def sharded(state, batch, key):
        sizes = {x.shape[0] for x in jax.tree.leaves(batch)}
        bad = [s for s in sizes if s % n]
        if bad:
            raise ValueError(f"{where}: batch size {bad[0]} is not divisible by the {n} devices "
                             "of the 'data' axis")
        state = jax.device_put(state, replicated)
        return step(state, jax.device_put(batch, data), key)

    return sharded


def make_encoder_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, *,
                      loss: str = "hadsell", margin: float = 1.0, temperature: float = 0.1,
                      mesh: jax.sharding.Mesh | None = None) -> Callable:
    """A jitted ``step(state, batch, key) -> (state, loss)`` for a :class:`SiameseEncoder`.

    ``batch`` is ``(x_a, x_b, different)`` for ``"hadsell"`` and ``(x, labels)`` for
    ``"supcon"``; ``key`` drives dropout.

    Raises:
      ValueError: for an unknown loss, a non-positive margin/temperature, or a mesh
        without a ``'data'`` axis.
    """
    if loss not in ENCODER_LOSSES:
        raise ValueError(f"make_encoder_step: loss must be one of {list(ENCODER_LOSSES)}, got "
                         f"{loss!r}")
    if not margin > 0 or not temperature > 0:
        raise ValueError(f"make_encoder_step: margin and temperature must be > 0, got "
                         f"{margin!r}, {temperature!r}")

    def loss_fn(params, rest, batch, key):
        model = nnx.merge(graphdef, params, rest, copy=True)
        if not isinstance(model, SiameseEncoder):
            raise TypeError(f"make_encoder_step: graphdef is a {type(model).__name__}, not a "
                            "SiameseEncoder")
        if loss == "hadsell":
            x_a, x_b, different = batch
            emb = model(jnp.concatenate([x_a, x_b]), train=True, key=key)
            value = jnp.mean(contrastive_loss(emb[:x_a.shape[0]], emb[x_a.shape[0]:],
                                              different, margin))
        else:
            x, labels = batch
            value = supcon_loss(model(x, train=True, key=key), labels, temperature)
        _, _, new_rest = nnx.split(model, nnx.Param, ...)
        return value, new_rest

    @jax.jit
    def step(state: TrainState, batch, key):
        (value, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.rest, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, rest, opt_state, state.step + 1), value

    return _shard(step, mesh, "encoder step")


def make_transformer_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, *,
                          vq_weight: float = 1.0, mesh: jax.sharding.Mesh | None = None
                          ) -> Callable:
    """A jitted ``step(state, batch: ReconBatch, key) -> (state, loss)`` for a
    :class:`ChannelTransformer`; the loss is the masked reconstruction MSE plus
    ``vq_weight`` times the codebook loss (reported without it).

    Raises:
      ValueError: on a negative ``vq_weight`` or a mesh without a ``'data'`` axis.
    """
    if not vq_weight >= 0:
        raise ValueError(f"make_transformer_step: vq_weight must be >= 0, got {vq_weight!r}")

    def loss_fn(params, rest, batch: ReconBatch, key):
        model = nnx.merge(graphdef, params, rest, copy=True)
        if not isinstance(model, ChannelTransformer):
            raise TypeError(f"make_transformer_step: graphdef is a {type(model).__name__}, not "
                            "a ChannelTransformer")
        out = model(batch.embeddings, batch.windows, batch.channel_mask, batch.target_mask,
                    train=True, key=key)
        mse = masked_reconstruction_loss(out.pred, batch.targets, batch.target_mask,
                                         batch.channel_mask)
        return mse + vq_weight * out.vq_loss, mse

    @jax.jit
    def step(state: TrainState, batch: ReconBatch, key):
        (_, mse), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.rest, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, state.rest, opt_state, state.step + 1), mse

    return _shard(step, mesh, "transformer step")
