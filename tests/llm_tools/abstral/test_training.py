"""AbstRaL's training pieces: masks, losses against manual computations, rollouts, the GRPO
step (zero-advantage groups leave the model unchanged), data parallelism on 8 devices."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from llm_tools import ByteTokenizer, Llama, forward, init_train_state, tiny_config
from llm_tools.abstral.training import (
    Batch,
    GRPOConfig,
    encode_examples,
    make_grpo_step,
    make_sft_step,
    rollout_batch,
    sft_loss,
)
from llm_tools.train import token_logprobs

ROOT = Path(__file__).resolve().parents[3]
TOK = ByteTokenizer()
CFG = tiny_config(dim=32, n_heads=2, n_kv_heads=1, hidden_dim=64, max_seq_len=64)


def test_encode_examples_masks_the_completion_and_eos():
    batch = encode_examples(TOK, [("ab", "c"), ("x", "yz")], max_len=64, multiple=8)
    assert batch.tokens.shape == (2, 8) and batch.mask.shape == (2, 7)
    np.testing.assert_array_equal(batch.tokens[0, :4], [97, 98, 99, TOK.eos_id])
    np.testing.assert_array_equal(batch.tokens[0, 4:], [TOK.pad_id] * 4)
    # position t predicts tokens[t + 1]: 'c' (t=1) and EOS (t=2) of row 0.
    np.testing.assert_array_equal(batch.mask[0], [0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch.mask[1], [1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch.real[0], [1, 1, 1, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="example 0 has 4 tokens, more than max_len=3"):
        encode_examples(TOK, [("ab", "c")], max_len=3)
    with pytest.raises(ValueError, match="encode_examples: examples is empty"):
        encode_examples(TOK, [], max_len=8)


def test_losses_equal_a_manual_computation():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    batch = encode_examples(TOK, [("Question: 1+1\n", "#### 2"), ("Q", "#### 10")],
                            max_len=64, multiple=8)
    logits, _, _ = forward(model, jnp.asarray(batch.tokens[:, :-1]))
    logits = np.asarray(logits, np.float64)
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    lp = np.take_along_axis(logits, batch.tokens[:, 1:, None], -1)[..., 0] - logz
    want = -(lp * batch.mask).sum() / batch.mask.sum()
    np.testing.assert_allclose(float(sft_loss(model, batch)[0]), want, rtol=1e-5)
    got = token_logprobs(model, jnp.asarray(batch.tokens), temperature=2.0)
    lp2 = logits / 2.0
    lz2 = np.log(np.exp(lp2 - lp2.max(-1, keepdims=True)).sum(-1)) + lp2.max(-1)
    want2 = np.take_along_axis(lp2, batch.tokens[:, 1:, None], -1)[..., 0] - lz2
    np.testing.assert_allclose(np.asarray(got), want2, rtol=1e-5, atol=1e-5)


def test_right_padding_does_not_change_real_positions():
    model = Llama(CFG, rngs=nnx.Rngs(1))
    short = encode_examples(TOK, [("ab", "cd")], max_len=64, multiple=1)
    both = encode_examples(TOK, [("ab", "cd"), ("a much longer prompt", "and answer")],
                           max_len=64, multiple=1)
    a = np.asarray(token_logprobs(model, jnp.asarray(short.tokens)))[0]
    b = np.asarray(token_logprobs(model, jnp.asarray(both.tokens)))[0, :a.shape[0]]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _completion(text, stop=True, kept=False):
    """A sampler's completion; ``kept``: the new Completion that keeps the stop token."""
    ids = tuple(TOK.encode(text))
    if kept:
        return SimpleNamespace(text=text, token_ids=ids + ((TOK.eos_id,) if stop else ()),
                               finish_reason="stop" if stop else "length",
                               ends_with_stop_token=stop)
    return SimpleNamespace(text=text, token_ids=ids, finish_reason="stop" if stop else "length")


