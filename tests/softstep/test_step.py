"""soft_step against hand-computed values, boundary cases, and the SoftStep module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from softstep import SoftStep, SoftStepParams, soft_step

NEG = -np.inf
jit_step = jax.jit(soft_step, static_argnames=("kind", "clamp_to_row_max"))


def params(a, b, t):
    return SoftStepParams(jnp.float32(a), jnp.float32(b), jnp.float32(t))


def test_s1_hand_computed():
    # a=0.3, b=0.7, t=0.5 -> exponent 1/t = 2.
    s = jnp.array([[0.0, 0.2, 0.5, 0.6, 1.0]])
    out = np.asarray(soft_step(s, params(0.3, 0.7, 0.5), kind="s1"))
    # 0.5: 0.2^2 / (0.2^2 + 0.2^2) = 1/2 ; 0.6: 0.3^2 / (0.3^2 + 0.1^2) = 0.9
    expected = [NEG, NEG, np.log(0.5), np.log(0.9), 0.0]
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)


def test_s1_boundaries():
    s = jnp.array([[0.3, 0.7, 0.29, 0.71, 1.0]])
    out = np.asarray(soft_step(s, params(0.3, 0.7, 0.5), kind="s1"))
    np.testing.assert_array_equal(out[0], [NEG, 0.0, NEG, 0.0, 0.0])  # s=a -> 0, s=b -> 1
    # a == b: a hard threshold; s >= b wins at the shared edge.
    out = np.asarray(soft_step(jnp.array([[0.4, 0.5, 0.6, 1.0]]), params(0.5, 0.5, 0.5)))
    np.testing.assert_array_equal(out[0], [NEG, 0.0, 0.0, 0.0])


def test_s1_temperature_sharpens():
    # t=0.25 -> exponent 4: 0.6 -> 0.3^4 / (0.3^4 + 0.1^4) = 81/82
    out = np.asarray(soft_step(jnp.array([[0.6, 1.0]]), params(0.3, 0.7, 0.25)))
    np.testing.assert_allclose(out[0, 0], np.log(81 / 82), rtol=1e-5)


def test_s2_hand_computed():
    s = jnp.array([[0.0, 0.35, 0.7, 0.9, 1.0]])
    out = np.asarray(soft_step(s, params(0.1, 0.7, 0.5), kind="s2"))
    # t/(1-t) = 1: (0.7 - 0.35) log(0.5)
    expected = [NEG, 0.35 * np.log(0.5), 0.0, 0.0, 0.0]
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)
    out = np.asarray(soft_step(jnp.array([[0.35, 1.0]]), params(0.1, 0.7, 0.25), kind="s2"))
    np.testing.assert_allclose(out[0, 0], (1 / 3) * 0.35 * np.log(0.5), rtol=1e-5)


def test_clamp_keeps_the_most_similar_neighbour():
    # Unnormalised row whose maximum (0.5) is below a and b: the clamp keeps it.
    s = jnp.array([[0.1, 0.3, 0.5]])
    for kind in ("s1", "s2"):
        out = np.asarray(jit_step(s, params(0.8, 0.9, 0.5), kind=kind))
        assert out[0, 2] == 0.0 and np.all(out[0, :2] < 0)
        raw = np.asarray(jit_step(s, params(0.8, 0.9, 0.5), kind=kind, clamp_to_row_max=False))
        assert np.isneginf(raw[0, 2]) or raw[0, 2] < 0  # without the clamp it is not kept


def test_valid_mask_and_row_keeps_one():
    key = jax.random.key(0)
    s = jax.random.uniform(key, (50, 30))
    valid = jax.random.bernoulli(jax.random.key(1), 0.3, (50, 30)).at[:, 0].set(True)
    for kind in ("s1", "s2"):
        for a, b in ((0.99, 0.999), (0.0, 1.0), (0.5, 0.5)):
            out = np.asarray(jit_step(s, params(a, b, 0.1), kind=kind, valid=valid))
            assert np.all(np.isneginf(out[~np.asarray(valid)]))
            assert np.all(np.isfinite(out).sum(axis=1) >= 1)


def test_gradients_are_finite_at_edges():
    s = jnp.array([[0.0, 0.3, 0.5, 0.7, 1.0]])

    def f(a, b, t, s, kind):
        out = soft_step(s, SoftStepParams(a, b, t), kind=kind)
        return jnp.sum(jnp.where(jnp.isfinite(out), out, 0.0))

    for kind in ("s1", "s2"):
        grads = jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)), static_argnums=4)(0.3, 0.7, 0.5, s,
                                                                              kind)
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g)))


def test_module_global_initial_values():
    step = SoftStep(4, mode="global", rngs=nnx.Rngs(0))
    p = step(jnp.ones((3, 4)))
    # sigmoid(0) = 1/2: a = 1/2, b = 1/2 + 1/2 * (1 - 1/2) = 3/4, t = 1/2
    np.testing.assert_allclose(np.asarray(p.a), 0.5)
    np.testing.assert_allclose(np.asarray(p.b), 0.75)
    np.testing.assert_allclose(np.asarray(p.t), 0.5)
    assert p.a.shape == (3, 1)


def test_module_pointwise_matches_sigmoid_of_linear():
    step = SoftStep(4, mode="pointwise", rngs=nnx.Rngs(0))
    e = jax.random.normal(jax.random.key(2), (6, 4)) * 10
    p = step(e)
    w, c = np.asarray(step.proj.kernel[...]), np.asarray(step.proj.bias[...])
    raw = 1 / (1 + np.exp(-(np.asarray(e) @ w + c)))
    np.testing.assert_allclose(np.asarray(p.a[:, 0]), raw[:, 0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p.b[:, 0]), raw[:, 0] + raw[:, 1] * (1 - raw[:, 0]),
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p.t[:, 0]), raw[:, 2], rtol=1e-5)
    assert np.all(np.asarray(p.b) >= np.asarray(p.a))


def test_bad_inputs():
    s = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"soft_step: kind must be one of \['s1', 's2'\], got 's3"):
        soft_step(s, params(0.1, 0.5, 0.5), kind="s3")
    with pytest.raises(TypeError, match="params must be SoftStepParams, got tuple"):
        soft_step(s, (0.1, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"similarity must be 2-D \[n, m\], got shape \(3,\)"):
        soft_step(jnp.zeros(3), params(0.1, 0.5, 0.5))
    with pytest.raises(ValueError, match="SoftStep: mode must be one of"):
        SoftStep(4, mode="local", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features must be a positive int, got 0"):
        SoftStep(0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"embeddings must have shape \[n, 4\], got \(2, 5\)"):
        SoftStep(4, rngs=nnx.Rngs(0))(jnp.zeros((2, 5)))
