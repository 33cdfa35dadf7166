"""Gymnasium's ``Pendulum-v1`` written in JAX, so whole training runs live on the device.

State ``(theta, theta_dot)``; with ``u = clip(a, -2, 2)``:

    cost = angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2,   r = -cost
    theta_dot' = clip(theta_dot + (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt, -8, 8)
    theta' = theta + theta_dot' dt

``g = 10, m = l = 1, dt = 0.05``; the observation is ``(cos theta, sin theta, theta_dot)``;
episodes never terminate and are truncated after 200 steps; resets draw
``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-1, 1)``. Tested step by step against
``gymnasium.make("Pendulum-v1")``.

References:
  Gymnasium, ``gymnasium/envs/classic_control/pendulum.py`` (v1.x).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "PENDULUM",
    "PendulumParams",
    "PendulumState",
    "pendulum_obs",
    "pendulum_reset",
    "pendulum_step",
]


class PendulumParams(NamedTuple):
    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    length: float = 1.0
    max_episode_steps: int = 200
    obs_dim: int = 3
    act_dim: int = 1


PENDULUM = PendulumParams()


class PendulumState(NamedTuple):
    """``theta``, ``theta_dot`` (float32) and the step count ``t`` (int32) of one pendulum."""

    theta: jax.Array
    theta_dot: jax.Array
    t: jax.Array


def pendulum_obs(state: PendulumState) -> jax.Array:
    """``(cos theta, sin theta, theta_dot)``.

    Raises:
      TypeError: if ``state`` is not a :class:`PendulumState`.
    """
    if not isinstance(state, PendulumState):
        raise TypeError(f"pendulum_obs: state must be a PendulumState, got {type(state).__name__}")
    return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot], axis=-1)


def pendulum_reset(key: jax.Array) -> tuple[PendulumState, jax.Array]:
    """A fresh episode: ``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-1, 1)``; returns ``(state, obs)``.

    Raises:
      TypeError: if ``key`` is not a typed ``jax.random.key``.
    """
    if not (isinstance(key, jax.Array)
            and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(f"pendulum_reset: key must be a jax.random.key, got {type(key).__name__}")
    high = jnp.array([jnp.pi, 1.0], jnp.float32)
    x = jax.random.uniform(key, (2,), jnp.float32, -high, high)
    state = PendulumState(x[0], x[1], jnp.zeros((), jnp.int32))
    return state, pendulum_obs(state)


def pendulum_step(
    state: PendulumState, action: ArrayLike, params: PendulumParams = PENDULUM
) -> tuple[PendulumState, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One step with torque ``action`` (shape ``[1]``, clipped to ``[-2, 2]``).

    Returns:
      ``(state', obs', reward, terminated, truncated)``; ``terminated`` is always False,
      ``truncated`` is True when ``t' == 200``.

    Raises:
      ValueError: if ``action`` does not have shape ``(1,)``.
    """
    if not isinstance(state, PendulumState):
        raise TypeError(f"pendulum_step: state must be a PendulumState, got {type(state).__name__}")
    action = jnp.asarray(action, jnp.float32)
    if action.shape != (1,):
        raise ValueError(f"pendulum_step: action must have shape (1,), got {action.shape}")
    p = params
    u = jnp.clip(action[0], -p.max_torque, p.max_torque)
    th, thdot = state.theta, state.theta_dot
    norm_th = ((th + jnp.pi) % (2 * jnp.pi)) - jnp.pi
    cost = norm_th**2 + 0.1 * thdot**2 + 0.001 * u**2
    accel = 3 * p.g / (2 * p.length) * jnp.sin(th) + 3.0 / (p.m * p.length**2) * u
    new_thdot = thdot + accel * p.dt
    new_thdot = jnp.clip(new_thdot, -p.max_speed, p.max_speed)
    new_th = th + new_thdot * p.dt
    new = PendulumState(new_th, new_thdot, state.t + 1)
    return (new, pendulum_obs(new), -cost, jnp.zeros((), bool),
            new.t >= p.max_episode_steps)
