"""Config helpers: tiered ``ml_collections`` configs, programmatic loading, validation.

Every experiment config module defines ``get_config(variant)`` returning a *locked*
``ConfigDict`` built with :func:`tiered`: one base dict plus per-tier overrides for
``quick`` (minutes on 2 CPU cores), ``standard`` (the scale at which a claim is judged, at
most an hour on CPU) and ``full`` (the paper's scale, for a GPU). Command-line scripts
load them with ``config_flags.DEFINE_config_file(..., lock_config=True)`` (see
:mod:`experiments.launch`); ``reproduce`` and tests use :func:`load_config`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

__all__ = [
    "TIERS",
    "ConfigError",
    "apply_overrides",
    "check",
    "in_range",
    "load_config",
    "one_of",
    "positive",
    "non_negative",
    "resolve_key",
    "tiered",
]

TIERS = ("quick", "standard", "full")


class ConfigError(ValueError):
    """A config key is unknown or a value is invalid; the message names which."""


def resolve_key(config: ml_collections.ConfigDict, dotted: str) -> tuple[Any, str]:
    """Returns ``(parent node, leaf name)`` of a dotted key.

    Raises:
      ConfigError: if the key does not exist, listing the fields that do.
    """
    node = config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        keys = sorted(node.keys()) if hasattr(node, "keys") else []
        if part not in keys:
            where = "config" + "".join(f".{p}" for p in parts[:i])
            raise ConfigError(
                f"unknown config key {dotted!r}: {where} has no field {part!r} "
                f"(it has: {', '.join(keys) or 'no fields'})"
            )
        if i < len(parts) - 1:
            node = node[part]
    return node, parts[-1]


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Sets dotted keys (``"model.width": 64``) on a (possibly locked) config in place.

    Raises:
      ConfigError: for a key the config does not have (listing the keys it has) or a value
        whose type does not match the existing one.
    """
    for dotted, value in overrides.items():
        node, leaf = resolve_key(config, dotted)
        try:
            node[leaf] = value
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"bad value for config key {dotted!r}: {value!r} ({e})") from e


def tiered(
    base: Mapping[str, Any],
    tiers: Mapping[str, Mapping[str, Any]],
    variant: str | None,
) -> ml_collections.ConfigDict:
    """Builds the locked config of one tier.

    Args:
      base: every key the experiment has, with defaults (nested dicts allowed).
      tiers: for each of ``quick``/``standard``/``full``, dotted-key overrides of ``base``.
      variant: the tier, as given after ``:`` in ``--config=path.py:variant``; ``None`` or
        ``""`` means ``quick``.

    Returns:
      A locked ``ConfigDict`` with an extra ``tier`` field.

    Raises:
      ConfigError: if ``variant`` is not a tier, or a tier overrides a key not in ``base``.
    """
    variant = variant or "quick"
    if variant not in tiers:
        raise ConfigError(f"config variant must be one of {sorted(tiers)}, got {variant!r}")
    config = ml_collections.ConfigDict(dict(base))
    if "tier" not in config:
        config.tier = variant
    apply_overrides(config, {"tier": variant, **tiers[variant]})
    config.lock()
    return config


def load_config(
    path: str | os.PathLike,
    variant: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ml_collections.ConfigDict:
    """Loads ``get_config(variant)`` from a config file, then applies ``overrides``.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ConfigError: for a bad variant, an unknown key or a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_config: no config file at {path}")
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"load_config: {path} defines no get_config()")
    config = module.get_config(variant)
    apply_overrides(config, overrides or {})
    return config


# -- validation -------------------------------------------------------------------------

Rule = Callable[[Any], str | None]


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def in_range(lo: float, hi: float, *, closed: bool = True) -> Rule:
    def rule(value: Any) -> str | None:
        ok = lo <= value <= hi if closed else lo < value < hi
        bounds = f"[{lo}, {hi}]" if closed else f"({lo}, {hi})"
        return None if ok else f"must be in {bounds}"

    return rule


def one_of(*choices: Any) -> Rule:
    def rule(value: Any) -> str | None:
        return None if value in choices else f"must be one of {list(choices)}"

    return rule


def check(config: ml_collections.ConfigDict, rules: Mapping[str, Rule]) -> None:
    """Validates config values; raises ``ConfigError`` naming the key, the rule and the value.

    Example: ``check(config, {"lr": positive, "optimizer": one_of("muon", "adamw")})``.
    """
    for dotted, rule in rules.items():
        node = config
        for part in dotted.split("."):
            if part not in node:
                raise ConfigError(f"config has no key {dotted!r} to validate")
            node = node[part]
        problem = rule(node)
        if problem:
            raise ConfigError(f"config.{dotted} {problem}, got {node!r}")
