"""Language-model training pieces: next-token loss, a jitted data-parallel step, save/load.

The loss is the mean next-token cross-entropy
``L(θ) = -(1/N) Σ_{b,t} m_{b,t} log p_θ(x_{b,t+1} | x_{b,≤t})`` over the positions where the
mask ``m`` is on. The optimizer is any optax ``GradientTransformation`` (e.g. ``optax.adamw``
or ``muon_ns.muon``). With a mesh, the batch is sharded over ``'data'`` and the parameters are
replicated; ``jit`` inserts the gradient all-reduce.

The resumable loop with checkpoints lives in ``experiments/llm_tools/train.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from llm_tools.model import _LAYER_PARAMS, Llama, LlamaConfig, forward

__all__ = [
    "TrainState",
    "init_train_state",
    "load_model",
    "load_trained",
    "make_eval_step",
    "make_train_step",
    "next_token_loss",
    "save_model",
]


_ARRAYS = (*_LAYER_PARAMS, "embed", "final_norm", "lm_head", "gates")


def next_token_loss(model: Llama, tokens: jax.Array, mask: jax.Array | None = None,
                    gates: jax.Array | None = None) -> jax.Array:
    """Mean next-token cross-entropy (nats) of ``tokens [B, S]`` (``S >= 2``).

    Args:
      model: the LM.
      tokens: int ``[B, S]``; position ``t`` predicts ``t+1``.
      mask: optional ``[B, S-1]`` weights of the predicted positions (default all ones).
      gates: optional layer gates passed to the model.

    Raises:
      ValueError: on a non-2-D ``tokens``, ``S < 2`` or a mask of the wrong shape.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"next_token_loss: tokens must be [batch, seq] with seq >= 2, got "
                         f"shape {tokens.shape}")
    logits, _, _ = forward(model, tokens[:, :-1], gates=gates)
    targets = tokens[:, 1:]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    if mask is None:
        return jnp.mean(nll)
    mask = jnp.asarray(mask, jnp.float32)
    if mask.shape != targets.shape:
        raise ValueError(f"next_token_loss: mask must have shape {targets.shape}, got "
                         f"{mask.shape}")
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)


class TrainState(NamedTuple):
    """Trainable parameters, the rest of the model state, the optimizer state, the step."""

    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState
    step: jax.Array


def init_train_state(model: Llama, optimizer: optax.GradientTransformation
                     ) -> tuple[nnx.GraphDef, TrainState]:
    """Splits ``model`` into (graphdef, :class:`TrainState`) with a fresh optimizer state."""
    if not isinstance(model, Llama):
        raise TypeError(f"init_train_state: model must be a Llama, got {type(model).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"init_train_state: optimizer must be an optax GradientTransformation, "
                        f"got {type(optimizer).__name__}")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, TrainState(params, rest, optimizer.init(params), jnp.zeros((), jnp.int32))


def make_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                    mesh: jax.sharding.Mesh | None = None):
    """A jitted ``step(state, tokens) -> (state, loss)``.

    With ``mesh``, ``tokens`` is placed sharded over the mesh's ``'data'`` axis and the
    state replicated, so each device computes the gradient of its shard and ``jit`` averages.

    Raises:
      ValueError: if the mesh has no ``'data'`` axis.
    """
    if mesh is not None and "data" not in mesh.axis_names:
        raise ValueError(f"make_train_step: mesh must have a 'data' axis, got "
                         f"{mesh.axis_names}")

    def loss_fn(params, rest, tokens):
        return next_token_loss(nnx.merge(graphdef, params, rest), tokens)

    @jax.jit
    def step(state: TrainState, tokens: jax.Array):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, state.rest, tokens)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, state.rest, opt_state, state.step + 1), loss

    if mesh is None:
        return step
    data = jax.NamedSharding(mesh, jax.P("data"))
    replicated = jax.NamedSharding(mesh, jax.P())

    def sharded_step(state, tokens):
        n = mesh.shape["data"]
        if tokens.shape[0] % n:
            raise ValueError(f"train step: batch size {tokens.shape[0]} is not divisible by "
                             f"the {n} devices of the 'data' axis")
        state = jax.device_put(state, replicated)
        return step(state, jax.device_put(tokens, data))

    return sharded_step


def make_eval_step(graphdef: nnx.GraphDef):
    """A jitted ``eval(state, tokens) -> mean next-token loss``."""

    @jax.jit
    def evaluate(state: TrainState, tokens: jax.Array):
        return next_token_loss(nnx.merge(graphdef, state.params, state.rest), tokens)

    return evaluate


def save_model(path: str | os.PathLike, model: Llama) -> Path:
    """Writes ``config.json`` and ``params.npz`` (atomic) into directory ``path``."""
    if not isinstance(model, Llama):
        raise TypeError(f"save_model: model must be a Llama, got {type(model).__name__}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    flat = {name: np.asarray(getattr(model, name)[...]) for name in _ARRAYS
            if getattr(model, name) is not None}
    tmp = path / "params.tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path / "params.npz")
    cfg = {k: getattr(model.config, k) for k in model.config.__dataclass_fields__}
    (path / "config.json.tmp").write_text(json.dumps(cfg, indent=1))
    os.replace(path / "config.json.tmp", path / "config.json")
    return path


def load_model(path: str | os.PathLike) -> Llama:
    """Reads a model written by :func:`save_model`.

    Raises:
      FileNotFoundError: if ``config.json`` or ``params.npz`` is missing.
    """
    path = Path(path)
    for name in ("config.json", "params.npz"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"load_model: {path / name} is missing (expected a "
                                    "directory written by llm_tools.train.save_model)")
    config = LlamaConfig(**json.loads((path / "config.json").read_text()))
    model = nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0)))
    with np.load(path / "params.npz") as data:
        for name in _ARRAYS:
            var = getattr(model, name)
            if var is None:
                continue
            if name not in data or data[name].shape != var.get_value().shape:
                raise ValueError(f"load_model: {path / 'params.npz'} lacks {name!r} of shape "
                                 f"{var.get_value().shape}")
            var.set_value(jnp.asarray(data[name], var.get_value().dtype))
    return model


def load_trained(path: str | os.PathLike):
    """``(model, ByteTokenizer())`` of a byte-level LM saved by :func:`save_model`."""
    from llm_tools.tokenizer import ByteTokenizer

    return load_model(path), ByteTokenizer()
