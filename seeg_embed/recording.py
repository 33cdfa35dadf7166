"""Real recordings: MNE ``Raw`` objects, EDF/BDF files and arrays into one segment format.

A :class:`Recording` is a ``[C, T]`` float32 array in µV at a common sampling rate (1 kHz by
default) with channel names, optional region labels and MNI coordinates (from an electrode
table such as BIDS' ``*_electrodes.tsv``), and the channels that were dropped with the
reason (non-finite samples, an all-zero or constant trace, or listed in ``raw.info['bads']``).

Preprocessing follows the authors' prototype: a zero-phase 4th-order Butterworth low-pass at
``lowpass_hz`` (500 Hz), then polyphase resampling to ``target_fs`` (1 kHz); optionally a
high-pass and notch filters. :func:`segment` cuts ``[C, n_segments, segment_len]`` windows.

``mne`` is needed only by :func:`from_raw` and :func:`read_edf` (``pip install paperjax[mne]``).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

__all__ = [
    "Recording",
    "find_bad_channels",
    "from_array",
    "from_raw",
    "read_edf",
    "read_electrodes",
    "segment",
]

ElectrodeTable = Mapping[str, Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Recording:
    """One session of one subject in the common format.

    Attributes:
      data: ``[C, T]`` float32 signal in µV (good channels only).
      fs: sampling rate (Hz).
      ch_names: the ``C`` channel names.
      regions: region label per channel (``None`` where the table has none).
      coords: ``[C, 3]`` MNI coordinates in mm (NaN where unknown).
      bad: ``{name: reason}`` of the channels that were excluded.
      subject / session: free-form identifiers.
    """

    data: np.ndarray
    fs: float
    ch_names: tuple[str, ...]
    regions: tuple[str | None, ...]
    coords: np.ndarray
    bad: dict[str, str] = dataclasses.field(default_factory=dict)
    subject: str = ""
    session: str = ""

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration_s(self) -> float:
        return self.data.shape[1] / self.fs


def find_bad_channels(data: np.ndarray, ch_names: Sequence[str]) -> dict[str, str]:
    """``{name: reason}`` for channels with non-finite samples or an all-zero/constant trace."""
    bad = {}
    for name, x in zip(ch_names, np.asarray(data), strict=True):
        n_bad = int(np.sum(~np.isfinite(x)))
        if n_bad:
            bad[name] = f"{n_bad} non-finite sample(s)"
        elif not np.any(x):
            bad[name] = "all-zero signal"
        elif np.ptp(x) == 0:
            bad[name] = "constant signal"
    return bad


def read_electrodes(source: str | os.PathLike | ElectrodeTable, *, name_column: str = "name",
                    region_column: str = "region") -> dict[str, dict[str, Any]]:
    """Reads an electrode table into ``{name: {"region": str | None, "xyz": (x, y, z)}}``.

    Args:
      source: a CSV/TSV file (delimiter from the suffix; BIDS ``electrodes.tsv`` works) with
        a name column, optional ``x``, ``y``, ``z`` (mm) and an optional region column; or a
        mapping ``{name: {"region": ..., "x": ..., "y": ..., "z": ...}}``.
      name_column / region_column: column names.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: if the name column is missing or a coordinate is not a number.
    """
    if isinstance(source, Mapping):
        rows = [{name_column: k, **v} for k, v in source.items()]
        where = "electrode mapping"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"read_electrodes: no file at {path}")
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter))
        where = str(path)
        if rows and name_column not in rows[0]:
            raise ValueError(f"read_electrodes: {where} has no {name_column!r} column "
                             f"(columns: {list(rows[0])})")
    table = {}
    for row in rows:
        name = str(row[name_column]).strip()
        xyz = [row.get(a) for a in ("x", "y", "z")]
        if any(v is None or str(v).strip().lower() in ("", "n/a", "nan") for v in xyz):
            coords = (np.nan, np.nan, np.nan)
        else:
            try:
                coords = tuple(float(v) for v in xyz)
            except (TypeError, ValueError) as e:
                raise ValueError(f"read_electrodes: {where}: coordinates of {name!r} are not "
                                 f"numbers: {xyz}") from e
        region = row.get(region_column)
        region = None if region is None or str(region).strip().lower() in ("", "n/a") else str(
            region).strip()
        table[name] = {"region": region, "xyz": coords}
    return table


def from_array(data: np.ndarray, fs: float, ch_names: Sequence[str], *,
               electrodes: str | os.PathLike | ElectrodeTable | None = None,
               bads: Sequence[str] = (), lowpass_hz: float | None = 500.0,
               target_fs: float | None = 1000.0, highpass_hz: float | None = None,
               notch_hz: Sequence[float] = (), min_duration_s: float = 0.0,
               subject: str = "", session: str = "", region_column: str = "region"
               ) -> Recording:
    """Builds a :class:`Recording` from a ``[C, T]`` array in µV.

    Steps: drop bad channels (``bads``, non-finite, all-zero or constant; a warning names
    them), low-pass (zero-phase Butterworth, order 4), optional high-pass and notches,
    resample to ``target_fs``, attach regions/coordinates from ``electrodes``.

    Args:
      data: ``[C, T]`` signal in µV.
      fs: its sampling rate (Hz).
      ch_names: ``C`` unique names.
      electrodes: an electrode table (see :func:`read_electrodes`) or ``None``.
      bads: names to exclude (e.g. ``raw.info['bads']``).
      lowpass_hz: low-pass cut-off (``None``: none); needs ``fs >= 2 * lowpass_hz``.
      target_fs: output rate (``None``: keep ``fs``).
      highpass_hz: optional high-pass cut-off.
      notch_hz: line frequencies to notch out (each below Nyquist).
      min_duration_s: minimum duration after resampling (e.g. one segment).
      subject / session: identifiers stored on the recording.
      region_column: the region column of a file table.

    Raises:
      ValueError: on a non-2-D array, mismatched or duplicate names, a sampling rate below
        twice the low-pass cut-off, a recording shorter than ``min_duration_s``, or when
        every channel is bad.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"from_array: data must be [channels, samples], got shape {data.shape}")
    ch_names = [str(c) for c in ch_names]
    if len(ch_names) != data.shape[0]:
        raise ValueError(f"from_array: {len(ch_names)} channel names for {data.shape[0]} "
                         "channels")
    if len(set(ch_names)) != len(ch_names):
        dupes = sorted({c for c in ch_names if ch_names.count(c) > 1})
        raise ValueError(f"from_array: duplicate channel names {dupes}")
    if not (np.isfinite(fs) and fs > 0):
        raise ValueError(f"from_array: fs must be a positive number, got {fs!r}")
    if lowpass_hz is not None and fs < 2 * lowpass_hz:
        raise ValueError(f"from_array: sampling rate {fs} Hz is below twice the low-pass "
                         f"cut-off ({lowpass_hz} Hz); lower lowpass_hz to at most {fs / 2} Hz")
    if target_fs is not None and not (np.isfinite(target_fs) and target_fs > 0):
        raise ValueError(f"from_array: target_fs must be a positive number, got {target_fs!r}")
    unknown = [b for b in bads if b not in ch_names]
    if unknown:
        raise ValueError(f"from_array: bads {unknown} are not channel names")
    bad = {b: "marked bad (bads / raw.info['bads'])" for b in bads}
    for name, reason in find_bad_channels(data, ch_names).items():
        bad.setdefault(name, reason)
    if bad:
        warnings.warn(f"excluding {len(bad)} bad channel(s): "
                      + "; ".join(f"{k}: {v}" for k, v in bad.items()), stacklevel=2)
    keep = [i for i, c in enumerate(ch_names) if c not in bad]
    if not keep:
        raise ValueError(f"from_array: every channel is bad ({bad})")
    x = data[keep].astype(np.float64)
    names = tuple(ch_names[i] for i in keep)
    nyq = fs / 2
    if lowpass_hz is not None and lowpass_hz < nyq:
        x = signal.sosfiltfilt(signal.butter(4, lowpass_hz, "lowpass", fs=fs, output="sos"), x,
                               axis=-1)
    if highpass_hz is not None:
        if not 0 < highpass_hz < nyq:
            raise ValueError(f"from_array: highpass_hz must be in (0, {nyq}), got {highpass_hz}")
        x = signal.sosfiltfilt(signal.butter(4, highpass_hz, "highpass", fs=fs, output="sos"),
                               x, axis=-1)
    for f0 in notch_hz:
        if not 0 < f0 < nyq:
            raise ValueError(f"from_array: notch frequency {f0} Hz is not below Nyquist {nyq}")
        b, a = signal.iirnotch(f0, 30.0, fs=fs)
        x = signal.filtfilt(b, a, x, axis=-1)
    out_fs = float(fs)
    if target_fs is not None and target_fs != fs:
        ratio = Fraction(float(target_fs) / float(fs)).limit_denominator(1000)
        x = signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
        out_fs = float(fs) * ratio.numerator / ratio.denominator
    if x.shape[1] < min_duration_s * out_fs:
        raise ValueError(f"from_array: recording is {x.shape[1] / out_fs:.3f} s long, shorter "
                         f"than one segment ({min_duration_s} s)")
    regions: list[str | None] = [None] * len(names)
    coords = np.full((len(names), 3), np.nan, np.float32)
    if electrodes is not None:
        table = read_electrodes(electrodes, region_column=region_column)
        for i, name in enumerate(names):
            if name in table:
                regions[i] = table[name]["region"]
                coords[i] = table[name]["xyz"]
    return Recording(x.astype(np.float32), out_fs, names, tuple(regions), coords, bad,
                     str(subject), str(session))


