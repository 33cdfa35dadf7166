"""A thin wrapper over ``orbax.checkpoint.CheckpointManager`` for resumable runs.

Saves any pytree train state (arrays, NamedTuples such as optax states, flax structs,
typed PRNG keys, Python scalars) every ``save_every`` steps under
``<workdir>/checkpoints/<step>/`` and, on restart, restores the latest one so the step
count continues where it stopped.

Pass the run's config and the checkpoints remember it: a restart with a config that differs
in any key outside ``resume_allow`` is refused with a one-line :class:`ResumeError` before
anything is restored (instead of an orbax shape traceback, or silently continuing a
different run). A state whose structure or shapes do not match the stored checkpoint is
reported in one line naming the first mismatching leaves.

Typical loop::

    ckpt = Checkpointer(workdir / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=("steps",))
    state, start = ckpt.restore_or(init_state)
    for step in range(start, total):
        state = train_step(state, ...)
        ckpt.maybe_save(step + 1, state)
    ckpt.save(total, state); ckpt.close()
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from experiments.config import ResumeError, check_resume
from experiments.workdir import atomic_write_json, to_jsonable

__all__ = ["Checkpointer", "ResumeError"]

CONFIG_FILE = "run_config.json"


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode(state: Any) -> Any:
    """Typed PRNG keys are stored as their raw ``uint32`` key data."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _decode(template: Any, restored: Any) -> Any:
    def back(t, r):
        if _is_key(t):
            return jax.random.wrap_key_data(r, impl=jax.random.key_impl(t))
        if isinstance(t, bool):  # Python scalars come back as 0-d arrays
            return bool(r)
        if isinstance(t, int):
            return int(r)
        if isinstance(t, float):
            return float(r)
        return r

    return jax.tree.map(back, template, restored)


def _path_key(path) -> tuple[str, ...]:
    out = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                out.append(str(getattr(k, attr)))
                break
        else:
            out.append(str(k))
    return tuple(out)


def _shapes(tree: Any) -> dict[tuple[str, ...], tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_path_key(p): tuple(getattr(x, "shape", ())) for p, x in leaves}


def _mismatch(template: Any, stored: Any) -> str | None:
    """Names the leaves where ``template`` and the stored tree differ (None if none found)."""
    want, have = _shapes(template), _shapes(stored)
    problems = []
    for key in sorted(set(want) | set(have)):
        name = ".".join(key) or "state"
        if key not in have:
            problems.append(f"{name} is in the state but not in the checkpoint")
        elif key not in want:
            problems.append(f"{name} is in the checkpoint but not in the state")
        elif want[key] != have[key]:
            problems.append(f"{name} has shape {want[key]} in the state but {have[key]} in "
                            "the checkpoint")
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


class Checkpointer:
    """Periodic save and restore-latest of a pytree state.

    Args:
      directory: folder for checkpoints (created if missing; made absolute).
      save_every: save when ``step % save_every == 0`` in :meth:`maybe_save` (> 0).
      max_to_keep: how many recent checkpoints to keep.
      config: the run's config (``ConfigDict`` or mapping), stored beside the checkpoints
        in ``run_config.json``; a restart whose config differs outside ``resume_allow`` is
        refused. ``None`` stores nothing and checks nothing.
      resume_allow: config keys (``fnmatch`` patterns) that may differ on a restart, e.g.
        ``("steps", "eval_every")``.

    Raises:
      ValueError: for a non-positive ``save_every`` or ``max_to_keep``.
      ResumeError: if ``directory`` holds checkpoints of a run with a different config.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        save_every: int,
        max_to_keep: int = 2,
        config: Any = None,
        resume_allow: Iterable[str] = (),
    ):
        if int(save_every) <= 0:
            raise ValueError(f"Checkpointer: save_every must be a positive int, got {save_every!r}")
        if int(max_to_keep) <= 0:
            raise ValueError(f"Checkpointer: max_to_keep must be positive, got {max_to_keep!r}")
        self.directory = Path(directory).absolute()
        self.save_every = int(save_every)
        self.resume_changes: dict[str, list[Any]] = {}
        stored = self.directory / CONFIG_FILE
        if config is not None and stored.exists() and self._has_checkpoints():
            self.resume_changes = check_resume(
                json.loads(stored.read_text(encoding="utf-8")), config, resume_allow,
                where=f"{self.directory} (checkpoints)")
        options = ocp.CheckpointManagerOptions(max_to_keep=int(max_to_keep), create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        if config is not None and (not stored.exists() or self.latest_step is None):
            if hasattr(config, "to_dict"):
                config = config.to_dict()
            if jax.process_index() == 0:
                atomic_write_json(stored, to_jsonable(config, where="config"))

    def _has_checkpoints(self) -> bool:
        return self.directory.is_dir() and any(
            p.name.isdigit() for p in self.directory.iterdir() if p.is_dir())

    @property
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, *, wait: bool = True) -> None:
        """Saves ``state`` as checkpoint ``step`` (no-op if that step is already saved)."""
        step = int(step)
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(_encode(state)), force=True)
        if wait:
            self._manager.wait_until_finished()

    def maybe_save(self, step: int, state: Any) -> bool:
        """Saves when ``step`` is a multiple of ``save_every``; returns whether it saved."""
        if int(step) % self.save_every:
            return False
        self.save(step, state)
        return True

    def restore(self, template: Any, step: int | None = None) -> Any:
        """Restores checkpoint ``step`` (latest by default) into the structure of ``template``.

        Raises:
          FileNotFoundError: if there is no checkpoint to restore.
          ValueError: if the checkpoint's tree structure or shapes differ from
            ``template``'s (one line naming the first differing leaves).
        """
        step = self.latest_step if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"Checkpointer: no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _encode(template))

        def unfit(reason: str) -> ValueError:
            return ValueError(
                f"Checkpointer: checkpoint {step} in {self.directory} does not fit the state "
                f"being restored: {reason}; was the run started with a different model or "
                "config?")

        # Compare structure and shapes with the stored metadata first: orbax would otherwise
        # start reading arrays it then cannot place, and explain it in a long traceback.
        found = self._mismatch_with(step, abstract)
        if found:
            raise unfit(found)
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, TypeError) as e:
            raise unfit(str(e).strip().splitlines()[0]) from e
        return _decode(template, restored)

    def _mismatch_with(self, step: int, abstract: Any) -> str | None:
        try:
            meta = ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / "default")
            return _mismatch(abstract, meta.tree)
        except Exception:  # noqa: BLE001 - best effort; orbax's own check still runs
            return None

    def restore_or(self, init_state: Any) -> tuple[Any, int]:
        """Returns ``(latest checkpoint, its step)`` or ``(init_state, 0)`` when there is none."""
        if self.latest_step is None:
            return init_state, 0
        step = self.latest_step
        return self.restore(init_state, step), step

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
