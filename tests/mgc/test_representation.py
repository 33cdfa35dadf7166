"""Multi-band images and masks: the pipeline against librosa/scipy compositions, alignment."""

import numpy as np
import pytest
import scipy.signal

import mgc

librosa = pytest.importorskip("librosa")

SR = 8000.0


def one_band(kind_n_fft=512, decimate=1, pool=1, hop=128):
    band = mgc.Band("b", 100.0, 800.0 if decimate > 1 else 3000.0, decimate=decimate,
                    n_fft=kind_n_fft, hop_length=hop, pool=pool, logfreq_filter_scale=0.5)
    return mgc.Frontend(sample_rate=SR, bands=(band,), n_bins=24, n_frames=16)


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(1)
    t = np.arange(4096) / SR
    return (np.sin(2 * np.pi * (400 * t + 900 * t**2)) + 0.2 * rng.standard_normal(t.size)
            ).astype(np.float32)


def test_single_band_kinds_equal_librosa_compositions(x):
    fe = one_band()
    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=512, hop_length=128, n_mels=24,
                                         fmin=100.0, fmax=3000.0)[:, :16]
    np.testing.assert_allclose(np.asarray(mgc.representation(x, fe, "mel"))[..., 0],
                               librosa.power_to_db(mel, top_db=80.0), atol=2e-3)
    lin = mgc.linear_filterbank(sample_rate=SR, n_fft=512, n_bins=24, fmin=100.0, fmax=3000.0)
    power = np.abs(librosa.stft(x, n_fft=512, hop_length=128)) ** 2
    np.testing.assert_allclose(np.asarray(mgc.representation(x, fe, "stft"))[..., 0],
                               librosa.power_to_db((lin @ power)[:, :16], top_db=80.0), atol=2e-3)
    bpo = 23 / np.log2(3000.0 / 100.0)
    cq = librosa.pseudo_cqt(x, sr=SR, hop_length=128, fmin=100.0, n_bins=24,
                            bins_per_octave=bpo, filter_scale=0.5, tuning=0.0, sparsity=0.0)
    np.testing.assert_allclose(np.asarray(mgc.representation(x, fe, "logfreq"))[..., 0],
                               librosa.amplitude_to_db(cq[:, :16], amin=1e-5, top_db=80.0),
                               atol=2e-3)
    scaled = mel * fe.pcen_input_scale**2
    pc = mgc.pcen(scaled, sample_rate=SR, hop_length=128, initial_state=scaled[:, :1])
    np.testing.assert_allclose(np.asarray(mgc.representation(x, fe, "pcen"))[..., 0],
                               np.asarray(pc), rtol=1e-4, atol=1e-4)


def test_decimated_band_equals_resample_poly_then_analysis(x):
    fe = one_band(kind_n_fft=128, decimate=4, hop=32)
    y = scipy.signal.resample_poly(x, 1, 4).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=SR / 4, n_fft=128, hop_length=32, n_mels=24,
                                         fmin=100.0, fmax=800.0)[:, :16]
    np.testing.assert_allclose(np.asarray(mgc.band_powers(x, fe, "mel"))[..., 0], mel,
                               rtol=1e-3, atol=1e-6 * mel.max())


def test_pooling_is_a_centred_mean_of_frames(x):
    fe = one_band(pool=3, hop=64)
    lin = mgc.linear_filterbank(sample_rate=SR, n_fft=512, n_bins=24, fmin=100.0, fmax=3000.0)
    p = lin @ (np.abs(librosa.stft(x, n_fft=512, hop_length=64)) ** 2)
    idx = np.clip(3 * np.arange(16)[:, None] + np.array([-1, 0, 1]), 0, p.shape[1] - 1)
    np.testing.assert_allclose(np.asarray(mgc.band_powers(x, fe, "stft"))[..., 0],
                               p[:, idx].mean(-1), rtol=1e-4, atol=1e-6 * p.max())


