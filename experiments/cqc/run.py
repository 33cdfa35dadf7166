"""The CQC experiments: error vs nuisance complexity, double robustness, employment data.

Each experiment logs one ``metrics.jsonl`` line per finished cell and, when restarted in the
same workdir, skips the cells already logged (so an interrupted run resumes), then writes
``results.json``, plots and ``report.md``.

References:
  Givens, Liu, Reeve, Reluga. "Direct Doubly Robust Estimation of Conditional Quantile
  Contrasts." ICLR 2026, arXiv:2601.19666 (Sections 6 and 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

import cqc
from experiments.config import validate_config
from experiments.cqc.configs import default as default_config
from experiments.progress import Progress
from experiments.workdir import Workdir

EXPERIMENTS = default_config.EXPERIMENTS
EVAL_X = np.linspace(-0.9, 0.9, 19)
EVAL_U = np.linspace(0.1, 0.9, 9)


def validate(config) -> None:
    """Checks ``config`` against ``configs/default.py``'s ``RULES`` and ``validate``."""
    validate_config(config, default_config)


def eval_points(design: cqc.Design):
    """Query points ``(y0, x)`` at the true conditional quantiles ``u`` of ``Y(0) | x`` and
    the true CQC there."""
    d = design.num_features
    x1 = np.repeat(EVAL_X, EVAL_U.size)
    x = np.zeros((x1.size, d), np.float32)
    x[:, 0] = x1
    y0 = np.asarray(design.quantile(0, np.tile(EVAL_U, EVAL_X.size), x))
    return y0, x, np.asarray(design(y0, x))


def _direct(config, model="linear", nuisance=None):
    return cqc.DirectCQC(model=model, nuisance=nuisance or cqc.Nuisance(),
                         steps=config.direct.steps, learning_rate=config.direct.learning_rate,
                         grid_size=config.direct.grid_size,
                         levels=tuple(np.linspace(0.1, 0.9, config.direct.n_levels)))


def _done(wd: Workdir) -> dict[tuple, dict]:
    return {tuple(r["cell"]): r for r in wd.read_metrics() if "cell" in r}


def _mean_se(values):
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


# ---------------------------------------------------------------------------------------
# Claim 1: error tracks the CQC's complexity, not the nuisances'
#
# Redesigned (issue 18). The first design compared gamma in {0, 2, ..., 10} against
# gamma = 0, the only design with a constant propensity (0.5); every integer gamma >= 1 has
# the same, worse overlap (pi(X) has one law for all of them), so "Direct's MSE at gamma = 10
# over gamma = 0" mixed nuisance complexity with overlap, and it failed even with exact
# nuisances. Now two experiments, each holding the other factor fixed:
#   (a) nuisance complexity gamma in {1, 2, 4, 8} at fixed overlap (scenario 4, linear CQC),
#       Direct and Indirect each fit with estimated and with exact (oracle) nuisances, so the
#       error that estimating the nuisances adds is measured directly;
#   (b) CQC complexity: scenario 5, g*(y0|x) = y0 + P_k(x), degree k varied with the
#       nuisances' sin(gamma pi x) fixed; Direct fits the matched class poly<k>.
# ---------------------------------------------------------------------------------------

KERNEL_NUISANCE = cqc.Nuisance(cqc.KernelPropensity(), cqc.KernelCDF())


def _cell_key(seed: int, *parts: int) -> jax.Array:
    key = jax.random.key(seed)
    for p in parts:
        key = jax.random.fold_in(key, int(p))
    return key


