"""The pruned model equals the gated one, saves/loads, samples and serves like the dense one."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from e3_pruner import gates_from_keep, keep_from_drop, prune
from llm_tools import ByteTokenizer, JaxSampler, Llama, forward, load_model, save_model
from llm_tools.client import OpenAISampler
from llm_tools.serve import build_sampler, make_server
from llm_tools.tiny import tiny_config

CFG = tiny_config(dim=32, n_layers=6, max_seq_len=64)


@pytest.fixture(scope="module")
def model():
    return Llama(CFG, rngs=nnx.Rngs(3))


@pytest.mark.parametrize("keep", [[0, 2, 3, 5], [1, 2, 3, 4, 5], [4]])
def test_pruned_equals_gated(model, keep):
    tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, CFG.vocab_size)
    gates = gates_from_keep(keep, 6)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(gates)), keep)
    pruned = prune(model, keep)
    assert pruned.config.n_layers == len(keep) and model.config.n_layers == 6
    np.testing.assert_allclose(forward(pruned, tokens)[0], forward(model, tokens, gates=gates)[0],
                               atol=1e-5, rtol=1e-5)
    # and differs from the dense model (the gates matter)
    assert float(jnp.abs(forward(pruned, tokens)[0] - model(tokens)).max()) > 1e-3


def test_drop_is_the_complement_of_keep(model):
    np.testing.assert_array_equal(keep_from_drop(6, [5, 1]), [0, 2, 3, 4])
    tokens = jnp.arange(10)[None]
    np.testing.assert_allclose(prune(model, drop=[1, 5])(tokens),
                               prune(model, [0, 2, 3, 4])(tokens), atol=1e-6)
    np.testing.assert_array_equal(
        prune(model, np.array([True, False, True, True, True, False])).gates[...], np.ones(4))


def test_pruned_model_saves_loads_samples_and_serves(model, tmp_path):
    pruned = prune(model, drop=[1, 4])
    save_model(tmp_path / "pruned", pruned)
    loaded = load_model(tmp_path / "pruned")
    assert loaded.config.n_layers == 4
    tokens = jnp.arange(1, 12)[None]
    np.testing.assert_array_equal(loaded(tokens), pruned(tokens))

    key = jax.random.key(5)
    direct = JaxSampler(pruned, ByteTokenizer()).generate(["def f(x):"], max_new_tokens=6,
                                                          temperature=0.0, key=key)[0][0]
    # the server's own loader for trained checkpoints (`--model ckpt:<dir>`)
    sampler = build_sampler(f"ckpt:{tmp_path / 'pruned'}")
    server = make_server(sampler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        client = OpenAISampler(f"http://{host}:{port}/v1", sampler.name, cache_dir=None)
        served = client.generate(["def f(x):"], max_new_tokens=6, temperature=0.0, key=key)[0][0]
    finally:
        server.shutdown()
        server.server_close()
    assert served.token_ids == direct.token_ids and served.text == direct.text
    np.testing.assert_allclose(served.logprobs, direct.logprobs, atol=1e-4)


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"has 6 layers \(indices 0..5\); cannot drop layer 9"):
        prune(model, drop=[2, 9])
    with pytest.raises(ValueError, match=r"has 6 layers \(indices 0..5\) and no layer 6"):
        prune(model, [0, 6])
    with pytest.raises(ValueError, match=r"has 6 layers \(indices 0..5\) and no layer -1"):
        prune(model, [-1, 2])
    with pytest.raises(ValueError, match="repeated layers"):
        prune(model, [1, 1, 2])
    with pytest.raises(ValueError, match="repeated layers"):
        prune(model, drop=[3, 3])
    with pytest.raises(ValueError, match="between 1 and 5 of the 6 layers, got 6"):
        prune(model, list(range(6)))
    with pytest.raises(ValueError, match="between 1 and 5 of the 6 layers, got 0"):
        prune(model, drop=list(range(6)))
    with pytest.raises(ValueError, match="exactly one of keep= or drop="):
        prune(model)
    with pytest.raises(ValueError, match="exactly one of keep= or drop="):
        prune(model, [1], drop=[2])
    with pytest.raises(ValueError, match=r"a bool keep mask must have shape \(6,\)"):
        prune(model, np.ones(5, bool))
    with pytest.raises(ValueError, match="keep must be a 1-D list of layer indices"):
        prune(model, [0.5, 1.5])
    with pytest.raises(ValueError, match="drop must be a 1-D list of layer indices"):
        keep_from_drop(6, [[1]])
    with pytest.raises(TypeError, match="model must be an llm_tools.Llama"):
        prune("model", [1])
    with pytest.raises(ValueError, match=r"has 6 layers \(indices 0..5\) and no layer 7"):
        gates_from_keep([7], 6)
