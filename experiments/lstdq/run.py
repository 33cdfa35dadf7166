"""The lstdq experiments (arXiv:2601.19030); each writes results.json, report.md, plots.

* ``coverage``: over random-MDP and chain settings with varying behaviour mismatch, the
  sqrt(n)-scaled LSTDQ error against the feature-dynamics coverage ``C^pi_phi`` and against
  ``1/sigma_min(A)`` (Spearman rank correlation of each with the error).
* ``rate``: median ``|J_hat - J|`` over ``n`` from ``10^2`` upward; fitted log-log slope.
* ``unification``: the tabular identity ``C = 1 + chi^2`` and the Bellman-complete
  reduction ``C = ||E_{d^pi} phi||^2_{Sigma^{-1}}`` on many MDPs (float64).
* ``cartpole``: LSTDQ vs FQE on logged CartPole data against Monte-Carlo ground truth.

Loops over settings log one metrics line per finished setting and skip finished settings
when re-run in the same workdir (resume).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

import lstdq as L
from experiments import timing
from experiments.config import validate_config
from experiments.lstdq.configs import default as default_config
from experiments.progress import Progress
from experiments.workdir import Workdir

EXPERIMENTS = default_config.EXPERIMENTS


def validate(config) -> None:
    """Checks ``config`` against ``configs/default.py``'s ``RULES`` and ``validate``."""
    validate_config(config, default_config)


# -- shared: Monte-Carlo errors of LSTDQ on a finite MDP ----------------------------------


@functools.cache
def _errors_fn(chunk: int):
    """jitted ``(keys, tables, x0, j_true, num_chunks) -> J_hat - J`` per repetition.

    Each repetition streams ``num_chunks`` chunks of ``chunk`` rows through
    ``update_stats`` (bounded memory; the chunk count is dynamic, so one compilation serves
    every ``n`` that is a multiple of ``chunk``).
    """

    def one(key, tables, x0, num_chunks):
        def body(i, st):
            ds = L.sample_from_tables(jax.random.fold_in(key, i), tables, chunk)
            return L.update_stats(st, *ds)

        st = jax.lax.fori_loop(0, num_chunks, body, L.init_stats(tables.phi.shape[1]))
        return L.value(L.solve(st), x0)

    @jax.jit
    def errors(keys, tables, x0, j_true, num_chunks):
        return jax.vmap(lambda k: one(k, tables, x0, num_chunks))(keys) - j_true

    return errors


