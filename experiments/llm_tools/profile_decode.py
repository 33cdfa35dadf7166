"""Where one decode step's time goes: the engine's step against the stacked-cache step, by part.

    python -m experiments.llm_tools.profile_decode --workdir=/tmp/llm_tools_profile
    python -m experiments.llm_tools.profile_decode --batch_sizes=32 --prefix=512 --repeats=5

SmolLM2-135M shapes with random weights (the time does not depend on the values). For each
batch size it times, alternating in one process and reporting medians of ``repeats`` rounds
of ``inner`` calls each:

- ``stacked step``: one token through :func:`llm_tools.forward` with the stacked
  ``[L, B, T, H_kv, d_h]`` cache (the layout the engine replaced: ``lax.scan`` slicing the
  stacked weights, the whole bucket attended);
- ``engine step``: one token through the engine's step (per-layer weights, prefix cache
  ``[U, H_kv, d_h, S]`` + suffix cache, filled suffix blocks only), no sampling;
- its parts: the 30 layers' matmuls alone, the attention alone, the output head alone;
- sampling one token from ``[B, V]`` logits: greedy (no noise), plain temperature (Gumbel
  over ``V``), top-p 0.95 on the 256-candidate set, top-p 0.95 by a full sort;

and XLA's cost analysis of both steps (flops, bytes accessed; for the stacked step XLA counts
one iteration of the ``lax.scan`` over layers, so multiply by ``L``). ``--trace_dir`` also writes
a ``jax.profiler`` trace of a few engine steps (open it in Perfetto / TensorBoard).
Writes ``results.json`` and ``report.md``.
"""

from __future__ import annotations

import functools
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from experiments.workdir import Workdir
from llm_tools import Llama, LlamaConfig, forward
from llm_tools.engine import _Dims, _rms, _step, _suffix_attention, decode_weights
from llm_tools.model import KVCache
from llm_tools.sampling import sample_step

_BATCHES = flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes.")
_PREFIX = flags.DEFINE_integer("prefix", 128, "Prefix (prompt) cache slots S.")
_NEW = flags.DEFINE_integer("new", 128, "New-token slots N; the step is timed at slot N/2.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Rounds (median reported).")
_INNER = flags.DEFINE_integer("inner", 5, "Calls per round.")
_TRACE = flags.DEFINE_string("trace_dir", None, "Write a jax.profiler trace here.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/llm_tools_profile", "Output folder.")

SMOLLM2 = dict(vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3, hidden_dim=1536,
               rope_base=100000.0, norm_eps=1e-5, tie_embeddings=True)


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return "unknown"


def _timer(fn, inner):
    def run():
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn()
        jax.block_until_ready(out)
        return (time.perf_counter() - t0) / inner
    return run


def interleaved(fns: dict, repeats: int, inner: int) -> dict:
    """Median seconds per call of each function, rounds alternating between them."""
    runs = {k: _timer(f, inner) for k, f in fns.items()}
    for r in runs.values():
        r()  # compile / warm
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, r in runs.items():
            times[k].append(r())
    return {k: statistics.median(v) for k, v in times.items()}


