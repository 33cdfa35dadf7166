"""Importance of each sentence of a chain of thought, measured on resampled rollouts, with
bootstrap confidence intervals.

Notation (Thought Anchors / Thought Branches). A CoT has sentences ``s_0 … s_{N-1}``.
``S_i`` is a set of rollouts resampled from the prefix that ends *before* sentence ``i`` (so the
first sentence of each rollout replaces ``s_i``); ``S_N`` continues from the whole CoT. Each
rollout has a normalized final answer (``""`` if none) and is correct when it equals the
target answer. ``acc(S)`` is the fraction correct among the rollouts of ``S`` that gave an
answer (0 when none did, as the reference).

- Resampling importance: ``acc(S_{i+1}) − acc(S_i)`` and ``KL(S_i ‖ S_{i+1})``.
- Counterfactual importance: ``D_i ⊆ S_i`` holds the rollouts whose new first sentence has
  cosine similarity ``< τ`` (0.8) to ``s_i`` (the content really changed);
  ``acc(D_i) − acc(S_{i+1})`` and ``KL(D_i ‖ S_{i+1} ∪ (S_i \\ D_i))`` (the reference pools the
  similar resamples with ``S_{i+1}``; ``pool_similar=False`` compares with ``S_{i+1}`` alone).
  Both are 0 when ``D_i`` is empty, as in the reference.
- Different-trajectories fraction ``|D_i| / |S_i|`` and overdeterminedness
  ``1 − #unique(resampled first sentences) / |S_i|``.
- Forced-answer importance: the same two differences on ``F_i``, answers forced right after
  the prefix before ``s_i`` (end-of-thinking marker and answer prefix appended).

KL divergences are between answer distributions over the union ``V`` of the answers either
set gave (empty answers left out), with additive smoothing ``p(a) = (c(a) + α) / (n + α|V|)``;
``α = 1e-9`` by default as in the reference (nearly unsmoothed: an answer one set never gives
costs about ``p·log(p/1e-9)``), ``α = 1`` is Laplace smoothing. A KL is 0 when either set has
no answers.

Confidence intervals: percentile bootstrap. Each rollout set is resampled with replacement,
independently of the others (rollouts of different prefixes are independent draws); ``D_i``
is recomputed in each replicate from the resampled rollouts' similarity flags. The point
value is the statistic on the data, the interval the ``(1±ci)/2`` quantiles of ``n_boot``
replicates.

References:
  Bogdan, Macar, Nanda, Conmy, "Thought Anchors: Which LLM Reasoning Steps Matter?", 2025.
  Macar, Bogdan, Rajamanoharan, Nanda, "Thought Branches", 2025 (arXiv:2510.27484).
  Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

__all__ = [
    "Estimate",
    "RolloutSet",
    "accuracy",
    "answer_distribution",
    "bootstrap_mean",
    "kl_divergence",
    "sentence_importance",
]

SIMILARITY_THRESHOLD = 0.8


class Estimate(NamedTuple):
    """A statistic and its bootstrap confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class RolloutSet:
    """The rollouts resampled from one prefix.

    Attributes:
      answers: normalized final answer of each rollout (``""`` when none was given).
      correct: whether each answer equals the target answer.
      resampled: the first sentence of each rollout (the replacement of ``s_i``), or ``None``.
      similarity: cosine similarity of each resampled first sentence to the original ``s_i``,
        or ``None`` (needed only by the counterfactual metrics).
    """

    answers: tuple[str, ...]
    correct: np.ndarray
    resampled: tuple[str, ...] | None = None
    similarity: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.answers)
        if any(not isinstance(a, str) for a in self.answers):
            raise TypeError("RolloutSet: answers must be str (use '' for no answer)")
        correct = np.asarray(self.correct, bool)
        if correct.shape != (n,):
            raise ValueError(f"RolloutSet: correct must have shape ({n},), got {correct.shape}")
        if np.any(correct & (np.asarray(self.answers, object) == "")):
            raise ValueError("RolloutSet: a rollout without an answer cannot be correct")
        object.__setattr__(self, "answers", tuple(self.answers))
        object.__setattr__(self, "correct", correct)
        if self.resampled is not None:
            if len(self.resampled) != n:
                raise ValueError(f"RolloutSet: resampled has {len(self.resampled)} entries, "
                                 f"answers {n}")
            object.__setattr__(self, "resampled", tuple(self.resampled))
        if self.similarity is not None:
            sim = np.asarray(self.similarity, np.float64)
            if sim.shape != (n,) or not np.all(np.isfinite(sim)):
                raise ValueError(f"RolloutSet: similarity must be {n} finite numbers, got shape "
                                 f"{sim.shape}")
            object.__setattr__(self, "similarity", sim)

    @classmethod
    def from_answers(cls, answers: Sequence[str], target: str, **kwargs) -> RolloutSet:
        """Rollouts whose answers are compared with ``target`` (already normalized)."""
        answers = tuple(answers)
        return cls(answers, np.array([bool(a) and a == target for a in answers], bool), **kwargs)

    def __len__(self) -> int:
        return len(self.answers)


