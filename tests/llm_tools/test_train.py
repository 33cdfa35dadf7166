"""Next-token loss against a NumPy cross-entropy, training on the stdlib corpus, save/load,
and the 8-device data-parallel step (in a subprocess)."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from llm_tools import Llama, shard_model
from llm_tools.data import sample_windows, stdlib_corpus, stdlib_files
from llm_tools.tiny import tiny_config
from llm_tools.train import (
    init_train_state,
    load_model,
    make_eval_step,
    make_train_step,
    next_token_loss,
    save_model,
    token_logprobs,
)

ROOT = Path(__file__).resolve().parents[2]
CFG = tiny_config(dim=32, n_layers=1, max_seq_len=64)


@pytest.fixture(scope="module")
def corpus():
    return stdlib_corpus()


def test_loss_equals_numpy_cross_entropy():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(0), (2, 9), 0, CFG.vocab_size)
    logits = np.asarray(model(tokens[:, :-1]), np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)
                           ) - logits.max(-1, keepdims=True)
    t = np.asarray(tokens)
    nll = -np.take_along_axis(logp, t[:, 1:, None], -1)[..., 0]
    assert float(next_token_loss(model, tokens)) == pytest.approx(nll.mean(), rel=1e-5)
    mask = np.zeros((2, 8))
    mask[0, :3] = 1
    assert float(next_token_loss(model, tokens, mask)) == pytest.approx(nll[0, :3].mean(),
                                                                       rel=1e-5)
    with pytest.raises(ValueError, match="seq >= 2"):
        next_token_loss(model, tokens[:, :1])
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 8\)"):
        next_token_loss(model, tokens, np.ones((2, 9)))


def test_corpus_split_is_by_file_and_fixed(corpus):
    assert len(stdlib_files()) == len(corpus.train_files) + len(corpus.valid_files)
    assert not set(corpus.train_files) & set(corpus.valid_files)
    assert "pydoc_data/topics.py" in corpus.train_files + corpus.valid_files
    assert 0.03 < len(corpus.valid_files) / len(stdlib_files()) < 0.25
    assert corpus.train.dtype == np.int32 and corpus.train.max() <= 257
    again = stdlib_corpus(max_bytes=1000)
    np.testing.assert_array_equal(again.train, corpus.train[:1000])
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        stdlib_corpus(max_bytes=0)
    with pytest.raises(ValueError, match="longer than length=10"):
        sample_windows(jax.random.key(0), jnp.arange(5), 2, 10)


def test_training_lowers_validation_loss_and_round_trips(corpus, tmp_path):
    model = Llama(CFG, rngs=nnx.Rngs(0))
    opt = optax.adam(1e-2)
    graphdef, state = init_train_state(model, opt)
    step, evaluate = make_train_step(graphdef, opt), make_eval_step(graphdef)
    valid = sample_windows(jax.random.key(99), jnp.asarray(corpus.valid), 16, 33)
    before = float(evaluate(state, valid))
    train = jnp.asarray(corpus.train)
    key = jax.random.key(0)
    for _ in range(30):
        key, k = jax.random.split(key)
        state, _ = step(state, sample_windows(k, train, 16, 33))
    after = float(evaluate(state, valid))
    assert before > np.log(200)  # near uniform over the 259 ids at init
    assert after < before - 1.0
    trained = nnx.merge(graphdef, state.params, state.rest)
    save_model(tmp_path / "lm", trained)
    loaded = load_model(tmp_path / "lm")
    np.testing.assert_array_equal(loaded(valid[:2]), trained(valid[:2]))
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_model(tmp_path / "nothing")
    with pytest.raises(TypeError, match="optimizer must be an optax GradientTransformation"):
        init_train_state(model, "adam")


def test_data_parallel_and_sharded_model_on_8_devices():
    out = subprocess.run([sys.executable, "-m", "tests.llm_tools.multidevice_train"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "OK 8 devices" in out.stdout


def test_bad_inputs(tmp_path):
    model = Llama(CFG, rngs=nnx.Rngs(0))
    opt = optax.adam(1e-3)
    graphdef, state = init_train_state(model, opt)
    mesh = jax.make_mesh((1,), ("x",))
    with pytest.raises(ValueError, match=r"next_token_loss: tokens must be \[batch, seq\] with"):
        make_eval_step(graphdef)(state, jnp.ones((2, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"make_train_step: mesh must have a 'data' axis"):
        make_train_step(graphdef, opt, mesh=mesh)
    with pytest.raises(TypeError, match="save_model: model must be a Llama, got object"):
        save_model(tmp_path / "m", object())
    with pytest.raises(TypeError, match="shard_model: model must be a Llama, got object"):
        shard_model(object(), mesh)
    with pytest.raises(ValueError, match=r"shard_model: axis must be one of the mesh axes"):
        shard_model(model, mesh, axis="model")
    with pytest.raises(ValueError, match="LlamaConfig: dim must be a positive int, got 0"):
        tiny_config(dim=0)


def _numpy_token_logprobs(model, ids, temperature=1.0):
    logits = np.asarray(model(jnp.asarray(ids)), np.float64) / temperature
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    ids = np.asarray(ids)
    return np.take_along_axis(logp[:, :-1], ids[:, 1:, None], -1)[..., 0]


def test_token_logprobs_match_numpy_and_are_padding_aware():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    ids = np.asarray(jax.random.randint(jax.random.key(0), (2, 9), 0, CFG.vocab_size))
    ref = _numpy_token_logprobs(model, ids, 0.7)
    for chunk in (None, 1, 3, 8):  # the chunked output projection changes nothing
        got = token_logprobs(model, ids, temperature=0.7, chunk=chunk)
        np.testing.assert_allclose(got, ref, atol=1e-5)
    # row 1 left-padded by 3: its scores equal the unpadded row's, padding scores 0
    padded = np.concatenate([np.zeros((1, 3), np.int32), ids[1:]], 1)
    mask = np.concatenate([np.zeros((1, 3), bool), np.ones((1, 9), bool)], 1)
    got = np.asarray(token_logprobs(model, padded, mask, temperature=0.7))
    np.testing.assert_allclose(got[0, 3:], ref[1], atol=1e-5)
    assert np.all(got[0, :3] == 0)


def test_custom_loss_trains_the_gates_only():
    """make_train_step with any loss of (model, batch): here the per-layer gates alone
    (wrt=LayerGate), fed to the model through the batch, as E3-Pruner's masks are."""
    from llm_tools import LayerGate

    model = Llama(CFG.replace(n_layers=2), rngs=nnx.Rngs(0))
    opt = optax.sgd(0.1)
    graphdef, state = init_train_state(model, opt, wrt=LayerGate)
    ids = jax.random.randint(jax.random.key(1), (2, 9), 0, CFG.vocab_size)

    def loss_fn(m, batch):
        lp = token_logprobs(m, batch["ids"], gates=m.gates[...] * batch["scale"])
        return -lp.mean(), {"first": lp[0, 0]}

    step = make_train_step(graphdef, opt, loss_fn)
    before = state.params["gates"][...]
    new, loss, aux = step(state, {"ids": ids, "scale": jnp.ones(2)})
    assert float(loss) == pytest.approx(-float(_numpy_token_logprobs(model, ids).mean()),
                                        rel=1e-5)
    assert set(aux) == {"first"}
    assert not np.allclose(new.params["gates"][...], before)  # gates moved
    for name in ("wq", "embed"):
        np.testing.assert_array_equal(new.rest[name][...], state.rest[name][...])
    # the gradient reached the gates through the batch: a zero scale gives another gradient
    other, _, _ = step(state, {"ids": ids, "scale": jnp.zeros(2)})
    assert not np.allclose(other.params["gates"][...], new.params["gates"][...])


