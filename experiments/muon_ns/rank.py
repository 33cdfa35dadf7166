"""Experiment 3: Muon removes SGD-M's sqrt(rank) loss (steps to a nuclear-norm target vs r).

Problem (matrix least squares with gradient rank r): X in R^{N x d} with X^T X / N = I / r,
W* = U_r V_r^T (rank r, all singular values 1), Y = X W*, and

    f(W) = 1/(2N) ||X W - Y||_F^2 = 1/(2r) ||W - W*||_F^2,    W_0 = 0.

Every (minibatch) gradient X_B^T X_B (W - W*) / B has rank <= r, and across r the constants
of Theorem 1 stay fixed: D = f(W_0) - f* = 1/2 and f is L = 1 smooth in the spectral norm
(||grad f(W) - grad f(W')||_* = ||W - W'||_* / r <= ||W - W'||_op). Theorem 1's step size
eta = sqrt((1 - beta) D / (T L)) is run two ways, with the same beta and horizon T, undamped
momentum and minibatch gradients:

- ``own`` (judged): each optimizer gets the step size of its own analysis: Muon with the
  spectral-norm constant L = 1, SGD-M with its Euclidean (Frobenius) constant L_F = 1/r, so
  eta_SGD = sqrt(r) eta_Muon;
- ``shared`` (reported): both get Muon's eta, the comparison of the first version.

We count steps until the full-gradient nuclear-norm stationarity ||grad f(W_t)||_* drops
below a fixed target and fit log(steps) against log r. Held (fixed before running) when, with
their own step sizes, SGD-M's slope exceeds Muon's by >= 0.25 (half the sqrt(r) exponent).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import muon_ns
from experiments.config import check, in_range, positive
from experiments.workdir import Workdir
from muon_ns import theory


def _problem(r: int, dim: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, dim)))
    x = np.sqrt(n / r) * q  # X^T X / N = I / r
    u, _ = np.linalg.qr(rng.standard_normal((dim, r)))
    v, _ = np.linalg.qr(rng.standard_normal((dim, r)))
    w_star = u @ v.T
    return jnp.asarray(x, jnp.float32), jnp.asarray(x @ w_star, jnp.float32), w_star


def _make_runner(opt, rc, n: int, dim: int):
    """One jitted run (all steps, stationarity every eval_every) for problems of one shape."""
    chunks = rc.max_steps // rc.eval_every

    @jax.jit
    def run(key, x, y):
        def one_step(carry, k):
            w, s = carry
            idx = jax.random.randint(k, (rc.batch_size,), 0, n)
            xb, yb = x[idx], y[idx]
            g = xb.T @ (xb @ w - yb) / rc.batch_size
            u, s = opt.update(g, s, w)
            return (optax.apply_updates(w, u), s), None

        def chunk(carry, k):
            carry, _ = jax.lax.scan(one_step, carry, jax.random.split(k, rc.eval_every))
            full_grad = x.T @ (x @ carry[0] - y) / n
            return carry, theory.nuclear_norm(full_grad)

        w0 = jnp.zeros((dim, dim), jnp.float32)
        _, stat = jax.lax.scan(chunk, (w0, opt.init(w0)), jax.random.split(key, chunks))
        return stat

    def steps_to_target(key, x, y) -> tuple[int, np.ndarray]:
        stat = np.asarray(run(key, x, y))
        if not np.all(np.isfinite(stat)):
            raise FloatingPointError("rank experiment: non-finite stationarity (diverged)")
        hit = np.nonzero(stat <= rc.target)[0]
        return (int((hit[0] + 1) * rc.eval_every) if hit.size else -1), stat

    return steps_to_target


def run(config, workdir: str | Path) -> dict:
    rc = config.rank
    check(config, {"rank.dim": positive, "rank.max_steps": positive, "rank.target": positive,
                   "rank.beta": in_range(0.0, 1.0, closed=False), "rank.seeds": positive,
                   "rank.eval_every": positive})
    if max(rc.ranks) > rc.dim:
        raise ValueError(f"rank experiment: ranks must be <= dim={rc.dim}, got {rc.ranks}")
    wd = Workdir(workdir)
    eta = theory.theorem1_step_size(L=1.0, D=0.5, T=rc.max_steps, beta=rc.beta)
    muon = muon_ns.muon(eta, scheme="taylor2", ns_steps=5, beta=rc.beta,
                        normalization="frobenius")
    variants = {  # (optimizer name, step-size rule) -> optimizer for rank r
        ("muon", "own"): lambda r: muon,
        ("sgdm", "own"): lambda r: muon_ns.sgd_momentum(
            theory.theorem1_step_size(L=1.0 / r, D=0.5, T=rc.max_steps, beta=rc.beta),
            rc.beta),
        ("sgdm", "shared"): lambda r: muon_ns.sgd_momentum(eta, rc.beta),
    }
    steps = {v: {} for v in variants}
    curves = {}
    for r in rc.ranks:
        for v, make in variants.items():
            runner = _make_runner(make(r), rc, rc.num_samples, rc.dim)
            found = []
            for seed in range(rc.seeds):
                x, y, _ = _problem(r, rc.dim, rc.num_samples, config.seed + 1000 * seed + r)
                s, stat = runner(jax.random.key(config.seed + seed), x, y)
                found.append(s)
                if seed == 0:
                    curves[(v, r)] = stat
                wd.log_metrics(r, optimizer=v[0], step_size=v[1], seed=seed,
                               steps_to_target=s, final_stationarity=float(stat[-1]))
            steps[v][r] = found
    results = {"eta_muon": eta, "beta": rc.beta, "target": rc.target,
               "max_steps": rc.max_steps}
    slopes = {}
    for (name, rule), by_r in steps.items():
        tag = f"{name}_{rule}"
        rs, ys, censored = [], [], 0
        for r in rc.ranks:
            for s in by_r[r]:
                censored += s < 0
                rs.append(np.log(r))
                ys.append(np.log(s if s > 0 else rc.max_steps))  # censored: a lower bound
            results[f"{tag}_median_steps_r{r}"] = float(np.median(
                [s if s > 0 else rc.max_steps for s in by_r[r]]))
        slopes[tag] = float(np.polyfit(rs, ys, 1)[0])
        results[f"{tag}_slope_log_steps_vs_log_r"] = slopes[tag]
        results[f"{tag}_runs_not_reaching_target"] = int(censored)
    results["slope_gap_own"] = slopes["sgdm_own"] - slopes["muon_own"]
    results["slope_gap_shared"] = slopes["sgdm_shared"] - slopes["muon_own"]
    results["held"] = bool(results["slope_gap_own"] >= 0.25)
    _plot(wd, curves, rc)
    wd.write_results(results)
    return results


def _plot(wd, curves, rc) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [("sgdm", "shared"), ("sgdm", "own"), ("muon", "own")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, v in zip(axes, variants, strict=True):
        for r in rc.ranks:
            stat = curves[(v, r)]
            ax.semilogy(np.arange(1, len(stat) + 1) * rc.eval_every, stat, label=f"r={r}")
        ax.axhline(rc.target, color="k", ls=":", label="target")
        ax.set_title(f"{v[0]} ({v[1]} step size): ||grad f||_* vs step")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    wd.save_figure(fig, "rank_stationarity.png")
    plt.close(fig)
