"""Command-line entry of the SoftStep suite (see configs/default.py for the commands)."""

from experiments import launch
from experiments.softstep import run

if __name__ == "__main__":
    launch.main(run.run)
