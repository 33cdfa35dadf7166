"""Trains the small reasoning model: a word-level llm_tools Llama on CoT-formatted arithmetic.

SmolLM2-135M-Instruct is weak at arithmetic, so the resampling experiments also use a model
that demonstrably reasons at CPU scale: trained on generated two-step word problems and yes/no
decisions (``llm_tools.thought_branches.problems``) written as ``Q: <question>\\nA: <worked
chain of thought> So the answer is N.`` followed by EOS. The loss is next-token cross-entropy
on the answer part (chain of thought and EOS) only. Training stops at ``stop_at`` (default:
the schedule length ``steps``); the held-out per-problem accuracy (``eval_samples``
samples per problem at T = 0.6, top-p 0.95) is measured at the end and should sit between 25%
and 75%, the regime where Thought Anchors selects problems.

    python -m experiments.thought_branches.reasoner --out runs/tb_reasoner --steps 800 \
        --stop_at 500 --batch 32 --lr 3e-3 --train_problems 20000

writes ``config.json`` / ``params.npz`` (``llm_tools.save_model``), ``vocab.json``
(:class:`~llm_tools.thought_branches.WordTokenizer`) and ``train_log.json``
into ``--out``; resumable from ``--out/checkpoints``. The shipped weights in
``llm_tools/thought_branches/reasoner/`` were made by this command (see docs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.checkpoint import Checkpointer
from experiments.progress import Progress
from experiments.workdir import atomic_write_json
from llm_tools import JaxSampler, Llama, next_token_loss, save_model, tiny_config
from llm_tools.thought_branches import (
    answers_match,
    decision_problems,
    extract_answer,
    format_prompt,
    generated_problems,
)
from llm_tools.thought_branches.vocab import WordTokenizer

MODEL = dict(dim=96, n_layers=3, n_heads=4, n_kv_heads=2, max_seq_len=256)
SEQ = 128


def training_problems(n: int, key: jax.Array):
    k1, k2 = jax.random.split(key)
    n_dec = n // 5
    return (generated_problems(n - n_dec, key=k1, prefix="train")
            + decision_problems(n_dec, key=k2, prefix="traindec"))


def heldout_problems(n: int):
    """Held-out problems (a key never used for training)."""
    k1, k2 = jax.random.split(jax.random.key(10_001))
    return (generated_problems(n - n // 5, key=k1, prefix="held", p_slip=0.0)
            + decision_problems(n // 5, key=k2, prefix="heldec", p_slip=0.0))


def encode_batch(problems, tok: WordTokenizer):
    """``[B, SEQ]`` tokens (BOS, prompt, " " + solution, EOS, PAD…) and ``[B, SEQ-1]`` loss mask."""
    toks = np.full((len(problems), SEQ), tok.pad_id, np.int32)
    mask = np.zeros((len(problems), SEQ - 1), np.float32)
    for b, p in enumerate(problems):
        prompt = tok.encode(format_prompt(p), add_bos=True)
        ans = tok.encode(" " + p.solution) + [tok.eos_id]
        ids = (prompt + ans)[:SEQ]
        toks[b, : len(ids)] = ids
        mask[b, len(prompt) - 1: len(ids) - 1] = 1.0
    return toks, mask


def heldout_accuracy(model, tok, problems, *, samples: int, key: jax.Array, max_new_tokens=100):
    """Per-problem accuracy over ``samples`` draws at T = 0.6, top-p 0.95."""
    sampler = JaxSampler(model, tok, add_bos=True, max_batch=64)
    prompts = [format_prompt(p) for p in problems]
    outs = sampler.generate(prompts, max_new_tokens=max_new_tokens, temperature=0.6, top_p=0.95,
                            n=samples, key=key)
    acc = []
    for p, comps in zip(problems, outs, strict=True):
        acc.append(np.mean([answers_match(extract_answer(c.text, p.kind), p.answer, p.kind)
                            for c in comps]))
    return np.asarray(acc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=800, help="length of the LR schedule")
    ap.add_argument("--stop_at", type=int, default=None,
                    help="stop and export at this step (default: --steps)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--train_problems", type=int, default=20000)
    ap.add_argument("--eval_problems", type=int, default=60)
    ap.add_argument("--eval_samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = training_problems(args.train_problems, jax.random.key(args.seed))
    tok = WordTokenizer.train([format_prompt(p) + " " + p.solution for p in data])
    toks, mask = encode_batch(data, tok)
    model = Llama(tiny_config(**MODEL, vocab_size=tok.vocab_size), rngs=nnx.Rngs(args.seed))
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, 100, args.steps, args.lr / 20)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=0.01))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = {"params": params, "opt": opt.init(params), "step": jnp.zeros((), jnp.int32)}

    @jax.jit
    def step(state, tokens, m):
        def loss_fn(p):
            return next_token_loss(nnx.merge(graphdef, p, rest), tokens, m)

        loss, g = jax.value_and_grad(loss_fn)(state["params"])
        upd, o = opt.update(g, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], upd), "opt": o,
                "step": state["step"] + 1}, loss

    ckpt = Checkpointer(out / "checkpoints", save_every=250)
    state, start = ckpt.restore_or(state)
    stop = args.steps if args.stop_at is None else min(args.stop_at, args.steps)
    prog = Progress(stop, name="reasoner", start_step=min(start, stop), interval_s=30)
    rng = np.random.default_rng(args.seed + start)
    log, t0 = [], time.time()
    for s in range(start, stop):
        idx = rng.integers(0, len(data), args.batch)
        state, loss = step(state, jnp.asarray(toks[idx]), jnp.asarray(mask[idx]))
        if (s + 1) % 100 == 0 or s + 1 == stop:
            loss = float(loss)
            if not np.isfinite(loss):
                raise FloatingPointError(f"reasoner: loss is {loss} at step {s + 1}")
            log.append({"step": s + 1, "loss": loss})
            prog.update(s + 1, f"loss {loss:.3f}")
        ckpt.maybe_save(s + 1, state)
    ckpt.save(max(stop, start), state)
    ckpt.close()
    model = nnx.merge(graphdef, state["params"], rest)
    save_model(out, model)
    tok.save(out / "vocab.json")
    acc = heldout_accuracy(model, tok, heldout_problems(args.eval_problems),
                           samples=args.eval_samples, key=jax.random.key(99))
    res = {"steps": int(state["step"]), "schedule_steps": args.steps,
           "train_seconds": time.time() - t0, "log": log,
           "heldout_mean_accuracy": float(acc.mean()),
           "heldout_frac_in_25_75": float(np.mean((acc >= 0.25) & (acc <= 0.75))),
           "heldout_per_problem": acc.tolist(), "eval_samples": args.eval_samples,
           "model": MODEL, "args": vars(args)}
    atomic_write_json(out / "train_log.json", res)
    print(json.dumps({k: v for k, v in res.items() if k not in ("log", "heldout_per_problem")}))
    return res


if __name__ == "__main__":
    main()
