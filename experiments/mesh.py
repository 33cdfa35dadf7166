"""Data-parallel mesh helpers and a guarded multi-host initialisation (docs/design.md, "Scale-out").

A 1-D ``('data',)`` mesh over all devices; batches are sharded on their leading axis with
``NamedSharding(mesh, P('data'))`` and parameters are replicated. Correct for one device
and for N: with one device every sharding is trivial.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

__all__ = [
    "data_mesh",
    "data_sharding",
    "maybe_initialize_distributed",
    "replicated_sharding",
    "shard_batch",
]

_COORDINATOR_ENV = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")


def maybe_initialize_distributed(coordinator_address: str | None = None) -> bool:
    """Calls ``jax.distributed.initialize()`` only when a launcher provides a coordinator.

    A coordinator is provided by an explicit address, by ``JAX_COORDINATOR_ADDRESS`` in the
    environment, or by a cluster JAX detects on its own (SLURM, Open MPI, Kubernetes). On a
    single machine none is present and nothing happens.

    Returns:
      Whether ``jax.distributed.initialize`` was called.
    """
    address = coordinator_address or next(
        (os.environ[k] for k in _COORDINATOR_ENV if os.environ.get(k)), None
    )
    cluster = any(os.environ.get(k) for k in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE"))
    if not address and not cluster:
        return False
    if address:
        jax.distributed.initialize(coordinator_address=address)
    else:
        jax.distributed.initialize()
    return True


def data_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``'data'`` over the first ``num_devices`` devices (all by default)."""
    available = jax.device_count()
    n = available if num_devices is None else int(num_devices)
    if not 1 <= n <= available:
        raise ValueError(f"data_mesh: num_devices must be in [1, {available}], got {num_devices!r}")
    return jax.make_mesh((n,), ("data",), devices=jax.devices()[:n])


def data_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
    """Shards the leading (batch) axis over ``'data'``."""
    return jax.NamedSharding(mesh, jax.P("data"))


def replicated_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
    """Replicates over every device of the mesh (parameters, optimizer state)."""
    return jax.NamedSharding(mesh, jax.P())


def shard_batch(batch: Any, mesh: jax.sharding.Mesh) -> Any:
    """Places a pytree of process-local arrays as global arrays sharded on axis 0.

    On one host this is a ``device_put``; on several, each host passes its own slice and
    ``jax.make_array_from_process_local_data`` assembles the global array.

    Raises:
      ValueError: if a leaf's leading axis is not divisible by the mesh's data size.
    """
    sharding = data_sharding(mesh)
    n = mesh.shape["data"] // jax.process_count()

    def place(path, x):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] % n:
            name = jax.tree_util.keystr(path) or "batch"
            raise ValueError(
                f"shard_batch: {name} has shape {x.shape}; its leading axis must be divisible "
                f"by the {n} local devices of the 'data' mesh axis"
            )
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map_with_path(place, batch)
