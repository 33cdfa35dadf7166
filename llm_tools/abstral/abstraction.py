"""Granular abstraction data from GSM-Symbolic's annotated solutions.

AbstRaL trains on *granular* abstractions: the solution rewritten step by step with the
question's numbers as input symbols ``in0, in1, ...`` and every intermediate result as a new
symbol ``out0, out1, ...`` with its derivation, ending in the answer symbol. The templates'
``answer_annotated`` holds exactly that information: every number in a solution line is an
``{expr}`` over template variables. :func:`abstract_problem` turns one instance into:

- the abstract question (numbers recognized and symbolized, :mod:`~llm_tools.abstral.conditions`);
- steps: each solution line with inputs replaced by ``inK``, results by ``outK`` and the
  calculator notes ``<<...>>`` dropped, with the equations ``outK = expr`` it introduces
  (an intermediate used again later is referred to by its symbol);
- the answer symbol and the final expression over ``in0..inK`` (constants such as 12 inches
  per foot stay numbers).

A variable stands for a symbol when the question shows it (its slot, or the numeric partner
of a shown word such as ``("two", 2)``) and its value was recognized; derived variables are
replaced by their definitions; anything else is a constant.

References:
  Gao, Bosselut, Bengio, Abbe, "AbstRaL: Augmenting LLMs' Reasoning by Reinforcing Abstract
  Thinking", arXiv:2506.07751, 2025 (section 3.2, granular abstraction data).
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from llm_tools.abstral.conditions import Conditions, recognize_conditions, to_fraction
from llm_tools.gsm_functions import PURE_FUNCTIONS, is_number, numeric, render_value, template_env
from llm_tools.gsm_symbolic import Template
from llm_tools.safe_expr import ExpressionError, evaluate

__all__ = ["Abstraction", "AbstractionDataError", "Step", "abstract_problem"]

_SLOT = re.compile(r"\{([^}]+)\}")
_CALC = re.compile(r"<<[^>]*>>")
_TRANSPARENT = {"Fraction", "float", "ensure_int"}


class AbstractionDataError(ValueError):
    """A template solution that cannot be turned into an abstraction (names the template)."""


@dataclass(frozen=True)
class Step:
    """One solution line: its abstract text and the equations ``(outK, expr)`` it defines."""

    text: str
    equations: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Abstraction:
    """A problem's gold abstraction.

    Attributes:
      conditions: the recognized question (``conditions.abstract_question``,
        ``conditions.values``).
      steps: the solution's lines, abstracted.
      answer: the symbol (or expression) on the ``####`` line.
      final_expr: the answer over ``inK`` symbols and constants.
    """

    conditions: Conditions
    steps: tuple[Step, ...]
    answer: str
    final_expr: str

    @property
    def equations(self) -> tuple[tuple[str, str], ...]:
        return tuple(eq for step in self.steps for eq in step.equations)

    def equations_text(self) -> str:
        """The compact form: one ``outK = expr`` per line, then ``#### answer``."""
        lines = [f"{name} = {expr}" for name, expr in self.equations]
        return "\n".join(lines + [f"#### {self.answer}"])

    def prose_text(self) -> str:
        """The granular form: each abstract solution line followed by its bracketed
        equations, then ``#### answer``."""
        lines = []
        for step in self.steps:
            eqs = " ".join(f"[{name} = {expr}]" for name, expr in step.equations)
            lines.append(f"{step.text} {eqs}".rstrip() if eqs else step.text)
        return "\n".join(lines + [f"#### {self.answer}"])


def _const(value: Any) -> ast.expr:
    frac = to_fraction(value)
    if frac.denominator == 1:
        node: ast.expr = ast.Constant(int(frac.numerator))
        return node if frac >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-int(frac.numerator)))
    num = ast.Constant(abs(frac.numerator))
    body = ast.BinOp(num, ast.Div(), ast.Constant(frac.denominator))
    return body if frac > 0 else ast.UnaryOp(ast.USub(), body)


