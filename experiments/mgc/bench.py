"""Benchmarks of mgc: front-end throughput against librosa, training and simulation clips/s.

    python -m experiments.mgc.bench --which=frontends --batch=32 --repeats=5
    python -m experiments.mgc.bench --which=training --steps=20
    python -m experiments.mgc.bench --which=all --out=/tmp/mgc_bench.json

1. Front-ends: one batch of ``--batch`` clips of ``--seconds`` s at ``--sample_rate`` Hz
   (white noise plus chirps). For STFT power (``n_fft=2048``, hop 512), mel power (128
   bands) and PCEN of the mel power, the jitted JAX function of the batch is timed against
   librosa on the same batch (librosa vectorises over leading axes), alternating the two,
   ``--repeats`` times each after one warm-up; medians and their ratio are reported, with
   the maximum relative difference of the outputs. Also timed: our two-band images with
   ground-truth masks for all four transforms (no librosa counterpart).
2. Training: clips/s of one jitted training step (batch 32, 64 x 64 two-band images) for
   the U-Net segmenter, MGC with each fusion, the same-budget baseline and the larger CNN;
   and clips/s of the scene simulator.

The machine's load average is recorded with the results (the timings depend on it).
Results are printed as JSON and written to ``--out`` when given.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import app, flags
from flax import nnx

import mgc
from experiments.workdir import atomic_write_json

_WHICH = flags.DEFINE_enum("which", "all", ["all", "frontends", "training"], "which benchmark")
_BATCH = flags.DEFINE_integer("batch", 32, "clips per batch (front-ends)")
_SECONDS = flags.DEFINE_float("seconds", 2.048, "clip length, s")
_SR = flags.DEFINE_integer("sample_rate", 96000, "sample rate, Hz")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed repetitions per implementation")
_STEPS = flags.DEFINE_integer("steps", 20, "training steps per timed call")
_OUT = flags.DEFINE_string("out", None, "optional JSON output path")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _block(x):
    return jax.block_until_ready(x) if isinstance(x, jax.Array | dict | tuple) else x


def alternate(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in alternation after one warm-up call each."""
    for fn in fns.values():
        _block(fn())
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            _block(fn())
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def bench_frontends(batch: int, seconds: float, sr: int, repeats: int) -> dict:
    import librosa

    n = int(seconds * sr)
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    x = (0.1 * rng.standard_normal((batch, n))
         + np.sin(2 * np.pi * (2000 * t + 3000 * t**2))[None]).astype(np.float32)
    xj = jax.device_put(x)
    n_fft, hop, n_mels = 2048, 512, 128
    stft_j = jax.jit(lambda a: mgc.spectrogram(a, n_fft=n_fft, hop_length=hop))
    mel_j = jax.jit(lambda a: mgc.melspectrogram(a, sample_rate=sr, n_fft=n_fft,
                                                 hop_length=hop, n_mels=n_mels))
    pcen_j = jax.jit(lambda a: mgc.pcen(mgc.melspectrogram(
        a * 2.0**31, sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels),
        sample_rate=sr, hop_length=hop))

    def stft_l():
        return np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop)) ** 2

    def mel_l():
        return librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop,
                                              n_mels=n_mels)

    def pcen_l():
        return librosa.pcen(librosa.feature.melspectrogram(
            y=x * 2.0**31, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels), sr=sr,
            hop_length=hop)

    out = {"batch": batch, "seconds_per_clip": seconds, "sample_rate": sr,
           "n_fft": n_fft, "hop_length": hop, "n_mels": n_mels, "load_before": _load()}
    for name, jf, lf in (("stft", lambda: stft_j(xj), stft_l), ("mel", lambda: mel_j(xj), mel_l),
                         ("pcen", lambda: pcen_j(xj), pcen_l)):
        med = alternate({"jax": jf, "librosa": lf}, repeats)
        a, b = np.asarray(jf()), lf()
        out[name] = {"jax_seconds": med["jax"], "librosa_seconds": med["librosa"],
                     "speedup": med["librosa"] / med["jax"],
                     "jax_clips_per_second": batch / med["jax"],
                     "librosa_clips_per_second": batch / med["librosa"],
                     "max_rel_diff": float(np.max(np.abs(a - b)) / np.max(np.abs(b)))}
        print(json.dumps({name: out[name]}), flush=True)
    fe = mgc.default_frontend()
    if n >= fe.min_samples:
        both = jax.jit(lambda b_, n_: mgc.representations_with_masks(b_, n_, fe))
        med = alternate({"images_and_masks": lambda: both(xj, 0.1 * xj)}, repeats)
        out["two_band_images_and_masks_all_kinds"] = {
            "seconds": med["images_and_masks"],
            "clips_per_second": batch / med["images_and_masks"]}
    out["load_after"] = _load()
    return out


