"""AbstRaL's symbolic tool: read an abstraction, derive the answer from the recognized values.

An abstraction (what the model writes, and what :mod:`llm_tools.abstral.abstraction` builds
from the templates) is a list of equations defining intermediate symbols, then the answer::

    out0 = in2 / in1
    out1 = out0 * in0
    #### out1

Equations may also sit in brackets inside prose (``... = out0 minutes. [out0 = in2 / in1]``).
The right-hand sides use the abstraction language: numbers, the symbols ``inK`` (the question's
values) and ``outK`` (defined earlier), ``+ - * / // % **`` (integer exponents up to 64),
``int(x)`` (truncation) and ``round(x)`` / ``round(x, n)`` (Python's half-to-even), with
Python's precedence. Every expression is parsed by :func:`llm_tools.safe_expr.parse_expression`
(an AST whitelist) and never executed: the value is computed in exact rational arithmetic by
the bounded evaluator, and the ``sympy`` expression is built node by node from the parsed tree
(no ``sympify`` of text).

References:
  Gao, Bosselut, Bengio, Abbe, "AbstRaL: Augmenting LLMs' Reasoning by Reinforcing Abstract
  Thinking", arXiv:2506.07751, 2025 (section 3, abstraction retrieval and symbolic
  derivation).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy

from llm_tools.abstral.conditions import to_fraction
from llm_tools.safe_expr import Expression, ExpressionError, evaluate, parse_expression

__all__ = [
    "ABSTRACTION_FUNCTIONS",
    "evaluate_abstraction",
    "MAX_EQUATIONS",
    "MAX_EXPANDED_NODES",
    "AbstractionError",
    "ParsedAbstraction",
    "ToolResult",
    "agree_on",
    "parse_abstraction",
    "solve",
    "to_sympy",
]

ABSTRACTION_FUNCTIONS = frozenset({"int", "round"})
MAX_EQUATIONS = 32
"""Most equations an abstraction may hold."""
MAX_EXPANDED_NODES = 4000
"""Largest final expression (AST nodes, after substituting every ``outK``) the tool builds."""

_SYMBOL = re.compile(r"(in|out)\d+")
_EQUATION = re.compile(r"^\s*(out\d+)\s*=\s*(.+?)\s*$")
_BRACKET = re.compile(r"\[\s*(out\d+)\s*=\s*([^\[\]]+?)\s*\]")
_ANSWER = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)


class AbstractionError(ValueError):
    """An abstraction that cannot be used: the ``reason`` says why (format, forbidden
    construct, unknown symbol, bounds)."""

    def __init__(self, reason: str):
        super().__init__(f"abstraction: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class ParsedAbstraction:
    """Equations ``outK = expr`` in order, and the answer expression."""

    equations: tuple[tuple[str, Expression], ...]
    answer: Expression

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset().union(self.answer.names, *(e.names for _, e in self.equations))

    def expanded(self) -> ast.expr:
        """The answer with every ``outK`` replaced by its definition (an AST over ``inK``).

        Raises:
          AbstractionError: if the result would exceed :data:`MAX_EXPANDED_NODES`.
        """
        sizes: dict[str, int] = {}
        trees: dict[str, ast.expr] = {}
        for name, expr in self.equations:
            sizes[name] = _size(expr.tree, sizes)
            if sizes[name] > MAX_EXPANDED_NODES:
                raise AbstractionError(f"{name} expands to more than {MAX_EXPANDED_NODES} nodes")
            trees[name] = _substitute(expr.tree, trees)
        if _size(self.answer.tree, sizes) > MAX_EXPANDED_NODES:
            raise AbstractionError(f"the answer expands to more than {MAX_EXPANDED_NODES} nodes")
        return _substitute(self.answer.tree, trees)


def _size(node: ast.AST, sizes: Mapping[str, int]) -> int:
    total = 0
    for sub in ast.walk(node):
        total += sizes.get(sub.id, 1) if isinstance(sub, ast.Name) else 1
    return total


class _Sub(ast.NodeTransformer):
    def __init__(self, trees: Mapping[str, ast.expr]):
        self.trees = trees

    def visit_Name(self, node: ast.Name) -> ast.expr:  # noqa: N802 (ast API)
        return self.trees.get(node.id, node)


def _substitute(tree: ast.expr, trees: Mapping[str, ast.expr]) -> ast.expr:
    import copy

    return _Sub(trees).visit(copy.deepcopy(tree))


def _parse_rhs(text: str, what: str) -> Expression:
    try:
        expr = parse_expression(text, functions=ABSTRACTION_FUNCTIONS)
    except ExpressionError as err:
        raise AbstractionError(f"{what}: {err.reason} in {text!r}") from None
    for node in ast.walk(expr.tree):
        if isinstance(node, (ast.Compare, ast.BoolOp, ast.IfExp, ast.Subscript, ast.List,
                             ast.Tuple)) or (isinstance(node, ast.UnaryOp)
                                             and isinstance(node.op, ast.Not)):
            raise AbstractionError(f"{what}: {type(node).__name__} is not allowed in an "
                                   f"abstraction: {text!r}")
        if isinstance(node, ast.Constant) and not (isinstance(node.value, (int, float))
                                                   and not isinstance(node.value, bool)):
            raise AbstractionError(f"{what}: constant {node.value!r} is not a number")
    bad = sorted(n for n in expr.names if not _SYMBOL.fullmatch(n))
    if bad:
        raise AbstractionError(f"{what}: unknown names {bad} (only inK and outK)")
    return expr


def parse_abstraction(text: str) -> ParsedAbstraction:
    """Reads the equations and the ``#### answer`` line of an abstraction.

    Equations are lines ``outK = expr`` or bracketed ``[outK = expr]`` inside prose; the answer
    is the last ``#### expr`` line. Each ``outK`` must be defined once, before it is used, from
    ``inK`` symbols and earlier ``outK``.

    Raises:
      TypeError: if ``text`` is not a string.
      AbstractionError: on a missing answer line, a forbidden construct, a symbol used before
        it is defined or defined twice, or more than :data:`MAX_EQUATIONS` equations.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_abstraction: text must be a str, got {type(text).__name__}")
    answers = _ANSWER.findall(text)
    if not answers:
        raise AbstractionError("no '#### <answer>' line")
    equations: list[tuple[str, Expression]] = []
    for line in text.splitlines():
        if line.strip().startswith("####"):
            continue
        found = _BRACKET.findall(line)
        if not found:
            match = _EQUATION.match(line)
            found = [match.groups()] if match else []
        for name, rhs in found:
            equations.append((name, _parse_rhs(rhs, name)))
    if len(equations) > MAX_EQUATIONS:
        raise AbstractionError(f"{len(equations)} equations, more than {MAX_EQUATIONS}")
    defined: set[str] = set()
    for name, expr in equations:
        if name in defined:
            raise AbstractionError(f"{name} is defined twice")
        undefined = sorted(n for n in expr.names if n.startswith("out") and n not in defined)
        if undefined:
            raise AbstractionError(f"{name} uses {undefined} before defining it")
        defined.add(name)
    answer = _parse_rhs(answers[-1], "answer")
    undefined = sorted(n for n in answer.names if n.startswith("out") and n not in defined)
    if undefined:
        raise AbstractionError(f"the answer uses undefined {undefined}")
    return ParsedAbstraction(tuple(equations), answer)