# -- statistics on count arrays (vectorised over bootstrap replicates) -------------------

def _acc(n_correct: np.ndarray, n_answered: np.ndarray) -> np.ndarray:
    return np.where(n_answered > 0, n_correct / np.maximum(n_answered, 1), 0.0)


def _kl(c1: np.ndarray, c2: np.ndarray, alpha: float) -> np.ndarray:
    """KL between rows of answer counts ``[..., V]`` over the answers either row has."""
    support = (c1 + c2) > 0
    V = support.sum(-1, keepdims=True)
    n1, n2 = c1.sum(-1, keepdims=True), c2.sum(-1, keepdims=True)
    p = (c1 + alpha) / (n1 + alpha * V)
    q = (c2 + alpha) / (n2 + alpha * V)
    terms = np.where(support, p * (np.log(p) - np.log(q)), 0.0)
    kl = np.maximum(terms.sum(-1), 0.0)
    return np.where((n1[..., 0] > 0) & (n2[..., 0] > 0), kl, 0.0)


def _check_alpha(who, alpha):
    if not isinstance(alpha, (int, float)) or not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"{who}: alpha (additive smoothing) must be a finite float > 0, got "
                         f"{alpha!r}")


def _check_set(who: str, name: str, s, min_n: int = 2) -> RolloutSet:
    if not isinstance(s, RolloutSet):
        raise TypeError(f"{who}: {name} must be a RolloutSet, got {type(s).__name__}")
    if len(s) < min_n:
        raise ValueError(f"{who}: {name} has {len(s)} rollouts; a distribution needs n >= "
                         f"{min_n}")
    return s


def accuracy(rollouts: RolloutSet) -> float:
    """``acc(S)``: the fraction correct among rollouts that gave an answer (0 if none did)."""
    s = _check_set("accuracy", "rollouts", rollouts, 1)
    answered = np.array([a != "" for a in s.answers])
    return float(_acc(np.sum(s.correct), np.sum(answered)))


def answer_distribution(rollouts: RolloutSet) -> dict[str, float]:
    """Fraction of each non-empty answer among the answered rollouts, most frequent first."""
    s = _check_set("answer_distribution", "rollouts", rollouts, 1)
    given = [a for a in s.answers if a]
    if not given:
        return {}
    vals, counts = np.unique(np.array(given, object), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {str(vals[i]): float(counts[i] / len(given)) for i in order}


def kl_divergence(p: RolloutSet, q: RolloutSet, *, alpha: float = 1e-9) -> float:
    """``KL(P ‖ Q)`` between the answer distributions of two rollout sets (smoothed, >= 0)."""
    _check_alpha("kl_divergence", alpha)
    p, q = _check_set("kl_divergence", "p", p), _check_set("kl_divergence", "q", q)
    enc = _Encoder([p, q])
    return float(_kl(enc.counts(p), enc.counts(q), float(alpha)))


class _Encoder:
    """Answers → column ids, shared by every set of one comparison."""

    def __init__(self, sets: Sequence[RolloutSet]):
        vocab = sorted({a for s in sets for a in s.answers if a})
        self.index = {a: k for k, a in enumerate(vocab)}
        self.V = len(vocab)

    def ids(self, s: RolloutSet) -> np.ndarray:
        return np.array([self.index.get(a, -1) for a in s.answers], np.int64)

    def counts(self, s: RolloutSet, rows: np.ndarray | None = None) -> np.ndarray:
        """Answer counts ``[V]``, or ``[B, V]`` over bootstrap index rows ``[B, n]``."""
        ids = self.ids(s)
        if rows is None:
            return np.bincount(ids[ids >= 0], minlength=self.V).astype(np.float64)
        picked = ids[rows]
        out = np.zeros((rows.shape[0], self.V + 1))
        np.add.at(out, (np.arange(rows.shape[0])[:, None], np.where(picked >= 0, picked,
                                                                       self.V)), 1.0)
        return out[:, : self.V]


def _rows(key: jax.Array, n_boot: int, n: int) -> np.ndarray:
    """``[1 + n_boot, n]`` indices: the identity row (the point value), then resamples."""
    draws = np.asarray(jax.random.randint(key, (n_boot, n), 0, n))
    return np.concatenate([np.arange(n)[None], draws])


def _estimate(values: np.ndarray, ci: float) -> Estimate:
    lo, hi = np.quantile(values[1:], [(1 - ci) / 2, (1 + ci) / 2])
    return Estimate(float(values[0]), float(lo), float(hi))


def _check_boot(who, n_boot, ci, key):
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"{who}: n_boot must be a positive int, got {n_boot!r}")
    if not isinstance(ci, float) or not 0 < ci < 1:
        raise ValueError(f"{who}: ci must be a float in (0, 1), got {ci!r}")
    if not isinstance(key, jax.Array) or not jax.dtypes.issubdtype(key.dtype,
                                                                   jax.dtypes.prng_key):
        raise TypeError(f"{who}: key must be a typed key from jax.random.key(seed), got "
                        f"{type(key).__name__}")