def _errors(key, tables, x0, j_true, n: int, reps: int, chunk: int = 100) -> np.ndarray:
    if n % chunk:
        raise ValueError(f"lstdq experiments: n={n} must be a multiple of the chunk {chunk}")
    fn = _errors_fn(chunk)  # one compilation per (chunk, table shapes) in this process
    out = fn(jax.random.split(key, reps), tables, jnp.asarray(x0, jnp.float32),
             jnp.asarray(j_true, jnp.float32), jnp.asarray(n // chunk, jnp.int32))
    return np.asarray(out, np.float64)


def _done_steps(wd: Workdir) -> dict[int, dict]:
    return {int(m["step"]): m for m in wd.read_metrics()}


# -- 1. coverage predicts error ------------------------------------------------------------


def _setting(cfg, seed: int, i: int):
    """Setting ``i``: even -> random MDP with mu = mix(d^pi, skewed, alpha); odd -> chain."""
    k = jax.random.split(jax.random.fold_in(jax.random.key(seed), i), 4)
    half = max(cfg.num_settings // 2 - 1, 1)
    level = min((i // 2) / half, 1.0)  # 0 = well covered ... 1 = poorly covered
    gamma = cfg.gamma
    if i % 2 == 0:
        s, a = cfg.num_states, cfg.num_actions
        mdp = L.random_mdp(k[0], s, a)
        pi = L.random_policy(k[1], s, a)
        skew = L.random_policy(k[3], 1, s * a, concentration=0.3).reshape(s, a)
        mu = L.mixture(L.occupancy(mdp, pi, gamma), skew, 0.95 - 0.93 * level)
        family = "random"
    else:
        s = cfg.chain_states
        mdp = L.chain_mdp(s, slip=0.1)
        pi = np.tile([0.2, 0.8], (s, 1))
        mu = L.chain_behavior(s, 1.3 - 0.9 * level, right_prob=0.5)
        family = "chain"
    q = L.exact_q(mdp, pi, gamma)
    phi = L.realizable_features(k[2], q, cfg.dim)
    return family, level, mdp, pi, mu, phi


def run_coverage(config, workdir) -> dict[str, Any]:
    cfg = config.coverage
    wd = Workdir(workdir)
    done = _done_steps(wd)
    progress = Progress(cfg.num_settings, name="lstdq/coverage", interval_s=10.0,
                        start_step=len(done))
    rows = []
    for i in range(cfg.num_settings):
        if i in done:
            rows.append(done[i])
            continue
        family, level, mdp, pi, mu, phi = _setting(cfg, config.seed, i)
        pop = L.population_coverage(mdp, pi, mu, phi, cfg.gamma)
        tables = L.sampler_tables(mdp, pi, mu, phi, cfg.gamma)
        x0 = L.init_features(mdp, pi, phi)
        j = L.policy_value(mdp, pi, cfg.gamma)
        err = _errors(jax.random.key(1000 + i), tables, x0, j, cfg.n, cfg.reps)
        ok = np.isfinite(err)
        row = {
            "step": i, "family": family, "level": level, "J": j,
            "C_fd": pop.feature_dynamics, "inv_sigma_min": pop.inverse_sigma_min,
            "C_bc": pop.bellman_complete, "rel_cond": pop.relative_condition,
            "chi2_plus_1": pop.chi2,
            "median_err_sqrt_n": float(np.median(np.abs(err[ok])) * np.sqrt(cfg.n)),
            "rmse_sqrt_n": float(np.sqrt(np.mean(err[ok] ** 2)) * np.sqrt(cfg.n)),
            "non_finite": int((~ok).sum()),
        }
        wd.log_metrics(i, **{k: v for k, v in row.items() if k != "step"})
        rows.append(row)
        progress.update(i + 1)
    err = np.array([r["median_err_sqrt_n"] for r in rows])
    c = np.array([r["C_fd"] for r in rows])
    s = np.array([r["inv_sigma_min"] for r in rows])
    rel = np.array([r["rel_cond"] for r in rows])
    rho_c = float(scipy.stats.spearmanr(c, err).statistic)
    rho_s = float(scipy.stats.spearmanr(s, err).statistic)
    rho_rel = float(scipy.stats.spearmanr(rel, err).statistic)
    rho_sqrt_bound = float(scipy.stats.spearmanr(np.sqrt(c), err).statistic)
    results = {
        "num_settings": len(rows), "n": cfg.n, "reps": cfg.reps,
        "spearman_C_fd": rho_c, "spearman_inv_sigma_min": rho_s,
        "spearman_rel_cond": rho_rel, "spearman_sqrt_C_fd": rho_sqrt_bound,
        "held": bool(rho_c > rho_s),
        "non_finite_estimates": int(sum(r["non_finite"] for r in rows)),
    }
    _coverage_plot(wd, rows)
    wd.write_results(results)
    wd.write_report(_report(
        "Coverage predicts error",
        f"Over {len(rows)} settings (random MDPs and chains, behaviour mismatch varied; "
        f"n={cfg.n}, {cfg.reps} repetitions each), Spearman correlation of "
        f"median|J_hat-J|*sqrt(n) with C^pi_phi is {rho_c:.3f} and with 1/sigma_min(A) "
        f"{rho_s:.3f} (relative condition number: {rho_rel:.3f}).", results, ["coverage.png"]))
    return results


def _coverage_plot(wd: Workdir, rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "C_fd", r"$C^\pi_\phi$ (feature-dynamics)"),
                           (axes[1], "inv_sigma_min", r"$1/\sigma_{\min}(A)$")):
        for fam, marker in (("random", "o"), ("chain", "s")):
            xs = [r[key] for r in rows if r["family"] == fam]
            ys = [r["median_err_sqrt_n"] for r in rows if r["family"] == fam]
            ax.scatter(xs, ys, marker=marker, label=fam, alpha=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(r"median $|\hat J - J|\sqrt{n}$")
        ax.legend()
    wd.save_figure(fig, "coverage.png")


# -- 2. the 1/sqrt(n) rate -----------------------------------------------------------------


def run_rate(config, workdir) -> dict[str, Any]:
    cfg = config.rate
    wd = Workdir(workdir)
    done = _done_steps(wd)
    k = jax.random.split(jax.random.key(config.seed + 7), 4)
    s, a = cfg.num_states, cfg.num_actions
    mdp = L.random_mdp(k[0], s, a)
    pi = L.random_policy(k[1], s, a)
    skew = L.random_policy(k[3], 1, s * a, concentration=0.5).reshape(s, a)
    mu = L.mixture(L.occupancy(mdp, pi, cfg.gamma), skew, 0.5)
    phi = L.realizable_features(k[2], L.exact_q(mdp, pi, cfg.gamma), cfg.dim)
    pop = L.population_coverage(mdp, pi, mu, phi, cfg.gamma)
    tables = L.sampler_tables(mdp, pi, mu, phi, cfg.gamma)
    x0 = L.init_features(mdp, pi, phi)
    j = L.policy_value(mdp, pi, cfg.gamma)
    grid = np.logspace(cfg.log10_n_min, cfg.log10_n_max, cfg.num_n)
    ns = np.unique(np.maximum(np.round(grid / 100), 1).astype(int) * 100)  # multiples of 100
    progress = Progress(len(ns), name="lstdq/rate", interval_s=10.0, start_step=len(done))
    med, rmse = [], []
    for i, n in enumerate(ns):
        if i in done:
            med.append(done[i]["median_abs_err"])
            rmse.append(done[i]["rmse"])
            continue
        err = _errors(jax.random.key(2000 + i), tables, x0, j, int(n), cfg.reps)
        err = err[np.isfinite(err)]
        med.append(float(np.median(np.abs(err))))
        rmse.append(float(np.sqrt(np.mean(err**2))))
        wd.log_metrics(i, n=int(n), median_abs_err=med[-1], rmse=rmse[-1],
                       finite=int(err.size))
        progress.update(i + 1)
    slope = float(np.polyfit(np.log(ns), np.log(med), 1)[0])
    slope_rmse = float(np.polyfit(np.log(ns), np.log(rmse), 1)[0])
    results = {
        "n_min": int(ns[0]), "n_max": int(ns[-1]), "num_n": len(ns), "reps": cfg.reps,
        "slope_median_abs_err": slope, "slope_rmse": slope_rmse, "C_fd": pop.feature_dynamics,
        "held": bool(-0.6 <= slope <= -0.4),
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(ns, med, "o-", label=f"median |err| (slope {slope:.3f})")
    ax.loglog(ns, rmse, "s--", label=f"RMSE (slope {slope_rmse:.3f})")
    ax.loglog(ns, med[0] * np.sqrt(ns[0] / ns), "k:", label=r"$\propto n^{-1/2}$")
    ax.set_xlabel("n")
    ax.set_ylabel(r"$|\hat J - J|$")
    ax.legend()
    wd.save_figure(fig, "rate.png")
    wd.write_results(results)
    wd.write_report(_report(
        "The 1/sqrt(n) rate",
        f"n from {ns[0]} to {ns[-1]} ({len(ns)} values, {cfg.reps} repetitions): fitted "
        f"log-log slope of the median error {slope:.3f} (RMSE: {slope_rmse:.3f}).",
        results, ["rate.png"]))
    return results


# -- 3. unification ------------------------------------------------------------------------


def run_unification(config, workdir) -> dict[str, Any]:
    cfg = config.unification
    wd = Workdir(workdir)
    tab, bc, gap = [], [], []
    with jax.enable_x64(True):
        for i in range(cfg.num_mdps):
            k = jax.random.split(jax.random.fold_in(jax.random.key(config.seed + 11), i), 6)
            s, a, g = cfg.num_states, cfg.num_actions, cfg.gamma
            mdp = L.random_mdp(k[0], s, a)
            pi = L.random_policy(k[1], s, a)
            mu = L.random_policy(k[2], 1, s * a).reshape(s, a)
            d = L.occupancy(mdp, pi, g)
            c_tab = L.population_coverage(mdp, pi, mu, L.one_hot_features(s, a), g)
            chi = float(np.sum(d**2 / mu))
            tab.append(abs(c_tab.feature_dynamics - chi) / chi)
            lin, phi = L.linear_mdp(k[3], s, a, cfg.dim)
            pi2 = L.random_policy(k[4], s, a)
            mu2 = L.random_policy(k[5], 1, s * a).reshape(s, a)
            d2 = L.occupancy(lin, pi2, g)
            m = np.einsum("sa,sad->d", d2, phi)
            flat = phi.reshape(s * a, -1)
            sig = flat.T @ (mu2.reshape(-1, 1) * flat)
            want = float(m @ np.linalg.solve(sig, m))
            c_bc = L.population_coverage(lin, pi2, mu2, phi, g)
            bc.append(abs(c_bc.feature_dynamics - want) / want)
            # realizable but not Bellman complete: the reduction need not hold
            phi3 = L.realizable_features(k[4], L.exact_q(mdp, pi, g), cfg.dim)
            c3 = L.population_coverage(mdp, pi, mu, phi3, g)
            gap.append(abs(c3.feature_dynamics - c3.bellman_complete) / c3.bellman_complete)
            wd.log_metrics(i, tabular_rel_diff=tab[-1], bc_rel_diff=bc[-1],
                           non_bc_rel_gap=gap[-1])
    results = {
        "num_mdps": cfg.num_mdps,
        "max_rel_diff_tabular": float(max(tab)),
        "max_rel_diff_bellman_complete": float(max(bc)),
        "median_rel_gap_not_complete": float(np.median(gap)),
        "held": bool(max(tab) <= 1e-6 and max(bc) <= 1e-6),
    }
    wd.write_results(results)
    wd.write_report(_report(
        "Unification",
        f"On {cfg.num_mdps} random MDPs, |C - (1+chi^2)|/(1+chi^2) <= {max(tab):.2e} with "
        f"one-hot features; on {cfg.num_mdps} linear MDPs |C - ||E_dpi phi||^2|/... <= "
        f"{max(bc):.2e}. Without completeness the two differ (median relative gap "
        f"{np.median(gap):.2f}).", results, []))
    return results


# -- 4. CartPole: LSTDQ vs FQE ---------------------------------------------------------------


def run_cartpole(config, workdir) -> dict[str, Any]:
    cfg = config.cartpole
    wd = Workdir(workdir)
    t0 = time.perf_counter()
    truth, truth_se = L.monte_carlo_value(config.seed + 1, int(cfg.mc_episodes), gamma=cfg.gamma)
    t_mc = time.perf_counter() - t0
    rbf = L.make_rbf(int(cfg.per_dim))
    t0 = time.perf_counter()
    data = L.collect_cartpole(config.seed, int(cfg.n), epsilon=cfg.epsilon, gamma=cfg.gamma,
                              rbf=rbf)
    t_collect = time.perf_counter() - t0
    ds = L.Dataset(*(jnp.asarray(x) for x in data.dataset))
    x0 = jnp.asarray(data.init_features, jnp.float32)

    # Wall time on a shared machine: both solvers are timed `timing_repeats` times,
    # alternately (so a burst of load hits both), after one untimed call each (compilation);
    # the criterion compares medians and the report gives the range.
    reps = int(cfg.timing_repeats)

    def fqe():
        return L.fqe(*ds, ridge=cfg.ridge, num_iterations=int(cfg.fqe_iterations),
                     tol=cfg.fqe_tol)

    theta_l = L.lstdq(*ds, ridge=cfg.ridge)
    res_f = fqe()
    times = timing.alternate({"lstdq": lambda: L.lstdq(*ds, ridge=cfg.ridge), "fqe": fqe},
                             repeats=reps, warmup=0)
    s_l, s_f = timing.spread(times["lstdq"]), timing.spread(times["fqe"])
    t_l, t_f = s_l["median"], s_f["median"]
    j_l, j_f = float(L.value(theta_l, x0)), float(L.value(res_f.theta, x0))
    results = {
        "n": int(cfg.n), "dim": int(ds.features.shape[1]), "gamma": cfg.gamma,
        "epsilon": cfg.epsilon, "mc_value": truth, "mc_stderr": truth_se,
        "lstdq_value": j_l, "fqe_value": j_f,
        "lstdq_abs_err": abs(j_l - truth), "fqe_abs_err": abs(j_f - truth),
        "lstdq_seconds": t_l, "fqe_seconds": t_f, "fqe_iterations": int(res_f.iterations),
        "lstdq_seconds_min": s_l["min"], "lstdq_seconds_max": s_l["max"],
        "fqe_seconds_min": s_f["min"], "fqe_seconds_max": s_f["max"], "timing_repeats": reps,
        "fqe_converged": bool(res_f.converged), "speedup_lstdq_over_fqe": t_f / t_l,
        "lstdq_fqe_rel_gap": abs(j_l - j_f) / abs(truth),
        "collect_seconds": t_collect, "mc_seconds": t_mc, "episodes_logged": data.episodes,
    }
    results["held"] = bool(results["lstdq_fqe_rel_gap"] <= 0.01 and t_l < t_f)
    wd.write_results(results)
    wd.write_report(_report(
        "LSTDQ vs FQE on CartPole-v1",
        f"n={cfg.n} logged transitions (eps={cfg.epsilon}), d={results['dim']} RBF features, "
        f"gamma={cfg.gamma}. Monte-Carlo J={truth:.3f}+-{truth_se:.3f}; LSTDQ {j_l:.3f} in "
        f"{t_l:.3f}s, FQE {j_f:.3f} in {t_f:.3f}s ({int(res_f.iterations)} iterations); times "
        f"are medians of {reps} alternating runs (LSTDQ {s_l['min']:.3f}-{s_l['max']:.3f}s, "
        f"FQE {s_f['min']:.3f}-{s_f['max']:.3f}s).",
        results, []))
    return results


# -- driver ---------------------------------------------------------------------------------


def _report(title: str, summary: str, results: dict, plots: list[str]) -> str:
    lines = [f"# {title}", "", "Paper: Amortila, Huang, Krishnamurthy, Jiang, *A Unifying View of "
             "Coverage in Linear Off-Policy Evaluation*, ICLR 2026 (arXiv:2601.19030).", "",
             summary, "", "| quantity | value |", "|---|---|"]
    for k, v in results.items():
        lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


RUNNERS = {"coverage": run_coverage, "rate": run_rate, "unification": run_unification,
           "cartpole": run_cartpole}


def run(config, workdir) -> dict[str, Any]:
    """Runs ``config.experiment`` (or all four, each in ``workdir/<name>``)."""
    validate(config)
    workdir = Path(workdir)
    if config.experiment != "all":
        return RUNNERS[config.experiment](config, workdir)
    out = {name: fn(config, workdir / name) for name, fn in RUNNERS.items()}
    Workdir(workdir).write_results(out)
    return out
