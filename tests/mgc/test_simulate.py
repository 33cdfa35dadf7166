"""The scene simulator: calls in their bands, SNR as defined, reproducibility, masks cover calls."""

import jax
import numpy as np
import pytest

import mgc

CFG = mgc.SceneConfig(num_samples=98304)  # 1.024 s clips keep the tests small


def band_fraction(w, lo, hi, sr):
    p = np.abs(np.fft.rfft(np.asarray(w, np.float64), axis=-1)) ** 2
    f = np.fft.rfftfreq(w.shape[-1], 1 / sr)
    return p[:, (f >= lo) & (f <= hi)].sum(1) / p.sum(1)


@pytest.mark.parametrize("name", mgc.CALL_CLASSES)
def test_calls_land_in_their_band(name):
    keys = jax.random.split(jax.random.key(3), 4)
    waves, spans = mgc.render_calls(keys, name, np.array([3, 2, 1, 0]), CFG)
    waves = np.asarray(waves)
    assert waves.shape == (4, CFG.num_samples)
    lo, hi = mgc.class_band(name, CFG)
    assert band_fraction(waves[:3], lo, hi, CFG.sample_rate).min() > 0.95
    assert np.all(waves[3] == 0)  # no call requested: silence
    spans = np.asarray(spans)
    assert np.all(spans[3] == -1) and np.all(spans[0] >= 0)
    assert np.all(spans[0, :, 1] <= CFG.duration + 1e-4)
    assert np.all(spans[1, 2] == -1) and np.all(spans[1, :2] >= 0)


def test_clicks_are_short_broadband_pulses_at_the_configured_peak():
    waves, spans = mgc.render_calls(jax.random.split(jax.random.key(0), 1), "echolocation",
                                    np.array([1]), CFG)
    w = np.asarray(waves[0], np.float64)
    env = np.abs(w)
    peaks = np.flatnonzero((env > 0.3 * env.max()) & (env >= np.roll(env, 1))
                           & (env >= np.roll(env, -1)))
    clicks = peaks[np.concatenate([[True], np.diff(peaks) > 48])]  # one per click
    ici = np.diff(clicks) / CFG.sample_rate
    assert clicks.size >= 5
    assert 0.0035 < ici.min() and ici.max() < 0.042
    seg = w[clicks[0] - 48: clicks[0] + 48]
    f = np.fft.rfftfreq(512, 1 / CFG.sample_rate)
    peak = f[np.argmax(np.abs(np.fft.rfft(seg, 512)))]
    assert CFG.click_peak_hz[0] - 3000 < peak < CFG.click_peak_hz[1] + 3000


def test_noise_sources_and_levels():
    quiet = mgc.SceneConfig(num_samples=98304, noise_prob=0.0)
    busy = mgc.SceneConfig(num_samples=98304, noise_prob=1.0)
    keys = jax.random.split(jax.random.key(1), 3)
    n0, p0 = mgc.render_noise(keys, quiet)
    n1, p1 = mgc.render_noise(keys, busy)
    assert not np.asarray(p0).any() and np.asarray(p1).all()
    rms = np.sqrt(np.mean(np.asarray(n0, np.float64) ** 2, axis=1))
    assert np.all(rms > quiet.ambient_rms[0] * 0.9) and np.all(rms < quiet.ambient_rms[1] * 1.1)
    x0, x1 = np.asarray(n0, np.float64), np.asarray(n1, np.float64)
    kurt = lambda x: np.mean((x - x.mean()) ** 4) / np.var(x) ** 2  # noqa: E731
    # ambient noise is Gaussian; with snapping shrimp and rain it is impulsive above 2 kHz
    hp = lambda x: np.fft.irfft(np.fft.rfft(x) * (np.fft.rfftfreq(x.size, 1 / 96000) > 2000))  # noqa
    assert abs(kurt(x0[0]) - 3) < 0.5
    assert all(kurt(hp(x)) > 5 for x in x1)
    # shipping: energy below 1 kHz dominates the ambient-only spectrum's
    assert band_fraction(x1, 1, 1000, 96000).mean() > band_fraction(x0, 1, 1000, 96000).mean()


@pytest.fixture(scope="module")
def scene():
    return mgc.simulate_scenes(jax.random.key(7), 24, config=CFG)


