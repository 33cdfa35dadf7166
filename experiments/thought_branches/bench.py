"""Benchmark: a full sentence sweep of one CoT (every cut × ``n`` rollouts) with prefix sharing
vs the same sweep without it, in one process, same keys.

* shared: ``sampler.resample_ids(prefix_i, n)`` per cut, as the rollout engine calls it (the
  engine prefills the prefix once and fans its KV cache out to the ``n`` rows);
* plain: the same ``n`` rows per cut through ``llm_tools.generate_tokens`` on an
  ``Engine(model, share_prefixes=False)``: every row prefilled on its own, as plain ``generate``
  calls with the prompt repeated did before the engine shared prefixes.

The two are alternated ``--repeats`` times; medians of rollouts/s and generated tokens/s and
their ratio are printed with the load average (the machine is shared; ratios are what count).

    python -m experiments.thought_branches.bench --sentences 20 --rollouts 100
    python -m experiments.thought_branches.bench --model smollm2 --sentences 20 --rollouts 100 \
        --max_new_tokens 64
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from llm_tools import Engine, generate_tokens
from llm_tools.thought_branches import (
    Trace,
    format_prompt,
    generated_problems,
    prefix_key,
    reasoner_sampler,
)


def _cot(n_sentences: int, seed: int = 5) -> tuple[str, str]:
    """A prompt and a CoT of ``n_sentences`` sentences (worked solutions back to back)."""
    ps = generated_problems(max(4, n_sentences), key=jax.random.key(seed), p_check=1.0)
    sents = []
    for p in ps:
        sents += [s.strip() + "." for s in p.solution.split(". ") if s.strip()]
    cot = " " + " ".join(s.rstrip(".") + "." for s in sents[:n_sentences])
    return format_prompt(ps[0]), cot


def sweep_shared(sampler, trace, n, key, max_new_tokens):
    toks = 0
    for i in range(trace.num_sentences + 1):
        comps = sampler.resample_ids(trace.prefix_ids(i), n, max_new_tokens=max_new_tokens,
                                     temperature=0.6, top_p=0.95,
                                     key=prefix_key(key, "bench", "resample", i))
        toks += sum(len(c.token_ids) for c in comps)
    return toks


def sweep_plain(engine, tok, trace, n, key, max_new_tokens):
    toks = 0
    for i in range(trace.num_sentences + 1):
        k = prefix_key(key, "bench", "resample", i)
        keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(k, 0), j) for j in range(n)])
        out = generate_tokens(engine, [trace.prefix_ids(i)] * n, keys,
                              max_new_tokens=max_new_tokens, temperature=0.6, top_p=0.95,
                              stop_ids=tok.stop_ids)
        toks += int(np.sum(out.lengths))
    return toks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reasoner", choices=["reasoner", "smollm2"])
    ap.add_argument("--sentences", type=int, default=20)
    ap.add_argument("--rollouts", type=int, default=100)
    ap.add_argument("--max_new_tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--problem_seed", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    if args.model == "reasoner":
        base = reasoner_sampler(max_batch=args.rollouts)
    else:
        from llm_tools import JaxSampler

        base = JaxSampler.from_smollm2(max_batch=min(args.rollouts, 32))
    sampler = base
    prompt, cot = _cot(args.sentences, args.problem_seed)
    tok = sampler.tokenizer
    trace = Trace.from_ids(tok, tok.encode(prompt, add_bos=getattr(base, "add_bos", False)),
                           tok.encode(cot))
    key = jax.random.key(0)
    plain = Engine(base.model, max_batch=base.engine.max_batch, share_prefixes=False)
    n_roll = (trace.num_sentences + 1) * args.rollouts
    # warm up both paths (compilation of every shape the sweep meets)
    sweep_shared(sampler, trace, args.rollouts, key, args.max_new_tokens)
    sweep_plain(plain, tok, trace, args.rollouts, key, args.max_new_tokens)
    times = {"shared": [], "plain": []}
    toks = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        toks["shared"] = sweep_shared(sampler, trace, args.rollouts, key, args.max_new_tokens)
        times["shared"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        toks["plain"] = sweep_plain(plain, tok, trace, args.rollouts, key, args.max_new_tokens)
        times["plain"].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    res = {"model": args.model, "sentences": trace.num_sentences, "rollouts": args.rollouts,
           "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
           "prefix_tokens_last": len(trace.prefix_ids(trace.num_sentences)),
           "sweep_seconds_shared": med["shared"], "sweep_seconds_plain": med["plain"],
           "rollouts_per_s_shared": n_roll / med["shared"],
           "rollouts_per_s_plain": n_roll / med["plain"],
           "tokens_per_s_shared": toks["shared"] / med["shared"],
           "tokens_per_s_plain": toks["plain"] / med["plain"],
           "speedup_shared_over_plain": med["plain"] / med["shared"],
           "loadavg": os.getloadavg()}
    print(json.dumps(res, indent=1))
    if args.out:
        from experiments.workdir import atomic_write_json

        atomic_write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
