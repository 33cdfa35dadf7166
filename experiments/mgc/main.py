"""Command-line entry of the mgc suite; see configs/default.py for the commands."""

from experiments import launch
from experiments.mgc import run

if __name__ == "__main__":
    launch.main(run.run)
