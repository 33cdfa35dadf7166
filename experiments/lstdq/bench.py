"""Benchmarks of lstdq (speed and memory), reported as ratios measured in the same process.

    python -m experiments.lstdq.bench --which=one_shot --n=1000000 --d=256
    python -m experiments.lstdq.bench --which=streaming --stream_n=100000000 --stream_d=64

1. One-shot LSTDQ on ``n`` rows of dimension ``d`` (float32): ``lstdq.lstdq`` (jitted,
   one GEMM for ``A_hat``) against a plain NumPy implementation of the same formula
   ``solve(F^T (F - g * F') / n, F^T r / n)`` on the same float32 arrays. Median of
   ``--repeats`` timed calls after one warm-up call each.
2. Streaming: ``stream_n`` rows folded in chunks of ``chunk`` rows with
   ``lstdq.update_stats`` (a jitted update; chunks are drawn from a fixed pool of
   pre-generated blocks, as a reader would hand them over), then ``lstdq.solve``. Reports
   rows/s and the process's peak RSS next to the bytes the in-memory arrays would need.

Results are printed as JSON and written to ``--out`` when given.
"""

from __future__ import annotations

import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import lstdq as L
from experiments.workdir import atomic_write_json

_N = flags.DEFINE_integer("n", 1_000_000, "rows for the one-shot benchmark")
_D = flags.DEFINE_integer("d", 256, "feature dimension for the one-shot benchmark")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed repetitions (median reported)")
_STREAM_N = flags.DEFINE_integer("stream_n", 100_000_000, "rows for the streaming benchmark")
_STREAM_D = flags.DEFINE_integer("stream_d", 64, "feature dimension for streaming")
_CHUNK = flags.DEFINE_integer("chunk", 250_000, "rows per streamed chunk")
_OUT = flags.DEFINE_string("out", None, "optional JSON output path")
_WHICH = flags.DEFINE_enum("which", "both", ["both", "one_shot", "streaming"],
                           "which benchmark (run streaming alone for a clean peak RSS)")


def numpy_lstdq(f, r, g, fn, ridge=0.0):
    """The plain NumPy reference: the same formula, the same dtype."""
    n, d = f.shape
    a = f.T @ (f - g[:, None] * fn) / n
    b = f.T @ r / n
    return np.linalg.solve(a + ridge * np.eye(d, dtype=a.dtype), b)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_time(fn, repeats):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_one_shot(n: int, d: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    f = rng.standard_normal((n, d), dtype=np.float32)
    fn = (0.5 * f + 0.5 * rng.standard_normal((n, d), dtype=np.float32)).astype(np.float32)
    r = rng.standard_normal(n, dtype=np.float32)
    g = np.full(n, 0.9, np.float32)
    fj, fnj, rj, gj = (jax.device_put(x) for x in (f, fn, r, g))
    t_np = _median_time(lambda: numpy_lstdq(f, r, g, fn), repeats)
    t_jax = _median_time(lambda: L.lstdq(fj, rj, gj, fnj), repeats)
    diff = float(np.max(np.abs(np.asarray(L.lstdq(fj, rj, gj, fnj)) - numpy_lstdq(f, r, g, fn))))
    return {"n": n, "d": d, "numpy_seconds": t_np, "jax_seconds": t_jax,
            "speedup_jax_over_numpy": t_np / t_jax, "max_abs_theta_diff": diff,
            "backend": jax.default_backend()}


def bench_streaming(n: int, d: int, chunk: int) -> dict:
    rng = np.random.default_rng(1)
    pool = []
    for _ in range(2):
        f = rng.standard_normal((chunk, d), dtype=np.float32)
        fn = (0.5 * f + 0.5 * rng.standard_normal((chunk, d), dtype=np.float32))
        pool.append(tuple(jax.device_put(x) for x in (
            f, rng.standard_normal(chunk, dtype=np.float32), np.full(chunk, 0.9, np.float32),
            fn.astype(np.float32))))
    update = jax.jit(L.update_stats, donate_argnums=0)
    stats = update(L.init_stats(d), *pool[0])  # warm-up / compile
    jax.block_until_ready(stats)
    rss_before = _peak_rss_mb()
    stats = L.init_stats(d)
    num = n // chunk
    t = time.perf_counter()
    for i in range(num):
        stats = update(stats, *pool[i % len(pool)])
    jax.block_until_ready(stats)
    seconds = time.perf_counter() - t
    theta = L.solve(stats, ridge=1e-6)
    return {"rows": int(num * chunk), "d": d, "chunk": chunk, "seconds": seconds,
            "rows_per_second": num * chunk / seconds, "count": int(stats.count),
            "theta_finite": bool(jnp.all(jnp.isfinite(theta))),
            "peak_rss_mb": _peak_rss_mb(), "peak_rss_mb_before_loop": rss_before,
            "in_memory_bytes_would_be_gb": num * chunk * (2 * d + 2) * 4 / 1e9}


def main(argv):
    del argv
    out = {}
    if _WHICH.value in ("both", "one_shot"):
        out["one_shot"] = bench_one_shot(_N.value, _D.value, _REPEATS.value)
        print(json.dumps(out, indent=2), flush=True)
    if _WHICH.value in ("both", "streaming"):
        out["streaming"] = bench_streaming(_STREAM_N.value, _STREAM_D.value, _CHUNK.value)
        print(json.dumps(out, indent=2), flush=True)
    if _OUT.value:
        atomic_write_json(_OUT.value, out)


if __name__ == "__main__":
    app.run(main)
