"""The robustness experiment: a small Llama, chain-of-thought SFT vs abstraction SFT vs AbstRaL
(abstraction SFT + GRPO), evaluated on original and perturbed GSM-Symbolic problems.

Pipeline (each phase resumable from ``--workdir``; a finished phase is skipped on restart):

1. ``tokenizer.json``: a byte-level BPE trained on the training problems and some standard
   library files (:func:`llm_tools.abstral.tokenizer.train_tokenizer`).
2. per seed, ``pretrain/``: next-token training on the standard library's sources.
3. ``sft_cot/``: SFT on the GSM8K-style solutions (the chain-of-thought baseline).
4. ``sft_abs/``: SFT on the granular abstractions (abstraction by SFT only).
5. ``grpo/``: GRPO from ``sft_abs`` with on-policy groups sampled through
   :class:`llm_tools.JaxSampler` and AbstRaL's reward (AbstRaL). Checkpointed every
   ``checkpoint_every`` iterations; a resumed run equals the uninterrupted one.
6. ``eval_<method>.json``: greedy answers on the paired evaluation sets (both splits).

The three methods share the pretrained model, the training problems and the SFT budget
(``sft.steps`` steps of ``sft.batch_size`` examples); AbstRaL adds ``grpo.iterations`` GRPO
iterations on the same problems.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.abstral.data import EVAL_VARIANTS, Datasets, build_datasets, tokenizer_corpus
from experiments.abstral.stats import summarize
from experiments.checkpoint import Checkpointer
from experiments.config import check, in_range, non_negative, one_of, positive
from experiments.progress import Progress
from experiments.workdir import Workdir, atomic_write_json
from llm_tools import (
    JaxSampler,
    Llama,
    init_train_state,
    load_model,
    make_train_step,
    sample_windows,
    save_model,
    tiny_config,
)
from llm_tools.abstral import abstraction_reward, cot_reward
from llm_tools.abstral.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from llm_tools.abstral.training import (
    GRPOConfig,
    abstraction_example,
    abstraction_prompt,
    cot_example,
    encode_examples,
    make_grpo_step,
    make_scorer,
    make_sft_step,
    pad_length,
    rollout_batch,
    sample_rollouts,
)
from llm_tools.data import stdlib_files

METHODS = ("cot_sft", "abs_sft", "abstral")


def _check(config) -> None:
    check(config, {
        "held_out": in_range(0.05, 0.95), "train_instances": non_negative,
        "eval_instances": positive, "num_seeds": positive, "tokenizer.vocab_size": positive,
        "pretrain.steps": non_negative, "pretrain.batch_size": positive,
        "pretrain.seq_len": positive, "sft.steps": positive, "sft.batch_size": positive,
        "sft.learning_rate": positive, "grpo.iterations": non_negative,
        "grpo.prompts_per_iteration": positive, "grpo.group_size": positive,
        "grpo.temperature": positive, "grpo.learning_rate": positive,
        "grpo.beta": non_negative, "grpo.reduction": one_of("grpo", "bnpo", "dr_grpo"),
        "grpo.max_new_tokens": positive, "eval.max_new_tokens_cot": positive,
        "eval.max_new_tokens_abs": positive, "checkpoint_every": positive,
        "abstraction_style": one_of("equations", "prose"), "base": one_of("tiny", "smollm2"),
    })
    if config.grpo.group_size < 2:
        from experiments.config import ConfigError

        raise ConfigError(f"config.grpo.group_size must be >= 2 (GRPO compares completions of "
                          f"one prompt), got {config.grpo.group_size}")


# ------------------------------------------------------------------------------ phases

def get_tokenizer(config, data: Datasets, workdir: Path):
    path = workdir / "tokenizer.json"
    if path.is_file():
        return load_tokenizer(path)
    tok = train_tokenizer(tokenizer_corpus(data, config.tokenizer.stdlib_files),
                          config.tokenizer.vocab_size)
    save_tokenizer(tok, path)
    return tok


def _schedule(lr: float, steps: int, warmup: int):
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1),
                                              max(steps, warmup + 1), end_value=lr * 0.1)


def _finite(loss: float, what: str, step: int) -> float:
    if not math.isfinite(loss):
        raise FloatingPointError(f"abstral.{what}: loss is {loss} at step {step}; the last "
                                 "good checkpoint is kept")
    return loss


def pretrain_phase(config, workdir: Path, tokenizer, seed: int) -> Llama:
    """Next-token training on the standard library's sources, in the task tokenizer."""
    out = workdir / "model"
    if (out / "params.npz").is_file():
        return load_model(out)
    model_cfg = tiny_config(**dict(config.model), vocab_size=tokenizer.vocab_size)
    model = Llama(model_cfg, rngs=nnx.Rngs(seed))
    if config.pretrain.steps == 0:
        save_model(out, model)
        return model
    files = stdlib_files()[:config.pretrain.max_files or None]
    ids = []
    for path in files:
        ids += tokenizer.encode(path.read_text(encoding="utf-8", errors="replace"))
        ids.append(tokenizer.eos_id)
    stream = jnp.asarray(np.asarray(ids, np.int32))
    opt = optax.adamw(_schedule(config.pretrain.learning_rate, config.pretrain.steps,
                                config.pretrain.steps // 10), weight_decay=0.01)
    graphdef, state = init_train_state(model, opt)
    step_fn = make_train_step(graphdef, opt)
    wd = Workdir(workdir)
    ckpt = Checkpointer(workdir / "checkpoints", save_every=config.checkpoint_every)
    restored, start = ckpt.restore_or({"state": state})
    state = restored["state"]
    wd.truncate_metrics(start)
    progress = Progress(config.pretrain.steps, name=f"abstral.pretrain[{seed}]",
                        start_step=start)
    key = jax.random.key(seed * 7919 + 1)
    for step in range(start, config.pretrain.steps):
        batch = sample_windows(jax.random.fold_in(key, step), stream,
                               config.pretrain.batch_size, config.pretrain.seq_len + 1)
        state, loss = step_fn(state, batch)
        loss = _finite(float(loss), "pretrain", step + 1)
        wd.log_metrics(step + 1, loss=loss)
        progress.update(step + 1, f"loss {loss:.3f}")
        ckpt.maybe_save(step + 1, {"state": state})
    ckpt.close()
    model = nnx.merge(graphdef, state.params, state.rest)
    save_model(out, model)
    return model


def _batches(encoded, batch_size: int, key: jax.Array, step: int, tokenizer, max_len: int):
    rows = np.asarray(jax.random.choice(jax.random.fold_in(key, step), len(encoded),
                                        (batch_size,), replace=len(encoded) < batch_size))
    return encode_examples(tokenizer, [encoded[i] for i in rows], max_len=max_len)


def sft_phase(config, workdir: Path, init: Llama, tokenizer, examples, seed: int,
              name: str) -> Llama:
    """Supervised fine-tuning on ``(prompt, completion)`` pairs (completion tokens only)."""
    out = workdir / "model"
    if (out / "params.npz").is_file():
        return load_model(out)
    c = config.sft
    opt = optax.adamw(_schedule(c.learning_rate, c.steps, c.warmup_steps), weight_decay=0.0)
    graphdef, state = init_train_state(init, opt)
    step_fn = make_sft_step(graphdef, opt)
    wd = Workdir(workdir)
    ckpt = Checkpointer(workdir / "checkpoints", save_every=config.checkpoint_every)
    restored, start = ckpt.restore_or({"state": state})
    state = restored["state"]
    wd.truncate_metrics(start)
    progress = Progress(c.steps, name=f"abstral.{name}[{seed}]", start_step=start)
    key = jax.random.key(seed * 7919 + sum(map(ord, name)))
    for step in range(start, c.steps):
        batch = _batches(examples, c.batch_size, key, step, tokenizer, config.model.max_seq_len)
        state, loss = step_fn(state, batch)
        loss = _finite(float(loss), name, step + 1)
        wd.log_metrics(step + 1, loss=loss)
        progress.update(step + 1, f"loss {loss:.3f}")
        ckpt.maybe_save(step + 1, {"state": state})
    ckpt.close()
    model = nnx.merge(graphdef, state.params, state.rest)
    save_model(out, model)
    return model


def grpo_phase(config, workdir: Path, init: Llama, tokenizer, tasks, seed: int, *,
               reward_fn=abstraction_reward, stop_after: int | None = None) -> Llama:
    """GRPO from ``init`` with AbstRaL's reward; resumable, each iteration a function of
    ``(seed, iteration)`` only.

    Args:
      reward_fn: ``reward_fn(text, task) -> Rewards`` (default: AbstRaL's).
      stop_after: end (as if interrupted) after this many iterations of this call, keeping
        the checkpoint; for tests of resumption.
    """
    out = workdir / "model"
    if (out / "params.npz").is_file():
        return load_model(out)
    g = config.grpo
    gcfg = GRPOConfig(group_size=g.group_size, temperature=g.temperature,
                      epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, beta=g.beta,
                      reduction=g.reduction, max_new_tokens=g.max_new_tokens).validate()
    opt = optax.adamw(_schedule(g.learning_rate, max(g.iterations, 1), g.warmup_iterations),
                      weight_decay=0.0)
    graphdef, state = init_train_state(init, opt)
    ref_params = state.params
    step_fn = make_grpo_step(graphdef, opt, gcfg)
    scorer = make_scorer(graphdef, g.temperature) if g.beta > 0 else None
    wd = Workdir(workdir)
    ckpt = Checkpointer(workdir / "checkpoints", save_every=config.checkpoint_every)
    restored, start = ckpt.restore_or({"state": state})
    state = restored["state"]
    wd.truncate_metrics(start)
    progress = Progress(max(g.iterations, 1), name=f"abstral.grpo[{seed}]", start_step=start)
    key = jax.random.key(seed * 7919 + 5)
    prompts_all = [abstraction_prompt(t) for t in tasks]
    # One padded length for the whole phase: the update step compiles once.
    length = pad_length(max(len(tokenizer.encode(p)) for p in prompts_all) + g.max_new_tokens
                        + 1)
    sampler = JaxSampler(nnx.merge(graphdef, state.params, state.rest), tokenizer,
                         max_batch=g.prompts_per_iteration * g.group_size)
    done = 0
    for it in range(start, g.iterations):
        k_it = jax.random.fold_in(key, it)
        pick = np.asarray(jax.random.choice(jax.random.fold_in(k_it, 0), len(tasks),
                                            (g.prompts_per_iteration,),
                                            replace=len(tasks) < g.prompts_per_iteration))
        prompts = [prompts_all[i] for i in pick]
        t0 = time.perf_counter()
        sampler.update_weights(nnx.merge(graphdef, state.params, state.rest))  # no recompile
        groups = sample_rollouts(sampler, prompts, jax.random.fold_in(k_it, 1), gcfg)
        t1 = time.perf_counter()
        rewards = [[reward_fn(c.text, tasks[i]) for c in group]
                   for i, group in zip(pick, groups, strict=True)]
        r = np.array([[x.total for x in row] for row in rewards], np.float32)
        batch = rollout_batch(tokenizer, prompts, groups, r, gcfg, length=length)
        if scorer is not None:
            batch = batch._replace(ref_logp=np.asarray(
                scorer(ref_params, state.rest, jnp.asarray(batch.tokens),
                       jnp.asarray(batch.real))))
        t2 = time.perf_counter()
        state, m = step_fn(state, batch)
        loss = _finite(float(m["loss"]), "grpo", it + 1)
        t3 = time.perf_counter()
        flat = [x for row in rewards for x in row]
        metrics = {"loss": loss, "kl": float(m["kl"]), "clip_fraction": float(m["clip_fraction"]),
                   "reward": float(r.mean()), "accuracy": float(np.mean([x.correct for x in flat])),
                   "faithful": float(np.mean([x.is_faithful for x in flat])),
                   "parsed": float(np.mean([x.parsed for x in flat])),
                   "zero_std_groups": float(np.mean(r.std(axis=1) == 0)),
                   "completion_tokens": int(batch.mask.sum()),
                   "sample_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2}
        wd.log_metrics(it + 1, **metrics)
        progress.update(it + 1, f"reward {metrics['reward']:.3f} acc {metrics['accuracy']:.2f}")
        ckpt.maybe_save(it + 1, {"state": state})
        done += 1
        if stop_after is not None and done >= stop_after:
            ckpt.save(it + 1, {"state": state})
            ckpt.close()
            return nnx.merge(graphdef, state.params, state.rest)
    ckpt.close()
    model = nnx.merge(graphdef, state.params, state.rest)
    save_model(out, model)
    return model


# ------------------------------------------------------------------------------ evaluation

def evaluate(model: Llama, tokenizer, method: str, tasks, config, key: jax.Array) -> list[dict]:
    """Greedy answers of ``model`` on ``tasks``; one record per task."""
    abstraction = method != "cot_sft"
    sampler = JaxSampler(model, tokenizer, max_batch=config.eval.batch_size)
    if abstraction:
        prompts = [abstraction_prompt(t) for t in tasks]
        budget = config.eval.max_new_tokens_abs
    else:
        prompts = [cot_example(t.problem)[0] for t in tasks]
        budget = config.eval.max_new_tokens_cot
    texts = []
    for s in range(0, len(prompts), config.eval.batch_size):
        chunk = prompts[s:s + config.eval.batch_size]
        out = sampler.generate(chunk, max_new_tokens=budget, temperature=0.0,
                               key=jax.random.fold_in(key, s))
        texts += [group[0].text for group in out]
    records = []
    for task, text in zip(tasks, texts, strict=True):
        r = abstraction_reward(text, task) if abstraction else cot_reward(text, task.problem.final)
        records.append({"template_id": task.problem.template_id,
                        "variant": task.problem.variant, "correct": bool(r.correct),
                        "faithful": bool(r.is_faithful) if abstraction else None,
                        "parsed": bool(r.parsed), "text": text[:400]})
    return records


def run(config, workdir) -> dict:
    """Runs (or resumes) the whole experiment; writes results.json, plots and report.md."""
    _check(config)
    workdir = Path(workdir)
    wd = Workdir(workdir)
    data = build_datasets(config)
    smollm2 = None
    if config.base == "smollm2":
        from llm_tools import load_smollm2

        smollm2 = load_smollm2(max_seq_len=config.model.max_seq_len)
        tokenizer = smollm2.tokenizer
    else:
        tokenizer = get_tokenizer(config, data, workdir)
    cot_examples = [cot_example(t.problem) for t in data.train_tasks]
    abs_examples = [abstraction_example(t, style=config.abstraction_style)
                    for t in data.train_tasks]
    all_records: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in range(config.seed, config.seed + config.num_seeds):
        sdir = workdir / f"seed_{seed}"
        pre = smollm2.model if smollm2 is not None else \
            pretrain_phase(config, sdir / "pretrain", tokenizer, seed)
        models = {}
        models["cot_sft"] = sft_phase(config, sdir / "sft_cot", pre, tokenizer, cot_examples,
                                      seed, "sft_cot")
        models["abs_sft"] = sft_phase(config, sdir / "sft_abs", pre, tokenizer, abs_examples,
                                      seed, "sft_abs")
        models["abstral"] = grpo_phase(config, sdir / "grpo", models["abs_sft"], tokenizer,
                                       data.train_tasks, seed)
        for method in METHODS:
            path = sdir / f"eval_{method}.json"
            if path.is_file():
                records = json.loads(path.read_text())
            else:
                records = []
                for split, tasks in data.eval_tasks.items():
                    recs = evaluate(models[method], tokenizer, method, tasks, config,
                                    jax.random.key(seed))
                    records += [{**r, "split": split, "seed": seed} for r in recs]
                atomic_write_json(path, records)
            all_records[method] += records
    results = summarize(all_records, variants=EVAL_VARIANTS, n_boot=config.bootstrap,
                        seed=config.seed)
    results["skipped_templates"] = {k: list(v) for k, v in data.skipped.items()}
    results["train_templates"] = [t.id for t in data.train_templates]
    results["held_out_templates"] = [t.id for t in data.held_templates]
    results["train_problems"] = len(data.train_tasks)
    results["eval_problems"] = {k: len(v) for k, v in data.eval_tasks.items()}
    results["params"] = int(sum(x.size for x in jax.tree.leaves(nnx.state(pre, nnx.Param))))
    results["tokenizer_vocab"] = tokenizer.vocab_size
    wd.write_results(results)
    from experiments.abstral.plots import plot_accuracy, plot_grpo

    plots = [plot_accuracy(wd, results), plot_grpo(wd, workdir)]
    wd.write_report(_report(results, plots))
    return results


def _report(results: dict, plots: list) -> str:
    lines = ["# AbstRaL robustness: CoT-SFT vs abstraction-SFT vs AbstRaL (SFT + GRPO)", ""]
    for split in ("train", "held_out"):
        lines += [f"## {split} templates", "", "| method | " +
                  " | ".join(EVAL_VARIANTS) + " | drop | faithful |",
                  "|---" * (len(EVAL_VARIANTS) + 3) + "|"]
        for m in METHODS:
            acc = results["accuracy"][split][m]
            cells = [f"{acc[v]['mean']:.3f} [{acc[v]['lo']:.3f}, {acc[v]['hi']:.3f}]"
                     for v in EVAL_VARIANTS]
            drop = results["drop"][split][m]
            faith = results["faithful"][split].get(m)
            lines.append(f"| {m} | " + " | ".join(cells) +
                         f" | {drop['mean']:.3f} [{drop['lo']:.3f}, {drop['hi']:.3f}] | " +
                         (f"{faith['mean']:.3f}" if faith else "-") + " |")
        lines.append("")
    lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots if p]
    return "\n".join(lines) + "\n"
