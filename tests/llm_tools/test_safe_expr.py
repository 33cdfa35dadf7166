"""The restricted expression language: values against Python's own arithmetic, and refusals."""

import time
from fractions import Fraction

import pytest

from llm_tools.safe_expr import (
    MAX_DEPTH,
    Expression,
    ExpressionError,
    evaluate,
    parse_expression,
)

FUNCS = {"int": int, "round": round, "divides": lambda a, b: b != 0 and a % b == 0}


def run(src, env=None, functions=FUNCS):
    return evaluate(parse_expression(src, functions=set(functions)), env or {}, functions)


@pytest.mark.parametrize("src", [
    "1 + 2 * 3 - 4 / 5", "7 // 2 + 7 % 3", "2 ** 10", "(3 - 10) // 4", "-2 ** 2",
    "1 < 2 <= 2 < 3", "3 > 2 > 2", "1 == 1.0 != 2", "not 0", "0 or 5", "3 and 0",
    "4 if 1 > 2 else 5", "[1, 2, 3][1]", "(1, 'a')[-1]", "2.5 * 4", "10 / 4 * 3",
    "round(2.675, 2)", "int(7.9) + int(-7.9)", "0.1 + 0.2", "'ab' + 'cd'",
])
def test_values_equal_python_arithmetic(src):
    # Reference: Python's own evaluator on the same trusted literal text.
    assert run(src) == eval(src, {"int": int, "round": round})  # noqa: S307


def test_names_and_whitelisted_calls():
    env = {"k": 2, "y": 6, "x": 10}
    assert run("divides(k*y, 12)", env) is True
    assert run("divides(x * 12, k*y + 1)", env) is False
    assert run("int((k * y) / (x * 12) * 100)", env) == int((2 * 6) / (10 * 12) * 100)
    assert run("a / b", {"a": Fraction(1, 3), "b": 2}) == Fraction(1, 6)
    expr = parse_expression("int(a) + b * c", functions={"int"})
    assert isinstance(expr, Expression)
    assert expr.names == {"a", "b", "c"} and expr.calls == {"int"}


@pytest.mark.parametrize("src, reason", [
    ("(1).__class__", "attribute access"),
    ("x.real", "attribute access"),
    ("().__class__.__bases__[0].__subclasses__()", "attribute"),
    ("__import__('os')", "call of '__import__' is not allowed"),
    ("open('/etc/passwd')", "call of 'open' is not allowed"),
    ("eval('1')", "call of 'eval' is not allowed"),
    ("int.__call__(1)", "attribute"),
    ("(lambda: 1)()", "call through Lambda"),
    ("lambda: 1", "Lambda is not allowed"),
    ("[i for i in [1]]", "ListComp is not allowed"),
    ("{1: 2}", "Dict is not allowed"),
    ("round(1.5, ndigits=1)", "keyword arguments"),
    ("int(*[1])", "starred"),
    ("[*[1]]", "starred"),
    ("[1, 2][0:1]", "slices"),
    ("f'{1}'", "JoinedStr is not allowed"),
    ("(y := 1)", "NamedExpr is not allowed"),
    ("1 << 5", "operator LShift is not allowed"),
    ("1 in [1]", "comparison In is not allowed"),
    ("1 is 1", "comparison Is is not allowed"),
    ("~1", "operator Invert is not allowed"),
    ("b'x'", "constant of type bytes"),
    ("1j", "constant of type complex"),
    ("import os", "syntax error"),
    ("1 +", "syntax error"),
    ("", "empty expression"),
])
def test_forbidden_constructs_are_refused_at_parse_time(src, reason):
    with pytest.raises(ExpressionError, match="expression .*" + reason.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
                       .replace("*", r"\*")):
        parse_expression(src, functions={"int", "round"})


@pytest.mark.parametrize("src, reason", [
    ("2 ** 10 ** 10", "exponent 10000000000 exceeds 64"),
    ("9 ** 9 ** 9", "exceeds 64"),
    ("10 ** 40", "power 10\\*\\*40 would exceed"),
    ("2 ** 64 * 2 ** 64 * 2 ** 64", "larger than"),
    ("1e300 * 1e300", "non-finite"),
    ("(2 ** 60) ** 2", "would exceed"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "zero raised to a negative power"),
    ("'a' * 1000000", "operator Mult on str and int"),
    ("[0] * 1000000", "operator Mult on list and int"),
    ("(-8) ** 0.5", "complex result"),
    ("[1, 2][5]", "index 5 out of range"),
    ("undefined + 1", "unknown name 'undefined'"),
    ("'a' < 1", "cannot compare str with int"),
])
def test_evaluation_is_bounded(src, reason):
    start = time.perf_counter()
    with pytest.raises(ExpressionError, match=reason):
        run(src)
    assert time.perf_counter() - start < 1.0  # refused before any huge computation


def test_deep_nesting_and_long_text_are_refused():
    for src in ["(" * 60 + "1" + ")" * 60, "-" * 3000 + "1", "[" * 50 + "]" * 50,
                "1" + "+1" * 3000, "int(" * 45 + "1" + ")" * 45]:
        with pytest.raises(ExpressionError, match="nest|longer than"):
            parse_expression(src, functions={"int"})
    deep_ok = "(" * (MAX_DEPTH // 2) + "1" + ")" * (MAX_DEPTH // 2)
    assert run(deep_ok) == 1


def test_calls_need_an_implementation_and_failures_are_wrapped():
    expr = parse_expression("int(x)", functions={"int"})
    with pytest.raises(ExpressionError, match=r"no implementation given for \['int'\]"):
        evaluate(expr, {"x": 1}, {})
    with pytest.raises(ExpressionError, match=r"int\(\.\.\.\) failed"):
        evaluate(expr, {"x": "abc"}, {"int": int})


def test_bad_arguments():
    with pytest.raises(TypeError, match="parse_expression: source must be a str, got int"):
        parse_expression(3)
    with pytest.raises(TypeError, match="evaluate: expr must be an Expression"):
        evaluate("1 + 1", {})
