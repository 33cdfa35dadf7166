"""Simulated location-scale designs with a known conditional quantile comparator.

Every scenario has potential outcomes ``Y(a) = mu_a(X) + sigma_a(X) * eps`` with the same
noise law for both arms, so the CQC has the closed form

    g*(y0 | x) = F_1^{-1}(F_0(y0 | x) | x) = mu_1(x) + sigma_1(x) (y0 - mu_0(x)) / sigma_0(x),

and propensity ``pi(x) = 0.4 sin(gamma pi s(x)) + 0.5`` with ``s(x) = x_1`` (or ``x^T beta``
in scenario 3). ``gamma`` sets the complexity of the nuisances; the CQC itself does not
depend on it. For every integer ``gamma >= 1`` the propensity score ``pi(X)`` has the same
distribution (``gamma pi X`` is uniform modulo ``2 pi``), so overlap is the same; ``gamma = 0``
is the only constant-propensity design. Scenario 5 (ours, not the paper's) adds a knob for
the complexity of the CQC itself: ``g*(y0 | x) = y0 + P_k(x)`` with ``P_k`` the Legendre
polynomial of degree ``k`` and the nuisances' ``sin(gamma pi x)`` unchanged.

References:
  Givens, Liu, Reeve, Reluga. "Direct Doubly Robust Estimation of Conditional Quantile
  Contrasts." ICLR 2026, arXiv:2601.19666, Section 6 (simulations).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from cqc.checks import as_covariates, check_positive_int

__all__ = ["SCENARIOS", "Design", "Simulation", "simulate"]

SCENARIOS = (1, 2, 3, 4, 5)
_SQRT3 = math.sqrt(3.0)


@dataclasses.dataclass(frozen=True)
class Design:
    """The exact law of one scenario: propensity, conditional CDFs and the true CQC.

    A ``Design`` is callable: ``design(y0, x)`` is ``g*(y0 | x)``. Its methods give the exact
    nuisances, which the tests and the oracle nuisance models use.

    Attributes:
      scenario: 1 (illustrative, Gaussian), 2 (illustrative, uniform noise on
        ``[-sqrt 3, sqrt 3]``, unit variance), 3 (10-dimensional), 4 (linear CQC with
        complex nuisances), 5 (polynomial CQC of degree ``degree``).
      gamma: nuisance complexity ``gamma >= 0``.
      beta: the index vector of scenario 3 (empty otherwise).
      degree: the CQC's degree in scenario 5 (0 otherwise).
    """

    scenario: int
    gamma: float
    beta: tuple[float, ...] = ()
    degree: int = 0

    @property
    def num_features(self) -> int:
        return 10 if self.scenario == 3 else 1

    def _x(self, x) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        if x.ndim == 1:
            x = x[:, None]
        return x

    def index(self, x) -> jax.Array:
        """``s(x)``: ``x_1``, or ``x^T beta`` in scenario 3."""
        x = self._x(x)
        if self.scenario == 3:
            return x @ jnp.asarray(self.beta, jnp.float32)
        return x[:, 0]

    @functools.partial(jax.jit, static_argnums=0)
    def propensity(self, x) -> jax.Array:
        """``pi(x) = 0.4 sin(gamma pi s(x)) + 0.5``."""
        return 0.4 * jnp.sin(self.gamma * jnp.pi * self.index(x)) + 0.5

    def location_scale(self, arm: int, x) -> tuple[jax.Array, jax.Array]:
        """``(mu_arm(x), sigma_arm(x))``."""
        s = self.index(x)
        wave = jnp.sin(self.gamma * jnp.pi * s)
        one = jnp.ones_like(s)
        if self.scenario in (1, 2):
            return (wave, one) if arm == 0 else (2.0 * wave, 2.0 * one)
        if self.scenario == 3:
            return (wave + 0.5, one) if arm == 0 else (wave, one)
        if self.scenario == 5:
            return (wave, one) if arm == 0 else (wave + _legendre(s, self.degree), one)
        scale = 0.5 * s + 1.5
        if arm == 0:
            return wave / scale, one
        return wave + 0.25 * s + 0.75, scale

    # -- noise law (standardized eps) ---------------------------------------------------
    def _noise_cdf(self, z):
        if self.scenario == 2:
            return jnp.clip((z + _SQRT3) / (2 * _SQRT3), 0.0, 1.0)
        return ndtr(z)

    def _noise_ppf(self, u):
        if self.scenario == 2:
            return (2 * u - 1) * _SQRT3
        return ndtri(u)

    def _noise_partial_moment(self, z):
        """``E[(z - eps)_+]``, the antiderivative of the noise CDF."""
        if self.scenario == 2:
            inside = (z + _SQRT3) ** 2 / (4 * _SQRT3)
            return jnp.where(z < -_SQRT3, 0.0, jnp.where(z > _SQRT3, z, inside))
        return z * ndtr(z) + jnp.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)

    def sample_noise(self, key, shape) -> jax.Array:
        if self.scenario == 2:
            return jax.random.uniform(key, shape, minval=-_SQRT3, maxval=_SQRT3)
        return jax.random.normal(key, shape)

    # -- exact nuisances ---------------------------------------------------------------
    @functools.partial(jax.jit, static_argnums=(0, 1))
    def cdf(self, arm: int, t, x) -> jax.Array:
        """``F_arm(t | x)``; ``t`` has shape ``(n,)`` or ``(n, k)`` for ``x`` of ``n`` rows."""
        mu, sigma = self.location_scale(arm, x)
        t = jnp.asarray(t, jnp.float32)
        if t.ndim == 2:
            mu, sigma = mu[:, None], sigma[:, None]
        return self._noise_cdf((t - mu) / sigma)

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def integrated_cdf(self, arm: int, t, x) -> jax.Array:
        """``int_{-inf}^t F_arm(s | x) ds = E[(t - Y(arm))_+ | x]``."""
        mu, sigma = self.location_scale(arm, x)
        t = jnp.asarray(t, jnp.float32)
        if t.ndim == 2:
            mu, sigma = mu[:, None], sigma[:, None]
        return sigma * self._noise_partial_moment((t - mu) / sigma)

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def quantile(self, arm: int, u, x) -> jax.Array:
        """``F_arm^{-1}(u | x)``; ``u`` broadcasts like ``t`` in :meth:`cdf`."""
        mu, sigma = self.location_scale(arm, x)
        u = jnp.asarray(u, jnp.float32)
        if u.ndim == 2:
            mu, sigma = mu[:, None], sigma[:, None]
        return mu + sigma * self._noise_ppf(u)

    def __call__(self, y0, x) -> jax.Array:
        """``g*(y0 | x) = mu_1(x) + sigma_1(x) (y0 - mu_0(x)) / sigma_0(x)``."""
        x = as_covariates("Design", "x", x, num_features=self.num_features)
        return self._g(jnp.asarray(y0, jnp.float32), jnp.asarray(x, jnp.float32))

    @functools.partial(jax.jit, static_argnums=0)
    def _g(self, y0, x):
        mu0, s0 = self.location_scale(0, x)
        mu1, s1 = self.location_scale(1, x)
        if y0.ndim == 2:
            mu0, s0, mu1, s1 = (v[:, None] for v in (mu0, s0, mu1, s1))
        return mu1 + s1 * (y0 - mu0) / s0


def _legendre(t, degree: int):
    """Legendre polynomial ``P_degree(t)`` (Bonnet's recursion); ``|P_k| <= 1`` on [-1, 1]."""
    prev, cur = jnp.ones_like(t), t
    if degree == 0:
        return prev
    for j in range(1, degree):
        prev, cur = cur, ((2 * j + 1) * t * cur - j * prev) / (j + 1)
    return cur


class Simulation(NamedTuple):
    """A simulated data set: covariates ``x (n, d)``, treatment ``a (n,)`` in {0, 1},
    outcome ``y (n,)`` and the true CQC ``g_true`` (a :class:`Design`, callable as
    ``g_true(y0, x)``)."""

    x: jax.Array
    a: jax.Array
    y: jax.Array
    g_true: Design


def simulate(scenario: int, n: int, key: jax.Array, *, gamma: float = 1.0,
             degree: int = 3) -> Simulation:
    """Draws ``n`` units from one of the paper's location-scale scenarios.

    ``X ~ U[-1, 1]^d``, ``A | X ~ Bernoulli(pi(X))``, ``Y = mu_A(X) + sigma_A(X) eps``:

    1. ``d = 1``, ``mu_0 = sin(gamma pi x)``, ``sigma_0 = 1``, ``mu_1 = 2 sin(gamma pi x)``,
       ``sigma_1 = 2``, ``eps ~ N(0, 1)``; ``g*(y0 | x) = 2 y0``.
    2. As 1 with ``eps ~ U[-sqrt 3, sqrt 3]``; ``g* = 2 y0``.
    3. ``d = 10``, ``beta ~ N(0, I) / 5``, ``mu_0 = sin(gamma pi x^T beta) + 0.5``,
       ``mu_1 = sin(gamma pi x^T beta)``, ``sigma_a = 1``; ``g* = y0 - 0.5``.
    4. ``mu_0 = sin(gamma pi x) / (0.5 x + 1.5)``, ``sigma_0 = 1``,
       ``mu_1 = sin(gamma pi x) + 0.25 x + 0.75``, ``sigma_1 = 0.5 x + 1.5``;
       ``g* = (0.5 x + 1.5) y0 + 0.25 x + 0.75``.
    5. ``d = 1``, ``mu_0 = sin(gamma pi x)``, ``mu_1 = sin(gamma pi x) + P_k(x)``,
       ``sigma_a = 1``, ``eps ~ N(0, 1)``; ``g* = y0 + P_k(x)`` (``k = degree``; the
       propensity and ``F_0`` do not depend on ``k``).

    Args:
      scenario: 1, 2, 3 or 4.
      n: number of units (>= 1).
      key: a ``jax.random.key``.
      gamma: nuisance complexity (>= 0).
      degree: the CQC's polynomial degree in scenario 5 (int >= 0; ignored otherwise).

    Returns:
      ``Simulation(x, a, y, g_true)``.

    Raises:
      ValueError: for an unknown scenario, ``n < 1``, negative/non-finite ``gamma`` or a
        negative ``degree``.
      TypeError: for a non-int ``n`` or a key that is not a JAX key.

    References:
      Givens et al., ICLR 2026, arXiv:2601.19666, Section 6.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"simulate: scenario must be one of {list(SCENARIOS)}, got {scenario!r}")
    n = check_positive_int("simulate", "n", n)
    if not isinstance(key, jax.Array):
        raise TypeError(f"simulate: key must be a jax.random.key, got {type(key).__name__}")
    gamma = float(gamma)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"simulate: gamma must be a finite number >= 0, got {gamma}")
    degree = check_positive_int("simulate", "degree", degree, minimum=0)
    kb, kx, ka, ke = jax.random.split(key, 4)
    beta: tuple[float, ...] = ()
    if scenario == 3:
        beta = tuple(float(b) for b in np.asarray(jax.random.normal(kb, (10,)) / 5.0))
    design = Design(scenario=scenario, gamma=gamma, beta=beta,
                    degree=degree if scenario == 5 else 0)
    x, a, y = _draw(design, n, kx, ka, ke)
    return Simulation(x=x, a=a, y=y, g_true=design)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw(design: Design, n: int, kx, ka, ke):
    x = jax.random.uniform(kx, (n, design.num_features), minval=-1.0, maxval=1.0)
    a = jax.random.bernoulli(ka, design.propensity(x)).astype(jnp.float32)
    eps = design.sample_noise(ke, (n,))
    mu0, s0 = design.location_scale(0, x)
    mu1, s1 = design.location_scale(1, x)
    y = jnp.where(a == 1, mu1 + s1 * eps, mu0 + s0 * eps)
    return x, a, y
