"""Pluggable nuisance estimators and K-fold cross-fitting.

Two kinds of nuisance, each a frozen (hashable) config object with a pure-JAX core:

* propensity models ``pi(x) = P(A = 1 | X = x)``: ``fit(x, a, key) -> params`` and
  ``predict(params, x) -> (n,)``: :class:`LogisticPropensity`, :class:`MLPPropensity`,
  :class:`KernelPropensity`, :class:`ConstantPropensity`, :class:`OraclePropensity`.
* conditional CDF models ``F_a(t | x)``: ``fit(x, y, mask, arm, key) -> params`` (``mask``
  marks the units of arm ``arm``, so shapes do not depend on group sizes) and
  ``cdf(params, grid, x) -> (n, K)``: :class:`KernelCDF` (Nadaraya-Watson on indicators),
  :class:`NeuralCDF` (mixture-of-logistics distributional regression, monotone in ``t`` by
  construction), :class:`MarginalCDF` (ignores ``x``), :class:`OracleCDF`.

:func:`cross_fit` fits both on ``K - 1`` folds and evaluates them on the held-out fold.

References:
  Chernozhukov et al. "Double/debiased machine learning." Econometrics J., 2018
  (cross-fitting). Givens et al., ICLR 2026, arXiv:2601.19666.
"""

from __future__ import annotations

import dataclasses
import functools
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

__all__ = [
    "ConstantPropensity",
    "KernelCDF",
    "KernelPropensity",
    "LogisticPropensity",
    "MLPPropensity",
    "MarginalCDF",
    "NeuralCDF",
    "Nuisance",
    "NuisanceValues",
    "OracleCDF",
    "OraclePropensity",
    "cross_fit",
    "cv_bandwidth",
]


def _standardize_stats(x: jax.Array):
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    return mean, jnp.where(std > 0, std, 1.0)


def _key_check(where: str, key: Any) -> None:
    if not isinstance(key, jax.Array):
        raise TypeError(f"{where}: key must be a jax.random.key, got {type(key).__name__}")


# ---------------------------------------------------------------------------------------
# Propensity models
# ---------------------------------------------------------------------------------------


class LogisticParams(NamedTuple):
    mean: jax.Array
    std: jax.Array
    coef: jax.Array  # (d + 1,), intercept first


@functools.partial(jax.jit, static_argnames=("iters",))
def _logistic_fit(x, a, ridge, iters):
    mean, std = _standardize_stats(x)
    z = jnp.concatenate([jnp.ones((x.shape[0], 1)), (x - mean) / std], axis=1)
    pen = ridge * jnp.eye(z.shape[1]).at[0, 0].set(0.0)

    def newton(_, w):
        p = jax.nn.sigmoid(z @ w)
        grad = z.T @ (p - a) / z.shape[0] + pen @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z / z.shape[0] + pen + 1e-8 * jnp.eye(z.shape[1])
        return w - jnp.linalg.solve(hess, grad)

    w = jax.lax.fori_loop(0, iters, newton, jnp.zeros(z.shape[1]))
    return LogisticParams(mean, std, w)


@jax.jit
def _logistic_predict(params, x):
    z = (x - params.mean) / params.std
    return jax.nn.sigmoid(params.coef[0] + z @ params.coef[1:])


@dataclasses.dataclass(frozen=True)
class LogisticPropensity:
    """Logistic regression ``pi(x) = sigmoid(b + w^T x_std)`` fit by Newton's method.

    Attributes:
      ridge: L2 penalty on ``w`` (not the intercept) in the mean log-loss.
      iters: Newton iterations.
    """

    ridge: float = 1e-4
    iters: int = 25

    def fit(self, x, a, key=None):
        x = jnp.asarray(as_covariates("LogisticPropensity.fit", "x", x), jnp.float32)
        a = jnp.asarray(as_treatment("LogisticPropensity.fit", "a", a), jnp.float32)
        check_lengths("LogisticPropensity.fit", x=x, a=a)
        return _logistic_fit(x, a, self.ridge, self.iters)

    def predict(self, params, x):
        return _logistic_predict(params, jnp.asarray(x, jnp.float32))