def sentence_importance(sets: Sequence[RolloutSet], *, forced: Sequence[RolloutSet] | None = None,
                        threshold: float = SIMILARITY_THRESHOLD, alpha: float = 1e-9,
                        pool_similar: bool = True, n_boot: int = 1000, ci: float = 0.95,
                        key: jax.Array) -> list[dict[str, Estimate]]:
    """Every importance metric of every sentence, with bootstrap CIs.

    Args:
      sets: ``S_0 … S_N`` (``N + 1`` rollout sets for ``N`` sentences; ``S_i`` resampled from
        the prefix before sentence ``i``, ``S_N`` from the whole CoT). ``S_0 … S_{N-1}`` need
        ``similarity`` for the counterfactual metrics and ``resampled`` for overdeterminedness.
      forced: optional ``F_0 … F_N``, forced-answer rollouts from the same prefixes.
      threshold: cosine below which a resampled sentence counts as different (0.8).
      alpha: additive smoothing of the KL divergences.
      pool_similar: compare ``D_i`` with ``S_{i+1}`` plus the similar resamples (reference).
      n_boot: bootstrap replicates.
      ci: confidence level of the intervals.
      key: ``jax.random.key`` for the bootstrap (sentence ``i`` uses ``fold_in(key, i)``).

    Returns:
      For each sentence ``i < N`` a dict of :class:`Estimate` keyed by
      ``resampling_importance_accuracy``, ``resampling_importance_kl``,
      ``counterfactual_importance_accuracy``, ``counterfactual_importance_kl``,
      ``different_trajectories_fraction``, ``overdeterminedness`` (when ``resampled`` is
      given), ``accuracy`` (of ``S_i``), and ``forced_importance_accuracy`` /
      ``forced_importance_kl`` / ``forced_accuracy`` with ``forced``.

    Raises:
      ValueError: fewer than 2 sets, a set with fewer than 2 rollouts, a missing similarity,
        ``forced`` of another length, or bad bootstrap settings.
    """
    who = "sentence_importance"
    _check_boot(who, n_boot, ci, key)
    _check_alpha(who, alpha)
    if isinstance(sets, RolloutSet) or len(sets) < 2:
        raise ValueError(f"{who}: sets must hold S_0 … S_N (at least 2 rollout sets), got "
                         f"{len(sets) if not isinstance(sets, RolloutSet) else 'one set'}")
    sets = [_check_set(who, f"sets[{i}]", s) for i, s in enumerate(sets)]
    if forced is not None:
        if len(forced) != len(sets):
            raise ValueError(f"{who}: forced has {len(forced)} sets but sets has {len(sets)}")
        forced = [_check_set(who, f"forced[{i}]", s) for i, s in enumerate(forced)]
    if not 0 < threshold <= 1:
        raise ValueError(f"{who}: threshold must lie in (0, 1], got {threshold!r}")
    out = []
    for i in range(len(sets) - 1):
        cur, nxt = sets[i], sets[i + 1]
        if cur.similarity is None:
            raise ValueError(f"{who}: sets[{i}] has no similarity (cosine of each resampled "
                             "sentence to the original); embed them first")
        k_cur, k_nxt, k_fc, k_fn = jax.random.split(jax.random.fold_in(key, i), 4)
        rc, rn = _rows(k_cur, n_boot, len(cur)), _rows(k_nxt, n_boot, len(nxt))
        m = _pair_metrics(cur, nxt, rc, rn, threshold, float(alpha), pool_similar)
        if forced is not None:
            fc, fn = forced[i], forced[i + 1]
            m.update(_forced_metrics(fc, fn, _rows(k_fc, n_boot, len(fc)),
                                     _rows(k_fn, n_boot, len(fn)), float(alpha)))
        out.append({name: _estimate(v, ci) for name, v in m.items()})
    return out


