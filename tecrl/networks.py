"""Flax NNX networks of the agents: MLP critics (mean and std heads) and a tanh-Gaussian policy.

Actions live in the normalised box ``[-1, 1]^|A|``; the environment adapters rescale them to
the task's bounds, so entropies and ``target_entropy = -|A|`` are those of the squashed
policy on ``[-1, 1]^|A|`` (the convention of SAC's and DSAC-T's public code).

References:
  Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv 1812.05905 (2018).
  Duan et al., "Distributional Soft Actor-Critic with Three Refinements" (DSAC-T),
  arXiv 2310.05858 (2023).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "ACTIVATIONS",
    "Critic",
    "Policy",
    "squashed_gaussian_sample",
    "squashed_gaussian_log_prob",
    "LOG_STD_MIN",
    "LOG_STD_MAX",
]

ACTIVATIONS = {"gelu": nnx.gelu, "relu": nnx.relu, "tanh": jnp.tanh, "silu": nnx.silu}
LOG_STD_MIN = -20.0
LOG_STD_MAX = 0.5


def _check_hidden(hidden: Sequence[int], activation: str, who: str) -> None:
    if not hidden or any(int(h) <= 0 for h in hidden):
        raise ValueError(f"{who}: hidden must be a non-empty list of positive ints, got {hidden!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{who}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )


class _MLP(nnx.Module):
    def __init__(self, din: int, hidden: Sequence[int], dout: int, activation: str,
                 rngs: nnx.Rngs):
        sizes = [din, *[int(h) for h in hidden]]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.out = nnx.Linear(sizes[-1], dout, rngs=rngs)
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.layers:
            x = act(layer(x))
        return self.out(x)


class Critic(nnx.Module):
    """``Q(s, a) -> (mean, std)`` with ``std = softplus(raw) > 0`` (DSAC-T's value distribution).

    Args:
      obs_dim: observation size (> 0).
      act_dim: action size (> 0).
      hidden: hidden widths (DSAC-T: 256, 256, 256).
      activation: one of :data:`ACTIVATIONS` (DSAC-T: ``gelu``).
      rngs: ``nnx.Rngs`` for the initial weights.

    Calling it on ``obs [B, obs_dim]`` and ``act [B, act_dim]`` returns ``(mean [B], std [B])``.
    SAC and the entropy critic use only the mean.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256, 256),
                 activation: str = "gelu", *, rngs: nnx.Rngs):
        if int(obs_dim) <= 0 or int(act_dim) <= 0:
            raise ValueError(
                f"Critic: obs_dim and act_dim must be positive, got {obs_dim!r}, {act_dim!r}"
            )
        _check_hidden(hidden, activation, "Critic")
        self.net = _MLP(int(obs_dim) + int(act_dim), hidden, 2, activation, rngs)

    def __call__(self, obs: jax.Array, act: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = self.net(jnp.concatenate([obs, act], axis=-1))
        return out[..., 0], jax.nn.softplus(out[..., 1])


class Policy(nnx.Module):
    """Gaussian policy head ``s -> (mu, log_std)``; log-std clipped to ``[-20, 0.5]`` (DSAC-T).

    Args:
      obs_dim: observation size (> 0).
      act_dim: action size (> 0).
      hidden: hidden widths.
      activation: one of :data:`ACTIVATIONS`.
      rngs: ``nnx.Rngs`` for the initial weights.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256, 256),
                 activation: str = "gelu", *, rngs: nnx.Rngs):
        if int(obs_dim) <= 0 or int(act_dim) <= 0:
            raise ValueError(
                f"Policy: obs_dim and act_dim must be positive, got {obs_dim!r}, {act_dim!r}"
            )
        _check_hidden(hidden, activation, "Policy")
        self.act_dim = int(act_dim)
        self.net = _MLP(int(obs_dim), hidden, 2 * int(act_dim), activation, rngs)

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = self.net(obs)
        mu, log_std = out[..., : self.act_dim], out[..., self.act_dim:]
        return mu, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def squashed_gaussian_log_prob(u: jax.Array, mu: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log-density of ``a = tanh(u)``, ``u ~ N(mu, exp(log_std)^2)``, summed over action dims.

    ``log pi(a|s) = sum_i [log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2)]`` with the stable
    form ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``.

    Args:
      u: pre-squash sample ``[..., A]``.
      mu: mean ``[..., A]``.
      log_std: log standard deviation ``[..., A]``.

    Returns:
      ``[...]`` log-probabilities.

    Raises:
      ValueError: if the three shapes differ.
    """
    if not (jnp.shape(u) == jnp.shape(mu) == jnp.shape(log_std)):
        raise ValueError(
            "squashed_gaussian_log_prob: u, mu and log_std must share a shape, got "
            f"{jnp.shape(u)}, {jnp.shape(mu)}, {jnp.shape(log_std)}"
        )
    z = (u - mu) * jnp.exp(-log_std)
    normal = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(normal - log_det, axis=-1)


def squashed_gaussian_sample(
    key: jax.Array, mu: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised ``a = tanh(mu + sigma * eps)``, ``eps ~ N(0, I)``.

    Returns:
      ``(a, log pi(a|s))``.

    Raises:
      ValueError: if ``mu`` and ``log_std`` shapes differ.
    """
    if jnp.shape(mu) != jnp.shape(log_std):
        raise ValueError(
            "squashed_gaussian_sample: mu and log_std must share a shape, got "
            f"{jnp.shape(mu)} and {jnp.shape(log_std)}"
        )
    u = mu + jnp.exp(log_std) * jax.random.normal(key, jnp.shape(mu), dtype=mu.dtype)
    return jnp.tanh(u), squashed_gaussian_log_prob(u, mu, log_std)
