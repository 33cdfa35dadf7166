"""Evaluation metrics against scikit-learn and hand-made cases."""

import numpy as np
import pytest
from sklearn import metrics as skm

import mgc


@pytest.fixture
def preds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 200)
    p = np.where(rng.uniform(size=200) < 0.7, y, rng.integers(0, 6, 200))
    return y, p


def test_against_sklearn(preds):
    y, p = preds
    assert mgc.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
    np.testing.assert_array_equal(mgc.confusion_matrix(y, p, 6),
                                  skm.confusion_matrix(y, p, labels=range(6)))
    assert mgc.macro_f1(y, p, 6) == pytest.approx(
        skm.f1_score(y, p, average="macro", labels=range(6), zero_division=0))
    # a class absent from both labels and predictions counts as F1 = 0
    assert mgc.macro_f1(y % 5, p % 5, 6) == pytest.approx(
        skm.f1_score(y % 5, p % 5, average="macro", labels=range(6), zero_division=0))


def test_false_positive_rates_by_hand():
    y = np.array([0, 0, 0, 0, 1, 2, 1, 2])
    p = np.array([0, 1, 0, 2, 1, 2, 0, 2])
    assert mgc.false_positive_rate(y, p) == 0.5
    scores = np.array([0.1, 0.9, 0.2, 0.6, 0.8, 0.7, 0.3, 0.95])
    low = np.array([False] * 4 + [True, True, True, False])
    # 2 of the 3 low-SNR calls must score >= tau: tau = 0.7; noise scores >= 0.7: one (0.9)
    fpr, tau = mgc.fpr_at_recall(scores, y, low, recall=2 / 3)
    assert tau == 0.7 and fpr == 0.25
    fpr, tau = mgc.fpr_at_recall(scores, y, low, recall=1.0)
    assert tau == 0.3 and fpr == 0.5


def test_per_snr_accuracy_and_bootstrap():
    y = np.array([1, 1, 2, 2, 0, 3])
    p = np.array([1, 0, 2, 2, 1, 3])
    snr = np.array([-10.0, -8.0, -1.0, 2.0, -9.0, 5.0])
    rows = mgc.per_snr_accuracy(y, p, snr, [-12, -6, 0, 6, 12])
    assert [r["count"] for r in rows] == [2, 1, 2, 0]
    assert [r.get("accuracy") for r in rows] == [0.5, 1.0, 1.0, None]
    v = np.random.default_rng(0).normal(1.0, 1.0, 400)
    lo, hi = mgc.bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo < 0.3


def test_bad_inputs():
    with pytest.raises(ValueError, match="labels and preds must be 1-D of the same length"):
        mgc.accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="labels is empty"):
        mgc.accuracy([], [])
    with pytest.raises(TypeError, match="preds must be integer class indices"):
        mgc.accuracy([1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="preds must lie in \\[0, 3\\)"):
        mgc.confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="no clips of the noise class 0"):
        mgc.false_positive_rate([1, 2], [1, 2])
    with pytest.raises(ValueError, match="positives selects no clips"):
        mgc.fpr_at_recall([0.1, 0.2], [0, 1], [False, False])
    with pytest.raises(ValueError, match="scores contain NaN"):
        mgc.fpr_at_recall([np.nan, 0.2], [0, 1], [False, True])
    with pytest.raises(ValueError, match="recall must be in \\(0, 1\\]"):
        mgc.fpr_at_recall([0.1, 0.2], [0, 1], [False, True], recall=0.0)
    with pytest.raises(ValueError, match="edges must be increasing"):
        mgc.per_snr_accuracy([1], [1], [0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="bootstrap_ci: values must be a non-empty finite"):
        mgc.bootstrap_ci([np.nan])
