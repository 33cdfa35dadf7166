"""Contrastive losses against hand-computed values and a loop implementation."""

import jax.numpy as jnp
import numpy as np
import pytest

import seeg_embed as S


def test_hadsell_hand_values():
    a = jnp.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = jnp.array([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0], [1.5, 0.0], [1.0, 1.0]])
    y = jnp.array([0, 1, 1, 1, 1])
    margins = [1.0, 1.0, 6.0, 2.0, 2.0]
    got = [float(S.contrastive_loss(a[i:i + 1], b[i:i + 1], y[i:i + 1], m)[0])
           for i, m in enumerate(margins)]
    # same region: d² = 25; different: max(0, m - d)²: m=1 -> 0; m=6 -> 1; d=0.5, m=2 -> 2.25;
    # identical embeddings of different regions, m=2 -> 4
    np.testing.assert_allclose(got, [25.0, 0.0, 1.0, 2.25, 4.0], rtol=1e-5)
    np.testing.assert_allclose(S.pair_distance(a, b), [5, 5, 5, 0.5, 0], atol=1e-5)


def test_hadsell_gradients_pull_and_push():
    import jax

    a, b = jnp.array([[0.0, 0.0]]), jnp.array([[0.6, 0.8]])  # d = 1
    g_same = jax.grad(lambda x: S.contrastive_loss(x, b, jnp.array([0]), 2.0).sum())(a)
    g_diff = jax.grad(lambda x: S.contrastive_loss(x, b, jnp.array([1]), 2.0).sum())(a)
    # same: d(d²)/da = 2(a - b) = [-1.2, -1.6]; different: -2(m - d) d'(d)/da = 2(a-b)/d*(m-d)
    np.testing.assert_allclose(g_same, [[-1.2, -1.6]], rtol=1e-5)
    np.testing.assert_allclose(g_diff, [[1.2, 1.6]], rtol=1e-5)


def supcon_loop(emb, labels, tau):
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    losses = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(np.exp(z[i] @ z[a] / tau) for a in range(len(z)) if a != i)
        losses.append(-np.mean([np.log(np.exp(z[i] @ z[p] / tau) / denom) for p in pos]))
    return np.mean(losses)


def test_supcon_matches_the_formula_loop():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(7, 4))
    labels = np.array([0, 0, 1, 1, 1, 2, 3])   # labels 2 and 3 have no positive
    got = float(S.supcon_loss(jnp.asarray(emb), jnp.asarray(labels), 0.5))
    assert got == pytest.approx(supcon_loop(emb, labels, 0.5), rel=1e-5)
    # pairs as labels: InfoNCE; valid mask drops rows entirely
    valid = np.array([1, 1, 1, 1, 0, 0, 0], bool)
    got = float(S.supcon_loss(jnp.asarray(emb), jnp.asarray(labels), 0.5, jnp.asarray(valid)))
    assert got == pytest.approx(supcon_loop(emb[valid], labels[valid], 0.5), rel=1e-5)


def test_supcon_prefers_clustered_embeddings():
    labels = np.repeat(np.arange(3), 4)
    centers = np.eye(3) * 5
    rng = np.random.default_rng(1)
    good = centers[labels] + 0.1 * rng.normal(size=(12, 3))
    bad = rng.normal(size=(12, 3))
    assert float(S.supcon_loss(jnp.asarray(good), labels)) < float(
        S.supcon_loss(jnp.asarray(bad), labels))


def test_bad_inputs():
    a = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match=r"emb_a \(3, 2\) and emb_b \(2, 2\) differ"):
        S.contrastive_loss(a, jnp.zeros((2, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"different must have shape \(3,\)"):
        S.contrastive_loss(a, a, jnp.zeros(2))
    with pytest.raises(ValueError, match="margin must be > 0"):
        S.contrastive_loss(a, a, jnp.zeros(3), 0.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        S.supcon_loss(a, jnp.zeros(4))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        S.supcon_loss(a, jnp.zeros(3), -1.0)