def _answered_correct(s: RolloutSet, rows: np.ndarray, mask: np.ndarray | None = None):
    answered = np.array([a != "" for a in s.answers])
    w = np.ones(len(s), bool) if mask is None else mask
    return ((s.correct & w)[rows]).sum(1), ((answered & w)[rows]).sum(1)


def _pair_metrics(cur, nxt, rc, rn, threshold, alpha, pool_similar):
    enc = _Encoder([cur, nxt])
    acc_cur = _acc(*_answered_correct(cur, rc))
    acc_nxt = _acc(*_answered_correct(nxt, rn))
    c_cur, c_nxt = enc.counts(cur, rc), enc.counts(nxt, rn)
    different = cur.similarity < threshold
    acc_d = _acc(*_answered_correct(cur, rc, different))
    ids = enc.ids(cur)
    n_d = different[rc].sum(1)
    c_d = _masked_counts(ids, rc, different, enc.V)
    c_sim = c_cur - c_d
    cf_kl = _kl(c_d, c_nxt + (c_sim if pool_similar else 0.0), alpha)
    has_d = n_d > 0
    m = {
        "accuracy": acc_cur,
        "resampling_importance_accuracy": acc_nxt - acc_cur,
        "resampling_importance_kl": _kl(c_cur, c_nxt, alpha),
        "counterfactual_importance_accuracy": np.where(has_d, acc_d - acc_nxt, 0.0),
        "counterfactual_importance_kl": np.where(has_d, cf_kl, 0.0),
        "different_trajectories_fraction": n_d / rc.shape[1],
    }
    if cur.resampled is not None:
        sent_ids = np.unique(np.array(cur.resampled, object), return_inverse=True)[1]
        picked = np.sort(sent_ids[rc], axis=1)
        uniques = 1 + (np.diff(picked, axis=1) != 0).sum(1)
        m["overdeterminedness"] = 1.0 - uniques / rc.shape[1]
    return m


def _masked_counts(ids, rows, mask, V):
    picked = np.where(mask[rows] & (ids[rows] >= 0), ids[rows], V)
    out = np.zeros((rows.shape[0], V + 1))
    np.add.at(out, (np.arange(rows.shape[0])[:, None], picked), 1.0)
    return out[:, :V]


def _forced_metrics(fc, fn, rc, rn, alpha):
    enc = _Encoder([fc, fn])
    acc_c, acc_n = _acc(*_answered_correct(fc, rc)), _acc(*_answered_correct(fn, rn))
    return {"forced_accuracy": acc_c,
            "forced_importance_accuracy": acc_n - acc_c,
            "forced_importance_kl": _kl(enc.counts(fc, rc), enc.counts(fn, rn), alpha)}


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 1000, ci: float = 0.95,
                   key: jax.Array) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap interval (e.g. over problems).

    Raises:
      ValueError: fewer than 2 values, non-finite values or bad bootstrap settings.
    """
    _check_boot("bootstrap_mean", n_boot, ci, key)
    x = np.asarray(values, np.float64).reshape(-1)
    if x.size < 2:
        raise ValueError(f"bootstrap_mean: values needs n >= 2 numbers, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_mean: values has NaN or infinite entries")
    rows = _rows(key, n_boot, x.size)
    return _estimate(x[rows].mean(1), ci)
