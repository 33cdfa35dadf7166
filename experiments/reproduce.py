"""The main job: run every registered paper claim at a tier and write one report.

    python -m experiments.reproduce --quick --workdir runs/quick
    python -m experiments.reproduce --tier standard --only muon_ns,lstdq --workdir runs/std
    python -m experiments.reproduce --tier standard --workdir runs/std --resume

Each claim runs in ``<workdir>/<package>/<claim>/``. A claim that raises is recorded with
its traceback and the run goes on. ``REPORT.md`` and ``report.json`` are rewritten
atomically after every claim, so an interrupted run keeps what it finished. Both carry the
run's provenance: git commit and whether the tree had uncommitted changes, Python, JAX,
Flax and optax versions, device kind and count, CPU count and load, date, tier, and the
wall time of each claim.

A fresh run (no ``--resume``) keeps the previous report as ``REPORT.previous.md`` /
``report.previous.json`` and empties each claim's folder just before running it.
``--resume`` keeps the finished claims of a report made at the same tier from the same
commit (and the same uncommitted changes, if any) and runs the rest, continuing an
interrupted claim from its checkpoints.

Exit status: 0 when every claim ran (held or not), 1 when a claim raised, 2 for bad
arguments (unknown package, conflicting tier flags, none of the requested packages has
claims, a report that cannot be resumed).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

from experiments.claims import (
    Claim,
    ClaimResult,
    discover_claims,
    experiment_packages,
    packages_without_claims,
)
from experiments.config import TIERS
from experiments.launch import quiet_library_logs
from experiments.progress import format_duration
from experiments.workdir import atomic_write_json, atomic_write_text, to_jsonable

__all__ = ["ResumeMismatch", "format_number", "provenance", "render_report", "run_claims"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_VERSIONS = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


class ResumeMismatch(ValueError):
    """``--resume`` found a report of another tier, commit or set of local changes."""


# -- provenance ---------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``{"commit", "dirty", "diff_sha256"}`` of the source tree (``None``s outside git).

    ``dirty`` means tracked files differ from the commit; ``diff_sha256`` fingerprints
    those differences (``git diff HEAD``), so a resumed report can tell whether the code
    that ran is still the same.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff_sha256": None}
    diff = _git("diff", "HEAD") or ""
    return {"commit": commit.strip(), "dirty": bool(diff),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(tier: str) -> dict[str, Any]:
    """Where and how a report was made: code, software, hardware, date, load, command."""
    import jax

    devices = jax.devices()
    try:
        cpus_usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus_usable = os.cpu_count()
    return {
        "tier": tier,
        **git_state(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in _VERSIONS},
        "platform": platform.platform(),
        "device_kind": devices[0].device_kind,
        "device_platform": devices[0].platform,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpus_usable,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "started_at": _now(),
        "command": " ".join(["python -m experiments.reproduce", *sys.argv[1:]]),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- running ------------------------------------------------------------------------------


def _run_one(claim: Claim, tier: str, root: Path, *, fresh: bool) -> dict[str, Any]:
    workdir = root / claim.package / claim.name
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "id": claim.id,
        "package": claim.package,
        "name": claim.name,
        "paper": claim.paper,
        "statement": claim.statement,
        "workdir": os.path.relpath(workdir, root),
        "started_at": _now(),
    }
    t0 = time.perf_counter()
    try:
        result = claim.run(tier, workdir)
        if not isinstance(result, ClaimResult):
            raise TypeError(f"{claim.id}: run returned {type(result).__name__}, not ClaimResult")
        plots = []
        for p in result.plots:
            p = Path(p)
            p = p if p.is_absolute() else workdir / p
            plots.append(os.path.relpath(p, root))
        record.update(
            status="ok",
            held=result.held,
            numbers=to_jsonable(dict(result.numbers), where=f"{claim.id} numbers"),
            summary=result.summary,
            plots=plots,
        )
    except Exception as e:  # noqa: BLE001 - one failing claim must not stop the others
        record.update(
            status="error",
            held=None,
            numbers={},
            summary="",
            plots=[],
            error=f"{type(e).__name__}: {e}",
            traceback=traceback.format_exc(),
        )
    record["wall_s"] = round(time.perf_counter() - t0, 2)
    return record


def _resumable(root: Path, prov: Mapping[str, Any], log) -> tuple[dict[str, dict], list[dict]]:
    """Finished records and earlier runs' provenance of ``root/report.json``, if compatible.

    Raises:
      ResumeMismatch: if the report was made at another tier, commit or local diff.
    """
    path = root / "report.json"
    if not path.exists():
        log(f"reproduce: --resume: no report.json in {root} yet; running every claim")
        return {}, []
    old = json.loads(path.read_text(encoding="utf-8"))
    runs = old.get("runs") or []
    first = runs[0] if runs else {"tier": old.get("tier")}
    for key, what in (("tier", "tier"), ("commit", "commit"), ("diff_sha256", "local changes")):
        if first.get(key) != prov.get(key):
            raise ResumeMismatch(
                f"--resume: {path} was made with {what} {first.get(key)!r}, this run has "
                f"{prov.get(key)!r}; rerun without --resume (or use another --workdir)")
    kept = {r["id"]: r for r in old.get("claims", []) if r.get("status") == "ok"}
    return kept, runs


def run_claims(
    claims: Sequence[Claim],
    tier: str,
    workdir: str | os.PathLike,
    *,
    log=print,
    resume: bool = False,
    missing: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Runs ``claims`` at ``tier``; writes ``REPORT.md``/``report.json`` after each one.

    Args:
      claims: the claims to run, in report order.
      tier: ``quick``, ``standard`` or ``full``.
      workdir: the report's folder; each claim runs in ``<workdir>/<package>/<name>/``.
      log: where progress lines go.
      resume: keep the finished claims of a compatible ``report.json`` in ``workdir`` (same
        tier, commit and local diff) and run only the others, in their old folders.
      missing: ``{package: reason}`` of requested packages without claims, for the report.

    Returns:
      One record per claim (kept or run), in the order of ``claims``.

    Raises:
      ValueError: for an unknown tier.
      ResumeMismatch: if ``resume`` finds a report it may not continue.
    """
    if tier not in TIERS:
        raise ValueError(f"reproduce: tier must be one of {list(TIERS)}, got {tier!r}")
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    prov = provenance(tier)
    kept, runs = _resumable(root, prov, log) if resume else ({}, [])
    if not resume:
        for name in ("REPORT.md", "report.json"):
            if (root / name).exists():
                stem, ext = name.split(".")
                os.replace(root / name, root / f"{stem}.previous.{ext}")
                log(f"reproduce: kept the earlier {name} as {stem}.previous.{ext}")
    run_index = len(runs)
    runs = [*runs, prov]
    missing = dict(missing or {})
    records: dict[str, dict[str, Any]] = {}
    for claim in claims:
        if claim.id in kept:
            records[claim.id] = kept[claim.id]
    if kept:
        log(f"reproduce: --resume keeps {len(records)} finished claim(s) of the earlier run")
    t_start = time.perf_counter()

    def write() -> None:
        prov["wall_s"] = round(time.perf_counter() - t_start, 2)
        prov["loadavg_now"] = [round(x, 2) for x in os.getloadavg()]
        ordered = [records[c.id] for c in claims if c.id in records]
        pending = len(claims) - len(ordered)
        atomic_write_text(root / "REPORT.md",
                          render_report(ordered, tier, pending, runs=runs, missing=missing))
        atomic_write_json(root / "report.json", {
            "tier": tier, "runs": runs, "packages_without_claims": missing,
            "claims": ordered, "pending": [c.id for c in claims if c.id not in records]})

    write()
    todo = [c for c in claims if c.id not in records]
    for i, claim in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {claim.id} ({tier}) ...")
        record = _run_one(claim, tier, root, fresh=not resume)
        record["run"] = run_index
        records[claim.id] = record
        write()
        elapsed = time.perf_counter() - t_start
        log(
            f"[{i}/{len(todo)}] {claim.id}: {_held_word(record)} in "
            f"{format_duration(record['wall_s'])} (total {format_duration(elapsed)})"
            + (f"\n{record['error']}" if record["status"] == "error" else "")
        )
    prov["finished_at"] = _now()
    write()
    log(f"reproduce: wrote {root / 'REPORT.md'} and {root / 'report.json'}")
    return [records[c.id] for c in claims]


