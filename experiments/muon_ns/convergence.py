"""Experiment 1: doubly exponential convergence of Newton-Schulz (delta_q, eps_q vs bounds).

For Gaussian and log-uniform-spectrum matrices M, X_0 = M / max{1, ||M||_F} and q Taylor-
kappa NS steps (computed by ``muon_ns.newton_schulz`` in float64), we measure
delta_q = ||I - X_q X_q^T||_op (on the range) and eps_q = ||X_q - Polar(M)||_op from an
independent float64 SVD, against delta_0^{(kappa+1)^q} and 1 - sqrt(1 - delta_0^{(kappa+1)^q}).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import muon_ns
from experiments.config import check, positive
from experiments.workdir import Workdir
from muon_ns import theory


def _matrices(kind: str, m: int, n: int, cond: float, count: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        if kind == "gaussian":
            out.append(rng.standard_normal((m, n)))
        else:
            u, _ = np.linalg.qr(rng.standard_normal((m, m)))
            v, _ = np.linalg.qr(rng.standard_normal((n, n)))
            k = min(m, n)
            s = np.exp(rng.uniform(-np.log(cond), 0.0, k))
            s[0], s[-1] = 1.0, 1.0 / cond
            out.append((u[:, :k] * s) @ v[:, :k].T)
    return out


def _residual(x: np.ndarray) -> float:
    s = np.linalg.svd(x, compute_uv=False)
    s = s[s > 1e-12 * s.max()]
    return float(np.max(np.abs(1.0 - s**2)))


def run(config, workdir: str | Path) -> dict:
    c = config.convergence
    check(config, {"convergence.max_q": positive, "convergence.cond": positive,
                   "convergence.num_matrices": positive})
    wd = Workdir(workdir)
    m, n = c.shape
    tol = 100 * max(m, n) * np.finfo(np.float64).eps  # float64 rounding floor
    rows, held = [], True
    with jax.enable_x64(True):
        for kind in ("gaussian", "log_uniform"):
            for idx, mat in enumerate(_matrices(kind, m, n, c.cond, c.num_matrices,
                                                config.seed)):
                fro = np.linalg.norm(mat)
                x0 = mat / max(1.0, fro)
                delta_0 = _residual(x0)
                u, _, vt = np.linalg.svd(mat, full_matrices=False)
                polar = u @ vt
                for kappa in c.kappas:
                    # X_0 by the package's own normalization, then one NS step at a time
                    # (X_{q+1} = p(X_q X_q^T) X_q; identical to q steps in one call).
                    xq = muon_ns.newton_schulz(np.asarray(mat, np.float64), f"taylor{kappa}", 0,
                                               normalization="max1_frobenius")
                    step = jax.jit(lambda x, k=kappa: muon_ns.newton_schulz(
                        x, f"taylor{k}", 1, normalization="none"))
                    for q in range(c.max_q + 1):
                        if q:
                            xq = step(xq)
                        xq = np.asarray(xq)
                        d_q = _residual(xq)
                        e_q = float(np.linalg.norm(xq - polar, 2))
                        d_b = float(theory.delta_bound(delta_0, kappa, q))
                        e_b = float(theory.eps_bound(delta_0, kappa, q))
                        ok = d_q <= d_b + tol and e_q <= e_b + tol
                        held &= ok
                        rows.append(dict(kind=kind, matrix=idx, kappa=kappa, q=q,
                                         delta_0=delta_0, delta_q=d_q, delta_bound=d_b,
                                         eps_q=e_q, eps_bound=e_b, within=ok))
    for r in rows:
        wd.log_metrics(r["q"], **{k: v for k, v in r.items() if k != "q"})
    slopes = _slopes(rows, c.kappas)
    _plot(wd, rows, c.kappas)
    results = {
        "held": bool(held),
        "num_measurements": len(rows),
        "num_within_bound": int(sum(r["within"] for r in rows)),
        "tolerance": float(tol),
        "shape": [m, n],
        **{f"slope_loglog_kappa{k}": s for k, s in slopes.items()},
        **{f"log(kappa+1)_kappa{k}": float(np.log(k + 1)) for k in c.kappas},
        "max_delta_0_gaussian": max(r["delta_0"] for r in rows if r["kind"] == "gaussian"),
        "max_delta_0_log_uniform": max(r["delta_0"] for r in rows if r["kind"] == "log_uniform"),
    }
    wd.write_results(results)
    return results


def _slopes(rows, kappas) -> dict:
    """Least-squares slope of log log(1/delta_q) vs q (Gaussian matrices, delta_q > 1e-12)."""
    out = {}
    for k in kappas:
        pts = [(r["q"], np.log(np.log(1.0 / r["delta_q"]))) for r in rows
               if r["kind"] == "gaussian" and r["kappa"] == k and 1e-12 < r["delta_q"] < 1]
        if len(pts) >= 2:
            q, y = np.array(pts).T
            out[k] = float(np.polyfit(q, y, 1)[0])
        else:
            out[k] = float("nan")
    return out


def _plot(wd: Workdir, rows, kappas) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind in zip(axes, ("gaussian", "log_uniform"), strict=True):
        for k in kappas:
            sel = [r for r in rows if r["kind"] == kind and r["kappa"] == k and r["matrix"] == 0]
            q = [r["q"] for r in sel]
            meas = [np.log(np.log(1 / max(r["delta_q"], 1e-300))) for r in sel]
            bound = [np.log(np.log(1 / max(r["delta_bound"], 1e-300))) if r["delta_bound"] < 1
                     else np.nan for r in sel]
            line, = ax.plot(q, meas, "o-", label=f"kappa={k} measured")
            ax.plot(q, bound, "--", color=line.get_color(), alpha=0.7, label=f"kappa={k} bound")
        ax.set_xlabel("q (NS steps)")
        ax.set_ylabel("log log(1/delta_q)")
        ax.set_title(f"{kind} matrix (float64)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    wd.save_figure(fig, "ns_convergence.png")
    plt.close(fig)
