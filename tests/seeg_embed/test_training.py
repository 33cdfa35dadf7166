"""Training steps: they learn, update BatchNorm statistics, and shard like one device."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import seeg_embed as S

ROOT = Path(__file__).resolve().parents[2]


def toy_bank(seed=0):
    """Two 'regions': 12 Hz vs 35 Hz oscillations in noise, random gains; 3 subjects."""
    rng = np.random.default_rng(seed)
    t = np.arange(400) / 400.0
    segs, subject, region = [], [], []
    for s in range(3):
        for r, hz in enumerate((12.0, 35.0)):
            for _ in range(2):
                phase = rng.uniform(0, 2 * np.pi, (6, 1))
                x = np.sin(2 * np.pi * hz * t + phase) + 0.5 * rng.normal(size=(6, 400))
                segs.append((rng.uniform(0.5, 5) * x).astype(np.float32))
                subject.append(s)
                region.append(r)
    return S.make_segment_bank(segs, subject, region), np.array(subject), np.array(region)


def test_encoder_learns_to_separate_regions():
    bank, subject, region = toy_bank()
    model = S.SiameseEncoder(8, widths=(8, 8, 8), rngs=nnx.Rngs(0))
    opt = optax.adamw(3e-3)
    graphdef, state = S.init_train_state(model, opt)
    step = S.make_encoder_step(graphdef, opt, loss="hadsell", margin=1.0)
    sampler = S.make_pair_sampler(subject, region)
    key = jax.random.key(0)
    bn_before = jax.tree.leaves(state.rest)
    losses = []
    for _ in range(40):
        key, kb, kd = jax.random.split(key, 3)
        state, loss = step(state, S.sample_pairs(kb, sampler, bank, 16), kd)
        losses.append(float(loss))
    assert int(state.step) == 40
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # BatchNorm running statistics moved (they live outside the trained parameters)
    assert any(not np.allclose(a, b) for a, b in zip(bn_before, jax.tree.leaves(state.rest),
                                                    strict=True))
    # embeddings of fresh segments: nearest centroid separates the two regions
    test_bank, _, test_region = toy_bank(seed=1)
    e = S.embed_segments(S.merge_model(graphdef, state), np.asarray(test_bank.segments))
    owner = np.asarray(test_bank.owner)
    pred = S.nearest_centroid(e[::2], test_region[owner[::2]], e[1::2])
    assert np.mean(pred == test_region[owner[1::2]]) > 0.9


def test_supcon_step_runs_and_decreases():
    bank, _, _ = toy_bank()
    model = S.SiameseEncoder(8, widths=(8, 8, 8), dropout=0.0, rngs=nnx.Rngs(1))
    opt = optax.adam(3e-3)
    graphdef, state = S.init_train_state(model, opt)
    step = S.make_encoder_step(graphdef, opt, loss="supcon", temperature=0.2)
    key, losses = jax.random.key(1), []
    for _ in range(30):
        key, kb, kd = jax.random.split(key, 3)
        state, loss = step(state, S.sample_labelled(kb, bank, 16), kd)
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_transformer_learns_a_cross_channel_map():
    """Channel 'B' is 2x channel 'A'; embeddings tell which is which; channels are shuffled."""
    rng = np.random.default_rng(0)
    ea, eb = rng.normal(size=(2, 4)).astype(np.float32)
    model = S.ChannelTransformer(4, 8, d_model=16, num_heads=2, num_layers=2, mlp_dim=32,
                                 rngs=nnx.Rngs(0))
    opt = optax.adam(3e-3)
    graphdef, state = S.init_train_state(model, opt)
    step = S.make_transformer_step(graphdef, opt)

    def batch(seed):
        r = np.random.default_rng(seed)
        a = r.normal(size=(32, 8)).astype(np.float32)
        win = np.stack([a, 2 * a, np.zeros_like(a)], 1)
        emb = np.broadcast_to(np.stack([ea, eb, np.zeros(4, np.float32)]), (32, 3, 4)).copy()
        swap = r.random(32) < 0.5
        win[swap, :2], emb[swap, :2] = win[swap, 1::-1], emb[swap, 1::-1]
        cm = np.array([[1, 1, 0]] * 32, bool)
        tm = np.zeros((32, 3), bool)
        tm[np.arange(32), r.integers(0, 2, 32)] = True
        return S.ReconBatch(*(jnp.asarray(v) for v in (emb, win, win, cm, tm)))

    key, losses = jax.random.key(0), []
    for i in range(300):
        key, kd = jax.random.split(key)
        state, loss = step(state, batch(i), kd)
        losses.append(float(loss))
    # the target's variance is 1 (A) or 4 (B): predicting zero would give 2.5
    assert np.mean(losses[-20:]) < 0.1 * 2.5


def test_sharded_steps_equal_single_device_steps():
    out = subprocess.run([sys.executable, "-m", "tests.seeg_embed.multidevice_train"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK 8 devices" in out.stdout


def test_bad_inputs():
    model = S.SiameseEncoder(8, widths=(8, 8, 8), rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="optimizer must be an optax GradientTransformation"):
        S.init_train_state(model, "adam")
    with pytest.raises(TypeError, match="model must be an nnx.Module"):
        S.init_train_state(object(), optax.adam(1e-3))
    graphdef, _ = S.init_train_state(model, optax.adam(1e-3))
    with pytest.raises(ValueError, match=r"loss must be one of \['hadsell', 'supcon'\]"):
        S.make_encoder_step(graphdef, optax.adam(1e-3), loss="triplet")
    with pytest.raises(ValueError, match="margin and temperature must be > 0"):
        S.make_encoder_step(graphdef, optax.adam(1e-3), margin=0.0)
    with pytest.raises(ValueError, match="vq_weight must be >= 0"):
        S.make_transformer_step(graphdef, optax.adam(1e-3), vq_weight=-1.0)
    mesh = jax.make_mesh((1,), ("batch",))
    with pytest.raises(ValueError, match="mesh must have a 'data' axis"):
        S.make_encoder_step(graphdef, optax.adam(1e-3), mesh=mesh)
