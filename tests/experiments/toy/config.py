"""Toy config used by the harness tests: linear regression by SGD.

    python -m tests.experiments.toy.main --config=tests/experiments/toy/config.py:quick \
        --workdir=/tmp/toy
"""

from experiments.config import ConfigError, non_negative, positive, tiered

RULES = {"steps": positive, "learning_rate": positive, "batch_size": positive,
         "checkpoint_every": positive, "model.dim": positive, "seed": non_negative}

# fail_at_step is the tests' crash switch; steps may grow (train further) on a restart.
RESUME_ALLOW = ("fail_at_step", "steps")


def validate(config):
    if config.batch_size > 256:
        raise ConfigError(f"config.batch_size must be <= 256 (the data set size), got "
                          f"{config.batch_size}")


def get_config(variant=None):
    base = {
        "seed": 0,
        "steps": 40,
        "learning_rate": 0.1,
        "batch_size": 16,
        "checkpoint_every": 10,
        "fail_at_step": -1,  # for tests: raise after this many steps (simulates a crash)
        "model": {"dim": 4},
    }
    tiers = {"quick": {}, "standard": {"steps": 200}, "full": {"steps": 2000}}
    return tiered(base, tiers, variant)
