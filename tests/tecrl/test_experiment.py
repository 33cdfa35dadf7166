"""The experiment: resumed runs are bit-identical to uninterrupted ones (JAX Pendulum and the
Gymnasium path), bad configs, and the claims' verdicts on hand-made result tables."""

import jax
import numpy as np
import pytest

from experiments.config import ConfigError, load_config
from experiments.tecrl import claims, probes, train

CFG = "experiments/tecrl/configs/dsac_e.py"
TINY = {"num_seeds": 2, "total_steps": 64 + 3 * 16, "learning_starts": 64, "eval_every": 16,
        "buffer_size": 200, "eval_episodes": 1, "probe_size": 16, "qe_mc.num_states": 0,
        "agent.hidden": (8,), "agent.batch_size": 16}


def _assert_same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_is_bit_identical(tmp_path):
    cfg = load_config(CFG, "quick", TINY)
    res_a, state_a = train.run(cfg, tmp_path / "a", return_state=True)
    crash = load_config(CFG, "quick", {**TINY, "fail_at_chunk": 2})
    with pytest.raises(train.Crash):
        train.run(crash, tmp_path / "b")
    res_b, state_b = train.run(cfg, tmp_path / "b", return_state=True)
    _assert_same(state_a, state_b)
    assert res_a["final_eval_return_per_seed"] == res_b["final_eval_return_per_seed"]
    assert int(state_b["run"].env_steps[0]) == TINY["total_steps"]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # truncated on resume, no duplicated chunks
    for f in ("results.json", "learning_curves.png", "report.md"):
        assert (tmp_path / "b" / f).exists()


def test_gym_run_resumes_bit_identically_across_episode_ends(tmp_path):
    over = {"env": "Pendulum-v1", "num_seeds": 1, "total_steps": 48, "learning_starts": 16,
            "eval_every": 16, "eval_episodes": 1, "buffer_size": 100, "probe_size": 8,
            "max_episode_steps": 10, "agent.hidden": (8,), "agent.batch_size": 8}
    cfg = load_config("experiments/tecrl/configs/sac.py", "quick", over)
    res_a, state_a = train.run(cfg, tmp_path / "a", return_state=True)
    with pytest.raises(train.Crash):
        train.run(load_config("experiments/tecrl/configs/sac.py", "quick",
                              {**over, "fail_at_chunk": 2}), tmp_path / "b")
    res_b, state_b = train.run(cfg, tmp_path / "b", return_state=True)
    _assert_same(state_a, state_b)
    # UTD 1 from the 16th transition on; every env step stored (episodes of 10 steps)
    assert int(state_b.env_steps) == 48 and int(state_b.buffer.size) == 48
    assert int(state_b.agent.critic_steps) == 48 - 15
    assert res_a["eval_returns"] == res_b["eval_returns"]
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 3
    with pytest.raises(ConfigError, match="num_seeds must be 1 for Gymnasium"):
        train.run(load_config("experiments/tecrl/configs/sac.py", "quick",
                              {**over, "num_seeds": 2}), tmp_path / "x")


def test_bad_configs(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'agent.lr'"):
        load_config(CFG, "quick", {"agent.lr": 1.0})
    bad = load_config(CFG, "quick", {**TINY, "eval_every": 15}, validate=False)
    with pytest.raises(ConfigError, match="must be a multiple of config.eval_every"):
        train.run(bad, tmp_path / "c")
    assert not (tmp_path / "c").exists()  # nothing written for a bad config
    with pytest.raises(ConfigError, match=r"config.agent: AgentConfig: critic_form must be one"):
        train.run(load_config(CFG, "quick", {**TINY, "agent.critic_form": "mse"}), tmp_path / "d")
    with pytest.raises(ConfigError, match="config variant must be one of"):
        load_config(CFG, "pendulum_huge")
    with pytest.raises(ConfigError, match=r"config.env: an MJX env must be one of "
                                          r"\['mjx/HalfCheetah-v5', 'mjx/Hopper-v5'\], got "
                                          r"'mjx/Ant-v5'"):
        load_config(CFG, "halfcheetah_mjx_full", {"env": "mjx/Ant-v5"})
    mjx = load_config(CFG, "hopper_mjx_full")  # on-device MuJoCo: seeds vmapped, 1M steps
    assert (mjx.env, mjx.num_seeds, mjx.total_steps) == ("mjx/Hopper-v5", 4, 1_000_000)


def test_t_interval_against_the_t_table():
    m, lo, hi = claims.t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t_{0.975, 2} = 4.3027 (table): half-width 4.3027 / sqrt(3) = 2.4842
    assert m == pytest.approx(2.0) and lo == pytest.approx(2 - 2.4842, abs=1e-3)
    assert hi == pytest.approx(2 + 2.4842, abs=1e-3)
    with pytest.raises(ValueError, match="t_interval: need at least 2 values, got 1"):
        claims.t_interval([1.0])


def test_claim3_verdict_on_hand_made_tables():
    base = {"sac": [0.02] * 4, "sac_delay2": [0.015, 0.016, 0.014, 0.015]}
    # DSAC-E drifts ~10% less than the control on every seed: held
    held = claims.judge_drift({**base, "dsac_t": [0.010, 0.012, 0.011, 0.013],
                               "dsac_e": [0.009, 0.0108, 0.0099, 0.0117]})
    assert held.held is True
    assert held.numbers["ratio_dsac_e_over_dsac_t"] == pytest.approx(0.9, rel=1e-3)
    assert held.numbers["log_ratio_dsac_e_over_dsac_t_ci95"][1] < 0
    # less drift than SAC at delay 1 but not than the control: not held
    mixed = claims.judge_drift({**base, "dsac_t": [0.010, 0.012, 0.011, 0.013],
                                "dsac_e": [0.009, 0.013, 0.010, 0.014]})
    assert mixed.held is False and mixed.numbers["ratio_dsac_e_over_sac"] < 1


def test_claim4_verdict_on_hand_made_tables():
    finals = {"halfcheetah": {"sac": [1000, 1100, 1200], "dsac_t": [0, 0, 0],
                              "dsac_e": [1500, 1650, 1700]},
              "hopper": {"sac": [300, 350, 400], "dsac_t": [0, 0, 0],
                         "dsac_e": [420, 460, 530]}}
    r = claims.judge_mujoco(finals, {"hopper": [[2.7, 0.5, 0.9], [2.7, 0.3, 0.2]]})
    assert r.held is True and r.numbers["halfcheetah_dsac_e_minus_sac"] == pytest.approx(516.67,
                                                                                          abs=0.01)
    assert r.numbers["hopper_dsac_e_budget_binds_seeds"] == 1  # alpha rose again on seed 0
    finals["hopper"]["dsac_e"] = [100, 150, 120]  # clearly below SAC on one task
    assert claims.judge_mujoco(finals).held is False
    finals["hopper"]["dsac_e"] = [200, 450, 500]  # interval straddles 0
    assert claims.judge_mujoco(finals).held is None


@pytest.mark.slow  # keeps the default suite short
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
    _, mc = probes.qe_vs_monte_carlo(tr, ag, buf, jax.random.key(1), num_states=4,
                                     num_rollouts=128, horizon=20)
    u = np.random.default_rng(0).normal(0.0, 0.5, 1_000_000)
    log_pi = (-0.5 * (u / 0.5) ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi)
              - np.log(1 - np.tanh(u) ** 2))
    expect = -log_pi.mean() * sum(0.9**t for t in range(1, 21))
    np.testing.assert_allclose(np.mean(mc), expect, atol=0.15)
    np.testing.assert_allclose(np.asarray(mc), expect, atol=0.35)
