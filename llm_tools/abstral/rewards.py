"""AbstRaL's rewards, and the tasks (gold abstraction + probe points) they are computed on.

For a completion :math:`\\hat Y` (the model's abstraction) of a problem with recognized values
:math:`C` and gold abstraction :math:`A^*`:

- :math:`r_{answer} = w_a\\,[\\mathrm{tool}(\\hat Y, C) = y^*]`: the symbolic tool's answer is
  correct (exact rational comparison).
- :math:`r_{symbolic} = w_s\\,[\\hat Y \\equiv A^*] + w_d\\,(1 - d(\\hat Y, A^*))`: the first
  term is *faithfulness*: the abstraction's answer expression equals the gold one as a function
  of the inputs on the problem family, tested exactly at the problem's own values and at
  ``probes`` (fresh values for the same template, names held, drawn to satisfy its conditions,
  kept only when the gold abstraction has the same form); the second is the paper's symbolic
  distance: :math:`d` is the Levenshtein distance between the token sequences of the two
  equation lists (symbols, numbers, operators, brackets) divided by the longer length.
- A format penalty :math:`-p` replaces both when the abstraction cannot be parsed (no
  ``#### answer`` line, a forbidden construct such as attribute access or an unknown call, an
  undefined symbol): such text is refused by the whitelist parser, never executed, and gets
  ``-p``.

Chain-of-thought completions (the baseline) are graded by their final number: the last
``#### <number>`` line, else the last ``\\boxed{<number>}``.

References:
  Gao, Bosselut, Bengio, Abbe, "AbstRaL: Augmenting LLMs' Reasoning by Reinforcing Abstract
  Thinking", arXiv:2506.07751, 2025 (section 3.3, rewards).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import jax
import numpy as np

from llm_tools.abstral.abstraction import Abstraction, abstract_problem
from llm_tools.abstral.conditions import to_fraction
from llm_tools.abstral.perturb import Problem
from llm_tools.abstral.symbolic import (
    AbstractionError,
    ParsedAbstraction,
    agree_on,
    evaluate_abstraction,
    parse_abstraction,
)
from llm_tools.gsm_symbolic import Template, numpy_rng

__all__ = [
    "AbstractionTask",
    "RewardConfig",
    "Rewards",
    "abstraction_reward",
    "cot_reward",
    "extract_final_number",
    "make_task",
    "symbolic_distance",
]


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights: answer ``w_a``, faithfulness ``w_s``, step similarity ``w_d``, format
    penalty ``p`` (all >= 0)."""

    answer: float = 1.0
    faithful: float = 1.0
    steps: float = 0.5
    format_penalty: float = 0.5

    def __post_init__(self):
        for name in ("answer", "faithful", "steps", "format_penalty"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"RewardConfig: {name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class AbstractionTask:
    """A problem ready for abstraction training or evaluation.

    Attributes:
      problem: the concrete problem (question, answer, variant).
      gold: its gold :class:`~llm_tools.abstral.abstraction.Abstraction` (the model's prompt
        is ``gold.conditions.abstract_question``; its values ``gold.conditions.values``).
      probes: ``(values, answer)`` points of the same template and form where a faithful
        abstraction must also be right; the problem's own point comes first.
    """

    problem: Problem
    gold: Abstraction
    probes: tuple[tuple[Mapping[str, Fraction], Any], ...]

    @property
    def prompt(self) -> str:
        return self.gold.conditions.abstract_question

    @property
    def values(self) -> Mapping[str, Fraction]:
        return self.gold.conditions.values


def _with_sentence(question: str, sentence: str, rng: np.random.Generator) -> str:
    new = re.sub(r"\d+", lambda m: str(int(rng.integers(2, 61))), sentence, count=1)
    parts = [s for s in re.split(r"(?<=[.!?])\s+", question.strip()) if s]
    return " ".join(parts[:-1] + [new, parts[-1]])


def make_task(template: Template, problem: Problem, key: jax.Array | np.random.Generator, *,
              n_probes: int = 4, max_tries: int = 20) -> AbstractionTask:
    """The gold abstraction of ``problem`` and up to ``n_probes`` probe points.

    Probes redraw the template's number variables (names held at the problem's), re-insert the
    problem's distractor sentence with a new number, and keep a draw only if its gold
    abstraction has the same final expression (so ``inK`` means the same quantity).

    Raises:
      ValueError: if ``problem`` does not come from ``template`` or ``n_probes`` < 0.
    """
    if problem.template_id != template.id:
        raise ValueError(f"make_task: problem of template {problem.template_id} given with "
                         f"template {template.id}")
    if not isinstance(n_probes, int) or n_probes < 0:
        raise ValueError(f"make_task: n_probes must be an int >= 0, got {n_probes!r}")
    rng = numpy_rng(key, "make_task")
    gold = abstract_problem(template, problem.values, problem.question)
    probes: list[tuple[Mapping[str, Fraction], Any]] = [(gold.conditions.values, problem.final)]
    fixed = {v: problem.values[v] for v in template.name_variables}
    tries = 0
    while len(probes) < n_probes + 1 and tries < max_tries and n_probes:
        tries += 1
        inst = template.instantiate(rng, fixed=fixed)
        question = inst.question
        if problem.distractor:
            question = _with_sentence(question, problem.distractor, rng)
        other = abstract_problem(template, inst.values, question)
        if other.final_expr == gold.final_expr and \
                len(other.conditions.values) == len(gold.conditions.values):
            probes.append((other.conditions.values, inst.final))
    return AbstractionTask(problem, gold, tuple(probes))


_TOKEN = re.compile(r"in\d+|out\d+|\d+(?:\.\d+)?|//|\*\*|[-+*/%()=,]|[A-Za-z_]\w*")


def _tokens(equations: Sequence[tuple[str, str]], answer: str) -> list[str]:
    text = " ; ".join(f"{name} = {rhs}" for name, rhs in equations) + f" ; #### {answer}"
    return _TOKEN.findall(text)


def _levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def symbolic_distance(parsed: ParsedAbstraction, gold: Abstraction) -> float:
    """Normalized token edit distance between the two equation lists, in [0, 1]."""
    mine = _tokens([(n, ast.unparse(e.tree)) for n, e in parsed.equations],
                   ast.unparse(parsed.answer.tree))
    theirs = _tokens([(n, ast.unparse(ast.parse(r, mode="eval").body))
                      for n, r in gold.equations], gold.answer)
    longest = max(len(mine), len(theirs), 1)
    return _levenshtein(mine, theirs) / longest


@dataclass(frozen=True)
class Rewards:
    """One completion's reward and its parts."""

    total: float
    answer: float
    faithful: float
    steps: float
    parsed: bool
    correct: bool
    is_faithful: bool
    reason: str = ""


def abstraction_reward(text: str, task: AbstractionTask,
                       config: RewardConfig = RewardConfig()) -> Rewards:
    """AbstRaL's reward of one abstraction (see the module docstring).

    Raises:
      TypeError: if ``text`` is not a string or ``task`` not an :class:`AbstractionTask`.
    """
    if not isinstance(text, str):
        raise TypeError(f"abstraction_reward: text must be a str, got {type(text).__name__}")
    if not isinstance(task, AbstractionTask):
        raise TypeError(f"abstraction_reward: task must be an AbstractionTask, got "
                        f"{type(task).__name__}")
    try:
        parsed = parse_abstraction(text)
    except AbstractionError as err:
        return Rewards(-config.format_penalty, 0.0, 0.0, 0.0, False, False, False, err.reason)
    reason = ""
    try:
        value = evaluate_abstraction(parsed, task.values)
        correct = to_fraction(value) == to_fraction(task.problem.final)
    except AbstractionError as err:
        correct, reason = False, err.reason
    faithful = correct and agree_on(parsed, task.probes)
    steps = 1.0 - symbolic_distance(parsed, task.gold)
    r_answer = config.answer * correct
    r_faithful = config.faithful * faithful
    r_steps = config.steps * steps
    return Rewards(r_answer + r_faithful + r_steps, r_answer, r_faithful, r_steps, True, correct,
                   faithful, reason)


_HASH = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+(?:/\d+)?)")
_BOXED = re.compile(r"\\boxed\{\s*\$?\s*(-?[\d,]*\.?\d+(?:/\d+)?)\s*\}")


