"""Wall-time comparisons that survive a shared machine: alternate, repeat, report the spread.

A claim (or benchmark) that compares the wall time of two methods measures each several
times, alternating them (A, B, A, B, ...) so that a burst of load from other processes hits
both, and compares medians; it reports the spread beside the median and says how many
repeats it took. One timing of each is not evidence on a machine shared with other jobs.

    times = alternate({"lstdq": lambda: solve(data), "fqe": lambda: iterate(data)}, repeats=5)
    stats = {name: spread(t) for name, t in times.items()}   # median, min, max, n
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax

__all__ = ["alternate", "spread"]


def alternate(
    fns: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Times each function ``repeats`` times, alternating between them.

    Each call's result is passed through ``jax.block_until_ready`` before the clock stops,
    so asynchronous dispatch is not mistaken for speed.

    Args:
      fns: name -> zero-argument callable.
      repeats: timed calls of each function (> 0).
      warmup: untimed calls of each before timing (compilation, caches).
      clock: time source (injectable for tests).

    Returns:
      name -> list of ``repeats`` wall times in seconds, in call order.

    Raises:
      ValueError: for no functions, a non-positive ``repeats`` or a negative ``warmup``.
    """
    if not fns:
        raise ValueError("alternate: fns must name at least one function, got none")
    if int(repeats) <= 0:
        raise ValueError(f"alternate: repeats must be a positive int, got {repeats!r}")
    if int(warmup) < 0:
        raise ValueError(f"alternate: warmup must be >= 0, got {warmup!r}")
    for _ in range(int(warmup)):
        for fn in fns.values():
            jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(int(repeats)):
        for name, fn in fns.items():
            t0 = clock()
            jax.block_until_ready(fn())
            times[name].append(clock() - t0)
    return times


def spread(times: list[float]) -> dict[str, float | int]:
    """``{"median", "min", "max", "n"}`` of a list of timings.

    Raises:
      ValueError: for an empty list.
    """
    if not times:
        raise ValueError("spread: times must hold at least one timing, got none")
    return {"median": float(statistics.median(times)), "min": float(min(times)),
            "max": float(max(times)), "n": len(times)}
