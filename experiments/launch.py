"""The shared entry point of every ``experiments/<pkg>/main.py``.

A ``main.py`` is three lines::

    from experiments import launch
    from experiments.muon_ns import run
    if __name__ == "__main__":
        launch.main(run.run)

and is launched as ``python -m experiments.muon_ns.main
--config=experiments/muon_ns/configs/default.py:quick --workdir=runs/muon --config.steps=50``.

Before anything is written, the config is checked completely: the variant, every
``--config.x=...`` key and the type of its value, then the config file's ``RULES`` and
``validate(config)`` (see :mod:`experiments.config`). A bad config stops the run with one
line on stderr naming the key, what was expected and what came, and exit status 2; the
workdir is not created. A restart in a workdir that already holds a run is compared with
that run's ``config.json``: a difference outside the config file's ``RESUME_ALLOW`` is
refused in one line and nothing is touched; an allowed one continues the run and is logged
in ``resumes.jsonl`` (``config.json`` is never rewritten).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.config import (
    ConfigError,
    apply_overrides,
    config_spec,
    load_config,
    parse_override,
    validate_config,
)
from experiments.mesh import maybe_initialize_distributed
from experiments.workdir import Workdir

__all__ = ["check_config_args", "main", "precheck_config_args", "quiet_library_logs"]

EXIT_CONFIG_ERROR = 2


def quiet_library_logs() -> None:
    """Hides libraries' INFO logs (orbax logs every save) unless --verbosity was given."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def _config_args(argv: Sequence[str]) -> tuple[str | None, list[tuple[str, str]]]:
    spec, overrides = None, []
    for arg in argv[1:]:
        if arg.startswith("--config="):
            spec = arg.split("=", 1)[1]
        elif arg.startswith("--config."):
            key, _, value = arg[len("--config."):].partition("=")
            overrides.append((key, value))
    return spec, overrides


def check_config_args(argv: Sequence[str]):
    """Loads and fully validates the config named by ``--config=path:variant`` and overrides.

    Parses each ``--config.x=value`` by the type of field ``x`` (as ``config_flags`` does),
    applies it, and checks the result against the config file's ``RULES`` and ``validate``.

    Returns:
      ``(config, spec)``, or ``(None, None)`` when no ``--config=`` is given.

    Raises:
      ConfigError: for a bad variant, an unknown key, a value of the wrong type or an
        invalid value; FileNotFoundError for a missing config file.
    """
    spec_arg, overrides = _config_args(argv)
    if spec_arg is None:
        return None, None
    path, _, variant = spec_arg.partition(":")
    config = load_config(path, variant or None, validate=False)
    for key, text in overrides:
        apply_overrides(config, {key: parse_override(config, key, text)})
    spec = config_spec(path)
    validate_config(config, spec)
    return config, spec


def precheck_config_args(argv: Sequence[str]) -> str | None:
    """The problem with the ``--config`` arguments in one line, or ``None`` if there is none.

    ``ml_collections`` reports a misspelt key as a bare ``AttributeError`` traceback and absl
    a bad value in two lines; this checks keys, types and values first (see
    :func:`check_config_args`).
    """
    try:
        check_config_args(argv)
    except (ConfigError, FileNotFoundError) as e:
        return f"--config: {e}"
    return None


def _prog() -> str:
    """How the running script was invoked (``python -m experiments.lstdq.main``)."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {main_spec.name}" if main_spec else Path(sys.argv[0]).name


def _fail(message: str) -> None:
    sys.stderr.write(f"{_prog()}: {message}\n")
    sys.exit(EXIT_CONFIG_ERROR)


def _one_line_flags_parser(argv: list[str]) -> list[str]:
    """absl's flag parsing, with any flags error reported as one line (exit status 2)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _fail(str(e))


def main(run_fn: Callable[[Any, Path], Any]) -> None:
    """Defines ``--config``/``--workdir`` and calls ``run_fn(config, workdir)`` under ``app.run``.

    Before calling, it validates the whole config (nothing is written for a bad one),
    initialises multi-host JAX when a coordinator is provided, and records the config in
    the workdir: ``config.json`` for a new run; for a restart, a check against the stored
    config (refused unless every difference is in the config file's ``RESUME_ALLOW``) and a
    line in ``resumes.jsonl``. A :class:`~experiments.config.ConfigError` raised by
    ``run_fn`` itself is also reported in one line.
    """
    config_flag = config_flags.DEFINE_config_file(
        "config", None, "Config file, as path.py:variant (quick|standard|full).",
        lock_config=True,
    )
    workdir_flag = flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")
    flags.mark_flags_as_required(["config", "workdir"])
    def _main(argv: list[str]) -> None:
        if len(argv) > 1:
            _fail(f"unexpected positional arguments: {argv[1:]}")
        quiet_library_logs()
        config = config_flag.value
        workdir = Path(workdir_flag.value)
        path = config_flags.get_config_filename(flags.FLAGS["config"]).partition(":")[0]
        try:
            spec = config_spec(path)
            validate_config(config, spec)
        except (ConfigError, FileNotFoundError) as e:
            _fail(f"--config: {e}")
        maybe_initialize_distributed()
        try:
            Workdir(workdir).write_config(config, resume_allow=spec.resume_allow)
            run_fn(config, workdir)
        except ConfigError as e:
            _fail(str(e))

    problem = precheck_config_args(sys.argv)
    if problem:
        _fail(problem)
    app.run(_main, flags_parser=_one_line_flags_parser)
