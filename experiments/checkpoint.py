"""A thin wrapper over ``orbax.checkpoint.CheckpointManager`` for resumable runs.

Saves any pytree train state (arrays, NamedTuples such as optax states, flax structs,
typed PRNG keys, Python scalars) every ``save_every`` steps under
``<workdir>/checkpoints/<step>/`` and, on restart, restores the latest one so the step
count continues where it stopped.

Typical loop::

    ckpt = Checkpointer(workdir / "checkpoints", save_every=config.checkpoint_every)
    state, start = ckpt.restore_or(init_state)
    for step in range(start, total):
        state = train_step(state, ...)
        ckpt.maybe_save(step + 1, state)
    ckpt.save(total, state); ckpt.close()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer"]


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


class Checkpointer:
    """Periodic save and restore-latest of a pytree state.

    Args:
      directory: folder for checkpoints (created if missing; made absolute).
      save_every: save when ``step % save_every == 0`` in :meth:`maybe_save` (> 0).
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(self, directory: str | os.PathLike, *, save_every: int, max_to_keep: int = 2):
        if int(save_every) <= 0:
            raise ValueError(f"Checkpointer: save_every must be a positive int, got {save_every!r}")
        if int(max_to_keep) <= 0:
            raise ValueError(f"Checkpointer: max_to_keep must be positive, got {max_to_keep!r}")
        self.directory = Path(directory).absolute()
        self.save_every = int(save_every)
        options = ocp.CheckpointManagerOptions(max_to_keep=int(max_to_keep), create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

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
        """
        step = self.latest_step if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"Checkpointer: no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _encode(template))
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return _decode(template, restored)

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
