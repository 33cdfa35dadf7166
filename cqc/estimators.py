"""CQC estimators: scikit-learn estimators over a pure-JAX core.

* :class:`DirectCQC`: the paper's direct doubly robust estimator: a parametric
  ``g_theta(y0, x)`` fit by gradient descent on the DR objective of :func:`cqc.dr.direct_loss`.
* :class:`IndirectCQC`: the earlier estimator (Givens et al., 2024): kernel-weighted average
  in ``x`` of the DR pseudo-outcome, projected to be non-decreasing in ``y1`` (isotonic),
  inverted at zero.
* :class:`IPWCQC`: the same with the inverse-propensity-weighted pseudo-outcome.
* :class:`SeparateCQC`: the plug-in ``F1_hat^{-1}(F0_hat(y0 | x) | x)``.

All four follow scikit-learn's estimator contract: ``__init__`` stores its arguments as
given and ``fit`` validates them; ``fit(X, y, *, a, sample_weight=None, key=None)`` takes
the covariates ``X``, the outcome ``y`` and the 0/1 treatment ``a`` (sample-aligned
metadata, like ``sample_weight``: they request it by default, so with
``sklearn.set_config(enable_metadata_routing=True)`` ``GridSearchCV(...).fit(X, y, a=a)`` and
``cross_val_score(est, X, y, params={"a": a})`` route it to ``fit`` and ``score`` fold by
fold); randomness comes from ``key`` (a ``jax.random.key``) or, without one, from
``random_state``; fitted attributes end with ``_``; ``predict(X, y0=...)`` before ``fit``
raises ``sklearn.exceptions.NotFittedError``. ``score`` is the held-out DR objective (below),
so model selection compares CQC fits by the paper's own criterion.

Only :class:`DirectCQC` standardizes ``y`` (and ``x``) before fitting ``g_theta``: the CQC is
equivariant under a common affine map of both potential outcomes,
``g*(y0) = m + s g~((y0 - m) / s)``, so this is exact, and it makes default step sizes scale
free. The other estimators work on the outcome grid in the original units (they have no step
size); :class:`IndirectCQC` standardizes ``x`` for its kernel.

References:
  Givens, Liu, Reeve, Reluga. "Direct Doubly Robust Estimation of Conditional Quantile
  Contrasts." ICLR 2026, arXiv:2601.19666.
  Givens, Liu, Reeve. "Learning the Conditional Quantile Comparator." NeurIPS 2024,
  arXiv:2410.12454.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from cqc.checks import (
    as_covariates,
    as_finite_vector,
    as_treatment,
    check_clip,
    check_lengths,
    check_positive_int,
)
from cqc.dr import _direct_loss, _locate, control_term, cumulative_trapezoid, grid_cdf
from cqc.isotonic import first_crossing, isotonic_increasing
from cqc.kernel import block_rows, check_bandwidth, kernel_weights, map_blocks, select_bandwidth
from cqc.models import make_model
from cqc.nuisance import FittedNuisance, Nuisance, NuisanceValues, _weights, cross_fit

__all__ = [
    "DEFAULT_LEVELS",
    "Bands",
    "DirectCQC",
    "IPWCQC",
    "IndirectCQC",
    "NotFittedError",
    "SeparateCQC",
    "make_grid",
]

DEFAULT_LEVELS = tuple(float(u) for u in np.round(np.linspace(0.1, 0.9, 9), 10))


class Bands(NamedTuple):
    """Pointwise bootstrap bands: ``estimate``, ``lower``, ``upper`` (same shape), and the
    replicates ``samples (n_boot, ...)`` when requested."""

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


def _resolve_key(where: str, key, random_state) -> jax.Array:
    """``key`` if given (a ``jax.random.key``), else one drawn from ``random_state``."""
    if key is not None:
        if not isinstance(key, jax.Array):
            raise TypeError(f"{where}: key must be a jax.random.key, got {type(key).__name__}")
        return key
    try:
        rng = check_random_state(random_state)
    except ValueError as e:
        raise ValueError(f"{where}: random_state must be None, an int or a "
                         f"numpy RandomState, got {random_state!r}") from e
    return jax.random.key(int(rng.randint(0, 2**31 - 1)))


def _query(where: str, X, y0, num_features: int):
    """Broadcasts ``X`` and ``y0`` to ``m`` paired query points ``(y0 (m,), X (m, d))``."""
    if y0 is None:
        raise TypeError(f"{where}: y0 (the untreated outcomes to map) is required: "
                        f"{where.split('.')[-1]}(X, y0=...)")
    y0 = np.asarray(y0, dtype=np.float64)
    if y0.ndim > 1:
        raise ValueError(f"{where}: y0 must be a scalar or 1-D, got shape {y0.shape}")
    y0 = np.atleast_1d(y0)
    if not np.all(np.isfinite(y0)):
        raise ValueError(f"{where}: y0 has NaN/inf values; expected finite numbers")
    xa = _as_query_x(where, X, num_features)
    m = max(y0.shape[0], xa.shape[0])
    if y0.shape[0] not in (1, m) or xa.shape[0] not in (1, m):
        raise ValueError(
            f"{where}: y0 has {y0.shape[0]} value(s) and X has {xa.shape[0]} row(s); expected "
            "equal counts or one of them 1"
        )
    return np.broadcast_to(y0, (m,)), np.broadcast_to(xa, (m, num_features))


def _as_query_x(where: str, X, num_features: int) -> np.ndarray:
    xa = np.asarray(X, dtype=np.float64) if not isinstance(X, np.ndarray) else X
    if xa.ndim == 1 and num_features > 1:
        if xa.shape[0] != num_features:
            raise ValueError(
                f"{where}: X has {xa.shape[0]} column(s) but the estimator was fit with "
                f"{num_features}"
            )
        xa = xa[None, :]
    return as_covariates(where, "X", xa, num_features=num_features)


def _levels(where: str, u) -> np.ndarray:
    u = as_finite_vector(where, "u", np.atleast_1d(np.asarray(u, dtype=np.float64)))
    if np.any((u <= 0) | (u >= 1)):
        raise ValueError(f"{where}: u must lie in (0, 1), got {u.tolist()}")
    return u


def _conditional_quantiles(f0, grid, u):
    """``F0_hat^{-1}(u_m | x_i)`` from CDF rows ``f0 (n, K)`` on ``grid``: ``(n, M)``."""
    f0 = jax.lax.cummax(jnp.asarray(f0), axis=1)
    u = jnp.asarray(u, jnp.float32)
    return jax.vmap(lambda row: jnp.interp(u, row, grid))(f0)


class _Scaler(NamedTuple):
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def from_data(cls, x, y, w, standardize: bool):
        if not standardize:
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]), 0.0, 1.0)
        p = np.asarray(w, np.float64) / np.sum(w)
        xm = p @ x
        xs = np.sqrt(p @ (x - xm) ** 2)
        ym = float(p @ y)
        ys = float(np.sqrt(p @ (y - ym) ** 2))
        return cls(xm, np.where(xs > 0, xs, 1.0), ym, ys if ys > 0 else 1.0)

    def x(self, x):
        return jnp.asarray((x - self.x_mean) / self.x_std, jnp.float32)

    def y(self, y):
        return (jnp.asarray(y, jnp.float32) - self.y_mean) / self.y_std

    def y_inv(self, y):
        return jnp.asarray(y) * self.y_std + self.y_mean


def _merge_models(models: Sequence[FittedNuisance]) -> FittedNuisance:
    """One :class:`FittedNuisance` averaging every fold of several cross-fits."""
    first = models[0]
    params = tuple(p for m in models for p in m.params)
    return first._replace(params=params)


def _warn_nan(where: str, values: np.ndarray, zero_weight: np.ndarray | None = None) -> None:
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    msg = f"{where}: {int(bad.sum())} of {bad.size} point(s) have no estimate (NaN)"
    if zero_weight is not None and zero_weight.any():
        msg += (f"; at {int((zero_weight & bad).sum())} the kernel gives no weight to one arm "
                "(0/0: the bandwidth is too small for these covariates, or an arm has no "
                "units near x)")
    rest = int((bad & ~zero_weight).sum()) if zero_weight is not None else int(bad.sum())
    if rest:
        msg += (f"; at {rest} the estimated contrast h(y0, . | x) stays below 0 on the whole "
                "outcome grid (the treated quantile lies above the grid, or the nuisances "
                "are undefined there)")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


class _CQCEstimator(BaseEstimator):
    """Shared parameter checks, cross-fitting, ``effect`` and the held-out DR ``score``."""

    # The treatment ``a`` travels with the rows, like sample_weight: request it by default so
    # that metadata routing hands every fold its slice.
    __metadata_request__fit = {"a": True}
    # Set only by a fit that finished. scikit-learn's default test (any attribute ending in
    # "_") would call an estimator fitted after a fit that failed past validate_data, which
    # sets n_features_in_ first; predict then failed with an AttributeError.
    _fitted_attrs: tuple[str, ...] = ("nuisance_models_",)

    def __sklearn_is_fitted__(self) -> bool:
        return all(hasattr(self, a) for a in self._fitted_attrs)
    __metadata_request__score = {"a": True}
    _name = "CQC"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        return tags

    # -- validation ----------------------------------------------------------------------
    def _check_common(self, where: str) -> Nuisance:
        nuisance = Nuisance() if self.nuisance is None else self.nuisance
        if not isinstance(nuisance, Nuisance):
            raise TypeError(f"{where}: nuisance must be a cqc.Nuisance or None, got "
                            f"{type(nuisance).__name__}")
        nuisance.check(where)
        check_positive_int(where, "grid_size", self.grid_size, minimum=2)
        check_positive_int(where, "min_per_fold", self.min_per_fold)
        if hasattr(self, "n_folds"):
            check_positive_int(where, "n_folds", self.n_folds)
            check_clip(where, self.clip)
        return nuisance

    def _check_fit_inputs(self, where: str, X, y, a, sample_weight, reset: bool = True):
        """``X (n, d)``, ``y``, ``a``, weights as float arrays; scikit-learn's checks (and
        messages) for ``X`` and ``y``, then the treatment's."""
        if y is None:
            raise ValueError(f"{where}: {self._name} requires y to be passed, but the target y "
                             "is None")
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float64, y_numeric=True,
                             ensure_min_samples=2)
        w = np.asarray(_weights(where, sample_weight, X.shape[0]), np.float64)
        if a is None:
            raise ValueError(f"{where}: a (the 0/1 treatment of each row) is required: "
                             f"{where.split('.')[-1]}(X, y, a=a); with GridSearchCV or "
                             "cross_val_score enable sklearn.set_config("
                             "enable_metadata_routing=True) and pass a as a fit parameter")
        a = as_treatment(where, "a", a)
        check_lengths(where, X=X, y=y, a=a)
        return X, y, a, w

    def _require_fit(self, where: str) -> None:
        check_is_fitted(self, msg=f"{self._name}.{where}: this {self._name} is not fitted "
                                  "yet; call fit(X, y, a=a) first")

    # -- nuisances -----------------------------------------------------------------------
    def _cross_fit(self, where, nuisance, X, a, y, w, key, nuisances, clip):
        """Cross-fitted nuisances (clipped), or the given ones checked and clipped."""
        lo, hi = check_clip(where, clip)
        if nuisances is None:
            return cross_fit(X, a, y, nuisance=nuisance, grid=make_grid(y, self.grid_size),
                             key=key, n_folds=self.n_folds, clip=(lo, hi),
                             min_per_fold=self.min_per_fold,
                             sample_weight=None if np.all(w == 1) else w)
        if not isinstance(nuisances, NuisanceValues):
            raise TypeError(
                f"{where}: nuisances must be a NuisanceValues, got {type(nuisances).__name__}")
        n, k = X.shape[0], nuisances.grid.shape[0]
        for name, shape in {"pi": (n,), "f0": (n, k), "f1": (n, k)}.items():
            got = getattr(nuisances, name).shape
            if got != shape:
                raise ValueError(f"{where}: nuisances.{name} must have shape {shape}, got {got}")
        return nuisances._replace(pi=jnp.clip(nuisances.pi, lo, hi))

    def _nuisance_models(self, where: str) -> FittedNuisance:
        self._require_fit(where)
        if self.nuisance_models_ is None:
            raise ValueError(
                f"{self._name}.{where}: needs the fitted nuisance models, but fit was given "
                "nuisances without them (NuisanceValues.models is None); pass the output of "
                "cqc.cross_fit, or let fit cross-fit")
        return self.nuisance_models_

    # -- prediction ----------------------------------------------------------------------
    def predict(self, X, *, y0=None) -> np.ndarray:
        """``g_hat(y0 | x)`` at paired (broadcast) query points.

        Args:
          X: ``(m, d)`` or ``(d,)`` covariates (``(m,)`` when ``d = 1``).
          y0: scalar or ``(m,)`` untreated outcomes.

        Returns:
          ``(m,)`` predicted treated outcomes at the same conditional quantile (NaN, with a
          ``RuntimeWarning``, where an estimator has no answer on its outcome grid).

        Raises:
          sklearn.exceptions.NotFittedError: before ``fit``. ValueError/TypeError: a missing
          ``y0``, bad shapes or NaN.
        """
        where = f"{self._name}.predict"
        self._require_fit("predict")
        y0, X = _query(where, X, y0, self.n_features_in_)
        out, zero = self._predict(y0, X)
        out = np.asarray(out, np.float64)
        _warn_nan(where, out, zero)
        return out

    def _predict(self, y0: np.ndarray, X: np.ndarray):
        raise NotImplementedError

    def _effect_y0(self, where: str, X, u):
        self._require_fit(where.split(".")[-1])
        models = self._nuisance_models(where.split(".")[-1])
        u = _levels(where, DEFAULT_LEVELS if u is None else u)
        X = _as_query_x(where, X, self.n_features_in_)
        y0 = np.asarray(_conditional_quantiles(models.cdf_values(0, X), models.grid, u))
        return X, u, y0

    def effect(self, X, *, u=None) -> np.ndarray:
        """The quantile contrast ``g_hat(F0_hat^{-1}(u | x) | x) - F0_hat^{-1}(u | x)``.

        For covariates ``x`` and quantile levels ``u``: the treated minus the untreated
        outcome of a unit at conditional quantile ``u`` of ``Y(0) | x`` (the conditional
        quantile treatment effect read through the CQC). ``F0_hat`` averages the fitted fold
        models at ``x``.

        Args:
          X: ``(m, d)`` covariates.
          u: quantile levels in (0, 1) (default 0.1, 0.2, ..., 0.9).

        Returns:
          ``(m, len(u))`` contrasts.

        Raises:
          sklearn.exceptions.NotFittedError: before ``fit``. ValueError: bad ``X`` or ``u``,
          or no fitted nuisance models.
        """
        where = f"{self._name}.effect"
        X, u, y0 = self._effect_y0(where, X, u)
        m = X.shape[0]
        g, zero = self._predict(y0.reshape(-1), np.repeat(X, u.size, axis=0))
        g = np.asarray(g, np.float64).reshape(m, u.size)
        _warn_nan(where, g, None if zero is None else np.asarray(zero).reshape(m, u.size))
        return g - y0

    def score(self, X, y, *, a=None, sample_weight=None) -> float:
        """Held-out doubly robust objective, negated (higher is better).

        ``-(1 / sum_i w_i) sum_i w_i (1/M) sum_m l_i(g_hat(y0_im | X_i); y0_im)`` with
        ``l_i`` of :func:`cqc.direct_loss` and ``y0_im = F0_hat^{-1}(u_m | X_i)`` at
        ``u = 0.1, ..., 0.9``, where every nuisance (``pi_hat, F0_hat, F1_hat``) comes from
        the models fitted in ``fit`` (averaged over folds): on rows ``fit`` did not see, the
        objective is an honest estimate of ``E int^g h(y0, t | x) dt``, minimized by ``g*``
        whichever estimator produced ``g_hat``. Compare scores of fits that use the same
        nuisance learners (the objective carries their error too).

        Args:
          X: ``(n, d)`` covariates. y: ``(n,)`` outcomes. a: ``(n,)`` 0/1 treatment.
          sample_weight: optional ``(n,)`` weights.

        Returns:
          A float.

        Raises:
          sklearn.exceptions.NotFittedError: before ``fit``. ValueError: bad input or a
          missing ``a``.
        """
        where = f"{self._name}.score"
        models = self._nuisance_models("score")
        if models.propensity is None:
            raise ValueError(f"{where}: the held-out DR objective needs a propensity model, and "
                             f"{self._name} fits none; score the fit with another estimator's "
                             "nuisances, or use DirectCQC/IndirectCQC")
        X, y, a, w = self._check_fit_inputs(where, X, y, a, sample_weight, reset=False)
        pi = models.pi(X)
        f0, f1 = models.cdf_values(0, X), models.cdf_values(1, X)
        u = np.asarray(DEFAULT_LEVELS)
        y0 = _conditional_quantiles(f0, models.grid, u)
        n = X.shape[0]
        g, _ = self._predict(np.asarray(y0).reshape(-1), np.repeat(X, u.size, axis=0))
        g = jnp.asarray(np.asarray(g, np.float32).reshape(n, u.size))
        aj, yj = jnp.asarray(a, jnp.float32), jnp.asarray(y, jnp.float32)
        c = control_term(y0, aj[:, None], yj[:, None], pi[:, None], grid_cdf(f0, models.grid, y0))
        loss = np.asarray(_direct_loss(g, c, aj, yj, pi, f1,
                                       cumulative_trapezoid(f1, models.grid), models.grid))
        ok = np.isfinite(loss)
        if not ok.all():
            warnings.warn(f"{where}: {int((~ok).sum())} of {ok.size} (row, level) pairs have no "
                          "prediction (NaN) and are left out of the score", RuntimeWarning,
                          stacklevel=2)
        if not ok.any():
            return float("nan")
        per_row = np.where(ok, loss, 0.0).sum(1) / np.maximum(ok.sum(1), 1)
        keep = ok.any(1)
        return float(-np.sum(w[keep] * per_row[keep]) / np.sum(w[keep]))


