"""Tests of tiered configs, overrides and validation."""

from pathlib import Path

import pytest

from experiments.config import (
    ConfigError,
    ResumeError,
    apply_overrides,
    at_least,
    check,
    check_resume,
    comma_list,
    config_diff,
    config_spec,
    in_range,
    load_config,
    non_negative,
    one_of,
    parse_override,
    positive,
    tiered,
    tuple_of,
    validate_config,
)

TOY_CONFIG = Path(__file__).parent / "toy" / "config.py"
BASE = {"steps": 10, "lr": 0.1, "opt": "sgd", "model": {"width": 8}}
TIERS = {"quick": {}, "standard": {"steps": 100, "model.width": 32}, "full": {"steps": 1000}}


def test_tiers_apply_and_lock():
    c = tiered(BASE, TIERS, "standard")
    assert (c.steps, c.model.width, c.tier) == (100, 32, "standard")
    assert tiered(BASE, TIERS, None).tier == "quick"
    with pytest.raises(AttributeError):
        c.new_key = 1  # locked: no new keys


def test_unknown_variant_and_keys():
    with pytest.raises(ConfigError, match=r"variant must be one of \['full', 'quick', 'stand"):
        tiered(BASE, TIERS, "medium")
    with pytest.raises(ConfigError, match=r"unknown config key 'model.depth'.*config.model has "
                                          r"no field 'depth' \(it has: width\)"):
        tiered(BASE, {"quick": {"model.depth": 3}}, "quick")
    c = tiered(BASE, TIERS, "quick")
    with pytest.raises(ConfigError, match="unknown config key 'stpes'"):
        apply_overrides(c, {"stpes": 5})


def test_bad_value_type():
    c = tiered(BASE, TIERS, "quick")
    with pytest.raises(ConfigError, match="bad value for config key 'steps': 'ten'"):
        apply_overrides(c, {"steps": "ten"})


def test_check_rules():
    c = tiered(BASE, TIERS, "quick")
    check(c, {"steps": positive, "lr": in_range(0, 1), "opt": one_of("sgd", "adam")})
    apply_overrides(c, {"lr": 2.0})
    with pytest.raises(ConfigError, match=r"config.lr must be in \[0, 1\], got 2.0"):
        check(c, {"lr": in_range(0, 1)})
    with pytest.raises(ConfigError, match=r"config.opt must be one of \['adam'\], got 'sgd'"):
        check(c, {"opt": one_of("adam")})
    with pytest.raises(ConfigError, match="no key 'nope'"):
        check(c, {"nope": positive})


def test_load_config_file():
    c = load_config(TOY_CONFIG, "standard", {"learning_rate": 0.5})
    assert (c.steps, c.learning_rate) == (200, 0.5)
    with pytest.raises(FileNotFoundError, match="no config file"):
        load_config(TOY_CONFIG.with_name("missing.py"))


def test_rules_and_their_counterexamples():
    cases = [  # rule, good, current value of the field, expected problem
        (positive, 3, 4, "must be > 0"),
        (positive, 0.5, 1.0, "must be > 0"),
        (non_negative, 0, 2, "must be >= 0"),
        (at_least(100), 100, 500, "must be >= 100"),
        (in_range(0.0, 1.0, closed=False), 0.5, 0.9, "must be in (0.0, 1.0)"),
        (one_of("a", "b"), "a", "a", "must be one of ['a', 'b']"),
        (one_of(1, 2, 3), 2, 1, "must be one of [1, 2, 3]"),
        (comma_list("x", "y"), "x, y", "x", "must be a comma-separated list of ['x', 'y']"),
        (tuple_of(at_least(100)), (100, 200), (500,), "each >= 100"),
    ]
    for rule, good, current, problem in cases:
        assert rule(good) is None, (rule, good)
        bad = rule.counterexample(current)
        assert type(bad) is type(current), (rule, bad)  # settable on a locked config
        assert problem in rule(bad), (rule, bad)
    assert positive("text") == "must be > 0"  # a TypeError inside a rule is a failure
    assert in_range(0, 1)(float("nan")) == "must be in [0, 1]"
    assert tuple_of(positive)(()) is not None  # empty tuple fails min_len=1
    assert comma_list("x")(" , ") is not None