def from_raw(raw, *, picks: Sequence[str] | None = None, **kwargs) -> Recording:
    """Converts an MNE-Python ``Raw`` (volts) into a :class:`Recording` (µV).

    ``raw.info['bads']`` are excluded; stimulus channels are skipped unless picked.
    Keyword arguments go to :func:`from_array` (``electrodes``, ``lowpass_hz``,
    ``target_fs``, ``highpass_hz``, ``notch_hz``, ``min_duration_s``, ``subject``...).

    Raises:
      TypeError: if ``raw`` is not an MNE ``Raw``.
    """
    try:
        import mne
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("from_raw needs mne: pip install 'paperjax[mne]'") from e
    if not isinstance(raw, mne.io.BaseRaw):
        raise TypeError(f"from_raw: raw must be an mne.io.Raw, got {type(raw).__name__}")
    if picks is None:
        types = raw.get_channel_types()
        picks = [c for c, t in zip(raw.ch_names, types, strict=True) if t != "stim"]
    picks = list(picks)
    missing = [p for p in picks if p not in raw.ch_names]
    if missing:
        raise ValueError(f"from_raw: picks {missing} are not channels of the recording")
    data = raw.get_data(picks=picks) * 1e6
    bads = [b for b in raw.info["bads"] if b in picks]
    kwargs.setdefault("subject", (raw.info.get("subject_info") or {}).get("his_id", "") or "")
    return from_array(data, float(raw.info["sfreq"]), picks, bads=bads, **kwargs)


