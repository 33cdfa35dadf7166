"""Condition recognition: digits, number words, one symbol per occurrence."""

from fractions import Fraction

import pytest

from llm_tools.abstral import recognize_conditions, to_fraction


def test_digits_words_and_symbols():
    q = ("Benny saw a 10-foot shark with 2 6-inch remoras. He paid $400,000 and 3.5% tax, "
         "twice a week, for one third of 1/4 of twenty-one days; Twice is 2.")
    c = recognize_conditions(q)
    assert list(c.values.values()) == [Fraction(10), Fraction(2), Fraction(6), Fraction(400000),
                                       Fraction(7, 2), Fraction(2), Fraction(1, 3),
                                       Fraction(1, 4), Fraction(21), Fraction(2), Fraction(2)]
    assert list(c.values) == [f"in{i}" for i in range(11)]
    assert c.abstract_question == (
        "Benny saw a in0-foot shark with in1 in2-inch remoras. He paid $in3 and in4% tax, "
        "in5 a week, for in6 of in7 of in8 days; in9 is in10.")
    for start, end, sym in c.spans:
        assert to_fraction(q[start:end].replace("twice", "2").replace("Twice", "2")
                           .replace("one third", "1/3").replace("twenty-one", "21")) \
            == c.values[sym]


def test_words_inside_other_words_and_ordinals_are_not_numbers():
    c = recognize_conditions("Someone was the 1st to arrive; none of the tens left; a 3rd.")
    assert c.values == {}
    c = recognize_conditions("A six-sided die is rolled three times by thirty-two people.")
    assert list(c.values.values()) == [6, 3, 32]
    assert c.abstract_question == "A in0-sided die is rolled in1 times by in2 people."


def test_symbol_lookup():
    c = recognize_conditions("A has 5 and B has 5 and C has 7.")
    assert c.symbol_of(5) == "in0" and c.symbol_of(7.0) == "in2" and c.symbol_of(8) is None
    start = c.question.index("B")
    assert c.symbols_in(start, len(c.question)) == ["in1", "in2"]


def test_to_fraction():
    assert to_fraction(0.1) == Fraction(1, 10)
    assert to_fraction("1,250.5") == Fraction(2501, 2)
    assert to_fraction(" 3/4") == Fraction(3, 4)
    with pytest.raises(ValueError, match="to_fraction: expected a number, got True"):
        to_fraction(True)
    with pytest.raises(ValueError, match="expected a number, got 'abc'"):
        to_fraction("abc")


def test_bad_input():
    with pytest.raises(TypeError, match="recognize_conditions: question must be a str, got int"):
        recognize_conditions(3)
