"""Similarities against scipy, and the min-max normalisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from softstep import minmax_normalize, pairwise_similarity

RNG = np.random.default_rng(0)
Q = RNG.normal(size=(7, 5)).astype(np.float32)
K = RNG.normal(size=(9, 5)).astype(np.float32)


@pytest.mark.parametrize(
    "kind,reference",
    [
        ("neg_l2", -cdist(Q, K, "euclidean")),
        ("neg_l1", -cdist(Q, K, "cityblock")),
        ("dot", Q.astype(np.float64) @ K.T / 5),
        ("cosine", 1 - cdist(Q, K, "cosine")),
    ],
)
def test_against_scipy(kind, reference):
    np.testing.assert_allclose(np.asarray(pairwise_similarity(Q, K, kind)), reference,
                               rtol=1e-4, atol=1e-5)


def test_l2_gradient_finite_at_zero_distance():
    g = jax.grad(lambda q: jnp.sum(pairwise_similarity(q, q, "neg_l2")))(jnp.asarray(Q))
    assert np.all(np.isfinite(np.asarray(g)))


def test_minmax_normalize():
    s = np.array([[1.0, 3.0, 2.0, 9.0], [5.0, 5.0, 5.0, 5.0]], np.float32)
    valid = np.array([[True, True, True, False], [True, True, True, True]])
    out = np.asarray(minmax_normalize(s, valid))
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.5, 0.0])  # 9 is not a candidate
    np.testing.assert_allclose(out[1], [1.0, 1.0, 1.0, 1.0])  # all tied: all nearest


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"similarity must be one of \['neg_l2'.*got 'l3'"):
        pairwise_similarity(Q, K, "l3")
    with pytest.raises(ValueError, match="query has 5 features but keys has 4"):
        pairwise_similarity(Q, K[:, :4])
    with pytest.raises(ValueError, match=r"must be 2-D \[n, d\], got shapes \(5,\)"):
        pairwise_similarity(Q[0], K)
    with pytest.raises(ValueError, match=r"minmax_normalize: similarity must be 2-D"):
        minmax_normalize(np.zeros(3))
