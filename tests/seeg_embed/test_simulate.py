"""The simulator against independent spectral analysis (SciPy's Welch, Hilbert envelopes,
cross-correlation) and its own configuration."""

import jax
import numpy as np
import pytest
from scipy import signal

import seeg_embed as S

CFG = S.SimConfig(n_subjects=8, min_channels=8, max_channels=12, min_regions=4, max_regions=6,
                  block_s=10.0)
FS = CFG.fs
R = {name: i for i, name in enumerate(S.REGIONS)}


@pytest.fixture(scope="module")
def cohort():
    return S.make_cohort(jax.random.key(3), CFG)


@pytest.fixture(scope="module")
def sessions(cohort):
    rest = S.simulate_session(jax.random.key(4), cohort, 0, 0, 30.0, CFG)
    move = S.simulate_session(jax.random.key(4), cohort, 1, 1, 30.0, CFG)
    return rest, move


def channels(cohort, region=None):
    reg, n = np.asarray(cohort.region), np.asarray(cohort.n_channels)
    out = [(s, c) for s in range(len(n)) for c in range(n[s])
           if region is None or reg[s, c] == R[region]]
    return tuple(np.array(v) for v in zip(*out, strict=True))


def welch(x):
    return signal.welch(x, fs=FS, nperseg=int(FS), axis=-1)


def rel_power(f, p, lo, hi):
    """Band power relative to 2-150 Hz."""
    return p[..., (f >= lo) & (f < hi)].sum(-1) / p[..., (f >= 2) & (f <= 150)].sum(-1)


def test_cohort_structure(cohort):
    n = np.asarray(cohort.n_channels)
    mask, reg = np.asarray(cohort.mask), np.asarray(cohort.region)
    assert ((n >= CFG.min_channels) & (n <= CFG.max_channels)).all()
    assert len(set(n.tolist())) > 1, "channel counts should vary across subjects"
    np.testing.assert_array_equal(mask.sum(1), n)
    assert (reg[~mask] == -1).all() and (reg[mask] >= 0).all()
    covered = [len(set(reg[s, :n[s]]) - {R["WM"]}) for s in range(len(n))]
    assert min(covered) >= CFG.min_regions and max(covered) <= CFG.max_regions
    names = cohort.channel_names(0)
    assert len(names) == n[0] and len(set(names)) == n[0]


def test_padded_channels_are_zero_and_output_finite(cohort, sessions):
    rest, _ = sessions
    mask = np.asarray(cohort.mask)
    assert rest.shape == (CFG.n_subjects, CFG.max_channels, 30 * int(FS))
    assert np.isfinite(rest).all()
    assert (rest[~mask] == 0).all()
    assert (rest[mask].std(-1) > 0).all()


def test_region_spectral_signatures(cohort, sessions):
    """Each region's band-power signature, measured with scipy.signal.welch on rest data."""
    rest, _ = sessions
    f, p = welch(rest)
    mean_rel = {}
    for name in ("GPi", "GPe", "STN", "VA", "VL", "VIM", "WM"):
        s, c = channels(cohort, name)
        assert len(s) >= 3, f"fixture cohort has too few {name} channels"
        mean_rel[name] = {band: float(np.mean(rel_power(f, p[s, c], *edges)))
                          for band, edges in {"theta": (5, 8), "alpha": (8.5, 12.5),
                                              "beta": (13, 30), "gamma": (60, 90)}.items()}
    basal = ("GPi", "GPe", "STN")
    thal = ("VA", "VL", "VIM")
    # STN: strongest beta; beta of every basal ganglia nucleus above every thalamic one and WM
    assert mean_rel["STN"]["beta"] == max(v["beta"] for v in mean_rel.values())
    assert min(mean_rel[r]["beta"] for r in basal) > max(mean_rel[r]["beta"]
                                                         for r in (*thal, "WM"))
    # GPi: pallidal theta above STN and GPe
    assert mean_rel["GPi"]["theta"] > max(mean_rel["STN"]["theta"], mean_rel["GPe"]["theta"])
    # VA / VL: thalamic alpha above the basal ganglia
    assert min(mean_rel["VA"]["alpha"], mean_rel["VL"]["alpha"]) > max(
        mean_rel[r]["alpha"] for r in basal)


def test_aperiodic_exponent_order(cohort, sessions):
    """Log-log slope of the Welch PSD in 32-46 Hz (between beta and the line/gamma peaks):
    white matter steepest, GPe flattest, as in the region table."""
    rest, _ = sessions
    f, p = welch(rest)
    sel = (f >= 32) & (f <= 46)
    slope = {}
    for name in ("GPe", "STN", "VL", "WM"):
        s, c = channels(cohort, name)
        fits = [np.polyfit(np.log(f[sel]), np.log(p[si, ci, sel]), 1)[0]
                for si, ci in zip(s, c, strict=True)]
        slope[name] = -float(np.median(fits))
    assert slope["WM"] > slope["VL"] > slope["STN"] > slope["GPe"] > 0.5


