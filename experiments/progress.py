"""Progress lines for long loops: step/total, rate, ETA, one line per interval."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """Formats seconds as ``H:MM:SS`` (or ``?`` when unknown)."""
    if seconds != seconds or seconds == float("inf") or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


class Progress:
    """Reports ``name: step/total (pct) rate steps/s ETA h:mm:ss`` at most once per interval.

    Call :meth:`update` after every step (cheap: it only reads the clock). The rate is
    measured from the first update of this process, so a resumed run reports its own
    speed and an ETA for the steps that remain.

    Args:
      total: number of steps in the whole loop (> 0).
      name: prefix of each line.
      interval_s: minimum seconds between lines (the last step always prints).
      start_step: step the loop starts from (non-zero when resuming).
      print_fn: where lines go; defaults to stderr.
      clock: time source (injectable for tests).
    """

    def __init__(
        self,
        total: int,
        *,
        name: str = "progress",
        interval_s: float = 10.0,
        start_step: int = 0,
        print_fn: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if int(total) <= 0:
            raise ValueError(f"Progress: total must be a positive step count, got {total!r}")
        if interval_s < 0:
            raise ValueError(f"Progress: interval_s must be >= 0, got {interval_s!r}")
        self.total = int(total)
        self.name = name
        self.interval_s = float(interval_s)
        self.start_step = int(start_step)
        self._print = print_fn or (lambda line: print(line, file=sys.stderr, flush=True))
        self._clock = clock
        self._t0 = clock()
        self._last_print = -float("inf")
        self.lines: list[str] = []

    def line(self, step: int, extra: str = "") -> str:
        elapsed = self._clock() - self._t0
        done = step - self.start_step
        rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
        eta = (self.total - step) / rate if rate == rate and rate > 0 else float("nan")
        pct = 100.0 * step / self.total
        rate_s = f"{rate:.2f}" if rate == rate else "?"
        text = (
            f"{self.name}: {step}/{self.total} ({pct:.1f}%) {rate_s} steps/s "
            f"ETA {format_duration(eta)} elapsed {format_duration(elapsed)}"
        )
        return text + (f" {extra}" if extra else "")

    def update(self, step: int, extra: str = "") -> bool:
        """Prints a line if the interval has passed or ``step == total``; returns whether."""
        now = self._clock()
        if step < self.total and now - self._last_print < self.interval_s:
            return False
        self._last_print = now
        text = self.line(step, extra)
        self.lines.append(text)
        self._print(text)
        return True