# ---------------------------------------------------------------------------------------
# Direct estimator
# ---------------------------------------------------------------------------------------


class _DirectData(NamedTuple):
    """The direct objective's data; every field has a leading axis of cross-fit repeats."""

    y0: jax.Array  # (R, n, M) standardized
    x: jax.Array  # (R, n, d) standardized
    a: jax.Array  # (R, n)
    y: jax.Array  # (R, n) standardized
    pi: jax.Array  # (R, n)
    c: jax.Array  # (R, n, M)
    f1: jax.Array  # (R, n, K)
    f1_cum: jax.Array  # (R, n, K) cumulative trapezoid of f1 on grid
    grid: jax.Array  # (R, K) standardized grid


def _objective(graphdef, state, data: _DirectData, weights):
    model = nnx.merge(graphdef, state)

    def one(d):
        n, m = d.y0.shape
        if getattr(model, "grid_y0", False):
            g = model(d.y0, d.x)
        else:
            g = model(d.y0.reshape(-1), jnp.repeat(d.x, m, axis=0)).reshape(n, m)
        loss = _direct_loss(g, d.c, d.a, d.y, d.pi, d.f1, d.f1_cum, d.grid)
        return jnp.sum(weights[:, None] * loss) / (jnp.sum(weights) * m)

    return jnp.mean(jax.vmap(one)(data))


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
    return jax.vmap(lambda w: _direct_train(graphdef, state, data, w, steps, lr))(weights)


