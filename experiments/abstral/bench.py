"""GRPO iteration benchmark: sampling, scoring (AbstRaL's reward) and update, timed apart.

    python -m experiments.abstral.bench --workdir=/tmp/abstral_bench
    python -m experiments.abstral.bench --model=smollm2 --workdir=/tmp/abstral_bench_smol
    pip install -e ".[bench]" && python -m experiments.abstral.bench --trl --workdir=/tmp/b

One iteration = ``prompts`` abstract questions x ``group_size`` completions of at most
``max_new_tokens`` sampled through :class:`llm_tools.JaxSampler` (shared-prefix prefill),
rewarded by :func:`llm_tools.abstral.abstraction_reward`, then one GRPO step
(:func:`llm_tools.abstral.training.make_grpo_step`). Reported per phase: median seconds and
tokens/s (sampled tokens; completions scored; prompt + completion tokens updated). With
``--trl`` the same architecture and size (a randomly initialised ``transformers``
``LlamaForCausalLM`` of the same config; SmolLM2 from the same GGUF), group size, lengths and
reward go through TRL's ``GRPOTrainer`` in the same process, alternating with ours, and the
ratio TRL / ours of the median iteration time is reported (target >= 1).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import jax
import numpy as np
import optax
from absl import app, flags
from flax import nnx

from experiments.workdir import Workdir
from llm_tools import JaxSampler, Llama, init_train_state, tiny_config
from llm_tools.abstral import abstraction_reward, make_task, perturb
from llm_tools.abstral.training import (
    GRPOConfig,
    abstraction_prompt,
    make_grpo_step,
    pad_length,
    rollout_batch,
    sample_rollouts,
)
from llm_tools.gsm_symbolic import load_templates

_MODEL = flags.DEFINE_enum("model", "tiny", ["tiny", "smollm2"], "Policy model.")
_PROMPTS = flags.DEFINE_integer("prompts", 8, "Prompts per iteration.")
_GROUP = flags.DEFINE_integer("group_size", 8, "Completions per prompt.")
_NEW = flags.DEFINE_integer("max_new_tokens", 96, "Completion budget.")
_ITERS = flags.DEFINE_integer("iterations", 3, "Timed iterations per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Alternating repeats (ours, TRL, ours, ...).")
_TRL = flags.DEFINE_bool("trl", False, "Also time TRL's GRPOTrainer (needs the bench extra).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)


def _policy(kind: str):
    if kind == "smollm2":
        from llm_tools import load_smollm2

        pre = load_smollm2(max_seq_len=1024)
        return pre.model, pre.tokenizer
    from llm_tools import ByteTokenizer

    cfg = tiny_config(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, max_seq_len=1024)
    return Llama(cfg, rngs=nnx.Rngs(0)), ByteTokenizer()


def _tasks(n: int):
    templates = load_templates()
    return [make_task(t, perturb(t, "original", jax.random.key(t.id)), jax.random.key(1),
                      n_probes=2) for t in templates[:n]]


def time_ours(model, tokenizer, tasks, cfg: GRPOConfig, iterations: int) -> list[dict]:
    opt = optax.adamw(1e-5)
    graphdef, state = init_train_state(model, opt)
    step = make_grpo_step(graphdef, opt, cfg)
    sampler = JaxSampler(model, tokenizer, max_batch=len(tasks) * cfg.group_size)
    prompts = [abstraction_prompt(t) for t in tasks]
    length = pad_length(max(len(tokenizer.encode(p)) for p in prompts) + cfg.max_new_tokens + 1)
    rows = []
    for it in range(iterations + 1):  # the first iteration compiles: not reported
        t0 = time.perf_counter()
        sampler.update_weights(nnx.merge(graphdef, state.params, state.rest))
        groups = sample_rollouts(sampler, prompts, jax.random.key(it), cfg)
        t1 = time.perf_counter()
        r = np.array([[abstraction_reward(c.text, task).total for c in g]
                      for task, g in zip(tasks, groups, strict=True)], np.float32)
        batch = rollout_batch(tokenizer, prompts, groups, r, cfg, length=length)
        t2 = time.perf_counter()
        state, m = step(state, batch)
        float(m["loss"])
        t3 = time.perf_counter()
        sampled = sum(len(c.token_ids) for g in groups for c in g)
        if it:
            rows.append({"sample_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2,
                         "total_s": t3 - t0, "sampled_tokens": sampled,
                         "completions": len(prompts) * cfg.group_size,
                         "update_tokens": int(batch.real.sum())})
    return rows


def time_trl(model_kind: str, jax_model, tokenizer, tasks, cfg: GRPOConfig,
             iterations: int) -> float:
    """Median seconds per GRPOTrainer step (one generation + reward + update round)."""
    import torch
    import transformers
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    torch.set_num_threads(2)
    if model_kind == "smollm2":
        from llm_tools.fetch import smollm2_path

        path = smollm2_path()
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32)
        hf_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent),
                                                            gguf_file=path.name)
    else:
        c = jax_model.config
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=c.hidden_dim,
            num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
            num_key_value_heads=c.n_kv_heads, max_position_embeddings=c.max_seq_len,
            tie_word_embeddings=c.tie_embeddings, rope_theta=c.rope_base))
        hf_tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=_byte_tokenizers_backend(), eos_token="<eos>", pad_token="<pad>")
    by_prompt = {abstraction_prompt(t): t for t in tasks}

    def reward(prompts, completions, **_):
        return [abstraction_reward(c, by_prompt[p]).total
                for p, c in zip(prompts, completions, strict=True)]

    data = Dataset.from_dict({"prompt": list(by_prompt) * (iterations + 2)})
    args = TRLConfig(output_dir="/tmp/trl_bench", num_generations=cfg.group_size,
                     per_device_train_batch_size=len(tasks) * cfg.group_size,
                     max_completion_length=cfg.max_new_tokens, max_steps=iterations + 1,
                     learning_rate=1e-5, logging_steps=1, report_to=[], use_cpu=True,
                     temperature=cfg.temperature, beta=cfg.beta, save_strategy="no")
    times: list[float] = []

    class Timer(transformers.TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    trainer = GRPOTrainer(model=hf, reward_funcs=reward, args=args, train_dataset=data,
                          processing_class=hf_tok, callbacks=[Timer()])
    trainer.train()
    return statistics.median(times[1:])  # the first step warms up


def _byte_tokenizers_backend():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {f"<0x{i:02X}>": i for i in range(256)}
    vocab.update({"<bos>": 256, "<eos>": 257, "<pad>": 258})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.ByteFallback()
    return tok


def main(argv):
    del argv
    wd = Workdir(Path(_WORKDIR.value))
    model, tokenizer = _policy(_MODEL.value)
    tasks = _tasks(_PROMPTS.value)
    cfg = GRPOConfig(group_size=_GROUP.value, max_new_tokens=_NEW.value).validate()
    ours, trl = [], []
    for _ in range(_REPEATS.value):
        ours += time_ours(model, tokenizer, tasks, cfg, _ITERS.value)
        if _TRL.value:
            trl.append(time_trl(_MODEL.value, model, tokenizer, tasks, cfg, _ITERS.value))
    med = {k: statistics.median(r[k] for r in ours) for k in ours[0]}
    results = {"model": _MODEL.value, "prompts": _PROMPTS.value, "group_size": _GROUP.value,
               "max_new_tokens": _NEW.value, "iterations_timed": len(ours),
               **{f"median_{k}": v for k, v in med.items()},
               "sample_tokens_per_s": med["sampled_tokens"] / med["sample_s"],
               "score_completions_per_s": med["completions"] / med["score_s"],
               "update_tokens_per_s": med["update_tokens"] / med["update_s"]}
    if trl:
        results["trl_median_step_s"] = statistics.median(trl)
        results["trl_over_ours"] = results["trl_median_step_s"] / med["total_s"]
    wd.write_results(results)
    for k, v in results.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    app.run(main)
