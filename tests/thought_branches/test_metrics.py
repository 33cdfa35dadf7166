"""Every importance metric against hand-computed values on a fixed toy rollout set."""

import math

import jax
import numpy as np
import pytest

from llm_tools.thought_branches import (
    RolloutSet,
    accuracy,
    answer_distribution,
    bootstrap_mean,
    kl_divergence,
    sentence_importance,
)

KEY = jax.random.key(0)


def toy_sets():
    """Two sentences, S_0, S_1, S_2 of four rollouts each; the target answer is "7"."""
    s0 = RolloutSet.from_answers(["7", "7", "5", ""], "7", resampled=["a", "b", "b", "a"],
                                 similarity=[0.9, 0.5, 0.3, 0.95])
    s1 = RolloutSet.from_answers(["7", "7", "7", "5"], "7", resampled=["c", "d", "e", "f"],
                                 similarity=[0.85, 0.85, 0.2, 0.1])
    s2 = RolloutSet.from_answers(["7", "7", "7", "7"], "7")
    return [s0, s1, s2]


def test_toy_values_by_hand():
    m = sentence_importance(toy_sets(), alpha=1.0, n_boot=200, key=KEY)
    v = [{k: e.value for k, e in mi.items()} for mi in m]
    # acc(S_0) = 2/3 (the unanswered rollout is left out), acc(S_1) = 3/4, acc(S_2) = 1
    assert v[0]["accuracy"] == pytest.approx(2 / 3)
    assert v[0]["resampling_importance_accuracy"] == pytest.approx(3 / 4 - 2 / 3)
    assert v[1]["resampling_importance_accuracy"] == pytest.approx(1 / 4)
    # Laplace: p = (3/5, 2/5), q = (4/6, 2/6) -> 0.6 ln 0.9 + 0.4 ln 1.2
    assert v[0]["resampling_importance_kl"] == pytest.approx(0.0097123, abs=1e-6)
    # p = (4/6, 2/6), q = (5/6, 1/6) -> (2/3) ln 0.8 + (1/3) ln 2
    assert v[1]["resampling_importance_kl"] == pytest.approx(0.0822867, abs=1e-6)
    # D_0 = rollouts 1, 2 (answers 7, 5): acc 1/2; vs acc(S_1) = 3/4
    assert v[0]["counterfactual_importance_accuracy"] == pytest.approx(-0.25)
    assert v[1]["counterfactual_importance_accuracy"] == pytest.approx(-0.5)
    # KL(D_0 || S_1 + similar of S_0): p = (1/2, 1/2), q = (5/7, 2/7)
    assert v[0]["counterfactual_importance_kl"] == pytest.approx(0.1014704, abs=1e-6)
    # KL(D_1 || S_2 + similar of S_1): p = (1/2, 1/2), q = (7/8, 1/8)
    assert v[1]["counterfactual_importance_kl"] == pytest.approx(0.4133393, abs=1e-6)
    assert v[0]["different_trajectories_fraction"] == 0.5
    assert v[0]["overdeterminedness"] == 0.5  # two distinct sentences among four
    assert v[1]["overdeterminedness"] == 0.0


def test_counterfactual_kl_without_pooling_and_unsmoothed():
    m = sentence_importance(toy_sets(), alpha=1e-9, pool_similar=False, n_boot=10, key=KEY)
    # D_1 = (7, 5) against S_2 = (7, 7, 7, 7): the answer 5 is absent from S_2
    a = 1e-9
    p = [(1 + a) / (2 + 2 * a), (1 + a) / (2 + 2 * a)]
    q = [(4 + a) / (4 + 2 * a), a / (4 + 2 * a)]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert m[1]["counterfactual_importance_kl"].value == pytest.approx(expected, rel=1e-9)


def test_forced_metrics():
    forced = [RolloutSet.from_answers(a, "7") for a in
              (["5", "5", "7", "5"], ["7", "5", "7", "7"], ["7", "7", "7", "7"])]
    m = sentence_importance(toy_sets(), forced=forced, alpha=1.0, n_boot=10, key=KEY)
    assert m[0]["forced_accuracy"].value == 0.25
    assert m[0]["forced_importance_accuracy"].value == 0.5
    assert m[1]["forced_importance_accuracy"].value == 0.25
    # p = (4/6, 2/6) for 5/7 ... order: V = {5, 7}; F_0 counts (3, 1), F_1 (1, 3)
    expected = (4 / 6) * math.log((4 / 6) / (2 / 6)) + (2 / 6) * math.log((2 / 6) / (4 / 6))
    assert m[0]["forced_importance_kl"].value == pytest.approx(expected)


def _naive_cf_kl(answers, sim, nxt, alpha=1.0):
    d = [a for a, s in zip(answers, sim, strict=True) if s < 0.8 and a]
    pool = [a for a in nxt if a] + [a for a, s in zip(answers, sim, strict=True) if s >= 0.8 and a]
    if not d or not pool:
        return 0.0
    vocab = sorted(set(d) | set(pool))
    kl = 0.0
    for v in vocab:
        p = (d.count(v) + alpha) / (len(d) + alpha * len(vocab))
        q = (pool.count(v) + alpha) / (len(pool) + alpha * len(vocab))
        kl += p * math.log(p / q)
    return max(kl, 0.0)


