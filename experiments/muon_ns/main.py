"""Command-line entry of the muon_ns experiments (see configs/default.py for commands)."""

from experiments import launch
from experiments.muon_ns import run

if __name__ == "__main__":
    launch.main(run.run)
