"""GSM-Symbolic / GSM-Plus style perturbations of a template's original problem.

Variants of one template (its original problem is the GSM8K question, i.e. the template's
default values):

- ``original``: the GSM8K problem itself.
- ``numbers``: new values for every number variable (names held at the original's), satisfying
  the template's conditions and differing from the original in at least one number
  (GSM-Symbolic's *numbers* variant; GSM-Plus's numerical substitution).
- ``names``: new names, objects and units (numbers held), at least one different
  (GSM-Symbolic's *names* variant).
- ``both``: numbers and names redrawn together (GSM-Symbolic's default instantiation).
- ``distractor``: the original problem with one irrelevant sentence carrying a number inserted
  before the final question (GSM-NoOp; GSM-Plus's distractor insertion). The answer is
  unchanged.

Every draw is a function of ``(key, template id, variant)`` alone.

References:
  Mirzadeh et al., "GSM-Symbolic: Understanding the Limitations of Mathematical Reasoning in
  Large Language Models", ICLR 2025.
  Li et al., "GSM-Plus: A Comprehensive Benchmark for Evaluating the Robustness of LLMs as
  Mathematical Problem Solvers", ACL 2024.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from llm_tools.gsm_symbolic import Instance, Template, numpy_rng

__all__ = [
    "DISTRACTORS",
    "VARIANTS",
    "Problem",
    "add_distractor",
    "make_problems",
    "perturb",
]

VARIANTS = ("original", "numbers", "names", "both", "distractor")

# Irrelevant sentences (GSM-NoOp style): plausible in a word problem, carrying a number, and
# changing nothing in the answer. {name}: a person of the problem (or a new one); {n}: 2..60.
DISTRACTORS = (
    "{name} is {n} years old.",
    "It was {n} degrees outside that day.",
    "{name}'s neighbor keeps {n} chickens in the backyard.",
    "The nearest library is {n} minutes away by bus.",
    "{name} had read {n} pages of a novel the night before.",
    "There were {n} red cars parked on the street outside.",
    "{name}'s cousin collects stamps and has {n} of them.",
    "Last summer, {name} went swimming {n} times.",
    "The local bakery sells {n} kinds of bread.",
    "{name}'s favorite song is {n} minutes long.",
    "A poster on the wall listed {n} upcoming concerts.",
    "{name} has a bookshelf with {n} books on it.",
)


@dataclass(frozen=True)
class Problem:
    """One evaluation or training problem.

    Attributes:
      template_id: the GSM-Symbolic template it comes from.
      variant: one of :data:`VARIANTS`.
      question: the question text the model sees.
      answer: the step-by-step solution (GSM8K style, ending ``#### <number>``).
      final: the correct final answer.
      values: the template variables' values.
      distractor: the inserted irrelevant sentence (``distractor`` variant only).
    """

    template_id: int
    variant: str
    question: str
    answer: str
    final: Any
    values: Mapping[str, Any]
    distractor: str | None = None

    @classmethod
    def from_instance(cls, inst: Instance, variant: str) -> Problem:
        return cls(inst.template_id, variant, inst.question, inst.answer, inst.final,
                   dict(inst.values))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def add_distractor(problem: Problem, key: jax.Array | np.random.Generator,
                   names: Sequence[str]) -> Problem:
    """Inserts one sentence of :data:`DISTRACTORS` before the problem's final sentence.

    Args:
      problem: the problem to extend.
      key: a ``jax.random.key`` (or numpy Generator).
      names: candidate person names; the first one that occurs in the question is used (pass
        the problem's own people first), else a random one.

    Returns:
      A :class:`Problem` with variant ``distractor``, the same answer and the sentence in
      ``distractor``.

    Raises:
      ValueError: if ``names`` is empty.
    """
    rng = numpy_rng(key, "add_distractor")
    if not names:
        raise ValueError("add_distractor: names must be a non-empty list of person names")
    present = [n for n in names if re.search(rf"\b{re.escape(n)}\b", problem.question)]
    name = present[0] if present else names[int(rng.integers(len(names)))]
    # ("Mrs. Cruz" stays whole; a possessive "{name}'s" reads fine for every name.)
    sentence = DISTRACTORS[int(rng.integers(len(DISTRACTORS)))]
    sentence = sentence.format(name=name, n=int(rng.integers(2, 61)))
    parts = _sentences(problem.question)
    question = " ".join(parts[:-1] + [sentence, parts[-1]])
    return Problem(problem.template_id, "distractor", question, problem.answer, problem.final,
                   problem.values, sentence)


def _differs(a: Mapping[str, Any], b: Mapping[str, Any], names: Iterable[str]) -> bool:
    return any(str(a[n]) != str(b[n]) for n in names)


def perturb(template: Template, variant: str, key: jax.Array | np.random.Generator, *,
            base: Mapping[str, Any] | None = None, max_tries: int = 50) -> Problem:
    """One problem of ``variant`` from ``template``.

    Args:
      template: the template.
      variant: one of :data:`VARIANTS`.
      key: a ``jax.random.key`` (or numpy Generator).
      base: the values to perturb (default: the original problem's, ``template.defaults``).
      max_tries: redraws allowed to obtain values that differ from ``base``.

    Returns:
      The :class:`Problem`.

    Raises:
      ValueError: on an unknown variant; ``names`` on a template without name variables;
        no differing draw within ``max_tries`` (names the template).
    """
    if variant not in VARIANTS:
        raise ValueError(f"perturb: variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(template, Template):
        raise TypeError(f"perturb: template must be a Template, got {type(template).__name__}")
    rng = numpy_rng(key, "perturb")
    base = dict(template.defaults if base is None else base)
    if variant in ("original", "distractor"):
        problem = Problem.from_instance(template.make_instance(base, check=False), "original")
        if variant == "original":
            return problem
        people = [str(base[t]) for line in template.init if "names" in line.expr.source
                  for t in line.targets]
        return add_distractor(problem, rng, people + list(template.replacements.get(
            "names", ["Alex"])))
    if variant == "names" and not template.name_variables:
        raise ValueError(f"perturb: template {template.id} has no name variables to perturb")
    held = {"numbers": template.name_variables, "names": template.number_variables,
            "both": ()}[variant]
    changed = template.name_variables if variant == "names" else template.number_variables
    fixed = {v: base[v] for v in held}
    for _ in range(max_tries):
        inst = template.instantiate(rng, fixed=fixed)
        if _differs(inst.values, base, changed):
            return Problem.from_instance(inst, variant)
    raise ValueError(f"perturb: template {template.id}: no {variant} draw differing from the "
                     f"base values in {max_tries} tries")


def make_problems(templates: Sequence[Template], variants: Sequence[str], key: jax.Array,
                  n_per_template: int = 1) -> tuple[dict[str, list[Problem]], list[int]]:
    """Paired evaluation sets: for each template and each of ``n_per_template`` draws, one
    problem per variant (``original`` repeats the same problem).

    Templates that cannot produce every requested variant (e.g. ``names`` without name
    variables, or no differing numbers) are left out of all variants, so the sets stay
    paired; their ids are returned.

    Args:
      templates: the templates (e.g. the held-out split).
      variants: some of :data:`VARIANTS`.
      key: a ``jax.random.key``; problem ``j`` of template ``t`` for variant ``v`` uses
        ``fold_in(fold_in(fold_in(key, t.id), j), index of v in VARIANTS)``.
      n_per_template: draws per template and variant.

    Returns:
      ``({variant: [Problem, ...]}, skipped_template_ids)``.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"make_problems: variants must be a non-empty subset of {VARIANTS}, "
                         f"got {list(variants)}")
    if not isinstance(n_per_template, int) or n_per_template < 1:
        raise ValueError(f"make_problems: n_per_template must be a positive int, got "
                         f"{n_per_template!r}")
    out: dict[str, list[Problem]] = {v: [] for v in variants}
    skipped: list[int] = []
    for t in templates:
        rows: dict[str, list[Problem]] = {v: [] for v in variants}
        try:
            for j in range(n_per_template):
                kj = jax.random.fold_in(jax.random.fold_in(key, t.id), j)
                for v in variants:
                    rows[v].append(perturb(t, v, jax.random.fold_in(kj, VARIANTS.index(v))))
        except ValueError:
            skipped.append(t.id)
            continue
        for v in variants:
            out[v].extend(rows[v])
    return out, skipped