class _MLP(nnx.Module):
    def __init__(self, din: int, hidden: tuple[int, ...], dout: int, *, rngs: nnx.Rngs):
        dims = (din, *hidden)
        self.layers = nnx.List(
            [nnx.Linear(i, o, rngs=rngs) for i, o in zip(dims[:-1], dims[1:], strict=True)]
        )
        self.head = nnx.Linear(dims[-1], dout, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.gelu(layer(x))
        return self.head(x)


def _train_module(graphdef, state, loss_fn, steps: int, lr: float):
    """Full-batch Adam on ``loss_fn(module)``; returns the trained state."""
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))

    def loss_of(s):
        return loss_fn(nnx.merge(graphdef, s))

    def step(carry, _):
        s, o = carry
        loss, grad = jax.value_and_grad(loss_of)(s)
        upd, o = opt.update(grad, o, s)
        return (optax.apply_updates(s, upd), o), loss

    (state, _), losses = jax.lax.scan(step, (state, opt.init(state)), None, length=steps)
    return state, losses


class MLPParams(NamedTuple):
    mean: jax.Array
    std: jax.Array
    state: Any


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "lr", "weight_decay"))
def _mlp_propensity_fit(graphdef, state, x, a, steps, lr, weight_decay):
    mean, std = _standardize_stats(x)
    z = (x - mean) / std

    def loss_fn(m):
        logits = m(z)[:, 0]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, a))

    state, _ = _train_module(graphdef, state, loss_fn, steps, lr)
    return MLPParams(mean, std, state)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _mlp_propensity_predict(graphdef, params, x):
    m = nnx.merge(graphdef, params.state)
    return jax.nn.sigmoid(m((x - params.mean) / params.std)[:, 0])


@dataclasses.dataclass(frozen=True)
class MLPPropensity:
    """Two-layer GELU MLP classifier for ``pi(x)``, full-batch Adam on the log-loss."""

    hidden: tuple[int, ...] = (32, 32)
    steps: int = 300
    learning_rate: float = 1e-2

    def _graphdef(self, d, key):
        m = _MLP(d, self.hidden, 1, rngs=nnx.Rngs(params=key))
        return nnx.split(m)

    def fit(self, x, a, key):
        _key_check("MLPPropensity.fit", key)
        x = jnp.asarray(as_covariates("MLPPropensity.fit", "x", x), jnp.float32)
        a = jnp.asarray(as_treatment("MLPPropensity.fit", "a", a), jnp.float32)
        check_lengths("MLPPropensity.fit", x=x, a=a)
        graphdef, state = self._graphdef(x.shape[1], key)
        params = _mlp_propensity_fit(
            graphdef, state, x, a, self.steps, self.learning_rate, 0.0
        )
        return (graphdef, params)

    def predict(self, params, x):
        graphdef, p = params
        return _mlp_propensity_predict(graphdef, p, jnp.asarray(x, jnp.float32))


class KernelParams(NamedTuple):
    mean: jax.Array
    std: jax.Array
    z: jax.Array  # standardized training covariates
    target: jax.Array  # (n,) or (n, ...) training targets
    mask: jax.Array  # (n,) 1 for training units that count
    bandwidth: jax.Array


def _scott(n_eff, d):
    return 1.06 * n_eff ** (-1.0 / (d + 4.0))


def _kernel_weights(params: KernelParams, x):
    """Row-normalized Gaussian kernel weights ``(m, n)`` over the masked training units."""
    z = (x - params.mean) / params.std
    d2 = jnp.sum((z[:, None, :] - params.z[None, :, :]) ** 2, axis=-1)
    logits = -0.5 * d2 / params.bandwidth**2
    logits = jnp.where(params.mask[None, :] > 0, logits, -jnp.inf)
    return jax.nn.softmax(logits, axis=1)


@jax.jit
def _kernel_regress(params: KernelParams, x):
    def row_block(xb):
        return _kernel_weights(params, xb) @ params.target

    n = x.shape[0]
    block = 256
    pad = (-n) % block
    xp = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
    out = jax.lax.map(row_block, xp.reshape(-1, block, x.shape[1]))
    return out.reshape((n + pad,) + out.shape[2:])[:n]


