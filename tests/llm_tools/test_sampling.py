"""Top-k/top-p masks against NumPy, sampling frequencies, and the jitted decode loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_tools import Llama, LlamaConfig, generate_tokens, sample_logits, top_k_mask, top_p_mask

CFG = LlamaConfig(vocab_size=40, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=32,
                  max_seq_len=48)


@pytest.fixture(scope="module")
def model():
    return Llama(CFG, rngs=nnx.Rngs(3))


def test_top_k_mask_keeps_k_largest():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 30)).astype(np.float32)
    ks = np.array([1, 5, 30, 0])
    got = np.asarray(top_k_mask(logits, ks))
    for row, k in enumerate(ks):
        k_eff = 30 if k == 0 else k
        expected_kept = set(np.argsort(-logits[row])[:k_eff])
        kept = set(np.flatnonzero(np.isfinite(got[row])))
        assert kept == expected_kept
        np.testing.assert_array_equal(got[row][list(kept)], logits[row][list(kept)])


def test_top_p_mask_keeps_the_nucleus():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 20)).astype(np.float32) * 2
    ps = np.array([0.05, 0.3, 0.6, 0.95, 1.0])
    got = np.asarray(top_p_mask(logits, ps))
    for row, p in enumerate(ps):
        probs = np.exp(logits[row] - logits[row].max())
        probs /= probs.sum()
        order = np.argsort(-probs)
        # smallest prefix of the sorted tokens whose mass reaches p
        n = int(np.searchsorted(np.cumsum(probs[order]), p - 1e-7) + 1)
        expected = set(order[: min(n, 20)])
        assert set(np.flatnonzero(np.isfinite(got[row]))) == expected, (row, p)


def test_sampling_frequencies_follow_truncated_softmax():
    logits = jnp.log(jnp.array([0.4, 0.3, 0.15, 0.1, 0.05]))
    n = 20000
    keys = jax.random.split(jax.random.key(0), n)
    draws = np.asarray(sample_logits(keys, jnp.tile(logits, (n, 1)), 1.0, top_p=1.0, top_k=3))
    freq = np.bincount(draws, minlength=5) / n
    expected = np.array([0.4, 0.3, 0.15, 0, 0]) / 0.85
    np.testing.assert_allclose(freq, expected, atol=0.015)
    # temperature 0.5 squares the odds: p^2 / sum p^2
    draws = np.asarray(sample_logits(keys, jnp.tile(logits, (n, 1)), 0.5, use_top_p=False,
                                     use_top_k=False))
    p2 = np.array([0.4, 0.3, 0.15, 0.1, 0.05]) ** 2
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / n, p2 / p2.sum(), atol=0.015)
    # temperature 0 is the argmax whatever the key
    greedy = sample_logits(keys[:8], jnp.tile(logits, (8, 1)), 0.0)
    assert np.all(np.asarray(greedy) == 0)


def _greedy_reference(model, prompt, n):
    """Greedy decoding by full recomputation, no cache (right-padded to one fixed length,
    which causal attention ignores, so it compiles once)."""
    ids = list(prompt)
    for _ in range(n):
        buf = jnp.asarray([ids + [0] * (CFG.max_seq_len - len(ids))])
        ids.append(int(jnp.argmax(model(buf)[0, len(ids) - 1])))
    return ids[len(prompt):]


def test_greedy_generation_equals_full_recompute(model):
    prompt = [5, 9, 1, 33, 2]
    out = generate_tokens(model, [prompt], jax.random.split(jax.random.key(0), 1),
                          max_new_tokens=10, temperature=0.0)
    assert out.tokens[0].tolist() == _greedy_reference(model, prompt, 10)
    # logprobs are the model's log-softmax at each chosen token
    ids = prompt + out.tokens[0].tolist()
    logp = jax.nn.log_softmax(model(jnp.asarray([ids]))[0], -1)
    ref = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(out.tokens[0])]
    np.testing.assert_allclose(out.logprobs[0], ref, atol=1e-4)


def test_batched_left_padded_equals_one_by_one(model):
    prompts = [[3, 4, 5], [7, 8, 9, 10, 11, 12, 13, 14, 15], [1]]
    keys = jax.random.split(jax.random.key(42), 3)
    kw = dict(max_new_tokens=12, temperature=0.9, top_p=0.9, top_k=20)
    batched = generate_tokens(model, prompts, keys, **kw)
    for b, prompt in enumerate(prompts):
        single = generate_tokens(model, [prompt], keys[b:b + 1], **kw)
        np.testing.assert_array_equal(single.tokens[0], batched.tokens[b])
        np.testing.assert_allclose(single.logprobs[0], batched.logprobs[b], atol=1e-4)
    # same keys, same output; different keys, different output
    again = generate_tokens(model, prompts, keys, **kw)
    np.testing.assert_array_equal(again.tokens, batched.tokens)
    other = generate_tokens(model, prompts, jax.random.split(jax.random.key(7), 3), **kw)
    assert not np.array_equal(other.tokens, batched.tokens)


def test_stop_ids_and_per_row_budgets(model):
    prompt = [5, 9, 1, 33, 2]
    ref = _greedy_reference(model, prompt, 8)
    stop = ref[3]
    first = ref.index(stop)
    out = generate_tokens(model, [prompt, prompt], jax.random.split(jax.random.key(0), 2),
                          max_new_tokens=[8, 2], temperature=0.0, stop_ids=[stop])
    assert out.lengths.tolist() == [first + 1, min(2, first + 1)]
    assert out.stopped.tolist() == [True, first <= 1]
    assert out.tokens[0, : first + 1].tolist() == ref[: first + 1]


def test_bad_generate_inputs(model):
    keys = jax.random.split(jax.random.key(0), 1)
    with pytest.raises(ValueError, match="prompts must be a non-empty list"):
        generate_tokens(model, [], keys, max_new_tokens=3)
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        generate_tokens(model, [[]], keys, max_new_tokens=3)
    with pytest.raises(ValueError, match="max_new_tokens must be > 0, got 0"):
        generate_tokens(model, [[1]], keys, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature must be finite and >= 0"):
        generate_tokens(model, [[1]], keys, max_new_tokens=3, temperature=-0.1)
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\]"):
        generate_tokens(model, [[1]], keys, max_new_tokens=3, top_p=1.5)
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\]"):
        generate_tokens(model, [[1]], keys, max_new_tokens=3, top_p=0.0)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        generate_tokens(model, [[1]], keys, max_new_tokens=3, top_k=-1)
    with pytest.raises(ValueError, match="> the context length 48"):
        generate_tokens(model, [[1] * 40], keys, max_new_tokens=9)
    with pytest.raises(ValueError, match=r"ids outside \[0, 40\)"):
        generate_tokens(model, [[1, 40]], keys, max_new_tokens=3)
    with pytest.raises(ValueError, match="keys must be 1 typed PRNG keys"):
        generate_tokens(model, [[1]], jax.random.split(jax.random.key(0), 2), max_new_tokens=3)
    with pytest.raises(ValueError, match="logits must have a vocabulary axis"):
        top_k_mask(jnp.float32(1.0), 1)
    with pytest.raises(ValueError, match=r"top_p_mask: logits must have a vocabulary axis"):
        top_p_mask(jnp.float32(1.0), 0.5)
    with pytest.raises(ValueError, match=r"logits must be \[batch, vocab\]"):
        sample_logits(keys, jnp.ones(4), 1.0)
