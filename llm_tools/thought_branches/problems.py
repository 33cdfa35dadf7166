"""Problems that run offline: generated word problems, GSM-Symbolic instances, decision prompts.

Generated problems are two-step grade-school word problems with exact integer answers, drawn
from a ``jax.random.key`` (five templates: multiply-then-subtract, change from a purchase,
multiply-then-add, share-after-keeping, add-then-multiply). Each comes with a worked chain of
thought in a fixed style whose sentences have the four roles of :mod:`taxonomy`: a plan
sentence, a computation, sometimes a check, and the answer, e.g.::

    First, find how many apples there are. 3 * 14 = 42. Then take away the 5 she gave away.
    42 - 5 = 37. Check: 37 + 5 = 42. So the answer is 37.

With probability ``p_slip`` a computation is first written wrong and corrected ("3 * 14 = 32.
Wait, that is not right. 3 * 14 = 42."), so a model trained on them has seen self-correction.
Decision problems ask a yes/no question whose answer needs the same arithmetic ("Can she buy 4
books?"). Real problems come from the 100 GSM-Symbolic templates
(:mod:`llm_tools.gsm_symbolic`, after ``python -m llm_tools.fetch gsm_symbolic``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

__all__ = ["Problem", "decision_problems", "format_prompt", "generated_problems",
           "gsm_symbolic_problems"]

_NAMES = ("Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jia", "Kai", "Lea",
          "Max", "Nia", "Omar", "Pia", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Yara", "Zed")
_SHE = {n: ("she" if n in {"Ana", "Cara", "Fay", "Hana", "Jia", "Lea", "Nia", "Pia", "Sara",
                           "Uma", "Wen", "Yara"} else "he") for n in _NAMES}
_ITEMS = ("apple", "book", "card", "pen", "shell", "stamp", "marble", "cookie", "sticker", "toy")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem with an exact answer.

    Attributes:
      id: a store-safe identifier (``gen-3``, ``dec-0``, ``gsm-12-0``).
      question: the question text.
      answer: the normalized answer (``"37"``, ``"yes"``).
      kind: ``"numeric"`` or ``"yes_no"`` (see :func:`~llm_tools.thought_branches.extract_answer`).
      solution: a worked chain of thought ending in the answer (for training; may be empty).
      source: ``"generated"``, ``"decision"`` or ``"gsm_symbolic"``.
    """

    id: str
    question: str
    answer: str
    kind: str
    solution: str = ""
    source: str = "generated"


def format_prompt(problem: Problem) -> str:
    """The plain prompt our small trained model reads: ``"Q: <question>\\nA:"``."""
    return f"Q: {problem.question}\nA:"


def _compute(rng, a, op, b, r, p_slip):
    """``"a op b = r."``, sometimes first written wrong and corrected."""
    s = f"{a} {op} {b} = {r}."
    if rng.random() < p_slip:
        wrong = r + int(rng.choice([-10, -2, -1, 1, 2, 10]))
        if wrong >= 0 and wrong != r:
            return f"{a} {op} {b} = {wrong}. Wait, that is not right. {s}"
    return s


def _one(rng, k: int, p_slip: float, p_check: float) -> tuple[str, int, str]:
    name = str(rng.choice(_NAMES))
    pron = _SHE[name]
    item = str(rng.choice(_ITEMS))
    t = k % 5
    if t == 0:  # a * b - c
        a, b = int(rng.integers(2, 7)), int(rng.integers(3, 13))
        c = int(rng.integers(1, a * b))
        r = a * b - c
        q = (f"{name} has {a} bags with {b} {item}s in each bag. {pron.capitalize()} gives away "
             f"{c} {item}s. How many {item}s does {name} have left?")
        steps = [f"First, find how many {item}s there are.", _compute(rng, a, "*", b, a * b,
                                                                     p_slip),
                 f"Then take away the {c} {pron} gave away.", _compute(rng, a * b, "-", c, r,
                                                                      p_slip)]
        check = f"Check: {r} + {c} = {a * b}."
    elif t == 1:  # c - a * b (change)
        a, b = int(rng.integers(2, 7)), int(rng.integers(2, 13))
        c = a * b + int(rng.integers(1, 20))
        r = c - a * b
        q = (f"{name} buys {a} {item}s that cost {b} dollars each and pays with {c} dollars. "
             f"How many dollars of change does {pron} get?")
        steps = ["First, find the total cost.", _compute(rng, a, "*", b, a * b, p_slip),
                 "Then subtract it from what was paid.", _compute(rng, c, "-", a * b, r, p_slip)]
        check = f"Check: {a * b} + {r} = {c}."
    elif t == 2:  # a * b + c
        a, b = int(rng.integers(2, 7)), int(rng.integers(3, 13))
        c = int(rng.integers(1, 20))
        r = a * b + c
        q = (f"{name} reads {b} pages a day for {a} days and then {c} more pages. How many "
             f"pages does {pron} read in all?")
        steps = ["First, find the pages read over the days.", _compute(rng, a, "*", b, a * b,
                                                                       p_slip),
                 f"Then add the {c} extra pages.", _compute(rng, a * b, "+", c, r, p_slip)]
        check = f"Check: {r} - {c} = {a * b}."
    elif t == 3:  # (n - c) / b
        b, r = int(rng.integers(2, 7)), int(rng.integers(2, 10))
        c = int(rng.integers(1, 10))
        n = b * r + c
        q = (f"{name} has {n} {item}s, keeps {c} of them and shares the rest equally among {b} "
             f"friends. How many {item}s does each friend get?")
        steps = [f"First, find how many {item}s are shared.", _compute(rng, n, "-", c, n - c,
                                                                       p_slip),
                 f"Then split them among {b} friends.", _compute(rng, n - c, "/", b, r, p_slip)]
        check = f"Check: {r} * {b} = {n - c}."
    else:  # (a + b) * c
        a, b, c = int(rng.integers(2, 10)), int(rng.integers(2, 10)), int(rng.integers(2, 7))
        r = (a + b) * c
        q = (f"{name} has {a} red {item}s and {b} blue {item}s. Each {item} costs {c} dollars. "
             f"How many dollars do all the {item}s cost?")
        steps = [f"First, count the {item}s.", _compute(rng, a, "+", b, a + b, p_slip),
                 f"Then multiply by the price of {c} dollars.",
                 _compute(rng, a + b, "*", c, r, p_slip)]
        check = f"Check: {r} / {c} = {a + b}."
    if rng.random() < p_check:
        steps.append(check)
    steps.append(f"So the answer is {r}.")
    return q, r, " ".join(steps)


