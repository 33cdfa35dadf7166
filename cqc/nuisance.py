"""Pluggable nuisance estimators, scikit-learn adapters and K-fold cross-fitting.

Two kinds of nuisance, each with a pure-JAX core or any scikit-learn learner:

* propensity models ``pi(x) = P(A = 1 | X = x)``: ``fit(x, a, key, sample_weight=None) ->
  params`` and ``predict(params, x) -> (n,)``: :class:`LogisticPropensity`,
  :class:`MLPPropensity`, :class:`KernelPropensity`, :class:`ConstantPropensity`,
  :class:`OraclePropensity`, or :class:`SklearnPropensity` around any scikit-learn
  classifier with ``predict_proba`` (or regressor of ``A`` on ``X``).
* conditional CDF models ``F_a(t | x)``: ``fit(x, y, weights, arm, key) -> params``
  (``weights >= 0`` select and weight the units of arm ``arm``; shapes do not depend on
  group sizes) and ``cdf(params, grid, x) -> (n, K)``: :class:`KernelCDF`
  (Nadaraya-Watson on indicators), :class:`NeuralCDF` (mixture-of-logistics distributional
  regression, monotone in ``t`` by construction), :class:`MarginalCDF` (ignores ``x``),
  :class:`OracleCDF`, or :class:`SklearnCDF` around any scikit-learn classifier or
  regressor (distribution regression on threshold indicators, made monotone).

A :class:`Nuisance` pairs the two; scikit-learn learners placed in it directly are wrapped
in the adapters, and their hyperparameters are reachable through ``get_params`` (so
``GridSearchCV`` can tune ``nuisance__propensity__C``). :func:`cross_fit` fits both on
``K - 1`` folds and evaluates them on the held-out fold; it also returns the fitted fold
models (:class:`FittedNuisance`), which predict at new covariates by averaging the folds.

References:
  Chernozhukov et al. "Double/debiased machine learning." Econometrics J., 2018
  (cross-fitting, learner-agnostic nuisances). Chernozhukov, Fernandez-Val, Melly.
  "Inference on counterfactual distributions." Econometrica, 2013 (distribution
  regression). Givens et al., ICLR 2026, arXiv:2601.19666.
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
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils.validation import has_fit_parameter

from cqc.checks import (
    as_covariates,
    as_finite_vector,
    as_treatment,
    check_clip,
    check_lengths,
    check_positive_int,
)
from cqc.isotonic import isotonic_increasing
from cqc.kernel import (
    CV_BANDWIDTHS,
    block_rows,
    check_bandwidth,
    kernel_weights,
    map_blocks,
    select_bandwidth,
)

__all__ = [
    "CV_BANDWIDTHS",
    "ConstantPropensity",
    "FittedNuisance",
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
    "SklearnCDF",
    "SklearnPropensity",
    "cross_fit",
]


def _standardize_stats(x: jax.Array, w: jax.Array | None = None):
    if w is None:
        w = jnp.ones(x.shape[0], x.dtype)
    p = w / jnp.maximum(jnp.sum(w), 1e-12)
    mean = p @ x
    std = jnp.sqrt(jnp.maximum(p @ (x - mean) ** 2, 0.0))
    return mean, jnp.where(std > 0, std, 1.0)


def _key_check(where: str, key: Any) -> None:
    if not isinstance(key, jax.Array):
        raise TypeError(f"{where}: key must be a jax.random.key, got {type(key).__name__}")


def _weights(where: str, sample_weight, n: int) -> jax.Array:
    """``sample_weight`` as a float32 ``(n,)`` array of finite values >= 0 (ones if None)."""
    if sample_weight is None:
        return jnp.ones(n, jnp.float32)
    w = as_finite_vector(where, "sample_weight", sample_weight)
    if w.shape[0] != n:
        raise ValueError(f"{where}: sample_weight has {w.shape[0]} values but there are {n} rows")
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"{where}: sample_weight must be >= 0 and not all zero, got min "
                         f"{w.min():.3g} and max {w.max():.3g}")
    return jnp.asarray(w, jnp.float32)


def _seed(key: jax.Array | None) -> int:
    """An int seed from a JAX key (for learners that take ``random_state``)."""
    if key is None:
        return 0
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


# ---------------------------------------------------------------------------------------
# Propensity models
# ---------------------------------------------------------------------------------------


class LogisticParams(NamedTuple):
    mean: jax.Array
    std: jax.Array
    coef: jax.Array  # (d + 1,), intercept first


@functools.partial(jax.jit, static_argnames=("iters",))
def _logistic_fit(x, a, w, ridge, iters):
    mean, std = _standardize_stats(x, w)
    z = jnp.concatenate([jnp.ones((x.shape[0], 1)), (x - mean) / std], axis=1)
    pen = ridge * jnp.eye(z.shape[1]).at[0, 0].set(0.0)
    p_w = w / jnp.sum(w)

    def newton(_, coef):
        p = jax.nn.sigmoid(z @ coef)
        grad = z.T @ (p_w * (p - a)) + pen @ coef
        hess = (z * (p_w * p * (1 - p))[:, None]).T @ z + pen + 1e-8 * jnp.eye(z.shape[1])
        return coef - jnp.linalg.solve(hess, grad)

    coef = jax.lax.fori_loop(0, iters, newton, jnp.zeros(z.shape[1]))
    return LogisticParams(mean, std, coef)


@jax.jit
def _logistic_predict(params, x):
    z = (x - params.mean) / params.std
    return jax.nn.sigmoid(params.coef[0] + z @ params.coef[1:])


def _propensity_inputs(where, x, a, sample_weight):
    x = jnp.asarray(as_covariates(where, "x", x), jnp.float32)
    a = jnp.asarray(as_treatment(where, "a", a), jnp.float32)
    check_lengths(where, x=x, a=a)
    return x, a, _weights(where, sample_weight, x.shape[0])


@dataclasses.dataclass(frozen=True)
class LogisticPropensity:
    """Logistic regression ``pi(x) = sigmoid(b + w^T x_std)`` fit by Newton's method.

    Minimizes the (weighted) mean log-loss plus ``ridge |w|^2 / 2`` (intercept unpenalized).

    Attributes:
      ridge: L2 penalty on ``w``.
      iters: Newton iterations.
    """

    ridge: float = 1e-4
    iters: int = 25

    def fit(self, x, a, key=None, sample_weight=None):
        x, a, w = _propensity_inputs("LogisticPropensity.fit", x, a, sample_weight)
        return _logistic_fit(x, a, w, self.ridge, self.iters)

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


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "lr"))
def _mlp_propensity_fit(graphdef, state, x, a, w, steps, lr):
    mean, std = _standardize_stats(x, w)
    z = (x - mean) / std
    p_w = w / jnp.sum(w)

    def loss_fn(m):
        logits = m(z)[:, 0]
        return jnp.sum(p_w * optax.sigmoid_binary_cross_entropy(logits, a))

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

    def fit(self, x, a, key, sample_weight=None):
        _key_check("MLPPropensity.fit", key)
        x, a, w = _propensity_inputs("MLPPropensity.fit", x, a, sample_weight)
        graphdef, state = nnx.split(_MLP(x.shape[1], self.hidden, 1, rngs=nnx.Rngs(params=key)))
        return graphdef, _mlp_propensity_fit(graphdef, state, x, a, w, self.steps,
                                             self.learning_rate)

    def predict(self, params, x):
        graphdef, p = params
        return _mlp_propensity_predict(graphdef, p, jnp.asarray(x, jnp.float32))


class KernelParams(NamedTuple):
    """A fitted Nadaraya-Watson smoother: standardization, training covariates ``z``,
    targets, unit ``weights`` (0 for units that do not count) and the ``bandwidth``."""

    mean: jax.Array
    std: jax.Array
    z: jax.Array
    target: jax.Array  # (n,) or (n, T)
    weights: jax.Array  # (n,)
    bandwidth: jax.Array


@jax.jit
def _kernel_regress(params: KernelParams, x):
    """``sum_j w_j(x) target_j`` at every row of ``x``, in memory-bounded blocks."""
    zq = (x - params.mean) / params.std
    per_query = params.z.shape[0] * (params.z.shape[1] + 2 + max(params.target[0].size, 1))

    def block(zb):
        return kernel_weights(zb, params.z, params.bandwidth, params.weights) @ params.target

    return map_blocks(block, (zq,), block_rows(zq.shape[0], per_query))


def _kernel_fit(where, x, target, weights, bandwidth, cv_targets, standardize_weights=None):
    check_bandwidth(where, bandwidth)
    mean, std = _standardize_stats(x, standardize_weights)
    z = (x - mean) / std
    h = select_bandwidth(bandwidth, z, weights, cv_targets)
    return KernelParams(mean, std, z, target, weights, h)


@dataclasses.dataclass(frozen=True)
class KernelPropensity:
    """Nadaraya-Watson regression of ``A`` on standardized ``X`` with a Gaussian kernel.

    ``pi(x) = sum_j v_j K_h(x - X_j) A_j / sum_j v_j K_h(x - X_j)`` (``v`` the sample
    weights) on standardized covariates; ``bandwidth="cv"`` (default) picks ``h`` by
    leave-one-out squared error (:func:`cqc.kernel.cv_bandwidth`), ``None`` uses Scott's rule
    ``h = 1.06 n^{-1/(d+4)}``.
    """

    bandwidth: float | str | None = "cv"

    def fit(self, x, a, key=None, sample_weight=None):
        check_bandwidth("KernelPropensity", self.bandwidth)
        x, a, w = _propensity_inputs("KernelPropensity.fit", x, a, sample_weight)
        return _kernel_fit("KernelPropensity", x, a, w, self.bandwidth, a[:, None], w)

    def predict(self, params, x):
        return _kernel_regress(params, jnp.asarray(x, jnp.float32))


@dataclasses.dataclass(frozen=True)
class ConstantPropensity:
    """``pi(x) = mean(A)`` (weighted): ignores covariates (misspecified under confounding)."""

    def fit(self, x, a, key=None, sample_weight=None):
        a = as_treatment("ConstantPropensity.fit", "a", a)
        w = _weights("ConstantPropensity.fit", sample_weight, a.shape[0])
        return jnp.asarray(jnp.sum(w * a) / jnp.sum(w), jnp.float32)

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

    def fit(self, x, a, key=None, sample_weight=None):
        return None

    def predict(self, params, x):
        return jnp.asarray(self.design.propensity(x), jnp.float32)


def _check_learner(where: str, learner: Any, needs_proba: bool = False) -> None:
    if not (hasattr(learner, "fit") and hasattr(learner, "get_params")):
        raise TypeError(f"{where}: learner must be a scikit-learn estimator (with fit and "
                        f"get_params), got {type(learner).__name__}")
    if needs_proba and not (hasattr(learner, "predict_proba") or hasattr(learner, "predict")):
        raise TypeError(f"{where}: learner needs predict_proba or predict, got "
                        f"{type(learner).__name__}")


def _fresh(learner, key):
    """A clone of ``learner``; an unset ``random_state`` is drawn from ``key``."""
    model = clone(learner)
    own = model.get_params(deep=False)
    if "random_state" in own and own["random_state"] is None:
        model.set_params(random_state=_seed(key))
    return model


def _fit_learner(where, learner, x, target, w, key):
    model = _fresh(learner, key)
    uniform = bool(np.allclose(w, w[0]))
    if uniform:
        return model.fit(x, target)
    if not has_fit_parameter(model, "sample_weight"):
        raise ValueError(f"{where}: {type(learner).__name__}.fit takes no sample_weight, but "
                         "the units have unequal weights (sample_weight, or a weighted arm)")
    return model.fit(x, target, sample_weight=w)


def _positive_class_proba(model, x) -> np.ndarray:
    """``P(class == 1 | x)`` from a fitted classifier (0 if it never saw class 1)."""
    classes = list(getattr(model, "classes_", []))
    if 1 in classes or 1.0 in classes:
        col = classes.index(1)
        return np.asarray(model.predict_proba(x))[:, col]
    return np.zeros(np.shape(x)[0])


@dataclasses.dataclass(frozen=True)
class SklearnPropensity:
    """Any scikit-learn learner as the propensity ``pi(x)``.

    A classifier gives ``pi(x) = predict_proba(x)[:, class 1]``; a regressor (of the 0/1
    treatment on ``x``) gives ``clip(predict(x), 0, 1)``. Each fold fits a fresh
    ``sklearn.base.clone`` (an unset ``random_state`` is drawn from the fold's key);
    ``sample_weight`` is passed to ``fit`` when the weights are not all equal.

    Attributes:
      learner: an unfitted scikit-learn estimator, e.g. ``LogisticRegression()`` or
        ``HistGradientBoostingClassifier()``.
    """

    learner: Any

    def __post_init__(self):
        _check_learner("SklearnPropensity", self.learner, needs_proba=True)

    def fit(self, x, a, key=None, sample_weight=None):
        x = as_covariates("SklearnPropensity.fit", "x", x)
        a = as_treatment("SklearnPropensity.fit", "a", a)
        check_lengths("SklearnPropensity.fit", x=x, a=a)
        w = np.asarray(_weights("SklearnPropensity.fit", sample_weight, x.shape[0]))
        target = a.astype(int) if is_classifier(self.learner) else a
        return _fit_learner("SklearnPropensity.fit", self.learner, x, target, w, key)

    def predict(self, model, x):
        x = np.asarray(x, np.float64)
        if hasattr(model, "predict_proba"):
            p = _positive_class_proba(model, x)
        else:
            p = np.clip(np.asarray(model.predict(x), np.float64), 0.0, 1.0)
        return jnp.asarray(p, jnp.float32)


# ---------------------------------------------------------------------------------------
# Conditional CDF models
# ---------------------------------------------------------------------------------------


def _cdf_inputs(where, x, y, weights):
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    if x.ndim != 2 or y.shape != (x.shape[0],) or weights.shape != (x.shape[0],):
        raise ValueError(f"{where}: expected x (n, d), y (n,) and weights (n,), got "
                         f"{x.shape}, {y.shape} and {weights.shape}")
    return x, y, weights


@dataclasses.dataclass(frozen=True)
class KernelCDF:
    """Nadaraya-Watson estimate ``F_a(t|x) = sum_j w_j(x) 1{Y_j <= t}`` over arm-``a`` units.

    Weights ``w_j(x) ∝ v_j exp(-|x - X_j|^2 / (2 h^2))`` on covariates standardized over all
    rows given to ``fit`` (both arms, so both arms' kernels share one metric; ``v``: the unit
    weights, 0 outside the arm); ``bandwidth="cv"`` (default) picks ``h`` by
    leave-one-out Brier score of the indicators ``1{Y <= q_l}`` at the arm's outcome deciles
    (:func:`cqc.kernel.cv_bandwidth`); ``None`` uses Scott's rule with the arm's size.
    """

    bandwidth: float | str | None = "cv"

    def fit(self, x, y, weights, arm, key=None):
        check_bandwidth("KernelCDF", self.bandwidth)
        x, y, weights = _cdf_inputs("KernelCDF.fit", x, y, weights)
        ym = np.asarray(y)[np.asarray(weights) > 0]
        q = np.quantile(ym, np.linspace(0.1, 0.9, 9)) if ym.size else np.zeros(9)
        cv_targets = (y[:, None] <= jnp.asarray(q, jnp.float32)[None, :]).astype(jnp.float32)
        return _kernel_fit("KernelCDF", x, y, weights, self.bandwidth, cv_targets)

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
def _neural_cdf_fit(graphdef, state, x, y, weights, steps, lr, components):
    mean, std = _standardize_stats(x, weights)
    w = weights / jnp.maximum(jnp.sum(weights), 1e-12)
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
    construction. Trained by (weighted) maximum likelihood with full-batch Adam.
    """

    hidden: tuple[int, ...] = (32, 32)
    components: int = 5
    steps: int = 400
    learning_rate: float = 1e-2

    def fit(self, x, y, weights, arm, key):
        _key_check("NeuralCDF.fit", key)
        x, y, weights = _cdf_inputs("NeuralCDF.fit", x, y, weights)
        m = _MLP(x.shape[1], self.hidden, 3 * self.components, rngs=nnx.Rngs(params=key))
        graphdef, state = nnx.split(m)
        return graphdef, _neural_cdf_fit(graphdef, state, x, y, weights, self.steps,
                                         self.learning_rate, self.components)

    def cdf(self, params, grid, x):
        graphdef, p = params
        return _neural_cdf_eval(graphdef, p, jnp.asarray(grid, jnp.float32),
                                jnp.asarray(x, jnp.float32), self.components)


@dataclasses.dataclass(frozen=True)
class MarginalCDF:
    """(Weighted) empirical CDF of arm ``a``'s outcomes, ignoring ``x`` (misspecified under
    confounding or heterogeneity)."""

    def fit(self, x, y, weights, arm, key=None):
        return (jnp.asarray(y, jnp.float32), jnp.asarray(weights, jnp.float32))

    def cdf(self, params, grid, x):
        y, weights = params
        ind = (y[:, None] <= jnp.asarray(grid)[None, :]).astype(jnp.float32)
        row = (weights @ ind) / jnp.maximum(jnp.sum(weights), 1e-12)
        return jnp.broadcast_to(row, (jnp.shape(x)[0], row.shape[0]))


@dataclasses.dataclass(frozen=True)
class OracleCDF:
    """The true conditional CDFs of a simulated design (``design.cdf(arm, t, x)``)."""

    design: Any

    def __post_init__(self):
        if not callable(getattr(self.design, "cdf", None)):
            raise TypeError("OracleCDF: design must have a cdf(arm, t, x) method (a cqc.Design), "
                            f"got {type(self.design).__name__}")

    def fit(self, x, y, weights, arm, key=None):
        return int(arm)

    def cdf(self, params, grid, x):
        n = jnp.shape(x)[0]
        t = jnp.broadcast_to(jnp.asarray(grid, jnp.float32), (n, jnp.shape(grid)[0]))
        return jnp.asarray(self.design.cdf(params, t, x), jnp.float32)


def _weighted_quantile(y: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(y)
    y, w = y[order], w[order]
    cum = (np.cumsum(w) - 0.5 * w) / np.sum(w)
    return np.interp(q, cum, y)


class SklearnCDFParams(NamedTuple):
    """Knots ``t_0 < t_1 < ... < t_{L+1}`` (arm minimum, thresholds, arm maximum) and, per
    inner knot, a fitted learner (or a constant where the indicator never varied)."""

    knots: np.ndarray
    models: tuple


@dataclasses.dataclass(frozen=True)
class SklearnCDF:
    """Any scikit-learn classifier or regressor as a conditional-CDF model.

    Distribution regression: at ``L`` thresholds ``t_l`` (the arm's weighted outcome
    quantiles at levels ``l / (L + 1)``) the learner is fit to the indicator
    ``1{Y <= t_l}`` on ``x`` (a classifier's ``predict_proba`` of class 1; a regressor's
    prediction clipped to ``[0, 1]``; a regressor that supports several outputs is fit once
    to all ``L`` indicator columns). Per query row the ``L`` estimates are projected onto
    non-decreasing sequences (:func:`cqc.isotonic_increasing`), so the CDF is monotone in
    ``t``; it is 0 below the arm's smallest outcome, 1 from its largest, and linear between
    knots.

    Attributes:
      learner: an unfitted scikit-learn estimator (``HistGradientBoostingClassifier()``,
        ``LogisticRegression()``, ``RandomForestRegressor()``, ...).
      n_thresholds: ``L`` (>= 1).
    """

    learner: Any
    n_thresholds: int = 19

    def __post_init__(self):
        _check_learner("SklearnCDF", self.learner, needs_proba=True)
        check_positive_int("SklearnCDF", "n_thresholds", self.n_thresholds)

    def fit(self, x, y, weights, arm, key=None):
        where = "SklearnCDF.fit"
        x = as_covariates(where, "x", x)
        y = as_finite_vector(where, "y", y)
        w = np.asarray(weights, np.float64)
        check_lengths(where, x=x, y=y, weights=w)
        rows = w > 0
        if rows.sum() < 2:
            raise ValueError(f"{where}: arm {arm} has {int(rows.sum())} unit(s) with weight > 0; "
                             "need at least 2")
        xa, ya, wa = x[rows], y[rows], w[rows]
        levels = np.arange(1, self.n_thresholds + 1) / (self.n_thresholds + 1)
        thresholds = np.unique(_weighted_quantile(ya, wa, levels))
        thresholds = thresholds[(thresholds > ya.min()) & (thresholds < ya.max())]
        knots = np.concatenate([[ya.min()], thresholds, [ya.max()]])
        ind = (ya[:, None] <= thresholds[None, :]).astype(np.float64)
        key = key if key is not None else jax.random.key(0)
        keys = jax.random.split(key, max(len(thresholds), 1))
        classifier = is_classifier(self.learner)
        multi = (not classifier and len(thresholds) > 1
                 and self.learner.__sklearn_tags__().target_tags.multi_output)
        if multi:
            models = (_fit_learner(where, self.learner, xa, ind, wa, keys[0]),)
        else:
            models = []
            for j in range(len(thresholds)):
                col = ind[:, j]
                if np.all(col == col[0]):
                    models.append(float(col[0]))
                    continue
                target = col.astype(int) if classifier else col
                models.append(_fit_learner(where, self.learner, xa, target, wa, keys[j]))
            models = tuple(models)
        return SklearnCDFParams(knots, models)

    def _inner(self, params, x):
        """``(n, L)`` monotone estimates of ``F(t_l | x)`` at the inner knots."""
        n = x.shape[0]
        inner = len(params.knots) - 2
        if inner == 0:
            return np.zeros((n, 0))
        if len(params.models) == 1 and inner > 1:  # one multi-output regressor
            est = np.asarray(params.models[0].predict(x), np.float64).reshape(n, inner)
        else:
            cols = []
            for m in params.models:
                if isinstance(m, float):
                    cols.append(np.full(n, m))
                elif hasattr(m, "predict_proba"):
                    cols.append(_positive_class_proba(m, x))
                else:
                    cols.append(np.asarray(m.predict(x), np.float64).reshape(n))
            est = np.stack(cols, axis=1)
        est = np.clip(est, 0.0, 1.0)
        return np.clip(np.asarray(isotonic_increasing(jnp.asarray(est, jnp.float32))), 0.0, 1.0)

    def cdf(self, params, grid, x):
        x = np.asarray(x, np.float64)
        grid = np.asarray(grid, np.float64)
        values = np.concatenate([np.zeros((x.shape[0], 1)), self._inner(params, x),
                                 np.ones((x.shape[0], 1))], axis=1)
        knots = params.knots
        idx = np.clip(np.searchsorted(knots, grid, side="right"), 1, len(knots) - 1)
        lo, hi = knots[idx - 1], knots[idx]
        frac = np.clip((grid - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        out = values[:, idx - 1] + (values[:, idx] - values[:, idx - 1]) * frac[None, :]
        out = np.where(grid[None, :] < knots[0], 0.0, out)
        return jnp.asarray(out, jnp.float32)


# ---------------------------------------------------------------------------------------
# The nuisance pair, fitted fold models and cross-fitting
# ---------------------------------------------------------------------------------------


def as_propensity_model(model: Any, where: str = "Nuisance"):
    """``model`` as a propensity model: native ones as they are, scikit-learn learners
    wrapped in :class:`SklearnPropensity`."""
    if hasattr(model, "get_params") and hasattr(model, "fit"):
        return SklearnPropensity(model)
    if callable(getattr(model, "fit", None)) and callable(getattr(model, "predict", None)):
        return model
    raise TypeError(f"{where}: propensity must be a cqc propensity model or a scikit-learn "
                    f"classifier/regressor, got {type(model).__name__}")


def as_cdf_model(model: Any, where: str = "Nuisance"):
    """``model`` as a conditional-CDF model: native ones as they are, scikit-learn learners
    wrapped in :class:`SklearnCDF`."""
    if hasattr(model, "get_params") and hasattr(model, "fit"):
        return SklearnCDF(model)
    if callable(getattr(model, "fit", None)) and callable(getattr(model, "cdf", None)):
        return model
    raise TypeError(f"{where}: cdf must be a cqc CDF model or a scikit-learn classifier/"
                    f"regressor, got {type(model).__name__}")


class Nuisance(BaseEstimator):
    """A propensity model and a conditional-CDF model (the CDF model is fit per arm).

    Either may be a native model of this module or any scikit-learn learner (wrapped in
    :class:`SklearnPropensity` / :class:`SklearnCDF` when used). ``Nuisance`` follows the
    scikit-learn parameter protocol, so a learner's hyperparameters are reachable from an
    estimator holding it: ``DirectCQC(nuisance=Nuisance(LogisticRegression(), ...))`` has
    ``nuisance__propensity__C``.

    Args:
      propensity: default :class:`LogisticPropensity`.
      cdf: default :class:`KernelCDF`.
    """

    def __init__(self, propensity: Any = LogisticPropensity(), cdf: Any = KernelCDF()):
        self.propensity = propensity
        self.cdf = cdf

    @property
    def propensity_model(self):
        """The propensity as a model of the native protocol."""
        return as_propensity_model(self.propensity)

    @property
    def cdf_model(self):
        """The CDF model as a model of the native protocol."""
        return as_cdf_model(self.cdf)

    def check(self, where: str) -> None:
        """Raises ``TypeError`` naming ``where`` unless both parts are usable models."""
        as_propensity_model(self.propensity, where)
        as_cdf_model(self.cdf, where)


class FittedNuisance(NamedTuple):
    """The fold models of one cross-fit: evaluate the nuisances at new covariates.

    Out-of-sample values average the ``K`` fold models (each fit on ``K - 1`` folds), as
    in DoubleML's and EconML's prediction at new points; propensities are clipped.
    """

    propensity: Any
    cdf: Any
    params: tuple  # per fold: (propensity params, arm-0 CDF params, arm-1 CDF params)
    grid: jax.Array
    clip: tuple[float, float]

    def pi(self, x) -> jax.Array:
        """``pi_hat(x)`` ``(m,)``, clipped."""
        x = jnp.asarray(x, jnp.float32)
        p = jnp.mean(jnp.stack([jnp.asarray(self.propensity.predict(pp, x), jnp.float32)
                                for pp, _, _ in self.params]), axis=0)
        return jnp.clip(p, *self.clip)

    def cdf_values(self, arm: int, x) -> jax.Array:
        """``F_arm_hat(t_k | x)`` on the grid, ``(m, K)``."""
        x = jnp.asarray(x, jnp.float32)
        return jnp.mean(jnp.stack([jnp.asarray(self.cdf.cdf(p[1 + arm], self.grid, x),
                                               jnp.float32) for p in self.params]), axis=0)


class NuisanceValues(NamedTuple):
    """Cross-fitted nuisances at the data: ``pi (n,)`` (clipped), ``f0, f1 (n, K)`` CDFs of
    ``Y(0), Y(1)`` given ``X_i`` on ``grid (K,)``, and the fold ``models`` that produced them
    (a :class:`FittedNuisance`; ``None`` when the values came from elsewhere)."""

    pi: jax.Array
    f0: jax.Array
    f1: jax.Array
    grid: jax.Array
    models: FittedNuisance | None = None


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
    sample_weight=None,
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
      sample_weight: optional ``(n,)`` unit weights ``>= 0`` passed to every model's fit.

    Returns:
      :class:`NuisanceValues` (with the fold models in ``models``).

    Raises:
      ValueError: bad shapes, NaN, non-0/1 treatment, bad clip or weights, an arm with fewer
        than ``min_per_fold`` units in some fold, or a model that produced NaN/inf.
      TypeError: a nuisance that is neither a native model nor a scikit-learn learner.
    """
    where = "cross_fit"
    if not isinstance(nuisance, Nuisance):
        raise TypeError(f"{where}: nuisance must be a cqc.Nuisance, got {type(nuisance).__name__}")
    nuisance.check(where)
    x = as_covariates(where, "x", x)
    a = as_treatment(where, "a", a)
    y = as_finite_vector(where, "y", y)
    n = check_lengths(where, x=x, a=a, y=y)
    w = _weights(where, sample_weight, n)
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
    prop, cdf = nuisance.propensity_model, nuisance.cdf_model
    xj, aj, yj = (jnp.asarray(v, jnp.float32) for v in (x, a, y))
    pi = np.zeros(n, np.float32)
    f0 = np.zeros((n, grid.shape[0]), np.float32)
    f1 = np.zeros((n, grid.shape[0]), np.float32)
    params = []
    for k in range(n_folds):
        test = ids == k
        train = ~test if n_folds > 1 else test
        xt, at, yt, wt = xj[train], aj[train], yj[train], w[train]
        kpk = jax.random.fold_in(kp, k)
        pp = (prop.fit(xt, at, kpk) if sample_weight is None
              else prop.fit(xt, at, kpk, sample_weight=wt))
        p0 = cdf.fit(xt, yt, (1.0 - at) * wt, 0, jax.random.fold_in(k0, k))
        p1 = cdf.fit(xt, yt, at * wt, 1, jax.random.fold_in(k1, k))
        pi[test] = np.asarray(prop.predict(pp, xj[test]))
        f0[test] = np.asarray(cdf.cdf(p0, grid, xj[test]))
        f1[test] = np.asarray(cdf.cdf(p1, grid, xj[test]))
        params.append((pp, p0, p1))
    for name, v in (("propensity", pi), ("F0", f0), ("F1", f1)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{where}: the {name} model produced NaN/inf values")
    models = FittedNuisance(prop, cdf, tuple(params), grid, (lo, hi))
    return NuisanceValues(jnp.asarray(np.clip(pi, lo, hi)), jnp.asarray(f0), jnp.asarray(f1),
                          grid, models)
