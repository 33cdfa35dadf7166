"""Sentence splitter: exact offsets (property tests) and agreement with the published rule."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llm_tools.thought_branches import first_sentence, join_sentences, split_sentences


def reference_chunks(text: str, keep_last: bool = True) -> list[str]:
    """The Thought Anchors reference's character loop, written out from its description.

    ``keep_last`` adds the trailing chunk (the reference drops it; the issue asks to keep it).
    """
    chunks, cur, i = [], "", 0
    while i < len(text):
        cur += text[i]
        para = text[i:i + 2] == "\n\n" or text[i:i + 4] == "\r\n\r\n"
        sent = i < len(text) - 1 and text[i] in ".?!" and text[i + 1] in (" ", "\n")
        if (para or sent) and cur.strip():
            chunks.append(cur.strip())
            cur = ""
        i += 1
    if keep_last and cur.strip():
        chunks.append(cur.strip())
    i = 0
    while i < len(chunks):
        if len(chunks[i]) < 10:
            if i == len(chunks) - 1:
                if i > 0:
                    chunks[i - 1] = chunks[i - 1] + " " + chunks[i]
                    chunks.pop(i)
            else:
                chunks[i + 1] = chunks[i] + " " + chunks[i + 1]
                chunks.pop(i)
            if i == 0 and len(chunks) == 1:
                break
        else:
            i += 1
    return chunks


PIECES = ["Let", "x", "be", "12", "3.5", "apples", "so", "the", "answer", "is", "7", "Wait",
          " ", " ", " ", ". ", "? ", "! ", ".", "\n", "\n\n", ",", "=", "*", "  "]
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=60).map("".join)


def _norm(s: str) -> str:
    return " ".join(s.split())


@settings(max_examples=300, deadline=None)
@given(texts)
def test_offsets_round_trip_exactly(text):
    assume(text.strip())
    sents = split_sentences(text)
    assert join_sentences(text, sents) == text
    for k, s in enumerate(sents):
        assert s.index == k
        assert text[s.start:s.end] == s.text
        assert s.text == s.text.strip() and s.text
    for a, b in zip(sents[:-1], sents[1:], strict=True):
        assert a.end <= b.start and not text[a.end:b.start].strip()
    assert not text[:sents[0].start].strip() and not text[sents[-1].end:].strip()


@settings(max_examples=300, deadline=None)
@given(texts)
def test_same_chunks_as_the_reference_rule(text):
    assume(text.strip() and "\n \n" not in text and "\n  \n" not in text)
    ours = [_norm(s.text) for s in split_sentences(text)]
    assert ours == [_norm(c) for c in reference_chunks(text)]


def test_repeated_sentences_and_trailing_chunk_keep_their_own_offsets():
    text = "We add 3 and 4 to get 7.  We add 3 and 4 to get 7.\n\nSo the answer is 7"
    sents = split_sentences(text)
    assert [s.text for s in sents] == ["We add 3 and 4 to get 7.", "We add 3 and 4 to get 7.",
                                       "So the answer is 7"]
    assert [(s.start, s.end) for s in sents] == [(0, 24), (26, 50), (52, 70)]
    # the reference drops the unpunctuated tail
    assert reference_chunks(text, keep_last=False) == [s.text for s in sents[:2]]


def test_short_chunks_merge_forward_and_the_last_backward():
    text = "Ok. Now 12 * 3 = 36. Done."
    sents = split_sentences(text)
    assert [s.text for s in sents] == ["Ok. Now 12 * 3 = 36. Done."]
    text = "First, 12 * 3 = 36.\n\nThen 36 - 5 = 31. Yes."
    assert [s.text for s in split_sentences(text)] == ["First, 12 * 3 = 36.",
                                                       "Then 36 - 5 = 31. Yes."]


def test_decimal_points_and_blank_lines():
    text = "It costs 3.50 dollars.\nNext line here\n \nAfter a blank line"
    assert [s.text for s in split_sentences(text)] == [
        "It costs 3.50 dollars.", "Next line here", "After a blank line"]


def test_first_sentence():
    assert first_sentence(" Then 36 - 5 = 31. So it is 31.") == "Then 36 - 5 = 31."
    assert first_sentence("no end punctuation here") == "no end punctuation here"
    assert first_sentence("  \n") == ""


def test_bad_inputs():
    with pytest.raises(ValueError, match="split_sentences: the chain of thought is empty"):
        split_sentences("   \n ")
    with pytest.raises(TypeError, match="split_sentences: text must be str, got bytes"):
        split_sentences(b"abc")
    with pytest.raises(ValueError, match="min_chars must be an int >= 0, got -1"):
        split_sentences("abc.", min_chars=-1)
    sents = split_sentences("One sentence here. Two sentences here.")
    with pytest.raises(ValueError, match="does not match the text at its offsets"):
        join_sentences("One sentence here! Two sentences here.", sents)
    with pytest.raises(ValueError, match="non-whitespace text after the last sentence"):
        join_sentences("One sentence here. Two sentences here. Three.", sents)
    with pytest.raises(TypeError, match="first_sentence: text must be str"):
        first_sentence(None)
