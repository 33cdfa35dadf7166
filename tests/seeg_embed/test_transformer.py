"""Channel transformer: padding independence, permutation equivariance, masking, codebook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seeg_embed as S

B, C, E, W = 3, 6, 5, 12


@pytest.fixture(scope="module")
def model():
    return S.ChannelTransformer(E, W, d_model=16, num_heads=4, num_layers=2, mlp_dim=32,
                                rngs=nnx.Rngs(0))


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(B, C, E)).astype(np.float32)
    win = rng.normal(size=(B, C, W)).astype(np.float32)
    cm = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], bool)
    tm = np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]], bool)
    return emb, win, cm, tm


def run(model, emb, win, cm, tm):
    return np.asarray(model(jnp.asarray(emb), jnp.asarray(win), jnp.asarray(cm),
                            jnp.asarray(tm)).pred)


def test_outputs_do_not_depend_on_padded_channels(model):
    emb, win, cm, tm = inputs()
    ref = run(model, emb, win, cm, tm)
    emb2, win2 = emb.copy(), win.copy()
    emb2[~cm] = 1e3 * np.random.default_rng(5).normal(size=emb2[~cm].shape)
    win2[~cm] = -7.0
    out = run(model, emb2, win2, cm, tm)
    np.testing.assert_allclose(out[cm], ref[cm], rtol=1e-5, atol=1e-5)
    assert (out[~cm] == 0).all()
    # a padded subject equals the same subject alone at its own channel count
    alone = run(model, emb[2:3, :3], win[2:3, :3], cm[2:3, :3], tm[2:3, :3])
    np.testing.assert_allclose(alone[0], ref[2, :3], rtol=1e-5, atol=1e-5)


def test_masked_windows_are_not_seen(model):
    emb, win, cm, tm = inputs()
    ref = run(model, emb, win, cm, tm)
    win2 = win.copy()
    win2[tm] = 50.0
    np.testing.assert_allclose(run(model, emb, win2, cm, tm), ref, rtol=1e-5, atol=1e-5)
    # whereas a visible channel's window does matter
    win3 = win.copy()
    win3[0, 1] += 1.0
    assert not np.allclose(run(model, emb, win3, cm, tm)[0], ref[0])


def test_permuting_channels_permutes_outputs(model):
    emb, win, cm, tm = inputs()
    ref = run(model, emb, win, cm, tm)
    perm = np.array([3, 5, 0, 2, 1, 4])
    out = run(model, emb[:, perm], win[:, perm], cm[:, perm], tm[:, perm])
    np.testing.assert_allclose(out, ref[:, perm], rtol=1e-5, atol=1e-5)


def test_codebook_quantizes_with_straight_through_gradient():
    cb = S.Codebook(4, 3, rngs=nnx.Rngs(1))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)), jnp.float32)
    q, ids, loss = cb(x)
    codes = np.asarray(cb.codes[...])
    ref_ids = np.argmin(((np.asarray(x)[:, None] - codes[None]) ** 2).sum(-1), 1)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(q, codes[ref_ids], rtol=1e-6)
    np.testing.assert_allclose(loss, 1.25 * ((np.asarray(x) - codes[ref_ids]) ** 2).sum(-1),
                               rtol=1e-5)
    g = jax.grad(lambda v: cb(v)[0].sum())(x)
    np.testing.assert_allclose(g, np.ones_like(x))   # straight-through: identity gradient
    m = S.ChannelTransformer(3, 4, d_model=8, num_heads=2, num_layers=1, mlp_dim=8,
                             codebook_size=4, rngs=nnx.Rngs(3))
    emb = np.random.default_rng(3).normal(size=(1, 2, 3)).astype(np.float32)
    out = m(jnp.asarray(emb), jnp.ones((1, 2, 4)), jnp.ones((1, 2), bool),
            jnp.array([[True, False]]))
    assert float(out.vq_loss) > 0


def test_masks():
    cm = jnp.asarray(np.array([[1] * 8, [1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0],
                               [1, 0, 0, 0, 0, 0, 0, 0]], bool))
    tm = np.asarray(S.random_channel_mask(jax.random.key(0), cm, 0.25))
    np.testing.assert_array_equal(tm.sum(1), [2, 1, 1, 0])
    assert not (tm & ~np.asarray(cm)).any()
    region = jnp.asarray(np.array([[0, 0, 1, 1, 2, 2, 3, -1], [0, 1, 0, 1, -1, -1, -1, -1],
                                   [4, 4, -1, -1, -1, -1, -1, -1],
                                   [0, -1, -1, -1, -1, -1, -1, -1]]))
    rm = np.asarray(S.region_channel_mask(jax.random.key(1), cm, region))
    reg = np.asarray(region)
    for b in range(2):
        masked = set(reg[b][rm[b]].tolist())
        assert len(masked) == 1 and -1 not in masked
        assert rm[b][reg[b] == masked.pop()].all()
    assert not rm[2].any() and not rm[3].any()   # one region only: nothing left visible


def test_masked_loss_counts_only_masked_real_channels():
    pred = jnp.zeros((1, 3, 2))
    target = jnp.asarray([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    loss = S.masked_reconstruction_loss(pred, target, jnp.array([[True, True, True]]),
                                        jnp.array([[True, True, False]]))
    assert float(loss) == pytest.approx((1 + 4) / 2)


def test_bad_inputs(model):
    emb, win, cm, tm = inputs()
    all_masked = cm.copy()
    with pytest.raises(ValueError, match=r"zero channels left after masking in window\(s\) "
                                         r"\[0, 1, 2\]"):
        run(model, emb, win, cm, all_masked)
    with pytest.raises(ValueError, match="target_mask masks padded channels"):
        run(model, emb, win, cm, np.ones_like(cm))
    with pytest.raises(ValueError, match=r"windows must be \(3, 6, 12\)"):
        run(model, emb, win[..., :5], cm, tm)
    with pytest.raises(ValueError, match=r"embeddings must be \[B, C, 5\]"):
        run(model, emb[..., :2], win, cm, tm)
    with pytest.raises(ValueError, match=r"num_heads \(3\) must divide d_model \(16\)"):
        S.ChannelTransformer(E, W, d_model=16, num_heads=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        S.random_channel_mask(jax.random.key(0), cm, 1.0)
    with pytest.raises(ValueError, match="pred .* do not match"):
        S.masked_reconstruction_loss(jnp.zeros((1, 2, 3)), jnp.zeros((1, 2, 4)),
                                     jnp.ones((1, 2), bool))
    with pytest.raises(ValueError, match="zero channels left after masking"):
        S.check_masks(cm, cm)
