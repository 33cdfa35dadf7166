"""Model shapes for every fusion, mask use, budget matching, and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import mgc

B, F, T, C = 2, 32, 32, 2


@pytest.fixture(scope="module")
def inputs():
    x = jax.random.normal(jax.random.key(0), (B, F, T, C))
    m = jax.random.uniform(jax.random.key(1), (B, F, T, C))
    return x, m


@pytest.mark.parametrize("fusion", mgc.FUSIONS)
def test_every_fusion_shapes_and_uses_the_mask(fusion, inputs):
    x, m = inputs
    model = mgc.MGCClassifier(fusion, C, 6, width=4, grid=(F, T), rngs=nnx.Rngs(0))
    logits = model(x, m)
    assert logits.shape == (B, 6) and jnp.all(jnp.isfinite(logits))
    assert model.features(x, m).shape == (B, F // 4, T // 4, 8)
    other = model(x, jnp.zeros_like(m))
    assert float(jnp.max(jnp.abs(other - logits))) > 1e-6  # the mask reaches the output
    # the image is standardised per example and band: scale and offset do not matter
    np.testing.assert_allclose(model(3.0 * x + 7.0, m), logits, atol=1e-4)


def test_baselines_ignore_the_mask_and_match_the_budget(inputs):
    x, m = inputs
    base = mgc.SpectrogramCNN(C, 6, width=4, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(base(x, m), base(x, jnp.zeros_like(m)))
    assert base(x).shape == (B, 6)
    large = mgc.large_cnn(C, 6, width=8, rngs=nnx.Rngs(0))
    assert large(x).shape == (B, 6)
    target = mgc.count_params(mgc.MGCClassifier("cross_attention", C, 6, 8, grid=(64, 64),
                                                rngs=nnx.Rngs(0)))
    w = mgc.matched_width(target, lambda w: mgc.SpectrogramCNN(C, 6, w, rngs=nnx.Rngs(0)))
    n = mgc.count_params(mgc.SpectrogramCNN(C, 6, w, rngs=nnx.Rngs(0)))
    assert abs(n - target) / target < 0.1
    assert mgc.count_params(mgc.large_cnn(C, 6, 16, rngs=nnx.Rngs(0))) > 5 * target


def test_count_params_by_hand():
    model = mgc.SpectrogramCNN(1, 3, width=2, rngs=nnx.Rngs(0))
    # stem block: 16 -> 4 (3x3) and 4 -> 4 (3x3); head: 4 -> 8, 8 -> 8 (3x3); linear 8 -> 3
    want = (9 * 16 * 4 + 4) + (9 * 4 * 4 + 4) + (9 * 4 * 8 + 8) + (9 * 8 * 8 + 8) + (8 * 3 + 3)
    assert mgc.count_params(model) == want


def test_unet_shapes_and_soft_mask(inputs):
    x, _ = inputs
    unet = mgc.UNet(C, width=4, rngs=nnx.Rngs(0))
    out = unet(x)
    assert out.shape == (B, F, T, C)
    p = jax.nn.sigmoid(out)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    assert mgc.UNet(C, 1, width=4, rngs=nnx.Rngs(0))(x).shape == (B, F, T, 1)


def test_space_depth_round_trip_and_layout():
    x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
    y = mgc.space_to_depth(x, 2)
    assert y.shape == (2, 2, 2, 12)
    # position (0, 0) holds the 2x2 patch rows 0-1, cols 0-1, channels innermost
    np.testing.assert_array_equal(y[0, 0, 0], np.concatenate([x[0, 0, 0], x[0, 0, 1],
                                                              x[0, 1, 0], x[0, 1, 1]]))
    np.testing.assert_array_equal(mgc.depth_to_space(y, 2), x)


def test_standardize():
    x = jax.random.normal(jax.random.key(3), (3, 8, 6, 2)) * 5 + 2
    z = np.asarray(mgc.standardize(x))
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1, atol=1e-3)


def test_bad_inputs(inputs):
    x, m = inputs
    with pytest.raises(ValueError, match="fusion must be one of"):
        mgc.MGCClassifier("sum", C, 6, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="grid must be divisible by 8"):
        mgc.MGCClassifier("concat", C, 6, grid=(60, 64), rngs=nnx.Rngs(0))
    model = mgc.MGCClassifier("gated", C, 6, width=4, grid=(F, T), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="x has 1 channels, expected 2"):
        model(x[..., :1], m)
    with pytest.raises(ValueError, match="mask has shape \\(2, 32, 16, 2\\) but x has"):
        model(x, m[:, :, :16])
    with pytest.raises(ValueError, match="x must be \\(batch, n_bins, n_frames, channels\\)"):
        mgc.SpectrogramCNN(C, 6, rngs=nnx.Rngs(0))(x[0])
    with pytest.raises(ValueError, match="n_bins and n_frames must be divisible by 8"):
        mgc.UNet(C, width=4, rngs=nnx.Rngs(0))(x[:, :12])
    with pytest.raises(ValueError, match="target_params must be > 0"):
        mgc.matched_width(0, lambda w: mgc.SpectrogramCNN(C, 6, w, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="Encoder: stages must be >= 1"):
        mgc.Encoder(C, 4, stages=0, rngs=nnx.Rngs(0))