def test_rollout_batch():
    cfg = GRPOConfig(group_size=2)
    groups = [[_completion("#### 1"), _completion("xx", stop=False)],
              [_completion("a"), _completion("b")]]
    r = rollout_batch(TOK, ["P:", "Q:"], groups, np.array([[1.0, 0.0], [0.5, 0.5]]), cfg,
                      multiple=4)
    # Group 1: mean 0.5, unbiased std 0.7071 -> +-0.7071; group 2 is constant -> 0.
    np.testing.assert_allclose(r.advantages, [0.70710677, -0.70710677, 0, 0], rtol=1e-5)
    row0 = list(TOK.encode("P:#### 1")) + [TOK.eos_id]  # the stop token is credited
    np.testing.assert_array_equal(r.tokens[0, :len(row0)], row0)
    assert r.mask[0].sum() == len("#### 1") + 1 and r.mask[1].sum() == 2  # no EOS: length
    assert r.mask[0, 1] == 1 and r.mask[0, 0] == 0  # starts predicting after the prompt
    kept = rollout_batch(TOK, ["P:", "Q:"], [[_completion("#### 1", kept=True),
                                              _completion("xx", stop=False, kept=True)],
                                             groups[1]], np.array([[1.0, 0.0], [0.5, 0.5]]),
                         cfg, multiple=4)
    np.testing.assert_array_equal(kept.tokens, r.tokens)  # the EOS once, either way
    np.testing.assert_array_equal(kept.mask, r.mask)
    fixed = rollout_batch(TOK, ["P:", "Q:"], groups, np.zeros((2, 2)), cfg, length=32)
    assert fixed.tokens.shape == (4, 32) and fixed.mask.shape == (4, 31)
    with pytest.raises(ValueError, match="length 4 is shorter than the longest row"):
        rollout_batch(TOK, ["P:", "Q:"], groups, np.zeros((2, 2)), cfg, length=4)
    with pytest.raises(ValueError, match=r"rewards must have shape \(2, 2\)"):
        rollout_batch(TOK, ["P:", "Q:"], groups, np.zeros((2, 3)), cfg)


def test_grpo_step_moves_only_on_nonzero_advantages():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    opt = optax.sgd(0.05)  # linear in the gradient, so first-order reasoning applies
    graphdef, state = init_train_state(model, opt)
    cfg = GRPOConfig(group_size=2)
    step = make_grpo_step(graphdef, opt, cfg)
    groups = [[_completion("#### 1"), _completion("#### 2")]]
    flat = rollout_batch(TOK, ["P:"], groups, np.array([[1.0, 1.0]]), cfg)
    new, m = step(state, flat)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(m["loss"]) == 0.0
    good = rollout_batch(TOK, ["P:"], groups, np.array([[1.0, 0.0]]), cfg)
    new, m = step(state, good)
    # The gradient step is along grad(log p(rewarded) - log p(other)) (advantages +-0.71, equal
    # lengths), so the gap between the two completions' log-probabilities grows.
    before = np.asarray(token_logprobs(model, jnp.asarray(good.tokens)) * good.mask).sum(1)
    after_model = nnx.merge(graphdef, new.params, new.rest)
    after = np.asarray(token_logprobs(after_model, jnp.asarray(good.tokens)) * good.mask).sum(1)
    assert after[0] - after[1] > before[0] - before[1]


def test_sft_step_lowers_the_loss():
    model = Llama(CFG, rngs=nnx.Rngs(0))
    opt = optax.adam(1e-2)
    graphdef, state = init_train_state(model, opt)
    step = make_sft_step(graphdef, opt)
    batch = encode_examples(TOK, [("Q: a", "#### 7")] * 4, max_len=64, multiple=8)
    first = None
    for _ in range(40):
        state, loss = step(state, batch)
        first = float(loss) if first is None else first
    assert float(loss) < 0.5 * first


def test_grpo_config_bad_inputs():
    with pytest.raises(ValueError, match="group_size must be at least 2, got 1"):
        GRPOConfig(group_size=1).validate()
    with pytest.raises(ValueError, match="reduction must be one of"):
        GRPOConfig(reduction="sum").validate()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GRPOConfig(temperature=0.0).validate()
    model = Llama(CFG, rngs=nnx.Rngs(0))
    graphdef, state = init_train_state(model, optax.sgd(0.1))
    step = make_grpo_step(graphdef, optax.sgd(0.1), GRPOConfig(group_size=2, beta=0.1))
    r = rollout_batch(TOK, ["P:"], [[_completion("a"), _completion("b")]],
                      np.array([[1.0, 0.0]]), GRPOConfig(group_size=2))
    with pytest.raises(ValueError, match="beta > 0 needs rollouts.ref_logp"):
        step(state, r)
    with pytest.raises(ValueError, match="abstraction_example: style must be"):
        from llm_tools.abstral.training import abstraction_example

        abstraction_example(None, style="latex")
    assert isinstance(Batch(np.zeros(1), np.zeros(1), np.zeros(1)), tuple)


@pytest.mark.slow  # its own process, compiles for 8 devices (minutes on a loaded 2-core box)
def test_data_parallel_grpo_and_sft_on_8_devices():
    out = subprocess.run([sys.executable, "-m", "tests.llm_tools.abstral.multidevice_grpo"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "OK 8 devices" in out.stdout
