"""The 8-device sharded Muon update equals the unsharded one (subprocess: own device count)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_eight_device_sharded_update_equals_single_device():
    out = subprocess.run([sys.executable, "-m", "tests.muon_ns.sharded_update"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK 8 devices" in out.stdout
