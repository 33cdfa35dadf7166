"""tecrl.envs: the JaxEnv interface, the JAX Pendulum behind it, MuJoCo on MJX vs Gymnasium."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tecrl.envs import JaxEnv, make_jax_env, mjx_env, pendulum_env
from tecrl.pendulum import PendulumParams, pendulum_reset, pendulum_step


def test_pendulum_env_scales_actions_to_torques():
    """``step(state, a)`` is ``pendulum_step`` at torque ``max_torque * a`` (a in [-1, 1])."""
    params = PendulumParams(max_episode_steps=7)
    env = pendulum_env(params)
    assert isinstance(env, JaxEnv)
    assert (env.obs_dim, env.act_dim, env.max_episode_steps) == (3, 1, 7)
    state, obs = env.reset(jax.random.key(3))
    ref_state, ref_obs = pendulum_reset(jax.random.key(3))
    np.testing.assert_array_equal(obs, ref_obs)
    a = jnp.array([0.4])
    got = env.step(state, a)
    want = pendulum_step(ref_state, jnp.array([0.8]), params)  # max_torque = 2
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(g, w)


def test_bad_inputs():
    with pytest.raises(TypeError, match="pendulum_env: params must be a PendulumParams, got dict"):
        pendulum_env({})
    with pytest.raises(ValueError, match="mjx_env: env_id must be one of .*got 'Ant-v5'"):
        mjx_env("Ant-v5")
    with pytest.raises(ValueError, match="mjx_env: max_episode_steps must be a positive int, "
                                         "got 0"):
        mjx_env("Hopper-v5", max_episode_steps=0)
    with pytest.raises(ValueError, match="make_jax_env: name must be 'pendulum_jax' or "
                                         "'mjx/<task>'.*got 'Pendulum-v1'"):
        make_jax_env("Pendulum-v1")
    assert make_jax_env("pendulum_jax").name == "pendulum_jax"


@pytest.mark.slow  # MJX compiles for minutes on CPU
@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5"])
def test_mjx_steps_match_gymnasium(env_id):
    """From the same physics state, 20 steps of random actions give Gymnasium's observations,
    rewards and terminations (MJX in float32 vs MuJoCo in float64: loose tolerances)."""
    pytest.importorskip("mujoco.mjx")
    env = mjx_env(env_id)
    ref = gym.make(env_id)
    ref.reset(seed=0)
    base = ref.unwrapped
    state, obs = jax.jit(env.reset)(jax.random.key(0))
    qpos, qvel = np.asarray(state.data.qpos, np.float64), np.asarray(state.data.qvel, np.float64)
    base.set_state(qpos, qvel)
    np.testing.assert_allclose(obs, base._get_obs(), atol=1e-5)
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for t in range(20):
        a = rng.uniform(-1, 1, env.act_dim).astype(np.float32)
        state, obs, r, term, trunc = step(state, jnp.asarray(a))
        ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-3, atol=2e-3, err_msg=f"step {t}")
        np.testing.assert_allclose(r, ref_r, rtol=1e-3, atol=2e-3, err_msg=f"step {t}")
        assert bool(term) == ref_term and not bool(trunc), t
        if ref_term:
            break
    ref.close()
