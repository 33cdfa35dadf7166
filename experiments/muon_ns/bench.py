"""Benchmarks of muon_ns against optax.contrib.muon, measured in one process.

    python -m experiments.muon_ns.bench --out /tmp/muon_bench            # CPU defaults
    python -m experiments.muon_ns.bench --out $OUT/muon_bench --layers 12  # GPU: issue's sizes

1. Whole-model update time of ``muon_ns.muon(lr, **OPTAX_COMPAT)`` over
   ``optax.contrib.muon(lr)`` (same settings, same dimension numbers) on the parameter
   shapes of a GPT-2-small-like transformer (``--layers`` x ``--width``; 12 x 768 by
   default), reported as a ratio (< 1: muon_ns is faster).
3. The Gram form of the NS iteration against the direct one at the shapes where
   ``method="auto"`` picks it (long side >= ``muon_ns.GRAM_MIN_ASPECT`` x short side), for
   q = 5 and 10: alternating timed rounds in one process, median times and their ratio, beside
   each path's error against the SVD polar factor on a rank-deficient matrix of that shape
   (the input that blew the unrestarted Gram form up) and a Gaussian one.
2. Newton-Schulz (q = 5, Jordan's quintic) vs ``polar_svd`` vs optax's orthogonalizer for
   each shape and dtype, with achieved TFLOP/s (4 m^2 n + 2 m^3 per step, m <= n) and the
   percentage of the dense-matmul peak this script measures itself, plus the batched case:
   ``--batch`` same-shape matrices in one call vs optax's one call per leaf.

Numbers go to ``<out>/results.json`` (and are printed). Default shapes depend on the
backend: the issue's 1024^2 .. 4096x16384 on GPU/TPU, small ones on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.contrib import _muon as optax_muon

import muon_ns

GPU_SHAPES = "1024x1024,1024x4096,4096x4096,4096x16384"
CPU_SHAPES = "256x256,256x1024,1024x1024"
GRAM_GPU_SHAPES = "1024x4096,1024x8192,4096x16384"
GRAM_CPU_SHAPES = "128x512,128x1024,64x2048,256x1024"


def _time(fn, *args, repeats: int) -> float:
    """Median wall seconds of ``fn(*args)`` after one warm-up (compile) call."""
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def ns_flops(m: int, n: int, steps: int = 5) -> float:
    m, n = min(m, n), max(m, n)
    return steps * (4.0 * m * m * n + 2.0 * m**3)


def matmul_peak(dtype, n: int, repeats: int) -> float:
    """Measured dense-matmul TFLOP/s of an n x n x n product in ``dtype``."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(k2, (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y)
    return 2.0 * n**3 / _time(f, a, b, repeats=repeats) / 1e12


def transformer_params(layers: int, width: int, vocab: int, ctx: int):
    """GPT-2-like parameter shapes (and the Muon dimension numbers: None = AdamW)."""
    rng = np.random.default_rng(0)

    def p(*shape):
        return jnp.asarray(rng.standard_normal(shape) * 0.02, jnp.float32)

    params = {"wte": p(vocab, width), "wpe": p(ctx, width), "ln_f": {"g": p(width),
                                                                      "b": p(width)}}
    for i in range(layers):
        params[f"h{i}"] = {
            "ln1": {"g": p(width), "b": p(width)}, "ln2": {"g": p(width), "b": p(width)},
            "attn": {"w": p(width, 3 * width), "b": p(3 * width),
                     "proj_w": p(width, width), "proj_b": p(width)},
            "mlp": {"fc_w": p(width, 4 * width), "fc_b": p(4 * width),
                    "proj_w": p(4 * width, width), "proj_b": p(width)},
        }
    dims = jax.tree_util.tree_map_with_path(
        lambda path, x: (muon_ns.MuonDimensionNumbers() if x.ndim == 2 and "wte" not in
                         jax.tree_util.keystr(path) and "wpe" not in jax.tree_util.keystr(path)
                         else None), params)
    return params, dims