def test_parse_override_by_field_type():
    c = tiered({**BASE, "flag": False, "sizes": (1, 2)}, TIERS, "quick")
    assert parse_override(c, "steps", "12") == 12
    assert parse_override(c, "lr", "3e-4") == 3e-4
    assert parse_override(c, "flag", "True") is True and parse_override(c, "flag", "0") is False
    assert parse_override(c, "sizes", "(3, 4)") == (3, 4)
    assert parse_override(c, "opt", "adam") == "adam"
    with pytest.raises(ConfigError, match="config.steps expects an int, got 'ten'"):
        parse_override(c, "steps", "ten")
    with pytest.raises(ConfigError, match="config.lr expects a float, got 'fast'"):
        parse_override(c, "lr", "fast")
    with pytest.raises(ConfigError, match="config.flag expects a bool"):
        parse_override(c, "flag", "maybe")
    with pytest.raises(ConfigError, match="config.sizes expects a tuple literal"):
        parse_override(c, "sizes", "3")
    with pytest.raises(ConfigError, match="config.model is a section, not a value"):
        parse_override(c, "model", "1")
    with pytest.raises(ConfigError, match="unknown config key 'stpes'"):
        parse_override(c, "stpes", "1")


def test_config_file_hooks_validate_on_load():
    spec = config_spec(TOY_CONFIG)
    assert "steps" in spec.rules and spec.resume_allow == ("fail_at_step", "steps")
    with pytest.raises(ConfigError, match=r"config.steps must be > 0, got -3"):
        load_config(TOY_CONFIG, "quick", {"steps": -3})
    with pytest.raises(ConfigError, match=r"config.batch_size must be <= 256"):
        load_config(TOY_CONFIG, "quick", {"batch_size": 512})  # the file's validate()
    bad = load_config(TOY_CONFIG, "quick", {"steps": -3}, validate=False)
    with pytest.raises(ConfigError, match="config.steps must be > 0"):
        validate_config(bad, TOY_CONFIG)


def test_config_spec_rejects_malformed_hooks(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("RULES = {'steps': 3}\ndef get_config(v=None):\n    return None\n")
    with pytest.raises(TypeError, match="RULES must map dotted keys to rules"):
        config_spec(path)
    path2 = tmp_path / "cfg2.py"
    path2.write_text("RESUME_ALLOW = 'steps'\n")
    with pytest.raises(TypeError, match="RESUME_ALLOW must be a tuple"):
        config_spec(path2)
    with pytest.raises(FileNotFoundError, match="no config file"):
        config_spec(tmp_path / "missing.py")


def test_resume_check_lists_refused_keys():
    old = {"lr": 0.1, "steps": 10, "model": {"width": 8, "depth": 2}, "sizes": (1, 2)}
    same = {"lr": 0.1, "steps": 10, "model": {"width": 8, "depth": 2}, "sizes": [1, 2]}
    assert config_diff(old, same) == {}  # tuples and lists are the same JSON
    new = {"lr": 0.1, "steps": 20, "model": {"width": 16, "depth": 2}, "extra": 1}
    assert check_resume(old, {**old, "steps": 20}, ("steps",), where="run") == {
        "steps": [10, 20]}
    assert check_resume(old, {**old, "model": {"width": 9, "depth": 3}}, ("model.*",),
                        where="run") == {"model.depth": [2, 3], "model.width": [8, 9]}
    with pytest.raises(ResumeError) as e:
        check_resume(old, new, ("steps",), where="runs/x")
    assert str(e.value) == (
        "runs/x holds a run with a different config: extra <absent> -> 1; model.width 8 -> 16; "
        "sizes [1, 2] -> <absent> (only steps may change on resume); use a new --workdir")
