"""train_model: early stopping keeps the best model; vmap over seeds; bad inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softstep import ModelSpec, TrainConfig, make_model, predict_dense, train_model

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 3)).astype(np.float32)
Y = (np.sin(2 * X[:, :1]) + 0.8 * RNG.normal(size=(48, 1))).astype(np.float32)
XV = RNG.normal(size=(40, 3)).astype(np.float32)
YV = np.sin(2 * XV[:, :1]).astype(np.float32)
SPEC = ModelSpec(input_shape=(3,), hidden=(32,), embed_dim=8, head="softstep")
# A large learning rate on noisy targets: validation improves, then gets worse.
CONFIG = TrainConfig(epochs=60, batch_size=16, learning_rate=3e-2, weight_decay=0.0, patience=8)


@functools.cache
def trained():
    graphdef, params = make_model(SPEC, jax.random.key(0))
    fit = jax.jit(train_model, static_argnums=(0, 7))
    return graphdef, fit(graphdef, params, jax.random.key(1), X, Y, XV, YV, CONFIG)


def test_early_stopping_keeps_the_best_model():
    graphdef, res = trained()
    run = int(res.epochs_run)
    curve = np.asarray(res.val_curve)[:run]
    best = int(res.best_epoch)
    assert 1 <= best < run, (best, run)  # it improved, then stopped on patience
    assert run == best + CONFIG.patience
    assert curve[best - 1] == pytest.approx(float(np.min(curve)))
    assert curve[-1] > curve[best - 1]  # the last epoch is worse than the kept one
    # Recompute the kept model's validation MSE from its parameters, independently.
    pred = np.asarray(predict_dense(graphdef, res.params, XV, X, Y))
    np.testing.assert_allclose(np.mean((pred - YV) ** 2), float(res.best_val_mse), rtol=1e-4)
    np.testing.assert_allclose(np.mean((pred - YV) ** 2), curve[best - 1], rtol=1e-4)


@pytest.mark.slow
def test_vmap_over_seeds_equals_single_runs():
    graphdef, single = trained()
    keys = jnp.stack([jax.random.key(0), jax.random.key(5)])
    params = jax.vmap(lambda k: make_model(SPEC, k)[1])(keys)
    tkeys = jnp.stack([jax.random.key(1), jax.random.key(6)])
    fit = jax.jit(jax.vmap(functools.partial(train_model, graphdef, config=CONFIG),
                           in_axes=(0, 0, None, None, None, None)))
    res = fit(params, tkeys, X, Y, XV, YV)
    assert int(res.epochs_run[0]) == int(single.epochs_run)
    assert int(res.best_epoch[0]) == int(single.best_epoch)
    np.testing.assert_allclose(float(res.best_val_mse[0]), float(single.best_val_mse),
                               rtol=1e-4)


def test_bad_inputs():
    graphdef, params = make_model(SPEC, jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size must be >= 2 .* got 1"):
        train_model(graphdef, params, jax.random.key(0), X, Y, XV, YV,
                    CONFIG._replace(batch_size=1))
    with pytest.raises(ValueError, match=r"train_model: y_train must be \[48, o\]"):
        train_model(graphdef, params, jax.random.key(0), X, Y[:, 0], XV, YV, CONFIG)
    with pytest.raises(ValueError, match="need at least 2 training rows, got 1"):
        train_model(graphdef, params, jax.random.key(0), X[:1], Y[:1], XV, YV,
                    CONFIG._replace(batch_size=2))
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        CONFIG._replace(learning_rate=0.0).validate()
    with pytest.raises(ValueError, match=r"head must be one of \['linear'"):
        make_model(SPEC._replace(head="attention"), jax.random.key(0))
    with pytest.raises(ValueError, match="backbone must be one of"):
        make_model(SPEC._replace(backbone="vit"), jax.random.key(0))
    with pytest.raises(ValueError, match=r"SoftStepHead: bank_targets must be 2-D \[48, o\]"):
        predict_dense(graphdef, params, XV, X, Y[:5])
