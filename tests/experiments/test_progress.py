"""Tests of progress lines."""

import pytest

from experiments.progress import Progress, format_duration


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_rate_eta_and_interval():
    clock = FakeClock()
    lines = []
    p = Progress(100, name="train", interval_s=5.0, print_fn=lines.append, clock=clock)
    clock.t += 2.0
    assert p.update(10)  # first update always prints
    clock.t += 1.0
    assert not p.update(15)  # within the interval
    clock.t += 7.0  # 10 s elapsed, 50 steps done -> 5 steps/s, 50 left -> 10 s
    assert p.update(50)
    assert lines[-1] == "train: 50/100 (50.0%) 5.00 steps/s ETA 0:00:10 elapsed 0:00:10"
    clock.t += 0.1
    assert p.update(100)  # the last step always prints


def test_resumed_run_counts_only_its_own_steps():
    clock = FakeClock()
    lines = []
    p = Progress(1000, start_step=900, interval_s=0, print_fn=lines.append, clock=clock)
    clock.t += 10.0
    p.update(950)  # 50 steps in 10 s -> 5/s, 50 left -> 10 s
    assert "5.00 steps/s ETA 0:00:10" in lines[-1]


def test_format_duration():
    assert format_duration(3725) == "1:02:05"
    assert format_duration(float("nan")) == "?"


def test_bad_input():
    with pytest.raises(ValueError, match="total must be a positive"):
        Progress(0)
    with pytest.raises(ValueError, match="interval_s"):
        Progress(10, interval_s=-1)
