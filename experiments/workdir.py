"""The run directory: atomic file writes, metrics log, results, report and plots.

Every file a run produces goes through :func:`atomic_write_bytes` (write a temporary file
in the same directory, flush and fsync it, then ``os.replace`` it over the target), so an
interrupted run never leaves a half-written ``results.json`` or PNG behind: the reader sees
either the old file or the new one. ``metrics.jsonl`` is the one append-only file; each
record is a single ``write`` of one full line on an ``O_APPEND`` descriptor, and
:meth:`Workdir.read_metrics` ignores a trailing partial line left by a crash.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Workdir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "to_jsonable",
]


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (temporary file + rename).

    Args:
      path: destination file; parent folders are created.
      data: the full new contents.

    Returns:
      The destination as a ``Path``.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"atomic_write_bytes: data must be bytes, got {type(data).__name__}")
    path = Path(path)
    with _atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text: text must be str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any, *, where: str = "value") -> Any:
    """Converts numpy/JAX scalars and arrays, tuples and paths into JSON-ready values.

    Raises:
      ValueError: on NaN or infinity (JSON has no such numbers, and a silent NaN in a
        result file is a defect), naming where in the structure it was found.
      TypeError: on objects with no JSON form.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, where=f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, bool | str):
        return obj
    if hasattr(obj, "__array__") and not isinstance(obj, int | float):
        arr = np.asarray(obj)
        if arr.dtype == bool:
            return arr.tolist()
        if arr.dtype.kind in "iuf":
            return to_jsonable(arr.tolist(), where=where)
        raise TypeError(f"to_jsonable: {where} is an array of dtype {arr.dtype}")
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"to_jsonable: {where} is {obj}; results must be finite numbers")
        return float(obj)
    raise TypeError(f"to_jsonable: {where} has type {type(obj).__name__}, not JSON-serializable")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON to ``path`` atomically (see :func:`to_jsonable`)."""
    text = json.dumps(to_jsonable(obj, where=Path(path).name), indent=2, sort_keys=True)
    return atomic_write_text(path, text + "\n")


class Workdir:
    """Writer for one run's directory.

    Layout: ``config.json`` (the config the run started with), ``resumes.jsonl`` (one line
    per restart), ``metrics.jsonl``, ``results.json``, ``report.md``, ``*.png`` plots and
    ``checkpoints/`` (see :mod:`experiments.checkpoint`).
    Only process 0 writes in a multi-host run (pass ``is_writer=False`` elsewhere).
    """

    def __init__(self, path: str | os.PathLike, *, is_writer: bool | None = None):
        if path is None or str(path) == "":
            raise ValueError("Workdir: path must be a non-empty directory path, got empty")
        self.path = Path(path)
        if is_writer is None:
            import jax

            is_writer = jax.process_index() == 0
        self.is_writer = is_writer
        if self.is_writer:
            self.path.mkdir(parents=True, exist_ok=True)

    # -- files ---------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: Any, *, resume_allow: Iterable[str] = ()) -> Path | None:
        """Records the run's config in ``config.json``; never rewrites that of an existing run.

        A new run writes ``config.json``. When the workdir already holds one (a restart),
        the stored config is compared with ``config``: keys matching ``resume_allow``
        (``fnmatch`` patterns, e.g. ``("steps", "eval_every")``) may differ, and each restart
        appends one line to ``resumes.jsonl`` (time, command line, the allowed changes);
        ``config.json`` keeps the config the run started with.

        Args:
          config: an ``ml_collections.ConfigDict`` or a mapping.
          resume_allow: keys allowed to differ from the stored config.

        Returns:
          The path of ``config.json`` (``None`` on a non-writing process).

        Raises:
          ResumeError: if the stored config differs in a key that is not allowed (one line
            listing the keys); nothing is written then.
        """
        from experiments.config import check_resume

        if hasattr(config, "to_dict"):
            config = config.to_dict()
        path = self.file("config.json")
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
            changes = check_resume(stored, to_jsonable(config, where="config"), resume_allow,
                                   where=str(self.path))
            if self.is_writer:
                self._append_line("resumes.jsonl", {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "argv": list(sys.argv), "changes": changes})
            return path
        return self.write_json("config.json", config)

    def read_resumes(self) -> list[dict[str, Any]]:
        """The restarts of this run (``resumes.jsonl``), oldest first."""
        return self._read_lines("resumes.jsonl")

    def write_json(self, name: str, obj: Any) -> Path | None:
        if not self.is_writer:
            return None
        return atomic_write_json(self.file(name), obj)

    def write_results(self, results: Mapping[str, Any]) -> Path | None:
        """Writes the final numbers to ``results.json``."""
        return self.write_json("results.json", results)

    def write_report(self, markdown: str) -> Path | None:
        """Writes ``report.md``."""
        if not self.is_writer:
            return None
        return atomic_write_text(self.file("report.md"), markdown)

    def save_figure(self, fig: Any, name: str, *, dpi: int = 120) -> Path | None:
        """Saves a matplotlib figure as PNG atomically and closes it."""
        import matplotlib.pyplot as plt

        if not name.endswith(".png"):
            name = name + ".png"
        if not self.is_writer:
            plt.close(fig)
            return None
        path = self.file(name)
        with _atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return path

    # -- metrics -------------------------------------------------------------------------
    def log_metrics(self, step: int, **metrics: Any) -> None:
        """Appends one JSON line ``{"step": step, **metrics}`` to ``metrics.jsonl``.

        Raises:
          ValueError: if a metric is NaN or infinite (naming it), so a diverging run
            stops loudly instead of logging garbage.
        """
        if not self.is_writer:
            return
        record = {"step": int(step)}
        record.update(to_jsonable(metrics, where=f"metrics at step {step}"))
        self._append_line("metrics.jsonl", record)

    def _append_line(self, name: str, record: Mapping[str, Any]) -> None:
        """One ``write`` of one full JSON line on an ``O_APPEND`` descriptor."""
        line = (json.dumps(to_jsonable(record, where=name), sort_keys=True) + "\n").encode()
        fd = os.open(self.file(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Reads ``metrics.jsonl``; a trailing partial line (crash mid-write) is ignored."""
        return self._read_lines("metrics.jsonl")

    def _read_lines(self, name: str) -> list[dict[str, Any]]:
        path = self.file(name)
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_metrics(self, last_step: int) -> None:
        """Drops metric lines with ``step > last_step`` (used when resuming a checkpoint)."""
        if not self.is_writer:
            return
        records = [r for r in self.read_metrics() if r.get("step", -1) <= last_step]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_text(self.file("metrics.jsonl"), text)
