"""The paper's theory made measurable: residual maps, NS error bounds, Theorem 1's tuning.

Notation (Kim & Oh 2026): NS with the degree-kappa Taylor polynomial p_kappa, q steps,
delta = ||I - X X^T||_op on the range of X, eps_q = ||X_q - Polar(M)||_op and
chi_q = 1 / (1 - eps_q), the factor by which NS-Muon's rate exceeds SVD-Muon's.

    phi_kappa(delta) = 1 - (1 - delta) p_kappa(1 - delta)^2
        phi_1(delta) = delta^2 (3 + delta) / 4,
        phi_2(delta) = delta^3 (40 + 15 delta + 9 delta^2) / 64,
    delta_q <= delta_0^{(kappa+1)^q},
    eps_q   <= 1 - sqrt(1 - delta_0^{(kappa+1)^q}),
    chi_q   <= [1 - delta_0^{(kappa+1)^q}]^{-1/2}.

Theorem 1 (L-smooth f, D = f(W_0) - f*, batch B, noise sigma, rank r, T steps):

    eta = sqrt((1 - beta) D / (T L)),
    beta = 1 - min{ sqrt(L D B) / (sigma sqrt(r T)), 1 },

with stationarity measured by (1/T) sum_t E||grad f(W_t)||_* (nuclear norm).

References:
  Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from muon_ns.schemes import taylor_coeffs

__all__ = [
    "chi_bound",
    "delta_bound",
    "eps_bound",
    "nuclear_norm",
    "residual_map",
    "stationarity",
    "theorem1_momentum",
    "theorem1_step_size",
]


def _check_kappa_q(fn: str, kappa, q) -> None:
    if isinstance(kappa, bool) or not isinstance(kappa, int | np.integer) or kappa < 1:
        raise ValueError(f"{fn}: kappa must be an int >= 1, got {kappa!r}")
    if isinstance(q, bool) or not isinstance(q, int | np.integer) or q < 0:
        raise ValueError(f"{fn}: q must be an int >= 0, got {q!r}")


def _check_delta(fn: str, delta, *, upper_open: bool) -> jax.Array:
    delta = jnp.asarray(delta)
    if not jnp.issubdtype(delta.dtype, jnp.floating):
        delta = delta.astype(jnp.float32)
    if not isinstance(delta, jax.core.Tracer):
        d = np.asarray(delta)
        hi_ok = np.all(d < 1) if upper_open else np.all(d <= 1)
        if not np.all(np.isfinite(d)) or np.any(d < 0) or not hi_ok:
            bounds = "[0, 1)" if upper_open else "[0, 1]"
            raise ValueError(f"{fn}: delta must lie in {bounds}, got values in "
                             f"[{np.nanmin(d) if d.size else 'empty'}, "
                             f"{np.nanmax(d) if d.size else 'empty'}]")
    return delta


def residual_map(delta: jax.typing.ArrayLike, kappa: int) -> jax.Array:
    """phi_kappa(delta) = 1 - (1 - delta) p_kappa(1 - delta)^2: one NS step's new residual.

    Args:
      delta: residual(s) in [0, 1].
      kappa: Taylor order, int >= 1.

    Returns:
      phi_kappa(delta), same shape as delta.

    Raises:
      ValueError: kappa < 1 or delta outside [0, 1].
    """
    _check_kappa_q("residual_map", kappa, 0)
    delta = _check_delta("residual_map", delta, upper_open=False)
    lam = 1.0 - delta
    p = jnp.zeros_like(lam)
    for c in taylor_coeffs(int(kappa))[::-1]:  # Horner
        p = p * lam + c
    return 1.0 - lam * p**2


def delta_bound(delta_0: jax.typing.ArrayLike, kappa: int, q: int) -> jax.Array:
    """delta_q <= delta_0^{(kappa+1)^q}.

    Raises:
      ValueError: kappa < 1, q < 0 or delta_0 outside [0, 1].
    """
    _check_kappa_q("delta_bound", kappa, q)
    delta_0 = _check_delta("delta_bound", delta_0, upper_open=False)
    return delta_0 ** float((kappa + 1) ** q)


def eps_bound(delta_0: jax.typing.ArrayLike, kappa: int, q: int) -> jax.Array:
    """eps_q = ||X_q - Polar(M)||_op <= 1 - sqrt(1 - delta_0^{(kappa+1)^q}).

    Raises:
      ValueError: kappa < 1, q < 0 or delta_0 outside [0, 1].
    """
    _check_kappa_q("eps_bound", kappa, q)
    delta_0 = _check_delta("eps_bound", delta_0, upper_open=False)
    return 1.0 - jnp.sqrt(1.0 - delta_0 ** float((kappa + 1) ** q))


def chi_bound(delta_0: jax.typing.ArrayLike, kappa: int, q: int) -> jax.Array:
    """chi_q = 1 / (1 - eps_q) <= [1 - delta_0^{(kappa+1)^q}]^{-1/2}; chi_q -> 1 as q grows.

    Raises:
      ValueError: kappa < 1, q < 0 or delta_0 outside [0, 1) (the bound is infinite at 1).
    """
    _check_kappa_q("chi_bound", kappa, q)
    delta_0 = _check_delta("chi_bound", delta_0, upper_open=True)
    return jax.lax.rsqrt(1.0 - delta_0 ** float((kappa + 1) ** q))


def _positive(fn: str, **values) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | float | np.number):
            raise TypeError(f"{fn}: {name} must be a number, got {type(v).__name__}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{fn}: {name} must be a finite number > 0, got {v!r}")


def theorem1_step_size(L: float, D: float, T: int, beta: float) -> float:
    """Theorem 1's step size eta = sqrt((1 - beta) D / (T L)).

    Args:
      L: smoothness constant (> 0). D: initial suboptimality f(W_0) - f* (> 0).
      T: number of iterations (> 0). beta: momentum in [0, 1).

    Raises:
      ValueError: non-positive L, D, T or beta outside [0, 1).
    """
    _positive("theorem1_step_size", L=L, D=D, T=T)
    if not 0 <= beta < 1:
        raise ValueError(f"theorem1_step_size: beta must be in [0, 1), got {beta!r}")
    return math.sqrt((1.0 - beta) * D / (T * L))


def theorem1_momentum(L: float, D: float, B: int, sigma: float, rank: int, T: int) -> float:
    """Theorem 1's momentum beta = 1 - min{ sqrt(L D B) / (sigma sqrt(r T)), 1 }.

    Args:
      L: smoothness (> 0). D: f(W_0) - f* (> 0). B: batch size (> 0). sigma: gradient noise
      standard deviation (> 0). rank: r = rank of the gradients, >= 1. T: iterations (> 0).

    Raises:
      ValueError: a non-positive argument.
    """
    _positive("theorem1_momentum", L=L, D=D, B=B, sigma=sigma, rank=rank, T=T)
    return 1.0 - min(math.sqrt(L * D * B) / (sigma * math.sqrt(rank * T)), 1.0)


def nuclear_norm(g: jax.typing.ArrayLike) -> jax.Array:
    """||G||_* = sum of singular values, over the last two axes (leading axes batch).

    Raises:
      ValueError: if g has ndim < 2.
    """
    g = jnp.asarray(g)
    if g.ndim < 2:
        raise ValueError(f"nuclear_norm: g must be a matrix (ndim >= 2), got shape {g.shape}")
    g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
    return jnp.sum(jnp.linalg.svd(g, compute_uv=False), axis=-1)


def stationarity(grad_history: jax.typing.ArrayLike) -> jax.Array:
    """The paper's stationarity measure (1/T) sum_{t<T} ||grad f(W_t)||_*.

    Args:
      grad_history: gradients stacked over iterations, shape (T, m, n) (T >= 1).

    Raises:
      ValueError: for a shape other than (T, m, n) with T >= 1, or non-finite gradients.
    """
    g = jnp.asarray(grad_history)
    if g.ndim != 3 or g.shape[0] < 1:
        raise ValueError(f"stationarity: grad_history must have shape (T, m, n) with T >= 1, "
                         f"got {g.shape}")
    if not isinstance(g, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(g))):
        raise ValueError("stationarity: grad_history contains NaN or inf")
    return jnp.mean(nuclear_norm(g))
