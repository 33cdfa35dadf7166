"""Evaluation: zero-shot region assignment, clustering, pair discrimination, reconstruction
baselines.

* :func:`nearest_centroid`: assign each query to the label whose training centroid is
  closest (Euclidean); used both on embeddings and on MNI coordinates (hemisphere folded,
  ``|x|``, see :func:`fold_hemisphere`).
* :func:`cluster_agreement`: k-means with ``k`` = number of labels present (10 restarts),
  adjusted Rand index against the labels, and the silhouette of the labels themselves.
* :func:`fit_distance_threshold` / :func:`pair_discrimination`: same-region vs
  different-region decision ``d(a, b) < θ`` with ``θ`` chosen on training pairs to maximise
  balanced accuracy; also the ROC AUC of ``-d``.
* Masked-channel baselines: :func:`mean_of_others` (mean of the visible channels' windows)
  and :class:`LinearBaseline`, a per-subject least-squares map from the visible channels'
  simultaneous samples to each masked channel, ``ŷ_m(t) = Σ_v β_{m v} x_v(t)``, fit on that
  subject's calibration data (``β = (Σ_vv + λI)^{-1} Σ_vm`` from the calibration
  covariance, so any mask pattern is solved without refitting on raw data).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score, silhouette_score

__all__ = [
    "LinearBaseline",
    "PairScores",
    "accuracy_scores",
    "cluster_agreement",
    "fit_distance_threshold",
    "fold_hemisphere",
    "mean_of_others",
    "nearest_centroid",
    "pair_discrimination",
]


def _check_xy(x, y, where):
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if x.ndim != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"{where}: need features [n, d] and labels [n], got {x.shape} and "
                         f"{y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: features contain NaN or inf")
    return x, y


def fold_hemisphere(xyz: np.ndarray) -> np.ndarray:
    """MNI coordinates with ``x`` replaced by ``|x|`` (left and right mirrored together)."""
    xyz = np.array(xyz, np.float64, copy=True)
    xyz[..., 0] = np.abs(xyz[..., 0])
    return xyz


def nearest_centroid(train_x, train_y, test_x) -> np.ndarray:
    """Labels of the nearest training-class centroid for each test row.

    Raises:
      ValueError: on mismatched shapes, NaN/inf features or empty training data.
    """
    train_x, train_y = _check_xy(train_x, train_y, "nearest_centroid")
    test_x = np.asarray(test_x, np.float64)
    if test_x.ndim != 2 or test_x.shape[1] != train_x.shape[1]:
        raise ValueError(f"nearest_centroid: test features must be [m, {train_x.shape[1]}], got "
                         f"{test_x.shape}")
    if not len(train_y):
        raise ValueError("nearest_centroid: no training rows")
    if not np.all(np.isfinite(test_x)):
        raise ValueError("nearest_centroid: test features contain NaN or inf")
    classes = np.unique(train_y)
    centroids = np.stack([train_x[train_y == c].mean(0) for c in classes])
    d = ((test_x[:, None] - centroids[None]) ** 2).sum(-1)
    return classes[np.argmin(d, axis=1)]


def accuracy_scores(y_true, y_pred) -> dict[str, float]:
    """``{"accuracy", "balanced_accuracy"}`` (balanced: mean per-class recall)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(f"accuracy_scores: need equal non-empty label arrays, got "
                         f"{y_true.shape} and {y_pred.shape}")
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return {"accuracy": float(np.mean(y_true == y_pred)),
            "balanced_accuracy": float(np.mean(recalls))}


def cluster_agreement(x, labels, seed: int = 0) -> dict[str, float]:
    """k-means ARI against ``labels`` and the silhouette of ``labels`` in ``x``.

    Raises:
      ValueError: with fewer than 2 distinct labels or fewer rows than labels + 1.
    """
    x, labels = _check_xy(x, labels, "cluster_agreement")
    k = len(np.unique(labels))
    if k < 2 or len(labels) <= k:
        raise ValueError(f"cluster_agreement: need >= 2 labels and more rows than labels, got "
                         f"{k} labels for {len(labels)} rows")
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"ari": float(adjusted_rand_score(labels, pred)),
            "silhouette": float(silhouette_score(x, labels))}


class PairScores(NamedTuple):
    balanced_accuracy: float
    auc: float
    n_pairs: int