def test_scene_structure_and_snr_definition(scene):
    labels = np.asarray(scene.labels)
    np.testing.assert_array_equal(labels, np.arange(24) % 6)
    np.testing.assert_allclose(np.asarray(scene.audio), np.asarray(scene.bio + scene.noise))
    bio, noise = np.asarray(scene.bio, np.float64), np.asarray(scene.noise, np.float64)
    assert np.all(bio[labels == 0] == 0) and np.all(np.asarray(scene.num_calls)[labels == 0] == 0)
    dist = np.asarray(scene.distractor)
    assert np.all(dist[labels == 0] == -1) and np.all(dist != labels)
    snr = np.asarray(scene.snr_db)
    assert np.all((snr >= CFG.snr_db[0]) & (snr <= CFG.snr_db[1]))
    for i in np.flatnonzero((labels > 0) & (dist == -1)):
        lo, hi = mgc.class_band(mgc.CLASSES[labels[i]], CFG)
        f = np.fft.rfftfreq(CFG.num_samples, 1 / CFG.sample_rate)
        sel = (f >= lo) & (f <= hi)
        e_s = np.sum(np.abs(np.fft.rfft(bio[i]))[sel] ** 2)
        e_n = np.sum(np.abs(np.fft.rfft(noise[i]))[sel] ** 2)
        assert abs(10 * np.log10(e_s / e_n) - snr[i]) < 0.05


def test_reproducible_and_independent_of_chunking(scene):
    again = mgc.simulate_scenes(jax.random.key(7), 12, start_index=12, config=CFG)
    np.testing.assert_array_equal(np.asarray(again.audio), np.asarray(scene.audio[12:]))
    np.testing.assert_array_equal(np.asarray(again.labels), np.asarray(scene.labels[12:]))
    other = mgc.simulate_scenes(jax.random.key(8), 12, start_index=12, config=CFG)
    assert not np.allclose(np.asarray(other.audio), np.asarray(again.audio))


def test_calls_overlap_and_distractors_occur():
    cfg = mgc.SceneConfig(num_samples=98304, call_count_probs=(0.0, 0.0, 1.0),
                          distractor_prob=1.0)
    s = mgc.simulate_scenes(jax.random.key(2), labels=np.array([1, 3, 4, 5]), config=cfg)
    spans = np.asarray(s.call_spans)
    assert np.all(np.asarray(s.num_calls) == 3)
    overlaps = 0
    for clip in spans:
        for a in range(3):
            for b in range(a + 1, 3):
                overlaps += clip[a, 0] < clip[b, 1] and clip[b, 0] < clip[a, 1]
    assert overlaps >= 4
    assert np.all(np.asarray(s.distractor) > 0)


def test_masks_cover_the_calls():
    cfg = mgc.SceneConfig(num_samples=98304, snr_db=(10.0, 10.0), distractor_prob=0.0)
    s = mgc.simulate_scenes(jax.random.key(5), 12, config=cfg)
    fe = mgc.default_frontend(n_frames=32)
    out = mgc.representations_with_masks(s.bio, s.noise, fe, ("stft", "mel"))
    labels = np.asarray(s.labels)
    for kind in ("stft", "mel"):
        mask = np.asarray(out[kind][1])
        pb = np.asarray(mgc.band_powers(s.bio, fe, kind))
        for i in np.flatnonzero(labels > 0):
            covered = pb[i][mask[i] > 0.5].sum() / pb[i].sum()
            assert covered > 0.8, (kind, mgc.CLASSES[labels[i]], covered)
        assert mask[labels == 0].max() < 1e-6


def test_bad_inputs():
    with pytest.raises(ValueError, match="needs a sample rate of at least 192000"):
        mgc.SceneConfig(click_peak_hz=(60e3, 80e3))
    with pytest.raises(ValueError, match="call_count_probs must be 3 probabilities"):
        mgc.SceneConfig(call_count_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="num_samples must be a multiple of 64"):
        mgc.SceneConfig(num_samples=100001)
    with pytest.raises(ValueError, match="snr_db must be a finite \\(low, high\\)"):
        mgc.SceneConfig(snr_db=(5.0, -5.0))
    with pytest.raises(ValueError, match="give exactly one of num_clips and labels"):
        mgc.simulate_scenes(jax.random.key(0), 3, labels=np.array([1, 2, 3]), config=CFG)
    with pytest.raises(ValueError, match="labels must be a non-empty 1-D int array"):
        mgc.simulate_scenes(jax.random.key(0), labels=np.array([0, 9]), config=CFG)
    with pytest.raises(ValueError, match="render_calls: name must be one of"):
        mgc.render_calls(jax.random.split(jax.random.key(0), 1), "orca", np.array([1]), CFG)
    with pytest.raises(ValueError, match="counts must be \\(1,\\) ints in \\[0, 3\\]"):
        mgc.render_calls(jax.random.split(jax.random.key(0), 1), "blue_fin", np.array([4]), CFG)
    with pytest.raises(ValueError, match="class_band: name must be one of"):
        mgc.class_band("noise")
    with pytest.raises(ValueError, match="render_noise: key must be a 1-D array"):
        mgc.render_noise(jax.random.key(0), CFG)
