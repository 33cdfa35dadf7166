"""Command-line entry of the thought_branches experiments; see configs/default.py."""

from experiments import launch
from experiments.thought_branches import run

if __name__ == "__main__":
    launch.main(run.run)
