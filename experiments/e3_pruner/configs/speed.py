"""Claim 3: prefill and decode tokens/s of a 25%-pruned SmolLM2 vs the dense one, one process.

    python -m experiments.e3_pruner.main --config=experiments/e3_pruner/configs/speed.py:quick \
        --workdir=/tmp/e3_speed
    python -m experiments.e3_pruner.main \
        --config=experiments/e3_pruner/configs/speed.py:standard --workdir=/tmp/e3_speed_std

Writes results.json and report.md. The full tier is sized for a GPU. Nothing is resumed
(the timings are remade), so a restart may change ``repeats``.
"""

import re

from experiments.config import Rule, at_least, in_range, one_of, positive, tiered

RULES = {
    "experiment": one_of("speed"), "batch_size": positive, "prompt_tokens": positive,
    "new_tokens": at_least(2), "repeats": positive,
    "prune_fraction": in_range(0.0, 1.0, closed=False),
    "keep": Rule("comma-separated layer indices or empty",
                 lambda v: re.fullmatch(r"(\d+(,\d+)*)?", v) is not None,
                 lambda cur: "1,x"),
}

RESUME_ALLOW = ("repeats",)


def get_config(variant=None):
    base = {
        "experiment": "speed",
        "batch_size": 1,
        "prompt_tokens": 32,
        "new_tokens": 8,
        "repeats": 2,
        "prune_fraction": 0.25,
        "keep": "",                  # comma-separated layer indices; "" = the first 22 of 30
        "random_weights": False,     # SmolLM2 shapes with random weights (speed is the same)
        "allow_random": False,       # fall back to random weights when the GGUF is absent
    }
    tiers = {
        "quick": {},
        "standard": {"batch_size": 8, "prompt_tokens": 128, "new_tokens": 64, "repeats": 5},
        "full": {"batch_size": 32, "prompt_tokens": 512, "new_tokens": 256, "repeats": 10},
    }
    return tiered(base, tiers, variant)
