"""Resumable training of a tiny byte-level Llama on the standard library's sources.

Everything model-side comes from :mod:`llm_tools` (loss, data-parallel step, corpus); this
file is the loop: data-parallel over all devices, orbax checkpoints through the harness,
metrics, and the final results (validation bits per byte against the byte-unigram entropy).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.checkpoint import Checkpointer
from experiments.config import ConfigError, validate_config
from experiments.llm_tools.configs import lm as lm_config
from experiments.progress import Progress
from experiments.workdir import Workdir
from llm_tools import (
    Llama,
    init_train_state,
    make_eval_step,
    make_train_step,
    sample_windows,
    save_model,
    stdlib_corpus,
    tiny_config,
)


def unigram_entropy_bits(tokens: np.ndarray) -> float:
    """Entropy (bits per token) of the empirical unigram distribution of ``tokens``."""
    counts = np.bincount(tokens).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def make_optimizer(config) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps,
                                                  max(config.steps, config.warmup_steps + 1))
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=config.weight_decay)
    return optax.sgd(schedule, momentum=0.9)


def run(config, workdir, optimizer: optax.GradientTransformation | None = None) -> dict:
    """Trains, evaluates and writes results; returns the results dict.

    Args:
      config: a locked config from ``configs/lm.py``.
      workdir: output folder (resumes from its checkpoints).
      optimizer: overrides ``config.optimizer`` (e.g. ``muon_ns.muon(...)``).
    """
    validate_config(config, lm_config)
    workdir = Path(workdir)
    wd = Workdir(workdir)
    corpus = stdlib_corpus(config.max_corpus_bytes or None)
    model_cfg = tiny_config(**dict(config.model))
    n_dev = jax.device_count()
    if config.batch_size % n_dev:
        raise ConfigError(f"config.batch_size must be divisible by the {n_dev} devices, got "
                          f"{config.batch_size}")
    mesh = jax.make_mesh((n_dev,), ("data",)) if n_dev > 1 else None
    opt = optimizer or make_optimizer(config)
    model = Llama(model_cfg, rngs=nnx.Rngs(config.seed))
    graphdef, state = init_train_state(model, opt)
    step_fn, eval_fn = make_train_step(graphdef, opt, mesh), make_eval_step(graphdef)
    train, valid = jnp.asarray(corpus.train), jnp.asarray(corpus.valid)
    valid_batches = [sample_windows(jax.random.key(10_000 + i), valid, config.batch_size,
                                    config.seq_len + 1) for i in range(config.eval_batches)]

    def evaluate(state):
        return float(np.mean([float(eval_fn(state, b)) for b in valid_batches]))

    initial_valid_loss = evaluate(state)  # the untrained model, measured (same seed on resume)
    ckpt = Checkpointer(workdir / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=lm_config.RESUME_ALLOW)
    init = {"state": state, "key": jax.random.key(config.seed)}
    restored, start = ckpt.restore_or(init)
    state, key = restored["state"], restored["key"]
    wd.truncate_metrics(start)
    progress = Progress(config.steps, name="llm_tools.lm", start_step=start)
    tokens_per_step = config.batch_size * config.seq_len
    t0, timed_steps = None, 0
    for step in range(start, config.steps):
        key, sub = jax.random.split(key)
        batch = sample_windows(sub, train, config.batch_size, config.seq_len + 1)
        state, loss = step_fn(state, batch)
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"llm_tools.lm: loss is {loss} at step {step + 1}; the "
                                     "last good checkpoint is kept")
        if step == start:
            t0 = time.perf_counter()  # exclude the compiling step from the rate
        else:
            timed_steps += 1
        metrics = {"train_loss": loss}
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            metrics["valid_loss"] = evaluate(state)
        wd.log_metrics(step + 1, **metrics)
        progress.update(step + 1, f"loss {loss:.3f}")
        ckpt.maybe_save(step + 1, {"state": state, "key": key})
    ckpt.save(config.steps, {"state": state, "key": key})
    ckpt.close()
    elapsed = (time.perf_counter() - t0) if t0 is not None else 0.0
    valid_loss = evaluate(state)
    trained = nnx.merge(graphdef, state.params, state.rest)
    save_model(workdir / "model", trained)
    results = {
        "valid_loss_nats": valid_loss,
        "valid_bits_per_byte": valid_loss / math.log(2),
        "unigram_entropy_bits": unigram_entropy_bits(np.asarray(corpus.train)),
        "initial_valid_bits_per_byte": initial_valid_loss / math.log(2),
        "uniform_bits_per_byte": math.log2(model_cfg.vocab_size),
        "train_tokens_per_s": tokens_per_step * timed_steps / elapsed if timed_steps else None,
        "steps": config.steps,
        "params": int(sum(x.size for x in jax.tree.leaves(state.params))),
        "train_files": len(corpus.train_files),
        "valid_files": len(corpus.valid_files),
        "devices": n_dev,
    }
    wd.write_results(results)
    _plot(wd)
    wd.write_report(
        "# Tiny byte-level Llama on the standard library\n\n"
        f"Validation: {results['valid_bits_per_byte']:.3f} bits/byte after {config.steps} "
        f"steps (byte-unigram entropy of the training stream: "
        f"{results['unigram_entropy_bits']:.3f} bits).\n\n![loss](loss.png)\n")
    return results


def _plot(wd: Workdir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = wd.read_metrics()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["step"] for r in rows], [r["train_loss"] / math.log(2) for r in rows],
            label="train", lw=0.8)
    ev = [r for r in rows if "valid_loss" in r]
    ax.plot([r["step"] for r in ev], [r["valid_loss"] / math.log(2) for r in ev], "o-",
            label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per byte")
    ax.legend()
    fig.tight_layout()
    wd.save_figure(fig, "loss.png")