def _slice(data: _DirectData, r: int) -> _DirectData:
    return jax.tree.map(lambda v: v[r:r + 1], data)


class DirectCQC(_CQCEstimator):
    """Direct doubly robust CQC estimator (Givens et al., ICLR 2026).

    Fits ``g_theta(y0, x)`` by minimizing the cross-fitted DR objective

        R_n(theta) = 1/(sum_i w_i M) sum_i w_i sum_m l_i(g_theta(y0_im, X_i); y0_im),
        l_i(g; y0) = A_i/pi_i [(g - Y_i)_+ - G1_hat(g|X_i)] + G1_hat(g|X_i) - g c_i(y0),
        c_i(y0)    = (1 - A_i)/(1 - pi_i) (1{Y_i <= y0} - F0_hat(y0|X_i)) + F0_hat(y0|X_i),

    (``w_i`` the sample weights) whose gradient in ``g`` is the DR pseudo-outcome
    ``psi_i(y0, g)`` of ``h(y0, g | x) = F_1(g|x) - F_0(y0|x)``. In expectation ``l_i`` is
    ``int^g h(y0, t|x) dt`` (convex in ``g``, minimized at ``g*(y0|x)``) whenever either
    ``pi_hat`` or ``(F0_hat, F1_hat)`` is correct; see :func:`cqc.dr.direct_loss` for the
    derivation. The untreated outcomes ``y0_im`` are, per unit, the conditional quantiles
    ``F0_hat^{-1}(u_m | X_i)`` at levels ``u_m`` (``y0_design="conditional"``) or the
    marginal quantiles of the control outcomes (``"marginal"``). With ``n_repeats = R > 1``
    the cross-fitting is repeated with ``R`` different fold splits and ``R_n`` is the mean of
    the ``R`` objectives.

    Args:
      model: ``"linear"`` (``b + s y0 + w^T x + y0 v^T x``), ``"linear_additive"``,
        ``"monotone"`` (NNX net increasing in ``y0``), ``"poly<k>"`` (polynomials of degree
        ``k`` in ``x``, :class:`cqc.PolynomialCQC`), a factory
        ``(num_features, rngs) -> nnx.Module`` or an ``nnx.Module`` taking ``(y0, x)``.
      nuisance: :class:`cqc.Nuisance` (propensity and CDF models, native or scikit-learn;
        default ``Nuisance()``: logistic propensity, kernel CDFs).
      n_folds: cross-fitting folds (1 disables cross-fitting).
      n_repeats: cross-fitting repetitions (fold splits), >= 1.
      clip: propensity clip bounds ``(lo, hi)``, ``0 < lo < hi < 1``.
      levels: quantile levels ``u_m`` in (0, 1) of the ``y0`` design.
      y0_design: ``"conditional"`` or ``"marginal"``.
      steps, learning_rate: full-batch Adam with cosine decay.
      grid_size: points of the outcome grid carrying the nuisance CDFs.
      min_per_fold: minimum units per arm per fold.
      standardize: standardize ``x`` and ``y`` before fitting ``g_theta`` (the model then
        sees standardized inputs; predictions are always on the original scale).
      random_state: seed (int, ``None`` or a ``numpy.random.RandomState``) used when ``fit``
        gets no ``key``.

    Attributes:
      n_features_in_: covariate dimension. module_: the fitted NNX module.
      nuisances_: the cross-fitted :class:`cqc.NuisanceValues` (a list, one per repeat).
      nuisance_models_: the fold models (for ``effect`` and ``score``; ``None`` when ``fit``
        was given precomputed nuisances without models).
      losses_: ``(steps,)`` training objective. scaler_, graphdef_, state_: internals.

    References:
      Givens, Liu, Reeve, Reluga. ICLR 2026, arXiv:2601.19666.
    """

    _fitted_attrs = ("nuisance_models_", "state_")

    _name = "DirectCQC"

    def __init__(self, model: Any = "linear", nuisance: Nuisance | None = None,
                 n_folds: int = 2, n_repeats: int = 1,
                 clip: tuple[float, float] = (0.05, 0.95),
                 levels: Sequence[float] = DEFAULT_LEVELS, y0_design: str = "conditional",
                 steps: int = 500, learning_rate: float = 0.05, grid_size: int = 128,
                 min_per_fold: int = 10, standardize: bool = True, random_state=None):
        self.model = model
        self.nuisance = nuisance
        self.n_folds = n_folds
        self.n_repeats = n_repeats
        self.clip = clip
        self.levels = levels
        self.y0_design = y0_design
        self.steps = steps
        self.learning_rate = learning_rate
        self.grid_size = grid_size
        self.min_per_fold = min_per_fold
        self.standardize = standardize
        self.random_state = random_state

    def _check_params(self, where: str) -> tuple[Nuisance, np.ndarray]:
        nuisance = self._check_common(where)
        check_positive_int(where, "n_repeats", self.n_repeats)
        check_positive_int(where, "steps", self.steps)
        levels = as_finite_vector(where, "levels", self.levels)
        if np.any((levels <= 0) | (levels >= 1)):
            raise ValueError(f"{where}: levels must lie in (0, 1), got {levels.tolist()}")
        if self.y0_design not in ("conditional", "marginal"):
            raise ValueError(f"{where}: y0_design must be 'conditional' or 'marginal', got "
                             f"{self.y0_design!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, int | float | np.number) or not (
                np.isfinite(lr) and lr > 0):
            raise ValueError(f"{where}: learning_rate must be a finite number > 0, got {lr!r}")
        return nuisance, levels

    def _design_y0(self, levels, a, y, w, nv: NuisanceValues):
        if self.y0_design == "marginal":
            ctrl = a == 0
            order = np.argsort(y[ctrl])
            yc, wc = y[ctrl][order], w[ctrl][order]
            cum = (np.cumsum(wc) - 0.5 * wc) / np.sum(wc)
            q = jnp.asarray(np.interp(levels, cum, yc), jnp.float32)
            return jnp.broadcast_to(q, (y.shape[0], levels.size))
        return _conditional_quantiles(nv.f0, nv.grid, levels)

    def _data(self, levels, X, a, y, w, nv, scaler) -> _DirectData:
        y0 = self._design_y0(levels, a, y, w, nv)
        f0_y0 = grid_cdf(nv.f0, nv.grid, y0)
        aj, yj = jnp.asarray(a, jnp.float32), jnp.asarray(y, jnp.float32)
        c = control_term(y0, aj[:, None], yj[:, None], nv.pi[:, None], f0_y0)
        grid_s = scaler.y(nv.grid)
        return _DirectData(scaler.y(y0), scaler.x(X), aj, scaler.y(yj), nv.pi, c, nv.f1,
                           cumulative_trapezoid(nv.f1, grid_s), grid_s)

    def fit(self, X, y, *, a=None, sample_weight=None, key: jax.Array | None = None,
            nuisances: NuisanceValues | Sequence[NuisanceValues] | None = None):
        """Cross-fits the nuisances (unless given) and fits ``g_theta``.

        Args:
          X: ``(n, d)`` covariates (1-D means ``d = 1``). y: ``(n,)`` outcomes.
          a: ``(n,)`` 0/1 treatment (required).
          sample_weight: optional ``(n,)`` unit weights ``>= 0``: they weight the objective
            and every nuisance fit (a weight of 2 counts a unit twice).
          key: ``jax.random.key`` (fold splits, nuisance and model initialisation); without
            one, a key is drawn from ``random_state``.
          nuisances: precomputed :class:`cqc.NuisanceValues` for these rows (one per repeat;
            skips cross-fitting, so several estimators can share one nuisance fit).

        Returns:
          ``self``.

        Raises:
          ValueError/TypeError: bad parameters or inputs (see :func:`cqc.cross_fit`).
          FloatingPointError: if the objective became NaN/inf during training.
        """
        where = f"{self._name}.fit"
        nuisance, levels = self._check_params(where)
        X, y, a, w = self._check_fit_inputs(where, X, y, a, sample_weight)
        key = _resolve_key(where, key, self.random_state)
        k_nuis, k_model = jax.random.split(key)
        if nuisances is not None and isinstance(nuisances, NuisanceValues):
            nuisances = [nuisances]
        if nuisances is not None and len(nuisances) != self.n_repeats:
            raise ValueError(f"{where}: got {len(nuisances)} set(s) of nuisances for "
                             f"n_repeats={self.n_repeats}")
        nvs = [self._cross_fit(where, nuisance, X, a, y, w, jax.random.fold_in(k_nuis, r),
                               None if nuisances is None else nuisances[r], self.clip)
               for r in range(self.n_repeats)]
        scaler = _Scaler.from_data(X, y, w, self.standardize)
        parts = [self._data(levels, X, a, y, w, nv, scaler) for nv in nvs]
        data = jax.tree.map(lambda *v: jnp.stack(v), *parts)
        module = make_model(self.model, X.shape[1], k_model)
        graphdef, init_state = nnx.split(module)
        weights = jnp.asarray(w, jnp.float32)
        state, losses = _direct_train(graphdef, init_state, data, weights, self.steps,
                                      float(self.learning_rate))
        if not bool(jnp.all(jnp.isfinite(losses))):
            raise FloatingPointError(f"{where}: the objective became NaN/inf during training; "
                                     "lower learning_rate")
        models = [nv.models for nv in nvs]
        self.nuisances_ = nvs
        self.nuisance_models_ = None if any(m is None for m in models) else _merge_models(models)
        self.scaler_ = scaler
        self.graphdef_, self.init_state_, self.state_ = graphdef, init_state, state
        self.data_, self.weights_ = data, weights
        self.losses_ = np.asarray(losses)
        return self

    @property
    def module_(self) -> nnx.Module:
        """The fitted model (on standardized inputs when ``standardize=True``)."""
        self._require_fit("module_")
        return nnx.merge(self.graphdef_, self.state_)

    def _predict_with(self, state, y0, X):
        sc = self.scaler_
        return sc.y_inv(_direct_predict(self.graphdef_, state, sc.y(y0), sc.x(X)))

    def _predict(self, y0, X):
        return self._predict_with(self.state_, y0, X), None

    def _replicates(self, where: str, n_boot: int, key) -> list:
        """Bootstrap states: replicate ``b`` reweights units by ``w_i Exp(1)`` and refits
        ``theta`` on cross-fit repeat ``b mod R`` (nuisances held fixed within it)."""
        n_boot = check_positive_int(where, "n_boot", n_boot, minimum=2)
        if not isinstance(key, jax.Array):
            raise TypeError(f"{where}: key must be a jax.random.key, got {type(key).__name__}")
        n = self.weights_.shape[0]
        weights = self.weights_[None, :] * jax.random.exponential(key, (n_boot, n))
        repeat = np.arange(n_boot) % self.n_repeats
        states = []
        for r in range(self.n_repeats):
            sel = weights[np.nonzero(repeat == r)[0]]
            if sel.shape[0]:
                s, losses = _direct_train_many(self.graphdef_, self.init_state_,
                                               _slice(self.data_, r), sel, self.steps,
                                               float(self.learning_rate))
                if not bool(jnp.all(jnp.isfinite(losses))):
                    raise FloatingPointError(f"{where}: a bootstrap replicate became NaN/inf "
                                             "during training; lower learning_rate")
                states.append(s)
        return states

    def _bands(self, where, states, y0, X, level, offset=0.0):
        if not 0 < level < 1:
            raise ValueError(f"{where}: level must be in (0, 1), got {level}")
        preds = jnp.concatenate([jax.vmap(lambda s: self._predict_with(s, y0, X))(st)
                                 for st in states])
        if not bool(jnp.all(jnp.isfinite(preds))):
            raise FloatingPointError(f"{where}: a bootstrap replicate predicted NaN/inf")
        preds = np.asarray(preds, np.float64) - offset
        alpha = (1.0 - level) / 2.0
        lower, upper = np.quantile(preds, [alpha, 1.0 - alpha], axis=0)
        return preds, lower, upper

    def bootstrap(self, X, *, y0=None, n_boot: int = 100, key: jax.Array | None = None,
                  level: float = 0.9, return_samples: bool = False) -> Bands:
        """Pointwise percentile bootstrap bands for ``g(y0 | x)`` (multiplier bootstrap).

        What the bands are: replicate ``b`` reweights the units with ``w_i ~ Exp(1)`` (times
        any sample weights) and refits ``theta`` on the weighted objective, with the
        cross-fitted nuisances **held fixed** (first-order valid, since the DR objective is
        insensitive to first-order nuisance error, but blind to the nuisances' own
        finite-sample variability). With ``n_repeats = R > 1`` replicate ``b`` uses cross-fit
        repeat ``b mod R``, so the bands also carry the variability due to the fold split
        (repeated cross-fitting). The bands are **pointwise** (each query point separately at
        ``level``), not simultaneous over the query points. Replicates are fit in parallel
        with ``vmap``.

        Args:
          X, y0: query points as in :meth:`predict`.
          n_boot: number of replicates (>= 2).
          key: ``jax.random.key`` (required).
          level: band coverage in (0, 1).
          return_samples: also return the replicates' predictions ``(n_boot, m)``.

        Returns:
          :class:`Bands` with the full-data estimate and percentile bands.

        Raises:
          sklearn.exceptions.NotFittedError: before ``fit``. ValueError/TypeError: bad
          arguments. FloatingPointError: a replicate diverged.
        """
        where = f"{self._name}.bootstrap"
        self._require_fit("bootstrap")
        if not 0 < level < 1:
            raise ValueError(f"{where}: level must be in (0, 1), got {level}")
        y0, X = _query(where, X, y0, self.n_features_in_)
        states = self._replicates(where, n_boot, key)
        preds, lower, upper = self._bands(where, states, y0, X, level)
        estimate = np.asarray(self._predict_with(self.state_, y0, X), np.float64)
        return Bands(estimate, lower, upper, preds if return_samples else None)

    def effect_interval(self, X, *, u=None, n_boot: int = 100, key: jax.Array | None = None,
                        level: float = 0.9, return_samples: bool = False) -> Bands:
        """:meth:`effect` with pointwise bootstrap bands (as :meth:`bootstrap`).

        ``F0_hat^{-1}(u | x)`` is held fixed across replicates (like the nuisances), so the
        bands carry the variability of ``g_hat`` only.

        Returns:
          :class:`Bands` of shape ``(m, len(u))`` (samples ``(n_boot, m, len(u))``).
        """
        where = f"{self._name}.effect_interval"
        if not 0 < level < 1:
            raise ValueError(f"{where}: level must be in (0, 1), got {level}")
        X, u, y0 = self._effect_y0(where, X, u)
        m = X.shape[0]
        yq, xq = y0.reshape(-1), np.repeat(X, u.size, axis=0)
        states = self._replicates(where, n_boot, key)
        preds, lower, upper = self._bands(where, states, yq, xq, level, offset=yq)
        estimate = np.asarray(self._predict_with(self.state_, yq, xq), np.float64) - yq
        shape = (m, u.size)
        return Bands(estimate.reshape(shape), lower.reshape(shape), upper.reshape(shape),
                     preds.reshape((-1, *shape)) if return_samples else None)


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
    unit_weights: jax.Array  # (n,) sample weights


