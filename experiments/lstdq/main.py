"""Command-line entry of the lstdq experiments; see configs/default.py for the commands."""

from experiments import launch
from experiments.lstdq import run

if __name__ == "__main__":
    launch.main(run.run)
