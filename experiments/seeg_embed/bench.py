"""Benchmarks of seeg_embed: simulator throughput against the same simulation in NumPy/SciPy
(same process, alternated, median of repeats), and encoder training throughput.

    python -m experiments.seeg_embed.bench --workdir=/tmp/seeg_bench
    python -m experiments.seeg_embed.bench --n_subjects=20 --duration_s=60 --repeats=5 \
        --workdir=/tmp/seeg_bench_big   # on a GPU machine the JAX side runs on the GPU

1. Simulator: ``n_subjects`` subjects (``max_channels`` slots each), one ``duration_s``
   session. Throughput is channel-seconds of LFP per second of wall time, counting only
   real channels (JAX also computes the padded slots). JAX: the jitted
   :func:`seeg_embed.simulate_session` after one warm-up call (compilation reported
   apart); NumPy: :func:`experiments.seeg_embed.numpy_sim.simulate_session_numpy` on the
   same cohort. The two are run alternately ``repeats`` times; medians are quoted.
2. Encoder training: steps/s of the jitted Hadsell step (``batch_pairs`` pairs = twice as
   many segments) for each segment length in ``segment_s``; segments per second.

Writes ``results.json`` and ``report.md`` into ``--workdir``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import numpy as np
import optax
from absl import app, flags
from flax import nnx

import seeg_embed as S
from experiments.seeg_embed.numpy_sim import simulate_session_numpy
from experiments.workdir import Workdir

_N_SUBJECTS = flags.DEFINE_integer("n_subjects", 8, "Simulated subjects.")
_MAX_CH = flags.DEFINE_integer("max_channels", 16, "Channel slots per subject.")
_DURATION = flags.DEFINE_float("duration_s", 30.0, "Session length (multiple of 10 s).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternated repeats of each simulator.")
_SEGMENTS = flags.DEFINE_list("segment_s", ["2", "10"], "Encoder segment lengths (s).")
_PAIRS = flags.DEFINE_integer("batch_pairs", 32, "Pairs per encoder step.")
_STEPS = flags.DEFINE_integer("train_steps", 10, "Timed encoder steps per segment length.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/seeg_bench", "Output folder.")


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def simulator(n_subjects: int, max_channels: int, duration_s: float, repeats: int) -> dict:
    config = S.SimConfig(n_subjects=n_subjects, max_channels=max_channels)
    cohort = S.make_cohort(jax.random.key(0), config)
    real = int(np.asarray(cohort.n_channels).sum())
    ch_seconds = real * duration_s
    t0 = time.perf_counter()
    S.simulate_session(jax.random.key(1), cohort, 0, 0, duration_s, config)
    first = time.perf_counter() - t0
    times = {"jax": [], "numpy": []}
    for r in range(repeats):
        for name in ("jax", "numpy"):
            t0 = time.perf_counter()
            if name == "jax":
                S.simulate_session(jax.random.key(2 + r), cohort, 0, r % 2, duration_s, config)
            else:
                simulate_session_numpy(2 + r, cohort, 0, r % 2, duration_s, config)
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"n_subjects": n_subjects, "max_channels": max_channels, "real_channels": real,
            "duration_s": duration_s, "channel_seconds": ch_seconds,
            "jax_first_call_s": first, "jax_s": times["jax"], "numpy_s": times["numpy"],
            "jax_median_s": med["jax"], "numpy_median_s": med["numpy"],
            "jax_channel_s_per_s": ch_seconds / med["jax"],
            "numpy_channel_s_per_s": ch_seconds / med["numpy"],
            "speedup_jax_over_numpy": med["numpy"] / med["jax"]}


def encoder_training(segment_s: list[float], batch_pairs: int, steps: int) -> dict:
    out = {}
    rng = np.random.default_rng(0)
    for seg in segment_s:
        n = int(round(seg * 1000))
        x_a = rng.normal(size=(batch_pairs, n)).astype(np.float32)
        x_b = rng.normal(size=(batch_pairs, n)).astype(np.float32)
        diff = (np.arange(batch_pairs) % 2).astype(np.int32)
        model = S.SiameseEncoder(32, rngs=nnx.Rngs(0))
        opt = optax.adamw(1e-3, weight_decay=1e-4)
        graphdef, state = S.init_train_state(model, opt)
        step = S.make_encoder_step(graphdef, opt)
        t0 = time.perf_counter()
        state, loss = step(state, (x_a, x_b, diff), jax.random.key(0))
        jax.block_until_ready(loss)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(steps):
            state, loss = step(state, (x_a, x_b, diff), jax.random.key(i + 1))
        jax.block_until_ready(loss)
        dt = time.perf_counter() - t0
        out[f"{seg:g}s"] = {"segment_samples": n, "batch_segments": 2 * batch_pairs,
                            "first_step_s": compile_s, "steps_per_s": steps / dt,
                            "segments_per_s": 2 * batch_pairs * steps / dt}
    return out


def main(argv):
    del argv
    load_before = _load()
    results = {
        "device": str(jax.devices()[0]), "platform": jax.devices()[0].platform,
        "load_before": load_before,
        "simulator": simulator(_N_SUBJECTS.value, _MAX_CH.value, _DURATION.value,
                               _REPEATS.value),
        "encoder": encoder_training([float(s) for s in _SEGMENTS.value], _PAIRS.value,
                                    _STEPS.value),
    }
    results["load_after"] = _load()
    wd = Workdir(Path(_WORKDIR.value))
    wd.write_results(results)
    sim = results["simulator"]
    lines = [f"# seeg_embed benchmark ({results['device']})", "",
             f"Load average (1/5/15 min) before {load_before}, after {results['load_after']}.",
             "", f"Simulator: {sim['n_subjects']} subjects, {sim['real_channels']} channels, "
             f"{sim['duration_s']:g} s session ({sim['channel_seconds']:g} channel-seconds); "
             f"median of {len(sim['jax_s'])} alternated runs.", "",
             "| implementation | seconds | channel-seconds per second |", "|---|---|---|",
             f"| JAX (jit; first call {sim['jax_first_call_s']:.1f} s) | {sim['jax_median_s']:.2f} "
             f"| {sim['jax_channel_s_per_s']:.0f} |",
             f"| NumPy/SciPy | {sim['numpy_median_s']:.2f} | {sim['numpy_channel_s_per_s']:.0f} |",
             "", f"JAX / NumPy throughput ratio: {sim['speedup_jax_over_numpy']:.2f}.", "",
             "Encoder training (Hadsell step, AdamW):", "",
             "| segment | batch segments | steps/s | segments/s | first step (s) |",
             "|---|---|---|---|---|"]
    for name, r in results["encoder"].items():
        lines.append(f"| {name} | {r['batch_segments']} | {r['steps_per_s']:.2f} | "
                     f"{r['segments_per_s']:.0f} | {r['first_step_s']:.1f} |")
    wd.write_report("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
