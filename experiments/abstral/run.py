"""Dispatches a config to its experiment: ``robustness`` (train.py) or ``zero_shot``."""

from __future__ import annotations


def run(config, workdir):
    if config.experiment == "robustness":
        from experiments.abstral.train import run as robustness

        return robustness(config, workdir)
    if config.experiment == "zero_shot":
        from experiments.abstral.zero_shot import run as zero_shot

        return zero_shot(config, workdir)
    from experiments.config import ConfigError

    raise ConfigError(f"config.experiment must be 'robustness' or 'zero_shot', got "
                      f"{config.experiment!r}")
