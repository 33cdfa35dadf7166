"""Rewards on hand-made outputs for template 0 (Benny's shark: 2 remoras of 6 inches on a
10-foot shark is 10%)."""

from fractions import Fraction

import jax
import pytest

from llm_tools.abstral import (
    RewardConfig,
    abstraction_reward,
    cot_reward,
    extract_final_number,
    make_task,
    parse_abstraction,
    perturb,
    symbolic_distance,
)


@pytest.fixture(scope="module")
def task(templates):
    return make_task(templates[0], perturb(templates[0], "original", jax.random.key(0)),
                     jax.random.key(1), n_probes=4)


def test_probes_are_valid_points(task, templates):
    assert len(task.probes) == 5 and task.probes[0] == (task.values, 10)
    gold = parse_abstraction(task.gold.equations_text())
    from llm_tools.abstral import evaluate_abstraction

    for values, answer in task.probes:
        assert evaluate_abstraction(gold, values) == answer
    assert len({tuple(v.values()) for v, _ in task.probes}) == 5  # different values


def test_gold_abstraction_gets_the_full_reward(task):
    r = abstraction_reward(task.gold.equations_text(), task)
    assert (r.total, r.answer, r.faithful, r.steps) == (2.5, 1.0, 1.0, 0.5)
    assert r.correct and r.is_faithful and r.parsed


def test_right_number_but_unfaithful(task):
    # The constant answer is correct here but not at the probes; its one token "10" against
    # the gold's 25 leaves a distance of 25/25 or 24/25.
    r = abstraction_reward("#### 10", task)
    assert r.correct and not r.is_faithful and r.answer == 1.0 and r.faithful == 0.0
    assert 0.0 <= r.steps < 0.2


def test_faithful_but_written_differently(task):
    text = "out0 = in1 * in2 * 100\n#### int(out0 / (12 * in0))"
    r = abstraction_reward(text, task)
    assert r.correct and r.is_faithful and r.faithful == 1.0
    assert 0 < r.steps < 0.5


def test_wrong_abstraction(task):
    r = abstraction_reward("out0 = in0 * in1\n#### out0", task)
    assert not r.correct and not r.is_faithful and r.answer == 0.0 and r.total == r.steps


@pytest.mark.parametrize("text", ["The answer is 10%.", "#### open('x').read()",
                                  "#### in0.__class__", "out0 = 1\n#### out7"])
def test_unusable_output_gets_the_format_penalty(task, text):
    r = abstraction_reward(text, task, RewardConfig(format_penalty=0.25))
    assert r.total == -0.25 and not r.parsed and r.reason


def test_symbolic_distance_by_hand(task):
    gold = parse_abstraction(task.gold.equations_text())
    assert symbolic_distance(gold, task.gold) == 0.0
    # Tokens of the gold (separators ';' and '####' are not tokens):
    #   out0 = in1 * in2                                      5
    #   out1 = out0 // 12                                     5
    #   out2 = int ( out0 / ( 12 * in0 ) * 100 )              14
    #   out2                                                  1   -> 25 tokens.
    # Changing "// 12" to "// 10" is one substitution: 1/25; dropping "out1 = out0 // 12"
    # deletes 5 tokens: 5/25.
    edited = parse_abstraction(task.gold.equations_text().replace("// 12", "// 10"))
    assert symbolic_distance(edited, task.gold) == pytest.approx(1 / 25)
    shorter = parse_abstraction("out0 = in1 * in2\nout2 = int(out0 / (12 * in0) * 100)\n"
                                "#### out2")
    assert symbolic_distance(shorter, task.gold) == pytest.approx(5 / 25)


def test_cot_extraction_and_reward():
    assert extract_final_number("so 6 + 4 = 10\n#### 1,234") == 1234
    assert extract_final_number("The answer is \\boxed{3.5}.") == Fraction(7, 2)
    assert extract_final_number("#### 5\nlater \\boxed{7}") == 5
    assert extract_final_number("no number here") is None
    assert cot_reward("... #### 10", 10).total == 1.0
    assert cot_reward("... #### 11", 10).total == 0.0
    assert cot_reward("I don't know", 10).total == -0.5


def test_bad_inputs(task, templates):
    with pytest.raises(ValueError, match="RewardConfig: answer must be a number >= 0"):
        RewardConfig(answer=-1)
    with pytest.raises(TypeError, match="abstraction_reward: text must be a str"):
        abstraction_reward(None, task)
    with pytest.raises(TypeError, match="abstraction_reward: task must be an AbstractionTask"):
        abstraction_reward("#### 1", "task")
    with pytest.raises(ValueError, match="make_task: problem of template 0 given with template 1"):
        make_task(templates[1], task.problem, jax.random.key(0))
    with pytest.raises(ValueError, match="n_probes must be an int >= 0"):
        make_task(templates[0], task.problem, jax.random.key(0), n_probes=-1)
    with pytest.raises(TypeError, match="extract_final_number: text must be a str"):
        extract_final_number(5)
