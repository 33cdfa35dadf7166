"""Isotonic projection against sklearn; grid inversion against a brute-force search."""

import jax
import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

import cqc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isotonic_matches_sklearn_weighted(seed):
    rng = np.random.default_rng(seed)
    k = 40
    y = np.cumsum(rng.normal(size=k)) * 0.3 + rng.normal(size=k)
    w = rng.uniform(0.2, 3.0, size=k)
    ref = IsotonicRegression().fit_transform(np.arange(k), y, sample_weight=w)
    got = np.asarray(cqc.isotonic_increasing(y.astype(np.float32), w.astype(np.float32)))
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_isotonic_batched_and_jit_vmap_agree_with_sklearn():
    rng = np.random.default_rng(3)
    ys = rng.normal(size=(5, 25)).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(cqc.isotonic_increasing))(ys))
    batched = np.asarray(cqc.isotonic_increasing(ys))
    for row, g, b in zip(ys, got, batched, strict=True):
        ref = IsotonicRegression().fit_transform(np.arange(25), row)
        np.testing.assert_allclose(g, ref, atol=1e-5)
        np.testing.assert_allclose(b, ref, atol=1e-5)


def test_isotonic_keeps_monotone_input_and_pools_decreasing_input():
    inc = np.array([0.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(np.asarray(cqc.isotonic_increasing(inc)), inc)
    dec = np.array([3.0, 2.0, 1.0])
    np.testing.assert_allclose(np.asarray(cqc.isotonic_increasing(dec)), [2.0, 2.0, 2.0])


def test_first_crossing_matches_brute_force():
    grid = np.linspace(-2, 2, 9).astype(np.float32)
    h = np.stack([grid - 0.3, grid + 5.0, grid - 5.0, np.where(grid < 0.5, -1.0, 1.0)])
    got = np.asarray(cqc.first_crossing(h.astype(np.float32), grid))
    # brute force on a fine grid of the piecewise-linear interpolant
    fine = np.linspace(-2, 2, 40001)
    ref = []
    for row in h:
        vals = np.interp(fine, grid, row)
        ok = np.nonzero(vals >= 0)[0]
        ref.append(fine[ok[0]] if ok.size else np.nan)
    assert np.isnan(ref[2])  # grid - 5 < 0 everywhere: no crossing on the grid
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_first_crossing_returns_nan_not_a_boundary_value():
    grid = np.linspace(0.0, 8.0, 5).astype(np.float32)
    h = np.array([[-1.0, -0.5, -0.2, -0.1, -0.01],  # crossing above the grid
                  [np.nan] * 5,  # undefined contrast (0/0)
                  [-1.0, np.nan, 0.5, 1.0, 1.0],  # one NaN poisons the row
                  [-1.0, -1.0, 1.0, 1.0, 1.0]], np.float32)
    got = np.asarray(cqc.first_crossing(h, grid))
    assert np.isnan(got[:3]).all()
    assert got[3] == pytest.approx(3.0)  # h goes -1 -> 1 between t=2 and t=4


def test_isotonic_bad_input():
    with pytest.raises(ValueError, match="y must have at least 1 point"):
        cqc.isotonic_increasing(np.float32(1.0))
    with pytest.raises(ValueError, match="w must be positive"):
        cqc.isotonic_increasing(np.ones(3), np.array([1.0, 0.0, 1.0]))


def test_first_crossing_bad_input():
    with pytest.raises(ValueError, match=r"grid must have shape \(3,\)"):
        cqc.first_crossing(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2 point"):
        cqc.first_crossing(np.zeros(1), np.zeros(1))