def bench_training(steps: int) -> dict:
    b, grid = 32, (64, 64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, *grid, 2)).astype(np.float16)
    m = rng.uniform(size=(512, *grid, 2)).astype(np.float16)
    y = rng.integers(0, 6, 512).astype(np.int32)
    out = {"batch": b, "grid": list(grid), "steps_per_call": steps, "load_before": _load()}
    target = mgc.count_params(nnx.eval_shape(lambda: mgc.MGCClassifier(
        "cross_attention", 2, 6, 8, grid, rngs=nnx.Rngs(0))))
    width = mgc.matched_width(target, lambda w: mgc.SpectrogramCNN(2, 6, w, rngs=nnx.Rngs(0)))
    models = {f"mgc_{f}": (lambda r, f=f: mgc.MGCClassifier(f, 2, 6, 8, grid, rngs=r))
              for f in mgc.FUSIONS}
    models["baseline"] = lambda r: mgc.SpectrogramCNN(2, 6, width, rngs=r)
    models["large_cnn"] = lambda r: mgc.large_cnn(2, 6, 16, rngs=r)
    models["segmenter"] = lambda r: mgc.UNet(2, 2, 12, rngs=r)
    for name, build in models.items():
        graphdef, params = mgc.init_params(build, 0)
        opt = mgc.make_optimizer(1e-3, 1000)
        if name == "segmenter":
            loss = lambda mod, bt: mgc.segmentation_loss(mod(bt[0]), bt[1])  # noqa: E731
            data = (x, m)
        else:
            loss = lambda mod, bt: mgc.classification_loss(mod(bt[0], bt[1]), bt[2])  # noqa
            data = (x, m, y)
        fn = mgc.make_train_chunk(graphdef, loss, opt, batch_size=b, steps=steps)
        state = [params, opt.init(params), jax.random.key(0)]

        def call(fn=fn, state=state, data=data):
            p, s, k, loss_ = fn(*state, *data)
            state[:] = [p, s, k]
            return loss_

        jax.block_until_ready(call())
        t = time.perf_counter()
        jax.block_until_ready(call())
        secs = time.perf_counter() - t
        out[name] = {"params": mgc.count_params(nnx.merge(graphdef, state[0])),
                     "clips_per_second": b * steps / secs, "seconds_per_step": secs / steps}
        print(json.dumps({name: out[name]}), flush=True)
    cfg = mgc.SceneConfig()
    # Renderers compile per power-of-two group size; two warm-up chunks of the timed size
    # (the experiments' data chunk, 60 clips) compile the shapes the timed chunk uses.
    for start in (0, 60):
        jax.block_until_ready(mgc.simulate_scenes(jax.random.key(0), 60, start_index=start,
                                                  config=cfg).audio)
    t = time.perf_counter()
    s = mgc.simulate_scenes(jax.random.key(0), 60, start_index=120, config=cfg)
    jax.block_until_ready(s.audio)
    out["simulator_clips_per_second"] = 60 / (time.perf_counter() - t)
    out["load_after"] = _load()
    return out


def main(argv):
    del argv
    out = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
           "cpu_count": os.cpu_count()}
    if _WHICH.value in ("all", "frontends"):
        out["frontends"] = bench_frontends(_BATCH.value, _SECONDS.value, _SR.value,
                                           _REPEATS.value)
    if _WHICH.value in ("all", "training"):
        out["training"] = bench_training(_STEPS.value)
    print(json.dumps(out, indent=2), flush=True)
    if _OUT.value:
        atomic_write_json(_OUT.value, out)


if __name__ == "__main__":
    app.run(main)
