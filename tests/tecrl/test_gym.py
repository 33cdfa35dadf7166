"""The Gymnasium loop: bad environments, non-finite data, a short resumable run."""

import gymnasium as gym
import jax
import numpy as np
import pytest

from experiments.config import ConfigError, load_config
from experiments.tecrl import train
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


def test_bad_envs():
    with pytest.raises(ValueError, match="env_id 'NoSuchEnv-v9' is not a registered Gymnasium"):
        GymLoop(SMALL, "NoSuchEnv-v9", buffer_size=100, learning_starts=10)
    with pytest.raises(TypeError, match=r"CartPole-v1 has action space Discrete\(2\); these"):
        GymLoop(SMALL, "CartPole-v1", buffer_size=100, learning_starts=10)
    with pytest.raises(ValueError, match=r"learning_starts \(4\) must be >= batch_size \(8\)"):
        GymLoop(SMALL, "Pendulum-v1", buffer_size=100, learning_starts=4)
    loop = GymLoop(SMALL, "Pendulum-v1", buffer_size=100, learning_starts=10)
    with pytest.raises(TypeError, match="GymLoop.init: key must be a jax.random.key"):
        loop.init(0)
    with pytest.raises(ValueError, match="GymLoop: num_envs must be a positive int, got 0"):
        GymLoop(SMALL, "Pendulum-v1", num_envs=0, buffer_size=100, learning_starts=10)
    with pytest.raises(ValueError, match="unknown key"):
        GymLoop({"algo": "sac", "lr": 1.0}, "Pendulum-v1", buffer_size=100, learning_starts=10)


def test_non_finite_reward_stops_with_message():
    loop = GymLoop(SMALL, "tecrl_test/NaNPendulum-v0", buffer_size=100, learning_starts=50)
    state = loop.init(jax.random.key(0))
    with pytest.raises(FloatingPointError, match="step: reward has non-finite values"):
        loop.collect_and_train(state, 10)
    loop.close()


def test_gym_run_learns_steps_and_resumes(tmp_path):
    over = {"env": "Pendulum-v1", "num_seeds": 1, "total_steps": 48, "learning_starts": 16,
            "eval_every": 16, "eval_episodes": 1, "buffer_size": 100, "probe_size": 8,
            "agent.hidden": (8,), "agent.batch_size": 8}
    cfg = load_config("experiments/tecrl/configs/sac.py", "quick", over)
    with pytest.raises(train.Crash):
        train.run(load_config("experiments/tecrl/configs/sac.py", "quick",
                              {**over, "fail_at_chunk": 2}), tmp_path)
    res, state = train.run(cfg, tmp_path, return_state=True)
    # UTD 1 from the step that brings the buffer to learning_starts (the 16th) on: 48 - 15
    assert int(state.env_steps) == 48 and int(state.agent.critic_steps) == 48 - 15
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3
    assert np.isfinite(res["final_eval_return_mean"])
    with pytest.raises(ConfigError, match="num_seeds must be 1 for Gymnasium"):
        train.run(load_config("experiments/tecrl/configs/sac.py", "quick",
                              {**over, "num_seeds": 2}), tmp_path / "x")
