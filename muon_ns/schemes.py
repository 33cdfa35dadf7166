"""Newton-Schulz coefficient schemes as data, and the theory check they must pass.

A Newton-Schulz (NS) step with coefficients ``(a_0, ..., a_d)`` (in powers of ``X X^T``) is

    X <- p(X X^T) X,   p(lambda) = a_0 + a_1 lambda + ... + a_d lambda^d.

On each singular value sigma of X it acts as ``sigma <- p(sigma^2) sigma``. Writing
``delta = 1 - sigma^2`` for the residual, one step maps delta to

    phi(delta) = 1 - (1 - delta) p(1 - delta)^2,

the *residual polynomial* of the scheme. The paper's Taylor family truncates
``lambda^{-1/2} = sum_s c_s (1 - lambda)^s`` with ``c_s = (2s)! / (4^s (s!)^2)`` after
``s = kappa``; its residual map satisfies ``0 <= phi_kappa(delta) <= delta^{kappa+1}`` on
[0, 1], which gives the doubly exponential bound ``delta_q <= delta_0^{(kappa+1)^q}``.

References:
  Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
  Amsel et al., "The Polar Express: Optimal Matrix Sign Methods and Their Application to
  the Muon Algorithm", arXiv 2505.16932, 2025 (the ``polar_express`` table).
  Jordan, "modded-nanogpt", 2024 (the ``jordan`` quintic).
  Ahn et al., "Dion: Distributed Orthonormalized Updates", arXiv 2504.05295 (``dion``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "SCHEMES",
    "TABLE_MODES",
    "check_steps",
    "coefficient_table",
    "convergence_order",
    "resolve_coeffs",
    "residual_polynomial",
    "row_index",
    "scheme_order",
    "scheme_satisfies_theory",
    "taylor_coeffs",
]

_JORDAN = (3.4445, -4.7750, 2.0315)
_DION = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
# Amsel et al. 2025, Algorithm 1 (degree 5, l = 1e-3): the raw table, then the 1.01 safety
# factor on every row but the last (which repeats for any further steps).
_PE_RAW = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_POLAR_EXPRESS = tuple((a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in _PE_RAW[:-1]) + (
    _PE_RAW[-1],
)
_MAX_TAYLOR = 8
_ALIASES = {"standard": "jordan"}


def _taylor_exact(kappa: int) -> tuple[Fraction, ...]:
    """Exact coefficients (in powers of lambda) of sum_{s<=kappa} c_s (1 - lambda)^s."""
    out = [Fraction(0)] * (kappa + 1)
    for s in range(kappa + 1):
        c_s = Fraction(math.factorial(2 * s), 4**s * math.factorial(s) ** 2)
        for j in range(s + 1):
            out[j] += c_s * math.comb(s, j) * (-1) ** j
    return tuple(out)


def taylor_coeffs(kappa: int) -> tuple[float, ...]:
    """Coefficients of the paper's degree-kappa Taylor NS polynomial, in powers of X X^T.

    p_kappa(lambda) = sum_{s=0}^{kappa} c_s (1 - lambda)^s, c_s = (2s)! / (4^s (s!)^2),
    expanded exactly (rational arithmetic) into powers of lambda. kappa = 1 gives
    (3/2, -1/2); kappa = 2 gives (15/8, -5/4, 3/8).

    Args:
      kappa: the truncation order, an int >= 1.

    Returns:
      A tuple of kappa + 1 floats (a_0, ..., a_kappa).

    Raises:
      TypeError: if kappa is not an int.
      ValueError: if kappa < 1.

    References:
      Kim & Oh, arXiv 2601.19156, the polynomial p_kappa of the NS iteration.
    """
    if isinstance(kappa, bool) or not isinstance(kappa, int | np.integer):
        raise TypeError(f"taylor_coeffs: kappa must be an int >= 1, got {kappa!r}")
    if kappa < 1:
        raise ValueError(f"taylor_coeffs: kappa must be >= 1, got {kappa}")
    return tuple(float(c) for c in _taylor_exact(int(kappa)))


SCHEMES: dict[str, str] = {
    **{f"taylor{k}": f"Taylor truncation of lambda^(-1/2), kappa={k}" for k in
       range(1, _MAX_TAYLOR + 1)},
    "jordan": "Jordan's quintic (3.4445, -4.7750, 2.0315), the same every step",
    "polar_express": "Amsel et al. 2025 per-step quintic table (1.01 safety factor)",
    "dion": "Dion's 5-row per-step quintic table (the last `steps` rows, as optax)",
    "standard": "optax's name for 'jordan' (``optax.contrib.muon``'s default ns_coeffs)",
}
"""Named schemes accepted wherever ``coeffs`` is asked for, with a one-line description."""


def _check_row(row: Sequence[float], where: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in row)
    except TypeError as e:
        raise TypeError(f"{where} must be a sequence of numbers, got {row!r}") from e
    if len(vals) < 2:
        raise ValueError(f"{where} needs at least 2 coefficients (a_0, a_1, ...), got {vals}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{where} has a non-finite coefficient: {vals}")
    return vals


# How a coefficient table maps to step i of q (see :func:`coefficient_table`).
TABLE_MODES = ("repeat", "extend_last", "tail")


def coefficient_table(coeffs) -> tuple[np.ndarray, str]:
    """A scheme as its raw coefficient table and the rule that picks step i's row.

    Modes: ``"repeat"`` (one row, used at every step: Taylor, Jordan, any single tuple);
    ``"extend_last"`` (row ``min(i, R-1)``: Polar Express, whose last row repeats for any
    further steps); ``"tail"`` (the last q of R rows, so step i uses row ``R - q + i``: Dion
    and any explicit table, as ``optax.contrib.muon`` slices ``ns_coeffs[-ns_steps:]``).

    Args:
      coeffs: a name from :data:`SCHEMES` (``"standard"`` is optax's name for ``"jordan"``),
        one tuple ``(a_0, ..., a_d)``, or a table of such tuples (rows of lower degree are
        padded with zero coefficients); numpy
        or JAX arrays of rank 1 or 2 are accepted as well.

    Returns:
      ``(rows, mode)``: a float64 array of shape (R, d + 1) and one of :data:`TABLE_MODES`.

    Raises:
      ValueError: an unknown name (listing the valid ones), an empty table, fewer than 2
        coefficients, non-finite coefficients.
      TypeError: a non-numeric coefficient.
    """
    if isinstance(coeffs, str):
        name = _ALIASES.get(coeffs, coeffs)
        if name.startswith("taylor") and name[6:].isdigit() and int(name[6:]) >= 1:
            return np.asarray([taylor_coeffs(int(name[6:]))]), "repeat"
        if name == "jordan":
            return np.asarray([_JORDAN]), "repeat"
        if name == "polar_express":
            return np.asarray(_POLAR_EXPRESS), "extend_last"
        if name == "dion":
            return np.asarray(_DION), "tail"
        raise ValueError(f"newton_schulz: unknown scheme {coeffs!r}; valid names are "
                         f"{sorted(SCHEMES)} (or 'taylorK' for any K >= 1)")
    if not _is_table(coeffs):
        return np.asarray([_check_row(coeffs, "newton_schulz: coeffs")]), "repeat"
    rows = [_check_row(r, f"newton_schulz: coeffs[{i}]") for i, r in enumerate(coeffs)]
    if not rows:
        raise ValueError("newton_schulz: a coefficient table needs at least one row, got none")
    width = max(len(r) for r in rows)  # lower-degree rows: zero top coefficients
    return np.asarray([r + (0.0,) * (width - len(r)) for r in rows]), "tail"


def check_steps(steps, fn: str = "newton_schulz") -> int | None:
    """``steps`` as a Python int (``None`` for a traced value); TypeError/ValueError if bad."""
    if isinstance(steps, jax.core.Tracer):
        if not jnp.issubdtype(steps.dtype, jnp.integer) or steps.shape != ():
            raise TypeError(f"{fn}: steps must be an integer scalar, got a traced "
                            f"{steps.dtype}{list(steps.shape)}")
        return None
    if isinstance(steps, np.ndarray | jax.Array) and steps.shape == () and \
            jnp.issubdtype(steps.dtype, jnp.integer):
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise TypeError(f"{fn}: steps must be an int >= 0, got {steps!r}")
    if steps < 0:
        raise ValueError(f"{fn}: steps must be >= 0, got {steps}")
    return int(steps)


def row_index(mode: str, i, steps, num_rows: int):
    """Index of the row used at step ``i`` of ``steps`` (ints or traced ints)."""
    if mode == "repeat":
        return 0 * i
    if mode == "extend_last":
        return jnp.minimum(i, num_rows - 1) if isinstance(i, jax.Array) else min(i, num_rows - 1)
    return num_rows - steps + i


def resolve_coeffs(coeffs, steps: int) -> tuple[tuple[float, ...], ...]:
    """Turns a scheme name, one coefficient tuple, or a table into the ``steps`` rows used.

    Args:
      coeffs: as :func:`coefficient_table`. A table of R rows is used as optax uses one: the
        last ``steps`` rows (R must be >= steps).
      steps: number of NS steps q, an int >= 0.

    Returns:
      A tuple of ``steps`` coefficient tuples, step 0 first.

    Raises:
      ValueError: for an unknown name (listing the valid ones), a table with fewer than
        ``steps`` rows, fewer than 2 coefficients, or ``steps < 0``.
      TypeError: for a non-int ``steps`` or a non-numeric coefficient.
    """
    steps = check_steps(steps)
    if steps is None:
        raise TypeError("resolve_coeffs: steps must be a concrete int, got a traced value")
    rows, mode = coefficient_table(coeffs)
    if mode == "tail" and steps > len(rows):
        what = f"scheme {coeffs!r}" if isinstance(coeffs, str) else "the coefficient table"
        raise ValueError(f"newton_schulz: {what} has {len(rows)} rows, so steps must be <= "
                         f"{len(rows)}, got {steps}")
    return tuple(tuple(float(c) for c in rows[row_index(mode, i, steps, len(rows))])
                 for i in range(steps))


def _is_table(coeffs) -> bool:
    """True for a sequence of coefficient rows, False for one row of numbers."""
    if isinstance(coeffs, np.ndarray | jax.Array):
        if coeffs.ndim not in (1, 2):
            raise ValueError("newton_schulz: coeffs must be one tuple or a table of tuples, got "
                             f"an array of shape {coeffs.shape}")
        return coeffs.ndim == 2
    try:
        first = next(iter(coeffs))
    except TypeError as e:
        raise TypeError(f"newton_schulz: coeffs must be a scheme name, a tuple or a table, got "
                        f"{coeffs!r}") from e
    except StopIteration:
        return False
    return np.ndim(first) == 1


def _as_rows(coeffs) -> tuple[tuple[float, ...], ...]:
    """Every distinct row a scheme can use (names and tables: all their rows)."""
    rows, _ = coefficient_table(coeffs)
    return tuple(tuple(float(c) for c in r) for r in rows)


def residual_polynomial(coeffs: Sequence[float]) -> np.ndarray:
    """Coefficients (ascending powers of delta) of phi(delta) = 1 - (1-delta) p(1-delta)^2.

    Args:
      coeffs: one NS step's coefficients (a_0, ..., a_d) in powers of lambda = sigma^2.

    Returns:
      float64 array of length 2d + 2: phi's coefficients, lowest power first.

    Raises:
      ValueError: for fewer than 2 or non-finite coefficients.
    """
    a = _check_row(coeffs, "residual_polynomial: coeffs")
    p_lam = np.polynomial.Polynomial(a)
    one_minus = np.polynomial.Polynomial([1.0, -1.0])
    p_delta = p_lam(one_minus)  # composition: p(1 - delta)
    phi = 1.0 - one_minus * p_delta**2
    out = np.zeros(2 * len(a))
    out[: len(phi.coef)] = phi.coef
    return out


def convergence_order(coeffs: Sequence[float], *, tol: float = 1e-9) -> int:
    """Order k of the fixed point sigma = 1: phi(delta) = O(delta^k); 0 if phi(0) != 0.

    Taylor kappa has order kappa + 1. Coefficients whose magnitude is at most ``tol`` times
    the largest one count as zero (floating-point cancellation).
    """
    phi = residual_polynomial(coeffs)
    scale = max(1.0, float(np.max(np.abs(phi))))
    for k, c in enumerate(phi):
        if abs(c) > tol * scale:
            return k
    return len(phi)


def scheme_satisfies_theory(coeffs, *, grid: int = 20001, tol: float = 1e-9) -> bool:
    """Whether the paper's convergence analysis applies to a scheme (computed, not looked up).

    The analysis needs, at every step, a residual map with a fixed point at delta = 0 of
    order k >= 2 that stays inside [0, delta^k] on the whole interval delta in [0, 1]:

        0 <= phi(delta) <= delta^k   for all delta in [0, 1].

    Then delta_q <= delta_0^{k^q}. The Taylor family passes with k = kappa + 1; Jordan's
    quintic does not (its p(1) = 0.70, so sigma = 1 is not a fixed point).

    Args:
      coeffs: a scheme name, one coefficient tuple, or a per-step table.
      grid: number of points of [0, 1] where the inequality is checked (>= 101).
      tol: absolute slack for floating-point rounding.

    Returns:
      True if every step satisfies the condition.

    Raises:
      ValueError: for a bad scheme (see :func:`resolve_coeffs`) or grid < 101.
    """
    if int(grid) < 101:
        raise ValueError(f"scheme_satisfies_theory: grid must be >= 101, got {grid}")
    delta = np.linspace(0.0, 1.0, int(grid))
    for row in _as_rows(coeffs):
        k = convergence_order(row)
        if k < 2:
            return False
        phi = np.polynomial.polynomial.polyval(delta, residual_polynomial(row))
        if np.any(phi < -tol) or np.any(phi > delta**k + tol):
            return False
    return True


def scheme_order(coeffs) -> int:
    """The smallest convergence order over a scheme's steps (0 if any step lacks a fixed point)."""
    return min(convergence_order(r) for r in _as_rows(coeffs))
