"""Parametric CQC models ``g_theta(y0, x)`` (Flax NNX modules).

Every model maps ``y0 (B,)`` and ``x (B, d)`` to ``g (B,)``. The built-in models also take
``y0 (B, M)`` (``M`` untreated outcomes per row of ``x``, returning ``(B, M)``) and say so with
``grid_y0 = True``, which lets the direct estimator evaluate the ``x`` part once per unit.
:func:`make_model` turns the
estimator's ``model=`` argument (a name, a factory ``(num_features, rngs) -> Module`` or a
built module) into a module.

References:
  Givens, Liu, Reeve, Reluga. ICLR 2026, arXiv:2601.19666 (explicit parameterisation of the
  CQC; monotonicity in y0 as a structural constraint).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from cqc.checks import check_positive_int

__all__ = ["LinearCQC", "MonotoneCQC", "PolynomialCQC", "make_model"]


class LinearCQC(nnx.Module):
    """``g(y0, x) = b + s y0 + w^T x + y0 v^T x`` (``v`` only with ``interactions=True``).

    Initialised at the identity map ``g = y0``. Scenario 4's CQC
    ``(0.5 x + 1.5) y0 + 0.25 x + 0.75`` lies in this class.
    """

    grid_y0 = True

    def __init__(self, num_features: int, *, interactions: bool = True, rngs: nnx.Rngs):
        del rngs
        check_positive_int("LinearCQC", "num_features", num_features)
        self.interactions = interactions
        self.bias = nnx.Param(jnp.zeros(()))
        self.slope = nnx.Param(jnp.ones(()))
        self.w = nnx.Param(jnp.zeros((num_features,)))
        self.v = nnx.Param(jnp.zeros((num_features,) if interactions else (0,)))

    def __call__(self, y0: jax.Array, x: jax.Array) -> jax.Array:
        lift = (lambda v: v[:, None]) if y0.ndim == 2 else (lambda v: v)
        g = self.bias[...] + self.slope[...] * y0 + lift(x @ self.w[...])
        if self.interactions:
            g = g + y0 * lift(x @ self.v[...])
        return g


class MonotoneCQC(nnx.Module):
    """Neural CQC strictly increasing in ``y0`` by construction.

    ``g(y0, x) = b(x) + softplus(s(x)) y0 + sum_k softplus(c_k(x)) tanh(e^{u_k} y0 + d_k(x))``,

    where ``b, s, c_k, d_k`` are outputs of an MLP on ``x`` and ``u_k`` are free parameters.
    Every coefficient of a term increasing in ``y0`` is positive, so
    ``dg/dy0 >= softplus(s(x)) > 0``. Initialised near ``g = y0``.
    """

    grid_y0 = True

    def __init__(self, num_features: int, *, hidden: tuple[int, ...] = (32, 32),
                 units: int = 8, rngs: nnx.Rngs):
        check_positive_int("MonotoneCQC", "num_features", num_features)
        dims = (num_features, *hidden)
        self.layers = nnx.List(
            [nnx.Linear(i, o, rngs=rngs) for i, o in zip(dims[:-1], dims[1:], strict=True)]
        )
        self.units = units
        self.head = nnx.Linear(dims[-1], 2 + 2 * units, rngs=rngs,
                               kernel_init=nnx.initializers.normal(0.01))
        # softplus(0.5413) = 1 (identity slope); tanh terms start small.
        bias = jnp.zeros(2 + 2 * units).at[1].set(0.5413).at[2:2 + units].set(-4.0)
        self.head.bias[...] = bias
        self.log_rate = nnx.Param(jax.random.normal(rngs.params(), (units,)) * 0.5)

    def __call__(self, y0: jax.Array, x: jax.Array) -> jax.Array:
        h = x
        for layer in self.layers:
            h = jnp.tanh(layer(h))
        out = self.head(h)
        k = self.units
        b, s = out[:, 0], out[:, 1]
        c, d = out[:, 2:2 + k], out[:, 2 + k:]
        rate = jnp.exp(self.log_rate[...])
        if y0.ndim == 2:  # (B, M): broadcast the x-dependent coefficients over M
            b, s, c, d = b[:, None], s[:, None], c[:, None, :], d[:, None, :]
        bumps = jax.nn.softplus(c) * jnp.tanh(rate * y0[..., None] + d)
        return b + jax.nn.softplus(s) * y0 + jnp.sum(bumps, axis=-1)


def _legendre(t: jax.Array, degree: int) -> jax.Array:
    """``[P_0(t), ..., P_degree(t)]`` stacked on a new last axis (Bonnet's recursion)."""
    polys = [jnp.ones_like(t), t]
    for j in range(1, degree):
        polys.append(((2 * j + 1) * t * polys[j] - j * polys[j - 1]) / (j + 1))
    return jnp.stack(polys[: degree + 1], axis=-1)


class PolynomialCQC(nnx.Module):
    """``g(y0, x) = sum_l sum_{j<=k} (w_lj + v_lj y0) P_j(x_l / sqrt 3)``, additive in ``x``.

    ``P_j`` are Legendre polynomials (a well-conditioned basis of polynomials of degree
    ``<= k``; orthogonal for standardized uniform covariates); the constant term is shared.
    Initialised at the identity ``g = y0``. With ``degree = 1`` this is
    :class:`LinearCQC`'s class; the simulation scenario 5 has a CQC of degree ``k`` in ``x``.
    """

    grid_y0 = True

    def __init__(self, num_features: int, *, degree: int = 2, rngs: nnx.Rngs):
        del rngs
        check_positive_int("PolynomialCQC", "num_features", num_features)
        check_positive_int("PolynomialCQC", "degree", degree)
        self.degree = degree
        size = 1 + num_features * degree
        self.w = nnx.Param(jnp.zeros((size,)))
        self.v = nnx.Param(jnp.zeros((size,)).at[0].set(1.0))

    def features(self, x: jax.Array) -> jax.Array:
        basis = _legendre(x / jnp.sqrt(3.0), self.degree)[..., 1:]  # (B, d, k)
        flat = basis.reshape(x.shape[0], -1)
        return jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), flat], axis=1)

    def __call__(self, y0: jax.Array, x: jax.Array) -> jax.Array:
        phi = self.features(x)
        b, s = phi @ self.w[...], phi @ self.v[...]
        if y0.ndim == 2:
            b, s = b[:, None], s[:, None]
        return b + s * y0


