"""Gumbel-top-k against exact Plackett–Luce probabilities; relaxed and straight-through masks."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from e3_pruner import (
    gumbel_noise,
    gumbel_topk,
    relaxed_topk_mask,
    straight_through_topk_mask,
    topk_mask,
)

THETA = np.array([1.2, 0.0, -0.7, 2.0, 0.4])


def plackett_luce_inclusion(theta, k):
    """P(l is among the first k draws without replacement), by enumerating ordered draws."""
    w = np.exp(np.asarray(theta, np.float64))
    L = len(w)
    incl = np.zeros(L)
    set_prob = {}
    for seq in itertools.permutations(range(L), k):
        p, left = 1.0, w.sum()
        for i in seq:
            p *= w[i] / left
            left -= w[i]
        incl[list(seq)] += p
        key = tuple(sorted(seq))
        set_prob[key] = set_prob.get(key, 0.0) + p
    return incl, set_prob


def test_enumeration_reference_is_a_distribution():
    incl, sets = plackett_luce_inclusion(THETA, 2)
    assert abs(sum(sets.values()) - 1) < 1e-12 and abs(incl.sum() - 2) < 1e-12
    # k = 1: the first draw is softmax(theta)
    incl1, _ = plackett_luce_inclusion(THETA, 1)
    np.testing.assert_allclose(incl1, np.exp(THETA) / np.exp(THETA).sum(), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_gumbel_topk_inclusion_matches_plackett_luce(k):
    n = 100_000
    keys = jax.random.split(jax.random.key(k), n)
    idx = np.asarray(jax.jit(jax.vmap(lambda kk: gumbel_topk(kk, jnp.asarray(THETA), k)))(keys))
    assert idx.shape == (n, k) and idx.dtype == np.int32
    # exactly k distinct layers in every sample
    assert all(len(set(row)) == k for row in idx[:2000])
    assert np.all(np.sort(idx, axis=1)[:, 1:] != np.sort(idx, axis=1)[:, :-1])
    freq = np.bincount(idx.ravel(), minlength=len(THETA)) / n
    exact, sets = plackett_luce_inclusion(THETA, k)
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(freq - exact) <= 5 * se + 1e-12), (freq, exact, se)
    # the first draw is softmax(theta) (the PL first stage)
    first = np.bincount(idx[:, 0], minlength=len(THETA)) / n
    p1 = np.exp(THETA) / np.exp(THETA).sum()
    assert np.all(np.abs(first - p1) <= 5 * np.sqrt(p1 * (1 - p1) / n))
    # the whole set distribution: chi-square against the enumerated set probabilities
    observed = {}
    for row in map(tuple, np.sort(idx, axis=1)):
        observed[row] = observed.get(row, 0) + 1
    chi2 = sum((observed.get(s, 0) - n * p) ** 2 / (n * p) for s, p in sets.items())
    dof = len(sets) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), chi2


def test_uniform_noise_would_fail_the_inclusion_test():
    # Mutation check of the test's power: top-k of theta + Uniform noise is not Plackett-Luce.
    n = 100_000
    u = jax.random.uniform(jax.random.key(0), (n, len(THETA)))
    idx = np.asarray(jax.lax.top_k(jnp.asarray(THETA) + u, 2)[1])
    freq = np.bincount(idx.ravel(), minlength=len(THETA)) / n
    exact, _ = plackett_luce_inclusion(THETA, 2)
    assert np.any(np.abs(freq - exact) > 5 * np.sqrt(exact * (1 - exact) / n))


def test_topk_mask_and_gumbel_topk_share_the_noise():
    key = jax.random.key(7)
    idx = gumbel_topk(key, THETA, 3)
    mask = topk_mask(jnp.asarray(THETA) + gumbel_noise(key, THETA.shape), 3)
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(idx))
    np.testing.assert_array_equal(topk_mask(jnp.array([0.1, 3.0, -1.0, 2.0]), 2), [0, 1, 0, 1])


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("t", [5.0, 1.0, 0.3, 0.05])
def test_relaxed_mask_sums_to_k(k, t):
    keys = jax.random.split(jax.random.key(3), 16)
    masks = jax.vmap(lambda kk: relaxed_topk_mask(kk, THETA, k, t))(keys)
    chex.assert_shape(masks, (16, len(THETA)))
    np.testing.assert_allclose(np.asarray(masks).sum(-1), k, rtol=1e-5)
    assert np.all(np.asarray(masks) >= 0)


def test_relaxed_mask_tends_to_the_hard_mask():
    for seed in range(8):
        key = jax.random.key(seed)
        theta = jax.random.normal(jax.random.key(100 + seed), (10,))
        perturbed = np.sort(np.asarray(theta + gumbel_noise(key, (10,))))[::-1]
        gap = perturbed[3] - perturbed[4]  # between the k-th and (k+1)-th, k = 4
        hard = np.zeros(10)
        hard[np.asarray(gumbel_topk(key, theta, 4))] = 1
        errs = [float(jnp.abs(relaxed_topk_mask(key, theta, 4, t) - hard).max())
                for t in (3.0, gap / 10, gap / 100)]
        # far from hard at a high temperature, within 1e-4 once t << the gap (the path to the
        # limit need not be monotone: at intermediate t an entry can exceed 1)
        assert errs[0] > 0.1, errs
        assert errs[2] < 1e-4 and errs[2] <= errs[1] + 1e-7, (gap, errs)
    # without noise it tends to the top-k of theta itself
    np.testing.assert_allclose(relaxed_topk_mask(None, THETA, 2, 1e-3), [1, 0, 0, 1, 0],
                               atol=1e-4)


def test_relaxed_k1_is_gumbel_softmax():
    key = jax.random.key(0)
    got = relaxed_topk_mask(key, THETA, 1, 0.7)
    want = jax.nn.softmax((jnp.asarray(THETA) + gumbel_noise(key, THETA.shape)) / 0.7)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_relaxed_k2_by_hand():
    # Two steps of the Xie & Ermon recursion written out, without noise.
    t = 0.5
    a1 = np.exp(THETA / t) / np.exp(THETA / t).sum()
    w2 = THETA + np.log(1 - a1)
    a2 = np.exp(w2 / t) / np.exp(w2 / t).sum()
    np.testing.assert_allclose(relaxed_topk_mask(None, THETA, 2, t), a1 + a2, rtol=1e-5)


def test_straight_through_value_is_hard_and_gradient_is_relaxed():
    key = jax.random.key(11)
    theta = jnp.asarray(THETA)
    st = straight_through_topk_mask(key, theta, 2, 0.5)
    hard = np.zeros(5)
    hard[np.asarray(gumbel_topk(key, theta, 2))] = 1
    np.testing.assert_array_equal(st, hard)
    c = jnp.arange(5.0) - 2.0
    g_st = jax.grad(lambda th: jnp.sum(straight_through_topk_mask(key, th, 2, 0.5) * c))(theta)
    g_rel = jax.grad(lambda th: jnp.sum(relaxed_topk_mask(key, th, 2, 0.5) * c))(theta)
    np.testing.assert_allclose(g_st, g_rel, rtol=1e-6)
    assert float(jnp.abs(g_st).max()) > 1e-3
    # relaxed masks are invariant to adding a constant to theta: gradients sum to zero
    assert abs(float(g_st.sum())) < 1e-5


def test_masks_jit_with_a_traced_temperature():
    f = jax.jit(lambda th, t: straight_through_topk_mask(jax.random.key(0), th, 2, t))
    np.testing.assert_allclose(float(f(jnp.asarray(THETA), 0.3).sum()), 2.0)
    g = jax.jit(lambda th, t: relaxed_topk_mask(jax.random.key(0), th, 2, t))
    np.testing.assert_allclose(float(g(jnp.asarray(THETA), jnp.float32(0.3)).sum()), 2.0,
                               rtol=1e-6)


@pytest.mark.parametrize("fn", [
    lambda k: gumbel_topk(jax.random.key(0), THETA, k),
    lambda k: relaxed_topk_mask(jax.random.key(0), THETA, k, 1.0),
    lambda k: straight_through_topk_mask(jax.random.key(0), THETA, k, 1.0),
    lambda k: topk_mask(THETA, k),
])
@pytest.mark.parametrize("k", [0, -1, 5, 6])
def test_bad_k(fn, k):
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 5"):
        fn(k)


def test_bad_k_type():
    with pytest.raises(TypeError, match="k must be an int"):
        gumbel_topk(jax.random.key(0), THETA, 2.0)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(t):
    with pytest.raises(ValueError, match="temperature must be a finite float > 0"):
        relaxed_topk_mask(jax.random.key(0), THETA, 2, t)
    with pytest.raises(ValueError, match="temperature must be a finite float > 0"):
        straight_through_topk_mask(jax.random.key(0), THETA, 2, t)


def test_bad_logits_key_eps():
    with pytest.raises(ValueError, match="logits must be a float array"):
        gumbel_topk(jax.random.key(0), jnp.arange(5), 2)
    with pytest.raises(ValueError, match="logits must be a float array"):
        topk_mask(jnp.float32(1.0), 1)
    with pytest.raises(TypeError, match="key must be a typed key"):
        gumbel_topk(jax.random.PRNGKey(0), THETA, 2)
    with pytest.raises(TypeError, match="key must be a typed key"):
        gumbel_noise(0, (3,))
    with pytest.raises(ValueError, match="eps must be > 0"):
        relaxed_topk_mask(None, THETA, 2, 1.0, eps=0.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        straight_through_topk_mask(None, THETA, 2, 1.0, eps=-1.0)
    with pytest.raises(TypeError, match="temperature must be a float scalar"):
        relaxed_topk_mask(None, THETA, 2, "hot")