def _mse(est, y0, xq, truth) -> tuple[float, int]:
    """MSE over the evaluation points with a finite prediction, and how many were NaN."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # counted and reported instead
        pred = np.asarray(est.predict(xq, y0=y0))
    ok = np.isfinite(pred)
    return float(np.mean((pred[ok] - truth[ok]) ** 2)) if ok.any() else float("nan"), int(
        (~ok).sum())


def _fit_pair(config, sim, y0, xq, truth, model, key, nuisances: dict) -> dict[str, float]:
    """Direct (``model``) and Indirect, each with every nuisance set in ``nuisances``."""
    x, a, y = (np.asarray(v, np.float64) for v in (sim.x, sim.a, sim.y))
    out = {}
    for tag, nv in nuisances.items():
        ests = {"direct": _direct(config, model),
                "indirect": cqc.IndirectCQC(grid_size=config.direct.grid_size)}
        for name, est in ests.items():
            est.fit(x, y, a=a, key=key, nuisances=nv)
            out[f"{name}_{tag}"], nan = _mse(est, y0, xq, truth)
            if nan:
                out[f"{name}_{tag}_nan"] = nan
    return out


def _nuisance_sets(config, sim, key) -> dict:
    grid = cqc.make_grid(sim.y, config.direct.grid_size)
    oracle = cqc.Nuisance(cqc.OraclePropensity(sim.g_true), cqc.OracleCDF(sim.g_true))
    return {name: cqc.cross_fit(sim.x, sim.a, sim.y, nuisance=nu, grid=grid, key=key)
            for name, nu in (("est", KERNEL_NUISANCE), ("oracle", oracle))}


def nuisance_cell(config, gamma: float, n: int, rep: int) -> dict[str, float]:
    """Experiment (a), one data set: MSE of Direct and Indirect, estimated and exact
    nuisances (the same fold split), on scenario ``config.nuisance_complexity.scenario``."""
    c = config.nuisance_complexity
    k_sim, k_nuis, k_fit = jax.random.split(
        _cell_key(config.seed, n, int(round(gamma * 1000)), rep), 3)
    sim = cqc.simulate(c.scenario, n, k_sim, gamma=gamma)
    y0, xq, truth = eval_points(sim.g_true)
    return _fit_pair(config, sim, y0, xq, truth, "linear", k_fit,
                     _nuisance_sets(config, sim, k_nuis))


def cqc_cell(config, degree: int, n: int, rep: int) -> dict[str, float]:
    """Experiment (b), one data set of scenario 5 with a CQC of degree ``degree``."""
    c = config.cqc_complexity
    k_sim, k_nuis, k_fit = jax.random.split(_cell_key(config.seed + 3, n, degree, rep), 3)
    sim = cqc.simulate(5, n, k_sim, gamma=c.gamma, degree=degree)
    y0, xq, truth = eval_points(sim.g_true)
    return _fit_pair(config, sim, y0, xq, truth, f"poly{degree}", k_fit,
                     _nuisance_sets(config, sim, k_nuis))


COLUMNS = ("direct_est", "direct_oracle", "indirect_est", "indirect_oracle")


def _run_cells(wd: Workdir, name: str, cells, fn) -> dict[tuple, dict]:
    done = _done(wd)
    progress = Progress(len(cells), name=f"cqc {name}", interval_s=15.0)
    for i, cell_args in enumerate(cells):
        cell = (name, *cell_args)
        if cell not in done:
            m = fn(*cell_args)
            wd.log_metrics(i, cell=list(cell), **m)
            done[cell] = {"cell": list(cell), **m}
        progress.update(i + 1)
    return done


def _table(done, name, factor_values, ns, reps) -> dict[str, dict[str, Any]]:
    """``{f"{column}/n={n}/{factor}": {"mse", "se", "values"}}`` from the logged cells."""
    table = {}
    for col in COLUMNS:
        for n in ns:
            for f in factor_values:
                vals = [done[(name, f, int(n), r)][col] for r in range(reps)]
                mean, se = _mean_se(vals)
                table[f"{col}/n={n}/{f:g}"] = {"mse": mean, "se": se, "values": vals}
    return table


Z90 = 1.6448536269514722  # two-sided 90% normal quantile


def judge_nuisance_complexity(table, gammas, ns) -> dict[str, Any]:
    """Criterion of experiment (a), fixed before running.

    At the largest n, with gamma_lo = min(gammas) and gamma_hi = max(gammas) (all >= 1, so
    the same overlap):

    1. nuisance complexity costs Direct less than Indirect: per repetition r,
       ``v_r = [I(hi, r) - D(hi, r)] - [I(lo, r) - D(lo, r)]`` (D, I: MSE with estimated
       nuisances on the same data set) and the 90% normal interval of mean(v) lies above 0;
    2. what estimating the nuisances adds to Direct is the smaller part of its error: at
       gamma_hi, mean MSE(Direct, estimated) - mean MSE(Direct, exact nuisances) is below
       mean MSE(Direct, exact nuisances).
    """
    n = max(ns)
    g_lo, g_hi = min(gammas), max(gammas)

    def vals(col, g):
        return np.asarray(table[f"{col}/n={n}/{g:g}"]["values"], np.float64)

    v = ((vals("indirect_est", g_hi) - vals("direct_est", g_hi))
         - (vals("indirect_est", g_lo) - vals("direct_est", g_lo)))
    mean_v = float(v.mean())
    half = Z90 * float(v.std(ddof=1)) / np.sqrt(v.size) if v.size > 1 else float("inf")
    d_est, d_orc = float(vals("direct_est", g_hi).mean()), float(vals("direct_oracle", g_hi).mean())
    excess = d_est - d_orc
    costs_less = bool(mean_v - half > 0)
    second_order = bool(excess < d_orc)
    return {
        "n": int(n), "gamma_lo": float(g_lo), "gamma_hi": float(g_hi),
        "direct_increase": float(vals("direct_est", g_hi).mean() - vals("direct_est", g_lo).mean()),
        "indirect_increase": float(vals("indirect_est", g_hi).mean()
                                   - vals("indirect_est", g_lo).mean()),
        "difference_of_increases": mean_v, "difference_ci90": [mean_v - half, mean_v + half],
        # the first design's statistic, now at fixed overlap (reported, not a criterion)
        "direct_ratio_hi_over_lo": float(vals("direct_est", g_hi).mean()
                                         / vals("direct_est", g_lo).mean()),
        "indirect_ratio_hi_over_lo": float(vals("indirect_est", g_hi).mean()
                                           / vals("indirect_est", g_lo).mean()),
        "direct_excess_gamma_hi": excess, "direct_oracle_gamma_hi": d_orc,
        "costs_direct_less": costs_less, "direct_excess_below_oracle_error": second_order,
        "held": costs_less and second_order,
    }


def judge_cqc_complexity(table, degrees, ns) -> dict[str, Any]:
    """Criterion of experiment (b), fixed before running: at the largest n, Direct's mean
    MSE (estimated nuisances) at the highest degree exceeds that at the lowest, with the 90%
    normal interval of the difference (independent data sets) above 0."""
    n = max(ns)
    k_lo, k_hi = min(degrees), max(degrees)

    def vals(col, k):
        return np.asarray(table[f"{col}/n={n}/{k:g}"]["values"], np.float64)

    hi, lo = vals("direct_est", k_hi), vals("direct_est", k_lo)
    diff = float(hi.mean() - lo.mean())
    half = Z90 * float(np.sqrt(hi.var(ddof=1) / hi.size + lo.var(ddof=1) / lo.size))
    ind_hi, ind_lo = vals("indirect_est", k_hi).mean(), vals("indirect_est", k_lo).mean()
    return {
        "n": int(n), "degree_lo": int(k_lo), "degree_hi": int(k_hi),
        "direct_mse_lo": float(lo.mean()), "direct_mse_hi": float(hi.mean()),
        "direct_ratio": float(hi.mean() / lo.mean()), "direct_difference": diff,
        "direct_difference_ci90": [diff - half, diff + half],
        "indirect_mse_lo": float(ind_lo), "indirect_mse_hi": float(ind_hi),
        "indirect_ratio": float(ind_hi / ind_lo),
        "held": bool(diff - half > 0),
    }


def _report_table(table, name, factors, ns, factor_name):
    lines = ["| method | nuisances | n | " + " | ".join(f"{factor_name}={f:g}" for f in factors)
             + " |", "|---|---|---|" + "---|" * len(factors)]
    for col in COLUMNS:
        method, tag = col.split("_")
        for n in ns:
            row = " | ".join(f"{table[f'{col}/n={n}/{f:g}']['mse']:.4f}"
                             f" ± {table[f'{col}/n={n}/{f:g}']['se']:.4f}" for f in factors)
            lines.append(f"| {method} | {tag} | {n} | {row} |")
    return lines


def _strip_values(table):
    return {k: {kk: vv for kk, vv in v.items() if kk != "values"} for k, v in table.items()}


def run_nuisance_complexity(config, workdir) -> dict[str, Any]:
    validate(config)
    wd = Workdir(workdir)
    c = config.nuisance_complexity
    gammas = tuple(float(g) for g in c.gammas)
    cells = [(g, int(n), r) for n in c.ns for g in gammas for r in range(c.reps)]
    done = _run_cells(wd, "nuisance_complexity", cells,
                      lambda g, n, r: nuisance_cell(config, g, n, r))
    table = _table(done, "nuisance_complexity", gammas, c.ns, c.reps)
    verdict = judge_nuisance_complexity(table, gammas, c.ns)
    nan = {k: sum(done[cell].get(k, 0) for cell in done if cell[0] == "nuisance_complexity")
           for k in (f"{col}_nan" for col in COLUMNS)}
    results = {"table": _strip_values(table), **verdict, "nan_predictions": nan,
               "scenario": c.scenario, "reps": c.reps}
    wd.write_results(results)
    _plot_factor(wd, config, table, gammas, c.ns, "nuisance complexity gamma (fixed overlap)",
                 "nuisance_complexity.png")
    lines = [
        "# CQC claim 1a: nuisance complexity at fixed overlap", "",
        f"Scenario {c.scenario} (linear CQC), gamma in {list(gammas)} (every integer gamma >= 1 "
        f"gives pi(X) the same law), {c.reps} reps; MSE of g over a 19x9 grid (x, u); "
        "'est' = cross-fitted CV-kernel nuisances, 'oracle' = the exact ones.", "",
        *_report_table(table, "nuisance_complexity", gammas, c.ns, "gamma"), "",
        f"At n={verdict['n']}: MSE increase gamma {verdict['gamma_lo']:g} -> "
        f"{verdict['gamma_hi']:g}: Direct {verdict['direct_increase']:.4f}, Indirect "
        f"{verdict['indirect_increase']:.4f} (difference {verdict['difference_of_increases']:.4f},"
        f" 90% CI [{verdict['difference_ci90'][0]:.4f}, {verdict['difference_ci90'][1]:.4f}]); "
        f"Direct's excess over its exact-nuisance fit at gamma={verdict['gamma_hi']:g}: "
        f"{verdict['direct_excess_gamma_hi']:.4f} vs its exact-nuisance MSE "
        f"{verdict['direct_oracle_gamma_hi']:.4f}. NaN predictions: {nan}.", "",
        f"Held: {verdict['held']}.", "", "![mse](nuisance_complexity.png)"]
    wd.write_report("\n".join(lines) + "\n")
    return results


def run_cqc_complexity(config, workdir) -> dict[str, Any]:
    validate(config)
    wd = Workdir(workdir)
    c = config.cqc_complexity
    degrees = tuple(int(k) for k in c.degrees)
    cells = [(k, int(n), r) for n in c.ns for k in degrees for r in range(c.reps)]
    done = _run_cells(wd, "cqc_complexity", cells, lambda k, n, r: cqc_cell(config, k, n, r))
    table = _table(done, "cqc_complexity", degrees, c.ns, c.reps)
    verdict = judge_cqc_complexity(table, degrees, c.ns)
    results = {"table": _strip_values(table), **verdict, "gamma": c.gamma, "reps": c.reps}
    wd.write_results(results)
    _plot_factor(wd, config, table, degrees, c.ns, "CQC degree k (g* = y0 + P_k(x))",
                 "cqc_complexity.png")
    lines = [
        "# CQC claim 1b: CQC complexity at fixed nuisances", "",
        f"Scenario 5: g*(y0|x) = y0 + P_k(x), nuisances' sin({c.gamma:g} pi x) fixed; Direct "
        f"fits poly<k>; {c.reps} reps.", "",
        *_report_table(table, "cqc_complexity", degrees, c.ns, "k"), "",
        f"At n={verdict['n']}: Direct MSE {verdict['direct_mse_lo']:.4f} (k={verdict['degree_lo']})"
        f" -> {verdict['direct_mse_hi']:.4f} (k={verdict['degree_hi']}), difference 90% CI "
        f"[{verdict['direct_difference_ci90'][0]:.4f}, {verdict['direct_difference_ci90'][1]:.4f}]"
        f"; Indirect {verdict['indirect_mse_lo']:.4f} -> {verdict['indirect_mse_hi']:.4f}.", "",
        f"Held: {verdict['held']}.", "", "![mse](cqc_complexity.png)"]
    wd.write_report("\n".join(lines) + "\n")
    return results


def _plot_factor(wd, config, table, factors, ns, xlabel, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ns), figsize=(4 * len(ns), 3.4), squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for col in COLUMNS:
            mean = [table[f"{col}/n={n}/{f:g}"]["mse"] for f in factors]
            se = [table[f"{col}/n={n}/{f:g}"]["se"] for f in factors]
            ax.errorbar(factors, mean, yerr=se, label=col.replace("_", ", "), marker="o",
                        capsize=2, ls="-" if col.endswith("est") else "--")
        ax.set_yscale("log")
        ax.set_title(f"n = {n}")
        ax.set_xlabel(xlabel)
    axes[0][0].set_ylabel("MSE of g")
    axes[0][-1].legend(fontsize=7)
    wd.save_figure(fig, name)


# ---------------------------------------------------------------------------------------
# Claim 2: double robustness
# ---------------------------------------------------------------------------------------

COMBOS = ("both_right", "pi_right_cdf_wrong", "pi_wrong_cdf_right", "both_wrong")


def _combo_nuisance(combo: str, design) -> cqc.Nuisance:
    pi_right = combo in ("both_right", "pi_right_cdf_wrong")
    cdf_right = combo in ("both_right", "pi_wrong_cdf_right")
    return cqc.Nuisance(
        cqc.OraclePropensity(design) if pi_right else cqc.ConstantPropensity(),
        cqc.OracleCDF(design) if cdf_right else cqc.MarginalCDF(),
    )


def run_robustness(config, workdir) -> dict[str, Any]:
    validate(config)
    wd = Workdir(workdir)
    c = config.robustness
    cells = [(int(n), r) for n in c.ns for r in range(c.reps)]
    done = _done(wd)
    progress = Progress(len(cells), name="cqc robustness", interval_s=15.0)
    for i, (n, r) in enumerate(cells):
        cell = ("robustness", n, r)
        if cell not in done:
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed + 1), n), r)
            sim = cqc.simulate(c.scenario, n, key, gamma=c.gamma)
            y0, xq, truth = eval_points(sim.g_true)
            m = {}
            for combo in COMBOS:
                est = _direct(config, "linear", _combo_nuisance(combo, sim.g_true))
                est.fit(np.asarray(sim.x), np.asarray(sim.y), a=np.asarray(sim.a),
                        key=jax.random.fold_in(key, 7))
                m[combo] = float(np.mean((est.predict(xq, y0=y0) - truth) ** 2))
            wd.log_metrics(i, cell=list(cell), **m)
            done[cell] = {"cell": list(cell), **m}
        progress.update(i + 1)
    table = {}
    for combo in COMBOS:
        for n in c.ns:
            mean, se = _mean_se([done[("robustness", int(n), r)][combo] for r in range(c.reps)])
            table[f"{combo}/n={n}"] = {"mse": mean, "se": se}
    results = {"table": table, **judge_robustness(table, c.ns)}
    held = results["held"]
    wd.write_results(results)
    _plot_robustness(wd, config, table)
    lines = ["# CQC claim 2: double robustness of the direct estimator", "",
             f"Scenario {c.scenario}, gamma={c.gamma}, linear g, reps={c.reps}; wrong pi = "
             "constant, wrong CDFs = marginal (ignore x).", "",
             "| nuisances | " + " | ".join(f"n={n}" for n in c.ns) + " |",
             "|---|" + "---|" * len(c.ns)]
    for combo in COMBOS:
        lines.append(f"| {combo} | " + " | ".join(
            f"{table[f'{combo}/n={n}']['mse']:.4f}" for n in c.ns) + " |")
    lines += ["", f"Held: {held}.", "", "![robustness](robustness.png)"]
    wd.write_report("\n".join(lines) + "\n")
    return results


def judge_robustness(table, ns) -> dict[str, Any]:
    """Criterion fixed before running: with one nuisance right the MSE falls from the
    smallest to the largest n, and with both wrong it stays > 3x the worst one-right MSE at
    the largest n."""
    n_lo, n_hi = min(ns), max(ns)
    one_right = ("pi_right_cdf_wrong", "pi_wrong_cdf_right")
    decreasing = {k: bool(table[f"{k}/n={n_hi}"]["mse"] < table[f"{k}/n={n_lo}"]["mse"])
                  for k in (*one_right, "both_right")}
    worst_right = max(table[f"{k}/n={n_hi}"]["mse"] for k in one_right)
    both_wrong = table[f"both_wrong/n={n_hi}"]["mse"]
    held = bool(all(decreasing[k] for k in one_right) and both_wrong > 3 * worst_right)
    return {"decreasing": decreasing, "both_wrong_mse_n_max": both_wrong,
            "worst_one_right_mse_n_max": worst_right, "held": held}


def _plot_robustness(wd, config, table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = config.robustness
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for combo in COMBOS:
        mean = [table[f"{combo}/n={n}"]["mse"] for n in c.ns]
        se = [table[f"{combo}/n={n}"]["se"] for n in c.ns]
        ax.errorbar(c.ns, mean, yerr=se, marker="o", capsize=2, label=combo)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("MSE of g (direct, linear)")
    ax.legend(fontsize=8)
    wd.save_figure(fig, "robustness.png")


# ---------------------------------------------------------------------------------------
# Claim 3: employment data
# ---------------------------------------------------------------------------------------


def run_employment(config, workdir) -> dict[str, Any]:
    validate(config)
    wd = Workdir(workdir)
    e = config.employment
    data = cqc.load_jtrain(e.dataset, covariates=("age",))
    est = cqc.DirectCQC(model=e.model,
                        nuisance=cqc.Nuisance(cqc.LogisticPropensity(), cqc.KernelCDF()),
                        steps=e.steps, learning_rate=e.learning_rate,
                        grid_size=config.direct.grid_size)
    key = jax.random.key(config.seed + 2)
    est.fit(data.x, data.y, a=data.a, key=key)
    ages = np.arange(e.age_min, e.age_max + 1, dtype=np.float64)
    y0_levels = np.quantile(data.y[data.a == 0], np.asarray(e.levels))
    age_q = np.repeat(ages, y0_levels.size)[:, None]
    y0_q = np.tile(y0_levels, ages.size)
    bands = est.bootstrap(age_q, y0=y0_q, n_boot=e.n_boot, key=jax.random.fold_in(key, 1),
                          level=e.band_level, return_samples=True)
    shape = (ages.size, y0_levels.size)
    gain = np.asarray(bands.estimate).reshape(shape) - y0_levels
    lower = np.asarray(bands.lower).reshape(shape) - y0_levels
    upper = np.asarray(bands.upper).reshape(shape) - y0_levels
    spread = gain.max(axis=1) - gain.min(axis=1)
    slope = float(np.polyfit(ages, spread, 1)[0])
    boot = np.asarray(bands.samples).reshape((-1, *shape)) - y0_levels
    boot_spread = boot.max(axis=2) - boot.min(axis=2)
    boot_slopes = np.polyfit(ages, boot_spread.T, 1)[0]
    held = judge_employment(ages, spread)
    results = {
        "dataset": e.dataset, "n": int(data.y.size), "model": e.model,
        "y0_levels": list(e.levels), "y0_values": y0_levels.tolist(),
        "ages": ages.tolist(), "gain": gain.tolist(), "lower": lower.tolist(),
        "upper": upper.tolist(), "range_by_age": spread.tolist(),
        "range_age_min": float(spread[0]), "range_age_max": float(spread[-1]),
        "range_slope_per_year": slope,
        "bootstrap_fraction_negative_slope": float(np.mean(boot_slopes < 0)),
        "held": held,
    }
    wd.write_results(results)
    _plot_employment(wd, ages, y0_levels, e.levels, gain, lower, upper, spread)
    lines = [
        f"# CQC claim 3: NSW employment data ({e.dataset})", "",
        f"Direct estimator, {e.model} g(y0, age), logistic propensity, kernel CDFs, 2-fold "
        f"cross-fitting; {e.n_boot} multiplier-bootstrap replicates, {e.band_level:.0%} bands.",
        "",
        f"Range over control-earnings quantiles {list(e.levels)} of g(y0|age) - y0: "
        f"{spread[0]:.2f} at age {e.age_min}, {spread[-1]:.2f} at age {e.age_max}; slope "
        f"{slope:.3f} per year (negative in "
        f"{results['bootstrap_fraction_negative_slope']:.0%} of bootstrap replicates).",
        "", f"Held (range narrows with age): {held}.", "", "![employment](employment.png)",
    ]
    wd.write_report("\n".join(lines) + "\n")
    return results


def judge_employment(ages, spread) -> bool:
    """Criterion fixed before running: the range over earnings quantiles of g(y0|age) - y0
    has a negative least-squares slope in age and is smaller at the oldest age than at the
    youngest."""
    slope = float(np.polyfit(np.asarray(ages, np.float64), np.asarray(spread, np.float64),
                             1)[0])
    return bool(slope < 0 and spread[-1] < spread[0])


def _plot_employment(wd, ages, y0_values, levels, gain, lower, upper, spread):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for j, (lev, y0) in enumerate(zip(levels, y0_values, strict=True)):
        line = ax.plot(ages, gain[:, j], label=f"q={lev:.1f} (y0={y0:.1f})")[0]
        ax.fill_between(ages, lower[:, j], upper[:, j], color=line.get_color(), alpha=0.15)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("age")
    ax.set_ylabel("g(y0 | age) - y0  (1978 earnings, $1000s)")
    ax.legend(fontsize=7)
    ax2.plot(ages, spread, marker=".")
    ax2.set_xlabel("age")
    ax2.set_ylabel("range over quantiles of g - y0")
    wd.save_figure(fig, "employment.png")


RUNNERS = {"nuisance_complexity": run_nuisance_complexity,
           "cqc_complexity": run_cqc_complexity, "robustness": run_robustness,
           "employment": run_employment}


def run(config, workdir) -> dict[str, Any]:
    """Runs ``config.experiment`` (or all four, each in ``workdir/<name>``)."""
    validate(config)
    workdir = Path(workdir)
    if config.experiment != "all":
        return RUNNERS[config.experiment](config, workdir)
    return {name: fn(config, workdir / name) for name, fn in RUNNERS.items()}
