"""Block Influence against a hand computation; SLEB against brute force; last-n, random."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from e3_pruner import (
    block_influence,
    block_influence_from_hidden,
    calibration_nll,
    last_n_keep,
    prune,
    random_keep,
    select_by_block_influence,
    sleb_keep,
)
from llm_tools import Llama, LlamaConfig, next_token_loss

CFG = LlamaConfig(vocab_size=40, dim=16, n_layers=4, n_heads=4, n_kv_heads=2, hidden_dim=24,
                  rope_base=500.0, max_seq_len=32)


@pytest.fixture(scope="module")
def model():
    m = Llama(CFG, rngs=nnx.Rngs(0))
    # larger residual branches than the default init, so layers differ visibly
    for name in ("wo", "w_down"):
        var = getattr(m, name)
        var.set_value(var[...] * 4.0)
    return m


@pytest.fixture(scope="module")
def tokens():
    return jax.random.randint(jax.random.key(1), (3, 9), 0, CFG.vocab_size)


def numpy_residual_stream(model, tokens):
    """X_0 .. X_L of one sequence by a textbook float64 Llama, position by position."""
    c = model.config
    g = lambda name: np.asarray(getattr(model, name)[...], np.float64)
    hd, S = c.head_dim, len(tokens)
    rms = lambda x, w: x / np.sqrt(np.mean(x * x) + c.norm_eps) * w

    def rope(vec, pos):
        half = hd // 2
        ang = pos * c.rope_base ** (-2 * np.arange(half) / hd)
        a, b = vec[:half], vec[half:]
        return np.concatenate([a * np.cos(ang) - b * np.sin(ang),
                               b * np.cos(ang) + a * np.sin(ang)])

    h = g("embed")[np.asarray(tokens)]
    states = [h.copy()]
    group = c.n_heads // c.n_kv_heads
    for layer in range(c.n_layers):
        p = {n: g(n)[layer] for n in ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate",
                                      "w_up", "w_down")}
        x = np.stack([rms(h[s], p["attn_norm"]) for s in range(S)])
        q = (x @ p["wq"]).reshape(S, c.n_heads, hd)
        k = (x @ p["wk"]).reshape(S, c.n_kv_heads, hd)
        v = (x @ p["wv"]).reshape(S, c.n_kv_heads, hd)
        attn = np.zeros((S, c.n_heads, hd))
        for head in range(c.n_heads):
            for s in range(S):
                qs = rope(q[s, head], s)
                sc = np.array([rope(k[t, head // group], t) @ qs / np.sqrt(hd)
                               for t in range(s + 1)])
                w = np.exp(sc - sc.max())
                attn[s, head] = (w / w.sum()) @ v[: s + 1, head // group]
        h = h + attn.reshape(S, -1) @ p["wo"]
        x = np.stack([rms(h[s], p["mlp_norm"]) for s in range(S)])
        gate = x @ p["w_gate"]
        h = h + (gate / (1 + np.exp(-gate)) * (x @ p["w_up"])) @ p["w_down"]
        states.append(h.copy())
    return states


def test_block_influence_from_hidden_by_hand():
    x0 = np.array([[1.0, 0.0], [0.0, 1.0]])
    x1 = np.array([[1.0, 1.0], [0.0, 2.0]])      # cos with x0: 1/sqrt(2), 1
    x2 = np.array([[-1.0, -1.0], [0.0, -3.0]])   # cos with x1: -1, -1
    hidden = np.stack([x0, x1, x2])[:, None]     # [3, B=1, S=2, d=2]
    np.testing.assert_allclose(block_influence_from_hidden(hidden),
                               [1 - (2 ** -0.5 + 1) / 2, 2.0], rtol=1e-6)
    # masking the second token leaves only the first
    np.testing.assert_allclose(block_influence_from_hidden(hidden, [[True, False]]),
                               [1 - 2 ** -0.5, 2.0], rtol=1e-6)


def test_block_influence_matches_a_numpy_transformer(model, tokens):
    bi_hand = np.zeros(CFG.n_layers)
    for row in np.asarray(tokens):
        xs = numpy_residual_stream(model, row)
        for layer in range(CFG.n_layers):
            a, b = xs[layer], xs[layer + 1]
            cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            bi_hand[layer] += np.sum(1 - cos)
    bi_hand /= tokens.size
    got = block_influence(model, tokens, batch_size=2)  # two chunks: 2 rows + 1 row
    np.testing.assert_allclose(got, bi_hand, rtol=1e-4, atol=1e-6)
    assert np.ptp(bi_hand) > 1e-3  # the layers differ, so a wrong pairing would show


def test_block_influence_ignores_padding(model):
    row = jax.random.randint(jax.random.key(5), (1, 6), 0, CFG.vocab_size)
    padded = jnp.concatenate([jnp.zeros((1, 3), row.dtype), row], axis=1)
    mask = jnp.arange(9)[None] >= 3
    np.testing.assert_allclose(block_influence(model, padded, attention_mask=mask),
                               block_influence(model, row), rtol=1e-5, atol=1e-6)


def test_identity_layer_has_zero_influence_and_is_removed_first(model, tokens):
    m = nnx.clone(model)
    for name in ("wo", "w_down"):  # layer 2's residual branches output zero
        var = getattr(m, name)
        var.set_value(var[...].at[2].set(0.0))
    bi = block_influence(m, tokens)
    assert abs(bi[2]) < 1e-6 and np.all(np.delete(bi, 2) > 1e-3)
    np.testing.assert_array_equal(select_by_block_influence(bi, 3), [0, 1, 3])


def test_select_by_block_influence_keeps_the_highest():
    np.testing.assert_array_equal(select_by_block_influence([0.3, 0.1, 0.5, 0.2, 0.4], 3),
                                  [0, 2, 4])


def test_calibration_nll_matches_llm_tools_loss(model, tokens):
    want = float(next_token_loss(model, tokens))
    assert abs(calibration_nll(model, tokens, batch_size=2) - want) < 1e-5
    gates = jnp.array([1.0, 0.0, 1.0, 1.0])
    want = float(next_token_loss(prune(model, drop=[1]), tokens))
    assert abs(calibration_nll(model, tokens, gates=gates) - want) < 1e-5


def test_sleb_is_greedy_by_calibration_nll(model, tokens):
    # brute force with physically pruned models and llm_tools' own loss
    def nll_without(drop):
        return float(next_token_loss(prune(model, drop=drop), tokens))

    first = min(range(4), key=lambda layer: nll_without([layer]))
    second = min((layer for layer in range(4) if layer != first),
                 key=lambda layer: nll_without([first, layer]))
    log = []
    keep = sleb_keep(model, tokens, 2, callback=lambda r, layer, nll: log.append((layer, nll)))
    assert [layer for layer, _ in log] == [first, second]
    np.testing.assert_array_equal(keep, sorted(set(range(4)) - {first, second}))
    assert abs(log[1][1] - nll_without([first, second])) < 1e-5


def test_last_n_and_random():
    np.testing.assert_array_equal(last_n_keep(8, 6), np.arange(6))
    draws = [tuple(random_keep(jax.random.key(s), 8, 6)) for s in range(40)]
    assert all(len(set(d)) == 6 and list(d) == sorted(d) and max(d) < 8 for d in draws)
    assert len(set(draws)) > 10  # 28 possible subsets; 40 draws hit many
    assert random_keep(jax.random.key(3), 8, 6).tolist() == random_keep(jax.random.key(3), 8,
                                                                         6).tolist()


def test_bad_inputs(model, tokens):
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 4"):
        sleb_keep(model, tokens, 4)
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 4"):
        select_by_block_influence([1.0, 2.0, 3.0, 4.0], 0)
    with pytest.raises(ValueError, match="scores must be a finite 1-D array"):
        select_by_block_influence([1.0, np.nan], 1)
    with pytest.raises(ValueError, match="calibration sequences must hold at least 2 tokens"):
        sleb_keep(model, tokens[:, :1], 2)
    with pytest.raises(ValueError, match="calibration sequences must hold at least 2 tokens"):
        calibration_nll(model, tokens[:, :1])
    with pytest.raises(ValueError, match="calibration sequences must hold at least 1 tokens"):
        block_influence(model, tokens[:, :0])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 40\)"):
        block_influence(model, tokens + 100)
    with pytest.raises(ValueError, match="tokens must be an int array"):
        block_influence(model, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        calibration_nll(model, tokens, attention_mask=jnp.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"gates must have shape \(4,\)"):
        calibration_nll(model, tokens, gates=jnp.ones(3))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        calibration_nll(model, tokens, batch_size=0)
    with pytest.raises(ValueError, match="no position has both a real token"):
        calibration_nll(model, tokens, attention_mask=jnp.zeros(tokens.shape, bool))
    with pytest.raises(ValueError, match="attention_mask has no real token"):
        block_influence(model, tokens, attention_mask=jnp.zeros(tokens.shape, bool))
    with pytest.raises(ValueError, match=r"hidden must be \[L\+1 >= 2, B, S, d\]"):
        block_influence_from_hidden(np.zeros((1, 1, 2, 3)))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        block_influence_from_hidden(np.zeros((2, 1, 2, 3)), np.ones((1, 3), bool))
    with pytest.raises(TypeError, match="model must be an llm_tools.Llama"):
        block_influence("model", tokens)
    with pytest.raises(ValueError, match="num_layers must be an int >= 2"):
        last_n_keep(1, 1)
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 8"):
        last_n_keep(8, 8)
    with pytest.raises(TypeError, match="key must be a typed key"):
        random_keep(0, 8, 6)
    with pytest.raises(ValueError, match=r"k \(layers kept\) must satisfy 0 < k < L = 8"):
        random_keep(jax.random.key(0), 8, 0)
