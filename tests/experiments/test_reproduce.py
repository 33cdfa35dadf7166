"""Tests of the claim registry and the reproduce job."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import reproduce
from experiments.claims import (
    Claim,
    ClaimResult,
    discover_claims,
    experiment_packages,
    packages_without_claims,
)
from experiments.reproduce import ResumeMismatch, format_number, run_claims

ROOT = Path(__file__).resolve().parents[2]


def _ok(tier, workdir):
    (workdir / "plot.png").write_bytes(b"\x89PNG")
    return ClaimResult(numbers={"gap": 0.25, "n": 3, "time_s": 17.0, "held": True},
                       held=True, summary=f"ran at {tier}", plots=["plot.png"])


def _boom(tier, workdir):
    raise RuntimeError("diverged at step 7")


def _no(tier, workdir):
    return ClaimResult(numbers={"gap": -0.1}, held=False, summary="opposite direction")


def _quiet(_):
    pass


def test_run_claims_keeps_going_and_reports(tmp_path):
    claims = [
        Claim("muon_ns", "a", "Paper A", "A beats B.", _ok),
        Claim("muon_ns", "a2", "Paper A", "A beats C.", _no),
        Claim("lstdq", "b", "Paper B", "C predicts D.", _boom),
        Claim("cqc", "c", "Paper C", "E helps.", _no),
    ]
    logs = []
    records = run_claims(claims, "quick", tmp_path, log=logs.append,
                         missing={"mgc": "no experiments/mgc/claims.py"})
    assert [r["status"] for r in records] == ["ok", "ok", "error", "ok"]
    assert [r["held"] for r in records] == [True, False, None, False]
    assert "RuntimeError: diverged at step 7" in records[2]["error"]
    assert "Traceback" in records[2]["traceback"]
    report = (tmp_path / "REPORT.md").read_text()
    assert "4 claim(s) run, 1 held, 1 raised" in report
    # the paper is named once per group, not in every row
    assert report.count("**`muon_ns`**: Paper A") == 1 and report.count("Paper A") == 2
    assert "| `a` | held |" in report and "| `a2` | did not hold |" in report
    assert "| `c` | did not hold |" in report
    assert "![plot](muon_ns/a/plot.png)" in report
    assert "| gap | 0.2500 |" in report and "| time_s | 17.00 |" in report
    assert "| n | 3 |" in report
    assert "\n| held | " not in report  # the verdict is the result column, not a number
    assert "`mgc` (no experiments/mgc/claims.py)" in report
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["tier"] == "quick" and len(data["claims"]) == 4 and data["pending"] == []
    assert data["claims"][0]["numbers"]["held"] is True  # report.json keeps every number
    assert data["packages_without_claims"] == {"mgc": "no experiments/mgc/claims.py"}
    assert sum("[1/4]" in line for line in logs) == 2  # a start line and an end line


def test_provenance_is_recorded(tmp_path):
    run_claims([Claim("cqc", "c", "Paper C", "E helps.", _no)], "quick", tmp_path, log=_quiet)
    data = json.loads((tmp_path / "report.json").read_text())
    (prov,) = data["runs"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    assert prov["commit"] == head and isinstance(prov["dirty"], bool)
    assert prov["tier"] == "quick" and prov["python"].startswith("3.")
    for dist in ("jax", "flax", "optax"):
        assert prov["versions"][dist]
    assert prov["device_count"] >= 1 and prov["device_kind"]
    assert prov["cpu_count"] >= 1 and len(prov["loadavg_start"]) == 3
    assert prov["started_at"].endswith("Z") and prov["finished_at"] >= prov["started_at"]
    assert data["claims"][0]["wall_s"] >= 0 and data["claims"][0]["started_at"]
    report = (tmp_path / "REPORT.md").read_text()
    assert f"commit `{head[:12]}`" in report
    assert f"JAX {prov['versions']['jax']}" in report and "load average" in report


def test_fresh_run_keeps_the_previous_report_and_empties_claim_folders(tmp_path):
    claim = Claim("cqc", "c", "Paper C", "E helps.", _no)
    run_claims([claim], "quick", tmp_path, log=_quiet)
    (tmp_path / "cqc" / "c" / "stale.txt").write_text("from the first run")
    first = (tmp_path / "report.json").read_text()
    run_claims([claim], "quick", tmp_path, log=_quiet)
    assert (tmp_path / "report.previous.json").read_text() == first
    assert (tmp_path / "REPORT.previous.md").exists()
    assert not (tmp_path / "cqc" / "c" / "stale.txt").exists()


def test_resume_keeps_finished_claims_and_runs_the_rest(tmp_path):
    calls = []

    def counted(result_fn):
        def run(tier, workdir):
            calls.append(workdir.name)
            return result_fn(tier, workdir)
        return run

    flaky = {"fail": True}

    def sometimes(tier, workdir):
        calls.append(workdir.name)
        (workdir / "partial.txt").write_text("progress")
        if flaky["fail"]:
            raise RuntimeError("interrupted")
        assert (workdir / "partial.txt").exists()
        return ClaimResult(numbers={"x": 1.0}, held=True)

    claims = [Claim("muon_ns", "a", "P", "S", counted(_ok)),
              Claim("lstdq", "b", "P", "S", sometimes),
              Claim("cqc", "c", "P", "S", counted(_no))]
    run_claims(claims, "quick", tmp_path, log=_quiet)
    assert calls == ["a", "b", "c"]
    flaky["fail"] = False
    records = run_claims(claims, "quick", tmp_path, log=_quiet, resume=True)
    assert calls == ["a", "b", "c", "b"]  # only the claim that raised ran again
    assert [r["status"] for r in records] == ["ok", "ok", "ok"]
    assert [r["run"] for r in records] == [0, 1, 0]
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["runs"]) == 2
    assert "(earlier run)" in (tmp_path / "REPORT.md").read_text()
    # another tier (or commit) is not resumed
    with pytest.raises(ResumeMismatch, match="was made with tier 'quick'"):
        run_claims(claims, "standard", tmp_path, log=_quiet, resume=True)


def test_resume_refuses_a_report_of_another_commit(tmp_path, monkeypatch):
    claims = [Claim("cqc", "c", "P", "S", _no)]
    run_claims(claims, "quick", tmp_path, log=_quiet)
    monkeypatch.setattr(reproduce, "git_state", lambda: {"commit": "0" * 40, "dirty": False,
                                                         "diff_sha256": None})
    with pytest.raises(ResumeMismatch, match=r"commit '[0-9a-f]{40}', this run has '0000"):
        run_claims(claims, "quick", tmp_path, log=_quiet, resume=True)


def test_format_number():
    assert format_number(17.0) == "17.00"
    assert format_number(0.25) == "0.2500"
    assert format_number(12345.6) == "1.235e+04"
    assert format_number(1234.0) == "1234.0"
    assert format_number(3) == "3"
    assert format_number(True) == "yes" and format_number(None) == "n/a"
    assert format_number([1.0, 2]) == "[1.000, 2]"


def test_bad_result_type_is_recorded(tmp_path):
    claims = [Claim("mgc", "x", "P", "S", lambda tier, wd: {"held": True})]
    (record,) = run_claims(claims, "quick", tmp_path, log=_quiet)
    assert record["status"] == "error" and "not ClaimResult" in record["error"]


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="tier must be one of"):
        run_claims([], "medium", tmp_path)
    with pytest.raises(ValueError, match=r"unknown package\(s\) \['nope'\]"):
        discover_claims(["nope"])
    with pytest.raises(ValueError, match=r"unknown package\(s\) \['nope'\]"):
        packages_without_claims(["nope"])
    with pytest.raises(TypeError, match="held must be bool"):
        ClaimResult(numbers={}, held="yes")


def test_registry_names_packages_without_claims():
    packages = experiment_packages()
    assert packages[:3] == ["muon_ns", "lstdq", "cqc"]
    missing = packages_without_claims()
    has_claims = {c.package for c in discover_claims()}
    assert set(missing) == set(packages) - has_claims
    for pkg in missing:
        assert not (ROOT / "experiments" / pkg / "claims.py").exists() or "lists no" in missing[pkg]


def _reproduce(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce", *args,
                           "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_packages_without_claims_gives_the_reason(monkeypatch):
    import experiments.claims as claims_mod

    monkeypatch.setattr(claims_mod, "_claims_module", lambda pkg: None)
    assert claims_mod.packages_without_claims(["lstdq"]) == {
        "lstdq": "no experiments/lstdq/claims.py"}


def test_command_line_errors(tmp_path):
    nothing = [p for p in experiment_packages() if p in packages_without_claims()]
    if nothing:  # every package has claims now; the reason itself is tested in-process above
        out = _reproduce("--quick", "--only", nothing[0], tmp_path=tmp_path)
        assert out.returncode == 2, out.stderr
        assert (f"reproduce: {nothing[0]} has no claims yet (no experiments/{nothing[0]}/"
                "claims.py)") in out.stderr
        assert "none of the requested packages" in out.stderr
        assert not (tmp_path / "REPORT.md").exists()
    bad = _reproduce("--only", "nope", tmp_path=tmp_path)
    assert bad.returncode == 2 and "unknown package(s) ['nope']" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    conflict = _reproduce("--quick", "--tier", "standard", "--only", "lstdq", tmp_path=tmp_path)
    assert conflict.returncode == 2
    assert "--quick and --tier standard conflict" in conflict.stderr
    assert len(conflict.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "REPORT.md").exists()
