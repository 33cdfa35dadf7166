"""Claim 1: prune 25% of a small byte-level Llama's layers by each method, recover, compare.

    python -m experiments.e3_pruner.main --config=experiments/e3_pruner/configs/small.py:quick \
        --workdir=/tmp/e3_small
    python -m experiments.e3_pruner.main \
        --config=experiments/e3_pruner/configs/small.py:standard --workdir=/tmp/e3_small_std

Resumes from ``--workdir`` (dense training checkpoints; every finished selection, evaluation
and recovery). Writes results.json, report.md, ppl_after.png, mask_search.png. A restart may
change only ``seeds`` (more seeds add runs; finished seeds are kept).
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
    "experiment": one_of("small"), "seeds": positive, "max_corpus_bytes": non_negative,
    "prune_fraction": in_range(0.0, 1.0, closed=False), "seq_len": positive,
    "calibration_windows": positive, "valid_windows": positive, "eval_batch": positive,
    "search_steps": positive, "search_batch": positive, "search_lr": positive,
    "t_start": positive, "t_end": positive, "search_objective": one_of("kd", "lm"),
    "random_draws": non_negative,
    "dense.steps": positive, "dense.batch_size": positive, "dense.seq_len": positive,
    "dense.learning_rate": positive, "dense.warmup_steps": non_negative,
    "dense.checkpoint_every": non_negative, "dense.model.dim": positive,
    "dense.model.n_layers": positive, "dense.model.n_heads": positive,
    "dense.model.n_kv_heads": positive, "dense.model.max_seq_len": positive,
    "recovery.steps": positive, "recovery.batch_size": positive,
    "recovery.learning_rate": positive, "recovery.kinds": comma_list("lm", "kd", "mix", "ekd"),
    "recovery.mix_alpha": in_range(0.0, 1.0),
}

RESUME_ALLOW = ("seeds",)


def validate(config) -> None:
    """Checks across keys (``RULES`` check each value on its own)."""
    m = config.dense.model
    for name in ("seq_len", "dense.seq_len"):
        value = config.seq_len if name == "seq_len" else config.dense.seq_len
        if value + 1 > m.max_seq_len:
            raise ConfigError(f"config.{name} + 1 must be <= config.dense.model.max_seq_len "
                              f"({m.max_seq_len}), got {value + 1}")
    if config.search_batch > config.calibration_windows:
        raise ConfigError(f"config.search_batch must be <= config.calibration_windows "
                          f"({config.calibration_windows}), got {config.search_batch}")
    dropped = int(round(config.prune_fraction * m.n_layers))
    if not 0 < dropped < m.n_layers:
        raise ConfigError(f"config.prune_fraction must remove between 1 and "
                          f"{m.n_layers - 1} of the {m.n_layers} layers, got "
                          f"{config.prune_fraction} ({dropped} layers)")
    from llm_tools.tiny import tiny_config

    try:
        tiny_config(**dict(m))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.dense.model: {e}") from e


def get_config(variant=None):
    base = {
        "experiment": "small",
        "seeds": 1,
        "max_corpus_bytes": 0,        # 0 = the whole standard library
        "prune_fraction": 0.25,       # of the layers, rounded
        "seq_len": 64,                # calibration, validation and recovery windows
        "calibration_windows": 8,
        "valid_windows": 16,
        "eval_batch": 16,
        "search_steps": 15,
        "search_batch": 4,
        "search_lr": 0.1,
        "t_start": 1.0,
        "t_end": 0.05,
        "search_objective": "kd",
        "random_draws": 1,
        "exhaustive": True,           # calibration KL of every mask (a reference)
        "dense": {
            "steps": 100, "batch_size": 8, "seq_len": 64, "learning_rate": 3e-3,
            "warmup_steps": 20, "checkpoint_every": 0,  # 0: only at the end
            "model": {"dim": 32, "n_layers": 8, "n_heads": 4, "n_kv_heads": 2,
                      "max_seq_len": 128},
        },
        "recovery": {
            "steps": 6, "batch_size": 4,
            "learning_rate": 3e-4,    # ~10% of the dense peak: repair, not retrain
            "kinds": "lm,kd,ekd",     # applied to every selection
            "e3_mix": True,           # and the fixed 50/50 mix on the E³ mask (ablation)
            "mix_alpha": 0.5,
        },
    }
    tiers = {
        "quick": {"max_corpus_bytes": 2_000_000},
        "standard": {
            "seeds": 3, "seq_len": 128, "calibration_windows": 32, "valid_windows": 64,
            "search_steps": 150, "search_batch": 8, "random_draws": 1,
            "dense.steps": 500, "dense.batch_size": 16, "dense.seq_len": 128,
            "dense.checkpoint_every": 250,
            "dense.model.dim": 64, "dense.model.n_layers": 12, "dense.model.max_seq_len": 256,
            "recovery.steps": 40, "recovery.batch_size": 8,
        },
        "full": {
            "seeds": 5, "seq_len": 256, "calibration_windows": 128, "valid_windows": 256,
            "search_steps": 400, "search_batch": 16, "random_draws": 5,
            "dense.steps": 20000, "dense.batch_size": 64, "dense.seq_len": 256,
            "dense.checkpoint_every": 1000,
            "dense.model.dim": 512, "dense.model.n_layers": 12, "dense.model.n_heads": 8,
            "dense.model.n_kv_heads": 4, "dense.model.max_seq_len": 512,
            "recovery.steps": 1000, "recovery.batch_size": 32,
        },
    }
    return tiered(base, tiers, variant)
