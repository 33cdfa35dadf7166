"""CQC estimators with a scikit-learn-like surface over a pure-JAX core.

* :class:`DirectCQC`: the paper's direct doubly robust estimator: a parametric
  ``g_theta(y0, x)`` fit by gradient descent on the DR objective of :func:`cqc.dr.direct_loss`.
* :class:`IndirectCQC`: the earlier estimator (Givens et al., 2024): kernel-weighted average
  in ``x`` of the DR pseudo-outcome, projected to be non-decreasing in ``y1`` (isotonic),
  inverted at zero.
* :class:`IPWCQC`: the same with the inverse-propensity-weighted pseudo-outcome.
* :class:`SeparateCQC`: the plug-in ``F1_hat^{-1}(F0_hat(y0 | x) | x)``.

All estimators standardize ``y`` internally. The CQC is equivariant under a common affine
map of both potential outcomes, ``g*(y0) = m + s g~((y0 - m) / s)``, so this is exact, and it
makes default step sizes scale free.

References:
  Givens, Liu, Reeve, Reluga. "Direct Doubly Robust Estimation of Conditional Quantile
  Contrasts." ICLR 2026, arXiv:2601.19666.
  Givens, Liu, Reeve. "Learning the Conditional Quantile Comparator." NeurIPS 2024,
  arXiv:2410.12454.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cqc.checks import (
    as_covariates,
    as_finite_vector,
    as_treatment,
    check_clip,
    check_lengths,
    check_positive_int,
)
from cqc.dr import _direct_loss, control_term, cumulative_trapezoid, grid_cdf
from cqc.isotonic import first_crossing, isotonic_increasing
from cqc.models import make_model
from cqc.nuisance import Nuisance, NuisanceValues, cross_fit, cv_bandwidth

__all__ = [
    "Bands",
    "DirectCQC",
    "IPWCQC",
    "IndirectCQC",
    "NotFittedError",
    "SeparateCQC",
    "make_grid",
]


class NotFittedError(ValueError):
    """``predict`` (or ``bootstrap``) was called before ``fit``."""


class Bands(NamedTuple):
    """Pointwise bootstrap bands: ``estimate``, ``lower``, ``upper`` (same shape), and the
    replicates ``samples (n_boot, m)`` when requested."""

    estimate: jax.Array
    lower: jax.Array
    upper: jax.Array
    samples: jax.Array | None = None


def make_grid(y, size: int = 128, margin: float = 0.1) -> jax.Array:
    """A uniform grid over ``[min y - margin * range, max y + margin * range]``.

    Raises:
      ValueError: for ``size < 2``, non-finite ``y`` or ``margin < 0``.
    """
    y = as_finite_vector("make_grid", "y", y)
    size = check_positive_int("make_grid", "size", size, minimum=2)
    if not margin >= 0:
        raise ValueError(f"make_grid: margin must be >= 0, got {margin}")
    lo, hi = float(y.min()), float(y.max())
    span = max(hi - lo, 1e-6)
    return jnp.linspace(lo - margin * span, hi + margin * span, size, dtype=jnp.float32)


def _check_fit_inputs(where: str, x, a, y, key):
    x = as_covariates(where, "x", x)
    a = as_treatment(where, "a", a)
    y = as_finite_vector(where, "y", y)
    check_lengths(where, x=x, a=a, y=y)
    if not isinstance(key, jax.Array):
        raise TypeError(f"{where}: key must be a jax.random.key, got {type(key).__name__}")
    return x, a, y


def _check_nuisances(where: str, nuisances: NuisanceValues, n: int) -> None:
    if not isinstance(nuisances, NuisanceValues):
        raise TypeError(
            f"{where}: nuisances must be a NuisanceValues, got {type(nuisances).__name__}"
        )
    k = nuisances.grid.shape[0]
    expected = {"pi": (n,), "f0": (n, k), "f1": (n, k)}
    for name, shape in expected.items():
        got = getattr(nuisances, name).shape
        if got != shape:
            raise ValueError(f"{where}: nuisances.{name} must have shape {shape}, got {got}")


def _query(where: str, y0, x, num_features: int):
    """Broadcasts ``y0`` and ``x`` to ``m`` paired query points."""
    y0 = np.asarray(y0, dtype=np.float64)
    if y0.ndim > 1:
        raise ValueError(f"{where}: y0 must be a scalar or 1-D, got shape {y0.shape}")
    y0 = np.atleast_1d(y0)
    if not np.all(np.isfinite(y0)):
        raise ValueError(f"{where}: y0 has NaN/inf values; expected finite numbers")
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim == 1 and num_features > 1:
        if xa.shape[0] != num_features:
            raise ValueError(
                f"{where}: x has {xa.shape[0]} column(s) but the estimator was fit with "
                f"{num_features}"
            )
        xa = xa[None, :]
    xa = as_covariates(where, "x", xa, num_features=num_features)
    m = max(y0.shape[0], xa.shape[0])
    if y0.shape[0] not in (1, m) or xa.shape[0] not in (1, m):
        raise ValueError(
            f"{where}: y0 has {y0.shape[0]} value(s) and x has {xa.shape[0]} row(s); expected "
            "equal counts or one of them 1"
        )
    return np.broadcast_to(y0, (m,)), np.broadcast_to(xa, (m, num_features))


class _Scaler(NamedTuple):
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def from_data(cls, x, y, standardize: bool):
        if not standardize:
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]), 0.0, 1.0)
        xs = x.std(axis=0)
        ys = float(y.std())
        return cls(x.mean(axis=0), np.where(xs > 0, xs, 1.0), float(y.mean()),
                   ys if ys > 0 else 1.0)

    def x(self, x):
        return jnp.asarray((x - self.x_mean) / self.x_std, jnp.float32)

    def y(self, y):
        return (jnp.asarray(y, jnp.float32) - self.y_mean) / self.y_std

    def y_inv(self, y):
        return jnp.asarray(y) * self.y_std + self.y_mean


class _Estimator:
    """Shared argument checking and cross-fitting."""

    _name = "CQC"

    def __init__(self, nuisance, n_folds, clip, grid_size, min_per_fold):
        where = self._name
        if not isinstance(nuisance, Nuisance):
            raise TypeError(f"{where}: nuisance must be a cqc.Nuisance, got "
                            f"{type(nuisance).__name__}")
        self.nuisance = nuisance
        self.n_folds = check_positive_int(where, "n_folds", n_folds)
        self.clip = check_clip(where, clip)
        self.grid_size = check_positive_int(where, "grid_size", grid_size, minimum=2)
        self.min_per_fold = check_positive_int(where, "min_per_fold", min_per_fold)
        self.fitted_ = None

    def _nuisances(self, x, a, y, key, nuisances):
        where = f"{self._name}.fit"
        if nuisances is None:
            return cross_fit(x, a, y, nuisance=self.nuisance, grid=make_grid(y, self.grid_size),
                             key=key, n_folds=self.n_folds, clip=self.clip,
                             min_per_fold=self.min_per_fold)
        _check_nuisances(where, nuisances, x.shape[0])
        lo, hi = self.clip
        return nuisances._replace(pi=jnp.clip(nuisances.pi, lo, hi))

    def _require_fit(self, where):
        if self.fitted_ is None:
            raise NotFittedError(f"{self._name}.{where}: call fit(x, a, y, key=...) first")
        return self.fitted_


# ---------------------------------------------------------------------------------------
# Direct estimator
# ---------------------------------------------------------------------------------------


class _DirectData(NamedTuple):
    y0: jax.Array  # (n, M) standardized
    x: jax.Array  # (n, d) standardized
    a: jax.Array
    y: jax.Array  # standardized
    pi: jax.Array
    c: jax.Array  # (n, M)
    f1: jax.Array  # (n, K)
    f1_cum: jax.Array  # (n, K) cumulative trapezoid of f1 on grid
    grid: jax.Array  # standardized grid


def _objective(graphdef, state, data: _DirectData, weights):
    model = nnx.merge(graphdef, state)
    n, m = data.y0.shape
    if getattr(model, "grid_y0", False):
        g = model(data.y0, data.x)
    else:
        g = model(data.y0.reshape(-1), jnp.repeat(data.x, m, axis=0)).reshape(n, m)
    loss = _direct_loss(g, data.c, data.a, data.y, data.pi, data.f1, data.f1_cum, data.grid)
    return jnp.sum(weights[:, None] * loss) / (jnp.sum(weights) * m)


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "lr"))
def _direct_train(graphdef, state, data: _DirectData, weights, steps: int, lr: float):
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))

    def step(carry, _):
        s, o = carry
        loss, grad = jax.value_and_grad(lambda p: _objective(graphdef, p, data, weights))(s)
        upd, o = opt.update(grad, o, s)
        return (optax.apply_updates(s, upd), o), loss

    (state, _), losses = jax.lax.scan(step, (state, opt.init(state)), None, length=steps)
    return state, losses


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _direct_predict(graphdef, state, y0, x):
    return nnx.merge(graphdef, state)(y0, x)


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "lr"))
def _direct_train_many(graphdef, state, data, weights, steps: int, lr: float):
    return jax.vmap(lambda w: _direct_train(graphdef, state, data, w, steps, lr)[0])(weights)


class DirectCQC(_Estimator):
    """Direct doubly robust CQC estimator (Givens et al., ICLR 2026).

    Fits ``g_theta(y0, x)`` by minimizing the cross-fitted DR objective

        R_n(theta) = 1/(n M) sum_i sum_m l_i(g_theta(y0_im, X_i); y0_im),
        l_i(g; y0) = A_i/pi_i [(g - Y_i)_+ - G1_hat(g|X_i)] + G1_hat(g|X_i) - g c_i(y0),
        c_i(y0)    = (1 - A_i)/(1 - pi_i) (1{Y_i <= y0} - F0_hat(y0|X_i)) + F0_hat(y0|X_i),

    whose gradient in ``g`` is the DR pseudo-outcome ``psi_i(y0, g)`` of
    ``h(y0, g | x) = F_1(g|x) - F_0(y0|x)``. In expectation ``l_i`` is
    ``int^g h(y0, t|x) dt`` (convex in ``g``, minimized at ``g*(y0|x)``) whenever either
    ``pi_hat`` or ``(F0_hat, F1_hat)`` is correct; see :func:`cqc.dr.direct_loss` for the
    derivation. The untreated outcomes ``y0_im`` are, per unit, the conditional quantiles
    ``F0_hat^{-1}(u_m | X_i)`` at levels ``u_m`` (``y0_design="conditional"``) or the
    marginal quantiles of the control outcomes (``"marginal"``).

    Args:
      model: ``"linear"`` (``b + s y0 + w^T x + y0 v^T x``), ``"linear_additive"``,
        ``"monotone"`` (NNX net increasing in ``y0``), a factory
        ``(num_features, rngs) -> nnx.Module`` or an ``nnx.Module`` taking ``(y0, x)``.
      nuisance: :class:`cqc.Nuisance` (propensity and CDF models).
      n_folds: cross-fitting folds (1 disables cross-fitting).
      clip: propensity clip bounds ``(lo, hi)``, ``0 < lo < hi < 1``.
      levels: quantile levels ``u_m`` in (0, 1) of the ``y0`` design.
      y0_design: ``"conditional"`` or ``"marginal"``.
      steps, learning_rate: full-batch Adam with cosine decay.
      grid_size: points of the outcome grid carrying the nuisance CDFs.
      min_per_fold: minimum units per arm per fold.
      standardize: standardize ``x`` and ``y`` before fitting ``g_theta`` (the model then
        sees standardized inputs; predictions are always on the original scale).

    References:
      Givens, Liu, Reeve, Reluga. ICLR 2026, arXiv:2601.19666.
    """

    _name = "DirectCQC"

    def __init__(self, model: Any = "linear", nuisance: Nuisance | None = None, n_folds: int = 2,
                 clip: tuple[float, float] = (0.05, 0.95),
                 levels: Sequence[float] = tuple(np.linspace(0.1, 0.9, 9)),
                 y0_design: str = "conditional", steps: int = 500,
                 learning_rate: float = 0.05, grid_size: int = 128, min_per_fold: int = 10,
                 standardize: bool = True):
        super().__init__(nuisance or Nuisance(), n_folds, clip, grid_size, min_per_fold)
        levels = as_finite_vector(self._name, "levels", levels)
        if np.any((levels <= 0) | (levels >= 1)):
            raise ValueError(f"{self._name}: levels must lie in (0, 1), got {levels.tolist()}")
        if y0_design not in ("conditional", "marginal"):
            raise ValueError(
                f"{self._name}: y0_design must be 'conditional' or 'marginal', got {y0_design!r}"
            )
        if not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"{self._name}: learning_rate must be > 0, got {learning_rate}")
        self.model = model
        self.levels = levels
        self.y0_design = y0_design
        self.steps = check_positive_int(self._name, "steps", steps)
        self.learning_rate = float(learning_rate)
        self.standardize = bool(standardize)

    def _design_y0(self, a, y, nv: NuisanceValues):
        u = jnp.asarray(self.levels, jnp.float32)
        if self.y0_design == "marginal":
            q = jnp.quantile(jnp.asarray(y[a == 0], jnp.float32), u)
            return jnp.broadcast_to(q, (y.shape[0], u.shape[0]))
        f0 = jax.lax.cummax(nv.f0, axis=1)
        return jax.vmap(lambda row: jnp.interp(u, row, nv.grid))(f0)

    def fit(self, x, a, y, *, key: jax.Array, nuisances: NuisanceValues | None = None):
        """Cross-fits the nuisances (unless given) and fits ``g_theta``.

        Args:
          x: ``(n, d)`` covariates (1-D means ``d = 1``). a: ``(n,)`` 0/1. y: ``(n,)``.
          key: ``jax.random.key``.
          nuisances: precomputed :class:`cqc.NuisanceValues` for these data (skips
            cross-fitting; lets several estimators share one nuisance fit).

        Returns:
          ``self``.

        Raises:
          ValueError/TypeError: bad inputs (see :func:`cqc.cross_fit`).
        """
        where = f"{self._name}.fit"
        x, a, y = _check_fit_inputs(where, x, a, y, key)
        k_nuis, k_model = jax.random.split(key)
        nv = self._nuisances(x, a, y, k_nuis, nuisances)
        scaler = _Scaler.from_data(x, y, self.standardize)
        y0 = self._design_y0(a, y, nv)
        f0_y0 = grid_cdf(nv.f0, nv.grid, y0)
        aj, yj = jnp.asarray(a, jnp.float32), jnp.asarray(y, jnp.float32)
        c = control_term(y0, aj[:, None], yj[:, None], nv.pi[:, None], f0_y0)
        grid_s = scaler.y(nv.grid)
        data = _DirectData(scaler.y(y0), scaler.x(x), aj, scaler.y(yj), nv.pi, c, nv.f1,
                           cumulative_trapezoid(nv.f1, grid_s), grid_s)
        module = make_model(self.model, x.shape[1], k_model)
        graphdef, state = nnx.split(module)
        weights = jnp.ones(x.shape[0], jnp.float32)
        state, losses = _direct_train(graphdef, state, data, weights, self.steps,
                                      self.learning_rate)
        if not bool(jnp.all(jnp.isfinite(losses))):
            raise FloatingPointError(f"{where}: the objective became NaN/inf during training")
        self.fitted_ = dict(graphdef=graphdef, init_state=nnx.split(module)[1], state=state,
                            data=data, scaler=scaler, num_features=x.shape[1], losses=losses,
                            nuisances=nv)
        return self

    @property
    def module_(self) -> nnx.Module:
        """The fitted model (on standardized inputs when ``standardize=True``)."""
        f = self._require_fit("module_")
        return nnx.merge(f["graphdef"], f["state"])

    def _predict_with(self, state, y0, x):
        f = self.fitted_
        sc = f["scaler"]
        g = _direct_predict(f["graphdef"], state, sc.y(y0), sc.x(x))
        return sc.y_inv(g)

    def predict(self, y0, x) -> jax.Array:
        """``g_hat(y0 | x)`` at paired (broadcast) query points.

        Args:
          y0: scalar or ``(m,)`` untreated outcomes.
          x: ``(m, d)`` or ``(d,)`` covariates (``(m,)`` when ``d = 1``).

        Returns:
          ``(m,)`` predicted treated outcomes at the same conditional quantile.

        Raises:
          NotFittedError: before ``fit``. ValueError: bad shapes or NaN.
        """
        f = self._require_fit("predict")
        y0, x = _query(f"{self._name}.predict", y0, x, f["num_features"])
        return self._predict_with(f["state"], y0, x)

    def bootstrap(self, y0, x, *, n_boot: int = 100, key: jax.Array,
                  level: float = 0.9, return_samples: bool = False) -> Bands:
        """Pointwise bootstrap bands for ``g(y0 | x)`` (Bayesian/multiplier bootstrap).

        Each replicate reweights units with ``w_i ~ Exp(1)`` and refits ``theta`` on the
        weighted objective with the cross-fitted nuisances held fixed (first-order valid,
        as the DR objective is insensitive to first-order nuisance error). Replicates are
        fit in parallel with ``vmap``.

        Args:
          y0, x: query points as in :meth:`predict`.
          n_boot: number of replicates (>= 2).
          key: ``jax.random.key``.
          level: band coverage in (0, 1).
          return_samples: also return the replicates' predictions.

        Returns:
          :class:`Bands` with the full-data estimate and percentile bands.

        Raises:
          NotFittedError: before ``fit``. ValueError: bad arguments.
        """
        where = f"{self._name}.bootstrap"
        f = self._require_fit("bootstrap")
        n_boot = check_positive_int(where, "n_boot", n_boot, minimum=2)
        if not 0 < level < 1:
            raise ValueError(f"{where}: level must be in (0, 1), got {level}")
        if not isinstance(key, jax.Array):
            raise TypeError(f"{where}: key must be a jax.random.key, got {type(key).__name__}")
        y0, x = _query(where, y0, x, f["num_features"])
        n = f["data"].a.shape[0]
        weights = jax.random.exponential(key, (n_boot, n))
        states = _direct_train_many(f["graphdef"], f["init_state"], f["data"], weights,
                                    self.steps, self.learning_rate)
        preds = jax.vmap(lambda s: self._predict_with(s, y0, x))(states)
        if not bool(jnp.all(jnp.isfinite(preds))):
            raise FloatingPointError(f"{where}: a bootstrap replicate became NaN/inf during "
                                     "training")
        alpha = (1.0 - level) / 2.0
        lower, upper = jnp.quantile(preds, jnp.array([alpha, 1.0 - alpha]), axis=0)
        return Bands(self._predict_with(f["state"], y0, x), lower, upper,
                     preds if return_samples else None)


# ---------------------------------------------------------------------------------------
# Indirect, IPW and separate estimators
# ---------------------------------------------------------------------------------------


class _IndirectData(NamedTuple):
    z: jax.Array  # (n, d) standardized training covariates
    a: jax.Array
    y: jax.Array
    pi: jax.Array
    f0: jax.Array  # (n, K)
    t1: jax.Array  # (n, K): A/pi (1{Y <= t_k} - F1) + F1
    s1: jax.Array  # (n,) normalizer of the treated term (1 for DR, A/pi for Hajek IPW)
    s0: jax.Array  # (n,) normalizer of the control term (1 for DR, (1-A)/(1-pi) for IPW)
    grid: jax.Array
    bandwidth: jax.Array


@jax.jit
def _indirect_predict(d: _IndirectData, y0, zq):
    k = d.grid.shape[0]
    dt = d.grid[1] - d.grid[0]

    def one_block(args):
        y0b, zb = args
        d2 = jnp.sum((zb[:, None, :] - d.z[None, :, :]) ** 2, axis=-1)
        w = jax.nn.softmax(-0.5 * d2 / d.bandwidth**2, axis=1)  # (B, n)
        h1 = (w @ d.t1) / (w @ d.s1)[:, None]  # (B, K)
        idx = jnp.clip(jnp.floor((y0b - d.grid[0]) / dt).astype(jnp.int32), 0, k - 2)
        s = jnp.clip((y0b - d.grid[idx]) / dt, 0.0, 1.0)
        f0 = d.f0[:, idx] * (1 - s) + d.f0[:, idx + 1] * s  # (n, B)
        ind = (d.y[:, None] <= y0b[None, :]).astype(jnp.float32)
        t0 = (1 - d.a)[:, None] / (1 - d.pi)[:, None] * (ind - f0) + f0
        h0 = jnp.sum(w * t0.T, axis=1) / (w @ d.s0)  # (B,)
        h = isotonic_increasing(h1 - h0[:, None])
        return first_crossing(h, d.grid)

    m = y0.shape[0]
    block = 64
    pad = (-m) % block
    y0p = jnp.concatenate([y0, jnp.repeat(y0[-1:], pad)])
    zp = jnp.concatenate([zq, jnp.repeat(zq[-1:], pad, axis=0)], axis=0)
    out = jax.lax.map(one_block, (y0p.reshape(-1, block), zp.reshape(-1, block, zq.shape[1])))
    return out.reshape(-1)[:m]


class IndirectCQC(_Estimator):
    """Indirect DR estimator: smooth the pseudo-outcome in ``x``, make it monotone, invert.

    ``h_hat(y0, y1 | x) = sum_i w_i(x) psi_i(y0, y1)`` with Gaussian kernel weights
    ``w_i(x) ∝ exp(-|x - X_i|^2 / (2 b^2))`` on standardized covariates (``b`` by
    leave-one-out error of smoothing the pseudo-outcome terms at the outcome deciles when
    ``"cv"``, the default; Scott's rule ``1.06 n^{-1/(d+4)}`` when ``None``), evaluated on
    the outcome grid in ``y1``, projected to be non-decreasing in ``y1``
    (:func:`cqc.isotonic_increasing`), and inverted:
    ``g_hat(y0 | x) = inf{y1 : h_hat(y0, y1 | x) >= 0}`` (linear interpolation between grid
    points, :func:`cqc.first_crossing`). Because ``psi_i(y0, y1) = T1_i(y1) - T0_i(y0)``,
    the weighted average is computed as two matrix products.

    Args:
      nuisance, n_folds, clip, grid_size, min_per_fold: as :class:`DirectCQC`.
      bandwidth: kernel bandwidth on standardized covariates, ``"cv"`` or ``None`` (Scott).
      pseudo: ``"dr"`` (doubly robust) or ``"ipw"`` (inverse propensity weighting only,
        normalized per arm; see :class:`IPWCQC`).

    References:
      Givens, Liu, Reeve. NeurIPS 2024, arXiv:2410.12454.
    """

    _name = "IndirectCQC"

    def __init__(self, nuisance: Nuisance | None = None, n_folds: int = 2,
                 clip: tuple[float, float] = (0.05, 0.95), bandwidth: float | str | None = "cv",
                 grid_size: int = 128, min_per_fold: int = 10, pseudo: str = "dr"):
        super().__init__(nuisance or Nuisance(), n_folds, clip, grid_size, min_per_fold)
        if bandwidth not in (None, "cv") and (
                isinstance(bandwidth, str) or not (np.isfinite(bandwidth) and bandwidth > 0)):
            raise ValueError(
                f"{self._name}: bandwidth must be 'cv', None or > 0, got {bandwidth!r}")
        if pseudo not in ("dr", "ipw"):
            raise ValueError(f"{self._name}: pseudo must be 'dr' or 'ipw', got {pseudo!r}")
        self.bandwidth = bandwidth
        self.pseudo = pseudo

    def fit(self, x, a, y, *, key: jax.Array, nuisances: NuisanceValues | None = None):
        """Cross-fits the nuisances (unless given) and stores the pseudo-outcome tables.

        Args/Returns/Raises: as :meth:`DirectCQC.fit`.
        """
        where = f"{self._name}.fit"
        x, a, y = _check_fit_inputs(where, x, a, y, key)
        nv = self._nuisances(x, a, y, key, nuisances)
        f0, f1 = nv.f0, nv.f1
        if self.pseudo == "ipw":
            f0, f1 = jnp.zeros_like(f0), jnp.zeros_like(f1)
        aj, yj = jnp.asarray(a, jnp.float32), jnp.asarray(y, jnp.float32)
        ind = (yj[:, None] <= nv.grid[None, :]).astype(jnp.float32)
        t1 = aj[:, None] / nv.pi[:, None] * (ind - f1) + f1
        scaler = _Scaler.from_data(x, y, True)
        d = x.shape[1]
        if self.bandwidth == "cv":
            # LOO error of smoothing T1_i(t_l) and T0_i(t_l) at the outcome deciles t_l: the
            # pseudo-outcome is conditionally unbiased for h, so this targets h's error.
            cols = jnp.searchsorted(nv.grid, jnp.quantile(yj, jnp.linspace(0.1, 0.9, 9)))
            ind_l = ind[:, cols]
            t0 = (1 - aj)[:, None] / (1 - nv.pi)[:, None] * (ind_l - f0[:, cols]) + f0[:, cols]
            bw = cv_bandwidth(scaler.x(x), jnp.concatenate([t1[:, cols], t0], axis=1),
                              np.ones(x.shape[0]))
        elif self.bandwidth is None:
            bw = 1.06 * x.shape[0] ** (-1 / (d + 4))
        else:
            bw = self.bandwidth
        if self.pseudo == "ipw":
            s1, s0 = aj / nv.pi, (1 - aj) / (1 - nv.pi)
        else:
            s1 = s0 = jnp.ones_like(aj)
        data = _IndirectData(scaler.x(x), aj, yj, nv.pi, f0, t1, s1, s0, nv.grid,
                             jnp.asarray(bw, jnp.float32))
        self.fitted_ = dict(data=data, scaler=scaler, num_features=d, nuisances=nv)
        return self

    def predict(self, y0, x) -> jax.Array:
        """``g_hat(y0 | x)``; arguments, returns and errors as :meth:`DirectCQC.predict`."""
        f = self._require_fit("predict")
        y0, x = _query(f"{self._name}.predict", y0, x, f["num_features"])
        return _indirect_predict(f["data"], jnp.asarray(y0, jnp.float32), f["scaler"].x(x))


class IPWCQC(IndirectCQC):
    """Indirect estimator with the IPW pseudo-outcome (only ``pi`` is used).

    ``h_hat(y0, y1 | x) = sum_i w_i(x) A_i/pi_i 1{Y_i <= y1} / sum_i w_i(x) A_i/pi_i
    - sum_i w_i(x) (1-A_i)/(1-pi_i) 1{Y_i <= y0} / sum_i w_i(x) (1-A_i)/(1-pi_i)``: the
    kernel-weighted IPW pseudo-outcome ``A_i/pi_i 1{Y_i <= y1} - (1-A_i)/(1-pi_i)
    1{Y_i <= y0}`` with each arm's weights normalized to sum to one (Hajek form, so both
    CDF estimates reach 1), then made monotone and inverted as in :class:`IndirectCQC`.

    Args: as :class:`IndirectCQC` without ``pseudo``.
    """

    _name = "IPWCQC"

    def __init__(self, nuisance: Nuisance | None = None, n_folds: int = 2,
                 clip: tuple[float, float] = (0.05, 0.95), bandwidth: float | str | None = "cv",
                 grid_size: int = 128, min_per_fold: int = 10):
        super().__init__(nuisance, n_folds, clip, bandwidth, grid_size, min_per_fold, "ipw")


@jax.jit
def _separate_predict(f0_rows, f1_rows, grid, y0):
    f1 = jax.lax.cummax(f1_rows, axis=1)
    f0 = jax.lax.cummax(f0_rows, axis=1)
    u = grid_cdf(f0, grid, y0)
    return first_crossing(f1 - u[:, None], grid)


class SeparateCQC(_Estimator):
    """Plug-in estimator ``g_hat(y0 | x) = F1_hat^{-1}(F0_hat(y0 | x) | x)``.

    Both arms' CDF models are fit on all data (no propensity, no cross-fitting); the
    inverse is the first grid crossing, linearly interpolated.

    Args:
      nuisance: :class:`cqc.Nuisance` (only ``nuisance.cdf`` is used).
      grid_size, min_per_fold: as :class:`DirectCQC`.
    """

    _name = "SeparateCQC"

    def __init__(self, nuisance: Nuisance | None = None, grid_size: int = 128,
                 min_per_fold: int = 10):
        super().__init__(nuisance or Nuisance(), 1, (0.05, 0.95), grid_size, min_per_fold)

    def fit(self, x, a, y, *, key: jax.Array):
        """Fits the two CDF models. Args/Returns/Raises: as :meth:`DirectCQC.fit`."""
        where = f"{self._name}.fit"
        x, a, y = _check_fit_inputs(where, x, a, y, key)
        for arm in (0, 1):
            count = int(np.sum(a == arm))
            if count < self.min_per_fold:
                raise ValueError(f"{where}: {count} unit(s) with treatment {arm}; need at least "
                                 f"{self.min_per_fold}")
        xj, aj, yj = (jnp.asarray(v, jnp.float32) for v in (x, a, y))
        k0, k1 = jax.random.split(key)
        p0 = self.nuisance.cdf.fit(xj, yj, 1.0 - aj, 0, k0)
        p1 = self.nuisance.cdf.fit(xj, yj, aj, 1, k1)
        self.fitted_ = dict(p0=p0, p1=p1, grid=make_grid(y, self.grid_size),
                            num_features=x.shape[1])
        return self

    def predict(self, y0, x) -> jax.Array:
        """``g_hat(y0 | x)``; arguments, returns and errors as :meth:`DirectCQC.predict`."""
        f = self._require_fit("predict")
        y0, x = _query(f"{self._name}.predict", y0, x, f["num_features"])
        xj = jnp.asarray(x, jnp.float32)
        cdf = self.nuisance.cdf
        f0 = cdf.cdf(f["p0"], f["grid"], xj)
        f1 = cdf.cdf(f["p1"], f["grid"], xj)
        return _separate_predict(f0, f1, f["grid"], jnp.asarray(y0, jnp.float32))