@jax.jit
def _indirect_predict(d: _IndirectData, y0, zq):
    """``(g_hat (m,), zero_weight (m,))``: NaN where an arm's kernel weights sum to 0."""
    n, k = d.t1.shape

    def block(y0b, zb):
        w = kernel_weights(zb, d.z, d.bandwidth, d.unit_weights)  # (B, n)
        den1, den0 = w @ d.s1, w @ d.s0
        zero = (den1 <= 0) | (den0 <= 0)
        h1 = (w @ d.t1) / jnp.where(zero, jnp.nan, den1)[:, None]  # (B, K)
        idx, s, _ = _locate(d.grid, y0b)
        s = jnp.clip(s, 0.0, 1.0)
        f0 = d.f0[:, idx] * (1 - s) + d.f0[:, idx + 1] * s  # (n, B)
        ind = (d.y[:, None] <= y0b[None, :]).astype(jnp.float32)
        t0 = (1 - d.a)[:, None] / (1 - d.pi)[:, None] * (ind - f0) + f0
        h0 = jnp.sum(w * t0.T, axis=1) / jnp.where(zero, jnp.nan, den0)  # (B,)
        h = isotonic_increasing(h1 - h0[:, None])
        return first_crossing(h, d.grid), zero

    per_query = n * (d.z.shape[1] + 6) + k * k + 2 * k
    return map_blocks(block, (y0, zq), block_rows(y0.shape[0], per_query))


