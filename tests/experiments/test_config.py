"""Tests of tiered configs, overrides and validation."""

from pathlib import Path

import pytest

from experiments.config import (
    ConfigError,
    apply_overrides,
    check,
    in_range,
    load_config,
    one_of,
    positive,
    tiered,
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
