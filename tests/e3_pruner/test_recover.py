"""Recovery: every kind sees the same batches, learns, and KD pulls the student to the teacher."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from e3_pruner import calibration_nll, make_recovery_loss, prune, recover
from llm_tools import Llama, sample_windows
from llm_tools.tiny import tiny_config

CFG = tiny_config(dim=32, n_layers=4, max_seq_len=64)


@pytest.fixture(scope="module")
def setup():
    teacher = Llama(CFG, rngs=nnx.Rngs(0))
    # a repetitive byte stream: learnable in a few steps
    text = b"def add(a, b):\n    return a + b\n\n" * 200
    stream = np.frombuffer(text, np.uint8).astype(np.int32)
    return teacher, prune(teacher, drop=[1]), stream


def _kl_to_teacher(student, teacher, tokens):
    ls = jax.nn.log_softmax(student(tokens))
    lt = jax.nn.log_softmax(teacher(tokens))
    return float(jnp.mean(jnp.sum(jnp.exp(lt) * (lt - ls), -1)))


def test_kinds_share_batches_and_learn(setup):
    teacher, student, stream = setup
    out = {}
    for kind in ("lm", "kd"):
        out[kind] = recover(student, teacher, stream, kind=kind, steps=8, batch_size=4,
                            seq_len=24, key=jax.random.key(1), learning_rate=5e-3)
    # step 1: same student, same batch => same cross-entropy whatever the loss
    np.testing.assert_allclose(out["kd"][1]["ce"][0], out["lm"][1]["ce"][0], rtol=1e-5)
    assert out["lm"][1]["kl"] == [] and len(out["kd"][1]["kl"]) == 8
    assert out["lm"][1]["alpha"] == [0.0] * 8 and out["kd"][1]["alpha"] == [1.0] * 8
    valid = sample_windows(jax.random.key(9), jnp.asarray(stream), 4, 25)
    before = calibration_nll(student, valid)
    # LM fine-tuning lowers the data NLL; KD lowers the KL to the teacher
    assert calibration_nll(out["lm"][0], valid) < before - 0.1
    assert _kl_to_teacher(out["kd"][0], teacher, valid) < _kl_to_teacher(student, teacher, valid)
    # the input student is unchanged (recover trains a copy)
    assert calibration_nll(student, valid) == before
    assert out["lm"][0].config.n_layers == 3


def test_recovery_loss_is_a_function_of_model_and_batch(setup):
    teacher, student, stream = setup
    w = jnp.asarray(stream[:17])[None]
    batch = {"ids": w, "teacher_logits": teacher(w[:, :-1])}
    loss, aux = make_recovery_loss("kd")(student, batch)
    assert float(loss) == pytest.approx(float(aux["kl"]), rel=1e-6)
    loss, aux = make_recovery_loss("lm")(student, batch)
    assert float(loss) == pytest.approx(float(aux["ce"]), rel=1e-6)
    loss, aux = make_recovery_loss("ekd")(student, batch)
    assert 0 < float(aux["alpha"]) < 1 and np.isfinite(float(loss))


def test_bad_inputs(setup):
    teacher, student, stream = setup
    kw = dict(steps=2, batch_size=2, seq_len=16, key=jax.random.key(0))
    with pytest.raises(ValueError, match="kind must be one of"):
        recover(student, teacher, stream, kind="ce", **kw)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_recovery_loss("hard")
    with pytest.raises(ValueError, match="longer than seq_len \\+ 1 = 17 tokens"):
        recover(student, teacher, stream[:10], kind="lm", **kw)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        recover(student, teacher, stream, kind="lm", **{**kw, "steps": 0})
    with pytest.raises(ValueError, match=r"seq_len \(100\) exceeds the model's max_seq_len"):
        recover(student, teacher, stream, kind="lm", **{**kw, "seq_len": 100})
    other = Llama(tiny_config(dim=32, n_layers=2, vocab_size=300), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="vocabularies differ"):
        recover(student, other, stream, kind="kd", **kw)
    with pytest.raises(TypeError, match="teacher must be an llm_tools.Llama"):
        recover(student, None, stream, kind="kd", **kw)
    with pytest.raises(TypeError, match="key must be a typed key"):
        recover(student, teacher, stream, kind="kd", **{**kw, "key": 3})
