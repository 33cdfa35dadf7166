"""Environments written in JAX for the on-device trainer: the JAX ``Pendulum-v1`` and MuJoCo
``HalfCheetah-v5`` / ``Hopper-v5`` on MJX (``mujoco-mjx``, the ``mjx`` extra).

A :class:`JaxEnv` is a pair of pure functions over one environment, ``reset(key) -> (state,
obs)`` and ``step(state, action) -> (state, obs, reward, terminated, truncated)`` with
``action`` in ``[-1, 1]^act_dim``, so :class:`tecrl.loop.OnDeviceTrainer` can ``scan`` and
``vmap`` them with the agent: every step of a run stays on the accelerator.

The MJX tasks load Gymnasium's own XML models and follow the v5 definitions: observation
``(qpos[1:], qvel)`` (Hopper clips ``qvel`` to ``[-10, 10]``), reward ``x_velocity`` minus a
control cost (Hopper: plus 1 while healthy), Hopper terminates when unhealthy, both truncate
after 1000 steps, resets add Gymnasium's noise (different random draws: JAX keys instead of
``np_random``). ``tests/tecrl/test_envs.py`` checks steps against ``gymnasium.make``.

References:
  Gymnasium ``envs/mujoco/half_cheetah_v5.py``, ``hopper_v5.py`` (v1.x); MuJoCo XLA (MJX).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from tecrl.pendulum import PENDULUM, PendulumParams, pendulum_reset, pendulum_step

__all__ = ["MJX_TASKS", "JaxEnv", "MjxState", "make_jax_env", "mjx_env", "pendulum_env"]

MJX_TASKS = ("HalfCheetah-v5", "Hopper-v5")


class JaxEnv(NamedTuple):
    """One environment as pure JAX functions (actions in ``[-1, 1]^act_dim``)."""

    name: str
    obs_dim: int
    act_dim: int
    max_episode_steps: int
    reset: Callable[[jax.Array], tuple[Any, jax.Array]]
    step: Callable[[Any, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array]]


def pendulum_env(params: PendulumParams = PENDULUM) -> JaxEnv:
    """The JAX ``Pendulum-v1`` (:mod:`tecrl.pendulum`), torques ``2 * action``.

    Raises:
      TypeError: if ``params`` is not a :class:`~tecrl.pendulum.PendulumParams`.
    """
    if not isinstance(params, PendulumParams):
        raise TypeError(f"pendulum_env: params must be a PendulumParams, got "
                        f"{type(params).__name__}")

    def step(state, action):
        return pendulum_step(state, action * params.max_torque, params)

    return JaxEnv("pendulum_jax", params.obs_dim, params.act_dim, params.max_episode_steps,
                  pendulum_reset, step)


class MjxState(NamedTuple):
    data: Any  # mjx.Data
    t: jax.Array  # int32 steps in the episode


def mjx_env(env_id: str, max_episode_steps: int = 1000) -> JaxEnv:
    """``HalfCheetah-v5`` or ``Hopper-v5`` simulated by MJX, with Gymnasium's XML model.

    Raises:
      ValueError: for another ``env_id`` or a non-positive ``max_episode_steps``.
      ImportError: if ``mujoco-mjx`` is not installed (``pip install -e ".[mjx]"``).
    """
    if env_id not in MJX_TASKS:
        raise ValueError(f"mjx_env: env_id must be one of {MJX_TASKS}, got {env_id!r}")
    if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) \
            or max_episode_steps <= 0:
        raise ValueError(f"mjx_env: max_episode_steps must be a positive int, got "
                         f"{max_episode_steps!r}")
    import gymnasium as gym
    from mujoco import mjx

    probe = gym.make(env_id).unwrapped
    model = mjx.put_model(probe.model)
    init_qpos = jnp.asarray(probe.init_qpos, jnp.float32)
    init_qvel = jnp.asarray(probe.init_qvel, jnp.float32)
    frame_skip, dt = probe.frame_skip, float(probe.dt)
    nq, nv, act_dim = probe.model.nq, probe.model.nv, probe.action_space.shape[0]
    probe.close()
    cheetah = env_id == "HalfCheetah-v5"
    noise = 0.1 if cheetah else 5e-3
    data0 = mjx.make_data(model)

    def obs_of(data):
        qvel = data.qvel if cheetah else jnp.clip(data.qvel, -10.0, 10.0)
        return jnp.concatenate([data.qpos[1:], qvel]).astype(jnp.float32)

    def healthy(data):  # Hopper-v5's is_healthy
        z, angle = data.qpos[1], data.qpos[2]
        rest = jnp.concatenate([data.qpos, data.qvel])[2:]
        return jnp.all((rest > -100.0) & (rest < 100.0)) & (z > 0.7) & (angle > -0.2) & \
            (angle < 0.2)

    def reset(key):
        kq, kv = jax.random.split(key)
        qpos = init_qpos + jax.random.uniform(kq, (nq,), minval=-noise, maxval=noise)
        if cheetah:
            qvel = init_qvel + noise * jax.random.normal(kv, (nv,))
        else:
            qvel = init_qvel + jax.random.uniform(kv, (nv,), minval=-noise, maxval=noise)
        data = mjx.forward(model, data0.replace(qpos=qpos, qvel=qvel))
        return MjxState(data, jnp.zeros((), jnp.int32)), obs_of(data)

    def step(state, action):
        x0 = state.data.qpos[0]
        data = state.data.replace(ctrl=action)
        data = jax.lax.fori_loop(0, frame_skip, lambda _, d: mjx.step(model, d), data)
        x_velocity = (data.qpos[0] - x0) / dt
        if cheetah:
            reward = x_velocity - 0.1 * jnp.sum(action**2)
            terminated = jnp.zeros((), bool)
        else:
            ok = healthy(data)
            reward = x_velocity + ok.astype(jnp.float32) - 1e-3 * jnp.sum(action**2)
            terminated = ~ok
        t = state.t + 1
        return (MjxState(data, t), obs_of(data), reward.astype(jnp.float32), terminated,
                t >= max_episode_steps)

    return JaxEnv(env_id, nq - 1 + nv, act_dim, max_episode_steps, reset, step)


def make_jax_env(name: str) -> JaxEnv:
    """``"pendulum_jax"`` or ``"mjx/HalfCheetah-v5"`` / ``"mjx/Hopper-v5"``.

    Raises:
      ValueError: for another name.
    """
    if name == "pendulum_jax":
        return pendulum_env()
    if name.startswith("mjx/"):
        return mjx_env(name[4:])
    raise ValueError(f"make_jax_env: name must be 'pendulum_jax' or 'mjx/<task>' with task in "
                     f"{MJX_TASKS}, got {name!r}")
