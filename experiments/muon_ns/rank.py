"""Experiment 3: Muon removes SGD-M's sqrt(rank) loss (steps to a nuclear-norm target vs r).

Problem (matrix least squares with gradient rank r): X in R^{N x d} with X^T X / N = I / r,
W* = U_r V_r^T (rank r, all singular values 1), Y = X W*, and

    f(W) = 1/(2N) ||X W - Y||_F^2 = 1/(2r) ||W - W*||_F^2,    W_0 = 0.

Every (minibatch) gradient X_B^T X_B (W - W*) / B has rank <= r, and across r the constants
of Theorem 1 stay fixed: D = f(W_0) - f* = 1/2 and f is L = 1 smooth in the spectral norm
(||grad f(W) - grad f(W')||_* = ||W - W'||_* / r <= ||W - W'||_op). Both optimizers get
Theorem 1's step size eta = sqrt((1 - beta) D / (T L)) with the same beta and horizon T,
undamped momentum, minibatch gradients; we count steps until the full-gradient nuclear-norm
stationarity ||grad f(W_t)||_* drops below a fixed target, and fit log(steps) against log r.
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
    opts = {
        "muon": muon_ns.muon(eta, scheme="taylor2", ns_steps=5, beta=rc.beta,
                             normalization="frobenius"),
        "sgdm": muon_ns.sgd_momentum(eta, rc.beta),
    }
    runners = {name: _make_runner(opt, rc, rc.num_samples, rc.dim) for name, opt in opts.items()}
    steps = {name: {} for name in opts}
    curves = {}
    for r in rc.ranks:
        for name in opts:
            found = []
            for seed in range(rc.seeds):
                x, y, _ = _problem(r, rc.dim, rc.num_samples, config.seed + 1000 * seed + r)
                s, stat = runners[name](jax.random.key(config.seed + seed), x, y)
                found.append(s)
                if seed == 0:
                    curves[(name, r)] = stat
                wd.log_metrics(r, optimizer=name, seed=seed, steps_to_target=s,
                               final_stationarity=float(stat[-1]))
            steps[name][r] = found
    results = {"eta": eta, "beta": rc.beta, "target": rc.target, "max_steps": rc.max_steps}
    slopes = {}
    for name in opts:
        rs, ys, censored = [], [], 0
        for r in rc.ranks:
            for s in steps[name][r]:
                censored += s < 0
                rs.append(np.log(r))
                ys.append(np.log(s if s > 0 else rc.max_steps))  # censored: a lower bound
            results[f"{name}_median_steps_r{r}"] = float(np.median(
                [s if s > 0 else rc.max_steps for s in steps[name][r]]))
        slopes[name] = float(np.polyfit(rs, ys, 1)[0])
        results[f"{name}_slope_log_steps_vs_log_r"] = slopes[name]
        results[f"{name}_runs_not_reaching_target"] = int(censored)
    results["slope_gap_sgdm_minus_muon"] = slopes["sgdm"] - slopes["muon"]
    results["held"] = bool(results["slope_gap_sgdm_minus_muon"] >= 0.25)
    _plot(wd, curves, rc)
    wd.write_results(results)
    return results


def _plot(wd, curves, rc) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, name in zip(axes, ("sgdm", "muon"), strict=True):
        for r in rc.ranks:
            stat = curves[(name, r)]
            ax.semilogy(np.arange(1, len(stat) + 1) * rc.eval_every, stat, label=f"r={r}")
        ax.axhline(rc.target, color="k", ls=":", label="target")
        ax.set_title(f"{name}: ||grad f||_* (nuclear) vs step")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    wd.save_figure(fig, "rank_stationarity.png")
    plt.close(fig)