def test_remat_gives_the_same_gradients():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    opt = optax.sgd(1.0)
    graphdef, state = init_train_state(model, opt)
    ids = jax.random.randint(jax.random.key(2), (2, 9), 0, CFG.vocab_size)

    def loss_fn(m, batch):
        return -token_logprobs(m, batch).mean(), {}

    a, la, _ = make_train_step(graphdef, opt, loss_fn)(state, ids)
    b, lb, _ = make_train_step(graphdef, opt, loss_fn, remat=True)(state, ids)
    assert float(la) == pytest.approx(float(lb), rel=1e-6)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_bad_token_logprobs_and_step_inputs():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"token_logprobs: ids must be an int array \[batch, "
                                         r"seq\] with seq >= 2"):
        token_logprobs(model, jnp.ones((2, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"token_logprobs: mask must have shape \(2, 4\)"):
        token_logprobs(model, jnp.ones((2, 4), jnp.int32), jnp.ones((2, 3), bool))
    with pytest.raises(ValueError, match="token_logprobs: temperature must be > 0, got 0"):
        token_logprobs(model, jnp.ones((2, 4), jnp.int32), temperature=0)
    graphdef, _ = init_train_state(model, optax.sgd(0.1))
    with pytest.raises(TypeError, match="make_train_step: loss_fn must be callable"):
        make_train_step(graphdef, optax.sgd(0.1), "loss")
