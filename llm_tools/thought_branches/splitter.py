"""Sentence splitting of a chain of thought with exact character offsets.

The rule is the Thought Anchors reference's (Bogdan et al. 2025, ``split_solution_into_chunks``):

1. a sentence ends after ``.``, ``?`` or ``!`` when the next character is whitespace;
2. a blank line (a line break, optional spaces or tabs, another line break) ends a chunk;
3. each chunk is the text between two boundaries with its surrounding whitespace removed;
   whitespace-only chunks vanish;
4. a chunk shorter than ``min_chars`` (10) characters is merged into the next one (the last
   chunk, if short, into the one before), repeating until no short chunk is left (a lone short
   chunk stays); a merged chunk's length counts each gap between its parts as one character.

Two deliberate differences from the reference: a trailing chunk without end punctuation is
kept (the reference drops it, so the final answer line vanished), and every sentence is a
``(start, end)`` span of the original text. Merged chunks keep the original whitespace between
their parts (the reference re-joins with one space), so ``text[start:end]`` *is* the sentence,
and the original is rebuilt exactly from the spans and the whitespace gaps between them.
Sentences are addressed by index and offset, never by searching for their string (the
reference's ``prefix.replace(chunk, "")`` also removes an earlier copy of a repeated sentence).

References:
  Bogdan, Macar, Nanda, Conmy, "Thought Anchors: Which LLM Reasoning Steps Matter?", 2025
  (arXiv:2506.19143).
  Macar, Bogdan, Rajamanoharan, Nanda, "Thought Branches: Interpreting LLM Reasoning Requires
  Resampling", 2025 (arXiv:2510.27484).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

__all__ = ["Sentence", "first_sentence", "join_sentences", "split_sentences"]

_END = ".?!"
_BLANK_LINE = re.compile(r"\r?\n[ \t\r]*\n")


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence of a text: ``text == source[start:end]`` (no leading/trailing whitespace).

    Attributes:
      index: position in the split (0-based).
      start: offset of its first character in the source text.
      end: offset one past its last character.
      text: the sentence itself.
    """

    index: int
    start: int
    end: int
    text: str


def _check_text(who: str, text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{who}: text must be str, got {type(text).__name__}")
    return text


def _raw_spans(text: str) -> list[tuple[int, int]]:
    """Stripped, non-empty spans between boundaries (rules 1-3)."""
    cuts = {0, len(text)}
    for i in range(len(text) - 1):
        if text[i] in _END and text[i + 1].isspace():
            cuts.add(i + 1)
    for m in _BLANK_LINE.finditer(text):
        cuts.add(m.start())
    bounds = sorted(cuts)
    spans = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))
    return spans


def _merge_short(spans: list[tuple[int, int]], min_chars: int) -> list[tuple[int, int]]:
    """Rule 4. A merged chunk's length counts each gap between its parts as one character,
    as the reference's ``a + " " + b`` does, so both merge exactly the same chunks."""
    items = [(a, b, b - a) for a, b in spans]
    i = 0
    while i < len(items):
        a, b, n = items[i]
        if n >= min_chars or len(items) == 1:
            i += 1
            continue
        if i == len(items) - 1:  # the last chunk joins the one before
            pa, _, pn = items[i - 1]
            items[i - 1] = (pa, b, pn + 1 + n)
            items.pop(i)
        else:  # join the next one and look at the merged chunk again
            _, nb, nn = items[i + 1]
            items[i + 1] = (a, nb, n + 1 + nn)
            items.pop(i)
    return [(a, b) for a, b, _ in items]


def split_sentences(text: str, *, min_chars: int = 10) -> list[Sentence]:
    """Splits ``text`` into sentences with exact offsets (rules in the module docstring).

    Args:
      text: the chain of thought (without the prompt).
      min_chars: chunks with fewer characters are merged into a neighbour (reference: 10).

    Returns:
      The sentences in order; ``s.text == text[s.start:s.end]`` and only whitespace lies
      between consecutive sentences and around them.

    Raises:
      TypeError: if ``text`` is not a str.
      ValueError: if ``text`` is empty or only whitespace, or ``min_chars`` is negative.
    """
    text = _check_text("split_sentences", text)
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 0:
        raise ValueError(f"split_sentences: min_chars must be an int >= 0, got {min_chars!r}")
    if not text.strip():
        raise ValueError("split_sentences: the chain of thought is empty (no non-whitespace "
                         f"characters in {text!r:.40})")
    spans = _merge_short(_raw_spans(text), min_chars)
    return [Sentence(i, a, b, text[a:b]) for i, (a, b) in enumerate(spans)]


def join_sentences(text: str, sentences: Sequence[Sentence]) -> str:
    """Rebuilds ``text`` from its sentences and the whitespace gaps between them.

    This is the inverse the offsets guarantee; it raises if they do not describe ``text``.

    Raises:
      ValueError: if the spans overlap, run out of order, do not match their text, or a gap
        between them holds something other than whitespace.
    """
    text = _check_text("join_sentences", text)
    out, pos = [], 0
    for s in sentences:
        if s.start < pos or s.end > len(text) or text[s.start:s.end] != s.text:
            raise ValueError(f"join_sentences: sentence {s.index} ({s.start}, {s.end}) does not "
                             "match the text at its offsets")
        gap = text[pos:s.start]
        if gap.strip():
            raise ValueError(f"join_sentences: non-whitespace {gap.strip()[:20]!r} lies outside "
                             f"every sentence before offset {s.start}")
        out += [gap, s.text]
        pos = s.end
    if text[pos:].strip():
        raise ValueError("join_sentences: non-whitespace text after the last sentence")
    out.append(text[pos:])
    return "".join(out)


def first_sentence(text: str, *, min_chars: int = 10) -> str:
    """The first sentence of a continuation (``""`` when it holds only whitespace).

    Used for the resampled sentence of a rollout: the reference's
    ``split_solution_into_chunks(rollout)[0]``, except that an unpunctuated continuation still
    yields its text.
    """
    text = _check_text("first_sentence", text)
    if not text.strip():
        return ""
    return split_sentences(text, min_chars=min_chars)[0].text