def _trunc(x: Any) -> int:
    return int(x)


def _round(x: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(x)
    if isinstance(ndigits, bool) or not isinstance(ndigits, int) or not 0 <= ndigits <= 12:
        raise ValueError(f"round()'s ndigits must be an int in [0, 12], got {ndigits!r}")
    return round(x, ndigits)


_FUNCTIONS = {"int": _trunc, "round": _round}


def _exact(value: Any) -> Any:
    return Fraction(repr(value)) if isinstance(value, float) else value


def _values_env(values: Mapping[str, Any]) -> dict[str, Fraction]:
    env = {}
    for name, value in values.items():
        try:
            env[name] = to_fraction(value)
        except ValueError:
            raise ValueError(f"solve: the value of {name} must be a number, got {value!r}") \
                from None
    return env


def _eval_exact(expr: Expression, env: Mapping[str, Any]) -> Any:
    # Float literals are read as exact decimals: re-parse them as Fractions through a
    # rewritten tree so 0.1 + 0.2 == 3/10.
    tree = _FloatToFraction().visit(_copy(expr.tree))
    exact = Expression(expr.source, tree, expr.names, expr.calls | {"_frac"})
    return evaluate(exact, env, {**_FUNCTIONS, "_frac": _frac})


def _frac(text: str) -> Fraction:
    return Fraction(text)


def _copy(tree: ast.expr) -> ast.expr:
    import copy

    return copy.deepcopy(tree)


class _FloatToFraction(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.expr:  # noqa: N802 (ast API)
        if isinstance(node.value, float):
            return ast.Call(func=ast.Name(id="_frac", ctx=ast.Load()),
                            args=[ast.Constant(value=repr(node.value))], keywords=[])
        return node


@dataclass(frozen=True)
class ToolResult:
    """What the symbolic tool derived.

    Attributes:
      ok: whether an answer was derived.
      value: the answer (``int`` when integral, else ``Fraction`` or ``float``), or ``None``.
      reason: why not (empty when ``ok``).
      abstraction: the parsed abstraction, when it parsed.
    """

    ok: bool
    value: Any
    reason: str = ""
    abstraction: ParsedAbstraction | None = None


def _normalize(value: Any) -> Any:
    if isinstance(value, bool):
        raise AbstractionError("the answer is a truth value, not a number")
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, (int, float, Fraction)):
        raise AbstractionError(f"the answer is {type(value).__name__}, not a number")
    return value


def evaluate_abstraction(parsed: ParsedAbstraction, values: Mapping[str, Any]) -> Any:
    """The answer of ``parsed`` for the symbol values ``values`` (exact arithmetic).

    Raises:
      AbstractionError: on a symbol without a value, division by zero, or a value over the
        evaluator's bounds.
    """
    env: dict[str, Any] = _values_env(values)
    missing = sorted(n for n in parsed.symbols if n.startswith("in") and n not in env)
    if missing:
        known = ", ".join(sorted(n for n in env if n.startswith("in"))) or "none"
        raise AbstractionError(f"unknown input symbols {missing} (the question has {known})")
    try:
        for name, expr in parsed.equations:
            env[name] = _exact(_eval_exact(expr, env))
        return _normalize(_exact(_eval_exact(parsed.answer, env)))
    except ExpressionError as err:
        raise AbstractionError(err.reason) from None


def solve(text: str, values: Mapping[str, Any]) -> ToolResult:
    """The symbolic tool: parse ``text``, substitute ``values``, return the answer or why not.

    Args:
      text: the model's abstraction (equations and a ``#### answer`` line).
      values: the recognized conditions, ``{"in0": 12, ...}``.

    Returns:
      A :class:`ToolResult`; never raises for a bad abstraction (``ok=False`` with the reason).

    Raises:
      TypeError: if ``text`` is not a string or ``values`` not a mapping.
    """
    if not isinstance(text, str):
        raise TypeError(f"solve: text must be a str, got {type(text).__name__}")
    if not isinstance(values, Mapping):
        raise TypeError(f"solve: values must be a mapping of symbol -> number, got "
                        f"{type(values).__name__}")
    try:
        parsed = parse_abstraction(text)
    except AbstractionError as err:
        return ToolResult(False, None, err.reason)
    try:
        return ToolResult(True, evaluate_abstraction(parsed, values), "", parsed)
    except AbstractionError as err:
        return ToolResult(False, None, err.reason, parsed)


def agree_on(parsed: ParsedAbstraction, points: Sequence[tuple[Mapping[str, Any], Any]]) -> bool:
    """Whether ``parsed`` gives the expected answer at every ``(values, expected)`` point
    (compared exactly as rationals; floats by their shortest decimal)."""
    for values, expected in points:
        try:
            got = evaluate_abstraction(parsed, values)
        except AbstractionError:
            return False
        if to_fraction(got) != to_fraction(expected):
            return False
    return True


class Trunc(sympy.Function):
    """``int(x)``: truncation toward zero."""

    @classmethod
    def eval(cls, x):  # noqa: D102
        if x.is_Rational:
            return sympy.Integer(int(Fraction(int(x.p), int(x.q))))
        return None


class RoundHalfEven(sympy.Function):
    """``round(x)``: Python's rounding to the nearest integer, ties to even."""

    @classmethod
    def eval(cls, x):  # noqa: D102
        if x.is_Rational:
            return sympy.Integer(round(Fraction(int(x.p), int(x.q))))
        return None


def _sympy(node: ast.expr) -> sympy.Expr:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int):
            return sympy.Integer(node.value)
        return sympy.Rational(repr(node.value))
    if isinstance(node, ast.Name):
        return sympy.Symbol(node.id)
    if isinstance(node, ast.UnaryOp):
        inner = _sympy(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        a, b = _sympy(node.left), _sympy(node.right)
        op = node.op
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Div):
            return a / b
        if isinstance(op, ast.FloorDiv):
            return sympy.floor(a / b)
        if isinstance(op, ast.Mod):
            return sympy.Mod(a, b)
        if isinstance(op, ast.Pow):
            if not (b.is_Integer and abs(int(b)) <= 64):
                raise AbstractionError("sympy form: exponents must be integer constants up to "
                                       "64")
            return a ** b
    if isinstance(node, ast.Call):
        args = [_sympy(a) for a in node.args]
        if node.func.id == "int" and len(args) == 1:  # type: ignore[attr-defined]
            return Trunc(args[0])
        if node.func.id == "round" and len(args) == 1:  # type: ignore[attr-defined]
            return RoundHalfEven(args[0])
        if node.func.id == "round" and len(args) == 2 and args[1].is_Integer:  # type: ignore
            scale = sympy.Integer(10) ** args[1]
            return RoundHalfEven(args[0] * scale) / scale
    raise AbstractionError(f"sympy form: {ast.unparse(node)!r} is not supported")


def to_sympy(parsed: ParsedAbstraction) -> sympy.Expr:
    """The answer as a ``sympy`` expression over the ``inK`` symbols (every ``outK``
    substituted), built node by node from the whitelisted tree.

    ``int`` becomes :class:`Trunc`, ``round`` :class:`RoundHalfEven`, ``//`` ``floor(a/b)``,
    ``%`` ``Mod``.

    Raises:
      AbstractionError: if the expansion is too large or uses a form sympy cannot hold.
    """
    if not isinstance(parsed, ParsedAbstraction):
        raise TypeError(f"to_sympy: expected a ParsedAbstraction, got {type(parsed).__name__}")
    return _sympy(parsed.expanded())
