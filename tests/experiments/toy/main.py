"""Command-line entry of the toy experiment (tests only)."""

from experiments import launch
from tests.experiments.toy import train

if __name__ == "__main__":
    launch.main(lambda config, workdir: train.run(config, workdir))
