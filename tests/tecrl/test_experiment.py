"""The experiment: a resumed run is bit-identical to an uninterrupted one; bad configs."""

import jax
import numpy as np
import pytest

from experiments.config import ConfigError, load_config
from experiments.tecrl import train

CFG = "experiments/tecrl/configs/dsac_e.py"
TINY = {"num_seeds": 2, "total_steps": 64 + 3 * 16, "learning_starts": 64, "eval_every": 16,
        "buffer_size": 200, "eval_episodes": 1, "probe_size": 16, "qe_mc.num_states": 0,
        "agent.hidden": (8,), "agent.batch_size": 16}


def test_resume_is_bit_identical(tmp_path):
    cfg = load_config(CFG, "quick", TINY)
    res_a, state_a = train.run(cfg, tmp_path / "a", return_state=True)
    crash = load_config(CFG, "quick", {**TINY, "fail_at_chunk": 2})
    with pytest.raises(train.Crash):
        train.run(crash, tmp_path / "b")
    res_b, state_b = train.run(cfg, tmp_path / "b", return_state=True)
    la, lb = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert res_a["final_eval_return_per_seed"] == res_b["final_eval_return_per_seed"]
    assert int(state_b["run"].env_steps[0]) == TINY["total_steps"]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # truncated on resume, no duplicated chunks
    for f in ("results.json", "learning_curves.png", "report.md"):
        assert (tmp_path / "b" / f).exists()


def test_bad_configs(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'agent.lr'"):
        load_config(CFG, "quick", {"agent.lr": 1.0})
    bad = load_config(CFG, "quick", {**TINY, "eval_every": 15}, validate=False)
    with pytest.raises(ConfigError, match="must be a multiple of config.eval_every"):
        train.run(bad, tmp_path / "c")
    with pytest.raises(ConfigError, match="config variant must be one of"):
        load_config(CFG, "pendulum_huge")


@pytest.mark.slow  # keeps the default suite under 5 min on 2 cores
def test_monte_carlo_entropy_of_a_state_independent_policy():
    """With a constant policy N(0, 0.5^2) squashed by tanh, E[-log pi] is the constant H of that
    law (computed here by numpy sampling), so the MC target is H * sum_{t=1}^{T} gamma^t."""
    import jax.numpy as jnp
    from flax import nnx

    from tecrl import AgentConfig, make_train

    tr = make_train(AgentConfig(algo="dsac_e", hidden=(4,), batch_size=8, gamma=0.9),
                    buffer_size=32, learning_starts=8)
    rs = tr.warmup(tr.init(jax.random.split(jax.random.key(0), 1)))
    ag = jax.tree.map(lambda x: x[0], rs.agent)
    pure = jax.tree.map(jnp.zeros_like, nnx.to_pure_dict(ag.policy))
    pure["net"]["out"]["bias"] = jnp.array([0.0, np.log(0.5)], jnp.float32)
    policy = jax.tree.map(lambda x: x, ag.policy)
    nnx.replace_by_pure_dict(policy, pure)
    ag = ag._replace(policy=policy)
    buf = jax.tree.map(lambda x: x[0], rs.buffer)
    _, mc = train.qe_vs_monte_carlo(tr, ag, buf, jax.random.key(1), num_states=4,
                                    num_rollouts=128, horizon=20)
    u = np.random.default_rng(0).normal(0.0, 0.5, 1_000_000)
    log_pi = (-0.5 * (u / 0.5) ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi)
              - np.log(1 - np.tanh(u) ** 2))
    h = -log_pi.mean()
    expect = h * sum(0.9**t for t in range(1, 21))
    # per-rollout sd ~0.87, so the 4-state mean has sd ~0.04; starting the sum at t = 0
    # instead of t = 1 would be off by 0.44
    np.testing.assert_allclose(np.mean(mc), expect, atol=0.15)
    np.testing.assert_allclose(np.asarray(mc), expect, atol=0.35)