def read_edf(path: str | os.PathLike, **kwargs) -> Recording:
    """Reads an EDF (``.edf``) or BDF (``.bdf``) file with MNE into a :class:`Recording`.

    Keyword arguments go to :func:`from_raw`.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: for another suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_edf: no file at {path}")
    try:
        import mne
    except ImportError as e:  # pragma: no cover
        raise ImportError("read_edf needs mne: pip install 'paperjax[mne]'") from e
    suffix = path.suffix.lower()
    if suffix == ".edf":
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    elif suffix == ".bdf":
        raw = mne.io.read_raw_bdf(path, preload=True, verbose="error")
    else:
        raise ValueError(f"read_edf: expected a .edf or .bdf file, got {path.name}")
    return from_raw(raw, **kwargs)


def segment(recording: Recording | np.ndarray, segment_len: int, hop: int | None = None
            ) -> np.ndarray:
    """Cuts ``[C, n_segments, segment_len]`` windows every ``hop`` samples (default: no overlap).

    Raises:
      ValueError: if the recording is shorter than one segment, or on bad lengths.
    """
    data = recording.data if isinstance(recording, Recording) else np.asarray(recording)
    if data.ndim != 2:
        raise ValueError(f"segment: expected [channels, samples], got shape {data.shape}")
    if not (isinstance(segment_len, int | np.integer) and segment_len > 0):
        raise ValueError(f"segment: segment_len must be a positive int, got {segment_len!r}")
    hop = segment_len if hop is None else hop
    if not (isinstance(hop, int | np.integer) and hop > 0):
        raise ValueError(f"segment: hop must be a positive int, got {hop!r}")
    T = data.shape[1]
    if T < segment_len:
        raise ValueError(f"segment: recording has {T} samples, shorter than one segment "
                         f"({segment_len} samples)")
    n = (T - segment_len) // hop + 1
    idx = np.arange(n)[:, None] * hop + np.arange(segment_len)[None]
    return data[:, idx]
