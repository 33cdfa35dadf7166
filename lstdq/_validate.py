"""Boundary checks shared by the package's public functions (private module).

Shape and rank checks always run (they are static under ``jax.jit``). Value checks
(finiteness, ranges) run only on concrete arrays: inside a trace they are skipped, so
the public functions stay ``jit``/``vmap``-able while a direct call still raises a clear
``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """Whether ``x`` holds values we can inspect (not a tracer)."""
    return not isinstance(x, jax.core.Tracer)


def as_array(fn: str, name: str, x: Any) -> Any:
    """Rejects non-numeric inputs with a ``TypeError`` naming the argument."""
    if isinstance(x, jax.Array | np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}") from e
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def check_ndim(fn: str, name: str, x: Any, ndim: int) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {tuple(x.shape)}")


def _xp(x: Any):
    """``jax.numpy`` for device arrays (reduce on the device, fetch one scalar), else NumPy."""
    return jnp if isinstance(x, jax.Array) else np


def check_finite(fn: str, name: str, x: Any) -> None:
    if not is_concrete(x) or not x.size:
        return
    xp = _xp(x)
    with jax.ensure_compile_time_eval():  # concrete inputs stay concrete inside a trace
        finite = xp.isfinite(x)
        ok = bool(xp.all(finite))
        bad = 0 if ok else int(x.size - int(xp.count_nonzero(finite)))
    if not ok:
        raise ValueError(f"{fn}: {name} contains {bad} non-finite value(s) (NaN or inf)")


def check_range(fn: str, name: str, x: Any, lo: float, hi: float) -> None:
    if is_concrete(x) and x.size:
        xp = _xp(x)
        with jax.ensure_compile_time_eval():
            xmin, xmax = float(xp.min(x)), float(xp.max(x))
        if xmin < lo or xmax > hi:
            raise ValueError(
                f"{fn}: {name} must lie in [{lo}, {hi}], got values in [{xmin:.6g}, {xmax:.6g}]"
            )


def check_gamma(fn: str, gamma: Any) -> float:
    try:
        g = float(gamma)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: gamma must be a float in [0, 1), got {gamma!r}") from e
    if not 0.0 <= g < 1.0:
        raise ValueError(f"{fn}: gamma must be in [0, 1), got {gamma!r}")
    return g


def check_ridge(fn: str, ridge: Any) -> float:
    try:
        r = float(ridge)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: ridge must be a non-negative float, got {ridge!r}") from e
    if not (r >= 0.0 and np.isfinite(r)):
        raise ValueError(f"{fn}: ridge must be a finite float >= 0, got {ridge!r}")
    return r


def check_transitions(
    fn: str, features: Any, rewards: Any, discounts: Any, next_features: Any
) -> tuple[Any, Any, Any, Any]:
    """Validates one batch of transitions ``(phi, r, gamma*(1-done), phi_bar')``."""
    features = as_array(fn, "features", features)
    rewards = as_array(fn, "rewards", rewards)
    discounts = as_array(fn, "discounts", discounts)
    next_features = as_array(fn, "next_features", next_features)
    check_ndim(fn, "features", features, 2)
    check_ndim(fn, "next_features", next_features, 2)
    check_ndim(fn, "rewards", rewards, 1)
    check_ndim(fn, "discounts", discounts, 1)
    n, d = features.shape
    if n == 0:
        raise ValueError(f"{fn}: the dataset is empty (features has shape {tuple(features.shape)})")
    if d == 0:
        raise ValueError(f"{fn}: features has zero columns (shape {tuple(features.shape)})")
    if tuple(next_features.shape) != (n, d):
        raise ValueError(
            f"{fn}: features has shape {tuple(features.shape)} but next_features has "
            f"{tuple(next_features.shape)}"
        )
    for name, arr in (("rewards", rewards), ("discounts", discounts)):
        if arr.shape[0] != n:
            raise ValueError(
                f"{fn}: features has {n} rows but {name} has {arr.shape[0]} (shape "
                f"{tuple(arr.shape)})"
            )
    check_finite(fn, "features", features)
    check_finite(fn, "next_features", next_features)
    check_finite(fn, "rewards", rewards)
    check_finite(fn, "discounts", discounts)
    check_range(fn, "discounts", discounts, 0.0, 1.0)
    return features, rewards, discounts, next_features


def check_weights(fn: str, weights: Any, n: int) -> Any:
    """``weights``: ``(n,)`` finite values ``>= 0`` (row weights; 0 drops a row)."""
    weights = as_array(fn, "weights", weights)
    check_ndim(fn, "weights", weights, 1)
    if weights.shape[0] != n:
        raise ValueError(f"{fn}: features has {n} rows but weights has {weights.shape[0]} "
                         f"(shape {tuple(weights.shape)})")
    check_finite(fn, "weights", weights)
    check_range(fn, "weights", weights, 0.0, float("inf"))
    return weights


def check_on_singular(fn: str, on_singular: Any) -> str:
    if on_singular not in ("raise", "nan", "lstsq"):
        raise ValueError(f"{fn}: on_singular must be 'raise', 'nan' or 'lstsq', got "
                         f"{on_singular!r}")
    return on_singular
