"""Every experiment main and config, found on disk: bad values fail in one line and write nothing.

The mains (``experiments/<pkg>/main.py``) and their config files
(``experiments/<pkg>/configs/*.py`` defining ``get_config``) are discovered, so a package
added later is covered as soon as it lands. For each config file: every tier it ships is
valid, it declares ``RULES``, every rule rejects a value it should (through the same parsing
and checks the command line uses), and a restart with a changed key outside ``RESUME_ALLOW``
is refused. For each main: a bad value on the real command line prints one line naming the
key and leaves the workdir uncreated.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import launch
from experiments.config import (
    TIERS,
    ConfigError,
    ResumeError,
    config_spec,
    flatten,
    load_config,
)
from experiments.workdir import Workdir

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
MAINS = sorted(EXPERIMENTS.glob("*/main.py"))
CONFIGS = sorted(
    p for p in EXPERIMENTS.glob("*/configs/*.py")
    if "def get_config" in p.read_text(encoding="utf-8")
)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _cli_text(value) -> str:
    return repr(value) if isinstance(value, tuple | list) else str(value)


def _bad_values(path: Path):
    """``[(key, bad value)]`` for each rule of the config that can produce one."""
    config = load_config(path, "quick")
    out = []
    for key, rule in config_spec(path).rules.items():
        current = flatten(config).get(key)
        make = getattr(rule, "counterexample", None)
        bad = make(current) if make is not None else None
        if bad is not None:
            out.append((key, bad))
    return out


def test_discovery_finds_the_landed_mains():
    names = {p.parent.name for p in MAINS}
    assert {"muon_ns", "lstdq", "cqc", "softstep", "tecrl", "llm_tools"} <= names
    for main in MAINS:
        assert any(c.parent.parent == main.parent for c in CONFIGS), f"{main} has no config"


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_config_declares_rules_and_every_tier_is_valid(path):
    spec = config_spec(path)
    assert spec.rules, (f"{_rel(path)} declares no RULES: list the checks of its values there "
                        "(see docs/experiments.md, 'Configs')")
    keys = set(flatten(load_config(path, "quick")))
    for key in list(spec.rules) + list(spec.resume_allow):
        assert any(k == key or k.startswith(key.rstrip("*")) for k in keys), (
            f"{_rel(path)}: {key!r} (in RULES or RESUME_ALLOW) is not a key of the config")
    for tier in TIERS:
        load_config(path, tier)  # raises ConfigError if a shipped tier breaks its own rules


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_every_rule_rejects_a_bad_value_from_the_command_line(path):
    bad_values = _bad_values(path)
    assert bad_values, f"{_rel(path)}: no rule could produce a bad value to test"
    for key, bad in bad_values:
        argv = ["main", f"--config={path}:quick", f"--config.{key}={_cli_text(bad)}"]
        with pytest.raises(ConfigError) as e:
            launch.check_config_args(argv)
        message = str(e.value)
        assert f"config.{key}" in message and "\n" not in message, message
        assert launch.precheck_config_args(argv).startswith("--config: ")
    # unknown key, wrong type and unknown variant, the same way
    first = next(iter(config_spec(path).rules))
    assert "unknown config key 'no_such_key'" in launch.precheck_config_args(
        ["main", f"--config={path}:quick", "--config.no_such_key=1"])
    current = flatten(load_config(path, "quick"))[first]
    if isinstance(current, int | float) and not isinstance(current, bool):
        problem = launch.precheck_config_args(
            ["main", f"--config={path}:quick", f"--config.{first}=not_a_number"])
        assert f"config.{first} expects" in problem and "'not_a_number'" in problem
    assert "variant must be one of" in launch.precheck_config_args(
        ["main", f"--config={path}:no_such_tier"])


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_restart_with_a_changed_key_is_refused_unless_allowed(path, tmp_path):
    spec = config_spec(path)
    config = load_config(path, "quick")
    wd = Workdir(tmp_path, is_writer=True)
    wd.write_config(config, resume_allow=spec.resume_allow)
    stored = (tmp_path / "config.json").read_text()
    changed = load_config(path, "quick")
    key = next((k for k, v in flatten(changed).items()
                if isinstance(v, int) and not isinstance(v, bool)
                and k not in spec.resume_allow and k in spec.rules), None)
    if key is None:
        pytest.skip(f"{_rel(path)} has no int key with a rule outside RESUME_ALLOW to change")
    node, leaf = changed, key.split(".")[-1]
    for part in key.split(".")[:-1]:
        node = node[part]
    node[leaf] = node[leaf] + 1
    with pytest.raises(ResumeError, match=rf"{key} \S+ -> \S+") as e:
        wd.write_config(changed, resume_allow=spec.resume_allow)
    assert "\n" not in str(e.value)
    assert (tmp_path / "config.json").read_text() == stored
    assert not (tmp_path / "resumes.jsonl").exists()
    wd.write_config(config, resume_allow=spec.resume_allow)  # the same config resumes
    assert json.loads((tmp_path / "resumes.jsonl").read_text())["changes"] == {}


@pytest.mark.parametrize("main", MAINS, ids=lambda p: p.parent.name)
def test_main_rejects_a_bad_value_in_one_line_and_writes_nothing(main, tmp_path):
    configs = [c for c in CONFIGS if c.parent.parent == main.parent]
    path = next((c for c in configs if c.name == "default.py"), configs[0])
    bad_values = _bad_values(path)
    assert bad_values, (f"{_rel(path)} declares no RULES that can produce a bad value (see "
                        "docs/experiments.md, 'Configs')")
    key, bad = bad_values[0]
    workdir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", f"experiments.{main.parent.name}.main",
         f"--config={_rel(path)}:quick", f"--workdir={workdir}",
         f"--config.{key}={_cli_text(bad)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == launch.EXIT_CONFIG_ERROR, out.stderr[-2000:]
    assert len(lines) == 1 and f"config.{key}" in lines[0] and "got" in lines[0], out.stderr
    assert not workdir.exists()
