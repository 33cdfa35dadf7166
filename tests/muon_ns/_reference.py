"""Independent NumPy/SciPy references used by the muon_ns tests (float64, no JAX)."""

import numpy as np
import scipy.linalg


def ns_numpy(x, rows, normalization="frobenius", eps=1e-8):
    """Plain float64 Newton-Schulz: X <- sum_j a_j (X X^T)^j X, on the short side."""
    x = np.asarray(x, np.float64)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    fro = np.linalg.norm(x)
    if normalization == "frobenius":
        x = x / (fro + eps)
    elif normalization == "max1_frobenius":
        x = x / max(1.0, fro)
    for row in rows:
        a = x @ x.T
        acc = np.zeros_like(a)
        power = np.eye(a.shape[0])
        for c in row:
            acc = acc + c * power
            power = power @ a
        x = acc @ x
    return x.T if tall else x


def polar_scipy(x):
    """Orthogonal factor U V^T of x, from scipy.linalg.polar (float64)."""
    x = np.asarray(x, np.float64)
    if x.shape[0] >= x.shape[1]:
        u, _ = scipy.linalg.polar(x, side="right")
        return u
    u, _ = scipy.linalg.polar(x.T, side="right")
    return u.T


def residual_on_range(x):
    """||I - X X^T||_op restricted to the range (nonzero singular values)."""
    s = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)
    s = s[s > 1e-12 * s.max()]
    return float(np.max(np.abs(1 - s**2)))
