"""CQC models: the monotone net is increasing in y0; the linear model is its formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cqc


def test_monotone_model_is_increasing_in_y0_for_random_parameters():
    model = cqc.MonotoneCQC(3, hidden=(16,), units=6, rngs=nnx.Rngs(params=jax.random.key(0)))
    graphdef, state = nnx.split(model)
    # perturb every parameter strongly: monotonicity must hold by construction
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [v + 3.0 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    model = nnx.merge(graphdef, jax.tree.unflatten(tree, noisy))
    x = jax.random.normal(jax.random.key(2), (64, 3))
    y0 = jnp.linspace(-6, 6, 201)
    g = jax.jit(jax.vmap(lambda v: model(jnp.full((64,), v), x), out_axes=1))(y0)  # (64, 201)
    assert np.all(np.diff(np.asarray(g), axis=1) > -1e-4)  # float32 rounding only
    dg = jax.vmap(jax.grad(lambda v, xi: model(v[None], xi[None])[0]))(jnp.zeros(64), x)
    assert np.all(np.asarray(dg) > 0)


def test_monotone_model_grid_and_flat_calls_agree():
    model = cqc.MonotoneCQC(2, hidden=(8,), units=3, rngs=nnx.Rngs(params=jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (5, 2))
    y0 = jax.random.normal(jax.random.key(2), (5, 4))
    flat = model(y0.reshape(-1), jnp.repeat(x, 4, axis=0)).reshape(5, 4)
    np.testing.assert_allclose(np.asarray(model(y0, x)), np.asarray(flat), atol=1e-5)


def test_linear_model_formula():
    model = cqc.LinearCQC(2, rngs=nnx.Rngs(0))
    model.bias[...] = 0.5
    model.slope[...] = 2.0
    model.w[...] = jnp.array([1.0, -1.0])
    model.v[...] = jnp.array([0.25, 0.0])
    x = np.array([[1.0, 2.0], [0.0, 3.0]], np.float32)
    y0 = np.array([1.0, -2.0], np.float32)
    expected = 0.5 + 2 * y0 + x @ [1.0, -1.0] + y0 * (x @ [0.25, 0.0])
    np.testing.assert_allclose(np.asarray(model(y0, x)), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(jnp.stack([y0, y0], 1), x)),
                               np.stack([expected, expected], 1), atol=1e-6)


def test_make_model_accepts_names_factories_and_modules():
    key = jax.random.key(0)
    assert isinstance(cqc.make_model("linear", 3, key), cqc.LinearCQC)
    assert isinstance(cqc.make_model("monotone", 3, key), cqc.MonotoneCQC)
    built = cqc.make_model(lambda d, rngs: cqc.LinearCQC(d, interactions=False, rngs=rngs), 3,
                           key)
    assert built.v[...].shape == (0,)
    module = cqc.LinearCQC(3, rngs=nnx.Rngs(0))
    assert cqc.make_model(module, 3, key) is module


def test_make_model_bad_input():
    with pytest.raises(ValueError, match="make_model: model must be 'linear'"):
        cqc.make_model("cubic", 1, jax.random.key(0))
    with pytest.raises(TypeError, match="factory must return an nnx.Module"):
        cqc.make_model(lambda d, rngs: 3, 1, jax.random.key(0))
    with pytest.raises(TypeError, match="model must be a name, a factory or an nnx.Module"):
        cqc.make_model(3, 1, jax.random.key(0))
    with pytest.raises(ValueError, match="LinearCQC: num_features must be >= 1, got 0"):
        cqc.LinearCQC(0, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="MonotoneCQC: num_features must be an int, got float"):
        cqc.MonotoneCQC(2.0, rngs=nnx.Rngs(0))