def profile_batch(B, S, N, repeats, inner, trace_dir=None) -> dict:
    dt = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    cfg = LlamaConfig(**SMOLLM2, max_seq_len=S + N + 16, dtype=dt, param_dtype=dt)
    model = Llama(cfg, rngs=nnx.Rngs(0))
    dw = decode_weights(model)
    c = cfg
    L, Hkv, hd = c.n_layers, c.n_kv_heads, c.head_dim
    rng = np.random.default_rng(0)
    adt = dw.head.dtype
    dims = _Dims(B, 1, S, N, min(64, N))
    kp = tuple(jnp.asarray(rng.normal(size=(B, Hkv, hd, S)), adt) for _ in range(L))
    vp = tuple(jnp.asarray(rng.normal(size=(B, Hkv, S, hd)), adt) for _ in range(L))
    ks = tuple(jnp.zeros((B, 1, Hkv, hd, N), adt) for _ in range(L))
    vs = tuple(jnp.zeros((B, 1, Hkv, N, hd), adt) for _ in range(L))
    pmask = jnp.ones((B, 1, S), bool)
    prev = jnp.asarray(rng.integers(0, c.vocab_size, B), jnp.int32)
    j = N // 2
    pos = jnp.full((B,), S + j, jnp.int32)

    # the suffix caches are donated and fed back, so their one-column writes are in place,
    # as in the engine's while loop
    step = jax.jit(lambda dw, kp, vp, ks, vs, prev, pos, j: _step(
        dw, kp, vp, pmask, ks, vs, prev, pos, j, c, dims), donate_argnums=(3, 4))
    carry = {"ks": ks, "vs": vs}

    def engine_step():
        logits, carry["ks"], carry["vs"] = step(dw, kp, vp, carry["ks"], carry["vs"], prev,
                                                pos, j)
        return logits

    # the stacked-cache step (the old layout), one token at slot S + j of a T = S + N cache
    T = S + N
    cache = KVCache(jnp.asarray(rng.normal(size=(L, B, T, Hkv, hd)), adt),
                    jnp.asarray(rng.normal(size=(L, B, T, Hkv, hd)), adt))
    kv_mask = jnp.ones((B, T), bool)
    graphdef, state = nnx.split(model)

    @functools.partial(jax.jit, donate_argnums=(1,))
    def stacked(state, cache, prev, pos):
        m = nnx.merge(graphdef, state)
        logits, cache, _ = forward(m, prev[:, None], positions=pos[:, None], cache=cache,
                                   cache_index=S + j, kv_mask=kv_mask)
        return logits, cache

    held = {"cache": cache}

    def stacked_step():
        logits, held["cache"] = stacked(state, held["cache"], prev, pos)
        return logits

    # parts: matmuls alone, attention alone, head alone
    def matmuls(dw, h):
        for lw in dw.layers:
            x = h.astype(adt)
            qkv = jnp.dot(x, lw.wqkv, preferred_element_type=jnp.float32)
            h = h + jnp.dot(qkv[:, : c.n_heads * hd].astype(adt), lw.wo,
                            preferred_element_type=jnp.float32)
            gu = jnp.dot(h.astype(adt), lw.w_gate_up, preferred_element_type=jnp.float32)
            h = h + jnp.dot(gu[:, : c.hidden_dim].astype(adt), lw.w_down,
                            preferred_element_type=jnp.float32)
        return h

    def attention(kp, vp, ks, vs, q):
        G = c.n_heads // Hkv
        out = 0.0
        for layer in range(L):
            qq = q.reshape(B, 1, Hkv, G, hd)
            qp = qq.transpose(0, 2, 1, 3, 4).reshape(B, Hkv, G, hd)
            sp = jnp.einsum("ukqd,ukdt->ukqt", qp, kp[layer], preferred_element_type=jnp.float32)
            ep = jnp.exp(sp - sp.max(-1, keepdims=True))
            op = jnp.einsum("ukqt,uktd->ukqd", ep.astype(adt), vp[layer],
                            preferred_element_type=jnp.float32)
            m, den, os_ = _suffix_attention(qq, ks[layer], vs[layer], j, dims, adt)
            out = out + op.sum() + os_.sum() + den.sum()
        return out

    def head(dw, h):
        h = _rms(h, dw.final_norm, c.norm_eps).astype(adt)
        return jnp.dot(h, dw.head, preferred_element_type=jnp.float32)

    h0 = jnp.asarray(rng.normal(size=(B, c.dim)), jnp.float32)
    q0 = jnp.asarray(rng.normal(size=(B, c.n_heads * hd)), adt)
    jm, ja, jh = jax.jit(matmuls), jax.jit(attention), jax.jit(head)

    res = interleaved({
        "stacked_step": stacked_step,
        "engine_step": engine_step,
        "engine_matmuls": lambda: jm(dw, h0),
        "engine_attention": lambda: ja(kp, vp, carry["ks"], carry["vs"], q0),
        "engine_head": lambda: jh(dw, h0),
    }, repeats, inner)

    logits = jnp.asarray(rng.normal(size=(B, c.vocab_size)) * 3, jnp.float32)
    keys = jax.random.split(jax.random.key(0), B)
    t = jnp.full((B,), 0.7, jnp.float32)
    one, zero, p95 = jnp.ones((B,)), jnp.zeros((B,), jnp.int32), jnp.full((B,), 0.95)

    def samp(temp, p, **kw):
        return jax.jit(lambda lg: sample_step(keys, lg, temp, p, zero, **kw)[0])

    greedy = samp(jnp.zeros((B,)), one, all_greedy=True, use_plain=False, use_trunc=False)
    plain = samp(t, one, use_plain=True, use_trunc=False)
    capped = samp(t, p95, use_plain=False, use_trunc=True, cap=256)
    full = samp(t, p95, use_plain=False, use_trunc=True, cap=c.vocab_size)
    res.update(interleaved({
        "sample_greedy": lambda: greedy(logits),
        "sample_plain": lambda: plain(logits),
        "sample_top_p_capped": lambda: capped(logits),
        "sample_top_p_full_sort": lambda: full(logits),
    }, repeats, inner))
    cost = step.lower(dw, kp, vp, carry["ks"], carry["vs"], prev, pos, j).compile(
    ).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    res["engine_step_gflops"] = float(cost.get("flops", float("nan"))) / 1e9
    res["engine_step_gbytes"] = float(cost.get("bytes accessed", float("nan"))) / 1e9
    cost_old = stacked.lower(state, held["cache"], prev, pos).compile().cost_analysis()
    cost_old = cost_old[0] if isinstance(cost_old, (list, tuple)) else cost_old
    res["stacked_step_gflops"] = float(cost_old.get("flops", float("nan"))) / 1e9
    res["stacked_step_gbytes"] = float(cost_old.get("bytes accessed", float("nan"))) / 1e9
    if trace_dir:
        with jax.profiler.trace(f"{trace_dir}/batch_{B}"):
            for _ in range(3):
                jax.block_until_ready(engine_step())
    return res


