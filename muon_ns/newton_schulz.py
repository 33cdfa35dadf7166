"""Newton-Schulz orthogonalization, the exact polar factor, and per-matrix NS diagnostics.

References:
  Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from muon_ns.schemes import resolve_coeffs, scheme_order, scheme_satisfies_theory

__all__ = [
    "NORMALIZATIONS",
    "NS_METHODS",
    "NSDiagnostics",
    "newton_schulz",
    "ns_diagnostics",
    "polar_svd",
]

NORMALIZATIONS = ("frobenius", "max1_frobenius", "spectral_bound", "none")


def _check_matrix(x, fn: str, name: str = "x") -> jax.Array:
    if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{fn}: {name} must be a matrix (ndim >= 2, leading axes batch), got "
                         f"shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must have a real floating dtype, got {x.dtype}")
    if 0 in x.shape[-2:]:
        raise ValueError(f"{fn}: {name} must have non-empty matrix axes, got shape {x.shape}")
    return x


def _check_normalization(normalization: str, fn: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"{fn}: normalization must be one of {list(NORMALIZATIONS)}, got "
                         f"{normalization!r}")


def _mT(x: jax.Array) -> jax.Array:
    return jnp.swapaxes(x, -1, -2)


def _fro(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=(-2, -1), keepdims=True))


def _safe_div(x: jax.Array, denom: jax.Array) -> jax.Array:
    """x / denom, with a zero denominator (only for x = 0 and eps = 0) giving 0, not NaN."""
    return x / jnp.where(denom > 0, denom, 1.0)


def _normalize(x: jax.Array, normalization: str, eps: float) -> jax.Array:
    """X_0 from X: the scaling that puts every singular value in [0, 1]."""
    if normalization == "frobenius":  # optax: X / (||X||_F + eps)
        return _safe_div(x, _fro(x) + eps)
    if normalization == "max1_frobenius":  # the paper: X / max{1, ||X||_F}
        return x / jnp.maximum(1.0, _fro(x))
    if normalization == "spectral_bound":  # ||X||_op <= ||X X^T||_F^{1/2} (Schatten-4)
        gram = x @ _mT(x)
        return _safe_div(x, jnp.sqrt(_fro(gram)) + eps)
    return x


def _ns_step(x: jax.Array, row: jax.Array) -> jax.Array:
    """X <- (a_0 I + a_1 A + ... + a_d A^d) X with A = X X^T (the Gram of the short side)."""
    a = x @ _mT(x)
    if row.shape[0] == 3:  # the quintic, in optax's operation order
        b = row[1] * a + (row[2] * a) @ a
    else:
        b = row[1] * a
        power = a
        for j in range(2, row.shape[0]):
            power = power @ a
            b = b + row[j] * power
    return row[0] * x + b @ x


def _poly(row, r: jax.Array, eye: jax.Array) -> jax.Array:
    """p(R) = a_0 I + a_1 R + ... + a_d R^d for a symmetric (..., m, m) R."""
    if len(row) == 3:
        return row[0] * eye + row[1] * r + (row[2] * r) @ r
    out = row[0] * eye + row[1] * r
    power = r
    for c in row[2:]:
        power = power @ r
        out = out + c * power
    return out


def _gram_iteration(x: jax.Array, table) -> jax.Array:
    """The same X_q via the small Gram matrix: X_k = Q_k X_0, R_k = X_k X_k^T.

    p(R_k) commutes with R_k, so R_{k+1} = p(R_k) R_k p(R_k) and Q_{k+1} = p(R_k) Q_k: only
    two (m x m x n) products in all (R_0 and Q_q X_0) plus about 4q (m x m x m) ones, instead
    of 2q (m x m x n) ones. Cheaper when n > 1.5 m.
    """
    m = x.shape[-2]
    eye = jnp.eye(m, dtype=x.dtype)
    r = x @ _mT(x)
    q = None
    for k, row in enumerate(table):
        pk = _poly(tuple(jnp.asarray(c, x.dtype) for c in row), r, eye)
        q = pk if q is None else pk @ q
        if k < len(table) - 1:
            r = pk @ (r @ pk)
            r = 0.5 * (r + _mT(r))  # keep it symmetric against rounding
    return q @ x


NS_METHODS = ("auto", "direct", "gram")


def newton_schulz(
    x: jax.typing.ArrayLike,
    coeffs="taylor2",
    steps: int = 5,
    *,
    normalization: str = "frobenius",
    compute_dtype=None,
    eps: float = 1e-8,
    method: str = "auto",
) -> jax.Array:
    r"""Approximates the polar factor of ``x`` with ``steps`` Newton-Schulz iterations.

    With A = X X^T (taken on the short side: a tall matrix is transposed first and back at
    the end), one step with coefficients (a_0, ..., a_d) is

        X <- p(A) X = a_0 X + a_1 A X + ... + a_d A^d X.

    The paper's iteration starts from X_0 = M / max{1, ||M||_F} (``"max1_frobenius"``) and
    uses the Taylor polynomial p_kappa(lambda) = sum_{s<=kappa} c_s (1 - lambda)^s,
    c_s = (2s)! / (4^s (s!)^2) (``coeffs="taylor<kappa>"``). ``"frobenius"`` is optax's
    X / (||X||_F + eps); ``"spectral_bound"`` divides by ||X X^T||_F^{1/2} >= ||X||_op (a
    tighter start, one extra Gram product); ``"none"`` leaves X as given.

    Args:
      x: array of shape (..., m, n); leading axes are a batch of independent matrices.
      coeffs: a scheme name (see :data:`muon_ns.SCHEMES`), one coefficient tuple in powers of
        X X^T used at every step, or a table of exactly ``steps`` tuples.
      steps: number of NS steps q (an int >= 0).
      normalization: one of :data:`NORMALIZATIONS`.
      compute_dtype: dtype of the iteration (e.g. ``jnp.bfloat16``); ``None`` uses x's dtype.
        Normalization happens in x's dtype; the result is cast back to x's dtype.
      eps: added to the normalizing norm (``"frobenius"``, ``"spectral_bound"``).
      method: ``"direct"`` (X <- p(X X^T) X, q times: 2q products of size m x m x n);
        ``"gram"`` (the same map run on the small Gram matrix R = X X^T and applied once to
        X_0: 2 products of size m x m x n plus about 4q of size m^3; identical in exact
        arithmetic, slightly more rounding); or ``"auto"`` (gram when n > 1.5 m with at least
        2 steps in float32/64; bfloat16 always runs direct, where the Gram form drifts).

    Returns:
      X_q, the same shape and dtype as ``x``.

    Raises:
      ValueError: if x has ndim < 2 or empty matrix axes, for an unknown scheme name (listing
        the valid ones), a coefficient table whose length is not ``steps``, an unknown
        normalization or method, or negative eps.
      TypeError: if x is not a real floating array.

    References:
      Kim & Oh, arXiv 2601.19156 (the NS iteration and its Taylor polynomials).
    """
    x = _check_matrix(x, "newton_schulz")
    _check_normalization(normalization, "newton_schulz")
    if method not in NS_METHODS:
        raise ValueError(f"newton_schulz: method must be one of {list(NS_METHODS)}, got "
                         f"{method!r}")
    if not eps >= 0:
        raise ValueError(f"newton_schulz: eps must be >= 0, got {eps!r}")
    table = resolve_coeffs(coeffs, steps)
    in_dtype = x.dtype
    cdtype = in_dtype if compute_dtype is None else jnp.dtype(compute_dtype)
    if not jnp.issubdtype(cdtype, jnp.floating):
        raise TypeError(f"newton_schulz: compute_dtype must be a floating dtype, got {cdtype}")
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = _mT(x)
    x = _normalize(x, normalization, eps).astype(cdtype)
    m, n = x.shape[-2:]
    use_gram = method == "gram" or (
        method == "auto" and n > 1.5 * m and len(table) >= 2
        and cdtype in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)))
    if table and use_gram:
        x = _gram_iteration(x, table)
    elif table:
        widths = {len(r) for r in table}
        if len(widths) == 1:
            rows = jnp.asarray(np.asarray(table, dtype=np.float64), dtype=cdtype)
            x, _ = jax.lax.scan(lambda c, r: (_ns_step(c, r), None), x, rows, unroll=True)
        else:  # a table mixing degrees: one static step each
            for r in table:
                x = _ns_step(x, jnp.asarray(r, dtype=cdtype))
    if tall:
        x = _mT(x)
    return x.astype(in_dtype)


def polar_svd(x: jax.typing.ArrayLike) -> jax.Array:
    r"""The exact polar factor Polar(M) = U V^T of M = U \Sigma V^T (thin SVD), batched.

    Args:
      x: array of shape (..., m, n), real floating.

    Returns:
      U V^T with x's shape and dtype (computed in at least float32).

    Raises:
      ValueError: if x has ndim < 2 or empty matrix axes.
      TypeError: if x is not a real floating array.

    References:
      Kim & Oh, arXiv 2601.19156: Muon-SVD, the update NS approximates.
    """
    x = _check_matrix(x, "polar_svd")
    wdtype = jnp.promote_types(x.dtype, jnp.float32)
    u, _, vh = jnp.linalg.svd(x.astype(wdtype), full_matrices=False)
    return (u @ vh).astype(x.dtype)


class NSDiagnostics(NamedTuple):
    """Per-matrix quality of an NS orthogonalization (each field has the batch shape).

    Attributes:
      delta_0: ||I - X_0 X_0^T||_op on the range of X_0.
      delta_q: ||I - X_q X_q^T||_op on the range, after q steps.
      eps_q: ||X_q - Polar(M)||_op.
      chi: the realized factor 1 / (1 - eps_q) (inf if eps_q >= 1).
      chi_bound: the theorem's [1 - delta_0^{k^q}]^{-1/2} with k the scheme's order (kappa+1
        for Taylor); inf where the scheme fails :func:`scheme_satisfies_theory` or
        delta_0 >= 1.
    """

    delta_0: jax.Array
    delta_q: jax.Array
    eps_q: jax.Array
    chi: jax.Array
    chi_bound: jax.Array


def _horner(row, lam: jax.Array) -> jax.Array:
    """p(lambda) = sum_j a_j lambda^j (a Python loop: sharding-safe, unlike jnp.polyval's scan)."""
    acc = jnp.full_like(lam, row[-1])
    for c in row[-2::-1]:
        acc = acc * lam + c
    return acc


def _theory_order(table) -> int:
    """The scheme's guaranteed order (0 when the paper's analysis does not apply)."""
    if not table:
        return 0
    rows = tuple(tuple(r) for r in table)
    return scheme_order(rows) if scheme_satisfies_theory(rows) else 0


def ns_diagnostics(
    x: jax.typing.ArrayLike,
    coeffs="taylor2",
    steps: int = 5,
    *,
    normalization: str = "frobenius",
    eps: float = 1e-8,
) -> NSDiagnostics:
    r"""delta_0, delta_q, eps_q, the realized chi and the theorem's bound, in one pass.

    X_q = U f(\Sigma_0) V^T where f is the scalar NS map sigma <- p(sigma^2) sigma applied
    q times to each singular value of X_0 = U \Sigma_0 V^T, and Polar(M) = U V^T. So from the
    singular values sigma_i of X_0 alone (on the range: sigma_i > tol sigma_max):

        delta_0 = max_i |1 - sigma_i^2|,  delta_q = max_i |1 - f(sigma_i)^2|,
        eps_q = max_i |1 - f(sigma_i)|,  chi = 1 / (1 - eps_q),

    and the bound chi <= [1 - delta_0^{k^q}]^{-1/2} for a scheme of order k = kappa + 1.

    Args:
      x: the matrix (or batch (..., m, n)) being orthogonalized, e.g. the momentum M_t.
      coeffs, steps, normalization, eps: as in :func:`newton_schulz`.

    Returns:
      An :class:`NSDiagnostics` of float32 (or x's wider dtype) arrays of shape x.shape[:-2].

    Raises:
      ValueError, TypeError: as :func:`newton_schulz`.

    References:
      Kim & Oh, arXiv 2601.19156: delta_q <= delta_0^{(kappa+1)^q},
      eps_q <= 1 - sqrt(1 - delta_0^{(kappa+1)^q}), chi_q <= [1 - delta_0^{(kappa+1)^q}]^{-1/2}.
    """
    x = _check_matrix(x, "ns_diagnostics")
    _check_normalization(normalization, "ns_diagnostics")
    table = resolve_coeffs(coeffs, steps)
    wdtype = jnp.promote_types(x.dtype, jnp.float32)
    x0 = _normalize(x.astype(wdtype), normalization, eps)
    sig = jnp.linalg.svd(x0, compute_uv=False)  # (..., min(m, n))
    tol = max(x.shape[-2:]) * jnp.finfo(wdtype).eps
    on_range = sig > tol * jnp.max(sig, axis=-1, keepdims=True)
    f = sig
    for row in table:
        lam = f * f
        f = _horner(row, lam) * f

    def range_max(v):
        return jnp.max(jnp.where(on_range, v, 0.0), axis=-1)

    delta_0 = range_max(jnp.abs(1.0 - sig * sig))
    delta_q = range_max(jnp.abs(1.0 - f * f))
    eps_q = range_max(jnp.abs(1.0 - f))
    chi = jnp.where(eps_q < 1.0, 1.0 / jnp.maximum(1.0 - eps_q, 1e-30), jnp.inf)
    order = _theory_order(table)
    if order >= 2:
        d_bound = jnp.where(delta_0 < 1.0, delta_0 ** (float(order) ** len(table)), 1.0)
        chi_bound = jnp.where(d_bound < 1.0, jax.lax.rsqrt(jnp.maximum(1.0 - d_bound, 1e-30)),
                              jnp.inf)
    else:
        chi_bound = jnp.full_like(delta_0, jnp.inf)
    return NSDiagnostics(delta_0, delta_q, eps_q, chi, chi_bound)
