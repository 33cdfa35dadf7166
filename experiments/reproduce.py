"""The main job: run every registered paper claim at a tier and write one report.

    python -m experiments.reproduce --quick --workdir runs/quick
    python -m experiments.reproduce --tier standard --only muon_ns,lstdq --workdir runs/std

Each claim runs in ``<workdir>/<package>/<claim>/``. A claim that raises is recorded with
its traceback and the run goes on. ``REPORT.md`` and ``report.json`` are rewritten
atomically after every claim, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

from experiments.claims import PACKAGES, Claim, ClaimResult, discover_claims
from experiments.config import TIERS
from experiments.launch import quiet_library_logs
from experiments.progress import format_duration
from experiments.workdir import atomic_write_json, atomic_write_text, to_jsonable

__all__ = ["render_report", "run_claims"]


def _run_one(claim: Claim, tier: str, root: Path) -> dict[str, Any]:
    workdir = root / claim.package / claim.name
    workdir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "id": claim.id,
        "package": claim.package,
        "name": claim.name,
        "paper": claim.paper,
        "statement": claim.statement,
        "workdir": os.path.relpath(workdir, root),
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


def _held_word(record: dict[str, Any]) -> str:
    if record["status"] == "error":
        return "ERROR"
    return {True: "held", False: "did not hold", None: "undecided"}[record["held"]]


def render_report(records: Sequence[dict[str, Any]], tier: str, pending: int = 0) -> str:
    """Markdown for ``REPORT.md``: a summary table, then one section per claim."""
    lines = [f"# Reproduction report ({tier} tier)", ""]
    if not records and not pending:
        lines += [
            "No claims are registered yet: no package has an `experiments/<pkg>/claims.py`.",
            "",
        ]
        return "\n".join(lines)
    held = sum(r["held"] is True for r in records)
    errors = sum(r["status"] == "error" for r in records)
    lines += [
        f"{len(records)} claim(s) run, {held} held, {errors} raised"
        + (f", {pending} not yet run (interrupted or in progress)." if pending else "."),
        "",
        "Held means the claim's direction held at this tier's scale; numbers are as measured.",
        "",
        "| claim | paper | result | wall time |",
        "|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| `{r['id']}` | {r['paper']} | {_held_word(r)} | {format_duration(r['wall_s'])} |"
        )
    lines.append("")
    for r in records:
        lines += [f"## `{r['id']}`: {_held_word(r)}", "", f"**Paper.** {r['paper']}", ""]
        lines += [f"**Claim.** {r['statement']}", ""]
        if r["status"] == "error":
            lines += [f"**Error.** `{r['error']}`", "", "```", r["traceback"].rstrip(), "```", ""]
            continue
        if r["summary"]:
            lines += [f"**Measured.** {r['summary']}", ""]
        if r["numbers"]:
            lines += ["| quantity | value |", "|---|---|"]
            for k, v in r["numbers"].items():
                v = f"{v:.4g}" if isinstance(v, float) else v
                lines.append(f"| {k} | {v} |")
            lines.append("")
        for p in r["plots"]:
            lines += [f"![{Path(p).stem}]({p})", ""]
        lines += [f"Outputs: `{r['workdir']}/`; wall time {format_duration(r['wall_s'])}.", ""]
    return "\n".join(lines)


def run_claims(
    claims: Sequence[Claim], tier: str, workdir: str | os.PathLike, *, log=print
) -> list[dict[str, Any]]:
    """Runs ``claims`` at ``tier``; writes ``REPORT.md``/``report.json`` after each one."""
    if tier not in TIERS:
        raise ValueError(f"reproduce: tier must be one of {list(TIERS)}, got {tier!r}")
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []

    def write(pending: int) -> None:
        atomic_write_text(root / "REPORT.md", render_report(records, tier, pending))
        atomic_write_json(root / "report.json", {"tier": tier, "claims": records})

    write(len(claims))
    if not claims:
        log("reproduce: no claims are registered yet; wrote an empty report.")
    t_start = time.perf_counter()
    for i, claim in enumerate(claims, 1):
        log(f"[{i}/{len(claims)}] {claim.id} ({tier}) ...")
        record = _run_one(claim, tier, root)
        records.append(record)
        write(len(claims) - i)
        elapsed = time.perf_counter() - t_start
        log(
            f"[{i}/{len(claims)}] {claim.id}: {_held_word(record)} in "
            f"{format_duration(record['wall_s'])} (total {format_duration(elapsed)})"
            + (f"\n{record['error']}" if record["status"] == "error" else "")
        )
    log(f"reproduce: wrote {root / 'REPORT.md'} and {root / 'report.json'}")
    return records


_TIER = flags.DEFINE_enum("tier", "quick", list(TIERS), "Scale at which to run the claims.")
_QUICK = flags.DEFINE_bool("quick", False, "Shorthand for --tier quick.")
_ONLY = flags.DEFINE_list("only", [], f"Only these packages (of {', '.join(PACKAGES)}).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/<tier>).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    quiet_library_logs()
    tier = "quick" if _QUICK.value else _TIER.value
    try:
        claims = discover_claims(_ONLY.value or None)
    except ValueError as e:
        raise app.UsageError(f"--only: {e}") from e
    workdir = _WORKDIR.value or os.path.join("runs", tier)
    run_claims(claims, tier, workdir, log=lambda s: print(s, file=sys.stderr, flush=True))


if __name__ == "__main__":
    app.run(main)
