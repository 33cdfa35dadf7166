"""Tests of the claim registry and the reproduce job."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.claims import Claim, ClaimResult, discover_claims
from experiments.reproduce import run_claims

ROOT = Path(__file__).resolve().parents[2]


def _ok(tier, workdir):
    (workdir / "plot.png").write_bytes(b"\x89PNG")
    return ClaimResult(numbers={"gap": 0.25, "n": 3}, held=True, summary=f"ran at {tier}",
                       plots=["plot.png"])


def _boom(tier, workdir):
    raise RuntimeError("diverged at step 7")


def _no(tier, workdir):
    return ClaimResult(numbers={"gap": -0.1}, held=False, summary="opposite direction")


def test_run_claims_keeps_going_and_reports(tmp_path):
    claims = [
        Claim("muon_ns", "a", "Paper A", "A beats B.", _ok),
        Claim("lstdq", "b", "Paper B", "C predicts D.", _boom),
        Claim("cqc", "c", "Paper C", "E helps.", _no),
    ]
    logs = []
    records = run_claims(claims, "quick", tmp_path, log=logs.append)
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert [r["held"] for r in records] == [True, None, False]
    assert "RuntimeError: diverged at step 7" in records[1]["error"]
    assert "Traceback" in records[1]["traceback"]
    report = (tmp_path / "REPORT.md").read_text()
    assert "3 claim(s) run, 1 held, 1 raised" in report
    assert "| `muon_ns/a` | Paper A | held |" in report
    assert "| `cqc/c` | Paper C | did not hold |" in report
    assert "![plot](muon_ns/a/plot.png)" in report
    assert "| gap | 0.25 |" in report
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["tier"] == "quick" and len(data["claims"]) == 3
    assert sum("[1/3]" in line for line in logs) == 2  # a start line and an end line


def test_bad_result_type_is_recorded(tmp_path):
    claims = [Claim("mgc", "x", "P", "S", lambda tier, wd: {"held": True})]
    (record,) = run_claims(claims, "quick", tmp_path, log=lambda s: None)
    assert record["status"] == "error" and "not ClaimResult" in record["error"]


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="tier must be one of"):
        run_claims([], "medium", tmp_path)
    with pytest.raises(ValueError, match=r"unknown package\(s\) \['nope'\]"):
        discover_claims(["nope"])
    with pytest.raises(TypeError, match="held must be bool"):
        ClaimResult(numbers={}, held="yes")


def test_command_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", "--quick", "--only", "mgc",
         "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "REPORT.md").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", "--only", "nope", "--workdir",
         str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode != 0 and "unknown package(s) ['nope']" in bad.stderr
