"""Final-answer extraction and normalization: boxed, numeric, multiple choice, yes/no.

Every rollout is reduced to one normalized answer string (``""`` when none can be read), so
answer distributions and accuracies are counts over strings.

- ``boxed``: the content of the last ``\\boxed{...}`` (balanced braces, as the reference's
  ``extract_boxed_answers``), normalized as the reference's ``normalize_latex`` does the
  simple cases (lower case, no spaces, ``\\dfrac`` → ``\\frac``, ``\\%``/``{,}`` dropped,
  ``\\text{..}`` unwrapped); ``\\frac{3}{4}`` → ``3/4``; then, if the result is a number, as
  ``numeric``.
- ``numeric``: the last ``\\boxed{}`` if any, else the number after ``#### `` (GSM8K), else
  after "answer is", else the last number in the text; ``1,000`` → ``1000``, ``12.0`` →
  ``12``, ``$5`` → ``5``, ``3/4`` → ``3/4`` in lowest terms, ``-0`` → ``0``.
- ``choice``: a letter A-E from ``\\boxed{B}``, "answer is (B)", "Answer: B", or a lone
  ``(B)``; upper case.
- ``yes_no``: ``yes``/``no`` from ``\\boxed{yes}``, "answer is no", "Answer: yes", else the
  last standalone yes/no word.

References:
  Bogdan et al., "Thought Anchors", 2025 (``utils.extract_boxed_answers``, ``normalize_answer``).
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["ANSWER_KINDS", "answers_match", "extract_answer", "extract_boxed", "normalize_answer"]

ANSWER_KINDS = ("boxed", "numeric", "choice", "yes_no")

_NUM = r"[-+]?\$?\s*\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|[-+]?\$?\.\d+"
_NUM_RE = re.compile(_NUM)


def _check(who: str, text, kind: str | None = None) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{who}: text must be str, got {type(text).__name__}")
    if kind is not None and kind not in ANSWER_KINDS:
        raise ValueError(f"{who}: kind must be one of {list(ANSWER_KINDS)}, got {kind!r}")


def extract_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` in ``text``, braces balanced (nested ones kept).

    An unclosed box yields what follows it to the end of the text (a forced-answer rollout cut
    by its token budget still shows its answer). Empty boxes are skipped.
    """
    _check("extract_boxed", text)
    out = []
    for m in re.finditer(r"\\boxed\s*\{", text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        content = text[m.end(): j - 1] if depth == 0 else text[m.end():]
        if content.strip():
            out.append(content.strip())
    return out


def _canonical_number(s: str) -> str | None:
    s = s.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    if "/" in s:
        return f"{value.numerator}/{value.denominator}"
    return format(float(value), ".12g")


def _latex(s: str) -> str:
    s = s.strip().lower()
    s = s.replace("dfrac", "frac").replace("tfrac", "frac")
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\mathrm\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\%", "").replace("{,}", "").replace("\\!", "").replace("\\$", "")
    s = s.replace("\\times", "*").replace("\\cdot", "*")
    return re.sub(r"\s+", "", s)


def normalize_answer(answer: str, kind: str = "numeric") -> str:
    """Canonical form of an answer string of the given ``kind`` (``""`` if it is not one).

    Raises:
      TypeError: if ``answer`` is not a str.
      ValueError: for an unknown ``kind``.
    """
    _check("normalize_answer", answer, kind)
    a = answer.strip()
    if kind == "boxed":
        a = _latex(a)
        a = re.sub(r"^(-?)\\frac\{?(\d+)\}?\{?(\d+)\}?$", r"\1\2/\3", a)
        a = re.sub(r"\{([^{}]+)\}", r"\1", a)  # unneeded braces, as the reference
        n = _canonical_number(a)
        return n if n is not None else a
    if kind == "numeric":
        n = _canonical_number(a)
        if n is None:
            m = _NUM_RE.findall(a.replace("\\!", ""))
            n = _canonical_number(m[-1]) if m else None
        return n or ""
    if kind == "choice":
        m = re.fullmatch(r"\(?\s*([A-Ea-e])\s*\)?\.?", a)
        return m.group(1).upper() if m else ""
    m = re.fullmatch(r"(yes|no)\b\W*", a.lower())
    return m.group(1) if m else ""


def extract_answer(text: str, kind: str = "numeric") -> str:
    """The normalized final answer of a completion (``""`` when none is found).

    Args:
      text: the rollout's text after the cut (or the whole CoT plus answer).
      kind: one of :data:`ANSWER_KINDS`.

    Raises:
      TypeError: if ``text`` is not a str.
      ValueError: for an unknown ``kind``.
    """
    _check("extract_answer", text, kind)
    boxed = extract_boxed(text)
    if boxed:
        return normalize_answer(boxed[-1], kind)
    if kind == "boxed":
        return ""
    if kind == "numeric":
        for pat in (r"####\s*(" + _NUM + ")", r"answer is[:\s]*(" + _NUM + ")",
                    r"answer:\s*(" + _NUM + ")"):
            hits = re.findall(pat, text, flags=re.IGNORECASE)
            if hits:
                return normalize_answer(hits[-1], kind)
        nums = _NUM_RE.findall(text)
        return normalize_answer(nums[-1], kind) if nums else ""
    if kind == "choice":
        for pat in (r"answer is[:\s]*\(?([A-E])\)?(?![A-Za-z])",
                    r"answer:\s*\(?([A-E])\)?(?![A-Za-z])", r"\(([A-E])\)"):
            hits = re.findall(pat, text, flags=re.IGNORECASE if "answer" in pat else 0)
            if hits:
                return hits[-1].upper()
        return ""
    for pat in (r"answer is[:\s]*(yes|no)\b", r"answer:\s*(yes|no)\b"):
        hits = re.findall(pat, text, flags=re.IGNORECASE)
        if hits:
            return hits[-1].lower()
    words = re.findall(r"\b(yes|no)\b", text, flags=re.IGNORECASE)
    return words[-1].lower() if words else ""


def answers_match(answer: str, truth: str, kind: str = "numeric") -> bool:
    """Whether a normalized ``answer`` equals the normalized ``truth`` (empty never matches)."""
    a, t = normalize_answer(answer, kind), normalize_answer(truth, kind)
    return bool(a) and a == t