def test_default_frontend_aligns_bands_and_places_tones_and_clicks():
    fe = mgc.default_frontend(n_frames=32)
    assert fe.frame_hop == 3072 and fe.min_samples <= 98304
    n = 98304
    t = np.arange(n) / fe.sample_rate
    low_f, high_f = 60.0, 9000.0
    sig = np.sin(2 * np.pi * low_f * t) + np.sin(2 * np.pi * high_f * t)
    click_at = 0.5
    sig[int(click_at * fe.sample_rate)] += 400.0  # an impulse: broadband in one frame
    for kind in mgc.KINDS:
        p = np.asarray(mgc.band_powers(sig.astype(np.float32), fe, kind))
        assert p.shape == (64, 32, 2)
        freqs = fe.bin_frequencies(kind)
        for band, f0 in ((0, low_f), (1, high_f)):
            spectrum = p[:, 4:12, band].mean(1)  # frames away from the click
            assert abs(freqs[band, np.argmax(spectrum)] - f0) / f0 < 0.1, (kind, band)
    # the click: in the high band (short windows) its frame dominates the top bins
    p = np.asarray(mgc.band_powers(sig.astype(np.float32), fe, "stft"))[40:, :, 1].sum(0)
    assert abs(fe.frame_times()[np.argmax(p)] - click_at) <= fe.frame_hop / fe.sample_rate


def test_masks_are_wiener_gains_and_the_mixture_is_shared():
    fe = mgc.default_frontend(n_frames=32)
    rng = np.random.default_rng(0)
    bio = np.zeros((2, 98304), np.float32)
    t = np.arange(98304) / fe.sample_rate
    bio[0] = np.sin(2 * np.pi * 5000 * t) * (t > 0.3) * (t < 0.7)
    noise = (0.05 * rng.standard_normal((2, 98304))).astype(np.float32)
    out = mgc.representations_with_masks(bio, noise, fe)
    for kind in mgc.KINDS:
        image, mask = (np.asarray(a) for a in out[kind])
        assert image.shape == mask.shape == (2, 64, 32, 2)
        assert mask.min() >= 0 and mask.max() <= 1
        pb = np.asarray(mgc.band_powers(bio, fe, kind))
        pn = np.asarray(mgc.band_powers(noise, fe, kind))
        np.testing.assert_allclose(mask, pb / (pb + pn), atol=1e-4)
        np.testing.assert_allclose(image, np.asarray(mgc.representation(bio + noise, fe, kind)),
                                   rtol=1e-3, atol=1e-2)
        assert mask[1].max() < 1e-6  # no biological source in clip 1
    # the tone's frames and bin are masked in, others out
    m = np.asarray(out["stft"][1])[0, :, :, 1]
    row = np.argmin(np.abs(fe.bin_frequencies("stft")[1] - 5000))
    frames = fe.frame_times()
    assert m[row, (frames > 0.4) & (frames < 0.6)].min() > 0.9
    assert m[row, frames > 0.8].max() < 0.1


def test_bad_inputs():
    fe = mgc.default_frontend(n_frames=32)
    with pytest.raises(ValueError, match="needs at least .* for n_frames=32"):
        mgc.representation(np.zeros(5000, np.float32), fe, "mel")
    with pytest.raises(ValueError, match="kind must be one of"):
        mgc.representation(np.zeros(98304, np.float32), fe, "cqt")
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        mgc.representation(np.where(np.arange(98304) == 3, np.nan, 0.0), fe, "mel")
    with pytest.raises(ValueError, match="bio has shape \\(1, 98304\\) but noise has"):
        mgc.representations_with_masks(np.zeros((1, 98304)), np.zeros((2, 98304)), fe)
    with pytest.raises(ValueError, match="same frame hop"):
        mgc.Frontend(sample_rate=SR, bands=(mgc.Band("a", 10.0, 100.0, hop_length=64),
                                            mgc.Band("b", 100.0, 1000.0, hop_length=128)))
    with pytest.raises(ValueError, match="pool must be odd"):
        mgc.Frontend(sample_rate=SR, bands=(mgc.Band("a", 10.0, 100.0, pool=2),))
    with pytest.raises(ValueError, match="above the Nyquist frequency 500.0 Hz"):
        mgc.Frontend(sample_rate=SR, bands=(mgc.Band("a", 10.0, 900.0, decimate=8),))
    with pytest.raises(ValueError, match="cannot hold the log-frequency transform"):
        mgc.Frontend(sample_rate=SR, bands=(mgc.Band("a", 1000.0, 4000.0),))
    with pytest.raises(ValueError, match="laid out for 96 kHz"):
        mgc.default_frontend(48000.0)
