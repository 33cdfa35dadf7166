"""Sampling-engine benchmarks: generation vs transformers, shared-prefix resampling, scoring.

    python -m experiments.llm_tools.bench --workdir=/tmp/llm_tools_bench
    python -m experiments.llm_tools.bench --sections=resample,scoring --workdir=/tmp/b
    python -m experiments.llm_tools.bench --random_weights --dtype=bfloat16 --workdir=/tmp/gpu

All speed numbers are ratios measured in one process, the contestants alternating round by
round (``repeats`` rounds after one untimed warm-up each), medians quoted; the machine's load
average (``uptime``) is recorded before and after every section, because on a shared machine
absolute times mean little.

1. ``generation``: SmolLM2-135M-Instruct, ``prompt_tokens`` (128) prompt + ``new_tokens``
   (128) new tokens, at each batch size (1 and 32), greedy and sampled (T=0.7, top-p 0.95):
   our engine (:func:`llm_tools.generate_tokens` on an :class:`llm_tools.Engine`, no stop ids)
   vs ``transformers`` ``generate`` (torch, same GGUF weights, ``min_new_tokens`` so it does
   not stop early). Time to first token is the same call with 1 new token; the per-step
   decode time is ``(t(N) - t(1)) / (N - 1)``, and "sampled / greedy" compares those.
2. ``resample``: 32 continuations of one ``prefix_tokens`` (500)-token prefix vs one
   continuation, with 1 and 32 new tokens (T=1); the 32 share one prefill. The same 32
   without sharing (every row prefilled alone, as before the engine) for reference.
3. ``scoring``: ``logprobs_ids`` of 32 sequences of 512 tokens in a fresh process: wall time
   and peak RSS during the warm call (``VmHWM``, reset through ``/proc/self/clear_refs``)
   against the RSS after loading the model.
4. ``training``: tokens/s of the small byte-level LM (AdamW, batch 16 x 128).

Writes ``results.json`` and ``report.md`` into ``--workdir``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import nnx

from experiments.workdir import Workdir
from llm_tools import (
    Engine,
    Llama,
    generate_tokens,
    init_train_state,
    load_gguf,
    make_train_step,
    sample_windows,
    smollm2_path,
    stdlib_corpus,
    tiny_config,
)

SMOLLM2_SHAPES = dict(vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3,
                      hidden_dim=1536, rope_base=100000.0, norm_eps=1e-5, tie_embeddings=True)
MODES = {"greedy": (0.0, 1.0), "sampled": (0.7, 0.95)}


def uptime() -> str:
    """``uptime``'s line (load averages), recorded with every number."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return "unknown"


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each zero-argument function; one untimed warm-up each, then
    ``repeats`` rounds in which every function runs once, in turn."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _text_ids(tokenizer, length, count):
    """``count`` distinct id windows of exactly ``length`` tokens cut from stdlib sources."""
    text = bytes(stdlib_corpus(max_bytes=400_000).train.clip(0, 255).astype(np.uint8)).decode(
        "utf-8", errors="ignore")
    ids = tokenizer.encode(text)
    stride = max(1, (len(ids) - length) // max(count, 1))
    return [ids[i * stride: i * stride + length] for i in range(count)]


def _prompts(tokenizer, batch, length, vocab=49152, seed=0):
    if tokenizer is None:
        return np.random.default_rng(seed).integers(3, vocab, (batch, length)).tolist()
    return _text_ids(tokenizer, length, batch)


def _models(max_seq_len, skip_hf, random_weights, dtype):
    """(our model, tokenizer or None, transformers model or None, torch device)."""
    import torch

    tdtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    device = "cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu"
    if random_weights:
        from llm_tools import LlamaConfig

        cfg = LlamaConfig(**SMOLLM2_SHAPES, max_seq_len=max_seq_len, dtype=dtype,
                          param_dtype=dtype)
        ours, tok = Llama(cfg, rngs=nnx.Rngs(0)), None
        hf = None
        if not skip_hf:
            import transformers

            hcfg = transformers.LlamaConfig(
                vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
                num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                num_key_value_heads=cfg.n_kv_heads, rope_theta=cfg.rope_base,
                rms_norm_eps=cfg.norm_eps, tie_word_embeddings=True,
                max_position_embeddings=2048)
            hf = transformers.LlamaForCausalLM(hcfg).to(device=device, dtype=tdtype).eval()
        return ours, tok, hf, device
    path = smollm2_path()
    pre = load_gguf(path, max_seq_len=max_seq_len, dtype=dtype)
    hf = None
    if not skip_hf:
        from experiments.llm_tools.reference import load_reference

        hf = load_reference(path).to(device=device, dtype=tdtype)
    return pre.model, pre.tokenizer, hf, device


def generation(batch_sizes, prompt_tokens, new_tokens, repeats, skip_hf, random_weights=False,
               dtype="float32") -> dict:
    import torch

    model, tokenizer, hf, device = _models(prompt_tokens + new_tokens + 16, skip_hf,
                                           random_weights, dtype)
    engine = Engine(model, dtype=dtype, max_batch=max(batch_sizes))
    out = {}
    for b in batch_sizes:
        prompts = _prompts(tokenizer, b, prompt_tokens)
        keys = jax.random.split(jax.random.key(0), b)
        x = torch.tensor(prompts, device=device)
        fns = {}
        for mode, (t, p) in MODES.items():
            for n in (new_tokens, 1):
                fns[f"jax_{mode}_{n}"] = (
                    lambda n=n, t=t, p=p, prompts=prompts, keys=keys: generate_tokens(
                        engine, prompts, keys, max_new_tokens=n, temperature=t, top_p=p))
                if hf is not None:
                    def hf_gen(n=n, t=t, p=p, x=x):
                        kw = dict(do_sample=True, temperature=t, top_p=p, top_k=0) if t else (
                            dict(do_sample=False))
                        with torch.no_grad():
                            y = hf.generate(x, attention_mask=torch.ones_like(x),
                                            max_new_tokens=n, min_new_tokens=n,
                                            pad_token_id=2, **kw)
                        if device == "cuda":
                            torch.cuda.synchronize()
                        return y
                    fns[f"hf_{mode}_{n}"] = hf_gen
        load_before = uptime()
        tm = interleaved(fns, repeats)
        row = {"load_before": load_before, "load_after": uptime(), "seconds": tm}
        N = new_tokens
        for who in ("jax", "hf") if hf is not None else ("jax",):
            for mode in MODES:
                total, first = tm[f"{who}_{mode}_{N}"], tm[f"{who}_{mode}_1"]
                row[f"{who}_{mode}_tokens_per_s"] = b * N / total
                row[f"{who}_{mode}_ttft_s"] = first
                row[f"{who}_{mode}_step_ms"] = 1e3 * (total - first) / max(N - 1, 1)
        for mode in MODES:
            if hf is not None:
                row[f"speedup_{mode}"] = tm[f"hf_{mode}_{N}"] / tm[f"jax_{mode}_{N}"]
        row["jax_sampled_over_greedy_per_step"] = (row["jax_sampled_step_ms"]
                                                   / row["jax_greedy_step_ms"])
        out[f"batch_{b}"] = row
        print(f"batch {b}: {json.dumps(row)}", flush=True)
    return out


def resample(prefix_tokens, repeats, random_weights=False, dtype="float32") -> dict:
    model, tokenizer, _, _ = _models(prefix_tokens + 64, True, random_weights, dtype)
    prefix = _prompts(tokenizer, 1, prefix_tokens, seed=1)[0]
    shared = Engine(model, dtype=dtype, max_batch=32)
    alone = Engine(model, dtype=dtype, max_batch=32, share_prefixes=False)
    out = {}
    for new in (1, 32):
        def run(engine, n, new=new):
            keys = jax.random.split(jax.random.key(0), n)
            return generate_tokens(engine, [prefix] * n, keys, max_new_tokens=new,
                                   temperature=1.0)
        fns = {"one": lambda run=run: run(shared, 1), "shared_32": lambda run=run: run(shared, 32),
               "unshared_32": lambda run=run: run(alone, 32)}
        load_before = uptime()
        tm = interleaved(fns, repeats)
        row = {"load_before": load_before, "load_after": uptime(), "seconds": tm,
               "shared_32_over_one": tm["shared_32"] / tm["one"],
               "unshared_32_over_one": tm["unshared_32"] / tm["one"]}
        out[f"new_{new}"] = row
        print(f"resample new={new}: {json.dumps(row)}", flush=True)
    return out


def _status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` (peak) of this process from ``/proc/self/status``, in MB."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def _score_child(random_weights: bool, dtype: str, batch: int, length: int) -> None:
    """Runs in a fresh process: prints JSON with the time and RSS of one scoring call."""
    model, tokenizer, _, _ = _models(length + 16, True, random_weights, dtype)
    from llm_tools import ByteTokenizer, JaxSampler

    lm = JaxSampler(model, tokenizer or ByteTokenizer(), dtype=dtype)
    seqs = _prompts(tokenizer, batch, length, seed=2)
    times, peaks = [], []
    rss0 = _status_mb("VmRSS")
    for _ in range(2):  # the first call compiles
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the RSS now
            f.write("5")
        t0 = time.perf_counter()
        scores = lm.logprobs_ids([s[:1] for s in seqs], [s[1:] for s in seqs])
        times.append(time.perf_counter() - t0)
        peaks.append(_status_mb("VmHWM"))
    assert len(scores) == batch and all(np.isfinite(s.total) for s in scores)
    print(json.dumps({"seconds_warm": times[-1], "seconds_first": times[0],
                      "rss_after_load_mb": rss0, "peak_rss_mb": peaks[-1],
                      "peak_above_load_mb": peaks[-1] - rss0,
                      "logits_if_materialized_mb": batch * length * model.config.vocab_size
                      * 4 / 2**20}))


def scoring(random_weights=False, dtype="float32", batch=32, length=512) -> dict:
    load_before = uptime()
    code = ("from experiments.llm_tools.bench import _score_child; "
            f"_score_child({random_weights!r}, {dtype!r}, {batch}, {length})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"scoring child failed: {proc.stderr[-2000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(load_before=load_before, load_after=uptime(), batch=batch, length=length)
    print(f"scoring: {json.dumps(row)}", flush=True)
    return row


def training(steps) -> dict:
    cfg = tiny_config(dim=128, n_layers=4, max_seq_len=256)
    opt = optax.adamw(1e-3)
    graphdef, state = init_train_state(Llama(cfg, rngs=nnx.Rngs(0)), opt)
    step = make_train_step(graphdef, opt)
    train = jnp.asarray(stdlib_corpus(max_bytes=2_000_000).train)
    batches = [sample_windows(jax.random.key(i), train, 16, 129) for i in range(steps + 1)]
    load_before = uptime()
    state, loss = step(state, batches[0])
    loss.block_until_ready()
    t0 = time.perf_counter()
    for b in batches[1:]:
        state, loss = step(state, b)
    loss.block_until_ready()
    dt = time.perf_counter() - t0
    return {"train_tokens_per_s": steps * 16 * 128 / dt, "params": int(
        sum(x.size for x in jax.tree.leaves(state.params))), "load_before": load_before,
        "load_after": uptime()}


def report(results) -> str:
    lines = ["# llm_tools benchmark", "",
             f"Device: {results['device']} ({results['backend']}); SmolLM2-135M "
             f"({results['weights']}), {results['dtype']}.", ""]
    gen = results.get("generation")
    if gen:
        lines += [f"## Generation ({results['prompt_tokens']} prompt + {results['new_tokens']} "
                  "new tokens; sampled = T 0.7, top-p 0.95)", "",
                  "| batch | mode | JAX tok/s | transformers tok/s | JAX / transformers | "
                  "JAX step ms | JAX TTFT s | transformers TTFT s | load (1/5/15 min) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, r in gen.items():
            for mode in MODES:
                lines.append(
                    f"| {name.split('_')[1]} | {mode} | {r[f'jax_{mode}_tokens_per_s']:.1f} | "
                    f"{r.get(f'hf_{mode}_tokens_per_s', float('nan')):.1f} | "
                    f"{r.get(f'speedup_{mode}', float('nan')):.2f}x | "
                    f"{r[f'jax_{mode}_step_ms']:.1f} | {r[f'jax_{mode}_ttft_s']:.3f} | "
                    f"{r.get(f'hf_{mode}_ttft_s', float('nan')):.3f} | "
                    f"{r['load_before'].split('average:')[-1].strip()} |")
        lines += [""] + [f"Batch {n.split('_')[1]}: sampled / greedy per decode step "
                         f"{r['jax_sampled_over_greedy_per_step']:.2f}." for n, r in gen.items()]
    res = results.get("resample")
    if res:
        lines += ["", f"## Resampling ({results['prefix_tokens']}-token prefix, T=1)", "",
                  "| new tokens | one (s) | 32 shared (s) | 32 / one | 32 unshared (s) | "
                  "unshared / one | load |", "|---|---|---|---|---|---|---|"]
        for name, r in res.items():
            s = r["seconds"]
            lines.append(f"| {name.split('_')[1]} | {s['one']:.3f} | {s['shared_32']:.3f} | "
                         f"{r['shared_32_over_one']:.2f}x | {s['unshared_32']:.3f} | "
                         f"{r['unshared_32_over_one']:.2f}x | "
                         f"{r['load_before'].split('average:')[-1].strip()} |")
    sc = results.get("scoring")
    if sc:
        lines += ["", f"## Scoring ({sc['batch']} x {sc['length']} tokens, fresh process)", "",
                  f"Warm call {sc['seconds_warm']:.2f} s (first, compiling, "
                  f"{sc['seconds_first']:.2f} s); peak RSS during the call "
                  f"{sc['peak_rss_mb']:.0f} MB, {sc['peak_above_load_mb']:.0f} MB above the "
                  f"RSS after loading the model ({sc['rss_after_load_mb']:.0f} MB) "
                  f"(full [B, T, V] fp32 logits would be {sc['logits_if_materialized_mb']:.0f} "
                  f"MB). Load: {sc['load_before'].split('average:')[-1].strip()}."]
    t = results.get("training")
    if t:
        lines += ["", f"Training (byte-level LM, {t['params']} params, batch 16x128, AdamW): "
                  f"{t['train_tokens_per_s']:.0f} tokens/s (load "
                  f"{t['load_before'].split('average:')[-1].strip()})."]
    return "\n".join(lines) + "\n"


def define_flags() -> None:
    """The command-line flags, defined only when run as a script (importing this module
    beside another with a --workdir flag must not collide in absl's registry)."""
    global _SECTIONS, _BATCHES, _PROMPT, _NEW, _PREFIX, _REPEATS, _TRAIN_STEPS, _SKIP_HF
    global _RANDOM, _DTYPE, _WORKDIR
    _SECTIONS = flags.DEFINE_list("sections", ["generation", "resample", "scoring", "training"],
                                  "Which benchmarks to run.")
    _BATCHES = flags.DEFINE_list("batch_sizes", ["1", "32"], "Generation batch sizes.")
    _PROMPT = flags.DEFINE_integer("prompt_tokens", 128, "Prompt length in tokens.")
    _NEW = flags.DEFINE_integer("new_tokens", 128, "New tokens per row.")
    _PREFIX = flags.DEFINE_integer("prefix_tokens", 500, "Resampling prefix length.")
    _REPEATS = flags.DEFINE_integer("repeats", 3, "Timed alternating rounds (median reported).")
    _TRAIN_STEPS = flags.DEFINE_integer("train_steps", 20, "Timed training steps.")
    _SKIP_HF = flags.DEFINE_bool("skip_transformers", False, "Only time JAX.")
    _RANDOM = flags.DEFINE_bool(
        "random_weights", False, "SmolLM2-135M shapes with random weights on both sides (no GGUF "
        "needed; throughput does not depend on the weights' values). Prompts are random ids.")
    _DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "JAX and torch dtype.")
    _WORKDIR = flags.DEFINE_string("workdir", "/tmp/llm_tools_bench", "Output folder.")


def main(argv):
    del argv
    wd = Workdir(_WORKDIR.value)
    sections = set(_SECTIONS.value)
    unknown = sections - {"generation", "resample", "scoring", "training"}
    if unknown:
        raise ValueError(f"bench: unknown --sections {sorted(unknown)}")
    results = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
               "prompt_tokens": _PROMPT.value, "new_tokens": _NEW.value,
               "prefix_tokens": _PREFIX.value, "repeats": _REPEATS.value,
               "weights": "random (SmolLM2 shapes)" if _RANDOM.value else "SmolLM2 GGUF",
               "dtype": _DTYPE.value}
    if "generation" in sections:
        results["generation"] = generation([int(b) for b in _BATCHES.value], _PROMPT.value,
                                           _NEW.value, _REPEATS.value, _SKIP_HF.value,
                                           _RANDOM.value, _DTYPE.value)
        wd.write_results(results)
    if "resample" in sections:
        results["resample"] = resample(_PREFIX.value, _REPEATS.value, _RANDOM.value,
                                       _DTYPE.value)
        wd.write_results(results)
    if "scoring" in sections:
        results["scoring"] = scoring(_RANDOM.value, _DTYPE.value)
        wd.write_results(results)
    if "training" in sections:
        results["training"] = training(_TRAIN_STEPS.value)
    wd.write_results(results)
    text = report(results)
    wd.write_report(text)
    print(text)


if __name__ == "__main__":
    define_flags()
    app.run(main)
