"""The Gymnasium loop: every transition stored across episode ends (checked against an
independent replay of the same envs), terminations vs truncations on a terminating env
(Hopper-v5), bit-identical resume through a checkpoint, bad environments, non-finite data."""

import gymnasium as gym
import jax
import numpy as np
import pytest

from experiments.checkpoint import Checkpointer
from tecrl import AgentConfig, GymLoop

SMALL = AgentConfig(algo="sac", hidden=(8,), batch_size=8, policy_delay=1)


class _NaNPendulum(gym.Wrapper):
    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        self.t = 0

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.t += 1
        return obs, (np.nan if self.t >= 5 else r), term, trunc, info


gym.register("tecrl_test/NaNPendulum-v0", entry_point=_NaNPendulum)


def _replay(loop, buffer, env_id, seed, max_episode_steps, num_vector_steps):
    """Steps fresh single envs with the stored actions; returns the ends seen and checks every
    stored row against them (the vector env seeds env i with seed + i and autoresets without
    a seed, so each env's RNG stream continues)."""
    n = loop.num_envs
    d = jax.tree.map(np.asarray, buffer.data)
    ends = {"terminated": 0, "truncated": 0}
    for i in range(n):
        env = gym.make(env_id, max_episode_steps=max_episode_steps)
        obs, _ = env.reset(seed=seed + i)
        for t in range(num_vector_steps):
            row = t * n + i
            np.testing.assert_allclose(d.obs[row], obs, atol=1e-6)
            obs2, r, term, trunc, _ = env.step(loop.scale(d.action[row]))
            np.testing.assert_allclose(d.next_obs[row], obs2, atol=1e-6)  # the true final obs
            np.testing.assert_allclose(d.reward[row], r, rtol=1e-5, atol=1e-5)
            assert d.terminated[row] == float(term), (row, term, trunc)
            if term or trunc:
                ends["terminated" if term else "truncated"] += 1
                obs2, _ = env.reset()
            obs = obs2
        env.close()
    return ends


def test_every_transition_is_stored_across_episode_ends():
    loop = GymLoop(SMALL, "Pendulum-v1", num_envs=2, buffer_size=100, learning_starts=16,
                   max_episode_steps=5)
    state = loop.init(jax.random.key(0))
    state, m = loop.collect_and_train(state, 12, seed=3)  # learning starts at vector step 8
    assert int(state.buffer.size) == 24 and int(state.env_steps) == 24
    ends = _replay(loop, state.buffer, "Pendulum-v1", 3, 5, 12)
    assert ends == {"terminated": 0, "truncated": 4}
    assert len(m["finished_returns"]) == 4 and len(loop.finished_returns) == 4
    assert int(state.agent.critic_steps) == 24 - 14  # UTD 1 from env step 16 on
    loop.close()


def test_terminating_env_stores_terminations_only_as_terminal():
    loop = GymLoop(AgentConfig(algo="dsac_e", hidden=(8,), batch_size=8), "Hopper-v5",
                   buffer_size=200, learning_starts=100, max_episode_steps=15)
    state = loop.init(jax.random.key(1))
    state, _ = loop.collect_and_train(state, 120, seed=0)
    ends = _replay(loop, state.buffer, "Hopper-v5", 0, 15, 120)
    assert ends["terminated"] >= 1 and ends["truncated"] >= 1  # both kinds were crossed
    # DSAC-E: one call of 2 updates every 2 env steps once 100 are stored: at 100, 102, ..., 120
    assert int(state.agent.critic_steps) == 2 * 11
    loop.close()


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("env_id, algo", [("Pendulum-v1", "sac"), ("Hopper-v5", "dsac_e")])
def test_resume_through_a_checkpoint_is_bit_identical(tmp_path, env_id, algo):
    cfg = AgentConfig(algo=algo, hidden=(8,), batch_size=8, policy_delay=1 if algo == "sac"
                      else 2)
    kw = dict(buffer_size=200, learning_starts=16, max_episode_steps=7)
    loop = GymLoop(cfg, env_id, **kw)
    a = loop.init(jax.random.key(2))
    a, _ = loop.collect_and_train(a, 20, seed=5)
    a, _ = loop.collect_and_train(a, 20, seed=5)
    loop.close()
    # the same run stopped after the first chunk, checkpointed, restored in a fresh loop
    first = GymLoop(cfg, env_id, **kw)
    b = first.init(jax.random.key(2))
    b, _ = first.collect_and_train(b, 20, seed=5)
    first.close()
    ckpt = Checkpointer(tmp_path / "ck", save_every=1)
    ckpt.save(1, b)
    fresh = GymLoop(cfg, env_id, **kw)
    b, step = ckpt.restore_or(fresh.init(jax.random.key(99)))
    assert step == 1
    b, _ = fresh.collect_and_train(b, 20, seed=5)
    fresh.close()
    ckpt.close()
    _leaves_equal(a, b)


def test_bad_envs_and_bad_calls():
    with pytest.raises(ValueError, match="env_id 'NoSuchEnv-v9' is not a registered Gymnasium"):
        GymLoop(SMALL, "NoSuchEnv-v9", buffer_size=100, learning_starts=10)
    with pytest.raises(TypeError, match=r"CartPole-v1 has action space Discrete\(2\); these"):
        GymLoop(SMALL, "CartPole-v1", buffer_size=100, learning_starts=10)
    with pytest.raises(ValueError, match=r"learning_starts \(4\) must be >= batch_size \(8\)"):
        GymLoop(SMALL, "Pendulum-v1", buffer_size=100, learning_starts=4)
    with pytest.raises(ValueError, match="GymLoop: num_envs must be a positive int, got 0"):
        GymLoop(SMALL, "Pendulum-v1", num_envs=0, buffer_size=100, learning_starts=10)
    with pytest.raises(ValueError, match="GymLoop: max_episode_steps must be a positive int"):
        GymLoop(SMALL, "Pendulum-v1", buffer_size=100, learning_starts=10, max_episode_steps=0)
    with pytest.raises(ValueError, match="unknown key"):
        GymLoop({"algo": "sac", "lr": 1.0}, "Pendulum-v1", buffer_size=100, learning_starts=10)
    loop = GymLoop(AgentConfig(algo="dsac_t", hidden=(8,), batch_size=8), "Pendulum-v1",
                   buffer_size=100, learning_starts=10)
    with pytest.raises(TypeError, match="GymLoop.init: key must be a jax.random.key"):
        loop.init(0)
    state = loop.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"num_vector_steps must be a positive multiple of 2"):
        loop.collect_and_train(state, 3)
    with pytest.raises(ValueError, match="GymLoop.evaluate: episodes must be a positive int"):
        loop.evaluate(state, 0, seed=0)


def test_non_finite_reward_stops_with_message():
    loop = GymLoop(SMALL, "tecrl_test/NaNPendulum-v0", buffer_size=100, learning_starts=50)
    state = loop.init(jax.random.key(0))
    with pytest.raises(FloatingPointError, match="step: reward has non-finite values"):
        loop.collect_and_train(state, 10)
    loop.close()
