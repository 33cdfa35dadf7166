"""Toy config used by the harness tests: linear regression by SGD.

    python -m tests.experiments.toy.main --config=tests/experiments/toy/config.py:quick \
        --workdir=/tmp/toy
"""

from experiments.config import tiered


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
