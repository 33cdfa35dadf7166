"""A tiny byte-level Llama trained on the Python standard library's own sources.

    python -m experiments.llm_tools.main --config=experiments/llm_tools/configs/lm.py:quick \
        --workdir=/tmp/llm_tools_lm
    python -m experiments.llm_tools.main --config=experiments/llm_tools/configs/lm.py:standard \
        --workdir=/tmp/llm_tools_lm_std --config.optimizer=adamw

Resumes from ``--workdir``. Writes metrics.jsonl, results.json, loss.png, report.md and the
trained model (``model/``, servable with ``python -m llm_tools.serve --model ckpt:<dir>/model``).

``RULES`` and ``validate`` check every value before a run writes anything. A restart in the
same workdir continues the run; it may change only ``RESUME_ALLOW``: the step count (the
learning-rate schedule is then recomputed for the new total), and when to evaluate and
checkpoint.
"""

from experiments.config import ConfigError, non_negative, one_of, positive, tiered

RULES = {
    "seed": non_negative, "steps": positive, "batch_size": positive, "seq_len": positive,
    "learning_rate": positive, "warmup_steps": non_negative, "weight_decay": non_negative,
    "optimizer": one_of("adamw", "sgd"), "eval_every": positive, "eval_batches": positive,
    "checkpoint_every": positive, "max_corpus_bytes": non_negative,
    "model.dim": positive, "model.n_layers": positive, "model.n_heads": positive,
    "model.n_kv_heads": positive, "model.max_seq_len": positive,
}

RESUME_ALLOW = ("steps", "eval_every", "checkpoint_every")


def validate(config) -> None:
    """Checks across keys (``RULES`` check each value on its own)."""
    m = config.model
    if config.seq_len + 1 > m.max_seq_len:
        raise ConfigError(f"config.seq_len + 1 must be <= config.model.max_seq_len "
                          f"({m.max_seq_len}), got {config.seq_len + 1}")
    from llm_tools.tiny import tiny_config

    try:
        tiny_config(**dict(m))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.model: {e}") from e


def get_config(variant=None):
    base = {
        "seed": 0,
        "steps": 60,
        "batch_size": 16,
        "seq_len": 128,
        "learning_rate": 3e-3,
        "warmup_steps": 20,
        "weight_decay": 0.01,
        "optimizer": "adamw",  # adamw | sgd (muon: pass muon_ns.muon in code)
        "eval_every": 20,
        "eval_batches": 4,
        "checkpoint_every": 50,
        "max_corpus_bytes": 0,  # 0 = the whole corpus
        "model": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "max_seq_len": 256},
    }
    tiers = {
        "quick": {},
        "standard": {"steps": 600, "eval_every": 100, "checkpoint_every": 200,
                     "model.dim": 128, "model.n_layers": 4},
        "full": {"steps": 20000, "batch_size": 64, "seq_len": 256, "eval_every": 500,
                 "checkpoint_every": 1000, "model.dim": 512, "model.n_layers": 8,
                 "model.n_heads": 8, "model.n_kv_heads": 4, "model.max_seq_len": 512},
    }
    return tiered(base, tiers, variant)
