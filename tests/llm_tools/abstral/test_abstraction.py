"""Granular abstractions from the templates: the symbolic tool on the gold abstraction gives the
template's answer for all 100 templates; template 0 against a hand-derived abstraction."""

import jax
import numpy as np
import pytest

from llm_tools.abstral import (
    AbstractionDataError,
    abstract_problem,
    parse_abstraction,
    perturb,
    solve,
    to_fraction,
)


def test_gold_abstractions_reproduce_every_template_answer(templates):
    rng = np.random.default_rng(0)
    for t in templates:
        for values in [t.defaults, t.instantiate(rng).values]:
            a = abstract_problem(t, values)
            want = to_fraction(t.final_answer(values))  # the published solution's expression
            for text in (a.equations_text(), a.prose_text()):
                r = solve(text, a.conditions.values)
                assert r.ok and to_fraction(r.value) == want, (t.id, text, r)
            assert a.final_expr, t.id


def test_template_0_by_hand(templates):
    # "{n,Benny} saw a {x,10}-foot shark with {k,2} {y,6}-inch remoras ..." and the solution
    # "{y}*{k}={k*y} inches", "{k*y}/12={k*y//12} foot", "= {int(k*y/(12*x)*100)}%".
    a = abstract_problem(templates[0], templates[0].defaults)
    assert a.conditions.abstract_question.startswith(
        "Benny saw a in0-foot shark with in1 in2-inch remoras attached to it.")
    assert a.equations == (("out0", "in1 * in2"), ("out1", "out0 // 12"),
                           ("out2", "int(out0 / (12 * in0) * 100)"))
    assert a.answer == "out2" and a.final_expr == "int(in1 * in2 / (12 * in0) * 100)"
    assert a.steps[0].text == ("First, find the combined length of the remoras in inches: in2 "
                               "inches/remora * in1 remoras = out0 inches.")
    assert "<<" not in a.prose_text() and "[out1 = out0 // 12]" in a.prose_text()


def test_numbers_perturbation_keeps_the_abstraction(templates):
    t = templates[0]
    p = perturb(t, "numbers", jax.random.key(3))
    a0, a1 = abstract_problem(t, t.defaults), abstract_problem(t, p.values)
    assert a1.conditions.abstract_question == a0.conditions.abstract_question
    assert a1.equations_text() == a0.equations_text()
    assert a1.conditions.values != a0.conditions.values


def test_distractor_symbol_is_unused(templates):
    t = templates[0]
    p = perturb(t, "distractor", jax.random.key(0))
    a = abstract_problem(t, p.values, p.question)
    n = len(a.conditions.values)
    assert n == 4  # 10, 2, 6 and the distractor's number (inserted before the question)
    used = parse_abstraction(a.equations_text()).symbols
    assert "in3" not in used and {"in0", "in1", "in2"} <= used


def test_bad_inputs(templates):
    t = templates[0]
    with pytest.raises(TypeError, match="abstract_problem: template must be a Template"):
        abstract_problem("t", {})
    with pytest.raises(TypeError, match="abstract_problem: values must be a mapping"):
        abstract_problem(t, [1])
    with pytest.raises(AbstractionDataError, match="template 0: question is not the rendered "
                                                   "question with one insertion"):
        abstract_problem(t, t.defaults, "A different question with 3 apples?")