class IndirectCQC(_CQCEstimator):
    """Indirect DR estimator: smooth the pseudo-outcome in ``x``, make it monotone, invert.

    ``h_hat(y0, y1 | x) = sum_i w_i(x) psi_i(y0, y1)`` with Gaussian kernel weights
    ``w_i(x) ∝ v_i exp(-|x - X_i|^2 / (2 b^2))`` (``v`` the sample weights) on standardized
    covariates (``b`` by leave-one-out error of smoothing the pseudo-outcome terms at the
    outcome deciles when ``"cv"``, the default; Scott's rule ``1.06 n^{-1/(d+4)}`` when
    ``None``), evaluated on the outcome grid in ``y1``, projected to be non-decreasing in
    ``y1`` (:func:`cqc.isotonic_increasing`), and inverted:
    ``g_hat(y0 | x) = inf{y1 : h_hat(y0, y1 | x) >= 0}`` (linear interpolation between grid
    points, :func:`cqc.first_crossing`; NaN with a warning where the contrast stays below 0
    on the whole grid). Because ``psi_i(y0, y1) = T1_i(y1) - T0_i(y0)``, the weighted average
    is computed as two matrix products. Kernel code is shared with the nuisances
    (:mod:`cqc.kernel`).

    Args:
      nuisance, n_folds, clip, grid_size, min_per_fold, random_state: as
        :class:`DirectCQC`.
      bandwidth: kernel bandwidth on standardized covariates, ``"cv"`` or ``None`` (Scott).
      pseudo: ``"dr"`` (doubly robust) or ``"ipw"`` (inverse propensity weighting only,
        normalized per arm; see :class:`IPWCQC`).

    Attributes:
      n_features_in_, nuisances_, nuisance_models_: as :class:`DirectCQC`.
      bandwidth_: the bandwidth used. data_: the pseudo-outcome tables.

    References:
      Givens, Liu, Reeve. NeurIPS 2024, arXiv:2410.12454.
    """

    _name = "IndirectCQC"

    def __init__(self, nuisance: Nuisance | None = None, n_folds: int = 2,
                 clip: tuple[float, float] = (0.05, 0.95), bandwidth: float | str | None = "cv",
                 grid_size: int = 128, min_per_fold: int = 10, pseudo: str = "dr",
                 random_state=None):
        self.nuisance = nuisance
        self.n_folds = n_folds
        self.clip = clip
        self.bandwidth = bandwidth
        self.grid_size = grid_size
        self.min_per_fold = min_per_fold
        self.pseudo = pseudo
        self.random_state = random_state

    def _pseudo(self) -> str:
        return self.pseudo

    def fit(self, X, y, *, a=None, sample_weight=None, key: jax.Array | None = None,
            nuisances: NuisanceValues | None = None):
        """Cross-fits the nuisances (unless given) and stores the pseudo-outcome tables.

        Args/Returns/Raises: as :meth:`DirectCQC.fit` (one set of ``nuisances``).
        """
        where = f"{self._name}.fit"
        nuisance = self._check_common(where)
        check_bandwidth(where, self.bandwidth)
        pseudo = self._pseudo()
        if pseudo not in ("dr", "ipw"):
            raise ValueError(f"{where}: pseudo must be 'dr' or 'ipw', got {pseudo!r}")
        X, y, a, w = self._check_fit_inputs(where, X, y, a, sample_weight)
        key = _resolve_key(where, key, self.random_state)
        nv = self._cross_fit(where, nuisance, X, a, y, w, key, nuisances, self.clip)
        f0, f1 = nv.f0, nv.f1
        if pseudo == "ipw":
            f0, f1 = jnp.zeros_like(f0), jnp.zeros_like(f1)
        aj, yj = jnp.asarray(a, jnp.float32), jnp.asarray(y, jnp.float32)
        ind = (yj[:, None] <= nv.grid[None, :]).astype(jnp.float32)
        t1 = aj[:, None] / nv.pi[:, None] * (ind - f1) + f1
        scaler = _Scaler.from_data(X, y, w, True)
        z = scaler.x(X)
        wj = jnp.asarray(w, jnp.float32)
        cv_targets = None
        if self.bandwidth == "cv":
            # LOO error of smoothing T1_i(t_l) and T0_i(t_l) at the outcome deciles t_l: the
            # pseudo-outcome is conditionally unbiased for h, so this targets h's error.
            cols = jnp.searchsorted(nv.grid, jnp.quantile(yj, jnp.linspace(0.1, 0.9, 9)))
            t0 = ((1 - aj)[:, None] / (1 - nv.pi)[:, None] * (ind[:, cols] - f0[:, cols])
                  + f0[:, cols])
            cv_targets = jnp.concatenate([t1[:, cols], t0], axis=1)
        bw = select_bandwidth(self.bandwidth, z, wj, cv_targets)
        if pseudo == "ipw":
            s1, s0 = aj / nv.pi, (1 - aj) / (1 - nv.pi)
        else:
            s1 = s0 = jnp.ones_like(aj)
        self.nuisances_ = nv
        self.nuisance_models_ = nv.models
        self.scaler_ = scaler
        self.bandwidth_ = float(bw)
        self.data_ = _IndirectData(z, aj, yj, nv.pi, f0, t1, s1, s0, nv.grid, bw, wj)
        return self

    def _predict(self, y0, X):
        return _indirect_predict(self.data_, jnp.asarray(y0, jnp.float32), self.scaler_.x(X))


