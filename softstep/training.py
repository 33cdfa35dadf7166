"""End-to-end training of backbone + head with early stopping that keeps the best model.

Training minimises the MSE of the head's predictions on each mini-batch, where a neighbour
head's neighbours are the *other* items of the batch (self excluded with ``-inf``):

    L = (1/B) sum_i || y_i - sum_{j != i} softmax_j(s_ij + T_ij) y_j ||^2 .

Each epoch ends with the validation MSE of the head attending over the whole training
split; the parameters with the lowest validation MSE so far are carried along and
returned, and training stops after ``patience`` epochs without improvement (or at a
non-finite validation loss). The whole loop is one ``lax.while_loop``, so it is
``jit``-able and ``vmap``-able over seeds (finished seeds are frozen by ``vmap``'s
``while_loop`` batching).

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from softstep.backbones import BACKBONES, make_backbone
from softstep.heads import KNNHead, LinearHead, NadarayaWatsonHead, SoftStepHead
from softstep.similarity import check_similarity
from softstep.step import MODES, check_step_kind

__all__ = [
    "HEADS",
    "ModelSpec",
    "NeighborModel",
    "TrainConfig",
    "TrainResult",
    "make_model",
    "predict_dense",
    "train_model",
]

HEADS = ("linear", "nw", "softstep", "knn")


class ModelSpec(NamedTuple):
    """What to build: backbone kind and sizes, and the head.

    ``head="knn"`` trains the embedding with a Nadaraya-Watson head (hard top-k has no
    gradient) and predicts with a :class:`~softstep.KNNHead` of ``knn_k`` neighbours.
    """

    input_shape: tuple[int, ...]
    out_dim: int = 1
    backbone: str = "mlp"
    hidden: tuple[int, ...] = (128, 128)
    embed_dim: int = 64
    head: str = "softstep"
    step: str = "s1"
    mode: str = "pointwise"
    similarity: str = "neg_l2"
    knn_k: int = 5

    def validate(self, where: str = "ModelSpec") -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"{where}: backbone must be one of {list(BACKBONES)}, got {self.backbone!r}"
            )
        if self.head not in HEADS:
            raise ValueError(f"{where}: head must be one of {list(HEADS)}, got {self.head!r}")
        check_step_kind(self.step, where)
        if self.mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {list(MODES)}, got {self.mode!r}")
        check_similarity(self.similarity, where)
        if not isinstance(self.knn_k, int) or self.knn_k < 1:
            raise ValueError(f"{where}: knn_k must be a positive int, got {self.knn_k!r}")


class NeighborModel(nnx.Module):
    """Backbone plus head. ``head`` is used in training, ``inference_head`` at prediction."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        spec.validate("NeighborModel")
        self.backbone = make_backbone(spec.backbone, spec.input_shape, hidden=spec.hidden,
                                      embed_dim=spec.embed_dim, rngs=rngs)
        d = spec.embed_dim
        if spec.head == "linear":
            self.head = LinearHead(d, spec.out_dim, rngs=rngs)
        elif spec.head in ("nw", "knn"):
            self.head = NadarayaWatsonHead(similarity=spec.similarity)
        else:
            self.head = SoftStepHead(d, kind=spec.step, mode=spec.mode,
                                     similarity=spec.similarity, rngs=rngs)
        self.knn = KNNHead(spec.knn_k, similarity=spec.similarity) if spec.head == "knn" else None

    @property
    def inference_head(self) -> nnx.Module:
        return self.knn if self.knn is not None else self.head

    def embed(self, x: jax.Array) -> jax.Array:
        return self.backbone(x)


def make_model(spec: ModelSpec, key: jax.Array) -> tuple[nnx.GraphDef, nnx.State]:
    """Builds a :class:`NeighborModel` from ``key``; returns ``(graphdef, params)``.

    ``jax.vmap(lambda k: make_model(spec, k)[1])(keys)`` gives a stack of seeds.
    """
    return nnx.split(NeighborModel(spec, rngs=nnx.Rngs(params=key)))


