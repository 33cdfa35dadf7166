"""Evaluation measures against scikit-learn and direct computation."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import NearestCentroid

import seeg_embed as S


def test_nearest_centroid_matches_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)) + np.repeat(np.eye(3) * 2, 20, 0)
    y = np.repeat([4, 7, 9], 20)
    q = rng.normal(size=(25, 3)) * 2
    ref = NearestCentroid().fit(x, y).predict(q)
    np.testing.assert_array_equal(S.nearest_centroid(x, y, q), ref)


def test_accuracy_and_clusters():
    scores = S.accuracy_scores([0, 0, 0, 1], [0, 0, 1, 1])
    assert scores == {"accuracy": 0.75, "balanced_accuracy": pytest.approx((2 / 3 + 1) / 2)}
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 10)
    x = np.eye(3)[y] * 10 + 0.1 * rng.normal(size=(30, 3))
    c = S.cluster_agreement(x, y)
    assert c["ari"] == pytest.approx(1.0) and c["silhouette"] > 0.9
    noise = S.cluster_agreement(rng.normal(size=(30, 3)), y)
    assert noise["ari"] < 0.3 and noise["silhouette"] < 0.1
    np.testing.assert_allclose(S.fold_hemisphere([[-3.0, 1, 2], [4, 5, 6]]), [[3, 1, 2], [4, 5, 6]])


def test_threshold_and_pair_discrimination():
    d = np.array([0.1, 0.2, 0.3, 0.9, 1.0, 1.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    theta = S.fit_distance_threshold(d, same)
    assert 0.3 < theta < 0.9
    s = S.pair_discrimination(d, same, theta)
    assert s.balanced_accuracy == 1.0 and s.auc == 1.0 and s.n_pairs == 6
    s = S.pair_discrimination(d, same, 0.15)
    assert s.balanced_accuracy == pytest.approx(0.5 * (1 / 3 + 1))


def test_linear_baseline_matches_least_squares_on_the_calibration_data():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(2, 5000))
    mix = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.3, -0.7]])
    cal = mix @ src + 0.1 * rng.normal(size=(4, 5000)) + np.array([[1], [0], [-2], [3]])
    base = S.LinearBaseline(cal, ridge=0.0)
    win = mix @ rng.normal(size=(2, 50)) + np.array([[1], [0], [-2], [3]])
    mask = np.array([False, True, False, True])
    pred = base.predict(win, mask)
    for m in (1, 3):
        ref = LinearRegression().fit(cal[[0, 2]].T, cal[m]).predict(win[[0, 2]].T)
        np.testing.assert_allclose(pred[m], ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(pred[~mask], win[~mask])


def test_mean_of_others():
    w = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    cm = np.array([[1, 1, 1], [1, 1, 0]], bool)
    tm = np.array([[1, 0, 0], [0, 1, 0]], bool)
    out = S.mean_of_others(w, cm, tm)
    np.testing.assert_allclose(out[0, 0], (w[0, 1] + w[0, 2]) / 2)
    np.testing.assert_allclose(out[1, 1], w[1, 0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="features contain NaN or inf"):
        S.nearest_centroid(np.array([[np.nan, 1.0]]), np.array([0]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"test features must be \[m, 2\]"):
        S.nearest_centroid(np.zeros((2, 2)), np.array([0, 1]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="need >= 2 labels"):
        S.cluster_agreement(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="need both same and different pairs"):
        S.fit_distance_threshold([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="zero channels left after masking"):
        S.LinearBaseline(np.random.default_rng(0).normal(size=(2, 100))).predict(
            np.zeros((2, 5)), np.array([True, True]))
    with pytest.raises(ValueError, match="a window has zero channels left after masking"):
        S.mean_of_others(np.zeros((1, 2, 3)), np.ones((1, 2), bool), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="calibration contains NaN or inf"):
        S.LinearBaseline(np.full((2, 10), np.nan))
    with pytest.raises(ValueError, match="accuracy_scores: need equal non-empty label arrays"):
        S.accuracy_scores([], [])
