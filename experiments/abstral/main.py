"""Command-line entry of the AbstRaL experiments (see configs/*.py for the commands)."""

from experiments import launch
from experiments.abstral import run

if __name__ == "__main__":
    launch.main(run.run)
