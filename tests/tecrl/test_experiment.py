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
    bad = load_config(CFG, "quick", {**TINY, "eval_every": 15})
    with pytest.raises(ConfigError, match="must be a multiple of config.eval_every"):
        train.run(bad, tmp_path / "c")
    with pytest.raises(ConfigError, match="config variant must be one of"):
        load_config(CFG, "pendulum_huge")
