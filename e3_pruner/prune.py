"""Turning a layer choice into a smaller model, and the gates that simulate it.

A choice of layers is a strictly increasing list ``keep`` of the layer indices that stay. The
gated model with ``g_l = 1[l ∈ keep]`` computes exactly what the pruned model
``drop_layers(model, keep)`` computes (each layer's residual branches are multiplied by its
gate), so methods search with gates on the full model and then remove layers physically.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from llm_tools import Llama, drop_layers

__all__ = ["check_keep", "gates_from_keep", "keep_from_drop", "prune"]


def check_keep(who: str, keep, num_layers: int) -> np.ndarray:
    """``keep`` as a sorted int array of distinct indices in ``[0, L)``, ``0 < len < L``."""
    arr = np.asarray(keep)
    if arr.dtype == bool:
        if arr.shape != (num_layers,):
            raise ValueError(f"{who}: a bool keep mask must have shape ({num_layers},), got "
                             f"{arr.shape}")
        arr = np.flatnonzero(arr)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{who}: keep must be a 1-D list of layer indices, got {keep!r}")
    bad = [int(i) for i in arr if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"{who}: the model has {num_layers} layers (indices 0..{num_layers - 1}) "
                         f"and no layer {bad[0]}")
    if len(set(arr.tolist())) != arr.size:
        raise ValueError(f"{who}: keep has repeated layers: {arr.tolist()}")
    if not 0 < arr.size < num_layers:
        raise ValueError(f"{who}: keep must hold between 1 and {num_layers - 1} of the "
                         f"{num_layers} layers, got {arr.size}")
    return np.sort(arr).astype(np.int64)


def keep_from_drop(num_layers: int, drop: Sequence[int]) -> np.ndarray:
    """The complement of ``drop`` in ``range(num_layers)``.

    Raises:
      ValueError: if a dropped index is not a layer of the model, is repeated, or if nothing
        (or everything) would be dropped.
    """
    drop = np.asarray(drop)
    if drop.ndim != 1 or (drop.size and not np.issubdtype(drop.dtype, np.integer)):
        raise ValueError(f"keep_from_drop: drop must be a 1-D list of layer indices, got "
                         f"{drop.tolist()!r}")
    bad = [int(i) for i in drop if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"keep_from_drop: the model has {num_layers} layers (indices "
                         f"0..{num_layers - 1}); cannot drop layer {bad[0]}")
    if len(set(drop.tolist())) != drop.size:
        raise ValueError(f"keep_from_drop: drop has repeated layers: {drop.tolist()}")
    keep = np.setdiff1d(np.arange(num_layers), drop)
    return check_keep("keep_from_drop", keep, num_layers)


def gates_from_keep(keep, num_layers: int):
    """float32 ``[L]`` gates: 1 on kept layers, 0 on removed ones."""
    keep = check_keep("gates_from_keep", keep, num_layers)
    return jnp.zeros((num_layers,), jnp.float32).at[jnp.asarray(keep)].set(1.0)


def prune(model: Llama, keep=None, *, drop=None) -> Llama:
    """A smaller model holding only the layers in ``keep`` (or all but ``drop``).

    The result is an ordinary :class:`llm_tools.Llama` with ``n_layers = len(keep)``: it
    saves and loads with ``llm_tools.save_model``/``load_model`` and runs through
    ``JaxSampler`` and the server. Its outputs equal the original's with the gates of the
    removed layers set to 0.

    Args:
      model: the dense model (not modified).
      keep: the layer indices to keep (any order; sorted here), or a bool mask ``[L]``.
      drop: alternatively, the layer indices to remove.

    Raises:
      ValueError: if neither or both of ``keep``/``drop`` are given, or an index is not a
        layer of the model, is repeated, or would leave no layer (or remove none).
    """
    if not isinstance(model, Llama):
        raise TypeError(f"prune: model must be an llm_tools.Llama, got {type(model).__name__}")
    L = model.config.n_layers
    if (keep is None) == (drop is None):
        raise ValueError("prune: pass exactly one of keep= or drop=")
    keep = keep_from_drop(L, drop) if drop is not None else check_keep("prune", keep, L)
    return drop_layers(model, keep)
