"""AbstRaL's condition recognition: the numbers of a question become symbols ``in0, in1, ...``.

The paper prompts a large LLM to label the numbers of a question (and to turn implicit numbers
such as "one hundred" into digits) before replacing them by symbols. Here recognition is
deterministic: digits (``12``, ``3.5``, ``400,000``, ``1/2``) and a fixed English lexicon
(``one``..``ninety-nine``, ``twice``, ``thrice``, ``double``, ``triple``, ``half``,
``a dozen``, fractions such as ``two thirds`` or ``one quarter``) are found, and each distinct
occurrence gets its own symbol in order of appearance (``in0`` is the first number of the
question), so the abstract question of a template does not depend on which values happen to
coincide.

References:
  Gao, Bosselut, Bengio, Abbe, "AbstRaL: Augmenting LLMs' Reasoning by Reinforcing Abstract
  Thinking", arXiv:2506.07751, 2025 (section 3, condition recognition).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["NUMBER_WORDS", "Conditions", "recognize_conditions", "to_fraction"]

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
          "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
          "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_DENOMS = {"third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
           "eighth": 8, "ninth": 9, "tenth": 10}


def _number_words() -> dict[str, Fraction]:
    words: dict[str, Fraction] = {}
    for i, w in enumerate(_UNITS[1:], start=1):
        words[w] = Fraction(i)
    for t in range(2, 10):
        words[_TENS[t]] = Fraction(10 * t)
        for u in range(1, 10):
            words[f"{_TENS[t]}-{_UNITS[u]}"] = Fraction(10 * t + u)
    words.update({"twice": Fraction(2), "thrice": Fraction(3), "double": Fraction(2),
                  "triple": Fraction(3), "a dozen": Fraction(12), "dozen": Fraction(12),
                  "half": Fraction(1, 2), "a half": Fraction(1, 2), "a quarter": Fraction(1, 4),
                  "a third": Fraction(1, 3)})
    for d_word, d in _DENOMS.items():
        words[f"one {d_word}"] = Fraction(1, d)
        for n in range(2, 10):
            if n < d:
                words[f"{_UNITS[n]} {d_word}s"] = Fraction(n, d)
    return words


NUMBER_WORDS: Mapping[str, Fraction] = _number_words()
"""The English number lexicon (lower case) recognized besides digits."""

_WORD_RE = "|".join(re.escape(w) for w in sorted(NUMBER_WORDS, key=len, reverse=True))
_NUMBER_RE = re.compile(
    r"(?P<frac>(?<![\w.,/])\d+\s*/\s*\d+(?![\w/]))"
    r"|(?P<num>(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w]|,\d))"
    rf"|(?P<word>(?<![\w-])(?:{_WORD_RE})(?![\w]))",
    re.IGNORECASE)


def to_fraction(value) -> Fraction:
    """An exact :class:`Fraction` for an int, float (by its shortest repr), Fraction or numeric
    string (``"1/2"``, ``"0.25"``, ``"400,000"``).

    Raises:
      ValueError: for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"to_fraction: expected a number, got {value!r}")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value))
    if isinstance(value, str):
        text = value.replace(",", "").replace(" ", "")
        try:
            return Fraction(text)
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError(f"to_fraction: expected a number, got {value!r}")


@dataclass(frozen=True)
class Conditions:
    """The recognized numbers of a question.

    Attributes:
      question: the original question.
      abstract_question: the question with every recognized number replaced by its symbol.
      values: ``{"in0": Fraction, ...}``, one symbol per occurrence, in order.
      spans: ``(start, end, symbol)`` of every replaced occurrence in ``question``.
    """

    question: str
    abstract_question: str
    values: Mapping[str, Fraction]
    spans: tuple[tuple[int, int, str], ...]

    def symbol_of(self, value) -> str | None:
        """The first symbol whose value equals ``value`` (compared exactly), or ``None``."""
        target = to_fraction(value)
        for sym, v in self.values.items():
            if v == target:
                return sym
        return None

    def symbols_in(self, start: int, end: int) -> list[str]:
        """Symbols of the occurrences lying inside ``question[start:end]``."""
        return [sym for s, e, sym in self.spans if start <= s and e <= end]


def recognize_conditions(question: str) -> Conditions:
    """Replaces the numbers of ``question`` by symbols ``in0, in1, ...``.

    Args:
      question: a word problem.

    Returns:
      The :class:`Conditions` (abstract question, symbol values, spans).

    Raises:
      TypeError: if ``question`` is not a string.
    """
    if not isinstance(question, str):
        raise TypeError(f"recognize_conditions: question must be a str, got "
                        f"{type(question).__name__}")
    values: dict[str, Fraction] = {}
    spans: list[tuple[int, int, str]] = []
    pieces: list[str] = []
    last = 0
    for match in _NUMBER_RE.finditer(question):
        if match.group("word"):
            value = NUMBER_WORDS[match.group("word").lower()]
        else:
            value = to_fraction(match.group(0))
        symbol = f"in{len(values)}"
        values[symbol] = value
        spans.append((match.start(), match.end(), symbol))
        pieces.append(question[last:match.start()])
        pieces.append(symbol)
        last = match.end()
    pieces.append(question[last:])
    return Conditions(question, "".join(pieces), values, tuple(spans))
