"""Tests of atomic writes and the run-directory writer."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from experiments import workdir as workdir_lib  # noqa: E402
from experiments.workdir import Workdir, atomic_write_json, atomic_write_text  # noqa: E402


def _leftover_tmp(folder: Path):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"a": 1})
    original = Path.write_bytes

    def half_then_crash(self, data):
        original(self, data[: len(data) // 2])  # part of the new file reaches disk...
        raise KeyboardInterrupt("killed mid-write")  # ...then the run is interrupted

    monkeypatch.setattr(Path, "write_bytes", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"a": 2, "b": list(range(100))})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"a": 1}
    assert _leftover_tmp(tmp_path) == []


def test_interrupted_rename_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    atomic_write_text(target, "old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(workdir_lib.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert _leftover_tmp(tmp_path) == []


def test_failed_figure_save_keeps_old_png(tmp_path):
    wd = Workdir(tmp_path, is_writer=True)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = wd.save_figure(fig, "curve")
    old = path.read_bytes()
    assert old[:8] == b"\x89PNG\r\n\x1a\n"

    class Broken:
        def savefig(self, *a, **k):
            raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        wd.save_figure(Broken(), "curve")
    assert path.read_bytes() == old
    assert _leftover_tmp(tmp_path) == []


def test_json_rejects_nan_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"\['loss'\].*nan"):
        atomic_write_json(tmp_path / "r.json", {"loss": float("nan")})
    assert not (tmp_path / "r.json").exists()


def test_json_converts_numpy_and_jax_values(tmp_path):
    import jax.numpy as jnp

    atomic_write_json(tmp_path / "r.json", {"a": np.float32(1.5), "b": jnp.arange(3), "c": (1, 2)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": [1, 2]}


def test_metrics_append_truncate_and_partial_line(tmp_path):
    wd = Workdir(tmp_path, is_writer=True)
    for step in range(1, 6):
        wd.log_metrics(step, loss=1.0 / step)
    with open(wd.file("metrics.jsonl"), "a") as f:
        f.write('{"step": 6, "lo')  # a crash mid-line
    records = wd.read_metrics()
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[1]["loss"] == pytest.approx(0.5)
    wd.truncate_metrics(3)
    assert [r["step"] for r in wd.read_metrics()] == [1, 2, 3]
    with pytest.raises(ValueError, match="loss"):
        wd.log_metrics(4, loss=float("inf"))


def test_config_results_report(tmp_path):
    import ml_collections

    wd = Workdir(tmp_path / "run", is_writer=True)
    wd.write_config(ml_collections.ConfigDict({"lr": 0.1, "model": {"width": 8}}))
    wd.write_results({"acc": 0.9})
    wd.write_report("# hi\n")
    assert json.loads(wd.file("config.json").read_text()) == {"lr": 0.1, "model": {"width": 8}}
    assert json.loads(wd.file("results.json").read_text()) == {"acc": 0.9}
    assert wd.file("report.md").read_text() == "# hi\n"


def test_restart_never_rewrites_config_json(tmp_path):
    import ml_collections

    from experiments.config import ResumeError

    wd = Workdir(tmp_path / "run", is_writer=True)
    first = ml_collections.ConfigDict({"lr": 0.1, "steps": 10, "model": {"width": 8}})
    wd.write_config(first, resume_allow=("steps",))
    stored = wd.file("config.json").read_text()
    longer = ml_collections.ConfigDict({"lr": 0.1, "steps": 20, "model": {"width": 8}})
    wd.write_config(longer, resume_allow=("steps",))  # allowed: logged, not rewritten
    assert wd.file("config.json").read_text() == stored
    (resume,) = wd.read_resumes()
    assert resume["changes"] == {"steps": [10, 20]} and resume["argv"] and resume["time"]
    other = ml_collections.ConfigDict({"lr": 0.5, "steps": 20, "model": {"width": 16}})
    with pytest.raises(ResumeError, match=r"holds a run with a different config: lr 0.1 -> 0.5; "
                                          r"model.width 8 -> 16 \(only steps may change"):
        wd.write_config(other, resume_allow=("steps",))
    assert wd.file("config.json").read_text() == stored and len(wd.read_resumes()) == 1
    with pytest.raises(ResumeError, match="allows no change on resume"):
        wd.write_config(longer)


def test_non_writer_writes_nothing(tmp_path):
    wd = Workdir(tmp_path / "run", is_writer=False)
    wd.write_results({"a": 1})
    wd.log_metrics(1, a=1.0)
    assert not (tmp_path / "run").exists()


def test_bad_input_messages(tmp_path):
    with pytest.raises(ValueError, match="path must be a non-empty"):
        Workdir("")
    with pytest.raises(TypeError, match="text must be str, got bytes"):
        atomic_write_text(tmp_path / "x", b"bytes")
    with pytest.raises(TypeError, match="data must be bytes"):
        workdir_lib.atomic_write_bytes(tmp_path / "x", "text")
    with pytest.raises(TypeError, match="object"):
        atomic_write_json(tmp_path / "x.json", {"o": object()})
