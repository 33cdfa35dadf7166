"""``NeighborRegressor``: a scikit-learn-like estimator around backbone + neighbour head.

``fit`` standardises inputs and targets (statistics from the training split), holds out a
validation split, trains end to end with early stopping that keeps the best-validation
model (:func:`~softstep.training.train_model`), then stores the training split's
embeddings and targets as the inference :class:`~softstep.Bank`. ``predict`` embeds the
queries and attends over the bank in memory-bounded chunks
(:func:`~softstep.bank_predict`).

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from softstep.bank import Bank, bank_predict
from softstep.training import ModelSpec, TrainConfig, make_model, train_model

__all__ = ["NeighborRegressor", "check_xy"]


def check_xy(x, y=None, *, where: str):
    """Validates ``x`` (and ``y``): numeric, finite, non-empty, matching rows.

    Returns:
      ``x`` as float32 and ``y`` as float32 ``[n, o]`` (or ``None``).
    """
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: x must be a numeric array, got {type(x).__name__}") from e
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{where}: x must be [n_samples, ...] with n >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: x contains NaN or inf")
    if y is None:
        return x, None
    try:
        y = np.asarray(y, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: y must be a numeric array, got {type(y).__name__}") from e
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{where}: y must be [n] or [n, o] with n = {x.shape[0]} rows like x, "
            f"got shape {y.shape}"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: y contains NaN or inf")
    return x, y.reshape(len(y), -1)


class NeighborRegressor:
    """Deep neighbour-based regression with a swappable head (scikit-learn style).

    Args:
      head: ``"softstep"``, ``"nw"``, ``"linear"`` or ``"knn"``.
      step: SoftStep kind ``"s1"`` or ``"s2"``.
      mode: SoftStep ``"pointwise"`` or ``"global"``.
      similarity: ``"neg_l2"``, ``"neg_l1"``, ``"dot"`` or ``"cosine"``.
      backbone: ``"mlp"``, ``"resmlp"`` (tables) or ``"cnn"`` (images ``[n, H, W(, C)]``).
      hidden: backbone widths / channels.
      embed_dim: embedding width.
      knn_k: neighbours of the ``"knn"`` head.
      epochs, batch_size, learning_rate, weight_decay, patience: see
        :class:`~softstep.training.TrainConfig`.
      validation_fraction: share of ``fit``'s rows held out for early stopping, in (0, 1).
      top_k: optional top-k pre-selection at inference (see :func:`~softstep.bank_predict`).
      scale_inputs: standardise ``x`` (per feature for tables, globally for images).
      seed: random seed (initialisation, split and batch order).

    Attributes (after ``fit``):
      bank_: the :class:`~softstep.Bank` of training-split embeddings and scaled targets.
      best_epoch_, epochs_run_, best_val_mse_: early-stopping record (validation MSE is in
        standardised target units).
      n_features_in_: per-example input shape seen in ``fit``.

    References:
      Susman et al., SoftStep, arXiv:2506.08139.
    """

    def __init__(
        self,
        head: str = "softstep",
        *,
        step: str = "s1",
        mode: str = "pointwise",
        similarity: str = "neg_l2",
        backbone: str = "mlp",
        hidden: Sequence[int] = (128, 128),
        embed_dim: int = 64,
        knn_k: int = 5,
        epochs: int = 200,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 20,
        validation_fraction: float = 0.2,
        top_k: int | None = None,
        scale_inputs: bool = True,
        seed: int = 0,
    ):
        self.spec_kwargs = dict(backbone=backbone, hidden=tuple(hidden), embed_dim=embed_dim,
                                head=head, step=step, mode=mode, similarity=similarity,
                                knn_k=knn_k)
        ModelSpec(input_shape=(1,), **self.spec_kwargs).validate("NeighborRegressor")
        self.config = TrainConfig(epochs=epochs, batch_size=batch_size,
                                  learning_rate=learning_rate, weight_decay=weight_decay,
                                  patience=patience)
        self.config.validate("NeighborRegressor")
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(
                f"NeighborRegressor: validation_fraction must be in (0, 1), "
                f"got {validation_fraction!r}"
            )
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"NeighborRegressor: top_k must be a positive int, got {top_k!r}")
        self.validation_fraction = validation_fraction
        self.top_k = top_k
        self.scale_inputs = scale_inputs
        self.seed = int(seed)

    # -- scaling ---------------------------------------------------------------------------
    def _fit_scalers(self, x, y):
        if self.scale_inputs:
            axis = 0 if x.ndim == 2 else None
            self.x_mean_ = x.mean(axis=axis)
            std = x.std(axis=axis)
            self.x_std_ = np.where(std > 0, std, 1.0).astype(np.float32)
        else:
            self.x_mean_, self.x_std_ = np.float32(0.0), np.float32(1.0)
        self.y_mean_ = y.mean(axis=0)
        std = y.std(axis=0)
        self.y_std_ = np.where(std > 0, std, 1.0).astype(np.float32)

    def _scale_x(self, x):
        return ((x - self.x_mean_) / self.x_std_).astype(np.float32)

    # -- estimator API -------------------------------------------------------------------
    def fit(self, x, y) -> NeighborRegressor:
        """Trains on ``x`` ``[n, ...]`` and ``y`` ``[n]`` or ``[n, o]``; returns ``self``.

        Raises:
          ValueError: NaN/inf in ``x`` or ``y``, mismatched rows, too few rows for a
            validation split and training batches of at least 2, or a CNN on tables.
          FloatingPointError: if training diverged before any finite validation loss.
        """
        x, y = check_xy(x, y, where="NeighborRegressor.fit")
        n = x.shape[0]
        n_val = int(round(self.validation_fraction * n))
        if n_val < 1 or n - n_val < 2:
            raise ValueError(
                f"NeighborRegressor.fit: {n} rows leave {n - n_val} for training and {n_val} "
                "for validation; need >= 2 training rows (a batch of 1 has no neighbour "
                "besides self) and >= 1 validation row"
            )
        self.y_1d_ = y.shape[1] == 1
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(n)
        tr, va = perm[n_val:], perm[:n_val]
        self._fit_scalers(x[tr], y[tr])
        xs = self._scale_x(x)
        ys = ((y - self.y_mean_) / self.y_std_).astype(np.float32)
        spec = ModelSpec(input_shape=x.shape[1:], out_dim=y.shape[1], **self.spec_kwargs)
        spec.validate("NeighborRegressor.fit")
        key_init, key_train = jax.random.split(jax.random.key(self.seed))
        graphdef, params = make_model(spec, key_init)
        run = jax.jit(train_model, static_argnums=(0, 7))
        res = run(graphdef, params, key_train, jnp.asarray(xs[tr]), jnp.asarray(ys[tr]),
                  jnp.asarray(xs[va]), jnp.asarray(ys[va]), self.config)
        if bool(res.diverged):
            if int(res.best_epoch) == 0 and not np.isfinite(float(res.best_val_mse)):
                raise FloatingPointError(
                    "NeighborRegressor.fit: training diverged (non-finite validation loss) "
                    "before any finite validation loss; lower learning_rate"
                )
            warnings.warn(
                f"NeighborRegressor.fit: validation loss became non-finite at epoch "
                f"{int(res.epochs_run)}; keeping the best model (epoch {int(res.best_epoch)})",
                RuntimeWarning, stacklevel=2,
            )
        self.graphdef_, self.params_ = graphdef, res.params
        self.best_epoch_ = int(res.best_epoch)
        self.epochs_run_ = int(res.epochs_run)
        self.best_val_mse_ = float(res.best_val_mse)
        self.val_curve_ = np.asarray(res.val_curve)[: self.epochs_run_]
        self.n_features_in_ = tuple(x.shape[1:])
        self.bank_ = Bank(self._embed_scaled(xs[tr]), jnp.asarray(ys[tr]))
        return self

    def _check_fitted(self, where):
        if not hasattr(self, "params_"):
            raise ValueError(f"NeighborRegressor.{where}: call fit before {where}")

    def _check_x(self, x, where):
        self._check_fitted(where)
        x, _ = check_xy(x, where=f"NeighborRegressor.{where}")
        if tuple(x.shape[1:]) != self.n_features_in_:
            raise ValueError(
                f"NeighborRegressor.{where}: x has per-example shape {tuple(x.shape[1:])} but "
                f"fit saw {self.n_features_in_}"
            )
        return x

    def _embed_scaled(self, xs, batch_size: int = 2048):
        model = nnx.merge(self.graphdef_, self.params_)
        embed = nnx.jit(lambda m, b: m.embed(b))
        parts = [embed(model, jnp.asarray(xs[i : i + batch_size]))
                 for i in range(0, len(xs), batch_size)]
        return jnp.concatenate(parts, axis=0)

    def embed(self, x) -> np.ndarray:
        """Embeddings ``[n, embed_dim]`` of ``x`` under the trained backbone."""
        x = self._check_x(x, "embed")
        return np.asarray(self._embed_scaled(self._scale_x(x)))

    def predict(self, x) -> np.ndarray:
        """Predictions ``[n]`` (or ``[n, o]``) in the original target units.

        Raises:
          ValueError: before ``fit``, on NaN/inf, or for a feature shape unlike ``fit``'s.
        """
        x = self._check_x(x, "predict")
        model = nnx.merge(self.graphdef_, self.params_)
        q = self._embed_scaled(self._scale_x(x))
        pred = np.asarray(bank_predict(model.inference_head, q, self.bank_, top_k=self.top_k))
        pred = pred * self.y_std_ + self.y_mean_
        return pred[:, 0] if self.y_1d_ else pred

    def score(self, x, y) -> float:
        """Coefficient of determination ``R^2 = 1 - SS_res / SS_tot`` (averaged over outputs)."""
        x = self._check_x(x, "score")
        x, y = check_xy(x, y, where="NeighborRegressor.score")
        pred = self.predict(x).reshape(len(y), -1)
        ss_res = ((y - pred) ** 2).sum(0)
        ss_tot = ((y - y.mean(0)) ** 2).sum(0)
        return float(np.mean(1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))
