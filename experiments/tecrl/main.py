"""Command line of the tecrl experiments.

    python -m experiments.tecrl.main \
        --config=experiments/tecrl/configs/dsac_e.py:pendulum_quick --workdir=/tmp/tecrl_dsac_e
"""

from experiments import launch
from experiments.tecrl import train

if __name__ == "__main__":
    launch.main(train.run)
