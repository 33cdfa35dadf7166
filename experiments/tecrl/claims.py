"""Reproduce claims of the TECRL paper (tecrl package), on the JAX Pendulum-v1.

All three claims share three training runs (SAC, DSAC-T, DSAC-E; 3 seeds each, in parallel
with ``vmap``) kept in ``<workdir>/../runs/<algo>/``; a finished run is reused (its
``results.json`` is read when its ``config.json`` matches), an interrupted one resumes from
its checkpoint. Criteria are fixed here, before running:

1. ``pendulum_returns``: every agent's final deterministic eval return, averaged over seeds,
   is >= -250.
2. ``qe_tracks_mc_entropy``: DSAC-E's ``Q_e(s, a)`` matches Monte-Carlo discounted sums of
   ``-log pi`` from the same ``(s, a)`` (median per-state relative error <= 0.25).
3. ``stable_targets``: the relative drift of the reward critic's TD targets on a fixed probe
   batch between evaluations, averaged over the second half of training, is smaller for
   DSAC-E than for SAC (whose soft targets carry ``-alpha log pi``).
4. ``mujoco_learning_curves`` (full tier only, GPU): HalfCheetah-v5 and Hopper-v5, 3 seeds per
   agent through the Gymnasium loop; held if DSAC-E's mean final return >= SAC's on both.

Claims 1-3 use ``pendulum_quick`` at the quick tier and ``pendulum_standard`` at the
standard and full tiers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.claims import Claim, ClaimResult
from experiments.config import load_config
from experiments.tecrl import train
from experiments.workdir import Workdir

PAPER = ("Mind Your Entropy: From Maximum Entropy to Trajectory Entropy-Constrained RL "
         "(Zhan et al., arXiv 2511.11592)")
CONFIGS = Path(__file__).parent / "configs"
ALGOS = ("sac", "dsac_t", "dsac_e")


# Claims 1-3 are Pendulum claims: the full tier judges them at the standard scale.
PENDULUM_VARIANT = {"quick": "pendulum_quick", "standard": "pendulum_standard",
                    "full": "pendulum_standard"}


def _run(algo: str, tier: str, workdir: Path, variant: str | None = None,
         overrides: dict | None = None, name: str | None = None) -> tuple[dict, Path]:
    config = load_config(CONFIGS / f"{algo}.py", variant or PENDULUM_VARIANT[tier],
                         overrides or {})
    rdir = Path(workdir).parent / "runs" / (name or algo)
    wd = Workdir(rdir)
    cfg_json = json.loads(config.to_json_best_effort())
    done = rdir / "results.json"
    if done.exists() and (rdir / "config.json").exists():
        if json.loads((rdir / "config.json").read_text()) == cfg_json:
            return json.loads(done.read_text()), rdir
    wd.write_config(config)
    return train.run(config, rdir), rdir


def _curves(workdir: Path, runs: dict[str, Path], key: str, name: str, ylabel: str,
            log: bool = False) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for algo, rdir in runs.items():
        recs = Workdir(rdir).read_metrics()
        ax.plot([r["env_steps"] for r in recs], [r[key] for r in recs], label=algo)
    if key == "eval_return":
        ax.axhline(-250, color="k", ls="--", lw=1)
    ax.set(xlabel="env steps per seed", ylabel=ylabel, yscale="log" if log else "linear")
    ax.legend()
    fig.tight_layout()
    Workdir(workdir).save_figure(fig, name)
    plt.close(fig)
    return name


def pendulum_returns(tier: str, workdir: Path) -> ClaimResult:
    res, runs = {}, {}
    for algo in ALGOS:
        res[algo], runs[algo] = _run(algo, tier, workdir)
    numbers = {f"{a}_final_return": res[a]["final_eval_return_mean"] for a in ALGOS}
    numbers.update({f"{a}_best_return": res[a]["best_eval_return_mean"] for a in ALGOS})
    numbers["env_steps_per_seed"] = res["dsac_e"]["env_steps_per_seed"]
    numbers.update({f"{a}_steps_per_s": res[a]["steps_per_s_mean"] for a in ALGOS})
    held = all(res[a]["final_eval_return_mean"] >= -250 for a in ALGOS)
    plot = _curves(workdir, runs, "eval_return", "returns.png", "eval return (mean of seeds)")
    summary = ("Final deterministic eval return (mean of 3 seeds): " + ", ".join(
        f"{a} {res[a]['final_eval_return_mean']:.1f}" for a in ALGOS) + "; criterion >= -250.")
    return ClaimResult(numbers=numbers, held=held, summary=summary, plots=[plot])


def qe_tracks_mc_entropy(tier: str, workdir: Path) -> ClaimResult:
    res, rdir = _run("dsac_e", tier, workdir)
    data = json.loads((rdir / "qe_mc.json").read_text())
    q_e, mc = np.array(data["q_e"]), np.array(data["mc"])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.scatter(mc, q_e, s=12)
    lo, hi = min(mc.min(), q_e.min()), max(mc.max(), q_e.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel="Monte-Carlo sum of gamma^t (-log pi)", ylabel="Q_e(s, a)",
           title="DSAC-E entropy critic vs rollouts")
    fig.tight_layout()
    Workdir(workdir).save_figure(fig, "qe_vs_mc.png")
    plt.close(fig)
    numbers = {k: res[k] for k in ("qe_mc_median_rel_error", "qe_mc_mean_level_rel_error",
                                   "qe_mc_corr", "qe_mean", "mc_mean")}
    numbers["num_states"] = len(q_e)
    held = res["qe_mc_median_rel_error"] <= 0.25
    summary = (f"Q_e mean {res['qe_mean']:.2f} vs Monte-Carlo {res['mc_mean']:.2f}; median "
               f"per-state relative error {res['qe_mc_median_rel_error']:.3f} (criterion <= 0.25), "
               f"correlation {res['qe_mc_corr']:.3f}.")
    return ClaimResult(numbers=numbers, held=held, summary=summary, plots=["qe_vs_mc.png"])


def stable_targets(tier: str, workdir: Path) -> ClaimResult:
    res, runs = {}, {}
    for algo in ("sac", "dsac_e"):
        res[algo], runs[algo] = _run(algo, tier, workdir)
    d_sac = res["sac"]["target_drift_second_half"]
    d_e = res["dsac_e"]["target_drift_second_half"]
    plot = _curves(workdir, runs, "target_drift", "target_drift.png",
                   "relative target drift per eval interval", log=True)
    numbers = {"sac_target_drift": d_sac, "dsac_e_target_drift": d_e,
               "ratio_dsac_e_over_sac": d_e / d_sac}
    summary = (f"Relative TD-target drift on a fixed probe batch, second half of training: "
               f"SAC {d_sac:.4f}, DSAC-E {d_e:.4f} (ratio {d_e / d_sac:.2f}; held if < 1).")
    return ClaimResult(numbers=numbers, held=bool(d_e < d_sac), summary=summary, plots=[plot])


def mujoco_learning_curves(tier: str, workdir: Path) -> ClaimResult:
    """Full tier only (GPU, hours): HalfCheetah-v5 and Hopper-v5, 3 agents x 3 seeds."""
    if tier != "full":
        return ClaimResult(numbers={"tier": tier}, held=None,
                           summary="Runs only at the full tier (MuJoCo, 1M steps per run).")
    finals: dict[str, dict[str, list[float]]] = {}
    for task in ("halfcheetah", "hopper"):
        for algo in ALGOS:
            finals.setdefault(task, {})[algo] = [
                _run(algo, tier, workdir, f"{task}_full", {"seed": seed},
                     f"{task}_{algo}_seed{seed}")[0]["final_eval_return_mean"]
                for seed in range(3)]
    numbers = {f"{t}_{a}_final_mean": float(np.mean(v)) for t, d in finals.items()
               for a, v in d.items()}
    held = all(np.mean(d["dsac_e"]) >= np.mean(d["sac"]) for d in finals.values())
    return ClaimResult(numbers=numbers, held=bool(held),
                       summary="Final returns (mean of 3 seeds); held if DSAC-E >= SAC on both.")


CLAIMS = [
    Claim(package="tecrl", name="pendulum_returns", paper=PAPER,
          statement="SAC, DSAC-T and DSAC-E all solve Pendulum-v1 (mean return >= -250, "
                    "3 seeds, <= 20k env steps).", run=pendulum_returns),
    Claim(package="tecrl", name="qe_tracks_mc_entropy", paper=PAPER,
          statement="The entropy critic Q_e estimates the expected cumulative future entropy "
                    "of the policy.", run=qe_tracks_mc_entropy),
    Claim(package="tecrl", name="stable_targets", paper=PAPER,
          statement="Separating entropy from reward makes Q targets more stationary than "
                    "SAC's soft targets.", run=stable_targets),
    Claim(package="tecrl", name="mujoco_learning_curves", paper=PAPER,
          statement="DSAC-E reaches higher returns than SAC on HalfCheetah-v5 and Hopper-v5 "
                    "(full tier, GPU).", run=mujoco_learning_curves),
]
