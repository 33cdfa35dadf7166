"""Config helpers: tiered ``ml_collections`` configs, validation rules, loading, resume checks.

Every experiment config module defines ``get_config(variant)`` returning a *locked*
``ConfigDict`` built with :func:`tiered`: one base dict plus per-tier overrides for
``quick`` (minutes on 2 CPU cores), ``standard`` (the scale at which a claim is judged, at
most an hour on CPU) and ``full`` (the paper's scale, for a GPU).

Beside ``get_config`` a config module declares how its values are checked, so that every
way of loading it (the command line through :mod:`experiments.launch`, :func:`load_config`
in claims and tests) rejects a bad value *before* anything is written:

- ``RULES``: a dict from dotted key to a :class:`Rule` (:data:`positive`,
  :func:`in_range`, :func:`one_of`, ...), checked in order;
- ``validate(config)`` (optional): checks that involve several keys; raises
  :class:`ConfigError`;
- ``RESUME_ALLOW`` (optional): dotted keys (``fnmatch`` patterns such as ``"qe_mc.*"``)
  that may differ when a run is resumed in its old workdir, e.g. the total step count or a
  logging interval. Any other difference is refused (see :func:`check_resume`).

Example (``experiments/<pkg>/configs/default.py``)::

    RULES = {"steps": positive, "learning_rate": positive, "optimizer": one_of("adamw", "sgd")}
    RESUME_ALLOW = ("steps", "eval_every")

    def validate(config):
        if config.seq_len > config.model.max_seq_len:
            raise ConfigError(f"config.seq_len must be <= config.model.max_seq_len "
                              f"({config.model.max_seq_len}), got {config.seq_len}")
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib.util
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_collections

__all__ = [
    "TIERS",
    "ConfigError",
    "ConfigSpec",
    "ResumeError",
    "Rule",
    "apply_overrides",
    "at_least",
    "check",
    "check_resume",
    "comma_list",
    "config_diff",
    "config_spec",
    "flatten",
    "in_range",
    "load_config",
    "non_negative",
    "one_of",
    "parse_override",
    "positive",
    "resolve_key",
    "tiered",
    "tuple_of",
    "validate_config",
]

TIERS = ("quick", "standard", "full")


class ConfigError(ValueError):
    """A config key is unknown or a value is invalid; the message names which."""


class ResumeError(ConfigError):
    """A run was restarted in a workdir that holds a run of a different config."""


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


def parse_override(config: ml_collections.ConfigDict, dotted: str, text: str) -> Any:
    """Parses a command-line override ``--config.<dotted>=<text>`` by the field's type.

    Mirrors what ``ml_collections.config_flags`` accepts (ints, floats, bools, strings,
    tuples/lists as Python literals), so that a value of the wrong type gets a one-line
    error naming the key, the expected type and the given text.

    Raises:
      ConfigError: for an unknown key or a value that does not parse as the field's type.
    """
    node, leaf = resolve_key(config, dotted)
    current = node[leaf]

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"config.{dotted} expects {expected}, got {text!r}")

    if isinstance(current, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise bad("a bool (true or false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise bad("an int") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise bad("a float") from None
    if isinstance(current, str):
        return text
    if isinstance(current, tuple | list):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise bad(f"a {type(current).__name__} literal such as (1, 2)") from None
        if not isinstance(value, tuple | list):
            raise bad(f"a {type(current).__name__} literal such as (1, 2)")
        return type(current)(value)
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"config.{dotted} is a section, not a value; set one of its fields "
                          f"({', '.join(sorted(current.keys()))})")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


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


# -- validation rules ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """A check of one config value.

    ``rule(value)`` returns ``None`` when the value is fine, else ``"must be <expected>"``.
    Rules are plain data so that tests can enumerate a config's ``RULES`` and try a value
    each rule rejects (``rule.counterexample(current value)``).

    Attributes:
      expected: what a valid value is, in words (``"> 0"``, ``"in [0, 1]"``).
      test: ``test(value) -> bool``; a ``TypeError``/``ValueError`` inside counts as False.
      counterexample: ``counterexample(current) -> value`` the rule rejects, of the same
        type as ``current`` (``None`` if there is no generic one).
    """

    expected: str
    test: Callable[[Any], bool]
    counterexample: Callable[[Any], Any] | None = None

    def __call__(self, value: Any) -> str | None:
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):
            ok = False
        return None if ok else f"must be {self.expected}"


def _same_type(current: Any, value: float) -> Any:
    if isinstance(current, int) and not isinstance(current, bool):
        return int(math.floor(value))
    return float(value)


positive = Rule("> 0", lambda v: v > 0, lambda cur: _same_type(cur, -5))
non_negative = Rule(">= 0", lambda v: v >= 0, lambda cur: _same_type(cur, -1))


def at_least(lo: float) -> Rule:
    """``value >= lo``."""
    return Rule(f">= {lo}", lambda v: v >= lo, lambda cur: _same_type(cur, lo - 1))


def in_range(lo: float, hi: float, *, closed: bool = True) -> Rule:
    """``lo <= value <= hi`` (``closed``) or ``lo < value < hi``."""
    bounds = f"[{lo}, {hi}]" if closed else f"({lo}, {hi})"

    def test(v):
        return lo <= v <= hi if closed else lo < v < hi

    return Rule(f"in {bounds}", test, lambda cur: _same_type(cur, hi + 1))


def one_of(*choices: Any) -> Rule:
    """``value in choices``."""

    def counterexample(cur):
        if isinstance(cur, str):
            return "not_a_choice"
        if isinstance(cur, int) and all(isinstance(c, int) for c in choices):
            return max(choices) + 1
        return None

    return Rule(f"one of {list(choices)}", lambda v: v in choices, counterexample)


def comma_list(*choices: str) -> Rule:
    """A comma-separated string of one or more of ``choices`` (``"diabetes,wages"``)."""

    def test(v):
        items = [p.strip() for p in str(v).split(",") if p.strip()]
        return bool(items) and all(i in choices for i in items)

    return Rule(f"a comma-separated list of {sorted(choices)}", test,
                lambda cur: "not_a_choice")


def tuple_of(rule: Rule, *, min_len: int = 1) -> Rule:
    """A tuple/list of at least ``min_len`` items, each passing ``rule``."""

    def test(v):
        return isinstance(v, tuple | list) and len(v) >= min_len and all(
            rule(x) is None for x in v)

    def counterexample(cur):
        if not cur or rule.counterexample is None:
            return None
        bad = rule.counterexample(cur[0])
        return None if bad is None else type(cur)([bad])

    return Rule(f"a tuple of >= {min_len} items, each {rule.expected}", test, counterexample)


def check(config: ml_collections.ConfigDict, rules: Mapping[str, Callable]) -> None:
    """Validates config values; raises ``ConfigError`` naming the key, the rule and the value.

    Example: ``check(config, {"lr": positive, "optimizer": one_of("muon", "adamw")})``.
    A rule is a :class:`Rule` or any callable returning ``None`` or a problem string.
    """
    for dotted, rule in rules.items():
        node = config
        for part in dotted.split("."):
            if not hasattr(node, "keys") or part not in node:
                raise ConfigError(f"config has no key {dotted!r} to validate")
            node = node[part]
        problem = rule(node)
        if problem:
            raise ConfigError(f"config.{dotted} {problem}, got {node!r}")


# -- config modules and their hooks -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConfigSpec:
    """The checks a config module declares beside ``get_config`` (see the module docstring).

    Attributes:
      rules: ``RULES`` of the module (dotted key -> rule), possibly empty.
      validate: the module's ``validate(config)``, or ``None``.
      resume_allow: ``RESUME_ALLOW`` of the module: keys that may change on resume.
      source: where the spec came from (for messages).
    """

    rules: Mapping[str, Callable] = dataclasses.field(default_factory=dict)
    validate: Callable[[Any], None] | None = None
    resume_allow: tuple[str, ...] = ()
    source: str = "<none>"


_MODULES: dict[tuple[str, int], ModuleType] = {}


def _load_module(path: Path) -> ModuleType:
    """Executes a config file once per (path, modification time)."""
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _MODULES:
        spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[key] = module
    return _MODULES[key]


def config_spec(source: str | os.PathLike | ModuleType) -> ConfigSpec:
    """Reads ``RULES``, ``validate`` and ``RESUME_ALLOW`` from a config module or file.

    Raises:
      FileNotFoundError: if ``source`` is a path that does not exist.
      TypeError: if the hooks have the wrong type.
    """
    if isinstance(source, ModuleType):
        module = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config_spec: no config file at {path}")
        module = _load_module(path)
    name = getattr(module, "__file__", None) or module.__name__
    rules = getattr(module, "RULES", {}) or {}
    validate = getattr(module, "validate", None)
    allow = getattr(module, "RESUME_ALLOW", ()) or ()
    if not isinstance(rules, Mapping) or not all(callable(r) for r in rules.values()):
        raise TypeError(f"config_spec: {name}: RULES must map dotted keys to rules")
    if validate is not None and not callable(validate):
        raise TypeError(f"config_spec: {name}: validate must be a function of the config")
    if isinstance(allow, str) or not all(isinstance(a, str) for a in allow):
        raise TypeError(f"config_spec: {name}: RESUME_ALLOW must be a tuple of dotted keys")
    return ConfigSpec(dict(rules), validate, tuple(allow), str(name))


def validate_config(config: ml_collections.ConfigDict, spec: ConfigSpec | Any) -> None:
    """Checks ``config`` against a spec (or a config module / file): rules, then ``validate``.

    Raises:
      ConfigError: naming the first bad key, what was expected and what came.
    """
    if not isinstance(spec, ConfigSpec):
        spec = config_spec(spec)
    check(config, spec.rules)
    if spec.validate is not None:
        try:
            spec.validate(config)
        except ConfigError:
            raise
        except (ValueError, TypeError) as e:  # a plain ValueError from a validate hook
            raise ConfigError(str(e)) from e


def load_config(
    path: str | os.PathLike,
    variant: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    validate: bool = True,
) -> ml_collections.ConfigDict:
    """Loads ``get_config(variant)`` from a config file, applies ``overrides``, validates.

    Args:
      path: the config file.
      variant: its tier (``quick`` by default).
      overrides: dotted keys to set.
      validate: check the result against the file's ``RULES`` and ``validate`` (default);
        pass ``False`` only to build a deliberately bad config in a test.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ConfigError: for a bad variant, an unknown key or a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_config: no config file at {path}")
    module = _load_module(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"load_config: {path} defines no get_config()")
    config = module.get_config(variant)
    apply_overrides(config, overrides or {})
    if validate:
        validate_config(config, config_spec(module))
    return config


