"""GSM-style arithmetic word problems (one and two steps), few-shot prompting and scoring.

SmolLM2-135M solves almost none of GSM8K itself, which would leave nothing for pruning to
lose, so the problems are grade-school word problems of GSM's form at a difficulty a 135M
model partly solves: seven templates (addition, subtraction, multiplication, rates,
division, and two two-step problems), names/items/numbers drawn from a seeded generator.
The model sees four worked examples (``Question: … Answer: 3 + 4 = 7. The answer is 7.``)
and its greedy continuation up to the newline is scored by the number after "The answer is"
(else the last number it wrote).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import jax
import numpy as np

NAMES = ("Tom", "Anna", "Lily", "Sam", "Maria", "Ben", "Noah", "Emma", "Omar", "Zoe")
ITEMS = ("apples", "pencils", "stickers", "books", "marbles", "cookies", "cards", "shells")


class Problem(NamedTuple):
    question: str
    answer: int
    solution: str  # the worked line used when the problem is a few-shot example


def _problem(rng: np.random.Generator) -> Problem:
    name = NAMES[rng.integers(len(NAMES))]
    item = ITEMS[rng.integers(len(ITEMS))]
    kind = int(rng.integers(7))
    a, b = (int(x) for x in rng.integers(2, 20, 2))
    if kind == 0:
        return Problem(f"{name} has {a} {item} and buys {b} more. How many {item} does {name} "
                       "have now?", a + b, f"{a} + {b} = {a + b}")
    if kind == 1:
        total = a + b
        return Problem(f"{name} had {total} dollars and spent {b} dollars. How many dollars "
                       f"does {name} have left?", a, f"{total} - {b} = {a}")
    if kind == 2:
        n = int(rng.integers(2, 7))
        return Problem(f"A box holds {a} {item}. How many {item} are in {n} boxes?", a * n,
                       f"{a} * {n} = {a * n}")
    if kind == 3:
        n = int(rng.integers(2, 8))
        return Problem(f"{name} reads {a} pages every day. How many pages does {name} read in "
                       f"{n} days?", a * n, f"{a} * {n} = {a * n}")
    if kind == 4:
        n = int(rng.integers(2, 7))
        return Problem(f"{a * n} {item} are shared equally among {n} children. How many "
                       f"{item} does each child get?", a, f"{a * n} / {n} = {a}")
    if kind == 5:
        n = int(rng.integers(2, 6))
        give = int(rng.integers(1, a * n))
        return Problem(f"{name} buys {n} packs of {item} with {a} {item} in each pack and gives "
                       f"{give} {item} to a friend. How many {item} does {name} have now?",
                       a * n - give, f"{n} * {a} = {a * n}. {a * n} - {give} = {a * n - give}")
    c = int(rng.integers(1, a + b))
    return Problem(f"{name} has {a} red {item} and {b} blue {item}, then gives away {c} of "
                   f"them. How many {item} does {name} have left?", a + b - c,
                   f"{a} + {b} = {a + b}. {a + b} - {c} = {a + b - c}")


def make_problems(n: int, seed: int) -> list[Problem]:
    """``n`` problems from ``seed`` (distinct questions)."""
    if n <= 0:
        raise ValueError(f"make_problems: n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        p = _problem(rng)
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out


def few_shot_prompt(question: str, shots: list[Problem]) -> str:
    head = "".join(f"Question: {s.question}\nAnswer: {s.solution}. The answer is {s.answer}.\n\n"
                   for s in shots)
    return f"{head}Question: {question}\nAnswer:"


def parse_answer(text: str) -> int | None:
    """The integer after "answer is", else the last integer in ``text``, else None."""
    m = re.search(r"answer is\s*(-?\d+)", text)
    if m:
        return int(m.group(1))
    nums = re.findall(r"-?\d+", text)
    return int(nums[-1]) if nums else None


def accuracy(sampler, problems: list[Problem], shots: list[Problem], *,
             max_new_tokens: int = 32) -> tuple[float, list[str]]:
    """Greedy few-shot accuracy of a :class:`~llm_tools.Sampler` and its raw answers."""
    prompts = [few_shot_prompt(p.question, shots) for p in problems]
    out = sampler.generate(prompts, max_new_tokens=max_new_tokens, temperature=0.0,
                           stop=["\n"], key=jax.random.key(0))
    texts = [o[0].text for o in out]
    correct = [parse_answer(t) == p.answer for t, p in zip(texts, problems, strict=True)]
    return float(np.mean(correct)), texts
