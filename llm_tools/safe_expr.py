"""A restricted arithmetic-expression language: parse with an AST whitelist, evaluate in bounds.

GSM-Symbolic templates carry small Python-like expressions (``range(2, 100)``,
``divides(k*y, 12)``, ``int((k*y)/(x*12)*100)``), and AbstRaL's symbolic tool must read
expressions written by a model. Neither is ever handed to ``eval``, ``exec``, ``compile`` or
``sympy.sympify``: the text is parsed by :func:`ast.parse` (after a length and nesting pre-check)
and every node is checked against a whitelist before anything runs:

- literals: numbers, strings, ``True``/``False``/``None``, lists and tuples of those;
- names (looked up in an explicit environment), ``a[i]`` with an integer index;
- arithmetic ``+ - * / // % **`` and unary ``- + not``, comparisons (chains included),
  ``and``/``or``, ``x if c else y``;
- calls ``f(args)`` where ``f`` is a bare name in the caller's function whitelist and
  arguments are positional.

Attribute access, keyword arguments, starred arguments, lambdas, comprehensions, subscripts
with slices, f-strings, walrus and every other node are refused at parse time with
:class:`ExpressionError`. Evaluation is bounded: a power whose exponent exceeds
``MAX_EXPONENT`` or whose result would exceed ``MAX_MAGNITUDE`` is refused before it is
computed, as is any intermediate value larger than ``MAX_MAGNITUDE``, so time and memory are
linear in the (bounded) size of the expression.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_MAGNITUDE",
    "Expression",
    "ExpressionError",
    "evaluate",
    "parse_expression",
]

MAX_LENGTH = 4000
"""Longest source text accepted by :func:`parse_expression` (characters)."""
MAX_DEPTH = 40
"""Deepest AST (and bracket nesting) accepted by :func:`parse_expression`."""
MAX_EXPONENT = 64
"""Largest ``|b|`` in ``a ** b`` that :func:`evaluate` computes."""
MAX_MAGNITUDE = 10**30
"""Largest absolute value (numerator/denominator for fractions) any intermediate may take."""
MAX_SEQUENCE = 100_000
"""Longest list or string an evaluation may build."""

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_UNARY = (ast.USub, ast.UAdd, ast.Not)
_NUMBER = (int, float, Fraction)


class ExpressionError(ValueError):
    """An expression was refused (forbidden construct, over a limit) or failed to evaluate.

    Attributes:
      source: the expression text.
      reason: what went wrong, without the text.
    """

    def __init__(self, source: str, reason: str):
        shown = source if len(source) <= 120 else source[:117] + "..."
        super().__init__(f"expression {shown!r}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class Expression:
    """A parsed, whitelisted expression.

    Attributes:
      source: the text it was parsed from.
      tree: the validated AST (an ``ast.expr``); evaluate it with :func:`evaluate`.
      names: free variable names (call targets excluded).
      calls: names of the functions it calls.
    """

    source: str
    tree: ast.expr
    names: frozenset[str]
    calls: frozenset[str]


def _bracket_depth(source: str) -> int:
    depth = deepest = 0
    for ch in source:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _check(node: ast.AST, source: str, functions: Collection[str], depth: int,
           names: set[str], calls: set[str]) -> None:
    if depth > MAX_DEPTH:
        raise ExpressionError(source, f"nesting deeper than {MAX_DEPTH}")

    def rec(child: ast.AST) -> None:
        _check(child, source, functions, depth + 1, names, calls)

    if isinstance(node, ast.Constant):
        if not (node.value is None or isinstance(node.value, (bool, int, float, str))):
            raise ExpressionError(source, f"constant of type {type(node.value).__name__} "
                                          "is not allowed")
        if isinstance(node.value, int) and abs(node.value) > MAX_MAGNITUDE:
            raise ExpressionError(source, f"integer literal larger than {MAX_MAGNITUDE:.0e}")
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, (ast.List, ast.Tuple)):
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                raise ExpressionError(source, "starred expressions are not allowed")
            rec(elt)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise ExpressionError(source, f"operator {type(node.op).__name__} is not allowed")
        rec(node.left)
        rec(node.right)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, _UNARY):
            raise ExpressionError(source, f"operator {type(node.op).__name__} is not allowed")
        rec(node.operand)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _CMPOPS:
                raise ExpressionError(source, f"comparison {type(op).__name__} is not allowed")
        rec(node.left)
        for comp in node.comparators:
            rec(comp)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            rec(value)
    elif isinstance(node, ast.IfExp):
        rec(node.test)
        rec(node.body)
        rec(node.orelse)
    elif isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Slice):
            raise ExpressionError(source, "slices are not allowed")
        rec(node.value)
        rec(node.slice)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            kind = "attribute access" if isinstance(node.func, ast.Attribute) else \
                type(node.func).__name__
            raise ExpressionError(source, f"only calls of whitelisted names are allowed, got a "
                                          f"call through {kind}")
        if node.func.id not in functions:
            allowed = ", ".join(sorted(functions)) or "none"
            raise ExpressionError(source, f"call of {node.func.id!r} is not allowed (allowed: "
                                          f"{allowed})")
        if node.keywords:
            raise ExpressionError(source, "keyword arguments are not allowed")
        calls.add(node.func.id)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExpressionError(source, "starred arguments are not allowed")
            rec(arg)
    elif isinstance(node, ast.Attribute):
        raise ExpressionError(source, f"attribute access (.{node.attr}) is not allowed")
    else:
        raise ExpressionError(source, f"{type(node).__name__} is not allowed")


def parse_expression(source: str, *, functions: Collection[str] = ()) -> Expression:
    """Parses ``source`` into a whitelisted :class:`Expression` (nothing is executed).

    Args:
      source: the expression text (one Python-syntax expression).
      functions: names that may be called, e.g. ``{"int", "round", "divides"}``; any other
        call is refused.

    Returns:
      The validated :class:`Expression`.

    Raises:
      TypeError: if ``source`` is not a string.
      ExpressionError: (a ``ValueError``) on a syntax error, text longer than ``MAX_LENGTH``,
        nesting deeper than ``MAX_DEPTH``, or any construct outside the whitelist.
    """
    if not isinstance(source, str):
        raise TypeError(f"parse_expression: source must be a str, got {type(source).__name__}")
    text = source.strip()
    if not text:
        raise ExpressionError(source, "empty expression")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(source, f"longer than {MAX_LENGTH} characters ({len(text)})")
    if _bracket_depth(text) > MAX_DEPTH:
        raise ExpressionError(source, f"brackets nested deeper than {MAX_DEPTH}")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise ExpressionError(source, f"syntax error: {err.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(source, f"nesting deeper than {MAX_DEPTH}") from None
    names: set[str] = set()
    calls: set[str] = set()
    _check(tree, source, frozenset(functions), 0, names, calls)
    return Expression(source=text, tree=tree, names=frozenset(names), calls=frozenset(calls))


def _bounded(value: Any, source: str) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:
            raise ExpressionError(source, f"intermediate value larger than {MAX_MAGNITUDE:.0e}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(source, f"non-finite intermediate value {value}")
        if abs(value) > MAX_MAGNITUDE:
            raise ExpressionError(source, f"intermediate value larger than {MAX_MAGNITUDE:.0e}")
    elif isinstance(value, Fraction):
        if abs(value.numerator) > MAX_MAGNITUDE or value.denominator > MAX_MAGNITUDE:
            raise ExpressionError(source, f"fraction with terms larger than {MAX_MAGNITUDE:.0e}")
    elif isinstance(value, (str, list, tuple)) and len(value) > MAX_SEQUENCE:
        raise ExpressionError(source, f"sequence longer than {MAX_SEQUENCE}")
    return value


def _check_power(base: Any, exponent: Any, source: str) -> None:
    if not isinstance(exponent, _NUMBER) or isinstance(exponent, bool):
        raise ExpressionError(source, f"exponent must be a number, got {type(exponent).__name__}")
    if abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(source, f"exponent {exponent} exceeds {MAX_EXPONENT}")
    magnitude = abs(float(base))
    if magnitude == 0.0:
        if exponent < 0:
            raise ExpressionError(source, "zero raised to a negative power")
        return
    if float(exponent) * math.log10(magnitude) > math.log10(MAX_MAGNITUDE):
        raise ExpressionError(source, f"power {base}**{exponent} would exceed "
                                      f"{MAX_MAGNITUDE:.0e}")
    if isinstance(base, Fraction) and isinstance(exponent, int):
        big = max(abs(base.numerator), base.denominator)
        if abs(exponent) * math.log10(big) > math.log10(MAX_MAGNITUDE):
            raise ExpressionError(source, f"power {base}**{exponent} would exceed "
                                          f"{MAX_MAGNITUDE:.0e}")


def _binop(op: ast.operator, left: Any, right: Any, source: str) -> Any:
    numeric = (isinstance(left, _NUMBER) and isinstance(right, _NUMBER))
    if not numeric:
        if isinstance(op, ast.Add) and type(left) is type(right) and isinstance(left, (str, tuple,
                                                                                       list)):
            if len(left) + len(right) > MAX_SEQUENCE:
                raise ExpressionError(source, f"sequence longer than {MAX_SEQUENCE}")
            return left + right
        raise ExpressionError(source, f"operator {type(op).__name__} on "
                                      f"{type(left).__name__} and {type(right).__name__}")
    if isinstance(op, ast.Pow):
        _check_power(left, right, source)
    try:
        result = _BINOPS[type(op)](left, right)
    except ZeroDivisionError:
        raise ExpressionError(source, "division by zero") from None
    except OverflowError:
        raise ExpressionError(source, "numeric overflow") from None
    if isinstance(result, complex):
        raise ExpressionError(source, "complex result")
    return _bounded(result, source)


def _eval(node: ast.expr, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]],
          source: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise ExpressionError(source, f"unknown name {node.id!r}")
        return env[node.id]
    if isinstance(node, ast.List):
        return [_eval(e, env, functions, source) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, env, functions, source) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _binop(node.op, _eval(node.left, env, functions, source),
                      _eval(node.right, env, functions, source), source)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, env, functions, source)
        if isinstance(node.op, ast.Not):
            return not value
        if not isinstance(value, _NUMBER):
            raise ExpressionError(source, f"unary {type(node.op).__name__} on "
                                          f"{type(value).__name__}")
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, functions, source)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, env, functions, source)
            try:
                ok = _CMPOPS[type(op)](left, right)
            except TypeError:
                raise ExpressionError(source, f"cannot compare {type(left).__name__} with "
                                              f"{type(right).__name__}") from None
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for value in node.values:
                result = _eval(value, env, functions, source)
                if not result:
                    return result
            return result
        result = False
        for value in node.values:
            result = _eval(value, env, functions, source)
            if result:
                return result
        return result
    if isinstance(node, ast.IfExp):
        branch = node.body if _eval(node.test, env, functions, source) else node.orelse
        return _eval(branch, env, functions, source)
    if isinstance(node, ast.Subscript):
        container = _eval(node.value, env, functions, source)
        index = _eval(node.slice, env, functions, source)
        if not isinstance(container, (list, tuple, str)) or not isinstance(index, int) \
                or isinstance(index, bool):
            raise ExpressionError(source, f"indexing {type(container).__name__} with "
                                          f"{type(index).__name__} is not allowed")
        if not -len(container) <= index < len(container):
            raise ExpressionError(source, f"index {index} out of range for length "
                                          f"{len(container)}")
        return container[index]
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]  # validated at parse time
        if name not in functions:
            raise ExpressionError(source, f"function {name!r} is not provided")
        args = [_eval(a, env, functions, source) for a in node.args]
        try:
            result = functions[name](*args)
        except ExpressionError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, IndexError) as err:
            raise ExpressionError(source, f"{name}(...) failed: {err}") from None
        return _bounded(result, source)
    raise ExpressionError(source, f"{type(node).__name__} is not allowed")  # unreachable


def evaluate(expr: Expression, env: Mapping[str, Any],
             functions: Mapping[str, Callable[..., Any]] | None = None) -> Any:
    """Evaluates a parsed expression with Python number semantics, in bounds.

    Args:
      expr: from :func:`parse_expression`.
      env: values of the free names (numbers, strings, lists).
      functions: implementations of the called names (must cover ``expr.calls``).

    Returns:
      The value (``int``, ``float``, ``Fraction``, ``bool``, ``str``, ``list`` or ``tuple``).

    Raises:
      TypeError: if ``expr`` is not an :class:`Expression`.
      ExpressionError: on an unknown name, a missing function, division by zero, a power or
        value over the bounds, or a type error between operands.
    """
    if not isinstance(expr, Expression):
        raise TypeError(f"evaluate: expr must be an Expression from parse_expression, got "
                        f"{type(expr).__name__}")
    functions = {} if functions is None else functions
    missing = expr.calls - set(functions)
    if missing:
        raise ExpressionError(expr.source, f"no implementation given for {sorted(missing)}")
    try:
        return _eval(expr.tree, env, functions, expr.source)
    except RecursionError:
        raise ExpressionError(expr.source, "recursion limit reached") from None
