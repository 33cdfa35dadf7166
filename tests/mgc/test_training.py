"""Losses against NumPy formulas; the chunked training loop resumes exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import mgc


def test_soft_dice_and_segmentation_loss_against_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    g = rng.uniform(size=(3, 4, 5, 2)).astype(np.float32)
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    dice = 1 - (2 * (p * g).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + g.sum((1, 2, 3)) + 1)
    np.testing.assert_allclose(mgc.soft_dice_loss(z, g), dice, rtol=1e-5)
    bce = -(g * np.log(p) + (1 - g) * np.log(1 - p)).mean()
    np.testing.assert_allclose(mgc.segmentation_loss(z, g), bce + dice.mean(), rtol=1e-5)
    target = (g > 0.5).astype(np.float32)
    assert float(jnp.max(mgc.soft_dice_loss(40 * (2 * target - 1), target))) < 0.02


def test_classification_loss_against_numpy():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 6)).astype(np.float32)
    y = rng.integers(0, 6, 5)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    np.testing.assert_allclose(mgc.classification_loss(z, y), -logp[np.arange(5), y].mean(),
                               rtol=1e-5)


class Tiny(nnx.Module):
    def __init__(self, rngs):
        self.lin = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.lin(x)


def _problem():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.int32)
    return x, y


def test_train_chunks_learn_and_resume_exactly():
    x, y = _problem()
    loss = lambda m, b: mgc.classification_loss(m(b[0]), b[1])  # noqa: E731
    graphdef, p0 = mgc.init_params(Tiny, 0)
    opt = mgc.make_optimizer(0.1, 40, warmup_steps=5)

    def train(chunks, steps):
        fn = mgc.make_train_chunk(graphdef, loss, opt, batch_size=16, steps=steps)
        p = jax.tree.map(jnp.copy, p0)
        s, k = opt.init(p), jax.random.key(0)
        for _ in range(chunks):
            p, s, k, mean = fn(p, s, k, x, y)
        return p, float(mean)

    one, _ = train(1, 40)
    two, last = train(4, 10)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    first = float(loss(nnx.merge(graphdef, p0), (x, y)))
    assert last < 0.5 * first
    fwd = mgc.make_predict(graphdef, lambda m, xs: m(xs))
    logits = mgc.predict(fwd, one, [x], batch_size=24)  # 64 = 24 + 24 + 16 (padded)
    np.testing.assert_allclose(logits, np.asarray(nnx.merge(graphdef, one)(x)), atol=1e-5)
    assert mgc.accuracy(y, logits.argmax(1)) > 0.9


def test_float16_data_is_cast():
    x, y = _problem()
    graphdef, p = mgc.init_params(Tiny, 0)
    opt = optax.sgd(0.1)
    fn = mgc.make_train_chunk(graphdef, lambda m, b: mgc.classification_loss(m(b[0]), b[1]),
                              opt, batch_size=8, steps=3)
    p, _, _, loss = fn(p, opt.init(p), jax.random.key(0), x.astype(np.float16), y)
    assert np.isfinite(float(loss))


def test_bad_inputs():
    with pytest.raises(ValueError, match="soft_dice_loss: logits have shape \\(2, 3\\) but"):
        mgc.soft_dice_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="classification_loss: expected logits \\(B, K\\)"):
        mgc.classification_loss(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="total_steps must be > 0"):
        mgc.make_optimizer(1e-3, 0)
    graphdef, _ = mgc.init_params(Tiny, 0)
    with pytest.raises(ValueError, match="batch_size and steps must be > 0"):
        mgc.make_train_chunk(graphdef, lambda m, b: 0.0, optax.sgd(0.1), batch_size=0, steps=1)
    with pytest.raises(ValueError, match="inputs differ in length"):
        mgc.predict(lambda p, a, b: a, None, [np.zeros((3, 1)), np.zeros((4, 1))])
    with pytest.raises(ValueError, match="inputs must hold at least one array"):
        mgc.predict(lambda p: p, None, [])
