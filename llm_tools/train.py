"""Language-model training pieces: next-token loss, a jitted data-parallel step, save/load.

The loss is the mean next-token cross-entropy
``L(θ) = -(1/N) Σ_{b,t} m_{b,t} log p_θ(x_{b,t+1} | x_{b,≤t})`` over the positions where the
mask ``m`` is on; :func:`token_logprobs` gives per-token log-probabilities of padded batches
for any other objective (policy gradients, distillation), and :func:`make_train_step` trains
any loss of ``(model, batch)``. The optimizer is any optax ``GradientTransformation`` (e.g.
``optax.adamw`` or ``muon_ns.muon``). With a mesh, the batch is sharded over ``'data'`` and
the parameters are replicated; ``jit`` inserts the gradient all-reduce.

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
    "token_logprobs",
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


def token_logprobs(model: Llama, ids: jax.Array, mask: jax.Array | None = None, *,
                   gates: jax.Array | None = None, temperature: float = 1.0,
                   chunk: int | None = None, remat: bool | None = None) -> jax.Array:
    """Differentiable, padding-aware ``log p(ids[t+1] | ids[≤t])`` at temperature ``τ``.

    ``out[b, t] = log softmax(z_{b,t} / τ)[ids[b, t+1]]`` where both ``t`` and ``t+1`` are real
    tokens of row ``b`` (``mask`` True), else 0. Positions count real tokens only, so a
    left-padded rollout scores exactly as the unpadded one. The output projection runs over
    chunks of ``chunk`` positions under ``jax.checkpoint``, so neither the forward nor the
    backward pass holds ``[B, T, V]`` logits (only ``[B, chunk, V]``).

    Args:
      model: the LM.
      ids: int ``[B, T]`` (``T >= 2``).
      mask: bool ``[B, T]``, False at padding (default: all real).
      gates: optional ``[L]`` layer gates (differentiable; E³-Pruner's masks).
      temperature: ``τ > 0`` (match the sampler's temperature for RL ratios).
      chunk: positions per output-projection chunk (default: about 32 MB of logits).
      remat: recompute each layer in the backward pass (default ``model.config.remat``).

    Returns:
      ``[B, T-1]`` float32.

    Raises:
      ValueError: on a non-2-D or too short ``ids``, a mask of another shape, or ``τ <= 0``.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"token_logprobs: model must be a Llama, got {type(model).__name__}")
    ids = jnp.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] < 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(f"token_logprobs: ids must be an int array [batch, seq] with seq >= 2, "
                         f"got {ids.dtype}{ids.shape}")
    B, T = ids.shape
    mask = jnp.ones((B, T), bool) if mask is None else jnp.asarray(mask)
    if mask.shape != (B, T):
        raise ValueError(f"token_logprobs: mask must have shape {(B, T)}, got {mask.shape}")
    mask = mask.astype(bool)
    if not isinstance(temperature, jax.Array) and not temperature > 0:
        raise ValueError(f"token_logprobs: temperature must be > 0, got {temperature!r}")
    V = model.config.vocab_size
    if chunk is None:
        chunk = max(1, (8 << 20) // max(1, B * V))
    chunk = int(min(chunk, T - 1))
    _, _, h = forward(model, ids, attention_mask=mask, gates=gates, logits=False, remat=remat)
    head = model.embed[...].T if model.lm_head is None else model.lm_head[...]
    h, targets = h[:, :-1], ids[:, 1:]
    n = -(-(T - 1) // chunk)
    pad = n * chunk - (T - 1)
    h = jnp.pad(h, ((0, 0), (0, pad), (0, 0))).reshape(B, n, chunk, -1).swapaxes(0, 1)
    tg = jnp.pad(targets, ((0, 0), (0, pad))).reshape(B, n, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def one(args):
        hc, tc = args
        z = jnp.einsum("bcd,dv->bcv", hc, head.astype(hc.dtype),
                       preferred_element_type=jnp.float32) / temperature
        zt = jnp.take_along_axis(z, tc[..., None], -1)[..., 0]
        return zt - jax.nn.logsumexp(z, -1)

    lp = jax.lax.map(one, (h, tg)).swapaxes(0, 1).reshape(B, n * chunk)[:, : T - 1]
    return jnp.where(mask[:, :-1] & mask[:, 1:], lp, 0.0)


class TrainState(NamedTuple):
    """Trainable parameters, the rest of the model state, the optimizer state, the step."""

    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState
    step: jax.Array


def init_train_state(model: Llama, optimizer: optax.GradientTransformation, *,
                     wrt=nnx.Param) -> tuple[nnx.GraphDef, TrainState]:
    """Splits ``model`` into (graphdef, :class:`TrainState`) with a fresh optimizer state.

    Args:
      model: the LM.
      optimizer: any optax ``GradientTransformation``.
      wrt: an ``nnx`` filter of the trained variables (default ``nnx.Param``; e.g.
        ``LayerGate`` to train only the per-layer gates, or ``(nnx.Param, LayerGate)``).
    """
    if not isinstance(model, Llama):
        raise TypeError(f"init_train_state: model must be a Llama, got {type(model).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"init_train_state: optimizer must be an optax GradientTransformation, "
                        f"got {type(optimizer).__name__}")
    graphdef, params, rest = nnx.split(model, wrt, ...)
    return graphdef, TrainState(params, rest, optimizer.init(params), jnp.zeros((), jnp.int32))


def _default_loss(model, tokens):
    return next_token_loss(model, tokens), {}


def make_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                    loss_fn=None, *, mesh: jax.sharding.Mesh | None = None,
                    remat: bool = False):
    """A jitted training step for any loss of ``(model, batch)``.

    With ``loss_fn=None`` the step is ``step(state, tokens) -> (state, loss)`` on the mean
    next-token loss. With ``loss_fn(model, batch) -> (loss, aux)`` (any differentiable
    function: a GRPO objective on :func:`token_logprobs`, a distillation loss, ...) it is
    ``step(state, batch) -> (state, loss, aux)``; ``batch`` is any pytree of arrays (e.g. with
    the per-layer ``gates`` the loss passes to the model), and the gradient is taken with
    respect to ``state.params`` (what :func:`init_train_state` was told to train).

    Args:
      graphdef: from :func:`init_train_state`.
      optimizer: the same optax transformation.
      loss_fn: ``(model, batch) -> (scalar loss, aux pytree)`` or None.
      mesh: with a ``'data'`` axis, every batch leaf is sharded over it on its leading axis
        and the state replicated; ``jit`` averages the gradients.
      remat: recompute each layer's activations in the backward pass (less memory).

    Raises:
      ValueError: if the mesh has no ``'data'`` axis; TypeError if ``loss_fn`` is not
        callable.
    """
    if mesh is not None and (not isinstance(mesh, jax.sharding.Mesh)
                             or "data" not in mesh.axis_names):
        raise ValueError(f"make_train_step: mesh must have a 'data' axis, got "
                         f"{getattr(mesh, 'axis_names', type(mesh).__name__)}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"make_train_step: loss_fn must be callable (model, batch) -> "
                        f"(loss, aux), got {type(loss_fn).__name__}")
    user_loss = loss_fn is not None
    loss_fn = loss_fn or _default_loss

    def objective(params, rest, batch):
        model = nnx.merge(graphdef, params, rest)
        if remat:
            model.config = model.config.replace(remat=True)
        out = loss_fn(model, batch)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("make_train_step: loss_fn must return (loss, aux), got "
                            f"{type(out).__name__}")
        return out

    @jax.jit
    def step(state: TrainState, batch):
        (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, state.rest, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = TrainState(params, state.rest, opt_state, state.step + 1)
        return (new, loss, aux) if user_loss else (new, loss)

    if mesh is None:
        return step
    data = jax.NamedSharding(mesh, jax.P("data"))
    replicated = jax.NamedSharding(mesh, jax.P())

    def sharded_step(state, batch):
        n = mesh.shape["data"]
        for leaf in jax.tree.leaves(batch):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] % n:
                raise ValueError(f"train step: batch size {jnp.shape(leaf)[:1]} is not "
                                 f"divisible by the {n} devices of the 'data' axis")
        state = jax.device_put(state, replicated)
        return step(state, jax.device_put(batch, data))

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
