"""The Llama decoder against a naive NumPy reference, KV-cache decoding, padding, drop_layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_tools import KVCache, Llama, LlamaConfig, drop_layers, forward, init_cache

CFG = LlamaConfig(vocab_size=50, dim=24, n_layers=3, n_heads=6, n_kv_heads=2, hidden_dim=40,
                  rope_base=500.0, max_seq_len=64, tie_embeddings=False)


@pytest.fixture(scope="module")
def model():
    return Llama(CFG, rngs=nnx.Rngs(0))


def _numpy_llama(model, tokens):
    """Textbook Llama forward, one head and one position at a time (float64)."""
    c = model.config
    g = lambda name: np.asarray(getattr(model, name)[...], np.float64)
    emb, head = g("embed"), g("lm_head") if model.lm_head is not None else g("embed").T
    hd = c.head_dim
    S = len(tokens)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x) + c.norm_eps) * w

    def rope(vec, pos):
        out = np.empty_like(vec)
        half = hd // 2
        for i in range(half):  # pair (i, i + d/2) rotated by angle pos * base^(-2i/d)
            theta = pos * c.rope_base ** (-2 * i / hd)
            a, b = vec[i], vec[i + half]
            out[i] = a * np.cos(theta) - b * np.sin(theta)
            out[i + half] = b * np.cos(theta) + a * np.sin(theta)
        return out

    h = emb[np.asarray(tokens)]
    for layer in range(c.n_layers):
        p = {n: g(n)[layer] for n in ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm",
                                      "w_gate", "w_up", "w_down")}
        x = np.stack([rms(h[s], p["attn_norm"]) for s in range(S)])
        q = (x @ p["wq"]).reshape(S, c.n_heads, hd)
        k = (x @ p["wk"]).reshape(S, c.n_kv_heads, hd)
        v = (x @ p["wv"]).reshape(S, c.n_kv_heads, hd)
        attn = np.zeros((S, c.n_heads, hd))
        group = c.n_heads // c.n_kv_heads
        for head_i in range(c.n_heads):
            kv = head_i // group
            for s in range(S):
                qs = rope(q[s, head_i], s)
                scores = np.array([rope(k[t, kv], t) @ qs / np.sqrt(hd) for t in range(s + 1)])
                w = np.exp(scores - scores.max())
                w /= w.sum()
                attn[s, head_i] = w @ v[: s + 1, kv]
        h = h + attn.reshape(S, -1) @ p["wo"]
        x = np.stack([rms(h[s], p["mlp_norm"]) for s in range(S)])
        gate = x @ p["w_gate"]
        h = h + (gate / (1 + np.exp(-gate)) * (x @ p["w_up"])) @ p["w_down"]
    h = np.stack([rms(h[s], g("final_norm")) for s in range(S)])
    return h @ head


def test_forward_matches_numpy_reference(model):
    tokens = [3, 17, 42, 8, 8, 1, 29]
    ref = _numpy_llama(model, tokens)
    got = np.asarray(model(jnp.asarray([tokens])))[0]
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("tied", [False, True])
def test_kv_cache_decoding_equals_full_recompute(tied):
    cfg = CFG.replace(tie_embeddings=tied)
    m = Llama(cfg, rngs=nnx.Rngs(1))
    tokens = jax.random.randint(jax.random.key(0), (2, 11), 0, cfg.vocab_size)
    full = m(tokens)
    cache = init_cache(cfg, 2, 16)
    kv_mask = jnp.ones((2, 16), bool)
    logits, cache, _ = forward(m, tokens[:, :5], cache=cache, cache_index=0, kv_mask=kv_mask)
    parts = [logits]
    for i in range(5, 11):
        logits, cache, _ = forward(m, tokens[:, i:i + 1], positions=jnp.full((2, 1), i),
                                   cache=cache, cache_index=i, kv_mask=kv_mask)
        parts.append(logits)
    np.testing.assert_allclose(np.concatenate(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert isinstance(cache, KVCache) and cache.k.shape == (3, 2, 16, 2, 4)


def test_left_padding_gives_unpadded_logits(model):
    short = jnp.asarray([[5, 6, 7, 9]])
    padded = jnp.asarray([[0, 0, 0, 5, 6, 7, 9]])
    mask = padded != 0
    a = model(short)[0]
    b = model(padded, attention_mask=mask)[0, 3:]
    np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5)


def test_drop_layers_equals_zero_gates(model):
    tokens = jax.random.randint(jax.random.key(2), (2, 9), 0, CFG.vocab_size)
    smaller = drop_layers(model, [0, 2])
    assert smaller.config.n_layers == 2 and smaller.wq[...].shape[0] == 2
    gated = model(tokens, gates=jnp.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(smaller(tokens), gated, atol=1e-6)
    # the mask form, and that the original is untouched
    np.testing.assert_allclose(drop_layers(model, np.array([True, False, True]))(tokens),
                               gated, atol=1e-6)
    assert model.config.n_layers == 3 and model.wq[...].shape[0] == 3
    # gating does something: dropping a layer changes the logits
    assert float(jnp.abs(gated - model(tokens)).max()) > 1e-3


def test_bfloat16_close_to_float32(model):
    tokens = jnp.asarray([[1, 2, 3, 4, 5]])
    m16 = Llama(CFG.replace(dtype="bfloat16"), rngs=nnx.Rngs(0))
    a, b = model(tokens), m16(tokens)
    assert b.dtype == jnp.float32
    np.testing.assert_allclose(b, a, atol=0.05)


def test_gates_are_not_params(model):
    params = nnx.state(model, nnx.Param)
    assert "gates" not in params
    assert "wq" in params


def test_bad_config():
    with pytest.raises(ValueError, match="n_heads .* multiple of n_kv_heads"):
        LlamaConfig(vocab_size=10, dim=8, n_layers=1, n_heads=3, n_kv_heads=2, hidden_dim=8)
    with pytest.raises(ValueError, match="dim must be a positive int, got 0"):
        LlamaConfig(vocab_size=10, dim=0, n_layers=1, n_heads=1, n_kv_heads=1, hidden_dim=8)
    with pytest.raises(ValueError, match="dtype must be one of"):
        LlamaConfig(vocab_size=10, dim=8, n_layers=1, n_heads=2, n_kv_heads=2, hidden_dim=8,
                    dtype="float16")
    with pytest.raises(ValueError, match="head_dim must be a positive even"):
        LlamaConfig(vocab_size=10, dim=9, n_layers=1, n_heads=3, n_kv_heads=3, hidden_dim=8)
    with pytest.raises(TypeError, match="config must be a LlamaConfig"):
        Llama({"dim": 8}, rngs=nnx.Rngs(0))


def test_bad_forward_and_drop_layers(model):
    with pytest.raises(ValueError, match="tokens must be an int array"):
        forward(model, jnp.ones((2, 3), jnp.float32))
    with pytest.raises(ValueError, match="gates must have shape"):
        forward(model, jnp.ones((1, 3), jnp.int32), gates=jnp.ones(2))
    with pytest.raises(ValueError, match="cache_index and kv_mask are required"):
        forward(model, jnp.ones((1, 3), jnp.int32), cache=init_cache(CFG, 1, 8))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        forward(model, jnp.ones((1, 3), jnp.int32), attention_mask=jnp.ones((1, 4), bool))
    with pytest.raises(ValueError, match=r"keep indices must lie in \[0, 3\)"):
        drop_layers(model, [0, 3])
    with pytest.raises(ValueError, match="strictly increasing"):
        drop_layers(model, [1, 1])
    with pytest.raises(ValueError, match="non-empty"):
        drop_layers(model, [])
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        init_cache(CFG, 0, 4)


def test_hidden_states_and_returned_kv(model):
    from llm_tools import hidden_states
    from llm_tools.model import _rms_norm

    tokens = jax.random.randint(jax.random.key(5), (2, 7), 0, CFG.vocab_size)
    hs = hidden_states(model, tokens)
    assert hs.shape == (CFG.n_layers + 1, 2, 7, CFG.dim)
    np.testing.assert_allclose(hs[0], model.embed[...][tokens], atol=1e-6)
    _, kv, h = forward(model, tokens, return_kv=True)
    np.testing.assert_allclose(_rms_norm(hs[-1], model.final_norm[...], CFG.norm_eps), h,
                               atol=1e-5)
    # layer 1's output is layer 0's input plus its two residual branches: gating layer 1 off
    # leaves hs[2] == hs[1]
    off = hidden_states(model, tokens, gates=jnp.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(off[2], off[1], atol=1e-6)
    assert float(jnp.abs(hs[2] - hs[1]).max()) > 1e-3
    # the returned keys/values are what a cached pass writes
    cache = init_cache(CFG, 2, 7)
    _, filled, _ = forward(model, tokens, cache=cache, cache_index=0,
                           kv_mask=jnp.ones((2, 7), bool))
    np.testing.assert_allclose(kv.k, filled.k, atol=1e-6)
    np.testing.assert_allclose(kv.v, filled.v, atol=1e-6)
    with pytest.raises(ValueError, match="return_kv=True is for a pass without a cache"):
        forward(model, tokens, cache=cache, cache_index=0, kv_mask=jnp.ones((2, 7), bool),
                return_kv=True)
    with pytest.raises(ValueError, match=r"hidden_states: tokens must be an int array"):
        hidden_states(model, jnp.ones((2, 3)))
