"""Command-line entry of the E³-Pruner experiments (see configs/*.py for the commands)."""

from experiments import launch


def run(config, workdir):
    """Dispatches on ``config.experiment``: small | smollm2 | speed."""
    if config.experiment == "small":
        from experiments.e3_pruner.small import run as run_small

        return run_small(config, workdir)
    if config.experiment == "smollm2":
        from experiments.e3_pruner.smollm2 import run as run_smollm2

        return run_smollm2(config, workdir)
    if config.experiment == "speed":
        from experiments.e3_pruner.bench import run as run_speed

        return run_speed(config, workdir)
    raise ValueError(f"config.experiment must be small, smollm2 or speed, got "
                     f"{config.experiment!r}")


if __name__ == "__main__":
    launch.main(run)