def test_tremor_only_in_tremor_subjects(cohort, sessions):
    rest, _ = sessions
    f, p = signal.welch(rest, fs=FS, nperseg=4 * int(FS), axis=-1)   # 0.25 Hz bins
    s, c = channels(cohort, "VIM")
    tremor = np.asarray(cohort.tremor)[s]
    assert tremor.any() and (~tremor).any(), "fixture needs VIM channels of both kinds"
    hz = np.asarray(cohort.rhythm_hz)[s, c, S.RHYTHMS.index("tremor")]
    peak = np.array([p[si, ci, np.argmin(np.abs(f - h))] for si, ci, h in zip(s, c, hz,
                                                                              strict=True)])
    around = np.array([np.median(p[si, ci, (np.abs(f - h) > 1.5) & (np.abs(f - h) < 4)])
                       for si, ci, h in zip(s, c, hz, strict=True)])
    ratio = peak / around
    # design: a tremor peak ~4-5x its surroundings in tremor subjects, ~1.1x otherwise
    assert np.median(ratio[tremor]) > 2.5
    assert np.median(ratio[tremor]) > 2 * np.median(ratio[~tremor])


def test_movement_desynchronizes_beta_and_raises_gamma(cohort, sessions):
    rest, move = sessions
    f, pr = welch(rest)
    _, pm = welch(move)
    s, c = channels(cohort, "STN")
    band = lambda p, lo, hi: p[s, c][:, (f >= lo) & (f < hi)].sum(-1)  # noqa: E731
    beta = np.log(band(pm, 13, 30) / band(pr, 13, 30))
    gamma = np.log(band(pm, 65, 85) / band(pr, 65, 85))
    assert np.median(beta) < np.log(0.85)
    assert np.median(gamma) > np.log(1.5)


def test_line_noise_at_the_subjects_mains_frequency(cohort, sessions):
    rest, _ = sessions
    f, p = welch(rest)
    line = np.asarray(cohort.line_hz)
    assert set(line.tolist()) <= {50.0, 60.0}
    for s in range(CFG.n_subjects):
        n = int(cohort.n_channels[s])
        at = p[s, :n][:, f == line[s]][:, 0]
        near = np.median(p[s, :n][:, (np.abs(f - line[s]) >= 2) & (np.abs(f - line[s]) <= 5)], 1)
        assert np.median(at / near) > 3


def _only(cohort, **fields):
    """The cohort with some parameters replaced (same shapes: no recompilation)."""
    return cohort._replace(**{k: np.broadcast_to(v, getattr(cohort, k).shape).astype(
        getattr(cohort, k).dtype) for k, v in fields.items()})


def test_beta_burst_durations(cohort):
    """Private bursts alone; Tinkhauser-style detection (beta band-pass around each channel's
    peak, Hilbert envelope above its 75th percentile) finds bursts mostly 0.1-0.5 s long with
    a long tail, as the log-normal durations (median 0.22 s) imply."""
    only_bursts = _only(cohort, p10=0.0, rhythm_rms=0.0, line_amp=0.0, pop_rate=0.0,
                        beta_coupling=0.0, mixing=np.eye(CFG.max_channels))
    x = S.simulate_session(jax.random.key(9), only_bursts, 0, 0, 30.0, CFG)
    s, c = channels(cohort, "STN")
    durations = []
    for si, ci in zip(s, c, strict=True):
        hz = float(cohort.beta_hz[si, ci])
        sos = signal.butter(4, [hz - 4, hz + 4], "bandpass", fs=FS, output="sos")
        env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x[si, ci])))
        above = env > np.percentile(env, 75)
        edges = np.diff(above.astype(int))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if len(ends) and len(starts) and ends[0] < starts[0]:
            ends = ends[1:]
        k = min(len(starts), len(ends))
        durations += list((ends[:k] - starts[:k]) / FS)
    durations = np.array(durations)
    durations = durations[durations >= 0.05]  # ignore ripples on the threshold
    assert len(durations) > 30
    assert 0.1 <= np.median(durations) <= 0.5
    assert np.percentile(durations, 90) > 1.6 * np.median(durations)   # long tail
    assert np.mean(durations > 1.2) < 0.05