class _Translator:
    """Rewrites template expressions over variables into trees over ``inK`` and constants."""

    def __init__(self, template: Template, values: Mapping[str, Any], conditions: Conditions,
                 spans: tuple[tuple[int, int, str], ...]):
        self.t = template
        self.values = values
        self.cond = conditions
        self.derived: dict[str, ast.expr] = {}
        line_of: dict[str, tuple[str, ...]] = {}
        for line in template.init:
            if line.derived and len(line.targets) == 1:
                self.derived[line.targets[0]] = line.expr.tree
            for target in line.targets:
                line_of[target] = line.targets
        # A variable's symbol: the first recognized number inside a slot of the variable or of
        # a variable drawn with it (("two", 2) pairs), whose value equals the variable's.
        self.symbols: dict[str, str] = {}
        for name in values:
            value = numeric(values[name])
            if not is_number(value):
                continue
            target = to_fraction(value)
            own = [sp for sp in spans if sp[2] == name]
            partners = [sp for sp in spans if sp[2] != name and sp[2] in line_of.get(name, ())]
            for start, end, _ in own + partners:
                hits = [s for s in conditions.symbols_in(start, end)
                        if conditions.values[s] == target]
                if hits:
                    self.symbols[name] = hits[0]
                    break
        self.env = template_env(values, template.replacements)

    def fail(self, why: str) -> AbstractionDataError:
        return AbstractionDataError(f"abstract_problem: template {self.t.id}: {why}")

    def var(self, name: str, depth: int) -> ast.expr:
        if name in self.derived and depth < 20:
            return self.node(self.derived[name], depth + 1)
        value = numeric(self.values[name]) if name in self.values else None
        if name not in self.values:
            if name in self.t.replacements:
                raise self.fail(f"word list {name!r} used as a number")
            raise self.fail(f"unknown variable {name!r}")
        if not is_number(value):
            raise self.fail(f"variable {name!r} = {value!r} used as a number")
        if name in self.symbols:
            return ast.Name(self.symbols[name], ast.Load())
        return _const(value)

    def node(self, node: ast.expr, depth: int = 0) -> ast.expr:
        if isinstance(node, ast.Name):
            return self.var(node.id, depth)
        if isinstance(node, ast.Constant):
            if is_number(node.value):
                return _const(node.value)
            raise self.fail(f"constant {node.value!r} in a number")
        if isinstance(node, ast.BinOp):
            return ast.BinOp(self.node(node.left, depth), node.op, self.node(node.right, depth))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return ast.UnaryOp(node.op, self.node(node.operand, depth))
        if isinstance(node, ast.Call):
            name = node.func.id  # type: ignore[attr-defined]
            if name in _TRANSPARENT and len(node.args) == 1:
                return self.node(node.args[0], depth)
            if name in ("int", "round"):
                return ast.Call(ast.Name(name, ast.Load()),
                                [self.node(a, depth) for a in node.args], [])
        if isinstance(node, (ast.IfExp, ast.Subscript, ast.Compare, ast.BoolOp, ast.Call)):
            # Instance-specific forms (a branch, an index): their value for these values.
            value = self._value(node)
            if is_number(value):
                return _const(value)
        raise self.fail(f"cannot abstract {ast.unparse(node)!r}")

    def _value(self, node: ast.expr) -> Any:
        from llm_tools.gsm_symbolic import _subexpression

        try:
            return numeric(evaluate(_subexpression(node), self.env, PURE_FUNCTIONS))
        except ExpressionError as err:
            raise self.fail(str(err)) from None


class _Compact(ast.NodeTransformer):
    """Replaces sub-trees that equal an earlier intermediate's definition by its symbol."""

    def __init__(self, outs: Mapping[str, str], skip_root: bool):
        self.outs = outs
        self.skip_root = skip_root

    def visit(self, node: ast.AST) -> ast.AST:
        if self.skip_root:
            self.skip_root = False
            return self.generic_visit(node)
        if isinstance(node, ast.expr):
            key = ast.unparse(node)
            if key in self.outs:
                return ast.Name(self.outs[key], ast.Load())
        return self.generic_visit(node)


