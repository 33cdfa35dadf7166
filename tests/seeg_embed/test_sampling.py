"""Segment banks and class-balanced pair sampling across subjects."""

import jax
import numpy as np
import pytest

import seeg_embed as S

SUBJECT = np.array([0, 0, 0, 1, 1, 2, 2, 2])
REGION = np.array([0, 1, 1, 0, 2, 2, 0, -1])


def bank():
    # each segment encodes (channel, index) so the sampled rows can be traced back
    segs = [np.stack([np.full(8, 100 * c + k, np.float32) for k in range(3 + c % 2)])
            for c in range(len(SUBJECT))]
    return S.make_segment_bank(segs, SUBJECT, REGION)


def test_bank_layout():
    b = bank()
    assert b.n_channels == 8
    np.testing.assert_array_equal(b.count, [3 + c % 2 for c in range(8)])
    owner = np.asarray(b.owner)
    np.testing.assert_array_equal(np.asarray(b.segments)[:, 0] // 100, owner)


def test_pairs_are_labelled_correctly_and_balanced():
    b = bank()
    sampler = S.make_pair_sampler(SUBJECT, REGION)
    x_a, x_b, diff = S.sample_pairs(jax.random.key(0), sampler, b, 400, within_fraction=0.5)
    ca = np.asarray(x_a)[:, 0].astype(int) // 100
    cb = np.asarray(x_b)[:, 0].astype(int) // 100
    diff = np.asarray(diff)
    assert diff.mean() == 0.5
    np.testing.assert_array_equal(REGION[ca] != REGION[cb], diff.astype(bool))
    assert (REGION[ca] >= 0).all() and (REGION[cb] >= 0).all()
    assert (ca != cb).all()
    within = SUBJECT[ca] == SUBJECT[cb]
    # both pools exist for same and different pairs: about half of each kind is within-subject
    assert 0.35 < within[diff == 0].mean() < 0.65
    assert 0.35 < within[diff == 1].mean() < 0.65
    # every sampled segment index is one of the channel's own segments
    k = np.asarray(x_a)[:, 0].astype(int) % 100
    assert (k < np.asarray(b.count)[ca]).all()


def test_within_and_across_only():
    b = bank()
    only_within = S.make_pair_sampler(SUBJECT, REGION, across_subjects=False)
    x_a, x_b, _ = S.sample_pairs(jax.random.key(1), only_within, b, 64, 0.0)
    ca, cb = (np.asarray(x)[:, 0].astype(int) // 100 for x in (x_a, x_b))
    assert (SUBJECT[ca] == SUBJECT[cb]).all()   # an empty across pool falls back to within
    only_across = S.make_pair_sampler(SUBJECT, REGION, within_subject=False)
    x_a, x_b, _ = S.sample_pairs(jax.random.key(2), only_across, b, 64, 1.0)
    ca, cb = (np.asarray(x)[:, 0].astype(int) // 100 for x in (x_a, x_b))
    assert (SUBJECT[ca] != SUBJECT[cb]).all()


def test_labelled_batches_balance_regions():
    b = bank()
    x, y = S.sample_labelled(jax.random.key(3), b, 3000, per_channel=2)
    ch = np.asarray(x)[:, 0].astype(int) // 100
    np.testing.assert_array_equal(REGION[ch], np.asarray(y))
    np.testing.assert_array_equal(ch[::2], ch[1::2])
    freq = np.bincount(np.asarray(y), minlength=3) / len(y)
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.05)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"subject\(s\) \[3\] have a single labelled channel"):
        S.make_pair_sampler(np.array([0, 0, 3]), np.array([0, 1, 1]))
    S.make_pair_sampler(np.array([0, 0, 3]), np.array([0, 1, 1]), within_subject=False)
    with pytest.raises(ValueError, match="no different-region pair"):
        S.make_pair_sampler(np.array([0, 0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="no same-region pair"):
        S.make_pair_sampler(np.array([0, 0]), np.array([1, 2]))
    sampler = S.make_pair_sampler(SUBJECT, REGION)
    with pytest.raises(ValueError, match="batch_size must be an even int >= 2, got 5"):
        S.sample_pairs(jax.random.key(0), sampler, bank(), 5)
    with pytest.raises(ValueError, match=r"within_fraction must be in \[0, 1\]"):
        S.sample_pairs(jax.random.key(0), sampler, bank(), 4, 1.5)
    with pytest.raises(ValueError, match=r"non-finite samples in channel\(s\) \[1\]"):
        S.make_segment_bank([np.zeros((2, 4)), np.full((2, 4), np.nan)], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="segments have different lengths"):
        S.make_segment_bank([np.zeros((2, 4)), np.zeros((2, 5))], [0, 0], [0, 1])
    with pytest.raises(ValueError, match=r"channel\(s\) \[0\] have no segment"):
        S.make_segment_bank([np.zeros((0, 4)), np.zeros((2, 4))], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="batch_size must be a multiple of per_channel"):
        S.sample_labelled(jax.random.key(0), bank(), 5, per_channel=2)
