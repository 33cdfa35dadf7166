"""Feature maps ``phi(s, a)`` for finite MDPs: one-hot, random projection, aggregation,
realizable and misspecified features. All return float64 arrays of shape ``(S, A, d)``.

References:
  Amortila, Huang, Krishnamurthy, Jiang. arXiv:2601.19030 (ICLR 2026): tabular features
  give ``C^pi_phi = 1 + chi^2(d^pi || mu)``; state abstractions give aggregated features.
"""

from __future__ import annotations

import jax
import numpy as np

from lstdq.mdp import _check_key, _check_size, _rng

__all__ = [
    "aggregated_features",
    "misspecified_features",
    "one_hot_features",
    "random_features",
    "realizable_features",
]


def one_hot_features(num_states: int, num_actions: int) -> np.ndarray:
    """Tabular features ``phi(s, a) = e_{(s, a)}`` in ``R^{S*A}``."""
    _check_size("one_hot_features", num_states=num_states, num_actions=num_actions)
    return np.eye(num_states * num_actions).reshape(num_states, num_actions, -1)


def random_features(key, num_states: int, num_actions: int, dim: int, *, scale: float = 1.0
                    ) -> np.ndarray:
    """Gaussian random projection of the one-hot features: ``phi(s, a) ~ N(0, scale^2 I_d)``.

    With ``dim < S*A`` these are in general misspecified (``Q^pi`` is not in their span).
    """
    _check_key("random_features", key)
    _check_size("random_features", num_states=num_states, num_actions=num_actions, dim=dim)
    if not scale > 0:
        raise ValueError(f"random_features: scale must be > 0, got {scale!r}")
    return scale * _rng(key).normal(size=(num_states, num_actions, dim))


def aggregated_features(groups, num_actions: int) -> np.ndarray:
    """State aggregation: ``phi(s, a) = e_{group(s)} (x) e_a``.

    Args:
      groups: ``(S,)`` integer group label of each state, labels ``0..G-1`` all used.
      num_actions: ``A``.

    Returns:
      ``(S, A, G*A)`` features.
    """
    _check_size("aggregated_features", num_actions=num_actions)
    g = np.asarray(groups)
    if g.ndim != 1 or g.size == 0 or g.dtype.kind not in "iu":
        raise ValueError(
            f"aggregated_features: groups must be a non-empty 1-D int array, got shape "
            f"{g.shape} dtype {g.dtype}"
        )
    k = int(g.max()) + 1
    if g.min() < 0 or len(np.unique(g)) != k:
        raise ValueError(
            f"aggregated_features: groups must use every label 0..{k - 1}, got {np.unique(g)}"
        )
    onehot = np.eye(k)[g]
    return np.einsum("sk,ab->sakb", onehot, np.eye(num_actions)).reshape(g.size, num_actions, -1)


def realizable_features(key, q, dim: int) -> np.ndarray:
    """Random ``dim``-D features whose span contains ``q`` (so ``Q^pi`` is realizable).

    ``Phi = [q, G] W`` with ``G`` a ``(S*A, dim-1)`` Gaussian matrix and ``W`` a random
    (almost surely invertible) ``dim x dim`` mixing, so no single column equals ``q``.

    Args:
      key: ``jax.random.key``.
      q: ``(S, A)`` target function (e.g. :func:`lstdq.exact_q`).
      dim: feature dimension, ``2 <= dim <= S*A``.
    """
    _check_key("realizable_features", key)
    q = np.asarray(q, np.float64)
    if q.ndim != 2 or not np.all(np.isfinite(q)):
        raise ValueError(f"realizable_features: q must be a finite (S, A) array, got {q.shape}")
    _check_size("realizable_features", dim=dim)
    if not 2 <= dim <= q.size:
        raise ValueError(f"realizable_features: dim must be in [2, {q.size}], got {dim}")
    kg, kw = jax.random.split(key)
    g = _rng(kg).normal(size=(q.size, dim - 1))
    w = _rng(kw).normal(size=(dim, dim)) / np.sqrt(dim)
    base = np.concatenate([q.reshape(-1, 1) / (np.abs(q).max() + 1e-12), g], axis=1)
    return (base @ w).reshape(*q.shape, dim)


def misspecified_features(key, q, dim: int, noise: float) -> np.ndarray:
    """Realizable features plus a perturbation of relative size ``noise`` (``0``: realizable).

    ``Phi = Phi_real + noise * ||Phi_real||_F / ||E||_F * E`` with Gaussian ``E``, so the
    approximation error of ``Q^pi`` grows with ``noise``.
    """
    if not noise >= 0:
        raise ValueError(f"misspecified_features: noise must be >= 0, got {noise!r}")
    k1, k2 = jax.random.split(key)
    phi = realizable_features(k1, q, dim)
    e = _rng(k2).normal(size=phi.shape)
    return phi + noise * np.linalg.norm(phi) / np.linalg.norm(e) * e
