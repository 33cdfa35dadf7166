"""Boundary checks shared by the package's public functions (private module).

Shape, rank and type checks always run (they are static under ``jax.jit``). Value checks
(finiteness, ranges) run only on concrete arrays: inside a trace they are skipped, so the
public functions stay ``jit``/``vmap``-able while a direct call still raises a clear
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


def as_real_array(fn: str, name: str, x: Any, *, min_ndim: int = 1) -> Any:
    """Returns ``x`` as an array (NumPy or JAX, as given) or raises naming the argument.

    Raises:
      TypeError: if ``x`` is not a real numeric array.
      ValueError: if it has fewer than ``min_ndim`` dimensions.
    """
    if isinstance(x, jax.Array | np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}") from e
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{fn}: {name} must have at least {min_ndim} dimension(s), got "
                         f"shape {tuple(arr.shape)}")
    return arr


def check_finite(fn: str, name: str, x: Any) -> None:
    """Raises ``ValueError`` if a concrete ``x`` holds NaN or infinity (skipped under trace)."""
    if not is_concrete(x) or not x.size:
        return
    xp = jnp if isinstance(x, jax.Array) else np
    with jax.ensure_compile_time_eval():
        finite = xp.isfinite(x)
        ok = bool(xp.all(finite))
        bad = 0 if ok else int(x.size - int(xp.count_nonzero(finite)))
    if not ok:
        raise ValueError(f"{fn}: {name} contains {bad} non-finite value(s) (NaN or inf)")


def check_nonnegative(fn: str, name: str, x: Any) -> None:
    if not is_concrete(x) or not x.size:
        return
    xp = jnp if isinstance(x, jax.Array) else np
    with jax.ensure_compile_time_eval():
        lo = float(xp.min(x))
    if lo < 0:
        raise ValueError(f"{fn}: {name} must be non-negative (a power or magnitude "
                         f"spectrogram), got minimum {lo:g}")


def positive_int(fn: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
    return int(value)


def positive_float(fn: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_band(fn: str, fmin: float, fmax: float, sample_rate: float) -> None:
    """``0 <= fmin < fmax <= sample_rate / 2`` or a ``ValueError`` naming the limit broken."""
    if not (np.isfinite(fmin) and np.isfinite(fmax)) or fmin < 0:
        raise ValueError(f"{fn}: fmin must be a finite frequency >= 0 Hz, got fmin={fmin!r}, "
                         f"fmax={fmax!r}")
    if fmax <= fmin:
        raise ValueError(f"{fn}: fmax must be above fmin, got fmin={fmin} Hz, fmax={fmax} Hz")
    if fmax > sample_rate / 2 + 1e-9:
        raise ValueError(
            f"{fn}: fmax={fmax} Hz is above the Nyquist frequency {sample_rate / 2} Hz of "
            f"sample_rate={sample_rate} Hz; the sample rate must be at least twice a band's "
            "upper edge")