def fit_distance_threshold(distances, same) -> float:
    """The threshold ``θ`` maximising balanced accuracy of ``same = d < θ``.

    Raises:
      ValueError: if there are no pairs of one of the two kinds.
    """
    d, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    if d.shape != same.shape or not same.any() or same.all():
        raise ValueError("fit_distance_threshold: need both same and different pairs")
    cand = np.unique(d)
    cand = np.concatenate([cand[:1] - 1e-9, (cand[:-1] + cand[1:]) / 2, cand[-1:] + 1e-9])
    tpr = (d[same][None] < cand[:, None]).mean(1)
    tnr = (d[~same][None] >= cand[:, None]).mean(1)
    return float(cand[np.argmax(tpr + tnr)])


def pair_discrimination(distances, same, threshold: float) -> PairScores:
    """Balanced accuracy of ``d < threshold`` and ROC AUC of ``-d`` for same-region pairs."""
    d, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    if d.shape != same.shape or not same.any() or same.all():
        raise ValueError("pair_discrimination: need both same and different pairs")
    pred = d < threshold
    bal = 0.5 * (np.mean(pred[same]) + np.mean(~pred[~same]))
    return PairScores(float(bal), float(roc_auc_score(same, -d)), int(d.size))


def mean_of_others(windows: np.ndarray, channel_mask: np.ndarray, target_mask: np.ndarray
                   ) -> np.ndarray:
    """Predicts every channel as the mean of the visible real channels ``[B, C, W]``.

    Raises:
      ValueError: on mismatched shapes or a window with no visible channel.
    """
    w = np.asarray(windows, np.float64)
    cm, tm = np.asarray(channel_mask, bool), np.asarray(target_mask, bool)
    if w.shape[:2] != cm.shape or cm.shape != tm.shape:
        raise ValueError(f"mean_of_others: windows {w.shape}, channel_mask {cm.shape} and "
                         f"target_mask {tm.shape} do not match")
    vis = cm & ~tm
    n = vis.sum(1)
    if np.any(n == 0):
        raise ValueError("mean_of_others: a window has zero channels left after masking")
    mean = (w * vis[..., None]).sum(1) / n[:, None]
    return np.broadcast_to(mean[:, None], w.shape).copy()


class LinearBaseline:
    """Per-subject linear regression of masked channels on the simultaneous visible ones.

    Args:
      calibration: ``[C, T]`` calibration signal of one subject (real channels only).
      ridge: ``λ`` relative to the mean channel variance.

    Raises:
      ValueError: on a non-2-D or non-finite calibration signal.
    """

    def __init__(self, calibration: np.ndarray, ridge: float = 1e-3):
        x = np.asarray(calibration, np.float64)
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"LinearBaseline: calibration must be [channels, samples], got "
                             f"{x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("LinearBaseline: calibration contains NaN or inf")
        self.mean = x.mean(1)
        xc = x - self.mean[:, None]
        self.cov = xc @ xc.T / x.shape[1]
        self.ridge = float(ridge) * float(np.mean(np.diag(self.cov)))

    def predict(self, windows: np.ndarray, target_mask: np.ndarray) -> np.ndarray:
        """Predictions ``[C, W]`` for one window ``[C, W]``; masked rows are regressed on the
        visible ones, visible rows are returned unchanged.

        Raises:
          ValueError: on a shape mismatch or no visible channel.
        """
        w = np.asarray(windows, np.float64)
        tm = np.asarray(target_mask, bool)
        C = self.cov.shape[0]
        if w.ndim != 2 or w.shape[0] != C or tm.shape != (C,):
            raise ValueError(f"LinearBaseline.predict: windows must be [{C}, W] with a [{C}] "
                             f"mask, got {w.shape} and {tm.shape}")
        v, m = np.flatnonzero(~tm), np.flatnonzero(tm)
        if not v.size:
            raise ValueError("LinearBaseline.predict: zero channels left after masking")
        out = w.copy()
        if m.size:
            a = self.cov[np.ix_(v, v)] + self.ridge * np.eye(v.size)
            beta = np.linalg.solve(a, self.cov[np.ix_(v, m)])          # [V, M]
            xv = w[v] - self.mean[v, None]
            out[m] = self.mean[m, None] + beta.T @ xv
        return out
