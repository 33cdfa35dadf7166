"""Streaming a folder of WAV/FLAC recordings with a labels table into fixed windows.

Real archives (hydrophone deployments, sound libraries) come as many long files and a
table of labels, per file or per segment. :class:`AudioFolder` reads the table, checks
every file's header up front (missing files, sample rates too low for the requested band,
empty files, segments shorter than a window), then streams windows: each window is read
from disk on its own (``soundfile`` seeks to it), mixed to mono, resampled with
``scipy.signal.resample_poly`` and yielded, so a folder far larger than memory is
processed with one window (plus a filter margin) in memory at a time.

Resampling is exact across window boundaries: every window is read with a margin longer
than the resampling filter and starts on the polyphase grid, so a streamed window equals
the same samples of the whole file resampled at once (files are zero-padded at their ends,
as ``resample_poly`` does).

The labels table is a CSV file (or a list of dicts) with columns ``file`` (relative to the
root folder), ``label`` and, optionally, ``start`` and ``end`` in seconds (empty: the
whole file). Needs the ``audio`` extra (``pip install paperjax[audio]``, i.e. soundfile).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal

__all__ = ["AudioFolder", "Segment", "Window", "read_labels"]


@dataclasses.dataclass(frozen=True)
class Segment:
    """A labelled stretch of one file; ``start``/``end`` in seconds (``None``: file edges)."""

    path: Path
    label: str
    start: float | None = None
    end: float | None = None


@dataclasses.dataclass(frozen=True)
class Window:
    """One fixed-length window: ``audio`` at the target rate, its class and provenance."""

    audio: np.ndarray
    label: int
    path: Path
    start: float


def _soundfile():
    try:
        import soundfile
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("mgc.audio needs soundfile: pip install 'paperjax[audio]'") from e
    return soundfile


def _float_or_none(fn: str, row: dict, key: str, where: str) -> float | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fn}: {where}: {key} must be a number of seconds, got {value!r}") from e
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{fn}: {where}: {key} must be a finite time >= 0 s, got {value!r}")
    return out


def read_labels(table: str | os.PathLike | Sequence[dict], root: str | os.PathLike
                ) -> list[Segment]:
    """Reads a labels table into :class:`Segment`s; every named file must exist.

    Args:
      table: a CSV path (header with ``file``, ``label``, optional ``start``, ``end``) or a
        sequence of dicts with those keys.
      root: folder the ``file`` entries are relative to.

    Raises:
      FileNotFoundError: the table, or any file it names, does not exist (all missing files
        are listed).
      ValueError: missing columns, an empty table, bad times or ``end <= start``.
    """
    fn = "read_labels"
    root = Path(root)
    if isinstance(table, str | os.PathLike):
        path = Path(table)
        if not path.is_file():
            raise FileNotFoundError(f"{fn}: no labels table at {path}")
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        where = str(path)
    else:
        rows = [dict(r) for r in table]
        where = "table"
    if not rows:
        raise ValueError(f"{fn}: {where} holds no rows")
    missing_cols = {"file", "label"} - set(rows[0])
    if missing_cols:
        raise ValueError(f"{fn}: {where} lacks column(s) {sorted(missing_cols)}; it has "
                         f"{sorted(rows[0])}")
    segments, missing = [], []
    for i, row in enumerate(rows):
        here = f"{where} row {i + 1}"
        name, label = str(row["file"]).strip(), str(row["label"]).strip()
        if not name or not label:
            raise ValueError(f"{fn}: {here}: file and label must be non-empty, got {row!r}")
        start = _float_or_none(fn, row, "start", here)
        end = _float_or_none(fn, row, "end", here)
        if start is not None and end is not None and end <= start:
            raise ValueError(f"{fn}: {here}: end ({end} s) must be after start ({start} s)")
        path = root / name
        if not path.is_file():
            missing.append(name)
        segments.append(Segment(path, label, start, end))
    if missing:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10
                                           else "")
        raise FileNotFoundError(f"{fn}: {len(missing)} file(s) named in {where} do not exist "
                                f"under {root}: {shown}")
    return segments


class AudioFolder:
    """Streams fixed windows of labelled recordings, resampled to one rate.

    Args:
      root: the folder of recordings.
      labels: labels table (see :func:`read_labels`).
      sample_rate: target rate, Hz.
      window_s: window length, seconds (``round(window_s * sample_rate)`` samples).
      hop_s: step between window starts within a segment (default ``window_s``).
      classes: class names in index order (default: the table's labels, sorted).
      max_frequency: the highest frequency the analysis needs (e.g. the top band edge of a
        :class:`mgc.representation.Frontend`); every file must be recorded at a rate of at
        least twice this (upsampling cannot recover what was never recorded).
      channel: channel to read (``None``: the mean of all channels).

    Attributes:
      segments: the labelled segments kept.
      skipped: ``(path, reason)`` of empty files (at construction) and files whose every
        window was digital silence (filled in while streaming); both are warned about.

    Raises:
      FileNotFoundError: the table or a named file is missing.
      ValueError: a file's rate below ``2 * max_frequency``; ``sample_rate`` below it; a
        window longer than a recording or segment; a segment beyond its file's end; a label
        not in ``classes``.
    """

    def __init__(self, root: str | os.PathLike, labels: Any, *, sample_rate: float,
                 window_s: float, hop_s: float | None = None,
                 classes: Sequence[str] | None = None, max_frequency: float | None = None,
                 channel: int | None = None):
        fn = "AudioFolder"
        sf = _soundfile()
        if not (isinstance(sample_rate, int | float) and sample_rate > 0):
            raise ValueError(f"{fn}: sample_rate must be > 0 Hz, got {sample_rate!r}")
        if not (isinstance(window_s, int | float) and window_s > 0):
            raise ValueError(f"{fn}: window_s must be > 0 s, got {window_s!r}")
        hop_s = window_s if hop_s is None else hop_s
        if not (isinstance(hop_s, int | float) and hop_s > 0):
            raise ValueError(f"{fn}: hop_s must be > 0 s, got {hop_s!r}")
        if max_frequency is not None and sample_rate < 2 * max_frequency:
            raise ValueError(f"{fn}: sample_rate={sample_rate} Hz is below twice max_frequency="
                             f"{max_frequency} Hz")
        self.root = Path(root)
        self.sample_rate = float(sample_rate)
        self.window_s = float(window_s)
        self.hop_s = float(hop_s)
        self.num_samples = int(round(window_s * sample_rate))
        self.channel = channel
        segments = read_labels(labels, self.root)
        names = sorted({s.label for s in segments}) if classes is None else list(classes)
        unknown = sorted({s.label for s in segments} - set(names))
        if unknown:
            raise ValueError(f"{fn}: labels {unknown} are not in classes {names}")
        self.classes = tuple(names)
        self.skipped: list[tuple[Path, str]] = []
        self._info: dict[Path, Any] = {}
        kept = []
        for seg in segments:
            if seg.path not in self._info:
                try:
                    self._info[seg.path] = sf.info(str(seg.path))
                except RuntimeError as e:
                    raise ValueError(f"{fn}: cannot read {seg.path} as audio ({e})") from e
            info = self._info[seg.path]
            if info.frames == 0:
                if not any(p == seg.path for p, _ in self.skipped):
                    self._skip(seg.path, "empty file (0 samples)")
                continue
            if max_frequency is not None and info.samplerate < 2 * max_frequency:
                raise ValueError(
                    f"{fn}: {seg.path} is recorded at {info.samplerate} Hz, below twice the "
                    f"requested band's upper edge {max_frequency} Hz ({2 * max_frequency} Hz "
                    "needed)")
            if channel is not None and not 0 <= channel < info.channels:
                raise ValueError(f"{fn}: channel={channel} but {seg.path} has {info.channels} "
                                 "channel(s)")
            duration = info.frames / info.samplerate
            start = 0.0 if seg.start is None else seg.start
            end = duration if seg.end is None else seg.end
            if end > duration + 1.0 / info.samplerate:
                raise ValueError(f"{fn}: segment {start}-{end} s of {seg.path} runs past the "
                                 f"file's end ({duration:.3f} s)")
            if end - start < self.window_s:
                what = "recording" if seg.start is None and seg.end is None else "segment"
                raise ValueError(
                    f"{fn}: window_s={self.window_s} s is longer than the {what} "
                    f"{seg.path.name} [{start:.3f}, {min(end, duration):.3f}] s "
                    f"({end - start:.3f} s)")
            kept.append(Segment(seg.path, seg.label, start, min(end, duration)))
        self.segments = kept

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, reason))
        warnings.warn(f"AudioFolder: skipping {path}: {reason}", stacklevel=3)

    def __len__(self) -> int:
        """Number of windows (silent windows found while streaming are not subtracted)."""
        return sum(self._starts(s).size for s in self.segments)

    def _starts(self, seg: Segment) -> np.ndarray:
        span = seg.end - seg.start - self.window_s
        return seg.start + self.hop_s * np.arange(int(np.floor(span / self.hop_s + 1e-9)) + 1)

    def _read_window(self, f, info, up: int, down: int, start_s: float) -> np.ndarray:
        """Target-rate samples [k0, k0 + L) of the whole file resampled, reading only near them."""
        k0 = int(round(start_s * self.sample_rate))
        length = self.num_samples
        half = 10 * max(up, down)  # resample_poly's filter half-length (upsampled domain)
        margin = down * (math.ceil((half / up + 2) / down) + 1)  # input samples, on the grid
        a = down * (k0 // up) - margin  # first input sample read (multiple of down)
        b = down * ((k0 + length) // up + 1) + margin
        lo, hi = max(a, 0), min(b, info.frames)
        f.seek(lo)
        data = f.read(hi - lo, dtype="float64", always_2d=True)
        x = data.mean(axis=1) if self.channel is None else data[:, self.channel]
        x = np.concatenate([np.zeros(lo - a), x, np.zeros(b - hi)])
        if not np.all(np.isfinite(x)):
            bad = int(np.flatnonzero(~np.isfinite(x))[0]) + a
            raise ValueError(f"AudioFolder: {f.name} holds NaN or inf audio (first at sample "
                             f"{bad}, {bad / info.samplerate:.3f} s)")
        y = x if up == down == 1 else scipy.signal.resample_poly(x, up, down)
        off = k0 - a * up // down
        return y[off: off + length].astype(np.float32)

    def windows(self) -> Iterator[Window]:
        """Yields every window of every segment, in table order, one read at a time.

        Raises:
          ValueError: a window holding NaN or inf samples (naming the file and time).
        """
        sf = _soundfile()
        by_file: dict[Path, list[int]] = {}
        for i, seg in enumerate(self.segments):
            by_file.setdefault(seg.path, []).append(i)
        yielded: dict[Path, int] = {}
        silent: dict[Path, int] = {}
        last_path = None
        f = None
        try:
            for seg in self.segments:
                info = self._info[seg.path]
                if seg.path != last_path:
                    if f is not None:
                        f.close()
                        self._maybe_silent(last_path, yielded, silent)
                    f = sf.SoundFile(str(seg.path))
                    last_path = seg.path
                g = math.gcd(int(round(self.sample_rate)), int(info.samplerate))
                up, down = int(round(self.sample_rate)) // g, int(info.samplerate) // g
                label = self.classes.index(seg.label)
                for start in self._starts(seg):
                    audio = self._read_window(f, info, up, down, float(start))
                    if not np.any(audio):
                        silent[seg.path] = silent.get(seg.path, 0) + 1
                        continue
                    yielded[seg.path] = yielded.get(seg.path, 0) + 1
                    yield Window(audio, label, seg.path, float(start))
        finally:
            if f is not None:
                f.close()
        if last_path is not None:
            self._maybe_silent(last_path, yielded, silent)

    def _maybe_silent(self, path, yielded, silent) -> None:
        if silent.get(path) and not yielded.get(path) and not any(
                p == path for p, _ in self.skipped):
            self._skip(path, f"silent: all {silent[path]} window(s) are digital silence")

    def batches(self, batch_size: int, *, drop_last: bool = False
                ) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[Path, float]]]]:
        """Groups :meth:`windows` into ``(audio (B, L), labels (B,), [(path, start), ...])``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"AudioFolder.batches: batch_size must be a positive int, got "
                             f"{batch_size!r}")
        buf: list[Window] = []
        for w in self.windows():
            buf.append(w)
            if len(buf) == batch_size:
                yield _stack(buf)
                buf = []
        if buf and not drop_last:
            yield _stack(buf)


def _stack(ws: list[Window]):
    return (np.stack([w.audio for w in ws]), np.array([w.label for w in ws], np.int32),
            [(w.path, w.start) for w in ws])