CV_BANDWIDTHS = tuple(float(h) for h in np.geomspace(0.02, 2.0, 15))
_CV_MAX_UNITS = 800


@jax.jit
def _loo_errors(z, targets, mask, candidates):
    """Leave-one-out squared error of Nadaraya-Watson (over the ``mask`` units) for each
    candidate bandwidth; shapes depend only on the number of rows, not on the mask."""
    d2 = jnp.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1)
    drop = jnp.eye(z.shape[0], dtype=bool) | (mask[None, :] <= 0)
    weight = mask / jnp.maximum(jnp.sum(mask), 1.0)

    def err(h):
        w = jax.nn.softmax(jnp.where(drop, -jnp.inf, -0.5 * d2 / h**2), axis=1)
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        return jnp.sum(weight * jnp.mean((targets - w @ targets) ** 2, axis=1))

    return jax.vmap(err)(candidates)


def cv_bandwidth(z, targets, mask) -> float:
    """Bandwidth (standardized units) minimizing the leave-one-out squared error of
    Nadaraya-Watson regression of ``targets (n, T)`` on ``z`` over the masked units, from the
    geometric grid :data:`CV_BANDWIDTHS`.

    Above 800 rows the search runs on a fixed random subset of 800 rows, and the chosen
    ``h_sub`` is rescaled to the full sample with the usual rate,
    ``h = h_sub (m_sub / m)^{1/(d+4)}`` (``m`` = masked units, ``d`` = covariate dimension).
    """
    z, targets, mask = jnp.asarray(z), jnp.asarray(targets), jnp.asarray(mask, jnp.float32)
    m_full = max(float(jnp.sum(mask)), 1.0)
    if z.shape[0] > _CV_MAX_UNITS:
        idx = np.sort(np.random.default_rng(0).choice(z.shape[0], _CV_MAX_UNITS, replace=False))
        z, targets, mask = z[idx], targets[idx], mask[idx]
    errs = np.asarray(_loo_errors(z, targets, mask, jnp.asarray(CV_BANDWIDTHS, jnp.float32)))
    m_sub = max(float(jnp.sum(mask)), 1.0)
    return CV_BANDWIDTHS[int(np.argmin(errs))] * (m_sub / m_full) ** (1.0 / (z.shape[1] + 4))


def _kernel_fit(x, target, mask, bandwidth, cv_targets=None):
    mean, std = _standardize_stats(x)
    z = (x - mean) / std
    if bandwidth == "cv":
        h = jnp.asarray(cv_bandwidth(z, target[:, None] if cv_targets is None else cv_targets,
                                     mask), jnp.float32)
    elif bandwidth is None:
        h = _scott(jnp.maximum(jnp.sum(mask), 1.0), x.shape[1])
    else:
        h = jnp.asarray(bandwidth, jnp.float32)
    return KernelParams(mean, std, z, target, mask, h)


def _check_bandwidth(where, bandwidth):
    if bandwidth == "cv" or bandwidth is None:
        return
    if isinstance(bandwidth, str) or not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(
            f"{where}: bandwidth must be 'cv', None or a finite number > 0, got {bandwidth!r}"
        )


@dataclasses.dataclass(frozen=True)
class KernelPropensity:
    """Nadaraya-Watson regression of ``A`` on standardized ``X`` with a Gaussian kernel.

    ``pi(x) = sum_j K_h(x - X_j) A_j / sum_j K_h(x - X_j)`` on standardized covariates;
    ``bandwidth="cv"`` (default) picks ``h`` by leave-one-out squared error
    (:func:`cv_bandwidth`), ``None`` uses Scott's rule ``h = 1.06 n^{-1/(d+4)}``.
    """

    bandwidth: float | str | None = "cv"

    def fit(self, x, a, key=None):
        _check_bandwidth("KernelPropensity", self.bandwidth)
        x = jnp.asarray(as_covariates("KernelPropensity.fit", "x", x), jnp.float32)
        a = jnp.asarray(as_treatment("KernelPropensity.fit", "a", a), jnp.float32)
        check_lengths("KernelPropensity.fit", x=x, a=a)
        return _kernel_fit(x, a, jnp.ones_like(a), self.bandwidth)

    def predict(self, params, x):
        return _kernel_regress(params, jnp.asarray(x, jnp.float32))


