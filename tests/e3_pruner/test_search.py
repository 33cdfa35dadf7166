"""The Gumbel-top-k mask search finds the layers whose removal costs nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from e3_pruner import anneal_temperature, search_mask
from llm_tools import Llama
from llm_tools.tiny import tiny_config

CFG = tiny_config(dim=32, n_layers=6, max_seq_len=64)


@pytest.fixture(scope="module")
def model_with_identity_layers():
    m = Llama(CFG, rngs=nnx.Rngs(0))
    for name in ("wo", "w_down"):
        var = getattr(m, name)
        value = var[...] * 4.0              # make the real layers matter
        var.set_value(value.at[jnp.array([1, 4])].set(0.0))  # layers 1 and 4: identity
    return m


@pytest.fixture(scope="module")
def calibration():
    return jax.random.randint(jax.random.key(2), (8, 16), 0, CFG.vocab_size)


@pytest.mark.parametrize("estimator", ["straight_through", "relaxed"])
def test_search_finds_the_identity_layers(model_with_identity_layers, calibration, estimator):
    # KD to the dense model is exactly 0 iff the two identity layers are the ones removed,
    # and > 0 for every other choice of 4 of 6 layers.
    r = search_mask(model_with_identity_layers, calibration, 4, key=jax.random.key(0), steps=40,
                    batch_size=4, learning_rate=0.2, objective="kd", estimator=estimator)
    np.testing.assert_array_equal(r.keep, [0, 2, 3, 5])
    assert r.logits.shape == (6,) and r.logit_history.shape == (40, 6)
    np.testing.assert_allclose(r.temperatures[[0, -1]], [1.0, 0.05], rtol=1e-5)
    # KL is >= 0, and the sampled masks get better as the logits separate
    assert r.losses.min() > -1e-6 and np.mean(r.losses[-10:]) < np.mean(r.losses[:10])


def test_search_with_the_lm_objective_runs_and_keeps_k(model_with_identity_layers, calibration):
    r = search_mask(model_with_identity_layers, calibration, 3, key=jax.random.key(1), steps=3,
                    batch_size=8, objective="lm", attention_mask=jnp.ones((8, 16), bool))
    assert r.keep.shape == (3,) and np.all(np.diff(r.keep) > 0)
    assert np.all(np.isfinite(r.losses)) and r.losses.min() > 1.0  # a byte LM's CE in nats


def test_anneal_temperature():
    np.testing.assert_allclose([anneal_temperature(i, 5, 1.0, 0.0625) for i in range(5)],
                               [1.0, 0.5, 0.25, 0.125, 0.0625], rtol=1e-6)
    with pytest.raises(ValueError, match="temperatures must be > 0"):
        anneal_temperature(0, 5, 0.0, 1.0)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        anneal_temperature(0, 0, 1.0, 0.5)


def test_bad_inputs(model_with_identity_layers, calibration):
    m, key = model_with_identity_layers, jax.random.key(0)
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 6"):
        search_mask(m, calibration, 6, key=key)
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 6"):
        search_mask(m, calibration, 0, key=key)
    with pytest.raises(ValueError, match="t_start must be a finite float > 0"):
        search_mask(m, calibration, 4, key=key, t_start=0.0)
    with pytest.raises(ValueError, match="t_end must be a finite float > 0"):
        search_mask(m, calibration, 4, key=key, t_end=-1.0)
    with pytest.raises(ValueError, match="calibration sequences must hold at least 2 tokens"):
        search_mask(m, calibration[:, :1], 4, key=key)
    with pytest.raises(ValueError, match=r"batch_size \(16\) exceeds the 8 calibration rows"):
        search_mask(m, calibration, 4, key=key, batch_size=16)
    with pytest.raises(ValueError, match=r"objective must be one of \('kd', 'lm'\)"):
        search_mask(m, calibration, 4, key=key, objective="mse")
    with pytest.raises(ValueError, match="estimator must be one of"):
        search_mask(m, calibration, 4, key=key, estimator="reinforce")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        search_mask(m, calibration, 4, key=key, steps=0)
    with pytest.raises(ValueError, match=r"init_logits must be finite with shape \(6,\)"):
        search_mask(m, calibration, 4, key=key, init_logits=np.zeros(5))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 259\)"):
        search_mask(m, calibration + 1000, 4, key=key)
    with pytest.raises(TypeError, match="key must be a typed key"):
        search_mask(m, calibration, 4, key=0)
    with pytest.raises(TypeError, match="model must be an llm_tools.Llama"):
        search_mask(None, calibration, 4, key=key)
