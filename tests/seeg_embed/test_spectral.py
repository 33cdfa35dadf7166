"""JAX Welch PSD and band powers against scipy.signal.welch."""

import numpy as np
import pytest
from scipy import signal

import seeg_embed as S


@pytest.mark.parametrize("nperseg,noverlap", [(256, None), (255, None), (200, 50)])
def test_welch_matches_scipy(nperseg, noverlap):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2000)) + 3.0   # a DC offset: removed per segment by both
    f, p = S.welch_psd(x, 500.0, nperseg, noverlap)
    f_ref, p_ref = signal.welch(x, fs=500.0, nperseg=nperseg, noverlap=noverlap, axis=-1)
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(np.asarray(p), p_ref, rtol=2e-4, atol=1e-9)


def test_band_power_integrates_the_scipy_psd_and_finds_a_sinusoid():
    fs, t = 1000.0, np.arange(10_000) / 1000.0
    rng = np.random.default_rng(1)
    x = 3.0 * np.sin(2 * np.pi * 20.0 * t) + 0.1 * rng.normal(size=t.size)
    bands = {"alpha": (8, 13), "beta": (13, 30), "gamma": (30, 90)}
    bp = np.asarray(S.band_power(x, fs, bands))
    f, p = signal.welch(x, fs=fs, nperseg=1000)
    ref = [p[(f >= lo) & (f < hi)].sum() * (f[1] - f[0]) for lo, hi in bands.values()]
    np.testing.assert_allclose(bp, ref, rtol=1e-4)
    assert bp[1] == pytest.approx(3.0 ** 2 / 2, rel=0.05)   # a sinusoid's power is A²/2
    np.testing.assert_allclose(np.asarray(S.log_band_power(x, fs, bands)), np.log(bp + 1e-12),
                               rtol=1e-5)


def test_bad_inputs():
    x = np.zeros((2, 100))
    with pytest.raises(ValueError, match=r"nperseg must be an int in \[2, 100\]"):
        S.welch_psd(x, 100.0, 200)
    with pytest.raises(ValueError, match="fs must be a positive number"):
        S.welch_psd(x, 0.0, 50)
    with pytest.raises(ValueError, match=r"noverlap must be in \[0, nperseg\)"):
        S.welch_psd(x, 100.0, 50, 50)
    with pytest.raises(ValueError, match=r"band \(30.0, 10.0\) must have lo < hi"):
        S.band_power(x, 100.0, [(30, 10)])
    with pytest.raises(ValueError, match="contain no frequency bin"):
        S.band_power(x, 100.0, [(200, 300)])
    with pytest.raises(ValueError, match="bands is empty"):
        S.band_power(x, 100.0, [])
