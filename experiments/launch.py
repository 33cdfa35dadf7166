"""The shared entry point of every ``experiments/<pkg>/main.py``.

A ``main.py`` is three lines::

    from experiments import launch
    from experiments.muon_ns import train
    if __name__ == "__main__":
        launch.main(train.run)

and is launched as ``python -m experiments.muon_ns.main
--config=experiments/muon_ns/configs/default.py:quick --workdir=runs/muon --config.steps=50``.
The config file is loaded with ``config_flags.DEFINE_config_file(lock_config=True)``, so a
misspelt override (``--config.stpes=5``) is a flags error naming the key, and a value of
the wrong type is rejected by ``ml_collections``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.config import ConfigError, load_config, resolve_key
from experiments.mesh import maybe_initialize_distributed
from experiments.workdir import Workdir

__all__ = ["main", "precheck_config_args", "quiet_library_logs"]


def quiet_library_logs() -> None:
    """Hides libraries' INFO logs (orbax logs every save) unless --verbosity was given."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def precheck_config_args(argv: Sequence[str]) -> str | None:
    """Checks ``--config=path:variant`` and the keys of ``--config.x=...`` before absl does.

    ``ml_collections`` reports a misspelt key as a bare ``AttributeError`` traceback; this
    gives one line instead, naming the key and listing the valid ones.

    Returns:
      ``None`` if the arguments look right, else the error message.
    """
    spec, keys = None, []
    for arg in argv[1:]:
        if arg.startswith("--config="):
            spec = arg.split("=", 1)[1]
        elif arg.startswith("--config."):
            keys.append(arg[len("--config."):].split("=", 1)[0])
    if spec is None:
        return None  # absl reports the missing required flag itself
    path, _, variant = spec.partition(":")
    try:
        config = load_config(path, variant or None)
        for key in keys:
            resolve_key(config, key)
    except (ConfigError, FileNotFoundError) as e:
        return f"--config: {e}"
    return None


def main(run_fn: Callable[[Any, Path], Any]) -> None:
    """Defines ``--config``/``--workdir`` and calls ``run_fn(config, workdir)`` under ``app.run``.

    Before calling, it initialises multi-host JAX when a coordinator is provided and writes
    ``config.json`` into the workdir (so every run records exactly what it ran).
    """
    config_flag = config_flags.DEFINE_config_file(
        "config", None, "Config file, as path.py:variant (quick|standard|full).",
        lock_config=True,
    )
    workdir_flag = flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")
    flags.mark_flags_as_required(["config", "workdir"])

    def _main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
        quiet_library_logs()
        maybe_initialize_distributed()
        config = config_flag.value
        workdir = Path(workdir_flag.value)
        Workdir(workdir).write_config(config)
        run_fn(config, workdir)

    problem = precheck_config_args(sys.argv)
    if problem:
        sys.exit(f"{Path(sys.argv[0]).name}: {problem}")
    app.run(_main)
