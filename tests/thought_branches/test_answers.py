"""Answer extraction and normalization."""

import pytest

from llm_tools.thought_branches import (
    answers_match,
    extract_answer,
    extract_boxed,
    normalize_answer,
)


def test_boxed_nested_and_unclosed():
    assert extract_boxed(r"so \boxed{\frac{1}{2}} and \boxed{ 7 }") == [r"\frac{1}{2}", "7"]
    assert extract_boxed(r"x \boxed{} y") == []
    assert extract_boxed(r"Therefore the answer is \boxed{42") == ["42"]


@pytest.mark.parametrize("text,kind,expected", [
    (r"... \boxed{1,000}", "numeric", "1000"),
    ("so 3 * 4 = 12.\n#### 12", "numeric", "12"),
    ("The answer is $1,250.00.", "numeric", "1250"),
    ("We get 7 apples, then 9 apples", "numeric", "9"),
    ("Answer: -0", "numeric", "0"),
    ("answer is 6/8", "numeric", "3/4"),
    ("answer is 2.50", "numeric", "2.5"),
    ("no digits at all", "numeric", ""),
    (r"\boxed{\dfrac{6}{8}}", "boxed", "3/4"),
    (r"\boxed{x^{2}}", "boxed", "x^2"),
    (r"\boxed{\text{Yes}}", "boxed", "yes"),
    (r"\boxed{12.0}", "boxed", "12"),
    ("I think (B) fits, so the answer is (C).", "choice", "C"),
    ("Answer: d", "choice", "D"),
    (r"\boxed{B}", "choice", "B"),
    ("nothing", "choice", ""),
    ("Is it more? No. So the answer is yes.", "yes_no", "yes"),
    ("Answer: NO", "yes_no", "no"),
    ("... I would say no", "yes_no", "no"),
    (r"\boxed{Yes}", "yes_no", "yes"),
])
def test_extract_answer(text, kind, expected):
    assert extract_answer(text, kind) == expected


def test_normalize_and_match():
    assert normalize_answer(" 12.000 ") == "12"
    assert normalize_answer("(b)", "choice") == "B"
    assert normalize_answer("Yes!", "yes_no") == "yes"
    assert answers_match("1,000", "1000")
    assert not answers_match("", "")
    assert not answers_match("12", "13")


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"extract_answer: kind must be one of \['boxed', "
                                         r"'numeric', 'choice', 'yes_no'\], got 'mcq'"):
        extract_answer("x", "mcq")
    with pytest.raises(TypeError, match="extract_answer: text must be str, got NoneType"):
        extract_answer(None)
    with pytest.raises(TypeError, match="normalize_answer: text must be str, got int"):
        normalize_answer(12)
    with pytest.raises(TypeError, match="extract_boxed: text must be str"):
        extract_boxed(3)
    with pytest.raises(ValueError, match="normalize_answer: kind must be one of"):
        answers_match("1", "1", kind="x")
