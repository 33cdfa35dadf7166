"""Inference and training benchmarks of the SoftStep head (numbers are ratios to a baseline
measured in the same process).

    python -m experiments.softstep.bench --workdir=/tmp/softstep_bench
    python -m experiments.softstep.bench --n_bank=20000 --n_query=2000 --workdir=/tmp/b

1. Inference on a bank of ``n_bank`` (default 10^5) embeddings of width ``dim`` (64) for
   ``n_query`` (10^4) queries: the chunked SoftStep head (:func:`softstep.bank_predict`,
   whole bank streamed; and with top-k pre-selection) vs
   ``sklearn.neighbors.KNeighborsRegressor.predict`` (k = 10, brute force and KD-tree
   indexes). Wall time of a warm call (compilation reported separately) and peak resident
   memory above the pre-call level, sampled every 2 ms in a side thread. The dense head would
   hold ``n_query x n_bank`` float32 similarities: 4 GB at the default sizes.
2. Training step throughput of MLP + SoftStep head (in-batch neighbours) vs MLP + linear
   head, steps per second, same batch and widths.

Writes ``results.json`` and ``report.md`` into ``--workdir``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import psutil
from absl import app, flags
from flax import nnx
from sklearn.neighbors import KNeighborsRegressor

from experiments.workdir import Workdir
from softstep import Bank, ModelSpec, SoftStepHead, bank_predict, make_model

_N_BANK = flags.DEFINE_integer("n_bank", 100_000, "Bank size N.")
_N_QUERY = flags.DEFINE_integer("n_query", 10_000, "Number of queries.")
_DIM = flags.DEFINE_integer("dim", 64, "Embedding width.")
_TOP_K = flags.DEFINE_integer("top_k", 64, "Top-k pre-selection size.")
_STEPS = flags.DEFINE_integer("train_steps", 100, "Timed training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Training batch size.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/softstep_bench", "Output folder.")


class PeakRSS:
    """Peak resident set size above the level at entry, sampled in a side thread."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.proc = psutil.Process()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mb = (self.peak - self.base) / 2**20


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def inference(n_bank, n_query, dim, top_k) -> dict:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(64, dim)).astype(np.float32)
    bank_x = (centers[rng.integers(0, 64, n_bank)]
              + 0.3 * rng.normal(size=(n_bank, dim))).astype(np.float32)
    bank_y = (bank_x[:, :1] ** 2 + np.sin(bank_x[:, 1:2])).astype(np.float32)
    query = (centers[rng.integers(0, 64, n_query)]
             + 0.3 * rng.normal(size=(n_query, dim))).astype(np.float32)
    head = SoftStepHead(dim, kind="s1", rngs=nnx.Rngs(0))
    bank = Bank(jnp.asarray(bank_x), jnp.asarray(bank_y))
    out = {"n_bank": n_bank, "n_query": n_query, "dim": dim, "device": str(jax.devices()[0]),
           "dense_similarity_matrix_mb": n_bank * n_query * 4 / 2**20}
    for name, kw in (("softstep_chunked", {}), (f"softstep_top{top_k}", {"top_k": top_k})):
        _, t_first = timed(lambda kw=kw: np.asarray(bank_predict(head, query, bank, **kw)))
        with PeakRSS() as mem:
            pred, t = timed(lambda kw=kw: np.asarray(bank_predict(head, query, bank, **kw)))
        out[name] = {"seconds": t, "first_call_seconds": t_first, "peak_rss_mb": mem.mb,
                     "finite": bool(np.all(np.isfinite(pred)))}
    for algo in ("brute", "kd_tree"):
        knn = KNeighborsRegressor(n_neighbors=10, algorithm=algo)
        _, t_fit = timed(lambda knn=knn: knn.fit(bank_x, bank_y[:, 0]))
        with PeakRSS() as mem:
            _, t = timed(lambda knn=knn: knn.predict(query))
        out[f"sklearn_knn_{algo}"] = {"seconds": t, "fit_seconds": t_fit, "peak_rss_mb": mem.mb}
    base = out["sklearn_knn_brute"]["seconds"]
    for name in ("softstep_chunked", f"softstep_top{top_k}", "sklearn_knn_kd_tree"):
        out[name]["time_ratio_vs_sklearn_brute"] = out[name]["seconds"] / base
    return out


def training_throughput(dim, batch, steps) -> dict:
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(batch, dim)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(batch, 1)).astype(np.float32))
    out = {"batch_size": batch, "input_dim": dim, "hidden": [256, 256], "embed_dim": 64}
    for head in ("softstep", "linear"):
        spec = ModelSpec(input_shape=(dim,), hidden=(256, 256), embed_dim=64, head=head)
        graphdef, params = make_model(spec, jax.random.key(0))
        opt = optax.adamw(1e-3)

        def loss(p, graphdef=graphdef):
            model = nnx.merge(graphdef, p)
            e = model.embed(x)
            return jnp.mean((model.head(e, e, y, exclude_self=True) - y) ** 2)

        @jax.jit
        def step(p, s, loss=loss, opt=opt):
            value, g = jax.value_and_grad(loss)(p)
            updates, s = opt.update(g, s, p)
            return optax.apply_updates(p, updates), s, value

        state = opt.init(params)
        params, state, v = step(params, state)
        jax.block_until_ready(v)
        t0 = time.perf_counter()
        for _ in range(steps):
            params, state, v = step(params, state)
        jax.block_until_ready(v)
        out[f"{head}_steps_per_s"] = steps / (time.perf_counter() - t0)
    out["softstep_over_linear"] = out["softstep_steps_per_s"] / out["linear_steps_per_s"]
    return out


def main(argv):
    del argv
    results = {
        "inference": inference(_N_BANK.value, _N_QUERY.value, _DIM.value, _TOP_K.value),
        "training": training_throughput(_DIM.value, _BATCH.value, _STEPS.value),
    }
    wd = Workdir(Path(_WORKDIR.value))
    wd.write_results(results)
    inf, tr = results["inference"], results["training"]
    lines = [f"# SoftStep benchmark ({inf['device']})", "",
             f"Inference: N = {inf['n_bank']}, d = {inf['dim']}, {inf['n_query']} queries "
             f"(a dense similarity matrix would be {inf['dense_similarity_matrix_mb']:.0f} MB).",
             "", "| method | seconds (warm) | x sklearn brute | peak RSS above start (MB) |",
             "|---|---|---|---|"]
    for name, r in inf.items():
        if isinstance(r, dict):
            ratio = r.get("time_ratio_vs_sklearn_brute", 1.0)
            lines.append(f"| {name} | {r['seconds']:.2f} | {ratio:.2f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", f"Training (batch {tr['batch_size']}, MLP 256x256 -> 64): SoftStep "
              f"{tr['softstep_steps_per_s']:.1f} steps/s, linear {tr['linear_steps_per_s']:.1f} "
              f"steps/s (ratio {tr['softstep_over_linear']:.2f})."]
    wd.write_report("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
