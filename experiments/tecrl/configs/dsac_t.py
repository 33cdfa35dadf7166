"""dsac_t config. Variants: quick = pendulum_quick, standard = pendulum_standard, <task>_full.

    python -m experiments.tecrl.main --config=experiments/tecrl/configs/dsac_t.py:pendulum_quick \
        --workdir=/tmp/tecrl_dsac_t
"""

from experiments.tecrl.configs.common import RESUME_ALLOW, RULES, make, validate

__all__ = ["RESUME_ALLOW", "RULES", "get_config", "validate"]


def get_config(variant=None):
    return make("dsac_t", variant)