# -- the report ---------------------------------------------------------------------------


def _held_word(record: Mapping[str, Any]) -> str:
    if record["status"] == "error":
        return "ERROR"
    return {True: "held", False: "did not hold", None: "undecided"}[record["held"]]


def format_number(value: Any) -> str:
    """A measured value for the report: 4 significant digits, floats always look like floats.

    ``17.0 -> "17.00"``, ``0.25 -> "0.2500"``, ``12345.6 -> "1.235e+04"``, ``3 -> "3"``,
    ``True -> "yes"``, ``None -> "n/a"``; lists element-wise.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:#.4g}"
        return text + "0" if text.endswith(".") else text
    if isinstance(value, list | tuple):
        shown = [format_number(v) for v in value[:8]]
        return "[" + ", ".join(shown) + (", ..." if len(value) > 8 else "") + "]"
    return str(value)


def _provenance_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for i, p in enumerate(runs):
        commit = (p.get("commit") or "unknown")[:12]
        state = {True: " with uncommitted changes (diff " + str(p.get("diff_sha256")) + ")",
                 False: "", None: ""}[p.get("dirty")]
        v = p.get("versions", {})
        load = p.get("loadavg_start", ["?"])[0]
        load_now = p.get("loadavg_now", ["?"])[0]
        label = "Run" if len(runs) == 1 else f"Run {i + 1}" + (" (resumed)" if i else "")
        lines += [
            f"- **{label}.** `{p.get('command', '')}`, started {p.get('started_at')}"
            + (f", finished {p['finished_at']}" if p.get("finished_at") else "")
            + f", wall time {format_duration(p.get('wall_s', float('nan')))}.",
            f"  Code: commit `{commit}`{state}. Python {p.get('python')}, JAX "
            f"{v.get('jax')}, Flax {v.get('flax')}, optax {v.get('optax')}, orbax "
            f"{v.get('orbax-checkpoint')}, NumPy {v.get('numpy')}.",
            f"  Machine: {p.get('device_count')} x {p.get('device_kind')} "
            f"({p.get('device_platform')}), {p.get('cpus_usable')} usable of "
            f"{p.get('cpu_count')} CPUs, load average {load} at the start and {load_now} at "
            f"the last update; {p.get('platform')}.",
        ]
    return lines


def render_report(
    records: Sequence[Mapping[str, Any]],
    tier: str,
    pending: int = 0,
    *,
    runs: Sequence[Mapping[str, Any]] = (),
    missing: Mapping[str, str] | None = None,
) -> str:
    """Markdown for ``REPORT.md``: provenance, a summary per paper, then each claim."""
    lines = [f"# Reproduction report ({tier} tier)", ""]
    lines += _provenance_lines(runs)
    if runs:
        lines.append("")
    if missing:
        lines += ["Packages without claims yet: " + "; ".join(
            f"`{pkg}` ({why})" for pkg, why in missing.items()) + ".", ""]
    if not records and not pending:
        lines += ["No claim was run.", ""]
        return "\n".join(lines)
    held = sum(r["held"] is True for r in records)
    errors = sum(r["status"] == "error" for r in records)
    lines += [
        f"{len(records)} claim(s) run, {held} held, {errors} raised"
        + (f", {pending} not yet run (interrupted or in progress)." if pending else "."),
        "",
        "Held means the claim's direction held at this tier's scale; numbers are as measured. "
        "Wall times come from the machine above and include whatever else ran there (see its "
        "load average); a claim whose criterion compares wall times says in its summary how "
        "often it repeated the timings.",
        "",
    ]
    groups: list[tuple[tuple[str, str], list[Mapping[str, Any]]]] = []
    for r in records:
        key = (r["package"], r["paper"])
        if groups and groups[-1][0] == key:
            groups[-1][1].append(r)
        else:
            groups.append((key, [r]))
    for (pkg, paper), rs in groups:
        lines += [f"**`{pkg}`**: {paper}", "", "| claim | result | wall time |", "|---|---|---|"]
        for r in rs:
            earlier = " (earlier run)" if r.get("run", 0) < len(runs) - 1 else ""
            lines.append(f"| `{r['name']}` | {_held_word(r)} | "
                         f"{format_duration(r['wall_s'])}{earlier} |")
        lines.append("")
    for (pkg, paper), rs in groups:
        lines += [f"## `{pkg}`: {paper}", ""]
        for r in rs:
            lines += [f"### `{r['id']}`: {_held_word(r)}", "", f"**Claim.** {r['statement']}", ""]
            if r["status"] == "error":
                lines += [f"**Error.** `{r['error']}`", "", "```text", r["traceback"].rstrip(),
                          "```", ""]
                continue
            if r["summary"]:
                lines += [f"**Measured.** {r['summary']}", ""]
            numbers = {k: v for k, v in r["numbers"].items() if k != "held"}
            if numbers:
                lines += ["| quantity | value |", "|---|---|"]
                lines += [f"| {k} | {format_number(v)} |" for k, v in numbers.items()]
                lines.append("")
            for p in r["plots"]:
                lines += [f"![{Path(p).stem}]({p})", ""]
            lines += [f"Outputs: `{r['workdir']}/`; started {r.get('started_at', '?')}, wall "
                      f"time {format_duration(r['wall_s'])}.", ""]
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------

def define_flags() -> None:
    """The command-line flags, defined only when run as a script: importing this module
    (tests, notebooks) beside an experiment or bench that has its own ``--workdir`` does not
    collide in absl's global flag registry."""
    global _TIER, _QUICK, _ONLY, _WORKDIR, _RESUME
    _TIER = flags.DEFINE_enum("tier", "quick", list(TIERS), "Scale at which to run the claims.")
    _QUICK = flags.DEFINE_bool("quick", False, "Shorthand for --tier quick.")
    _ONLY = flags.DEFINE_list("only", [], "Only these packages (comma-separated).")
    _WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/<tier>).")
    _RESUME = flags.DEFINE_bool(
        "resume", False, "Keep the finished claims of the report in --workdir (same tier and "
        "commit) and run the rest.")


