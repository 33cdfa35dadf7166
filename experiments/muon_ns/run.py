"""Dispatches ``config.experiment`` to its experiment and writes the run's report."""

from __future__ import annotations

from pathlib import Path

from experiments.config import ConfigError
from experiments.muon_ns import convergence, lm_sweep, rank, training
from experiments.workdir import Workdir

EXPERIMENTS = ("convergence", "digits", "lm", "rank")


@training.single_threaded_blas
def run(config, workdir: str | Path) -> dict:
    """Runs one experiment of the muon_ns suite into ``workdir``; returns its results."""
    if config.experiment not in EXPERIMENTS:
        raise ConfigError(f"config.experiment must be one of {list(EXPERIMENTS)}, got "
                          f"{config.experiment!r}")
    workdir = Path(workdir)
    if config.experiment == "convergence":
        results = convergence.run(config, workdir)
    elif config.experiment == "rank":
        results = rank.run(config, workdir)
    else:
        run_task = training.run_digits if config.experiment == "digits" else lm_sweep.run
        results = run_task(config, workdir)
        Workdir(workdir).write_results(results)
    lines = [f"# muon_ns / {config.experiment} ({config.tier} tier)", "",
             "| quantity | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in results.items()]
    Workdir(workdir).write_report("\n".join(lines) + "\n")
    return results
