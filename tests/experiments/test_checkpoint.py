"""Tests of checkpointing and resume (state restored exactly, step count continued)."""

import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from experiments import launch
from experiments.checkpoint import Checkpointer
from experiments.config import ConfigError, load_config
from experiments.workdir import Workdir
from tests.experiments.toy import train

TOY_CONFIG = Path(__file__).parent / "toy" / "config.py"
ROOT = Path(__file__).resolve().parents[2]


def _state():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3, jnp.bfloat16)}
    opt = optax.adamw(1e-3)
    opt_state = opt.init(params)
    _, opt_state = opt.update(jax.tree.map(jnp.ones_like, params), opt_state, params)
    return {"params": params, "opt": opt_state, "key": jax.random.key(3), "epoch": 2}


def test_save_restore_roundtrip_exact(tmp_path):
    state = _state()
    with Checkpointer(tmp_path / "ckpt", save_every=5) as ckpt:
        assert not ckpt.maybe_save(3, state)
        assert ckpt.maybe_save(5, state)
        assert ckpt.latest_step == 5
    # A new manager (as after a restart) restores into a freshly built template.
    template = jax.tree.map(lambda x: x, _state())
    template["epoch"] = 0
    template["key"] = jax.random.key(0)
    restored, step = Checkpointer(tmp_path / "ckpt", save_every=5).restore_or(template)
    assert step == 5
    assert restored["epoch"] == 2
    assert type(restored["opt"]) is type(state["opt"])
    chex.assert_trees_all_equal(restored["params"], state["params"])
    chex.assert_trees_all_equal(restored["opt"], state["opt"])
    assert restored["params"]["b"].dtype == jnp.bfloat16
    assert jnp.array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
    # The restored key draws the same numbers as the original.
    assert jnp.array_equal(jax.random.normal(restored["key"], (4,)),
                           jax.random.normal(state["key"], (4,)))


def test_restore_or_without_checkpoint_returns_init(tmp_path):
    init = {"a": jnp.zeros(2)}
    state, step = Checkpointer(tmp_path / "none", save_every=1).restore_or(init)
    assert step == 0 and state is init
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Checkpointer(tmp_path / "none2", save_every=1).restore(init)


def test_checkpoints_remember_their_config(tmp_path):
    from experiments.config import ResumeError

    config = {"lr": 0.1, "steps": 10, "fail_at": 3}
    with Checkpointer(tmp_path / "c", save_every=1, config=config,
                      resume_allow=("steps", "fail_at")) as ckpt:
        ckpt.save(1, {"w": jnp.ones(3)})
    stored = (tmp_path / "c" / "run_config.json").read_text()
    # allowed differences continue; the stored config stays the original one
    again = Checkpointer(tmp_path / "c", save_every=1, config={**config, "steps": 20,
                                                               "fail_at": -1},
                         resume_allow=("steps", "fail_at"))
    assert again.resume_changes == {"steps": [10, 20], "fail_at": [3, -1]}
    again.close()
    assert (tmp_path / "c" / "run_config.json").read_text() == stored
    with pytest.raises(ResumeError, match=r"\(checkpoints\) holds a run with a different "
                                          r"config: lr 0.1 -> 0.5 \(only steps, fail_at may"):
        Checkpointer(tmp_path / "c", save_every=1, config={**config, "lr": 0.5},
                     resume_allow=("steps", "fail_at"))
    # without checkpoints there is nothing to protect: a new config is simply recorded
    Checkpointer(tmp_path / "empty", save_every=1, config=config).close()
    Checkpointer(tmp_path / "empty", save_every=1, config={**config, "lr": 0.5}).close()
    assert '"lr": 0.5' in (tmp_path / "empty" / "run_config.json").read_text()


def test_mismatched_state_is_one_clear_line(tmp_path):
    with Checkpointer(tmp_path / "c", save_every=1) as ckpt:
        ckpt.save(2, {"params": {"w": jnp.ones((2, 64, 32)), "b": jnp.ones(3)}, "step": 1})
    ckpt = Checkpointer(tmp_path / "c", save_every=1)
    with pytest.raises(ValueError, match=r"checkpoint 2 in .* does not fit the state being "
                                         r"restored: params.w has shape \(2, 32, 16\) in the "
                                         r"state but \(2, 64, 32\) in the checkpoint") as e:
        ckpt.restore({"params": {"w": jnp.ones((2, 32, 16)), "b": jnp.ones(3)}, "step": 0})
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"params.extra is in the state but not in the "
                                         r"checkpoint"):
        ckpt.restore({"params": {"w": jnp.ones((2, 64, 32)), "b": jnp.ones(3),
                                 "extra": jnp.ones(1)}, "step": 0})
    ckpt.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="save_every must be a positive"):
        Checkpointer("/tmp/x_never", save_every=0)
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer("/tmp/x_never", save_every=1, max_to_keep=0)