def _is_leaf(tree: ast.expr) -> bool:
    if isinstance(tree, (ast.Name, ast.Constant)):
        return True
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.operand, ast.Constant):
        return True
    return (isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Div)
            and isinstance(tree.left, ast.Constant) and isinstance(tree.right, ast.Constant))


def _shift_spans(rendered: str, question: str, spans: tuple[tuple[int, int, str], ...],
                 template_id: int) -> tuple[tuple[int, int, str], ...]:
    """Slot spans of ``rendered`` moved to ``question`` = ``rendered`` with one insertion."""
    extra = len(question) - len(rendered)
    prefix = 0
    while prefix < len(rendered) and rendered[prefix] == question[prefix]:
        prefix += 1
    if extra < 0 or question[:prefix] + question[prefix + extra:] != rendered:
        raise AbstractionDataError(f"abstract_problem: template {template_id}: question is not "
                                   "the rendered question with one insertion")
    return tuple((s + extra if s >= prefix else s, e + extra if s >= prefix else e, v)
                 for s, e, v in spans)


def abstract_problem(template: Template, values: Mapping[str, Any],
                     question: str | None = None) -> Abstraction:
    """The gold granular abstraction of one instance.

    Args:
      template: its template.
      values: the instance's variable values.
      question: the question text the model sees (default: the rendered question; pass a
        perturbed one, e.g. with a distractor sentence, to symbolize that text).

    Returns:
      The :class:`Abstraction`.

    Raises:
      AbstractionDataError: if a solution slot cannot be expressed (names the template).
    """
    if not isinstance(template, Template):
        raise TypeError(f"abstract_problem: template must be a Template, got "
                        f"{type(template).__name__}")
    if not isinstance(values, Mapping):
        raise TypeError(f"abstract_problem: values must be a mapping, got "
                        f"{type(values).__name__}")
    rendered, spans = template.render_question_spans(values)
    if question is None:
        question = rendered
    elif question != rendered:
        spans = _shift_spans(rendered, question, spans, template.id)
    conditions = recognize_conditions(question)
    tr = _Translator(template, values, conditions, spans)
    outs: dict[str, str] = {}  # expanded unparse -> out symbol
    steps: list[Step] = []
    answer = final_expr = None

    def symbolize(src: str) -> tuple[str, tuple[str, str] | None, str]:
        """(text for the slot, new equation or None, expanded expression)."""
        expr = template.slots[src]
        value = numeric(evaluate(expr, tr.env, PURE_FUNCTIONS))
        if not is_number(value):
            return render_value(value), None, ""
        tree = tr.node(expr.tree)
        key = ast.unparse(tree)
        if _is_leaf(tree):
            return key, None, key
        if key in outs:
            return outs[key], None, key
        name = f"out{len(outs)}"
        compact = _Compact(outs, skip_root=True).visit(copy.deepcopy(tree))
        outs[key] = name
        return name, (name, ast.unparse(compact)), key

    for raw in template.answer_annotated.splitlines():
        stripped = raw.strip()
        if stripped.startswith("####"):
            src = _SLOT.search(stripped).group(1).strip()
            text, eq, expanded = symbolize(src)
            if eq is not None:
                steps.append(Step("", (eq,)))
            answer, final_expr = text, expanded
            continue
        equations: list[tuple[str, str]] = []

        def replace(match: re.Match, equations=equations) -> str:
            text, eq, _ = symbolize(match.group(1).strip())
            if eq is not None:
                equations.append(eq)
            return text

        text = _SLOT.sub(replace, raw)
        text = re.sub(r"\s{2,}", " ", _CALC.sub("", text)).strip()
        if text or equations:
            steps.append(Step(text, tuple(equations)))
    if answer is None:
        raise AbstractionDataError(f"abstract_problem: template {template.id} has no #### line")
    return Abstraction(conditions, tuple(steps), answer, final_expr)


def exact_final(template: Template, values: Mapping[str, Any]) -> Fraction:
    """The template's final answer as an exact fraction (floats by their shortest repr)."""
    return to_fraction(template.final_answer(values))
