"""Tests of the mesh helpers: one device in-process, eight devices in a subprocess."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.mesh import data_mesh, maybe_initialize_distributed, shard_batch

ROOT = Path(__file__).resolve().parents[2]


def test_eight_device_data_parallel_step_equals_single_device():
    out = subprocess.run([sys.executable, "-m", "tests.experiments.multidevice_step"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK 8 devices" in out.stdout


def test_single_device_mesh():
    mesh = data_mesh(1)
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == 1
    batch = shard_batch({"x": np.ones((3, 2))}, mesh)
    assert isinstance(batch["x"], jax.Array) and batch["x"].shape == (3, 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"num_devices must be in \[1, "):
        data_mesh(0)
    with pytest.raises(ValueError, match=r"\['x'\] has shape \(\)"):
        shard_batch({"x": np.float32(1.0)}, data_mesh(1))


def test_no_coordinator_means_no_initialize(monkeypatch):
    for k in ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS", "SLURM_JOB_ID",
              "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    called = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: called.append(1))
    assert maybe_initialize_distributed() is False and not called
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    assert maybe_initialize_distributed() is True and called == [1]
