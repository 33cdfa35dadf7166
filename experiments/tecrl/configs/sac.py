"""sac config. Variants: quick = pendulum_quick, standard = pendulum_standard, <task>_full.

    python -m experiments.tecrl.main --config=experiments/tecrl/configs/sac.py:pendulum_quick \
        --workdir=/tmp/tecrl_sac
"""

from experiments.tecrl.configs.common import RESUME_ALLOW, RULES, make, validate

__all__ = ["RESUME_ALLOW", "RULES", "get_config", "validate"]


def get_config(variant=None):
    return make("sac", variant)