def bench_update(args) -> dict:
    params, dims = transformer_params(args.layers, args.width, args.vocab, args.ctx)
    grads = jax.tree.map(lambda x: x * 0.5 + 0.01, params)
    ref = optax.contrib.muon(1e-3, muon_weight_dimension_numbers=dims)
    variants = {
        "optax": ref,
        # OPTAX_COMPAT: optax's exact operation order, same-shape layers batched
        "muon_ns_compat": muon_ns.muon(1e-3, weight_dimension_numbers=dims,
                                       **muon_ns.OPTAX_COMPAT),
        # the same settings with the Gram-matrix NS iteration where auto picks it
        "muon_ns_auto": muon_ns.muon(1e-3, weight_dimension_numbers=dims,
                                     **dict(muon_ns.OPTAX_COMPAT, ns_method="auto")),
    }
    out = {}
    ref_u, _ = jax.jit(ref.update)(grads, ref.init(params), params)
    for name, opt in variants.items():
        state = opt.init(params)
        f = jax.jit(opt.update)
        out[f"{name}_update_s"] = _time(f, grads, state, params, repeats=args.repeats)
        if name != "optax":
            u, _ = f(grads, state, params)
            out[f"{name}_max_abs_diff_vs_optax"] = float(max(jax.tree.leaves(jax.tree.map(
                lambda a, b: jnp.max(jnp.abs(a - b)), u, ref_u))))
            out[f"{name}_time_ratio_over_optax"] = out[f"{name}_update_s"] / out["optax_update_s"]
    n_muon = sum(d is not None for d in jax.tree.leaves(
        dims, is_leaf=lambda x: x is None or isinstance(x, muon_ns.MuonDimensionNumbers)))
    out["model"] = f"{args.layers} layers x {args.width} wide, {n_muon} Muon matrices"
    return out


