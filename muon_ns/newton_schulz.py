"""Newton-Schulz orthogonalization, the exact polar factor, and per-matrix NS diagnostics.

References:
  Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
  Boissin et al., "Turbo-Muon", arXiv 2512.04632 (AOL preconditioning, ``"aol"``).
  Grishina et al., arXiv 2506.10935 (Schatten-4 rescaling, ``"schatten"``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from muon_ns.schemes import (
    check_steps,
    coefficient_table,
    row_index,
    scheme_order,
    scheme_satisfies_theory,
)

__all__ = [
    "GRAM_MIN_ASPECT",
    "GRAM_RESTART",
    "NORMALIZATIONS",
    "NS_METHODS",
    "NSDiagnostics",
    "newton_schulz",
    "ns_diagnostics",
    "polar_svd",
]

NORMALIZATIONS = ("frobenius", "max1_frobenius", "spectral", "schatten", "aol", "none")
_NORMALIZATION_ALIASES = {"spectral_bound": "schatten"}  # this package's earlier name
NS_METHODS = ("auto", "direct", "gram")

GRAM_RESTART = 3
"""Steps run on the Gram matrix before it is recomputed from X (see :func:`newton_schulz`)."""

GRAM_MIN_ASPECT = 4.0
"""``method="auto"`` runs the Gram form when the long side is at least this many times the
short side (below it, the restarts cost more large products than the Gram form saves)."""


def _check_matrix(x, fn: str, name: str = "x") -> jax.Array:
    if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{fn}: {name} must be a matrix (ndim >= 2, leading axes batch), got "
                         f"shape {tuple(x.shape)}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype,
                                                                    jnp.complexfloating)):
        raise TypeError(f"{fn}: {name} must have a floating or complex dtype, got {x.dtype}")
    if 0 in x.shape[-2:]:
        raise ValueError(f"{fn}: {name} must have non-empty matrix axes, got shape {x.shape}")
    return x


def check_normalization(normalization: str, fn: str) -> str:
    """The canonical normalization name (``"spectral_bound"`` is ``"schatten"``)."""
    normalization = _NORMALIZATION_ALIASES.get(normalization, normalization)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"{fn}: normalization must be one of {list(NORMALIZATIONS)}, got "
                         f"{normalization!r}")
    return normalization


def _mT(x: jax.Array) -> jax.Array:
    return jnp.swapaxes(x, -1, -2)


def _mH(x: jax.Array) -> jax.Array:
    """Conjugate transpose (the plain transpose for real x)."""
    return jnp.conj(_mT(x)) if jnp.iscomplexobj(x) else _mT(x)


def _fro(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(jnp.abs(x)), axis=(-2, -1), keepdims=True))


def _safe_div(x: jax.Array, denom: jax.Array) -> jax.Array:
    """x / denom, with a zero denominator (only for x = 0 and eps = 0) giving 0, not NaN."""
    return x / jnp.where(denom > 0, denom, 1.0)


def _normalize(x: jax.Array, normalization: str, eps) -> jax.Array:
    """X_0 from X (short side first): the scaling that puts every singular value in [0, 1].

    ``"frobenius"`` X / (||X||_F + eps) (optax's default); ``"max1_frobenius"``
    X / max{1, ||X||_F} (the paper); ``"spectral"`` X / (||X||_2 + eps) (exact, one SVD);
    ``"schatten"`` X / max(||X X^H||_F, eps)^{1/2} (||X||_2 <= ||X X^H||_F^{1/2}, optax's
    Schatten-4 rescaling); ``"aol"`` diag(s) X with s_i = (sum_j |(X X^H)_ij|)^{-1/2}, a
    row scaling that bounds ||X_0||_2 <= 1 (optax's AOL; note that it changes the polar
    factor: NS then approximates Polar(diag(s) M), not Polar(M)); ``"none"``.
    """
    if normalization == "frobenius":
        return _safe_div(x, _fro(x) + eps)
    if normalization == "max1_frobenius":
        return x / jnp.maximum(1.0, _fro(x))
    if normalization == "spectral":
        return _safe_div(x, jnp.linalg.norm(x, ord=2, axis=(-2, -1), keepdims=True) + eps)
    if normalization == "schatten":
        gram = x @ _mH(x)
        return x * _safe_rsqrt(jnp.maximum(_fro(gram), eps)).astype(x.dtype)
    if normalization == "aol":
        gram = x @ _mH(x)
        rows = jnp.maximum(jnp.sum(jnp.abs(gram), axis=-1, keepdims=True), eps)
        return x * _safe_rsqrt(rows).astype(x.dtype)
    return x


def _safe_rsqrt(v: jax.Array) -> jax.Array:
    """v^{-1/2}, and 0 where v = 0 (a zero matrix with eps = 0 stays 0, not NaN)."""
    return jnp.where(v > 0, jax.lax.rsqrt(jnp.where(v > 0, v, 1.0)), 0.0)


def _poly_terms(row, a, mul):
    """sum_{j>=1} row[j] a^j, products by ``mul``: p(a) without its constant term.

    The one polynomial evaluator of the package: matrices (``mul = jnp.matmul``: the NS step
    and its Gram form) and singular values (``mul = jnp.multiply``: the scalar map of the
    diagnostics). The quintic uses optax's operation order, ``c1 a + (c2 a) a``.
    """
    if len(row) == 3:
        return row[1] * a + mul(row[2] * a, a)
    out = row[1] * a
    power = a
    for j in range(2, len(row)):
        power = mul(power, a)
        out = out + row[j] * power
    return out


def _ns_step(x: jax.Array, row) -> jax.Array:
    """X <- p(X X^H) X = a_0 X + (a_1 A + ... + a_d A^d) X with A = X X^H."""
    return row[0] * x + _poly_terms(row, x @ _mH(x), jnp.matmul) @ x


def _scalar_step(sigma: jax.Array, row) -> jax.Array:
    """The NS step on one singular value: sigma <- p(sigma^2) sigma."""
    return (row[0] + _poly_terms(row, sigma * sigma, jnp.multiply)) * sigma


def _gram_block(x: jax.Array, rows) -> jax.Array:
    """len(rows) NS steps run on the small Gram matrix, then applied to X once.

    With R_0 = X X^H and P_k = p_k(R_k): X_{k+1} = P_k X_k, R_{k+1} = P_k R_k P_k (P_k
    commutes with R_k), so X_{k+b} = (P_{k+b-1} ... P_k) X_k: two (m x m x n) products in all
    plus ~4 (m x m x m) per step, instead of 2 (m x m x n) per step. The m x m work runs in
    float32 or wider.
    """
    wdtype = jnp.promote_types(x.dtype, jnp.float32)
    m = x.shape[-2]
    eye = jnp.eye(m, dtype=wdtype)
    r = jnp.matmul(x, _mH(x), preferred_element_type=wdtype)
    q = None
    for j, row in enumerate(rows):
        row = row.astype(wdtype) if hasattr(row, "astype") else row
        pk = row[0] * eye + _poly_terms(row, r, jnp.matmul)
        q = pk if q is None else pk @ q
        if j < len(rows) - 1:
            r = pk @ (r @ pk)
            r = 0.5 * (r + _mH(r))  # Hermitian against rounding
    return q.astype(x.dtype) @ x


def _rows_for(coeffs, dtype):
    """(rows as an array of ``dtype``, mode) from any accepted ``coeffs``."""
    if isinstance(coeffs, jax.Array):  # e.g. the optimizer state's table, maybe traced
        if coeffs.ndim not in (1, 2) or coeffs.shape[-1] < 2:
            raise ValueError(f"newton_schulz: a coefficient array must have shape (d+1,) or "
                             f"(R, d+1) with d >= 1, got {coeffs.shape}")
        if coeffs.ndim == 1:
            return coeffs[None].astype(dtype), "repeat"
        return coeffs.astype(dtype), "tail"
    rows, mode = coefficient_table(coeffs)
    return jnp.asarray(rows, dtype=dtype), mode


def _static_rows(rows, mode: str, steps: int, coeffs) -> list:
    num = rows.shape[0]
    if mode == "tail" and steps > num:
        what = f"scheme {coeffs!r}" if isinstance(coeffs, str) else "the coefficient table"
        raise ValueError(f"newton_schulz: {what} has {num} rows, so steps must be <= {num}, "
                         f"got {steps}")
    return [rows[row_index(mode, i, steps, num)] for i in range(steps)]


def _use_gram(method: str, steps: int | None, m: int, n: int, dtype) -> bool:
    if method == "gram":
        return True
    return (method == "auto" and steps is not None and steps >= 2
            and n >= GRAM_MIN_ASPECT * m
            and jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)))


def newton_schulz(
    x: jax.typing.ArrayLike,
    coeffs="taylor2",
    steps=5,
    *,
    normalization: str = "frobenius",
    compute_dtype=None,
    eps=1e-8,
    method: str = "auto",
    gram_restart: int = GRAM_RESTART,
) -> jax.Array:
    r"""Approximates the polar factor of ``x`` with ``steps`` Newton-Schulz iterations.

    With A = X X^H (taken on the short side: a tall matrix is transposed first and back at
    the end), one step with coefficients (a_0, ..., a_d) is

        X <- p(A) X = a_0 X + a_1 A X + ... + a_d A^d X.

    The paper's iteration starts from X_0 = M / max{1, ||M||_F} (``"max1_frobenius"``) and
    uses the Taylor polynomial p_kappa(lambda) = sum_{s<=kappa} c_s (1 - lambda)^s,
    c_s = (2s)! / (4^s (s!)^2) (``coeffs="taylor<kappa>"``). Note what that normalization
    does to small matrices: when ||M||_F < 1 it leaves M unscaled, so its singular values
    (e.g. 0.15-0.48 for a 1e-3-scale gradient of a 64 x 128 layer) start far below 1 and a
    few steps leave the update far from orthogonal; ``"frobenius"`` (optax) always scales
    up to ||X_0||_F = 1. See :func:`_normalize` for the other normalizations.

    Two ways to run the same map: ``method="direct"`` (2 products of size m x m x n per
    step) and ``method="gram"``, which runs up to ``gram_restart`` steps on the small Gram
    matrix R = X X^H and applies their product to X once, then recomputes R from the new X.
    The restart is what keeps the Gram form stable: carried over many steps, rounding makes
    the zero eigenvalues of a rank-deficient R slightly negative and each step multiplies
    them by p(0)^2 (11.9 for Jordan's quintic, 67 for the first Polar Express row), so a
    Gram iteration without restarts returns inf/NaN by q = 10-20; with restarts every 3
    steps its error against the SVD stays at the direct iteration's (tested for q <= 30 on
    rank-deficient, ill-conditioned, tall, wide and bfloat16 inputs). ``"auto"`` picks the
    Gram form for float32/64 inputs whose long side is at least :data:`GRAM_MIN_ASPECT`
    times the short side, with a concrete ``steps >= 2``, and the direct form otherwise.

    Args:
      x: array of shape (..., m, n), real or complex; leading axes are a batch of matrices.
      coeffs: a scheme name (see :data:`muon_ns.SCHEMES`), one coefficient tuple in powers of
        X X^H used at every step, a table whose last ``steps`` rows are used (as optax), or a
        JAX array of shape (d+1,) or (R, d+1) (may be traced).
      steps: number of NS steps q, an int >= 0, or a traced int (e.g. under
        ``optax.inject_hyperparams``: then the loop is a ``lax.fori_loop``, direct form).
      normalization: one of :data:`NORMALIZATIONS` (``"spectral_bound"`` is ``"schatten"``).
      compute_dtype: dtype of the iteration (e.g. ``jnp.bfloat16``); ``None`` uses x's dtype.
        Normalization happens in x's dtype; the result is cast back to x's dtype.
      eps: added to the normalizing norm (``"frobenius"``, ``"spectral"``) or its floor
        (``"schatten"``, ``"aol"``); may be traced.
      method: ``"auto"``, ``"direct"`` or ``"gram"``.
      gram_restart: steps per Gram block (>= 1).

    Returns:
      X_q, the same shape and dtype as ``x``.

    Raises:
      ValueError: if x has ndim < 2 or empty matrix axes, for an unknown scheme name (listing
        the valid ones), a table with fewer than ``steps`` rows, an unknown normalization or
        method, negative eps, gram_restart < 1, or ``method="gram"`` with a traced ``steps``.
      TypeError: if x is not a floating or complex array, or steps is not an int.

    References:
      Kim & Oh, arXiv 2601.19156 (the NS iteration and its Taylor polynomials).
    """
    fn = "newton_schulz"
    x = _check_matrix(x, fn)
    normalization = check_normalization(normalization, fn)
    if method not in NS_METHODS:
        raise ValueError(f"{fn}: method must be one of {list(NS_METHODS)}, got {method!r}")
    if not isinstance(eps, jax.core.Tracer) and not float(np.asarray(eps)) >= 0:
        raise ValueError(f"{fn}: eps must be >= 0, got {eps!r}")
    if isinstance(gram_restart, bool) or not isinstance(gram_restart, int) or gram_restart < 1:
        raise ValueError(f"{fn}: gram_restart must be an int >= 1, got {gram_restart!r}")
    static_steps = check_steps(steps, fn)
    if method == "gram" and static_steps is None:
        raise ValueError(f"{fn}: method='gram' needs a concrete steps, got a traced value (e.g. "
                         "under optax.inject_hyperparams); use method='auto' or 'direct'")
    in_dtype = x.dtype
    cdtype = in_dtype if compute_dtype is None else jnp.dtype(compute_dtype)
    if jnp.iscomplexobj(x) and not jnp.issubdtype(cdtype, jnp.complexfloating):
        cdtype = jnp.promote_types(cdtype, jnp.complex64)
    if not (jnp.issubdtype(cdtype, jnp.floating) or jnp.issubdtype(cdtype,
                                                                    jnp.complexfloating)):
        raise TypeError(f"{fn}: compute_dtype must be a floating dtype, got {cdtype}")
    rdtype = jnp.finfo(cdtype).dtype  # coefficients are real
    rows, mode = _rows_for(coeffs, rdtype)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = _mT(x)
    x = _normalize(x, normalization, eps).astype(cdtype)
    m, n = x.shape[-2:]
    if static_steps is None:  # traced q: a dynamic loop, direct form
        num = rows.shape[0]

        def body(i, xi):
            return _ns_step(xi, rows[row_index(mode, i, steps, num)])

        x = jax.lax.fori_loop(0, steps, body, x)
    elif static_steps:
        used = _static_rows(rows, mode, static_steps, coeffs)
        if _use_gram(method, static_steps, m, n, cdtype):
            for start in range(0, static_steps, gram_restart):
                x = _gram_block(x, used[start:start + gram_restart])
        else:
            x, _ = jax.lax.scan(lambda c, r: (_ns_step(c, r), None), x, jnp.stack(used),
                                unroll=True)
    if tall:
        x = _mT(x)
    return x.astype(in_dtype)


def polar_svd(x: jax.typing.ArrayLike) -> jax.Array:
    r"""The exact polar factor Polar(M) = U V^H of M = U \Sigma V^H (thin SVD), batched.

    Args:
      x: array of shape (..., m, n), real or complex.

    Returns:
      U V^H with x's shape and dtype (computed in at least float32).

    Raises:
      ValueError: if x has ndim < 2 or empty matrix axes.
      TypeError: if x is not a floating or complex array.

    References:
      Kim & Oh, arXiv 2601.19156: Muon-SVD, the update NS approximates.
    """
    x = _check_matrix(x, "polar_svd")
    wdtype = jnp.promote_types(x.dtype, jnp.float32)
    u, _, vh = jnp.linalg.svd(x.astype(wdtype), full_matrices=False)
    return (u @ vh).astype(x.dtype)


class NSDiagnostics(NamedTuple):
    """Per-matrix quality of one NS orthogonalization (each field has the batch shape).

    All are NaN when the input or the output holds a NaN or inf.

    Attributes:
      delta_0: ||I - X_0^H X_0|| on the range of M, from the singular values of X_0.
      delta_q: ||I - X_q X_q^H|| on the range, measured on the output X_q actually produced
        (its dtype, method and rounding included), by an eigendecomposition of the small
        r x r matrix (U_r^H X_q)(U_r^H X_q)^H - I.
      eps_q: ||U_r^H (X_q - Polar(M))||_op, measured on the actual X_q the same way, with
        Polar(M) = U_r V_r^H from the SVD of M (r: the singular values above
        max(m, n) eps sigma_max; the short side first). For a full-rank M this is
        ||X_q - Polar(M)||_op, rounding outside M's row space included.
      chi: the realized factor 1 / (1 - eps_q) (inf if eps_q >= 1).
      chi_bound: the theorem's [1 - delta_0^{k^q}]^{-1/2} with k the scheme's order (kappa+1
        for Taylor); inf where the scheme fails :func:`scheme_satisfies_theory` or
        delta_0 >= 1.
      eps_q_ideal: eps_q of the same scheme in exact arithmetic (the scalar NS map applied
        to X_0's singular values), for comparison with the measured eps_q.
    """

    delta_0: jax.Array
    delta_q: jax.Array
    eps_q: jax.Array
    chi: jax.Array
    chi_bound: jax.Array
    eps_q_ideal: jax.Array


def _theory_order(coeffs) -> int:
    """The scheme's guaranteed order (0 when the paper's analysis does not apply)."""
    if isinstance(coeffs, jax.core.Tracer):
        return 0
    if isinstance(coeffs, jax.Array):
        coeffs = np.asarray(coeffs)
    return scheme_order(coeffs) if scheme_satisfies_theory(coeffs) else 0


def ns_diagnostics(
    x: jax.typing.ArrayLike,
    coeffs="taylor2",
    steps=5,
    *,
    normalization: str = "frobenius",
    eps=1e-8,
    output: jax.typing.ArrayLike | None = None,
    compute_dtype=None,
    method: str = "auto",
) -> NSDiagnostics:
    r"""delta_0, the measured delta_q and eps_q of an actual NS output, chi and its bound.

    With X_0 = U \Sigma_0 V^H (thin SVD, float32 or wider, m <= n after orienting the short
    side first) and r the rank of M:

        delta_0 = max_i |1 - sigma_i^2|   (i <= r),
        delta_q = ||(U_r^H X_q)(U_r^H X_q)^H - I_r||_op,
        eps_q   = ||U_r^H X_q - V_r^H||_op = ||U_r^H (X_q - Polar(M))||_op,
        chi     = 1 / (1 - eps_q),

    each from an r x r eigendecomposition (cost: one SVD of M plus two m x m x n products).
    X_q is ``output`` (e.g. the update the optimizer applied) or, if not given,
    :func:`newton_schulz` of ``x`` with the same arguments. For a full-rank M, U_r = U and
    these are the plain operator norms. For a rank-deficient M, Polar(M) is unique only on
    M's range, and many NS steps also blow rounding noise in the null space up to singular
    values near 1, so the measurement is restricted to the range.

    The theorem bounds delta_q <= delta_0^{k^q}, eps_q <= 1 - sqrt(1 - delta_0^{k^q}) and
    chi <= [1 - delta_0^{k^q}]^{-1/2} (``chi_bound``) for a scheme of order k = kappa + 1.

    Args:
      x: the matrix (or batch (..., m, n)) being orthogonalized, e.g. the momentum M_t.
      coeffs, steps, normalization, eps, compute_dtype, method: as in :func:`newton_schulz`.
      output: the orthogonalized x to measure (same shape as x); default: computed here.

    Returns:
      An :class:`NSDiagnostics` of float32 (or x's wider real dtype) arrays of shape
      x.shape[:-2].

    Raises:
      ValueError, TypeError: as :func:`newton_schulz`, and an ``output`` whose shape is not
        x's.

    References:
      Kim & Oh, arXiv 2601.19156: delta_q <= delta_0^{(kappa+1)^q},
      eps_q <= 1 - sqrt(1 - delta_0^{(kappa+1)^q}), chi_q <= [1 - delta_0^{(kappa+1)^q}]^{-1/2}.
    """
    fn = "ns_diagnostics"
    x = _check_matrix(x, fn)
    normalization = check_normalization(normalization, fn)
    if output is None:
        output = newton_schulz(x, coeffs, steps, normalization=normalization, eps=eps,
                               compute_dtype=compute_dtype, method=method)
    output = _check_matrix(output, fn, "output")
    if output.shape != x.shape:
        raise ValueError(f"{fn}: output has shape {output.shape} but x has {x.shape}")
    static_steps = check_steps(steps, fn)
    wdtype = jnp.promote_types(x.dtype, jnp.float32)
    rdtype = jnp.finfo(wdtype).dtype
    xw, out = x.astype(wdtype), output.astype(wdtype)
    if x.shape[-2] > x.shape[-1]:
        xw, out = _mT(xw), _mT(out)
    x0 = _normalize(xw, normalization, eps)
    u, sig, vh = jnp.linalg.svd(x0, full_matrices=False)  # sig: (..., m)
    if normalization == "aol":  # a row scaling changes the polar factor: use M's own
        u, _, vh = jnp.linalg.svd(xw, full_matrices=False)
    tol = max(x.shape[-2:]) * jnp.finfo(wdtype).eps
    on_range = sig > tol * jnp.max(sig, axis=-1, keepdims=True)
    w = on_range.astype(rdtype)
    y = _mH(u * w[..., None, :]) @ out  # U_r^H X_q (rows off the range zeroed)
    both = w[..., :, None] * w[..., None, :]
    gram = y @ _mH(y)
    delta_q = jnp.max(jnp.abs(jnp.linalg.eigvalsh(gram - both * jnp.eye(gram.shape[-1]))),
                      axis=-1)
    diff = y - vh * w[..., :, None]  # U_r^H X_q - V_r^H
    eps_q = jnp.sqrt(jnp.maximum(jnp.max(jnp.linalg.eigvalsh(diff @ _mH(diff)), axis=-1), 0))

    def range_max(values):
        return jnp.max(jnp.where(on_range, values, 0.0), axis=-1)

    delta_0 = range_max(jnp.abs(1.0 - sig * sig))
    rows, mode = _rows_for(coeffs, rdtype)
    f = sig
    if static_steps is None:
        f = jax.lax.fori_loop(
            0, steps, lambda i, s: _scalar_step(s, rows[row_index(mode, i, steps, len(rows))]),
            f)
    else:
        for row in _static_rows(rows, mode, static_steps, coeffs):
            f = _scalar_step(f, row)
    eps_ideal = range_max(jnp.abs(1.0 - f))
    order = _theory_order(coeffs)
    if order >= 2:
        d_bound = jnp.where(delta_0 < 1.0, delta_0 ** (float(order) ** steps), 1.0)
        chi_bound = jnp.where(d_bound < 1.0, jax.lax.rsqrt(jnp.maximum(1.0 - d_bound, 1e-30)),
                              jnp.inf)
    else:
        chi_bound = jnp.full_like(delta_0, jnp.inf)
    chi = jnp.where(eps_q < 1.0, 1.0 / jnp.maximum(1.0 - eps_q, 1e-30), jnp.inf)
    finite = (jnp.all(jnp.isfinite(xw), axis=(-2, -1))
              & jnp.all(jnp.isfinite(out), axis=(-2, -1)))
    nan = jnp.asarray(jnp.nan, rdtype)
    fields = (delta_0, delta_q, eps_q, chi, chi_bound, eps_ideal)
    return NSDiagnostics(*(jnp.where(finite, f_.astype(rdtype), nan) for f_ in fields))
