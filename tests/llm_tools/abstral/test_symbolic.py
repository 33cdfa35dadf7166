"""The symbolic tool on hand-made abstractions: values, sympy form, refusals in bounds."""

import time
from fractions import Fraction

import pytest
import sympy

from llm_tools.abstral import (
    AbstractionError,
    agree_on,
    evaluate_abstraction,
    parse_abstraction,
    solve,
    to_sympy,
)
from llm_tools.abstral.symbolic import RoundHalfEven, Trunc


def test_equations_and_prose_forms():
    eqs = "out0 = in0 * in1\nout1 = out0 / 4\n#### out1 + 1"
    r = solve(eqs, {"in0": 6, "in1": 2})
    assert r.ok and r.value == 4 and isinstance(r.value, int)
    prose = ("He buys in0 packs of in1 = out0 cards. [out0 = in0 * in1]\n"
             "A quarter of them is out1. [out1 = out0 / 4]\n#### out1 + 1")
    assert solve(prose, {"in0": 6, "in1": 2}).value == 4
    assert solve("#### in0 / 3", {"in0": 1}).value == Fraction(1, 3)
    assert solve("#### 0.1 + 0.2", {}).value == Fraction(3, 10)  # exact decimals
    assert solve("#### in0 * 0.5", {"in0": "0.25"}).value == Fraction(1, 8)
    assert solve("out0 = in0 // in1\n#### out0 % 3 + round(in2) + int(in3)",
                 {"in0": 17, "in1": 2, "in2": Fraction(5, 2), "in3": Fraction(7, 2)}).value \
        == 8 % 3 + 2 + 3  # round half to even: round(2.5) = 2; int truncates 3.5 to 3


def test_sympy_form_is_built_from_the_tree():
    parsed = parse_abstraction("out0 = in0 * in1\n#### out0 // 4 + round(in2) - int(in3 / 2)")
    a, b, c, d = sympy.symbols("in0 in1 in2 in3")
    expected = sympy.floor(a * b / 4) + RoundHalfEven(c) - Trunc(d / 2)
    assert sympy.simplify(to_sympy(parsed) - expected) == 0
    values = {"in0": 6, "in1": 3, "in2": Fraction(7, 2), "in3": 5}
    substituted = to_sympy(parsed).subs({sympy.Symbol(k): sympy.Rational(str(v))
                                         for k, v in values.items()})
    assert substituted == evaluate_abstraction(parsed, values) == 4 + 4 - 2


@pytest.mark.parametrize("text, reason", [
    ("the answer is 12", "no '#### <answer>' line"),
    ("#### __import__('os').system('echo hacked')", "attribute access"),
    ("#### open('/etc/passwd')", "call of 'open' is not allowed"),
    ("#### in0.__class__", "attribute access"),
    ("#### (lambda: 1)()", "Lambda"),
    ("#### [x for x in in0]", "ListComp is not allowed"),
    ("#### in0 if in1 else in2", "IfExp is not allowed in an abstraction"),
    ("#### in0 > in1", "Compare is not allowed in an abstraction"),
    ("#### x + 1", "unknown names \\['x'\\]"),
    ("#### 'abc'", "constant 'abc' is not a number"),
    ("out1 = out0 + 1\nout0 = 2\n#### out1", "out1 uses \\['out0'\\] before defining it"),
    ("out0 = 1\nout0 = 2\n#### out0", "out0 is defined twice"),
    ("#### out3", "the answer uses undefined \\['out3'\\]"),
    ("#### in5 + 1", "unknown input symbols \\['in5'\\] \\(the question has in0, in1\\)"),
    ("#### in0 / (in1 - in1)", "division by zero"),
    ("#### 9 ** 9 ** 9", "exponent 387420489 exceeds 64"),
    ("#### in0 ** 60 * in0 ** 60", "larger than"),
    ("#### round(in0, 100)", "ndigits must be an int in \\[0, 12\\]"),
])
def test_bad_abstractions_are_refused_with_a_reason(text, reason):
    start = time.perf_counter()
    r = solve(text, {"in0": 2, "in1": 3})
    assert not r.ok and r.value is None
    assert pytest.importorskip("re").search(reason, r.reason), r.reason
    assert time.perf_counter() - start < 1.0


def test_exponential_expansion_is_bounded():
    chain = "\n".join(["out0 = in0 + in1"] + [f"out{k} = out{k - 1} * out{k - 1}"
                                              for k in range(1, 30)]) + "\n#### out29"
    parsed = parse_abstraction(chain)
    start = time.perf_counter()
    with pytest.raises(AbstractionError, match="expands to more than 4000 nodes"):
        to_sympy(parsed)
    r = solve(chain, {"in0": 1, "in1": 1})  # 2 ** (2 ** 29): refused by the value bound
    assert not r.ok and "larger than" in r.reason
    assert time.perf_counter() - start < 2.0
    too_many = "\n".join(f"out{k} = {k}" for k in range(40)) + "\n#### out0"
    assert "40 equations, more than 32" in solve(too_many, {}).reason


def test_agree_on():
    parsed = parse_abstraction("#### in0 * in1")
    assert agree_on(parsed, [({"in0": 2, "in1": 3}, 6), ({"in0": 0.5, "in1": 4}, 2.0)])
    assert not agree_on(parsed, [({"in0": 2, "in1": 3}, 6), ({"in0": 2, "in1": 4}, 9)])
    assert not agree_on(parsed, [({"in0": 2}, 6)])  # missing symbol


def test_bad_arguments():
    with pytest.raises(TypeError, match="solve: text must be a str"):
        solve(None, {})
    with pytest.raises(TypeError, match="solve: values must be a mapping"):
        solve("#### 1", [1])
    with pytest.raises(TypeError, match="parse_abstraction: text must be a str"):
        parse_abstraction(b"#### 1")
    with pytest.raises(TypeError, match="to_sympy: expected a ParsedAbstraction"):
        to_sympy("#### 1")
    with pytest.raises(ValueError, match="the value of in0 must be a number"):
        evaluate_abstraction(parse_abstraction("#### in0"), {"in0": "x"})
