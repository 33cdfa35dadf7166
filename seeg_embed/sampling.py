"""Segment banks and the pair / batch samplers of contrastive training across subjects.

A :class:`SegmentBank` holds every segment ``[M, L]`` with the channel that owns it and,
per channel, its subject and region. :class:`PairSampler` enumerates channel pairs once and
draws class-balanced batches: half same-region pairs (``different = 0``), half
different-region pairs (``different = 1``); a fraction ``within_fraction`` of each half
comes from pairs inside one subject, the rest from pairs across subjects (when a pool is
empty its other half is used). Each drawn pair then takes a random segment of each
channel. :func:`sample_labelled` draws ``[B]`` segments with region labels for
:func:`~seeg_embed.supcon_loss`, ``per_channel`` segments from each drawn channel.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PairSampler", "SegmentBank", "make_pair_sampler", "make_segment_bank",
           "sample_labelled", "sample_pairs"]


class SegmentBank(NamedTuple):
    """All segments and their owners.

    Attributes:
      segments: ``[M, L]`` float32.
      owner: ``[M]`` channel index of each segment.
      start / count: ``[N]`` first segment and number of segments of each channel
        (segments of a channel are contiguous).
      subject / region: ``[N]`` int ids per channel (region ``-1``: unknown).
    """

    segments: jax.Array
    owner: jax.Array
    start: jax.Array
    count: jax.Array
    subject: jax.Array
    region: jax.Array

    @property
    def n_channels(self) -> int:
        return int(self.start.shape[0])


def make_segment_bank(segments: list[np.ndarray] | np.ndarray, subject, region) -> SegmentBank:
    """Builds a bank from per-channel segment arrays.

    Args:
      segments: ``[N, n_seg, L]`` or a list of ``N`` arrays ``[n_seg_i, L]``.
      subject: ``[N]`` subject id of each channel.
      region: ``[N]`` region id of each channel (``-1`` unknown).

    Raises:
      ValueError: on mismatched lengths, segments of different lengths, a channel with no
        segment, or non-finite samples (naming the channel).
    """
    per = list(segments)
    subject, region = np.asarray(subject, np.int32), np.asarray(region, np.int32)
    if len(per) != len(subject) or len(per) != len(region):
        raise ValueError(f"make_segment_bank: {len(per)} channels of segments but "
                         f"{len(subject)} subjects and {len(region)} regions")
    if not per:
        raise ValueError("make_segment_bank: no channels")
    lengths = {np.asarray(p).shape[-1] for p in per}
    if len(lengths) != 1:
        raise ValueError(f"make_segment_bank: segments have different lengths {sorted(lengths)}")
    counts = np.array([np.asarray(p).shape[0] for p in per])
    if np.any(counts == 0):
        raise ValueError(f"make_segment_bank: channel(s) {np.flatnonzero(counts == 0).tolist()} "
                         "have no segment")
    seg_len = lengths.pop()
    flat = np.concatenate([np.asarray(p, np.float32).reshape(-1, seg_len) for p in per])
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        owners = np.repeat(np.arange(len(per)), counts)
        raise ValueError(f"make_segment_bank: non-finite samples in channel(s) "
                         f"{sorted(set(owners[bad].tolist()))}")
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return SegmentBank(jnp.asarray(flat), jnp.asarray(np.repeat(np.arange(len(per)), counts)),
                       jnp.asarray(start, jnp.int32), jnp.asarray(counts, jnp.int32),
                       jnp.asarray(subject), jnp.asarray(region))


class PairSampler(NamedTuple):
    """Channel pairs ``[P, 2]`` by pool: same/different region x within/across subjects."""

    same_within: jax.Array
    diff_within: jax.Array
    same_across: jax.Array
    diff_across: jax.Array


def make_pair_sampler(subject, region, *, within_subject: bool = True,
                      across_subjects: bool = True) -> PairSampler:
    """Enumerates the labelled channel pairs (channels with region ``-1`` are skipped).

    Args:
      subject: ``[N]`` subject ids.
      region: ``[N]`` region ids.
      within_subject: keep pairs of channels of one subject.
      across_subjects: keep pairs of channels of different subjects.

    Raises:
      ValueError: if within-subject pairs are requested and a subject has a single labelled
        channel, or if no same-region or no different-region pair exists.
    """
    subject, region = np.asarray(subject), np.asarray(region)
    if subject.shape != region.shape or subject.ndim != 1:
        raise ValueError(f"make_pair_sampler: subject {subject.shape} and region "
                         f"{region.shape} must be matching 1-D arrays")
    if not (within_subject or across_subjects):
        raise ValueError("make_pair_sampler: enable within_subject or across_subjects")
    labelled = np.flatnonzero(region >= 0)
    if within_subject:
        ids, n = np.unique(subject[labelled], return_counts=True)
        single = ids[n < 2]
        if single.size:
            raise ValueError(f"make_pair_sampler: subject(s) {single.tolist()} have a single "
                             "labelled channel; within-subject pair sampling needs at least two "
                             "channels per subject (drop those subjects or set "
                             "within_subject=False)")
    i, j = np.triu_indices(len(labelled), k=1)
    a, b = labelled[i], labelled[j]
    same_s = subject[a] == subject[b]
    same_r = region[a] == region[b]
    pools = {}
    for name, sel in (("same_within", same_s & same_r), ("diff_within", same_s & ~same_r),
                      ("same_across", ~same_s & same_r), ("diff_across", ~same_s & ~same_r)):
        keep = within_subject if "within" in name else across_subjects
        pools[name] = np.stack([a[sel], b[sel]], 1) if keep else np.zeros((0, 2), int)
    if len(pools["same_within"]) + len(pools["same_across"]) == 0:
        raise ValueError("make_pair_sampler: no same-region pair of channels")
    if len(pools["diff_within"]) + len(pools["diff_across"]) == 0:
        raise ValueError("make_pair_sampler: no different-region pair of channels")
    return PairSampler(**{k: jnp.asarray(v, jnp.int32) for k, v in pools.items()})


def _draw_from(key, within, across, n, within_fraction):
    """``n`` pairs: each from ``within`` with probability ``within_fraction`` (if non-empty)."""
    k1, k2, k3 = jax.random.split(key, 3)
    pw = within_fraction if within.shape[0] and across.shape[0] else float(within.shape[0] > 0)
    use_within = jax.random.uniform(k1, (n,)) < pw
    wi = within[jax.random.randint(k2, (n,), 0, max(within.shape[0], 1))] if within.shape[0] \
        else jnp.zeros((n, 2), jnp.int32)
    ac = across[jax.random.randint(k3, (n,), 0, max(across.shape[0], 1))] if across.shape[0] \
        else jnp.zeros((n, 2), jnp.int32)
    return jnp.where(use_within[:, None], wi, ac)


def _segment_of(key, bank: SegmentBank, channels: jax.Array) -> jax.Array:
    u = jax.random.uniform(key, channels.shape)
    offset = jnp.minimum(jnp.floor(u * bank.count[channels]).astype(jnp.int32),
                         bank.count[channels] - 1)
    return bank.start[channels] + offset


def sample_pairs(key: jax.Array, sampler: PairSampler, bank: SegmentBank, batch_size: int,
                 within_fraction: float = 0.5) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A class-balanced batch of segment pairs.

    Returns:
      ``(x_a [B, L], x_b [B, L], different [B])`` with ``B = batch_size`` (even).

    Raises:
      ValueError: on an odd or non-positive ``batch_size`` or ``within_fraction`` outside
        [0, 1].
    """
    if not (isinstance(batch_size, int) and batch_size >= 2 and batch_size % 2 == 0):
        raise ValueError(f"sample_pairs: batch_size must be an even int >= 2, got {batch_size!r}")
    if not 0.0 <= within_fraction <= 1.0:
        raise ValueError(f"sample_pairs: within_fraction must be in [0, 1], got "
                         f"{within_fraction!r}")
    half = batch_size // 2
    k_same, k_diff, k_a, k_b = jax.random.split(key, 4)
    same = _draw_from(k_same, sampler.same_within, sampler.same_across, half, within_fraction)
    diff = _draw_from(k_diff, sampler.diff_within, sampler.diff_across, half, within_fraction)
    pairs = jnp.concatenate([same, diff])
    seg_a = _segment_of(k_a, bank, pairs[:, 0])
    seg_b = _segment_of(k_b, bank, pairs[:, 1])
    different = jnp.concatenate([jnp.zeros(half, jnp.int32), jnp.ones(half, jnp.int32)])
    return bank.segments[seg_a], bank.segments[seg_b], different