def test_resume_continues_and_matches_uninterrupted_run(tmp_path):
    uninterrupted, start = train.run(load_config(TOY_CONFIG, "quick"), tmp_path / "a")
    assert start == 0

    crashing = load_config(TOY_CONFIG, "quick", {"fail_at_step": 25})
    with pytest.raises(train.Crash):
        train.run(crashing, tmp_path / "b")
    # Steps 21..25 were logged after the last checkpoint (step 20).
    assert [r["step"] for r in Workdir(tmp_path / "b").read_metrics()][-1] == 25
    resumed, start = train.run(load_config(TOY_CONFIG, "quick"), tmp_path / "b")
    assert start == 20  # continued from the last checkpoint, not from 0
    chex.assert_trees_all_equal(resumed["params"], uninterrupted["params"])
    chex.assert_trees_all_equal(resumed["opt_state"], uninterrupted["opt_state"])
    steps = [r["step"] for r in Workdir(tmp_path / "b").read_metrics()]
    assert steps == list(range(1, 41))  # no duplicated lines from the crashed attempt
    a = Workdir(tmp_path / "a").read_metrics()
    b = Workdir(tmp_path / "b").read_metrics()
    assert a == b


def test_command_line_run_and_bad_key(tmp_path):
    cmd = [sys.executable, "-m", "tests.experiments.toy.main",
           f"--config={TOY_CONFIG}:quick", f"--workdir={tmp_path / 'cli'}", "--config.steps=12"]
    ok = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert '"steps": 12' in (tmp_path / "cli" / "config.json").read_text()
    assert "toy: 12/12 (100.0%)" in ok.stderr
    assert (tmp_path / "cli" / "results.json").exists()

    bad = subprocess.run(cmd[:-1] + ["--config.stepz=12"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0
    assert "unknown config key 'stepz'" in bad.stderr and "steps" in bad.stderr

    bad_type = subprocess.run(cmd[:-1] + ["--config.steps=many"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    assert bad_type.returncode != 0
    assert bad_type.stderr.strip().splitlines() == [
        "python -m tests.experiments.toy.main: --config: config.steps expects an int, got 'many'"]

    # A restart with a changed key is refused in one line and leaves the run untouched;
    # an allowed change (steps) continues it and is logged in resumes.jsonl.
    def snapshot():
        return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                      for p in (tmp_path / "cli").rglob("*"))

    before = snapshot()
    changed = subprocess.run(cmd + ["--config.learning_rate=0.5"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines() == [
        f"python -m tests.experiments.toy.main: {tmp_path / 'cli'} holds a run with a "
        "different config: learning_rate 0.1 -> 0.5 (only fail_at_step, steps may change on "
        "resume); use a new --workdir"]
    assert snapshot() == before
    longer = subprocess.run(cmd + ["--config.steps=14"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert longer.returncode == 0, longer.stderr
    assert "toy: 14/14 (100.0%)" in longer.stderr
    assert '"steps": 12' in (tmp_path / "cli" / "config.json").read_text()
    assert Workdir(tmp_path / "cli").read_resumes()[-1]["changes"] == {"steps": [12, 14]}

    # Bad values and variants are caught before absl parses anything (checked in-process).
    assert launch.precheck_config_args(["main", f"--config={TOY_CONFIG}:quick",
                                        "--config.model.dim=3"]) is None
    assert "'huge'" in launch.precheck_config_args(["main", f"--config={TOY_CONFIG}:huge"])
    assert "no field 'depth'" in launch.precheck_config_args(
        ["main", f"--config={TOY_CONFIG}", "--config.model.depth=3"])
    with pytest.raises(ConfigError, match="config.steps must be > 0, got -3"):
        train.run(load_config(TOY_CONFIG, "quick", {"steps": -3}), tmp_path / "neg")
