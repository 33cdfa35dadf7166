"""Both NS paths stay finite and as accurate as exact arithmetic allows, for q up to 30.

The reference for each input is independent of our code: float64 NumPy SVD of M gives the
polar factor on M's range and the singular values of X_0, and the scalar NS map applied to
those in float64 gives the best error any implementation can reach after q steps (for
Jordan's quintic that is its oscillation band, not 0).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muon_ns

SCHEMES = ("jordan", "polar_express", "taylor2")
STEPS = (10, 20, 30)


def _inputs():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((48, 48)))
    v, _ = np.linalg.qr(rng.standard_normal((240, 48)))
    cond = (u * np.logspace(0, -4, 48)) @ v.T  # full rank, condition number 1e4
    return {
        "rank_deficient_wide": rng.standard_normal((48, 6)) @ rng.standard_normal((6, 240)),
        "rank_deficient_tall": rng.standard_normal((200, 3)) @ rng.standard_normal((3, 40)),
        "ill_conditioned_wide": cond,
        "gaussian_tall": rng.standard_normal((160, 32)),
        "bf16_wide": rng.standard_normal((32, 160)),
    }


def _reference(m, rows):
    """(U_r, V_r, ideal range error after the rows) in float64."""
    m = np.asarray(m, np.float64)
    u, s, vh = np.linalg.svd(m, full_matrices=False)
    r = int(np.sum(s > 1e-6 * s[0]))
    sig = s[:r] / (np.linalg.norm(m) + 1e-8)  # frobenius normalization
    for row in rows:
        sig = sum(c * sig ** (2 * j) for j, c in enumerate(row)) * sig
    return u[:, :r], vh[:r].T, float(np.max(np.abs(1.0 - sig)))


def _range_error(x_q, u_r, v_r):
    """||U_r^T (X_q - U_r V_r^T)||: the error on M's range (all of it for full rank)."""
    return float(np.linalg.norm(u_r.T @ np.asarray(x_q, np.float64) - v_r.T, 2))


def _check(name, m, method, gram_restart=muon_ns.GRAM_RESTART):
    """Returns a list of failures (empty when every scheme and q passes)."""
    bf16 = name.startswith("bf16")
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    tol = 0.08 if bf16 else 2e-3
    x = jnp.asarray(m, dtype)
    m_used = np.asarray(x.astype(jnp.float32), np.float64)  # what the code actually sees

    @jax.jit
    def run(a):
        return {(s, q): muon_ns.newton_schulz(a, s, q, method=method, gram_restart=gram_restart)
                for s in SCHEMES for q in STEPS}

    out = run(x)
    failures = []
    for (scheme, q), x_q in out.items():
        x_q = np.asarray(x_q.astype(jnp.float32))
        u_r, v_r, ideal = _reference(m_used, muon_ns.resolve_coeffs(scheme, q))
        if not np.all(np.isfinite(x_q)):
            failures.append((scheme, q, "non-finite"))
            continue
        err = _range_error(x_q, u_r, v_r)
        norm = float(np.linalg.norm(x_q.astype(np.float64), 2))
        if err > ideal + tol or norm > 1.25:  # 1.25: above every scheme's band
            failures.append((scheme, q, f"range error {err:.3g} (ideal {ideal:.3g}), "
                                        f"norm {norm:.3g}"))
    return failures


@pytest.mark.parametrize("name", list(_inputs()))
@pytest.mark.parametrize("method", ["direct", "gram"])
def test_ns_paths_stable_up_to_q30(name, method):
    assert _check(name, _inputs()[name], method) == []


def test_gram_without_restarts_is_caught():
    # The failure this guards against: carried over 30 steps without recomputing R from X,
    # the Gram form blows up on a rank-deficient input. The check above must see it.
    m = _inputs()["rank_deficient_wide"]
    failures = _check("rank_deficient_wide", m, "gram", gram_restart=30)
    assert any(f[0] == "jordan" for f in failures), failures


def test_auto_picks_gram_only_for_wide_enough_float_inputs():
    from muon_ns.newton_schulz import _use_gram

    assert _use_gram("auto", 5, 32, 128, jnp.float32)
    assert not _use_gram("auto", 5, 32, 96, jnp.float32)  # aspect 3 < GRAM_MIN_ASPECT
    assert not _use_gram("auto", 5, 32, 128, jnp.bfloat16)
    assert not _use_gram("auto", None, 32, 128, jnp.float32)  # traced q: direct
    assert not _use_gram("auto", 1, 32, 128, jnp.float32)