_ANSWER_IS = re.compile(r"answer is\s*:?\s*\$?\s*(-?[\d,]*\.?\d+(?:/\d+)?)", re.IGNORECASE)
_ANY = re.compile(r"(?<![\w.])(-?\d[\d,]*(?:\.\d+)?)")


def extract_final_number(text: str, *, lenient: bool = False) -> Fraction | None:
    """The final answer of a chain of thought: the last ``#### n``, else the last
    ``\\boxed{n}`` (commas and a leading ``$`` allowed), as an exact fraction; else ``None``.

    With ``lenient`` (for models never taught a format, e.g. zero-shot SmolLM2), it falls
    back to the last "answer is n", then to the last number in the text.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_final_number: text must be a str, got {type(text).__name__}")
    patterns = (_HASH, _BOXED, _ANSWER_IS, _ANY) if lenient else (_HASH, _BOXED)
    for pattern in patterns:
        found = pattern.findall(text)
        if found:
            try:
                return to_fraction(found[-1])
            except ValueError:
                return None
    return None


def cot_reward(text: str, final: Any, config: RewardConfig = RewardConfig()) -> Rewards:
    """The baseline's reward: ``w_a`` for a correct final number, ``-p`` when there is none."""
    got = extract_final_number(text)
    if got is None:
        return Rewards(-config.format_penalty, 0.0, 0.0, 0.0, False, False, False,
                       "no final number")
    correct = got == to_fraction(final)
    return Rewards(config.answer * correct, config.answer * correct, 0.0, 0.0, True, correct,
                   False)