class IPWCQC(IndirectCQC):
    """Indirect estimator with the IPW pseudo-outcome (only ``pi`` is used).

    ``h_hat(y0, y1 | x) = sum_i w_i(x) A_i/pi_i 1{Y_i <= y1} / sum_i w_i(x) A_i/pi_i
    - sum_i w_i(x) (1-A_i)/(1-pi_i) 1{Y_i <= y0} / sum_i w_i(x) (1-A_i)/(1-pi_i)``: the
    kernel-weighted IPW pseudo-outcome ``A_i/pi_i 1{Y_i <= y1} - (1-A_i)/(1-pi_i)
    1{Y_i <= y0}`` with each arm's weights normalized to sum to one (Hajek form, so both
    CDF estimates reach 1), then made monotone and inverted as in :class:`IndirectCQC`.
    Where one arm gets no kernel weight at ``x`` (a bandwidth too small for the data) the
    ratio is 0/0: the prediction there is NaN, with a ``RuntimeWarning`` saying so.

    Args: as :class:`IndirectCQC` without ``pseudo``.
    """

    _name = "IPWCQC"

    def __init__(self, nuisance: Nuisance | None = None, n_folds: int = 2,
                 clip: tuple[float, float] = (0.05, 0.95), bandwidth: float | str | None = "cv",
                 grid_size: int = 128, min_per_fold: int = 10, random_state=None):
        self.nuisance = nuisance
        self.n_folds = n_folds
        self.clip = clip
        self.bandwidth = bandwidth
        self.grid_size = grid_size
        self.min_per_fold = min_per_fold
        self.random_state = random_state

    def _pseudo(self) -> str:
        return "ipw"


