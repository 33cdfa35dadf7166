"""Does DSAC-E's trajectory entropy budget bind? Long DSAC-E runs on MuJoCo, alpha traced.

    python -m experiments.tecrl.budget --tasks=halfcheetah,hopper --seeds=3 \
        --steps=60000 --workdir=/tmp/tecrl_budget

The budget is :func:`tecrl.losses.trajectory_entropy_budget` (``rho * H_target`` on the
trajectory entropy ``E[-log pi(a|s) + Q_e(s, a)]``; our derivation, the paper's could not be
read). In the MuJoCo standard tier (15k env steps) it never bound: alpha fell from e
throughout, at the rate Adam allows. This script runs DSAC-E with the standard tier's
settings (``<task>_standard``: 256-256 ReLU, batch 256, lr 3e-4, 5k random steps) for
``--steps`` env steps per seed, one run directory per (task, seed) under ``--workdir``
(resumable: a finished run is read back, an interrupted one continues from its checkpoint),
and records alpha and the constraint's left side at every evaluation (``--eval_every``).

The criteria are fixed here, before the runs (:func:`judge_binding`), per seed:

* ``violated``: at some evaluation the left side was below the budget;
* ``binds``: alpha's minimum lies before the last evaluation and alpha ends above it (alpha
  fell, then rose again: the dual variable answered a violation);
* ``settles``: over the last third of the evaluations, alpha stays within a factor of 2
  (``max log alpha - min log alpha < log 2``), where in the first 15k steps it fell by a
  factor of about 7.

Runs for different tasks can go in parallel processes (``--tasks=halfcheetah`` in one,
``--tasks=hopper`` in the other); a last call with every task writes the summary
(``budget.json``) and the figure (``budget.png``: alpha, and the left side against the
budget, per seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags

from experiments.config import load_config
from experiments.launch import quiet_library_logs
from experiments.tecrl import train
from experiments.tecrl.configs import common
from experiments.workdir import Workdir, atomic_write_json
from tecrl.losses import trajectory_entropy_budget

CONFIG = Path(__file__).resolve().parent / "configs" / "dsac_e.py"
ACT_DIM = {"halfcheetah": 6, "hopper": 3}


def define_flags():
    flags.DEFINE_list("tasks", ["halfcheetah", "hopper"], "MuJoCo tasks (halfcheetah, hopper)")
    flags.DEFINE_integer("seeds", 3, "seeds per task (0 .. seeds-1)")
    flags.DEFINE_integer("steps", 60_000, "env steps per run")
    flags.DEFINE_integer("eval_every", 2500, "env steps between evaluations (alpha is read there)")
    flags.DEFINE_float("rho", 1.0, "DSAC-E's budget scale")
    flags.DEFINE_float("tau_e", None, "Polyak rate of the entropy critic's target (default: "
                       "the agent's tau)")
    flags.DEFINE_string("workdir", None, "where the runs and the summary go")
    flags.DEFINE_bool("summary_only", False, "only summarize the finished runs")
    flags.mark_flag_as_required("workdir")


def judge_binding(alpha: list[float], lhs: list[float], budget: float) -> dict:
    """The per-seed criteria of the module docstring, from alpha and the constraint's left
    side at each evaluation."""
    a, h = np.asarray(alpha, float), np.asarray(lhs, float)
    if a.size < 3 or a.size != h.size or not np.all(a > 0):
        raise ValueError(f"judge_binding: need >= 3 positive alphas and as many left-side "
                         f"values, got {a.size} and {h.size}")
    tail = np.log(a[-max(1, a.size // 3):])
    lo = int(np.argmin(a))
    return {"violated": bool(np.any(h < budget)),
            "binds": bool(lo < a.size - 1 and a[-1] > a[lo]),
            "settles": bool(tail.max() - tail.min() < np.log(2.0)),
            "alpha_min": float(a[lo]), "alpha_min_at": lo, "alpha_final": float(a[-1]),
            "tail_alpha_range": [float(np.exp(tail.min())), float(np.exp(tail.max()))],
            "lhs_final": float(h[-1])}


def _config(task: str, seed: int):
    config = load_config(CONFIG, f"{task}_standard", {
        "seed": seed, "total_steps": flags.FLAGS.steps, "buffer_size": flags.FLAGS.steps,
        "eval_every": flags.FLAGS.eval_every, "agent.rho": flags.FLAGS.rho})
    if flags.FLAGS.tau_e is not None:
        with config.unlocked():
            config.agent.tau_e = float(flags.FLAGS.tau_e)
    return config


def _run_dir(task: str, seed: int) -> Path:
    return Path(flags.FLAGS.workdir) / f"{task}_seed{seed}"


def _trace(task: str, seed: int) -> dict | None:
    rdir = _run_dir(task, seed)
    if not (rdir / "results.json").exists():
        return None
    recs = [r for r in Workdir(rdir).read_metrics() if "alpha" in r]
    return {"env_steps": [r["env_steps"] for r in recs], "alpha": [r["alpha"] for r in recs],
            "lhs": [r["trajectory_entropy"] for r in recs],
            "eval_return": [r["eval_return"] for r in recs]}


def _plot(out: Path, traces: dict, budgets: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(traces)
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 6.5), squeeze=False)
    for j, task in enumerate(tasks):
        for seed, tr in traces[task].items():
            axes[0, j].plot(tr["env_steps"], tr["alpha"], label=f"seed {seed}")
            axes[1, j].plot(tr["env_steps"], tr["lhs"], label=f"seed {seed}")
        axes[0, j].set(title=f"{task}: alpha", yscale="log", xlabel="env steps")
        axes[1, j].axhline(budgets[task], color="k", ls="--", label="budget")
        axes[1, j].set(title=f"{task}: E[-log pi + Q_e] vs budget", xlabel="env steps",
                       yscale="symlog")
        axes[0, j].legend()
        axes[1, j].legend()
    fig.tight_layout()
    Workdir(out).save_figure(fig, "budget.png")
    plt.close(fig)


def main(argv):
    del argv
    quiet_library_logs()
    fl = flags.FLAGS
    for task in fl.tasks:
        if task not in ACT_DIM:
            raise app.UsageError(f"--tasks: expected some of {sorted(ACT_DIM)}, got {task!r}")
    if not fl.summary_only:
        for task in fl.tasks:
            for seed in range(fl.seeds):
                if _trace(task, seed) is None:
                    config = _config(task, seed)
                    common.validate(config)
                    Workdir(_run_dir(task, seed)).write_config(config)
                    train.run(config, _run_dir(task, seed))
    traces = {t: {s: tr for s in range(fl.seeds) if (tr := _trace(t, s))} for t in fl.tasks}
    budgets = {t: trajectory_entropy_budget(-ACT_DIM[t], fl.rho) for t in fl.tasks}
    summary = {"steps": fl.steps, "rho": fl.rho, "tau_e": fl.tau_e, "budgets": budgets,
               "per_seed": {}}
    for task, by_seed in traces.items():
        summary["per_seed"][task] = {s: judge_binding(tr["alpha"], tr["lhs"], budgets[task])
                                     for s, tr in by_seed.items()}
    summary["traces"] = traces
    atomic_write_json(Path(fl.workdir) / "budget.json", summary)
    if any(traces.values()):
        _plot(Path(fl.workdir), {t: v for t, v in traces.items() if v}, budgets)
    for task, by_seed in summary["per_seed"].items():
        for seed, j in by_seed.items():
            print(f"{task} seed {seed}: violated {j['violated']}, binds {j['binds']}, settles "
                  f"{j['settles']}; alpha min {j['alpha_min']:.3f} at eval {j['alpha_min_at']}, "
                  f"final {j['alpha_final']:.3f}, last third in {j['tail_alpha_range']}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
