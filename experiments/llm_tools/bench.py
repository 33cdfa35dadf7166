"""Generation and training throughput of llm_tools (ratios against transformers, same process).

    python -m experiments.llm_tools.bench --workdir=/tmp/llm_tools_bench
    python -m experiments.llm_tools.bench --batch_sizes=1 --new_tokens=32 --workdir=/tmp/b

1. SmolLM2-135M-Instruct greedy generation, ``prompt_tokens`` (128) prompt + ``new_tokens``
   (128) new tokens, at each batch size (1 and 32): tokens/s of the jitted JAX decode loop vs
   ``transformers`` ``generate`` (torch, same GGUF weights, fp32, ``min_new_tokens`` so it
   does not stop early), and time to first token (prefill + first sample, ``max_new_tokens=1``).
   Each is timed warm (after one untimed call that compiles or warms caches); the median of
   ``repeats`` runs is reported.
2. Training tokens/s of the small byte-level LM (``configs/lm.py`` standard-tier model) with
   AdamW, batch 16 x 128.

Writes ``results.json`` and ``report.md`` into ``--workdir``. Reports the device it ran on.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import nnx

from experiments.workdir import Workdir
from llm_tools import (
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

_BATCHES = flags.DEFINE_list("batch_sizes", ["1", "32"], "Generation batch sizes.")
_PROMPT = flags.DEFINE_integer("prompt_tokens", 128, "Prompt length in tokens.")
_NEW = flags.DEFINE_integer("new_tokens", 128, "New tokens per row.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed repetitions (median reported).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 20, "Timed training steps.")
_SKIP_HF = flags.DEFINE_bool("skip_transformers", False, "Only time JAX.")
_RANDOM = flags.DEFINE_bool(
    "random_weights", False, "SmolLM2-135M shapes with random weights on both sides (no GGUF "
    "needed; throughput does not depend on the weights' values). Prompts are random ids.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "JAX and torch dtype.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/llm_tools_bench", "Output folder.")

SMOLLM2_SHAPES = dict(vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3,
                      hidden_dim=1536, rope_base=100000.0, norm_eps=1e-5, tie_embeddings=True)


def _median_time(fn, repeats):
    fn()  # warm-up: compile / allocate
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _prompts(tokenizer, batch, length):
    """``batch`` distinct prompts of exactly ``length`` tokens cut from stdlib sources."""
    text = bytes(stdlib_corpus(max_bytes=400_000).train.clip(0, 255).astype(np.uint8)).decode(
        "utf-8", errors="ignore")
    ids = tokenizer.encode(text)
    stride = max(1, (len(ids) - length) // max(batch, 1))
    return [ids[i * stride: i * stride + length] for i in range(batch)]


def _models(prompt_tokens, new_tokens, skip_hf, random_weights, dtype):
    """(our model, tokenizer or None, transformers model or None, torch device)."""
    import torch

    tdtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    device = "cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu"
    if random_weights:
        from llm_tools import LlamaConfig

        cfg = LlamaConfig(**SMOLLM2_SHAPES, max_seq_len=prompt_tokens + new_tokens + 16,
                          dtype=dtype, param_dtype=dtype)
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
    pre = load_gguf(path, max_seq_len=prompt_tokens + new_tokens + 16, dtype=dtype)
    hf = None
    if not skip_hf:
        from experiments.llm_tools.reference import load_reference

        hf = load_reference(path).to(device=device, dtype=tdtype)
    return pre.model, pre.tokenizer, hf, device


def generation(batch_sizes, prompt_tokens, new_tokens, repeats, skip_hf, random_weights=False,
               dtype="float32") -> dict:
    import torch

    model, tokenizer, hf, device = _models(prompt_tokens, new_tokens, skip_hf, random_weights,
                                           dtype)
    out = {}
    for b in batch_sizes:
        if tokenizer is None:
            prompts = np.random.default_rng(b).integers(3, 49152, (b, prompt_tokens)).tolist()
        else:
            prompts = _prompts(tokenizer, b, prompt_tokens)
        keys = jax.random.split(jax.random.key(0), b)

        def jax_gen(n, prompts=prompts, keys=keys):
            return generate_tokens(model, prompts, keys, max_new_tokens=n, temperature=0.0)

        t_gen = _median_time(lambda: jax_gen(new_tokens), repeats)
        t_ttft = _median_time(lambda: jax_gen(1), repeats)
        row = {"jax_tokens_per_s": b * new_tokens / t_gen, "jax_ttft_s": t_ttft}
        if hf is not None:
            x = torch.tensor(prompts, device=device)

            def hf_gen(n, x=x):
                with torch.no_grad():
                    y = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n,
                                    min_new_tokens=n, do_sample=False, pad_token_id=2)
                if device == "cuda":
                    torch.cuda.synchronize()
                return y

            t_hf = _median_time(lambda: hf_gen(new_tokens), repeats)
            t_hf_ttft = _median_time(lambda: hf_gen(1), repeats)
            row.update({"transformers_tokens_per_s": b * new_tokens / t_hf,
                        "transformers_ttft_s": t_hf_ttft,
                        "speedup": t_hf / t_gen})
        out[f"batch_{b}"] = row
        print(f"batch {b}: {row}", flush=True)
    return out


def training(steps) -> dict:
    cfg = tiny_config(dim=128, n_layers=4, max_seq_len=256)
    opt = optax.adamw(1e-3)
    graphdef, state = init_train_state(Llama(cfg, rngs=nnx.Rngs(0)), opt)
    step = make_train_step(graphdef, opt)
    train = jnp.asarray(stdlib_corpus(max_bytes=2_000_000).train)
    batches = [sample_windows(jax.random.key(i), train, 16, 129) for i in range(steps + 1)]
    state, loss = step(state, batches[0])
    loss.block_until_ready()
    t0 = time.perf_counter()
    for b in batches[1:]:
        state, loss = step(state, b)
    loss.block_until_ready()
    dt = time.perf_counter() - t0
    return {"train_tokens_per_s": steps * 16 * 128 / dt, "params": int(
        sum(x.size for x in jax.tree.leaves(state.params)))}


def main(argv):
    del argv
    wd = Workdir(_WORKDIR.value)
    results = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
               "prompt_tokens": _PROMPT.value, "new_tokens": _NEW.value}
    results["weights"] = "random (SmolLM2 shapes)" if _RANDOM.value else "SmolLM2 GGUF"
    results["dtype"] = _DTYPE.value
    results["generation"] = generation([int(b) for b in _BATCHES.value], _PROMPT.value,
                                       _NEW.value, _REPEATS.value, _SKIP_HF.value,
                                       _RANDOM.value, _DTYPE.value)
    results["training"] = training(_TRAIN_STEPS.value)
    wd.write_results(results)
    lines = ["# llm_tools benchmark", "", f"Device: {results['device']} ({results['backend']}); "
             f"SmolLM2-135M ({results['weights']}), {_DTYPE.value}, greedy, {_PROMPT.value} "
             f"prompt + {_NEW.value} new tokens.", "",
             "| batch | JAX tok/s | transformers tok/s | speedup | JAX TTFT s | "
             "transformers TTFT s |", "|---|---|---|---|---|---|"]
    for name, r in results["generation"].items():
        lines.append(f"| {name.split('_')[1]} | {r['jax_tokens_per_s']:.1f} | "
                     f"{r.get('transformers_tokens_per_s', float('nan')):.1f} | "
                     f"{r.get('speedup', float('nan')):.2f}x | {r['jax_ttft_s']:.3f} | "
                     f"{r.get('transformers_ttft_s', float('nan')):.3f} |")
    t = results["training"]
    lines += ["", f"Training (byte-level LM, {t['params']} params, batch 16x128, AdamW): "
              f"{t['train_tokens_per_s']:.0f} tokens/s."]
    wd.write_report("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