@jax.jit
def _separate_predict(f0_rows, f1_rows, grid, y0):
    f1 = jax.lax.cummax(f1_rows, axis=1)
    f0 = jax.lax.cummax(f0_rows, axis=1)
    u = grid_cdf(f0, grid, y0)
    return first_crossing(f1 - u[:, None], grid)


class SeparateCQC(_CQCEstimator):
    """Plug-in estimator ``g_hat(y0 | x) = F1_hat^{-1}(F0_hat(y0 | x) | x)``.

    Both arms' CDF models are fit on all data (no propensity, no cross-fitting); the
    inverse is the first grid crossing, linearly interpolated (NaN, with a warning, where
    ``F0_hat(y0 | x)`` exceeds every value of ``F1_hat(. | x)`` on the grid).

    Args:
      nuisance: :class:`cqc.Nuisance` (only ``nuisance.cdf`` is used).
      grid_size, min_per_fold, random_state: as :class:`DirectCQC`.
    """

    _name = "SeparateCQC"

    def __init__(self, nuisance: Nuisance | None = None, grid_size: int = 128,
                 min_per_fold: int = 10, random_state=None):
        self.nuisance = nuisance
        self.grid_size = grid_size
        self.min_per_fold = min_per_fold
        self.random_state = random_state

    def fit(self, X, y, *, a=None, sample_weight=None, key: jax.Array | None = None):
        """Fits the two CDF models. Args/Returns/Raises: as :meth:`DirectCQC.fit`."""
        where = f"{self._name}.fit"
        nuisance = self._check_common(where)
        X, y, a, w = self._check_fit_inputs(where, X, y, a, sample_weight)
        key = _resolve_key(where, key, self.random_state)
        for arm in (0, 1):
            count = int(np.sum(a == arm))
            if count < self.min_per_fold:
                raise ValueError(f"{where}: {count} unit(s) with treatment {arm}; need at least "
                                 f"{self.min_per_fold}")
        xj, aj, yj = (jnp.asarray(v, jnp.float32) for v in (X, a, y))
        wj = jnp.asarray(w, jnp.float32)
        k0, k1 = jax.random.split(key)
        cdf = nuisance.cdf_model
        p0 = cdf.fit(xj, yj, (1.0 - aj) * wj, 0, k0)
        p1 = cdf.fit(xj, yj, aj * wj, 1, k1)
        self.cdf_model_, self.cdf_params_ = cdf, (p0, p1)
        self.grid_ = make_grid(y, self.grid_size)
        # No propensity: effect() can read F0_hat, score() has no DR objective to evaluate.
        self.nuisance_models_ = FittedNuisance(None, cdf, ((None, p0, p1),), self.grid_,
                                               (0.05, 0.95))
        return self

    def _predict(self, y0, X):
        xj = jnp.asarray(X, jnp.float32)
        f0 = self.cdf_model_.cdf(self.cdf_params_[0], self.grid_, xj)
        f1 = self.cdf_model_.cdf(self.cdf_params_[1], self.grid_, xj)
        return _separate_predict(f0, f1, self.grid_, jnp.asarray(y0, jnp.float32)), None