def sample_labelled(key: jax.Array, bank: SegmentBank, batch_size: int, per_channel: int = 2
                    ) -> tuple[jax.Array, jax.Array]:
    """``(x [B, L], region [B])``: ``B / per_channel`` labelled channels, drawn with region
    classes balanced, ``per_channel`` random segments each.

    Raises:
      ValueError: if ``batch_size`` is not a positive multiple of ``per_channel`` or no
        channel has a region label.
    """
    if not (isinstance(per_channel, int) and per_channel >= 1):
        raise ValueError(f"sample_labelled: per_channel must be a positive int, got "
                         f"{per_channel!r}")
    if not (isinstance(batch_size, int) and batch_size >= 2 and batch_size % per_channel == 0):
        raise ValueError(f"sample_labelled: batch_size must be a multiple of per_channel "
                         f"({per_channel}) and >= 2, got {batch_size!r}")
    region = np.asarray(bank.region)
    labelled = np.flatnonzero(region >= 0)
    if not labelled.size:
        raise ValueError("sample_labelled: no channel has a region label")
    classes, inv = np.unique(region[labelled], return_inverse=True)
    weights = 1.0 / np.bincount(inv)[inv]
    p = jnp.asarray(weights / weights.sum())
    k_c, k_s = jax.random.split(key)
    n_ch = batch_size // per_channel
    chans = jax.random.choice(k_c, jnp.asarray(labelled), (n_ch,), p=p)
    chans = jnp.repeat(chans, per_channel)
    seg = _segment_of(k_s, bank, chans)
    return bank.segments[seg], bank.region[chans]