def _usage_error(message: str) -> None:
    sys.stderr.write(f"python -m experiments.reproduce: {message}\n")
    sys.exit(2)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        _usage_error(f"unexpected positional arguments: {argv[1:]}")
    quiet_library_logs()
    if _QUICK.value and flags.FLAGS["tier"].present and _TIER.value != "quick":
        _usage_error(f"--quick and --tier {_TIER.value} conflict; pass one of them")
    tier = "quick" if _QUICK.value else _TIER.value
    wanted = _ONLY.value or None
    try:
        missing = packages_without_claims(wanted)
        claims = discover_claims(wanted)
    except ValueError as e:
        _usage_error(f"--only: {e}")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    for pkg, why in missing.items():
        log(f"reproduce: {pkg} has no claims yet ({why}); skipped")
    if not claims:
        requested = ", ".join(wanted or experiment_packages())
        _usage_error(f"none of the requested packages ({requested}) has claims yet")
    workdir = _WORKDIR.value or os.path.join("runs", tier)
    try:
        records = run_claims(claims, tier, workdir, log=log, resume=_RESUME.value,
                             missing=missing)
    except ResumeMismatch as e:
        _usage_error(str(e))
    if any(r["status"] == "error" for r in records):
        sys.exit(1)


def _one_line_flags_parser(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _usage_error(str(e))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=_one_line_flags_parser)