def test_shared_drive_lag_between_regions(cohort):
    """Shared beta bursts only (coupling 1, no mixing): the cross-correlation of two channels
    of one subject peaks at the difference of their lags."""
    shared_only = _only(cohort, p10=0.0, rhythm_rms=0.0, line_amp=0.0, pop_rate=0.0,
                        beta_coupling=1.0, mixing=np.eye(CFG.max_channels))
    x = S.simulate_session(jax.random.key(5), shared_only, 0, 0, 30.0, CFG)
    lags = np.asarray(cohort.beta_lag_s)
    checked = 0
    for s in range(CFG.n_subjects):
        n = int(cohort.n_channels[s])
        a, b = int(np.argmin(lags[s, :n])), int(np.argmax(lags[s, :n]))
        expected = (lags[s, b] - lags[s, a]) * FS
        if expected < 3:
            continue
        xa, xb = x[s, a] - x[s, a].mean(), x[s, b] - x[s, b].mean()
        xc = signal.correlate(xb, xa, mode="full")
        mid = len(xa) - 1
        window = np.arange(-35, 36)
        found = window[np.argmax(xc[mid + window])]
        assert abs(found - expected) <= 1.5, (s, found, expected)
        checked += 1
    assert checked >= 3


def test_localization_error_has_the_requested_sd(cohort):
    mask = np.asarray(cohort.mask)
    true = np.asarray(cohort.true_xyz)[mask]
    np.testing.assert_allclose(np.asarray(cohort.coordinates(0.0))[mask], true)
    err = np.asarray(cohort.coordinates(2.0))[mask] - true
    assert err.std() == pytest.approx(2.0, rel=0.15)
    assert abs(err.mean()) < 0.3
    # the same error direction at every sigma: errors scale linearly
    err4 = np.asarray(cohort.coordinates(4.0))[mask] - true
    np.testing.assert_allclose(err4, 2 * err, rtol=1e-4, atol=1e-4)
    # true positions sit near their region's centre (hemisphere mirrored)
    table = S.default_regions()
    reg = np.asarray(cohort.region)[mask]
    folded = np.abs(true[:, 0])
    for r in range(len(S.REGIONS)):
        if (reg == r).sum() >= 3:
            assert abs(np.mean(folded[reg == r]) - abs(table.center_mm[r, 0])) < 4.0


def test_blocks_are_chunk_invariant_and_reproducible(cohort):
    both = np.asarray(S.simulate_blocks(jax.random.key(1), cohort, 2, 0, [0, 1], CFG))
    second = np.asarray(S.simulate_blocks(jax.random.key(1), cohort, 2, 0, [1], CFG))
    # equal up to float32 rounding (XLA fuses a batch of blocks differently from one block)
    np.testing.assert_allclose(both[:, 1], second[:, 0], rtol=1e-4, atol=0.02)
    other = np.asarray(S.simulate_blocks(jax.random.key(2), cohort, 2, 0, [1], CFG))
    assert not np.allclose(other, second)
    chunks = list(S.iter_session(jax.random.key(1), cohort, 2, 0, 20.0, CFG, chunk_blocks=1))
    np.testing.assert_allclose(np.concatenate([np.asarray(c) for c in chunks], -1)[:, :, :10000],
                               both[:, 0], rtol=1e-4, atol=0.02)


def test_bad_inputs(cohort):
    with pytest.raises(TypeError, match=r"make_cohort: key must be a scalar jax.random.key"):
        S.make_cohort(0, CFG)
    with pytest.raises(TypeError, match="make_cohort: config must be a SimConfig"):
        S.make_cohort(jax.random.key(0), {"n_subjects": 3})
    with pytest.raises(ValueError, match=r"min_channels \(9\) > max_channels \(4\)"):
        S.make_cohort(jax.random.key(0), S.SimConfig(min_channels=9, max_channels=4))
    with pytest.raises(ValueError, match="min_channels must be >= 2"):
        S.SimConfig(min_channels=1).validate()
    with pytest.raises(ValueError, match=r"state must be 0 \(rest\) or 1 \(move\), got 2"):
        S.simulate_blocks(jax.random.key(0), cohort, 0, 2, [0], CFG)
    with pytest.raises(ValueError, match="block_ids must be non-empty and >= 0"):
        S.simulate_blocks(jax.random.key(0), cohort, 0, 0, [-1], CFG)
    with pytest.raises(ValueError, match="cohort has 12 channel slots but config.max_channels"):
        S.simulate_blocks(jax.random.key(0), cohort, 0, 0, [0], CFG._replace(max_channels=10))
    with pytest.raises(ValueError, match=r"duration_s \(15.0\) must be a multiple of"):
        S.simulate_session(jax.random.key(0), cohort, 0, 0, 15.0, CFG)
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        S.simulate_session(jax.random.key(0), cohort, 0, 0, -10.0, CFG)
    with pytest.raises(ValueError, match="error_mm must be a finite number >= 0"):
        cohort.coordinates(-1.0)