def bench_ns(args) -> list[dict]:
    rows = []
    coeffs = jnp.asarray((3.4445, -4.7750, 2.0315))
    svd_max = args.svd_max_elems
    for dtype_name in args.dtypes.split(","):
        dtype = jnp.dtype(dtype_name)
        peak = matmul_peak(dtype, args.peak_n, args.repeats)
        rows.append({"kind": "matmul_peak", "dtype": dtype_name, "n": args.peak_n,
                     "tflops": peak})
        for shape in args.shapes.split(","):
            m, n = (int(v) for v in shape.split("x"))
            x = jax.random.normal(jax.random.key(1), (m, n), jnp.float32).astype(dtype)
            flops = ns_flops(m, n)
            direct = jax.jit(lambda a: muon_ns.newton_schulz(a, "jordan", 5, method="direct"))
            auto = jax.jit(lambda a: muon_ns.newton_schulz(a, "jordan", 5, method="auto"))
            ref = jax.jit(lambda a: optax_muon.orthogonalize_via_newton_schulz(a, coeffs, 5))
            t_direct = _time(direct, x, repeats=args.repeats)
            t_auto = _time(auto, x, repeats=args.repeats)
            t_ref = _time(ref, x, repeats=args.repeats)
            t_ours = min(t_direct, t_auto)
            # TFLOP/s are "NS5-equivalent": the direct iteration's FLOPs over the time taken
            row = {"kind": "ns5", "dtype": dtype_name, "shape": shape,
                   "muon_ns_direct_s": t_direct, "muon_ns_auto_s": t_auto, "optax_s": t_ref,
                   "muon_ns_direct_tflops": flops / t_direct / 1e12,
                   "muon_ns_auto_tflops": flops / t_auto / 1e12,
                   "optax_tflops": flops / t_ref / 1e12,
                   "muon_ns_direct_pct_of_peak": 100 * flops / t_direct / 1e12 / peak,
                   "muon_ns_auto_pct_of_peak": 100 * flops / t_auto / 1e12 / peak,
                   "optax_pct_of_peak": 100 * flops / t_ref / 1e12 / peak,
                   "speedup_vs_optax": t_ref / t_ours}
            if m * n <= svd_max:
                t_svd = _time(jax.jit(muon_ns.polar_svd), x, repeats=max(1, args.repeats // 3))
                row.update(svd_s=t_svd, svd_over_ns=t_svd / t_ours)
            rows.append(row)
            if args.batch > 1 and m * n <= args.batch_max_elems:
                xs = [jax.random.normal(jax.random.key(10 + i), (m, n), jnp.float32).astype(dtype)
                      for i in range(args.batch)]
                ours_b = jax.jit(lambda *a: muon_ns.newton_schulz(jnp.stack(a), "jordan", 5,
                                                                  method="auto"))
                ref_b = jax.jit(lambda *a: [optax_muon.orthogonalize_via_newton_schulz(
                    v, coeffs, 5) for v in a])
                tb_ours = _time(ours_b, *xs, repeats=args.repeats)
                tb_ref = _time(ref_b, *xs, repeats=args.repeats)
                rows.append({"kind": f"ns5_batched_{args.batch}", "dtype": dtype_name,
                             "shape": shape, "muon_ns_s": tb_ours, "optax_per_leaf_s": tb_ref,
                             "muon_ns_tflops": args.batch * flops / tb_ours / 1e12,
                             "optax_tflops": args.batch * flops / tb_ref / 1e12,
                             "speedup_vs_optax": tb_ref / tb_ours})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _alternating(fns: dict, *args, repeats: int) -> dict[str, float]:
    """Median wall seconds of each function, timed in alternating rounds after a warm-up."""
    for f in fns.values():
        jax.block_until_ready(f(*args))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_gram(args) -> list[dict]:
    """Gram vs direct NS at the shapes where ``auto`` picks Gram: speed and accuracy."""
    rows = []
    rng = np.random.default_rng(0)
    for shape in args.gram_shapes.split(","):
        m, n = (int(v) for v in shape.split("x"))
        if n < muon_ns.GRAM_MIN_ASPECT * m:
            raise ValueError(f"--gram-shapes: {shape} is not one where auto picks the Gram form "
                             f"(needs n >= {muon_ns.GRAM_MIN_ASPECT} m)")
        inputs = {"gaussian": rng.standard_normal((m, n)),
                  "rank_deficient": rng.standard_normal((m, max(1, m // 8)))
                  @ rng.standard_normal((max(1, m // 8), n))}
        for q in (5, 10):
            fns = {meth: jax.jit(lambda a, meth=meth, q=q: muon_ns.newton_schulz(
                a, "polar_express", q, method=meth)) for meth in ("direct", "gram")}
            x = jnp.asarray(inputs["gaussian"], jnp.float32)
            t = _alternating(fns, x, repeats=args.repeats)
            row = {"kind": "gram_vs_direct", "shape": shape, "q": q, "scheme": "polar_express",
                   "direct_s": t["direct"], "gram_s": t["gram"],
                   "gram_speedup": t["direct"] / t["gram"]}
            for name, mat in inputs.items():
                u, s, vh = np.linalg.svd(mat, full_matrices=False)
                r = int(np.sum(s > 1e-6 * s[0]))
                for meth, f in fns.items():
                    out = np.asarray(f(jnp.asarray(mat, jnp.float32)), np.float64)
                    row[f"{name}_{meth}_finite"] = bool(np.all(np.isfinite(out)))
                    row[f"{name}_{meth}_range_error"] = float(np.linalg.norm(
                        u[:, :r].T @ out - vh[:r], 2)) if row[f"{name}_{meth}_finite"] else None
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    backend = jax.default_backend()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for results.json")
    parser.add_argument("--shapes", default=CPU_SHAPES if backend == "cpu" else GPU_SHAPES)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=3 if backend == "cpu" else 10)
    parser.add_argument("--batch", type=int, default=8, help="same-shape matrices per call")
    parser.add_argument("--peak-n", type=int, default=1024 if backend == "cpu" else 8192)
    parser.add_argument("--svd-max-elems", type=int,
                        default=1024 * 1024 if backend == "cpu" else 4096 * 4096,
                        help="run polar_svd only for m*n up to this (SVD is slow)")
    parser.add_argument("--batch-max-elems", type=int, default=4096 * 4096,
                        help="run the batched comparison only for m*n up to this")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument("--gram-shapes",
                        default=GRAM_CPU_SHAPES if backend == "cpu" else GRAM_GPU_SHAPES)
    parser.add_argument("--skip", default="",
                        help="comma list of parts to skip: update,ns,gram")
    args = parser.parse_args(argv)
    for name in ("repeats", "batch", "layers", "width", "peak_n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    skip = set(filter(None, args.skip.split(",")))
    if skip - {"update", "ns", "gram"}:
        parser.error(f"--skip takes update, ns and/or gram, got {args.skip!r}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"backend": backend, "device": str(jax.devices()[0].device_kind),
               "jax": jax.__version__, "optax": optax.__version__, "args": vars(args)}
    if "update" not in skip:
        results["update"] = bench_update(args)
        print(json.dumps(results["update"]), flush=True)
    if "ns" not in skip:
        results["ns"] = bench_ns(args)
    if "gram" not in skip:
        results["gram"] = bench_gram(args)
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out_dir / "results.json")
    print(f"wrote {out_dir / 'results.json'}")


if __name__ == "__main__":
    main()
