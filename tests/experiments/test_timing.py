"""Tests of the alternating, repeated wall-time measurement."""

import itertools

import pytest

from experiments.timing import alternate, spread


def test_alternate_interleaves_and_times_each_call():
    calls = []
    ticks = itertools.count()

    def clock():
        return float(next(ticks))

    def make(name):
        def fn():
            calls.append(name)
            return name
        return fn

    times = alternate({"a": make("a"), "b": make("b")}, repeats=3, warmup=1, clock=clock)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up, then A B A B A B
    assert times == {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}


def test_spread():
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}


def test_bad_inputs():
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        alternate({"a": lambda: 1}, repeats=0)
    with pytest.raises(ValueError, match="warmup must be >= 0, got -1"):
        alternate({"a": lambda: 1}, repeats=1, warmup=-1)
    with pytest.raises(ValueError, match="fns must name at least one function"):
        alternate({}, repeats=1)
    with pytest.raises(ValueError, match="times must hold at least one timing"):
        spread([])
