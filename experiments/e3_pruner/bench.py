"""Claim 3: measured prefill and decode throughput of a 25%-pruned SmolLM2 vs the dense model.

    python -m experiments.e3_pruner.main --config=experiments/e3_pruner/configs/speed.py:quick \
        --workdir=/tmp/e3_speed
    python -m experiments.e3_pruner.bench --workdir=/tmp/e3_speed --tier=standard

Both models run through the same llm_tools sampling engine (``Engine`` + ``generate_tokens``:
a jitted prefill, then the ``lax.while_loop`` decode in decode layout; greedy). In one
process, alternating dense and pruned, ``repeats`` times after an untimed warm-up each
(compilation):

- prefill: ``B`` prompts of ``P`` tokens with ``max_new_tokens = 1`` (prefill + one sample);
  throughput ``B·P / t₁``;
- decode: the same prompts with ``N`` new tokens; ``t_N − t₁`` is the time of ``N − 1``
  decode steps, throughput ``B·(N − 1) / (t_N − t₁)``.

Medians are reported, with the ratio pruned/dense and the ideal ratio from the multiply-adds
per token (layers plus the output head), which the wall-clock ratio is judged against.
Which layers are removed does not change the speed, so the pruned model keeps layers
``0..21`` of the 30 unless ``keep`` is given. With ``random_weights`` (or when the GGUF is
absent and ``allow_random`` is set) the SmolLM2 shapes are run with random weights.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags
from flax import nnx

import e3_pruner as E
from experiments.config import check, positive
from experiments.workdir import Workdir
from llm_tools import (
    Engine,
    Llama,
    LlamaConfig,
    find_smollm2,
    generate_tokens,
    load_smollm2,
)

SMOLLM2_SHAPES = dict(vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3,
                      hidden_dim=1536, head_dim=64, rope_base=100000.0, norm_eps=1e-5,
                      tie_embeddings=True)


def macs_per_token(config: LlamaConfig, context: int) -> float:
    """Multiply-adds per token: every layer's projections and attention over ``context``
    positions, plus the output head (the embedding lookup is free)."""
    c = config
    proj = c.dim * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim + c.n_heads * c.head_dim * c.dim
    mlp = 3 * c.dim * c.hidden_dim
    attn = 2 * c.n_heads * c.head_dim * context
    return c.n_layers * (proj + mlp + attn) + c.dim * c.vocab_size


def _load(config) -> tuple[Llama, str]:
    if not config.random_weights and find_smollm2() is not None:
        return load_smollm2(max_seq_len=config.prompt_tokens + config.new_tokens + 8).model, \
            "SmolLM2-135M-Instruct (GGUF weights)"
    if not (config.random_weights or config.allow_random):
        load_smollm2()  # raises FileNotFoundError saying how to fetch it
    cfg = LlamaConfig(**SMOLLM2_SHAPES, max_seq_len=config.prompt_tokens + config.new_tokens + 8)
    return Llama(cfg, rngs=nnx.Rngs(0)), "SmolLM2-135M shapes, random weights"


def _timed(model, prompts, new_tokens) -> float:
    keys = jax.random.split(jax.random.key(0), len(prompts))
    t0 = time.perf_counter()
    out = generate_tokens(model, prompts, keys, max_new_tokens=new_tokens, temperature=0.0)
    np.asarray(out.tokens)  # wait for the device
    return time.perf_counter() - t0


def run(config, workdir) -> dict:
    check(config, {"batch_size": positive, "prompt_tokens": positive, "new_tokens": positive,
                   "repeats": positive})
    if config.new_tokens < 2:
        raise ValueError(f"config: new_tokens must be >= 2 to time decoding, got "
                         f"{config.new_tokens}")
    wd = Workdir(workdir)
    dense, what = _load(config)
    L = dense.config.n_layers
    keep = [int(i) for i in config.keep.split(",")] if config.keep else list(
        range(L - int(round(config.prune_fraction * L))))
    pruned = E.prune(dense, keep)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, dense.config.vocab_size, config.prompt_tokens).tolist()
               for _ in range(config.batch_size)]
    models = {"dense": Engine(dense), "pruned": Engine(pruned)}
    times = {(m, n): [] for m in models for n in (1, config.new_tokens)}
    for m in models:  # warm-up: compile both programs of both models
        for n in (1, config.new_tokens):
            _timed(models[m], prompts, n)
    load_before = os.getloadavg()
    for _ in range(config.repeats):
        for m in models:  # alternate dense and pruned
            for n in (1, config.new_tokens):
                times[(m, n)].append(_timed(models[m], prompts, n))
    load_after = os.getloadavg()
    B, P, N = config.batch_size, config.prompt_tokens, config.new_tokens
    res = {"model": what, "device": str(jax.devices()[0].platform), "batch_size": B,
           "prompt_tokens": P, "new_tokens": N, "repeats": config.repeats,
           "layers_dense": L, "layers_pruned": len(keep), "keep": keep,
           "load_avg_before": list(load_before), "load_avg_after": list(load_after)}
    for m in models:
        t1 = statistics.median(times[(m, 1)])
        decode = [tn - t1_ for tn, t1_ in zip(times[(m, N)], times[(m, 1)], strict=True)]
        res[f"{m}_prefill_tokens_per_s"] = B * P / t1
        res[f"{m}_decode_tokens_per_s"] = B * (N - 1) / max(statistics.median(decode), 1e-9)
        res[f"{m}_times_s"] = {"prefill": times[(m, 1)], f"generate_{N}": times[(m, N)]}
    res["prefill_speedup"] = res["pruned_prefill_tokens_per_s"] / res["dense_prefill_tokens_per_s"]
    res["decode_speedup"] = res["pruned_decode_tokens_per_s"] / res["dense_decode_tokens_per_s"]
    ctx = P + N // 2
    res["ideal_decode_speedup"] = (macs_per_token(dense.config, ctx)
                                   / macs_per_token(pruned.config, ctx))
    res["ideal_prefill_speedup"] = (macs_per_token(dense.config, P // 2)
                                    / macs_per_token(pruned.config, P // 2))
    wd.write_results(res)
    wd.write_report(
        "# E³-Pruner claim 3: pruned vs dense throughput\n\n"
        f"{what}, {L} → {len(keep)} layers, batch {B}, prompt {P}, {N} new tokens, greedy, "
        f"{res['device']}; medians of {config.repeats} alternating runs "
        f"(load average {load_before[0]:.1f} → {load_after[0]:.1f}).\n\n"
        "| | dense tok/s | pruned tok/s | speedup | ideal (MACs) |\n|---|---|---|---|---|\n"
        f"| prefill | {res['dense_prefill_tokens_per_s']:.1f} | "
        f"{res['pruned_prefill_tokens_per_s']:.1f} | {res['prefill_speedup']:.3f}× | "
        f"{res['ideal_prefill_speedup']:.3f}× |\n"
        f"| decode | {res['dense_decode_tokens_per_s']:.1f} | "
        f"{res['pruned_decode_tokens_per_s']:.1f} | {res['decode_speedup']:.3f}× | "
        f"{res['ideal_decode_speedup']:.3f}× |\n")
    return res


def main(argv):
    del argv
    from experiments.config import load_config

    workdir, tier = flags.FLAGS.workdir, flags.FLAGS.tier
    cfg = load_config(Path(__file__).parent / "configs" / "speed.py", tier)
    res = run(cfg, workdir)
    print(Path(workdir, "report.md").read_text())
    return res


if __name__ == "__main__":  # flags only here: this module is also imported by main/claims
    flags.DEFINE_string("workdir", "/tmp/e3_speed", "Output folder.")
    flags.DEFINE_enum("tier", "standard", ["quick", "standard", "full"], "Config tier.")
    app.run(main)