# -- resume: what may differ between a run and its restart --------------------------------

_ABSENT = "<absent>"


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a nested config/mapping, values made JSON-like (tuples -> lists)."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if hasattr(value, "to_dict") or isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = json.loads(json.dumps(value, default=str))
    return out


def config_diff(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every key that differs (or is missing)."""
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k, _ABSENT), b.get(k, _ABSENT))
            for k in sorted(set(a) | set(b)) if a.get(k, _ABSENT) != b.get(k, _ABSENT)}


def _allowed(key: str, allow: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in allow)


def _show(value: Any) -> str:
    text = value if value == _ABSENT else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_resume(old: Any, new: Any, allow: Iterable[str], *, where: str) -> dict:
    """Compares a run's stored config with the one it is being resumed with.

    Args:
      old: the config the run was started with (mapping or ``ConfigDict``).
      new: the config of the restart.
      allow: keys (``fnmatch`` patterns) allowed to differ.
      where: the run's location, for the message.

    Returns:
      The allowed differences, ``{key: [old, new]}`` (empty if the configs are equal).

    Raises:
      ResumeError: one line listing every differing key that is not allowed.
    """
    allow = tuple(allow)
    diff = config_diff(old, new)
    refused = {k: v for k, v in diff.items() if not _allowed(k, allow)}
    if refused:
        shown = [f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in list(refused.items())[:6]]
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        may = (f"only {', '.join(allow)} may change on resume" if allow
               else "this experiment allows no change on resume")
        raise ResumeError(
            f"{where} holds a run with a different config: {'; '.join(shown)}{more} "
            f"({may}); use a new --workdir")
    return {k: [a, b] for k, (a, b) in diff.items()}
