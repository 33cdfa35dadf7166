"""Command-line entry of the CQC experiments.

    python -m experiments.cqc.main --config=experiments/cqc/configs/default.py:quick \
        --workdir=/tmp/cqc_run --config.experiment=complexity
"""

from experiments import launch
from experiments.cqc import run

if __name__ == "__main__":
    launch.main(run.run)
