"""Input validation shared by the public functions of :mod:`cqc`.

Every check raises ``ValueError`` or ``TypeError`` whose message names the caller, the
argument, what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "as_covariates",
    "as_finite_vector",
    "as_treatment",
    "check_clip",
    "check_lengths",
    "check_positive_int",
]


def _as_float_array(where: str, name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:  # pragma: no cover - numpy raises many types here
        raise TypeError(f"{where}: {name} must be array-like, got {type(value).__name__}") from e
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def as_finite_vector(where: str, name: str, value: Any) -> np.ndarray:
    """Returns ``value`` as a finite 1-D float array; raises naming ``name`` otherwise."""
    arr = _as_float_array(where, name, value)
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: {name} is empty; expected at least one value")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{where}: {name} has {int(bad.sum())} NaN/inf value(s) (first at index "
            f"{int(np.argmax(bad))}); expected finite numbers"
        )
    return arr


def as_covariates(where: str, name: str, value: Any, *, num_features: int | None = None):
    """Returns covariates as a finite ``(n, d)`` float array (1-D input becomes ``(n, 1)``)."""
    arr = _as_float_array(where, name, value)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{where}: {name} must be 2-D (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{where}: {name} is empty, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise ValueError(
            f"{where}: {name} has {int(bad.sum())} NaN/inf value(s) (first in row {row}); "
            "expected finite numbers"
        )
    if num_features is not None and arr.shape[1] != num_features:
        raise ValueError(
            f"{where}: {name} has {arr.shape[1]} column(s) but the estimator was fit with "
            f"{num_features}"
        )
    return arr


def as_treatment(where: str, name: str, value: Any) -> np.ndarray:
    """Returns a 0/1 treatment vector as float; raises if any value is not 0 or 1."""
    arr = as_finite_vector(where, name, value)
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        vals = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{where}: {name} must contain only 0 and 1, got also {vals}")
    return arr


def check_lengths(where: str, **arrays: np.ndarray) -> int:
    """Checks all arrays have the same first dimension; returns it."""
    sizes = {k: int(np.shape(v)[0]) for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{k} has {v}" for k, v in sizes.items())
        raise ValueError(f"{where}: mismatched lengths: {desc}")
    return next(iter(sizes.values()))


def check_clip(where: str, clip: Any) -> tuple[float, float]:
    """Checks propensity clip bounds ``(lo, hi)`` with ``0 < lo < hi < 1``."""
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: clip must be a pair (lo, hi) of floats, got {clip!r}") from e
    if not (0.0 < lo < hi < 1.0):
        raise ValueError(f"{where}: clip bounds must satisfy 0 < lo < hi < 1, got ({lo}, {hi})")
    return lo, hi


def check_positive_int(where: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """Checks ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return int(value)