@dataclasses.dataclass(frozen=True)
class ConstantPropensity:
    """``pi(x) = mean(A)``: ignores covariates (a misspecified model under confounding)."""

    def fit(self, x, a, key=None):
        a = as_treatment("ConstantPropensity.fit", "a", a)
        return jnp.asarray(a.mean(), jnp.float32)

    def predict(self, params, x):
        return jnp.full((jnp.shape(x)[0],), params, jnp.float32)


@dataclasses.dataclass(frozen=True)
class OraclePropensity:
    """The true propensity of a simulated design (``design.propensity(x)``)."""

    design: Any

    def __post_init__(self):
        if not callable(getattr(self.design, "propensity", None)):
            raise TypeError("OraclePropensity: design must have a propensity(x) method (a "
                            f"cqc.Design), got {type(self.design).__name__}")

    def fit(self, x, a, key=None):
        return None

    def predict(self, params, x):
        return jnp.asarray(self.design.propensity(x), jnp.float32)


# ---------------------------------------------------------------------------------------
# Conditional CDF models
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelCDF:
    """Nadaraya-Watson estimate ``F_a(t|x) = sum_j w_j(x) 1{Y_j <= t}`` over arm-``a`` units.

    Weights ``w_j(x) ∝ exp(-|x - X_j|^2 / (2 h^2))`` on standardized covariates;
    ``bandwidth="cv"`` (default) picks ``h`` by leave-one-out Brier score of the indicators
    ``1{Y <= q_l}`` at the arm's outcome deciles (:func:`cv_bandwidth`); ``None`` uses
    Scott's rule with the arm's size.
    """

    bandwidth: float | str | None = "cv"

    def fit(self, x, y, mask, arm, key=None):
        _check_bandwidth("KernelCDF", self.bandwidth)
        x = jnp.asarray(x, jnp.float32)
        y = jnp.asarray(y, jnp.float32)
        mask = jnp.asarray(mask, jnp.float32)
        cv_targets = None
        if self.bandwidth == "cv":
            ym = np.asarray(y)[np.asarray(mask) > 0]
            q = np.quantile(ym, np.linspace(0.1, 0.9, 9)) if ym.size else np.zeros(9)
            cv_targets = (y[:, None] <= jnp.asarray(q, jnp.float32)[None, :]).astype(jnp.float32)
        return _kernel_fit(x, y, mask, self.bandwidth, cv_targets)

    def cdf(self, params, grid, x):
        ind = (params.target[:, None] <= jnp.asarray(grid)[None, :]).astype(jnp.float32)
        return _kernel_regress(params._replace(target=ind), jnp.asarray(x, jnp.float32))


class NeuralCDFParams(NamedTuple):
    mean: jax.Array
    std: jax.Array
    y_mean: jax.Array
    y_std: jax.Array
    state: Any


def _mixture(m, z, components):
    out = m(z)
    logits, loc, log_scale = (out[:, :components], out[:, components:2 * components],
                              out[:, 2 * components:])
    return jax.nn.log_softmax(logits, -1), loc, jnp.exp(jnp.clip(log_scale, -5.0, 3.0))


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "lr", "components"))
def _neural_cdf_fit(graphdef, state, x, y, mask, steps, lr, components):
    mean, std = _standardize_stats(x)
    w = mask / jnp.maximum(jnp.sum(mask), 1.0)
    y_mean = jnp.sum(w * y)
    y_std = jnp.sqrt(jnp.maximum(jnp.sum(w * (y - y_mean) ** 2), 1e-12))
    z = (x - mean) / std
    u = (y - y_mean) / y_std

    def loss_fn(m):
        logw, loc, scale = _mixture(m, z, components)
        e = (u[:, None] - loc) / scale
        logpdf = -e - jnp.log(scale) - 2.0 * jax.nn.softplus(-e)
        return -jnp.sum(w * jax.nn.logsumexp(logw + logpdf, axis=-1))

    state, _ = _train_module(graphdef, state, loss_fn, steps, lr)
    return NeuralCDFParams(mean, std, y_mean, y_std, state)


