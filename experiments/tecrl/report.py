"""What a finished tecrl run writes: ``results.json``, learning-curve plots, ``report.md``
(and, for DSAC-E on the JAX Pendulum, ``qe_mc.json`` from :mod:`experiments.tecrl.probes`)."""

from __future__ import annotations

import jax
import numpy as np

from experiments.tecrl import probes
from experiments.workdir import Workdir

__all__ = ["gym", "on_device", "plot_curves"]


def plot_curves(wd: Workdir, records, title: str, name: str = "learning_curves.png") -> str:
    """Eval return per seed (and mean), alpha and the temperature's constraint estimate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["env_steps"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    per_seed = np.array([r["eval_return_per_seed"] for r in records])
    for s in range(per_seed.shape[1]):
        axes[0].plot(steps, per_seed[:, s], alpha=0.5)
    axes[0].plot(steps, per_seed.mean(1), "k", lw=2, label="mean")
    axes[0].set(title=f"{title}: eval return", xlabel="env steps")
    axes[0].legend()
    alpha = [r.get("alpha", np.nan) for r in records]
    axes[1].plot(steps, alpha)
    axes[1].set(title="alpha", xlabel="env steps", yscale="log")
    axes[2].plot(steps, [r.get("trajectory_entropy", np.nan) for r in records],
                 label="entropy estimate")
    axes[2].set(title="temperature's entropy estimate", xlabel="env steps")
    fig.tight_layout()
    wd.save_figure(fig, name)
    plt.close(fig)
    return name


def on_device(config, wd: Workdir, agent_cfg, trainer, state) -> dict:
    """Results of an on-device run (per-seed finals, second-half target drift; for DSAC-E on
    the JAX Pendulum also Q_e vs Monte Carlo)."""
    records = wd.read_metrics()
    final = np.array(records[-1]["eval_return_per_seed"])
    half = records[len(records) // 2:]
    drift = np.array([r["target_drift_per_seed"] for r in half]).mean(0)
    results = {
        "algo": agent_cfg.algo,
        "policy_delay": agent_cfg.policy_delay,
        "final_eval_return_mean": float(final.mean()),
        "final_eval_return_per_seed": final.tolist(),
        "best_eval_return_mean": float(max(r["eval_return"] for r in records)),
        "target_drift_second_half": float(drift.mean()),
        "target_drift_second_half_per_seed": drift.tolist(),
        "env_steps_per_seed": records[-1]["env_steps"],
        "env_steps_per_s_mean": float(np.mean([r["env_steps_per_s"]
                                               for r in records[1:] or records])),
    }
    if agent_cfg.algo == "dsac_e" and config.env == "pendulum_jax" \
            and config.qe_mc.num_states > 0:
        k_mc = jax.random.split(jax.random.key(config.seed), 4)[3]
        ag0 = jax.tree.map(lambda x: x[0], state["run"].agent)
        buf0 = jax.tree.map(lambda x: x[0], state["run"].buffer)
        q_e, mc = probes.qe_mc_fn(trainer, config.qe_mc.num_states, config.qe_mc.num_rollouts,
                                  config.qe_mc.horizon)(ag0, buf0, k_mc)
        q_e, mc = np.asarray(q_e), np.asarray(mc)
        rel = np.abs(q_e - mc) / np.abs(mc)
        results.update(
            qe_mc_median_rel_error=float(np.median(rel)),
            qe_mc_mean_level_rel_error=float(abs(q_e.mean() - mc.mean()) / abs(mc.mean())),
            qe_mc_corr=float(np.corrcoef(q_e, mc)[0, 1]) if q_e.std() > 0 else float("nan"),
            qe_mean=float(q_e.mean()), mc_mean=float(mc.mean()))
        wd.write_json("qe_mc.json", {"q_e": q_e.tolist(), "mc": mc.tolist()})
    wd.write_results(results)
    plot_curves(wd, records, agent_cfg.algo)
    wd.write_report(
        f"# {agent_cfg.algo} on {config.env} (on the device)\n\n"
        f"{config.num_seeds} seeds x {config.total_steps} env steps. Final deterministic "
        f"eval return {results['final_eval_return_mean']:.1f} (per seed "
        f"{', '.join(f'{v:.1f}' for v in final)}).\n\n![curves](learning_curves.png)\n")
    return results


def gym(config, wd: Workdir, agent_cfg) -> dict:
    """Results of a Gymnasium run (one seed): final/best eval, alpha path, constraint."""
    records = wd.read_metrics()
    alpha = [r["alpha"] for r in records if "alpha" in r]
    viol = [r["constraint_violation"] for r in records if "constraint_violation" in r]
    results = {
        "algo": agent_cfg.algo, "env": config.env, "seed": config.seed,
        "final_eval_return_mean": records[-1]["eval_return"],
        "best_eval_return_mean": max(r["eval_return"] for r in records),
        "eval_returns": [r["eval_return"] for r in records],
        "eval_env_steps": [r["env_steps"] for r in records],
        "alpha_path": alpha,
        "trajectory_entropy_path": [r.get("trajectory_entropy") for r in records
                                    if "alpha" in r],
        "constraint_violated_chunks": int(sum(v > 0 for v in viol)),
        "env_steps_per_seed": records[-1]["env_steps"],
        "env_steps_per_s_mean": float(np.mean([r["env_steps_per_s"] for r in records])),
    }
    wd.write_results(results)
    plot_curves(wd, records, f"{agent_cfg.algo} {config.env}")
    wd.write_report(
        f"# {agent_cfg.algo} on {config.env}\n\nSeed {config.seed}, {config.total_steps} env "
        f"steps. Final deterministic eval return {results['final_eval_return_mean']:.1f}.\n\n"
        "![curves](learning_curves.png)\n")
    return results
