"""Evaluation: accuracy, macro-F1, confusion, false positives on noise-only clips, SNR bins.

Pure NumPy functions of integer labels and predictions (or scores); they check their inputs
and never return NaN: an empty SNR bin is reported with ``count = 0`` and no accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "bootstrap_ci",
    "confusion_matrix",
    "false_positive_rate",
    "fpr_at_recall",
    "macro_f1",
    "per_snr_accuracy",
]


def _labels_preds(fn: str, labels: Any, preds: Any, num_classes: int | None = None):
    y = np.asarray(labels)
    p = np.asarray(preds)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"{fn}: labels and preds must be 1-D of the same length, got shapes "
                         f"{y.shape} and {p.shape}")
    if y.size == 0:
        raise ValueError(f"{fn}: labels is empty")
    for name, a in (("labels", y), ("preds", p)):
        if a.dtype.kind not in "iu":
            raise TypeError(f"{fn}: {name} must be integer class indices, got dtype {a.dtype}")
        if a.min() < 0 or (num_classes is not None and a.max() >= num_classes):
            raise ValueError(f"{fn}: {name} must lie in [0, {num_classes}), got values from "
                             f"{a.min()} to {a.max()}")
    return y, p


def accuracy(labels: Any, preds: Any) -> float:
    """Fraction of ``preds == labels``."""
    y, p = _labels_preds("accuracy", labels, preds)
    return float(np.mean(y == p))


def confusion_matrix(labels: Any, preds: Any, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of clips of class ``i`` predicted as ``j``."""
    y, p = _labels_preds("confusion_matrix", labels, preds, num_classes)
    c = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(c, (y, p), 1)
    return c


def macro_f1(labels: Any, preds: Any, num_classes: int) -> float:
    """Unweighted mean over the ``num_classes`` classes of ``F1 = 2 TP / (2 TP + FP + FN)``.

    A class with no true and no predicted clips has F1 = 0 (scikit-learn's
    ``f1_score(average="macro", labels=range(K), zero_division=0)``).
    """
    c = confusion_matrix(labels, preds, num_classes)
    tp = np.diag(c).astype(np.float64)
    denom = 2 * tp + (c.sum(0) - tp) + (c.sum(1) - tp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.mean(f1))


def false_positive_rate(labels: Any, preds: Any, noise_class: int = 0) -> float:
    """Fraction of noise-only clips (``labels == noise_class``) predicted as some call class.

    Raises:
      ValueError: if there are no noise-only clips.
    """
    y, p = _labels_preds("false_positive_rate", labels, preds)
    noise = y == noise_class
    if not noise.any():
        raise ValueError(f"false_positive_rate: no clips of the noise class {noise_class}")
    return float(np.mean(p[noise] != noise_class))


def fpr_at_recall(scores: Any, labels: Any, positives: Any, recall: float = 0.8,
                  noise_class: int = 0) -> tuple[float, float]:
    """False-positive rate on noise-only clips at the threshold giving ``recall`` on ``positives``.

    ``scores`` are call-presence scores (e.g. ``1 - p(noise)``). The threshold ``tau`` is the
    largest value for which at least ``recall`` of the clips selected by ``positives``
    (e.g. call clips at low SNR) score ``>= tau``; the result is the fraction of noise-only
    clips scoring ``>= tau``. A detector comparison at equal sensitivity.

    Returns:
      ``(fpr, tau)``.

    Raises:
      ValueError: mismatched lengths, no positive or no noise-only clips, recall outside
        (0, 1], non-finite scores.
    """
    fn = "fpr_at_recall"
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels)
    pos = np.asarray(positives, bool)
    if s.ndim != 1 or y.shape != s.shape or pos.shape != s.shape:
        raise ValueError(f"{fn}: scores, labels and positives must be 1-D of one length, got "
                         f"{s.shape}, {y.shape}, {pos.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{fn}: scores contain NaN or inf")
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"{fn}: recall must be in (0, 1], got {recall}")
    if not pos.any():
        raise ValueError(f"{fn}: positives selects no clips")
    noise = y == noise_class
    if not noise.any():
        raise ValueError(f"{fn}: no clips of the noise class {noise_class}")
    ranked = np.sort(s[pos])[::-1]
    k = int(np.ceil(recall * ranked.size)) - 1
    tau = float(ranked[k])
    return float(np.mean(s[noise] >= tau)), tau


def per_snr_accuracy(labels: Any, preds: Any, snr_db: Any, edges: Any,
                     noise_class: int = 0) -> list[dict[str, Any]]:
    """Accuracy of call clips in SNR bins ``[edges[i], edges[i+1])`` (noise-only clips excluded).

    Returns:
      One dict per bin: ``lo``, ``hi``, ``count`` and (when ``count > 0``) ``accuracy``.
    """
    y, p = _labels_preds("per_snr_accuracy", labels, preds)
    snr = np.asarray(snr_db, np.float64)
    e = np.asarray(edges, np.float64)
    if snr.shape != y.shape:
        raise ValueError(f"per_snr_accuracy: snr_db has shape {snr.shape}, labels {y.shape}")
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"per_snr_accuracy: edges must be increasing with >= 2 values, got {e}")
    out = []
    calls = y != noise_class
    for lo, hi in zip(e[:-1], e[1:], strict=True):
        sel = calls & (snr >= lo) & (snr < hi)
        row: dict[str, Any] = {"lo": float(lo), "hi": float(hi), "count": int(sel.sum())}
        if sel.any():
            row["accuracy"] = float(np.mean(y[sel] == p[sel]))
        out.append(row)
    return out


def bootstrap_ci(values: Any, *, num_resamples: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (1-D)."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"bootstrap_ci: values must be a non-empty finite 1-D array, got shape "
                         f"{v.shape}")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (num_resamples, v.size))].mean(1)
    a = (1.0 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))
