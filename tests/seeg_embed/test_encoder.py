"""The Siamese CNN encoder: shapes, standardisation invariance, batching, channel means."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seeg_embed as S


@pytest.fixture(scope="module")
def model():
    return S.SiameseEncoder(16, rngs=nnx.Rngs(0))


def test_shapes_and_minimum_length(model):
    # (((1-1)*2+4 - 1)*2 + 32 - 1)*8 + 32 = 328 samples give one step after every conv
    assert model.min_length == 328
    out = model(jnp.ones((3, 328)) * jnp.arange(328))
    assert out.shape == (3, 16)
    with pytest.raises(ValueError, match="segments have 327 samples, fewer than the 328"):
        model(jnp.ones((2, 327)))
    with pytest.raises(ValueError, match=r"x must be \[batch, samples\]"):
        model(jnp.ones((2, 1, 400)))


def test_embedding_ignores_gain_and_offset(model):
    """Robust standardisation inside the model: a channel's gain and DC do not matter."""
    x = np.random.default_rng(0).normal(size=(4, 1000)).astype(np.float32)
    scaled = 7.5 * x - 30.0
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(scaled))),
                               np.asarray(model(jnp.asarray(x))), rtol=1e-4, atol=1e-4)
    z = np.asarray(S.robust_standardize(jnp.asarray(x)))
    med = np.median(x, axis=1, keepdims=True)
    mad = np.median(np.abs(x - med), axis=1, keepdims=True)
    np.testing.assert_allclose(z, np.clip((x - med) / (1.4826 * mad), -20, 20), rtol=1e-4,
                               atol=1e-4)


def test_train_mode_uses_batch_statistics_and_dropout(model):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 800)), jnp.float32)
    eval_out = model(x)
    train_a = model(x, train=True, key=jax.random.key(0))
    train_b = model(x, train=True, key=jax.random.key(1))
    assert not np.allclose(train_a, train_b)           # dropout masks differ
    assert not np.allclose(eval_out, train_a)
    with pytest.raises(ValueError, match="train=True with dropout needs a key"):
        model(x, train=True)


def test_embed_segments_batches_like_one_call(model):
    segs = np.random.default_rng(2).normal(size=(11, 500)).astype(np.float32)
    full = np.asarray(model(jnp.asarray(segs)))
    np.testing.assert_allclose(S.embed_segments(model, segs, batch_size=4), full, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        S.embed_segments(model, segs, batch_size=0)
    with pytest.raises(ValueError, match=r"segments must be \[M, L\]"):
        S.embed_segments(model, segs[0])


def test_channel_embeddings_are_means():
    e = np.arange(12, dtype=np.float32).reshape(6, 2)
    owner = np.array([2, 0, 2, 1, 0, 2])
    got = S.channel_embeddings(e, owner, 3)
    ref = np.stack([e[owner == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(got, ref)
    with pytest.raises(ValueError, match=r"channel\(s\) \[3\] have no segment"):
        S.channel_embeddings(e, owner, 4)
    with pytest.raises(ValueError, match=r"owner ids must be in \[0, 2\)"):
        S.channel_embeddings(e, owner, 2)


def test_constructor_bad_inputs():
    with pytest.raises(ValueError, match="dropout must be in"):
        S.SiameseEncoder(dropout=1.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="need 3 entries each"):
        S.SiameseEncoder(widths=(8, 8), rngs=nnx.Rngs(0))