def _rng(key, who) -> np.random.Generator:
    if not isinstance(key, jax.Array) or not jax.dtypes.issubdtype(key.dtype,
                                                                   jax.dtypes.prng_key):
        raise TypeError(f"{who}: key must be a typed key from jax.random.key(seed), got "
                        f"{type(key).__name__}")
    seed = np.asarray(jax.random.bits(key, (2,), np.uint32)).astype(np.uint64)
    return np.random.default_rng(int(seed[0]) << 32 | int(seed[1]))


def _check_n(who, n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{who}: n must be a positive int, got {n!r}")


def generated_problems(n: int, *, key: jax.Array, p_slip: float = 0.1, p_check: float = 0.5,
                       prefix: str = "gen") -> list[Problem]:
    """``n`` generated two-step word problems with worked solutions (templates in rotation).

    Raises:
      ValueError: ``n < 1`` or probabilities outside [0, 1]. TypeError: a non-key ``key``.
    """
    _check_n("generated_problems", n)
    for name, p in (("p_slip", p_slip), ("p_check", p_check)):
        if not 0 <= p <= 1:
            raise ValueError(f"generated_problems: {name} must lie in [0, 1], got {p!r}")
    rng = _rng(key, "generated_problems")
    out = []
    for k in range(n):
        q, r, sol = _one(rng, k, p_slip, p_check)
        out.append(Problem(f"{prefix}-{k}", q, str(r), "numeric", sol, "generated"))
    return out


def decision_problems(n: int, *, key: jax.Array, p_slip: float = 0.1,
                      prefix: str = "dec") -> list[Problem]:
    """``n`` yes/no decisions that need arithmetic ("Can she buy 4 books with 30 dollars?").

    About half the answers are yes. The worked solution computes, compares and answers.

    Raises:
      ValueError: ``n < 1``. TypeError: a non-key ``key``.
    """
    _check_n("decision_problems", n)
    rng = _rng(key, "decision_problems")
    out = []
    for k in range(n):
        name = str(rng.choice(_NAMES))
        pron, item = _SHE[name], str(rng.choice(_ITEMS))
        a, b = int(rng.integers(2, 7)), int(rng.integers(2, 13))
        cost = a * b
        have = cost + int(rng.integers(1, 12)) * (1 if k % 2 == 0 else -1)
        have = max(have, 1)
        yes = have >= cost
        q = (f"{name} has {have} dollars. A {item} costs {b} dollars. Can {pron} buy {a} "
             f"{item}s? Answer yes or no.")
        cmp = "not more than" if yes else "more than"
        sol = " ".join(["First, find the cost.", _compute(rng, a, "*", b, cost, p_slip),
                        f"Then compare it with {have}.", f"{cost} is {cmp} {have}.",
                        f"So the answer is {'yes' if yes else 'no'}."])
        out.append(Problem(f"{prefix}-{k}", q, "yes" if yes else "no", "yes_no", sol,
                           "decision"))
    return out


def gsm_symbolic_problems(n: int, *, key: jax.Array, template_ids: Sequence[int] | None = None,
                          source=None) -> list[Problem]:
    """``n`` instances of GSM-Symbolic templates (round robin over ``template_ids``).

    The solution is the template's worked answer without its ``<<…>>`` calculator notes, ending
    in ``So the answer is N.``

    Raises:
      FileNotFoundError: if the wheel was not fetched (``python -m llm_tools.fetch
        gsm_symbolic``).
    """
    import re

    from llm_tools.gsm_symbolic import load_templates

    _check_n("gsm_symbolic_problems", n)
    templates = load_templates(source)
    ids = list(range(len(templates))) if template_ids is None else list(template_ids)
    keys = jax.random.split(key, n)
    out = []
    for k in range(n):
        t = templates[ids[k % len(ids)]]
        inst = t.instantiate(keys[k])
        body, _, final = re.sub(r"<<[^>]*>>", "", inst.answer).rpartition("####")
        lines = [" ".join(line.split()) for line in body.splitlines() if line.strip()]
        lines = [line if line[-1] in ".?!" else line + "." for line in lines]
        sol = " ".join(lines) + f" So the answer is {final.strip()}."
        out.append(Problem(f"gsm-{t.id}-{k}", inst.question, final.strip().replace(",", ""),
                           "numeric", sol, "gsm_symbolic"))
    return out