@functools.partial(jax.jit, static_argnames=("graphdef", "components"))
def _neural_cdf_eval(graphdef, params, grid, x, components):
    m = nnx.merge(graphdef, params.state)
    logw, loc, scale = _mixture(m, (x - params.mean) / params.std, components)
    u = (grid - params.y_mean) / params.y_std
    e = (u[None, :, None] - loc[:, None, :]) / scale[:, None, :]
    return jnp.sum(jnp.exp(logw)[:, None, :] * jax.nn.sigmoid(e), axis=-1)


@dataclasses.dataclass(frozen=True)
class NeuralCDF:
    """Neural distributional regression: ``Y | X = x`` is a mixture of logistics.

    An MLP maps ``x`` to ``C`` weights, locations and scales;
    ``F(t | x) = sum_c w_c(x) sigmoid((t - mu_c(x)) / s_c(x))`` is increasing in ``t`` by
    construction. Trained by maximum likelihood with full-batch Adam.
    """

    hidden: tuple[int, ...] = (32, 32)
    components: int = 5
    steps: int = 400
    learning_rate: float = 1e-2

    def fit(self, x, y, mask, arm, key):
        _key_check("NeuralCDF.fit", key)
        x = jnp.asarray(x, jnp.float32)
        m = _MLP(x.shape[1], self.hidden, 3 * self.components, rngs=nnx.Rngs(params=key))
        graphdef, state = nnx.split(m)
        params = _neural_cdf_fit(graphdef, state, x, jnp.asarray(y, jnp.float32),
                                 jnp.asarray(mask, jnp.float32), self.steps,
                                 self.learning_rate, self.components)
        return (graphdef, params)

    def cdf(self, params, grid, x):
        graphdef, p = params
        return _neural_cdf_eval(graphdef, p, jnp.asarray(grid, jnp.float32),
                                jnp.asarray(x, jnp.float32), self.components)


@dataclasses.dataclass(frozen=True)
class MarginalCDF:
    """Empirical CDF of arm ``a``'s outcomes, ignoring ``x`` (misspecified under confounding
    or heterogeneity)."""

    def fit(self, x, y, mask, arm, key=None):
        return (jnp.asarray(y, jnp.float32), jnp.asarray(mask, jnp.float32))

    def cdf(self, params, grid, x):
        y, mask = params
        ind = (y[:, None] <= jnp.asarray(grid)[None, :]).astype(jnp.float32)
        row = (mask @ ind) / jnp.maximum(jnp.sum(mask), 1.0)
        return jnp.broadcast_to(row, (jnp.shape(x)[0], row.shape[0]))


@dataclasses.dataclass(frozen=True)
class OracleCDF:
    """The true conditional CDFs of a simulated design (``design.cdf(arm, t, x)``)."""

    design: Any

    def __post_init__(self):
        if not callable(getattr(self.design, "cdf", None)):
            raise TypeError("OracleCDF: design must have a cdf(arm, t, x) method (a cqc.Design), "
                            f"got {type(self.design).__name__}")

    def fit(self, x, y, mask, arm, key=None):
        return int(arm)

    def cdf(self, params, grid, x):
        n = jnp.shape(x)[0]
        t = jnp.broadcast_to(jnp.asarray(grid, jnp.float32), (n, jnp.shape(grid)[0]))
        return jnp.asarray(self.design.cdf(params, t, x), jnp.float32)


# ---------------------------------------------------------------------------------------
# Cross-fitting
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Nuisance:
    """A propensity model and a conditional-CDF model (the CDF model is fit per arm)."""

    propensity: Any = dataclasses.field(default_factory=LogisticPropensity)
    cdf: Any = dataclasses.field(default_factory=KernelCDF)


class NuisanceValues(NamedTuple):
    """Cross-fitted nuisances at the data: ``pi (n,)`` (clipped), ``f0, f1 (n, K)`` CDFs of
    ``Y(0), Y(1)`` given ``X_i`` on ``grid (K,)``."""

    pi: jax.Array
    f0: jax.Array
    f1: jax.Array
    grid: jax.Array