class TrainConfig(NamedTuple):
    """Optimisation settings (all static under ``jit``)."""

    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 20

    def validate(self, where: str = "TrainConfig") -> None:
        for name in ("epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")
        if self.batch_size < 2:
            raise ValueError(
                f"{where}: batch_size must be >= 2 (a batch of 1 has no neighbour besides "
                f"self), got {self.batch_size}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"{where}: learning_rate must be > 0, got {self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"{where}: weight_decay must be >= 0, got {self.weight_decay!r}")


class TrainResult(NamedTuple):
    """Outcome of :func:`train_model`.

    Attributes:
      params: the parameters with the lowest validation MSE (not the last ones).
      best_epoch: 1-based epoch of those parameters (0: never improved on the initial ones).
      best_val_mse: their validation MSE.
      epochs_run: epochs actually trained (early stopping may end before ``epochs``).
      train_curve: ``[epochs]`` mean training loss per epoch (0 after ``epochs_run``).
      val_curve: ``[epochs]`` validation MSE per epoch (0 after ``epochs_run``).
      diverged: whether a non-finite validation loss stopped training.
    """

    params: Any
    best_epoch: jax.Array
    best_val_mse: jax.Array
    epochs_run: jax.Array
    train_curve: jax.Array
    val_curve: jax.Array
    diverged: jax.Array


def predict_dense(graphdef, params, x_query, x_bank, y_bank, *, exclude_self: bool = False):
    """Predictions of the model's inference head with the whole bank in memory.

    Memory is ``O(n_query * n_bank)``; for large banks use :func:`~softstep.bank_predict`.
    """
    model = nnx.merge(graphdef, params)
    eq, eb = model.embed(x_query), model.embed(x_bank)
    return model.inference_head(eq, eb, y_bank, exclude_self=exclude_self)


def train_model(graphdef, params, key, x_train, y_train, x_val, y_val, config: TrainConfig
                ) -> TrainResult:
    """Trains with AdamW and early stopping; returns the best-validation parameters.

    Pure: ``jax.jit(train_model, static_argnums=(0, 7))`` and ``jax.vmap`` over
    ``params``/``key`` (and data) both work.

    Args:
      graphdef: from :func:`make_model`.
      params: initial parameters from :func:`make_model`.
      key: ``jax.random.key`` for the batch order.
      x_train: ``[n, ...]`` training inputs (already scaled).
      y_train: ``[n, o]`` training targets (already scaled).
      x_val: ``[n_val, ...]`` validation inputs.
      y_val: ``[n_val, o]`` validation targets.
      config: :class:`TrainConfig`.

    Returns:
      :class:`TrainResult`.

    Raises:
      ValueError: if there are fewer than 2 training rows, or shapes disagree.

    References:
      Susman et al., SoftStep, arXiv:2506.08139 (in-batch neighbours, self excluded).
    """
    config.validate("train_model")
    n = x_train.shape[0]
    if n < 2:
        raise ValueError(f"train_model: need at least 2 training rows, got {n}")
    if y_train.ndim != 2 or y_train.shape[0] != n:
        raise ValueError(f"train_model: y_train must be [{n}, o], got {y_train.shape}")
    if y_val.ndim != 2 or y_val.shape[0] != x_val.shape[0]:
        raise ValueError(f"train_model: y_val must be [{x_val.shape[0]}, o], got {y_val.shape}")
    bs = min(config.batch_size, n)
    n_batches = n // bs
    opt = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    def batch_loss(p, xb, yb):
        model = nnx.merge(graphdef, p)
        e = model.embed(xb)
        return jnp.mean((model.head(e, e, yb, exclude_self=True) - yb) ** 2)

    def val_mse(p):
        model = nnx.merge(graphdef, p)
        pred = model.head(model.embed(x_val), model.embed(x_train), y_train)
        return jnp.mean((pred - y_val) ** 2)

    def step(carry, idx):
        p, s = carry
        loss, g = jax.value_and_grad(batch_loss)(p, x_train[idx], y_train[idx])
        updates, s = opt.update(g, s, p)
        return (optax.apply_updates(p, updates), s), loss

    def cond(c):
        (_, _, _, best_val, best_epoch, epoch, _, _, _, diverged) = c
        return (epoch < config.epochs) & (epoch - best_epoch < config.patience) & ~diverged

    def body(c):
        (p, s, best, best_val, best_epoch, epoch, k, tr_curve, va_curve, _) = c
        k, sub = jax.random.split(k)
        order = jax.random.permutation(sub, n)[: n_batches * bs].reshape(n_batches, bs)
        (p, s), losses = jax.lax.scan(step, (p, s), order)
        v = val_mse(p)
        finite = jnp.isfinite(v)
        better = finite & (v < best_val)
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), p, best)
        epoch = epoch + 1
        return (p, s, best, jnp.where(better, v, best_val),
                jnp.where(better, epoch, best_epoch), epoch, k,
                tr_curve.at[epoch - 1].set(jnp.mean(losses)),
                va_curve.at[epoch - 1].set(jnp.where(finite, v, 0.0)), ~finite)

    zeros = jnp.zeros(config.epochs)
    v0 = val_mse(params)
    v0 = jnp.where(jnp.isfinite(v0), v0, jnp.inf)
    init = (params, opt.init(params), params, v0, jnp.array(0), jnp.array(0), key,
            zeros, zeros, jnp.array(False))
    (_, _, best, best_val, best_epoch, epochs_run, _, tr_curve, va_curve, diverged) = (
        jax.lax.while_loop(cond, body, init)
    )
    return TrainResult(best, best_epoch, best_val, epochs_run, tr_curve, va_curve, diverged)
