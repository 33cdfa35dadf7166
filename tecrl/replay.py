"""A device-resident replay buffer: a pytree of fixed-size arrays with a write pointer.

Adding and sampling are pure, ``jit``- and ``vmap``-able functions (one buffer per seed is a
leading batch axis under ``vmap``). The buffer is a ring: once ``capacity`` transitions have
been written, new ones overwrite the oldest.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["ReplayBuffer", "Transition", "replay_add", "replay_init", "replay_sample"]


class Transition(NamedTuple):
    """A batch of transitions ``(s, a, r, s', terminated)``; leading axis is the batch."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


class ReplayBuffer(NamedTuple):
    """Ring buffer state.

    Attributes:
      data: a :class:`Transition` of arrays with leading axis ``capacity``.
      ptr: int32 index of the next write.
      size: int32 number of valid transitions (``<= capacity``).
    """

    data: Transition
    ptr: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[-1]


def replay_init(capacity: int, obs_dim: int, act_dim: int, dtype=jnp.float32) -> ReplayBuffer:
    """An empty buffer for ``capacity`` transitions.

    Raises:
      ValueError: if ``capacity``, ``obs_dim`` or ``act_dim`` is not a positive int.
    """
    for name, v in (("capacity", capacity), ("obs_dim", obs_dim), ("act_dim", act_dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"replay_init: {name} must be a positive int, got {v!r}")
    z = lambda *s: jnp.zeros((capacity, *s), dtype)  # noqa: E731
    data = Transition(z(obs_dim), z(act_dim), z(), z(obs_dim), z())
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def replay_add(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Writes ``N`` transitions at ``ptr, ptr + 1, ... (mod capacity)``.

    Args:
      buffer: the buffer.
      batch: a :class:`Transition` with leading axis ``N <= capacity``.

    Returns:
      The new buffer (``ptr <- (ptr + N) mod C``, ``size <- min(size + N, C)``).

    Raises:
      ValueError: if a field's trailing shape differs from the buffer's, or ``N`` differs
        across fields or exceeds the capacity.
    """
    if not isinstance(batch, Transition):
        raise TypeError(f"replay_add: batch must be a Transition, got {type(batch).__name__}")
    cap = buffer.capacity
    n = None
    for name, store, x in zip(Transition._fields, buffer.data, batch, strict=True):
        x = jnp.asarray(x)
        if x.shape[1:] != store.shape[1:]:
            raise ValueError(
                f"replay_add: batch.{name} must have shape [N, *{store.shape[1:]}], "
                f"got {x.shape}"
            )
        if n is None:
            n = x.shape[0]
        elif x.shape[0] != n:
            raise ValueError(f"replay_add: batch.{name} has {x.shape[0]} rows, expected {n}")
    if n > cap:
        raise ValueError(f"replay_add: cannot add {n} transitions to a buffer of capacity {cap}")
    idx = (buffer.ptr + jnp.arange(n, dtype=jnp.int32)) % cap
    data = Transition(*[s.at[idx].set(jnp.asarray(x, s.dtype))
                        for s, x in zip(buffer.data, batch, strict=True)])
    return ReplayBuffer(data, (buffer.ptr + n) % cap, jnp.minimum(buffer.size + n, cap))


def replay_sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Samples ``batch_size`` transitions uniformly (with replacement) from the filled part.

    Under ``jit`` the fill level is traced and cannot be checked here; the training loops
    guarantee ``size >= batch_size`` (``learning_starts >= batch_size``) before sampling.

    Raises:
      ValueError: if ``batch_size`` is not positive, or (outside ``jit``) exceeds the number
        of transitions in the buffer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"replay_sample: batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(buffer.size, jax.core.Tracer):
        size = int(buffer.size)
        if batch_size > size:
            raise ValueError(
                f"replay_sample: batch_size {batch_size} is larger than the filled buffer "
                f"({size} transitions); collect more data first"
            )
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return Transition(*[x[idx] for x in buffer.data])