def main(argv):
    del argv
    wd = Workdir(_WORKDIR.value)
    out = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
           "prefix": _PREFIX.value, "new": _NEW.value, "load_before": load(), "batches": {}}
    for b in [int(x) for x in _BATCHES.value]:
        r = profile_batch(b, _PREFIX.value, _NEW.value, _REPEATS.value, _INNER.value,
                          _TRACE.value)
        out["batches"][str(b)] = r
        print(f"batch {b}: {r}", flush=True)
    out["load_after"] = load()
    wd.write_results(out)
    lines = ["# Decode-step profile", "",
             f"{out['device']} ({out['backend']}), SmolLM2-135M shapes, prefix {_PREFIX.value} "
             f"slots, step at suffix slot {_NEW.value // 2} of {_NEW.value}; medians of "
             f"{_REPEATS.value} alternating rounds. Load before: `{out['load_before']}`; after: "
             f"`{out['load_after']}`.", "",
             "| part | " + " | ".join(f"batch {b} (ms)" for b in out["batches"]) + " |",
             "|---|" + "---|" * len(out["batches"])]
    keys = [k for k in next(iter(out["batches"].values())) if "gflops" not in k
            and "gbytes" not in k]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{r[k] * 1e3:.2f}" for r in out["batches"].values())
                     + " |")
    for k in ("engine_step_gflops", "engine_step_gbytes", "stacked_step_gflops",
              "stacked_step_gbytes"):
        lines.append(f"| {k} (XLA cost analysis) | " + " | ".join(
            f"{r[k]:.3f}" for r in out["batches"].values()) + " |")
    wd.write_report("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
