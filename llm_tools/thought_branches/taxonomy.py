"""Sentence types of a chain of thought: plan, compute, check, answer (and other).

Thought Anchors labels sentences with an LLM judge (problem setup, plan generation, active
computation, uncertainty management, result consolidation, final answer emission, …). Offline
and at our scale we use a transparent rule set over the same four roles the issue asks about;
the first rule that matches wins:

1. ``answer`` — states the final answer (``answer is``, ``Answer:``, ``\\boxed``, ``####``);
2. ``check`` — verifies or doubts (check, verify, wait, make sure, double, confirm, recheck);
3. ``compute`` — carries out arithmetic (a number, an operator or "=" and another number, or
   an operation word between numbers: ``3 * 4 = 12``, ``12 minus 2 is 10``);
4. ``plan`` — says what will be done (starts with then / next / now / after that, or contains
   first, then I, we need, I need, let's, let me, to find, plan, step, so we, we will, I will).
   The leading "then" was added after the first standard-size run, whose summaries showed
   "Then take away the 5 she gave away." as ``other``; both summaries are in the docs;
5. ``other``.
"""

from __future__ import annotations

import re

__all__ = ["SENTENCE_TYPES", "sentence_type"]

SENTENCE_TYPES = ("plan", "compute", "check", "answer", "other")

_ANSWER = re.compile(r"answer is|answer:|\\boxed|####", re.IGNORECASE)
_CHECK = re.compile(r"\b(check|verify|wait|make sure|double|confirm|recheck|re-check|hmm)\b",
                    re.IGNORECASE)
_COMPUTE = re.compile(r"\d\s*(?:[-+*/×÷=]|times|plus|minus|divided by|multiplied by|is|makes|"
                      r"gives|equals)\s*\$?\d", re.IGNORECASE)
_PLAN = re.compile(r"^\s*(then|next|now|after that)\b|\b(first|then i|we need|i need|let'?s|"
                   r"let me|to find|plan|step|so we|we will|i will|i'll|we can|i can|start by|"
                   r"begin)\b", re.IGNORECASE)


def sentence_type(text: str) -> str:
    """The role of one sentence (rules in the module docstring).

    Raises:
      TypeError: if ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"sentence_type: text must be str, got {type(text).__name__}")
    for name, pat in (("answer", _ANSWER), ("check", _CHECK), ("compute", _COMPUTE),
                      ("plan", _PLAN)):
        if pat.search(text):
            return name
    return "other"
