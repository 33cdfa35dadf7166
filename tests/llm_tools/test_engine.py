"""The sampling engine against full recomputation; shared prefixes; capped top-k/top-p."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_tools import (
    Engine,
    Llama,
    LlamaConfig,
    generate_tokens,
    plan_sources,
    sample_step,
    truncation_mask,
)
from llm_tools.engine import bucket

CFG = LlamaConfig(vocab_size=40, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=32,
                  max_seq_len=80)


@pytest.fixture(scope="module")
def model():
    return Llama(CFG, rngs=nnx.Rngs(3))


@pytest.fixture(scope="module")
def engine(model):
    return Engine(model, block=4)  # small suffix blocks: decoding crosses several


def _recompute(model, prompt, n, temperature=1.0):
    """Greedy tokens and their logprobs (at ``temperature``) by full recomputation, no cache."""
    ids = list(prompt)
    lps = []
    for _ in range(n):
        buf = jnp.asarray([ids + [0] * (CFG.max_seq_len - len(ids))])
        logits = model(buf)[0, len(ids) - 1]
        tok = int(jnp.argmax(logits))
        lps.append(float(jax.nn.log_softmax(logits / temperature)[tok]))
        ids.append(tok)
    return ids[len(prompt):], lps


def test_bucket_grid():
    assert [bucket(n) for n in (1, 16, 17, 20, 21, 33, 100, 129, 500, 520)] == [
        16, 16, 20, 20, 24, 40, 112, 160, 512, 640]
    assert [bucket(n, 1) for n in (1, 2, 3, 5, 9, 31, 33)] == [1, 2, 3, 5, 10, 32, 40]
    for n in range(1, 3000):  # at most 25% waste above 16
        assert n <= bucket(n) <= max(16, 1.25 * n)


@pytest.mark.parametrize("lengths", [(1,), (16, 17), (5, 20, 21, 3, 40)])
def test_greedy_equals_full_recompute(model, engine, lengths):
    rng = np.random.default_rng(sum(lengths))
    prompts = [rng.integers(0, CFG.vocab_size, n).tolist() for n in lengths]
    n_new = 11  # crosses the 4-slot suffix blocks twice
    out = generate_tokens(engine, prompts, jax.random.split(jax.random.key(0), len(prompts)),
                          max_new_tokens=n_new, temperature=0.0)
    for b, p in enumerate(prompts):
        toks, lps = _recompute(model, p, n_new)
        assert out.tokens[b].tolist() == toks
        np.testing.assert_allclose(out.logprobs[b], lps, atol=1e-4)


def test_sampled_logprobs_are_at_the_temperature(model, engine):
    prompt = [4, 8, 15, 16, 23, 42 % 40]
    out = generate_tokens(engine, [prompt], jax.random.split(jax.random.key(1), 1),
                          max_new_tokens=9, temperature=0.6, top_p=0.8)
    ids = prompt + out.tokens[0].tolist()
    logp = jax.nn.log_softmax(model(jnp.asarray([ids]))[0] / 0.6, -1)
    want = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(out.tokens[0])]
    np.testing.assert_allclose(out.logprobs[0], want, atol=1e-4)


def test_plan_sources_shares_identical_prompts_and_prefixes():
    plan = plan_sources([[1, 2, 3, 4], [1, 2], [5], [1, 2, 3, 4], [1, 2, 9], [5]])
    assert len(plan.sources) == 3  # [1,2,3,4], [1,2,9], [5]
    assert plan.source_of[0] == plan.source_of[1] == plan.source_of[3]
    assert plan.source_of[2] == plan.source_of[5] != plan.source_of[4]
    assert plan.prefix_len.tolist() == [4, 2, 1, 4, 3, 1]
    assert len(plan_sources([[1, 2], [1, 2]], share=False).sources) == 2


def test_prefix_shared_sampling_equals_unshared(model):
    """Cut points of one trace + repeats: one source, fanned out; same samples as alone."""
    trace = np.random.default_rng(5).integers(0, CFG.vocab_size, 30).tolist()
    prompts = [trace[:c] for c in (3, 11, 30, 17)] + [trace[:11], [7, 7]]
    keys = jax.random.split(jax.random.key(3), len(prompts))
    kw = dict(max_new_tokens=8, temperature=1.0, top_p=0.9)
    shared = generate_tokens(Engine(model, block=4), prompts, keys, **kw)
    alone = generate_tokens(Engine(model, block=4, share_prefixes=False), prompts, keys, **kw)
    np.testing.assert_array_equal(shared.tokens, alone.tokens)
    np.testing.assert_allclose(shared.logprobs, alone.logprobs, atol=1e-5)
    # and one by one
    for b in (0, 3):
        one = generate_tokens(Engine(model, block=4), [prompts[b]], keys[b:b + 1], **kw)
        np.testing.assert_array_equal(one.tokens[0], shared.tokens[b])


def test_many_rows_of_one_source_split_over_calls(model):
    """More rows than max_batch: pieces of one source in several decode calls."""
    keys = jax.random.split(jax.random.key(4), 7)
    kw = dict(max_new_tokens=5, temperature=1.0)
    small = generate_tokens(Engine(model, max_batch=2), [[1, 2, 3]] * 7, keys, **kw)
    big = generate_tokens(Engine(model, max_batch=32), [[1, 2, 3]] * 7, keys, **kw)
    np.testing.assert_array_equal(small.tokens, big.tokens)


# -- capped top-k / top-p -----------------------------------------------------------------

def _numpy_keep(z, p, k):
    """Full-sort reference: stable descending order, rank j kept iff j < k and the mass of
    the ranks before it is < p."""
    order = np.argsort(-z, kind="stable")
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    before = np.cumsum(probs[order]) - probs[order]
    keep_sorted = (before < p) | (p >= 1)
    if k > 0:
        keep_sorted &= np.arange(z.size) < k
    keep_sorted[0] = True
    keep = np.zeros(z.size, bool)
    keep[order[keep_sorted]] = True
    return keep


def test_capped_masks_equal_the_full_sort():
    rng = np.random.default_rng(0)
    V, cap = 300, 16
    scale = np.repeat([0.3, 1.0, 3.0, 8.0], 12)[:, None]  # flat to peaked rows
    z = (rng.normal(size=(48, V)) * scale).astype(np.float32)
    p = rng.choice([0.1, 0.5, 0.9, 0.99, 1.0], 48).astype(np.float32)
    k = rng.choice([0, 1, 5, 16, 17, 100], 48).astype(np.int32)
    full, over_full = truncation_mask(z, p, k)
    capped, over = truncation_mask(z, p, k, cap=cap)
    full, capped, over = np.asarray(full), np.asarray(capped), np.asarray(over)
    assert not np.asarray(over_full).any()
    for b in range(48):
        ref = _numpy_keep(z[b], p[b], k[b])
        np.testing.assert_array_equal(full[b], ref)
        # overflow exactly when the kept set does not fit in the cap
        assert over[b] == (ref.sum() > cap), b
        if not over[b]:
            np.testing.assert_array_equal(capped[b], ref)
    assert 5 < over.sum() < 40  # both cases occur


@pytest.mark.parametrize("V", [200, 5000])
def test_capped_sampling_equals_full_sort_sampling_including_overflow(V):
    """Non-overflowing rows: the cap's ranked noise is a prefix of the full sort's; overflowing
    rows are redone on the 4096 largest logits (V = 5000) or by a full sort: either way the
    same token as cap = V."""
    rng = np.random.default_rng(1)
    B = 48
    z = jnp.asarray(rng.normal(size=(B, V)) * np.geomspace(0.01, 6 if V < 1000 else 40, B)[
        :, None], jnp.float32)
    keys = jax.random.split(jax.random.key(0), B)
    t = jnp.full((B,), 0.8)
    p = jnp.asarray(rng.choice([0.5, 0.9, 0.97], B), jnp.float32)
    k = jnp.asarray(rng.choice([0, 0, 30], B), jnp.int32)
    small = sample_step(keys, z, t, p, k, cap=8, use_plain=False)
    full = sample_step(keys, z, t, p, k, cap=V, use_plain=False)
    keep, over = truncation_mask(z / 0.8, p, k, cap=8)
    assert 5 < int(over.sum()) < B - 5
    if V > 4096:  # some rows need the full sort, some fit in the wider top-k
        sizes = np.asarray(truncation_mask(z / 0.8, p, k)[0]).sum(-1)
        assert (sizes > 4096).sum() >= 2 and ((sizes > 8) & (sizes <= 4096)).sum() >= 2
    np.testing.assert_array_equal(small[0], full[0])
    np.testing.assert_allclose(small[1], full[1], atol=1e-6)


def test_overflowing_rows_follow_the_exact_distribution():
    """A flat distribution whose nucleus (0.9 of 12 equal tokens -> 11) exceeds cap = 4."""
    n = 6000
    logits = jnp.tile(jnp.concatenate([jnp.zeros(12), jnp.full(20, -30.0)]), (n, 1))
    keys = jax.random.split(jax.random.key(2), n)
    tok, _ = sample_step(keys, logits, jnp.ones(n), jnp.full(n, 0.9), jnp.zeros(n, jnp.int32),
                         cap=4, use_plain=False)
    freq = np.bincount(np.asarray(tok), minlength=32) / n
    np.testing.assert_allclose(freq[:11], 1 / 11, atol=0.02)  # ties: ranked by lower id
    assert freq[11:].sum() == 0


def test_greedy_draws_no_noise():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(3, 50)), jnp.float32)
    keys = jax.random.split(jax.random.key(0), 3)
    args = (keys, logits, jnp.zeros(3), jnp.ones(3), jnp.zeros(3, jnp.int32))
    greedy = jax.make_jaxpr(lambda *a: sample_step(*a, all_greedy=True, use_plain=False,
                                                   use_trunc=False))(*args)
    sampled = jax.make_jaxpr(lambda *a: sample_step(*a))(*args)
    assert "random_bits" not in str(greedy) and "random_bits" in str(sampled)
    np.testing.assert_array_equal(sample_step(*args, all_greedy=True)[0],
                                  np.argmax(np.asarray(logits), -1))


def test_update_weights_changes_samples_without_recompiling(model):
    from llm_tools.engine import _decode_jit

    other = Llama(CFG, rngs=nnx.Rngs(9))
    eng = Engine(model)
    keys = jax.random.split(jax.random.key(0), 2)
    kw = dict(max_new_tokens=6, temperature=0.0)
    generate_tokens(eng, [[1, 2], [3]], keys, **kw)
    n_compiled = _decode_jit._cache_size()
    eng.update_weights(other)
    got = generate_tokens(eng, [[1, 2], [3]], keys, **kw)
    assert _decode_jit._cache_size() == n_compiled
    want = generate_tokens(Engine(other), [[1, 2], [3]], keys, **kw)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    assert model(jnp.asarray([[1, 2]])).shape == (1, 2, 40)  # the old model is still usable


def test_bfloat16_engine_close_to_float32(model):
    from llm_tools.engine import default_dtype

    assert default_dtype() == ("float32" if jax.default_backend() == "cpu" else "bfloat16")
    prompt = [[4, 8, 15, 16, 23]]
    keys = jax.random.split(jax.random.key(0), 1)
    kw = dict(max_new_tokens=6, temperature=0.0)
    a = generate_tokens(Engine(model, dtype="float32"), prompt, keys, **kw)
    b = generate_tokens(Engine(model, dtype="bfloat16"), prompt, keys, **kw)
    assert Engine(model, dtype="bfloat16").weights.head.dtype == jnp.bfloat16
    n = int(np.argmax(a.tokens[0] != b.tokens[0])) if (a.tokens != b.tokens).any() else 6
    assert n >= 2  # the first tokens agree; logprobs of agreeing tokens within bf16 error
    np.testing.assert_allclose(a.logprobs[0, :n], b.logprobs[0, :n], atol=0.1)


def test_bad_engine_inputs(model):
    with pytest.raises(TypeError, match="Engine: model must be a Llama, got str"):
        Engine("model")
    with pytest.raises(ValueError, match="Engine: cap must be a positive int, got 0"):
        Engine(model, cap=0)
    with pytest.raises(ValueError, match="differs from the engine's"):
        Engine(model).update_weights(Llama(CFG.replace(dim=8, n_heads=2, n_kv_heads=2),
                                           rngs=nnx.Rngs(0)))
    with pytest.raises(TypeError, match="model must be a Llama or an Engine"):
        generate_tokens(object(), [[1]], jax.random.split(jax.random.key(0), 1),
                        max_new_tokens=1)
    with pytest.raises(ValueError, match="truncation_mask: logits must have a vocabulary axis"):
        truncation_mask(jnp.float32(1.0), 0.5)
