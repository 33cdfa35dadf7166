"""Command-line entry of the llm_tools LM training run (see configs/lm.py for the commands)."""

from experiments import launch
from experiments.llm_tools import train

if __name__ == "__main__":
    launch.main(train.run)