def test_bootstrap_replicates_match_a_naive_loop():
    """The vectorised bootstrap equals a plain loop over the same resampling indices."""
    sets = toy_sets()
    n_boot = 64
    m = sentence_importance(sets, alpha=1.0, n_boot=n_boot, ci=0.9, key=KEY)
    k_cur, k_nxt, _, _ = jax.random.split(jax.random.fold_in(KEY, 0), 4)
    rc = np.asarray(jax.random.randint(k_cur, (n_boot, 4), 0, 4))
    rn = np.asarray(jax.random.randint(k_nxt, (n_boot, 4), 0, 4))
    s0, s1 = sets[0], sets[1]
    kls, overdet, ri = [], [], []
    for b in range(n_boot):
        ans = [s0.answers[j] for j in rc[b]]
        sim = [s0.similarity[j] for j in rc[b]]
        nxt = [s1.answers[j] for j in rn[b]]
        kls.append(_naive_cf_kl(ans, sim, nxt))
        overdet.append(1 - len({s0.resampled[j] for j in rc[b]}) / 4)
        a0 = [a for a in ans if a]
        acc0 = sum(a == "7" for a in a0) / len(a0) if a0 else 0.0
        acc1 = sum(a == "7" for a in nxt) / 4
        ri.append(acc1 - acc0)
    for name, vals in (("counterfactual_importance_kl", kls), ("overdeterminedness", overdet),
                       ("resampling_importance_accuracy", ri)):
        lo, hi = np.quantile(vals, [0.05, 0.95])
        assert m[0][name].low == pytest.approx(lo) and m[0][name].high == pytest.approx(hi), name


def test_interval_width_matches_normal_theory():
    rng = np.random.default_rng(0)
    n = 400
    a = RolloutSet.from_answers(["7" if x else "3" for x in rng.random(n) < 0.3], "7",
                                similarity=np.zeros(n))
    b = RolloutSet.from_answers(["7" if x else "3" for x in rng.random(n) < 0.6], "7")
    est = sentence_importance([a, b], n_boot=2000, key=KEY)[0]["resampling_importance_accuracy"]
    pa, pb = accuracy(a), accuracy(b)
    half = 1.96 * math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    assert (est.high - est.low) / 2 == pytest.approx(half, rel=0.15)
    assert est.low < est.value < est.high


def test_simple_statistics():
    s = toy_sets()[0]
    assert accuracy(s) == pytest.approx(2 / 3)
    assert answer_distribution(s) == {"7": pytest.approx(2 / 3), "5": pytest.approx(1 / 3)}
    assert kl_divergence(s, s) == 0.0
    assert kl_divergence(toy_sets()[0], toy_sets()[1], alpha=1.0) == pytest.approx(0.0097123,
                                                                                   abs=1e-6)
    e = bootstrap_mean([1.0, 2.0, 3.0, 4.0], n_boot=500, key=KEY)
    assert e.value == 2.5 and 1.0 <= e.low < 2.5 < e.high <= 4.0


def test_bad_inputs():
    s = toy_sets()
    one = RolloutSet.from_answers(["7"], "7", similarity=[0.1])
    with pytest.raises(ValueError, match=r"sentence_importance: sets\[0\] has 1 rollouts; a "
                                         r"distribution needs n >= 2"):
        sentence_importance([one, s[1]], key=KEY)
    with pytest.raises(ValueError, match="at least 2 rollout sets"):
        sentence_importance([s[0]], key=KEY)
    with pytest.raises(ValueError, match=r"sets\[2\] has no similarity"):
        sentence_importance([s[0], s[1], s[2], s[2]], key=KEY)
    with pytest.raises(ValueError, match="forced has 2 sets but sets has 3"):
        sentence_importance(s, forced=s[:2], key=KEY)
    with pytest.raises(ValueError, match="n_boot must be a positive int, got 0"):
        sentence_importance(s, n_boot=0, key=KEY)
    with pytest.raises(TypeError, match="key must be a typed key"):
        sentence_importance(s, key=0)
    with pytest.raises(ValueError, match="alpha .* must be a finite float > 0, got 0"):
        kl_divergence(s[0], s[1], alpha=0)
    with pytest.raises(ValueError, match="kl_divergence: p has 1 rollouts"):
        kl_divergence(one, s[1])
    with pytest.raises(ValueError, match="a rollout without an answer cannot be correct"):
        RolloutSet(("", "7"), np.array([True, True]))
    with pytest.raises(ValueError, match=r"correct must have shape \(2,\), got \(3,\)"):
        RolloutSet(("1", "7"), np.array([True, True, False]))
    with pytest.raises(ValueError, match="similarity must be 2 finite numbers"):
        RolloutSet(("1", "7"), np.array([False, True]), similarity=[0.1, float("nan")])
    with pytest.raises(ValueError, match="bootstrap_mean: values needs n >= 2"):
        bootstrap_mean([1.0], key=KEY)
    with pytest.raises(ValueError, match="bootstrap_mean: values has NaN"):
        bootstrap_mean([1.0, float("inf")], key=KEY)
    with pytest.raises(ValueError, match="accuracy: rollouts has 0 rollouts"):
        accuracy(RolloutSet((), np.zeros(0, bool)))
    with pytest.raises(TypeError, match="answer_distribution: rollouts must be a RolloutSet"):
        answer_distribution(["7"])
