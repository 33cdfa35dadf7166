"""AbstRaL robustness on GSM-Symbolic: CoT-SFT vs abstraction-SFT vs AbstRaL (SFT + GRPO).

    python -m llm_tools.fetch gsm_symbolic
    python -m experiments.abstral.main --config=experiments/abstral/configs/robustness.py:quick \
        --workdir=/tmp/abstral_quick
    python -m experiments.abstral.main \
        --config=experiments/abstral/configs/robustness.py:standard --workdir=/tmp/abstral_std

Resumes from ``--workdir``. Writes tokenizer.json, seed_<s>/{pretrain,sft_cot,sft_abs,grpo}/
(models, checkpoints, metrics), seed_<s>/eval_<method>.json, results.json, accuracy.png,
grpo.png and report.md. The ``full`` tier fine-tunes SmolLM2-135M-Instruct instead of the small
model (GPU; needs ``python -m llm_tools.fetch smollm2``).
"""

from experiments.config import ConfigError, in_range, non_negative, one_of, positive, tiered

RULES = {
    "experiment": one_of("robustness"), "base": one_of("tiny", "smollm2"),
    "seed": non_negative, "num_seeds": positive, "data_seed": non_negative,
    "split_seed": non_negative, "held_out": in_range(0.05, 0.95),
    "max_templates": non_negative, "train_instances": non_negative, "eval_instances": positive,
    "eval_probes": positive, "abstraction_style": one_of("equations", "prose"),
    "tokenizer.vocab_size": positive, "tokenizer.stdlib_files": positive,
    "model.dim": positive, "model.n_layers": positive, "model.n_heads": positive,
    "model.n_kv_heads": positive, "model.max_seq_len": positive,
    "pretrain.steps": non_negative, "pretrain.batch_size": positive,
    "pretrain.seq_len": positive, "pretrain.learning_rate": positive,
    "pretrain.max_files": positive, "sft.steps": positive, "sft.batch_size": positive,
    "sft.learning_rate": positive, "sft.warmup_steps": non_negative,
    "grpo.iterations": non_negative, "grpo.prompts_per_iteration": positive,
    "grpo.group_size": positive, "grpo.temperature": positive, "grpo.learning_rate": positive,
    "grpo.warmup_iterations": non_negative, "grpo.epsilon_low": non_negative,
    "grpo.epsilon_high": non_negative, "grpo.beta": non_negative,
    "grpo.reduction": one_of("grpo", "bnpo", "dr_grpo"), "grpo.max_new_tokens": positive,
    "grpo.n_probes": positive, "eval.max_new_tokens_cot": positive,
    "eval.max_new_tokens_abs": positive, "eval.batch_size": positive,
    "checkpoint_every": positive, "bootstrap": positive,
}
RESUME_ALLOW = ("checkpoint_every", "bootstrap", "eval.batch_size")


def validate(config):
    if config.grpo.group_size < 2:
        raise ConfigError(f"config.grpo.group_size must be >= 2 (GRPO compares completions of "
                          f"one prompt), got {config.grpo.group_size}")
    if config.model.n_heads % config.model.n_kv_heads:
        raise ConfigError(f"config.model.n_heads ({config.model.n_heads}) must be a multiple "
                          f"of config.model.n_kv_heads ({config.model.n_kv_heads})")


def get_config(variant=None):
    base = {
        "experiment": "robustness",
        "base": "tiny",  # tiny | smollm2
        "seed": 0,
        "num_seeds": 1,
        "data_seed": 0,
        "split_seed": 0,
        "held_out": 0.3,
        "max_templates": 6,  # 0 = all; else this many training templates (half as many held out)
        "train_instances": 2,
        "eval_instances": 1,
        "eval_probes": 2,
        "abstraction_style": "equations",
        "tokenizer": {"vocab_size": 512, "stdlib_files": 5},
        "model": {"dim": 32, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "max_seq_len": 640},
        "pretrain": {"steps": 10, "batch_size": 8, "seq_len": 64, "learning_rate": 3e-3,
                     "max_files": 5},
        "sft": {"steps": 30, "batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 5},
        "grpo": {"iterations": 3, "prompts_per_iteration": 4, "group_size": 4,
                 "temperature": 1.0, "learning_rate": 1e-4, "warmup_iterations": 1,
                 "epsilon_low": 0.2, "epsilon_high": 0.28, "beta": 0.0, "reduction": "grpo",
                 "max_new_tokens": 48, "n_probes": 2},
        "eval": {"max_new_tokens_cot": 64, "max_new_tokens_abs": 48, "batch_size": 32},
        "checkpoint_every": 50,
        "bootstrap": 1000,
    }
    tiers = {
        "quick": {},
        "standard": {
            "max_templates": 0, "train_instances": 8, "eval_instances": 1, "eval_probes": 3,
            "num_seeds": 2, "tokenizer.vocab_size": 2048, "tokenizer.stdlib_files": 60,
            "model.dim": 128, "model.n_layers": 3, "model.n_heads": 4, "model.n_kv_heads": 2,
            "pretrain.steps": 300, "pretrain.batch_size": 16, "pretrain.seq_len": 128,
            "pretrain.max_files": 60, "sft.steps": 300, "sft.batch_size": 16,
            "sft.learning_rate": 1e-3, "sft.warmup_steps": 30, "grpo.iterations": 40,
            "grpo.prompts_per_iteration": 8, "grpo.group_size": 8, "grpo.learning_rate": 5e-5,
            "grpo.warmup_iterations": 5, "grpo.max_new_tokens": 112, "grpo.n_probes": 3,
            "eval.max_new_tokens_cot": 320, "eval.max_new_tokens_abs": 112,
            "eval.batch_size": 64, "checkpoint_every": 20, "bootstrap": 2000,
        },
        "full": {
            "base": "smollm2", "max_templates": 0, "train_instances": 30, "eval_instances": 4,
            "eval_probes": 4, "num_seeds": 3, "model.max_seq_len": 1024, "pretrain.steps": 0,
            "sft.steps": 2000, "sft.batch_size": 32, "sft.learning_rate": 2e-5,
            "sft.warmup_steps": 100, "grpo.iterations": 500, "grpo.prompts_per_iteration": 32,
            "grpo.group_size": 8, "grpo.learning_rate": 1e-6, "grpo.warmup_iterations": 20,
            "grpo.beta": 0.04, "grpo.max_new_tokens": 256, "grpo.n_probes": 4,
            "eval.max_new_tokens_cot": 512, "eval.max_new_tokens_abs": 256,
            "eval.batch_size": 64, "checkpoint_every": 50, "bootstrap": 5000,
        },
    }
    return tiered(base, tiers, variant)
