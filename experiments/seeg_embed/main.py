"""Command-line entry of the seeg_embed study (see configs/default.py for the commands)."""

from experiments import launch
from experiments.seeg_embed import run

if __name__ == "__main__":
    launch.main(run.run)