def fold_ids(n: int, n_folds: int, key: jax.Array) -> np.ndarray:
    """A random assignment of ``n`` units to ``n_folds`` folds of (near) equal size."""
    perm = np.asarray(jax.random.permutation(key, n))
    ids = np.empty(n, dtype=np.int32)
    ids[perm] = np.arange(n) % n_folds
    return ids


def cross_fit(
    x,
    a,
    y,
    *,
    nuisance: Nuisance,
    grid,
    key: jax.Array,
    n_folds: int = 2,
    clip: tuple[float, float] = (0.05, 0.95),
    min_per_fold: int = 5,
) -> NuisanceValues:
    """Cross-fits the propensity and both arms' CDFs.

    For each fold ``k``, the models are fit on the other folds and evaluated on fold ``k``;
    ``n_folds=1`` fits and evaluates on all data (no cross-fitting). Propensities are clipped
    to ``clip``.

    Args:
      x: ``(n, d)`` covariates. a: ``(n,)`` 0/1 treatment. y: ``(n,)`` outcomes.
      nuisance: the :class:`Nuisance` models.
      grid: ``(K,)`` increasing grid of outcome values for the CDFs.
      key: ``jax.random.key`` (fold split and model initialisation).
      n_folds: number of folds (>= 1).
      clip: propensity clip bounds, ``0 < lo < hi < 1``.
      min_per_fold: each arm must have at least this many units in every fold.

    Returns:
      :class:`NuisanceValues`.

    Raises:
      ValueError: bad shapes, NaN, non-0/1 treatment, bad clip, or an arm with fewer than
        ``min_per_fold`` units in some fold.
    """
    where = "cross_fit"
    x = as_covariates(where, "x", x)
    a = as_treatment(where, "a", a)
    y = as_finite_vector(where, "y", y)
    n = check_lengths(where, x=x, a=a, y=y)
    lo, hi = check_clip(where, clip)
    n_folds = check_positive_int(where, "n_folds", n_folds)
    _key_check(where, key)
    grid = jnp.asarray(as_finite_vector(where, "grid", grid), jnp.float32)
    if grid.shape[0] < 2 or bool(jnp.any(jnp.diff(grid) <= 0)):
        raise ValueError(f"{where}: grid must be strictly increasing with >= 2 points")
    kf, kp, k0, k1 = jax.random.split(key, 4)
    ids = fold_ids(n, n_folds, kf) if n_folds > 1 else np.zeros(n, dtype=np.int32)
    for k in range(n_folds):
        for arm in (0, 1):
            count = int(np.sum((ids == k) & (a == arm)))
            if count < min_per_fold:
                raise ValueError(
                    f"{where}: fold {k} has {count} unit(s) with treatment {arm}; need at least "
                    f"{min_per_fold} per arm per fold (n={n}, n_folds={n_folds})"
                )
    xj, aj, yj = (jnp.asarray(v, jnp.float32) for v in (x, a, y))
    pi = np.zeros(n, np.float32)
    f0 = np.zeros((n, grid.shape[0]), np.float32)
    f1 = np.zeros((n, grid.shape[0]), np.float32)
    for k in range(n_folds):
        test = ids == k
        train = ~test if n_folds > 1 else test
        xt, at, yt = xj[train], aj[train], yj[train]
        pp = nuisance.propensity.fit(xt, at, jax.random.fold_in(kp, k))
        pi[test] = np.asarray(nuisance.propensity.predict(pp, xj[test]))
        p0 = nuisance.cdf.fit(xt, yt, 1.0 - at, 0, jax.random.fold_in(k0, k))
        p1 = nuisance.cdf.fit(xt, yt, at, 1, jax.random.fold_in(k1, k))
        f0[test] = np.asarray(nuisance.cdf.cdf(p0, grid, xj[test]))
        f1[test] = np.asarray(nuisance.cdf.cdf(p1, grid, xj[test]))
    for name, v in (("propensity", pi), ("F0", f0), ("F1", f1)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{where}: the {name} model produced NaN/inf values")
    return NuisanceValues(jnp.asarray(np.clip(pi, lo, hi)), jnp.asarray(f0), jnp.asarray(f1),
                          grid)
