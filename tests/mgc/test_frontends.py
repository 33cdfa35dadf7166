"""The JAX front-ends against librosa and scipy.signal on the same clips."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

import mgc

librosa = pytest.importorskip("librosa")

SR = 22050


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    t = np.arange(6000) / SR
    chirp = np.sin(2 * np.pi * (300 * t + 2000 * t**2))
    return (chirp + 0.3 * rng.standard_normal(t.size)).astype(np.float32)


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("kw", [
    dict(n_fft=512, hop_length=128),
    dict(n_fft=256, hop_length=100, win_length=200, window="hamming"),
    dict(n_fft=512, hop_length=160, pad_mode="reflect"),
    dict(n_fft=400, hop_length=128, center=False),
])
def test_stft_matches_librosa(clip, kw):
    ours = mgc.stft(clip, **kw)
    ref = librosa.stft(clip, **kw)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-5


def test_stft_magnitude_matches_scipy_short_time_fft(clip):
    n_fft, hop = 512, 128
    win = scipy.signal.get_window("hann", n_fft, fftbins=True)
    sft = scipy.signal.ShortTimeFFT(win, hop, SR)
    ref = sft.stft(clip, p0=0, p1=mgc.frame_count(clip.size, n_fft, hop))
    ours = mgc.stft(clip, n_fft=n_fft, hop_length=hop)
    assert ours.shape == ref.shape
    assert rel_err(jnp.abs(ours), np.abs(ref)) < 1e-5


def test_stft_batched_jit_and_vmap_agree(clip):
    batch = np.stack([clip, clip[::-1], 0.5 * clip])
    eager = mgc.stft(batch, n_fft=256, hop_length=64)
    jitted = jax.jit(lambda x: mgc.stft(x, n_fft=256, hop_length=64))(batch)
    mapped = jax.vmap(lambda x: mgc.stft(x, n_fft=256, hop_length=64))(batch)
    assert eager.shape == (3, 129, 1 + clip.size // 64)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-4)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(eager), atol=1e-4)
    assert rel_err(eager[1], librosa.stft(clip[::-1].copy(), n_fft=256, hop_length=64)) < 1e-5


@pytest.mark.parametrize("kw", [dict(n_mels=40, fmin=50.0, fmax=8000.0),
                                dict(n_mels=64, htk=True), dict(n_mels=32, norm=None)])
def test_mel_filterbank_matches_librosa(kw):
    ours = mgc.mel_filterbank(sample_rate=SR, n_fft=1024, **kw)
    ref = librosa.filters.mel(sr=SR, n_fft=1024, **kw)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-5


def test_hz_mel_round_trip_and_librosa():
    f = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 20000.0])
    for htk in (False, True):
        np.testing.assert_allclose(mgc.hz_to_mel(f, htk), librosa.hz_to_mel(f, htk=htk),
                                   rtol=1e-10)
        np.testing.assert_allclose(mgc.mel_to_hz(mgc.hz_to_mel(f, htk), htk), f, atol=1e-6)


def test_melspectrogram_matches_librosa(clip):
    ours = mgc.melspectrogram(clip, sample_rate=SR, n_fft=1024, hop_length=256, n_mels=40,
                              fmin=30.0, fmax=9000.0)
    ref = librosa.feature.melspectrogram(y=clip, sr=SR, n_fft=1024, hop_length=256, n_mels=40,
                                         fmin=30.0, fmax=9000.0)
    assert rel_err(ours, ref) < 1e-5


def test_linear_filterbank_is_linear_interpolation_onto_the_centres():
    n_bins, fmin, fmax = 12, 300.0, 5000.0
    ours = mgc.linear_filterbank(sample_rate=SR, n_fft=512, n_bins=n_bins, fmin=fmin, fmax=fmax)
    freqs = np.fft.rfftfreq(512, 1 / SR)
    points = np.linspace(fmin, fmax, n_bins + 2)
    for i in range(n_bins):
        hat = np.interp(freqs, points, np.eye(n_bins + 2)[i + 1], left=0.0, right=0.0)
        np.testing.assert_allclose(ours[i], hat, atol=1e-6)
    inside = (freqs >= points[1]) & (freqs <= points[-2])
    np.testing.assert_allclose(ours[:, inside].sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(fmin=100.0, n_bins=48, bins_per_octave=12),
                                dict(fmin=60.0, n_bins=40, bins_per_octave=9.5,
                                     filter_scale=0.5)])
def test_logfreq_matches_librosa_pseudo_cqt(clip, kw):
    ours = mgc.logfreq_spectrogram(clip, sample_rate=SR, hop_length=256, **kw)
    ref = librosa.pseudo_cqt(clip, sr=SR, hop_length=256, tuning=0.0, sparsity=0.0, **kw)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-4


def test_logfreq_tone_peaks_at_its_bin():
    f0 = 440.0 * 2 ** (7 / 12)
    t = np.arange(8192) / SR
    tone = np.sin(2 * np.pi * f0 * t).astype(np.float32)
    c = mgc.logfreq_spectrogram(tone, sample_rate=SR, hop_length=512, fmin=110.0, n_bins=48)
    freqs = mgc.constant_q_frequencies(110.0, 48, 12)
    assert np.argmax(np.asarray(c)[:, 8]) == np.argmin(np.abs(freqs - f0))


@pytest.fixture(scope="module")
def mel(clip):
    return librosa.feature.melspectrogram(y=clip, sr=SR, n_fft=1024, hop_length=256,
                                          n_mels=40) * 2.0**31


@pytest.mark.parametrize("kw", [{}, dict(power=0.0), dict(bias=0.0),
                                dict(gain=0.8, bias=10.0, power=0.25, time_constant=0.06)])
def test_pcen_matches_librosa(mel, kw):
    ours = mgc.pcen(mel, sample_rate=SR, hop_length=256, **kw)
    ref = librosa.pcen(mel, sr=SR, hop_length=256, **kw)
    assert rel_err(ours, ref) < 1e-4


def test_pcen_smoother_is_the_iir_filter_of_scipy(mel):
    b = mgc.pcen_smoothing_coefficient(SR, 256, 0.4)
    # start the smoother at the first frame: M_{-1} = E_0, i.e. zi = (1 - b) E_0
    smooth, _ = scipy.signal.lfilter([b], [1, b - 1], mel, axis=-1, zi=(1 - b) * mel[:, :1])
    gain, bias, power, eps = 0.98, 2.0, 0.5, 1e-6
    ref = (mel / (eps + smooth) ** gain + bias) ** power - bias**power
    ours = mgc.pcen(mel, sample_rate=SR, hop_length=256, initial_state=mel[:, :1])
    assert rel_err(ours, ref) < 1e-4


def test_power_and_amplitude_to_db_match_librosa(mel):
    s = mel / 2.0**31
    assert np.max(np.abs(mgc.power_to_db(s) - librosa.power_to_db(s))) < 1e-3
    assert np.max(np.abs(mgc.amplitude_to_db(np.sqrt(s)) - librosa.amplitude_to_db(
        np.sqrt(s)))) < 1e-3
    # top_db is applied per spectrogram of a batch
    batch = np.stack([s, 1e-6 * s])
    db = np.asarray(mgc.power_to_db(batch))
    np.testing.assert_allclose(db[1], librosa.power_to_db(1e-6 * s), atol=1e-3)


@pytest.mark.parametrize("q", [2, 5, 32])
def test_decimate_matches_resample_poly(q):
    x = np.random.default_rng(q).standard_normal((3, 10001)).astype(np.float32)
    ours = mgc.decimate(x, q)
    ref = scipy.signal.resample_poly(x, 1, q, axis=-1)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-5)
    taps = scipy.signal.firwin(31, 0.4)
    np.testing.assert_allclose(np.asarray(mgc.decimate(x, q, taps=taps)),
                               scipy.signal.resample_poly(x, 1, q, window=taps, axis=-1),
                               atol=1e-5)


def test_bad_inputs():
    x = np.zeros(4096, np.float32)
    with pytest.raises(ValueError, match="stft: x contains 1 non-finite"):
        mgc.stft(np.where(np.arange(4096) == 7, np.nan, x), n_fft=256)
    with pytest.raises(ValueError, match="stft: n_fft must be a positive int, got 0"):
        mgc.stft(x, n_fft=0)
    with pytest.raises(ValueError, match="win_length=300 must be <= n_fft=256"):
        mgc.stft(x, n_fft=256, win_length=300)
    with pytest.raises(ValueError, match="pad_mode must be 'constant' or 'reflect'"):
        mgc.stft(x, n_fft=256, pad_mode="edge")
    with pytest.raises(ValueError, match="unknown window 'nope'"):
        mgc.stft(x, n_fft=256, window="nope")
    with pytest.raises(ValueError, match="window must be a name or an array of 256"):
        mgc.stft(x, n_fft=256, window=np.ones(10))
    with pytest.raises(ValueError, match="uncentred STFT needs at least n_fft=8192"):
        mgc.stft(x, n_fft=8192, center=False)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        mgc.stft(np.array(["a"]), n_fft=4)
    with pytest.raises(ValueError, match="fmax=20000.0 Hz is above the Nyquist frequency"):
        mgc.mel_filterbank(sample_rate=16000, n_fft=512, fmax=20000.0)
    with pytest.raises(ValueError, match="fmax must be above fmin"):
        mgc.linear_filterbank(sample_rate=16000, n_fft=512, n_bins=8, fmin=500.0, fmax=400.0)
    with pytest.raises(ValueError, match="norm must be 'slaney' or None"):
        mgc.mel_filterbank(sample_rate=16000, n_fft=512, norm="l2")
    with pytest.raises(ValueError, match="top filter reaches .* above the Nyquist"):
        mgc.logfreq_filterbank(sample_rate=16000, fmin=1000.0, n_bins=60)
    with pytest.raises(ValueError, match="n_bins must be >= 2"):
        mgc.logfreq_filterbank(sample_rate=16000, fmin=100.0, n_bins=1)
    with pytest.raises(ValueError, match="pcen: S must be non-negative"):
        mgc.pcen(-np.ones((3, 5)), sample_rate=SR, hop_length=256)
    with pytest.raises(ValueError, match="pcen: b must be in \\[0, 1\\]"):
        mgc.pcen(np.ones((3, 5)), sample_rate=SR, hop_length=256, b=1.5)
    with pytest.raises(ValueError, match="pcen: gain must be a finite number >= 0"):
        mgc.pcen(np.ones((3, 5)), sample_rate=SR, hop_length=256, gain=-1.0)
    with pytest.raises(ValueError, match="power_to_db: S contains"):
        mgc.power_to_db(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="amin must be a finite number > 0"):
        mgc.amplitude_to_db(np.ones(3), amin=0.0)
    with pytest.raises(ValueError, match="taps must be a 1-D filter of odd length"):
        mgc.decimate(x, 2, taps=np.ones(4))
    with pytest.raises(ValueError, match="decimate: factor must be a positive int"):
        mgc.decimate(x, 0)
    with pytest.raises(ValueError, match="spectrogram: power must be a finite number > 0"):
        mgc.spectrogram(x, power=0.0)