def make_model(model: str | Callable | nnx.Module, num_features: int, key: jax.Array):
    """Builds a CQC module for ``num_features`` covariates.

    Args:
      model: ``"linear"``, ``"linear_additive"`` (no ``y0 x`` interactions),
        ``"monotone"``, ``"poly<k>"`` (:class:`PolynomialCQC` of degree ``k``), a factory
        ``f(num_features, rngs) -> nnx.Module`` or an ``nnx.Module`` (used as the initial
        model; must accept ``(y0 (B,), x (B, d))``).
      num_features: covariate dimension ``d``.
      key: ``jax.random.key`` for initialisation.

    Returns:
      An ``nnx.Module``.

    Raises:
      ValueError: for an unknown model name.
      TypeError: for something that is neither a name, a callable nor a module.
    """
    rngs = nnx.Rngs(params=key)
    if isinstance(model, nnx.Module):
        return model
    if isinstance(model, str):
        if model == "linear":
            return LinearCQC(num_features, rngs=rngs)
        if model == "linear_additive":
            return LinearCQC(num_features, interactions=False, rngs=rngs)
        if model == "monotone":
            return MonotoneCQC(num_features, rngs=rngs)
        if model.startswith("poly") and model[4:].isdigit() and int(model[4:]) >= 1:
            return PolynomialCQC(num_features, degree=int(model[4:]), rngs=rngs)
        raise ValueError(
            "make_model: model must be 'linear', 'linear_additive', 'monotone', 'poly<k>' "
            f"(k >= 1), a factory or an nnx.Module, got {model!r}"
        )
    if callable(model):
        built = model(num_features, rngs)
        if not isinstance(built, nnx.Module):
            raise TypeError(
                f"make_model: the model factory must return an nnx.Module, got "
                f"{type(built).__name__}"
            )
        return built
    raise TypeError(
        f"make_model: model must be a name, a factory or an nnx.Module, got {type(model).__name__}"
    )
