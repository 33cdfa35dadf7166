"""The budget-binding criteria of experiments/tecrl/budget.py on hand-made alpha paths."""

import numpy as np
import pytest

from experiments.tecrl.budget import judge_binding


def test_alpha_that_only_falls_neither_binds_nor_settles():
    alpha = list(np.e * np.exp(-0.5 * np.arange(12)))  # falls by e^-0.5 per evaluation
    j = judge_binding(alpha, [50.0] * 12, budget=-6.0)
    assert not j["violated"] and not j["binds"] and not j["settles"]
    assert j["alpha_min_at"] == 11


def test_alpha_that_falls_then_rises_and_settles():
    alpha = [2.7, 1.0, 0.3, 0.1, 0.05, 0.07, 0.08, 0.075, 0.08, 0.07, 0.078, 0.08]
    lhs = [10, 5, 0, -4, -9, -7, -5, -6, -6.5, -5.5, -6, -6]
    j = judge_binding(alpha, lhs, budget=-6.0)
    assert j["violated"] and j["binds"] and j["settles"]
    assert j["alpha_min"] == 0.05 and j["alpha_min_at"] == 4
    assert j["tail_alpha_range"] == pytest.approx([0.07, 0.08])


def test_alpha_that_rises_but_keeps_swinging_does_not_settle():
    alpha = [2.7, 1.0, 0.3, 0.1, 0.05, 0.2, 0.05, 0.2, 0.05, 0.2, 0.05, 0.2]
    j = judge_binding(alpha, [-10.0] * 12, budget=-6.0)
    assert j["binds"] and not j["settles"]  # the last third spans a factor of 4


def test_bad_paths():
    with pytest.raises(ValueError, match="judge_binding: need >= 3 positive alphas"):
        judge_binding([1.0, 0.5], [0.0, 0.0], -6.0)
    with pytest.raises(ValueError, match="got 3 and 2"):
        judge_binding([1.0, 0.5, 0.4], [0.0, 0.0], -6.0)
