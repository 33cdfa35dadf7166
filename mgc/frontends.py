"""Acoustic front-ends in JAX: STFT, mel, PCEN, a constant-Q-like log-frequency transform.

Every transform is a pure function of a batch of clips (any leading axes; time last) and
is ``jax.jit``-able and ``jax.vmap``-able; the filterbanks are NumPy constants built once
from static arguments (sample rate, FFT size, band limits). Conventions follow librosa so
a user can swap one for the other: spectrograms are laid out ``(..., frequency, frame)``,
``center=True`` pads ``n_fft // 2`` samples at both ends and gives ``1 + n // hop`` frames,
windows are periodic (``scipy.signal.get_window(..., fftbins=True)``), the mel scale is
Slaney's with Slaney area normalisation, and :func:`pcen` / :func:`logfreq_spectrogram`
reproduce ``librosa.pcen`` / ``librosa.pseudo_cqt`` (``tuning=0, sparsity=0``).

The tests compare each function with librosa and ``scipy.signal`` on the same clips.

References:
  Wang, Getreuer, Hughes, Lyon, Saurous: Trainable frontend for robust and far-field keyword
  spotting (PCEN), ICASSP 2017. Lostanlen et al.: Per-channel energy normalization: why and
  how, IEEE SPL 2019. Schoerkhuber, Klapuri: Constant-Q transform toolbox, SMC 2010.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from mgc import _validate as V

__all__ = [
    "amplitude_to_db",
    "constant_q_frequencies",
    "decimate",
    "fft_frequencies",
    "frame_count",
    "hz_to_mel",
    "linear_filterbank",
    "logfreq_filterbank",
    "logfreq_spectrogram",
    "lowpass_taps",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_hz",
    "melspectrogram",
    "pcen",
    "pcen_smoothing_coefficient",
    "power_to_db",
    "spectrogram",
    "stft",
]


def _as_signal(fn: str, x: Any) -> jax.Array:
    x = V.as_real_array(fn, "x", x, min_ndim=1)
    V.check_finite(fn, "x", x)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _window(fn: str, window: Any, length: int) -> np.ndarray:
    """A periodic window of ``length`` samples (a name for scipy, or the samples themselves)."""
    if isinstance(window, str | tuple):
        try:
            return scipy.signal.get_window(window, length, fftbins=True)
        except ValueError as e:
            raise ValueError(f"{fn}: unknown window {window!r} ({e})") from e
    w = np.asarray(window, dtype=np.float64)
    if w.shape != (length,):
        raise ValueError(f"{fn}: window must be a name or an array of {length} samples, got "
                         f"shape {w.shape}")
    return w


def frame_count(num_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """Number of STFT frames: ``1 + n // hop`` when centred, ``1 + (n - n_fft) // hop`` if not."""
    if center:
        return 1 + num_samples // hop_length
    return 1 + (num_samples - n_fft) // hop_length


def stft(
    x: jax.typing.ArrayLike,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: Any = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> jax.Array:
    """Short-time Fourier transform ``X[..., k, t] = sum_n w[n] x[t*hop + n] e^{-2 pi i k n / N}``.

    Args:
      x: real signals, shape ``(..., num_samples)``.
      n_fft: FFT size ``N``.
      hop_length: samples between frames (default ``win_length // 4``).
      win_length: window length, centred and zero-padded to ``n_fft`` (default ``n_fft``).
      window: a ``scipy.signal.get_window`` spec (periodic) or ``win_length`` samples.
      center: pad ``n_fft // 2`` samples at both ends so frame ``t`` is centred at
        ``t * hop``.
      pad_mode: ``"constant"`` (zeros, librosa's default) or ``"reflect"``.

    Returns:
      Complex array ``(..., 1 + n_fft // 2, num_frames)``.

    Raises:
      ValueError: bad sizes, an unknown window or pad mode, NaN/inf in ``x``, or an
        uncentred signal shorter than ``n_fft``.
    """
    fn = "stft"
    n_fft = V.positive_int(fn, "n_fft", n_fft)
    win_length = n_fft if win_length is None else V.positive_int(fn, "win_length", win_length)
    if win_length > n_fft:
        raise ValueError(f"{fn}: win_length={win_length} must be <= n_fft={n_fft}")
    hop_length = max(win_length // 4, 1) if hop_length is None else V.positive_int(
        fn, "hop_length", hop_length)
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"{fn}: pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    x = _as_signal(fn, x)
    w = _window(fn, window, win_length)
    lpad = (n_fft - win_length) // 2
    w = np.pad(w, (lpad, n_fft - win_length - lpad))
    n = x.shape[-1]
    if center:
        if pad_mode == "reflect" and n <= n_fft // 2:
            raise ValueError(f"{fn}: reflect padding needs more than n_fft // 2 = {n_fft // 2} "
                             f"samples, got {n}")
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        x = jnp.pad(x, pad, mode=pad_mode)
    elif n < n_fft:
        raise ValueError(f"{fn}: an uncentred STFT needs at least n_fft={n_fft} samples, got {n}")
    frames = frame_count(n, n_fft, hop_length, center)
    idx = hop_length * np.arange(frames)[:, None] + np.arange(n_fft)[None, :]
    segments = x[..., idx] * jnp.asarray(w, x.dtype)
    return jnp.swapaxes(jnp.fft.rfft(segments, axis=-1), -1, -2)


def spectrogram(x: jax.typing.ArrayLike, *, power: float = 2.0, **stft_kwargs: Any) -> jax.Array:
    """``|STFT(x)|^power`` (``power=1``: magnitude, ``2``: power), ``(..., freq, frames)``."""
    V.positive_float("spectrogram", "power", power)
    return jnp.abs(stft(x, **stft_kwargs)) ** power


# -- frequency scales and filterbanks (NumPy constants) ------------------------------------


def fft_frequencies(sample_rate: float, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the ``1 + n_fft // 2`` real-FFT bins."""
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate)


def hz_to_mel(freqs: Any, htk: bool = False) -> np.ndarray:
    """Hz to mel: HTK ``2595 log10(1 + f/700)``, or Slaney (linear below 1 kHz, log above)."""
    f = np.asarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3  # Slaney: 3 mels per 200 Hz below 1 kHz
    brk_hz, brk_mel = 1000.0, 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0  # 27 mels per factor 6.4 above the break
    safe = np.maximum(f, brk_hz)
    return np.where(f >= brk_hz, brk_mel + np.log(safe / brk_hz) / logstep, f / f_sp)


def mel_to_hz(mels: Any, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    brk_hz, brk_mel = 1000.0, 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= brk_mel, brk_hz * np.exp(logstep * (m - brk_mel)), f_sp * m)


def mel_frequencies(n: int, fmin: float, fmax: float, htk: bool = False) -> np.ndarray:
    """``n`` frequencies (Hz) equally spaced on the mel scale from ``fmin`` to ``fmax``."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n), htk)


def _triangles(points_hz: np.ndarray, fft_freqs: np.ndarray) -> np.ndarray:
    """Row ``i``: 0 at ``points[i]``, rising to 1 at ``points[i+1]``, 0 again at ``points[i+2]``."""
    left, centre, right = points_hz[:-2, None], points_hz[1:-1, None], points_hz[2:, None]
    rise = (fft_freqs[None, :] - left) / (centre - left)
    fall = (right - fft_freqs[None, :]) / (right - centre)
    return np.maximum(0.0, np.minimum(rise, fall))


def _check_fft_band(fn: str, sample_rate: float, n_fft: int, n_bins: int, fmin: float,
                    fmax: float | None) -> tuple[float, int, int, float]:
    sample_rate = V.positive_float(fn, "sample_rate", sample_rate)
    n_fft = V.positive_int(fn, "n_fft", n_fft)
    n_bins = V.positive_int(fn, "n_bins" if fn != "mel_filterbank" else "n_mels", n_bins)
    fmax = sample_rate / 2 if fmax is None else float(fmax)
    V.check_band(fn, float(fmin), fmax, sample_rate)
    return sample_rate, n_fft, n_bins, fmax


@functools.cache
def mel_filterbank(
    *,
    sample_rate: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters ``(n_mels, 1 + n_fft // 2)`` (librosa.filters.mel's layout).

    Filter ``m`` has its feet at mel points ``m`` and ``m + 2`` and its peak at ``m + 1`` of
    ``n_mels + 2`` points equally spaced in mel between ``fmin`` and ``fmax``. With
    ``norm="slaney"`` each filter is scaled by ``2 / (f_{m+2} - f_m)`` (constant area).

    Raises:
      ValueError: a band outside ``[0, sample_rate / 2]`` or an unknown ``norm``.
    """
    fn = "mel_filterbank"
    sample_rate, n_fft, n_mels, fmax = _check_fft_band(fn, sample_rate, n_fft, n_mels, fmin,
                                                      fmax)
    if norm not in ("slaney", None):
        raise ValueError(f"{fn}: norm must be 'slaney' or None, got {norm!r}")
    points = mel_frequencies(n_mels + 2, fmin, fmax, htk)
    weights = _triangles(points, fft_frequencies(sample_rate, n_fft))
    if norm == "slaney":
        weights *= (2.0 / (points[2:] - points[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


@functools.cache
def linear_filterbank(
    *,
    sample_rate: float,
    n_fft: int,
    n_bins: int,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Triangular filters with linearly spaced centres ``(n_bins, 1 + n_fft // 2)``.

    Centres ``c_i = fmin + (i + 1) (fmax - fmin) / (n_bins + 1)``; filter ``i`` is the hat
    ``max(0, 1 - |f - c_i| / Delta)`` with ``Delta`` the centre spacing, so inside the band
    the filters sum to one and applying them linearly interpolates the spectrum onto the
    ``n_bins`` centres (a band-limited STFT resampled to a fixed number of bins).

    Raises:
      ValueError: a band outside ``[0, sample_rate / 2]``.
    """
    sample_rate, n_fft, n_bins, fmax = _check_fft_band("linear_filterbank", sample_rate, n_fft,
                                                      n_bins, fmin, fmax)
    points = np.linspace(fmin, fmax, n_bins + 2)
    weights = _triangles(points, fft_frequencies(sample_rate, n_fft)).astype(np.float32)
    weights.flags.writeable = False
    return weights


def constant_q_frequencies(fmin: float, n_bins: int, bins_per_octave: float = 12) -> np.ndarray:
    """Geometric centre frequencies ``f_k = fmin 2^{k / B}``, ``k = 0..n_bins-1``."""
    return float(fmin) * 2.0 ** (np.arange(n_bins) / float(bins_per_octave))


def _window_bandwidth(window: Any, n: int = 1000) -> float:
    """Equivalent noise bandwidth of a window in bins: ``n sum(w^2) / (sum w)^2``."""
    w = scipy.signal.get_window(window, n, fftbins=True)
    return float(n * np.sum(w**2) / np.sum(w) ** 2)


@functools.cache
def logfreq_filterbank(
    *,
    sample_rate: float,
    fmin: float,
    n_bins: int,
    bins_per_octave: float = 12,
    filter_scale: float = 1.0,
    window: str = "hann",
    hop_length: int | None = None,
) -> tuple[np.ndarray, int]:
    """Magnitude frequency responses of constant-Q wavelets, for a pseudo-constant-Q transform.

    For centre ``f_k`` (:func:`constant_q_frequencies`), relative bandwidth
    ``alpha_k = (2^{2/B_k} - 1) / (2^{2/B_k} + 1)`` (``B_k`` the local bins per octave) and
    quality ``Q_k = filter_scale / alpha_k``, the wavelet has length ``l_k = Q_k sr / f_k``:
    ``psi_k[n] = w(n) e^{2 pi i f_k n / sr} / ||w||_1`` for the integers ``n`` in
    ``[floor(-l_k/2), floor(l_k/2))`` (``w`` a periodic window over those samples). The
    wavelets are centred in ``N`` samples (the next power of two >= max ``l_k``, and at least
    ``2^{1 + ceil(log2 hop)}``), scaled by ``l_k / N``, and the magnitudes of their real-FFT
    bins are returned. ``|psi_hat| @ |STFT_N|`` is librosa's ``pseudo_cqt``.

    Returns:
      ``(basis, n_fft)``: basis ``(n_bins, 1 + n_fft // 2)`` float32 and the FFT size.

    Raises:
      ValueError: fewer than two bins, ``fmin <= 0``, or a top filter reaching above Nyquist.
    """
    fn = "logfreq_filterbank"
    sample_rate = V.positive_float(fn, "sample_rate", sample_rate)
    fmin = V.positive_float(fn, "fmin", fmin)
    n_bins = V.positive_int(fn, "n_bins", n_bins)
    if n_bins < 2:
        raise ValueError(f"{fn}: n_bins must be >= 2 (bandwidths come from neighbours), got "
                         f"{n_bins}")
    bins_per_octave = V.positive_float(fn, "bins_per_octave", bins_per_octave)
    filter_scale = V.positive_float(fn, "filter_scale", filter_scale)
    freqs = constant_q_frequencies(fmin, n_bins, bins_per_octave)
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1.0 / (logf[1] - logf[0])
    bpo[-1] = 1.0 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2.0 / (logf[2:] - logf[:-2])
    alpha = (2.0 ** (2.0 / bpo) - 1.0) / (2.0 ** (2.0 / bpo) + 1.0)
    q = filter_scale / alpha
    top = float(np.max(freqs * (1.0 + 0.5 * _window_bandwidth(window) / q)))
    if top > sample_rate / 2:
        raise ValueError(
            f"{fn}: the top filter reaches {top:.1f} Hz, above the Nyquist frequency "
            f"{sample_rate / 2} Hz of sample_rate={sample_rate}; lower fmin, n_bins or "
            "bins_per_octave, or raise the sample rate")
    lengths = q * sample_rate / freqs
    n_fft = int(2.0 ** np.ceil(np.log2(np.max(lengths))))
    if hop_length is not None:
        n_fft = max(n_fft, int(2.0 ** (1 + np.ceil(np.log2(hop_length)))))
    rows = np.zeros((n_bins, n_fft), np.complex128)
    for k, (length, f) in enumerate(zip(lengths, freqs, strict=True)):
        n = np.arange(math.floor(-length / 2), math.floor(length / 2), dtype=np.float64)
        taper = scipy.signal.get_window(window, len(n), fftbins=True)
        atom = taper * np.exp(2j * np.pi * f * n / sample_rate)
        atom /= np.sum(np.abs(atom))
        start = (n_fft - len(atom)) // 2
        rows[k, start:start + len(atom)] = atom * (length / n_fft)
    basis = np.abs(np.fft.fft(rows, axis=1)[:, : n_fft // 2 + 1]).astype(np.float32)
    basis.flags.writeable = False
    return basis, n_fft


# -- composite transforms ------------------------------------------------------------------


def melspectrogram(
    x: jax.typing.ArrayLike,
    *,
    sample_rate: float,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    power: float = 2.0,
    window: Any = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    htk: bool = False,
    norm: str | None = "slaney",
) -> jax.Array:
    """Mel spectrogram ``M = W_mel |STFT(x)|^power``, shape ``(..., n_mels, frames)``."""
    w = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                       fmax=fmax, htk=htk, norm=norm)
    s = spectrogram(x, power=power, n_fft=n_fft, hop_length=hop_length, window=window,
                    center=center, pad_mode=pad_mode)
    return jnp.einsum("mf,...ft->...mt", jnp.asarray(w, s.dtype), s)


def logfreq_spectrogram(
    x: jax.typing.ArrayLike,
    *,
    sample_rate: float,
    hop_length: int = 512,
    fmin: float = 32.70319566257483,
    n_bins: int = 84,
    bins_per_octave: float = 12,
    filter_scale: float = 1.0,
    window: str = "hann",
    pad_mode: str = "constant",
) -> jax.Array:
    """Pseudo-constant-Q magnitude ``C = |psi_hat| |STFT_N(x)| / sqrt(N)``, ``(..., bins, frames)``.

    One FFT size ``N`` (from :func:`logfreq_filterbank`) serves every bin, so low bins have
    the frequency resolution of a constant-Q transform while the time resolution is that of
    the longest wavelet. Equals ``librosa.pseudo_cqt(..., tuning=0.0, sparsity=0.0)``.
    """
    basis, n_fft = logfreq_filterbank(sample_rate=sample_rate, fmin=fmin, n_bins=n_bins,
                                      bins_per_octave=bins_per_octave,
                                      filter_scale=filter_scale, window=window,
                                      hop_length=hop_length)
    mag = spectrogram(x, power=1.0, n_fft=n_fft, hop_length=hop_length, window="hann",
                      center=True, pad_mode=pad_mode)
    out = jnp.einsum("kf,...ft->...kt", jnp.asarray(basis, mag.dtype), mag)
    return out / np.sqrt(n_fft)


def pcen_smoothing_coefficient(sample_rate: float, hop_length: int, time_constant: float) -> float:
    """The IIR coefficient ``s`` whose squared response has its half-power point at ``T``.

    With ``T_f = time_constant sample_rate / hop_length`` frames, ``s`` solves
    ``s^2 + (1 - s) / T_f - 2 = 0``: ``s = (sqrt(1 + 4 T_f^2) - 1) / (2 T_f^2)``.
    """
    t_frames = time_constant * sample_rate / float(hop_length)
    return float((np.sqrt(1.0 + 4.0 * t_frames**2) - 1.0) / (2.0 * t_frames**2))


def pcen(
    S: jax.typing.ArrayLike,
    *,
    sample_rate: float,
    hop_length: int,
    gain: float = 0.98,
    bias: float = 2.0,
    power: float = 0.5,
    time_constant: float = 0.4,
    eps: float = 1e-6,
    b: float | None = None,
    initial_state: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Per-channel energy normalisation along the last (time) axis.

    ``M_t = (1 - s) M_{t-1} + s E_t`` (``M_{-1}`` = ``initial_state``, default 1 as in
    librosa), then ``PCEN_t = (E_t / (eps + M_t)^gain + bias)^power - bias^power``, computed
    in log space as librosa does. The recursion runs as a parallel ``associative_scan``.

    Args:
      S: non-negative energies ``E``, shape ``(..., frames)`` (a mel power spectrogram;
        librosa suggests scaling audio to the int32 range, ``x * 2**31``, first).
      sample_rate, hop_length: set the frame rate for ``time_constant``.
      gain, bias, power, time_constant, eps: the PCEN parameters (alpha, delta, r, T, eps).
      b: the smoothing coefficient ``s``; default from ``time_constant``
        (:func:`pcen_smoothing_coefficient`).
      initial_state: ``M_{-1}``, broadcastable to ``S[..., :1]``; pass ``S[..., :1]`` to
        start the smoother at the first frame instead of at 1.

    Returns:
      PCEN of ``S``, same shape.

    Raises:
      ValueError: negative parameters, ``b`` outside [0, 1], negative or non-finite ``S``.
    """
    fn = "pcen"
    for name, value in (("gain", gain), ("bias", bias), ("power", power)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {value!r}")
    V.positive_float(fn, "time_constant", time_constant)
    V.positive_float(fn, "eps", eps)
    V.positive_float(fn, "sample_rate", sample_rate)
    V.positive_int(fn, "hop_length", hop_length)
    if b is None:
        b = pcen_smoothing_coefficient(sample_rate, hop_length, time_constant)
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"{fn}: b must be in [0, 1], got {b!r}")
    S = V.as_real_array(fn, "S", S, min_ndim=1)
    V.check_finite(fn, "S", S)
    V.check_nonnegative(fn, "S", S)
    S = jnp.asarray(S)
    if not jnp.issubdtype(S.dtype, jnp.floating):
        S = S.astype(jnp.float32)
    m0 = jnp.ones_like(S[..., :1]) if initial_state is None else jnp.broadcast_to(
        jnp.asarray(initial_state, S.dtype), S[..., :1].shape)
    # M_t = a M_{t-1} + c_t as the composition of affine maps (a, c); prepend M_{-1}.
    a = jnp.full_like(S, 1.0 - b)
    c = b * S
    a = jnp.concatenate([jnp.zeros_like(m0), a], axis=-1)
    c = jnp.concatenate([m0, c], axis=-1)

    def combine(left, right):
        return left[0] * right[0], right[0] * left[1] + right[1]

    _, smooth_e = jax.lax.associative_scan(combine, (a, c), axis=-1)
    smooth_e = smooth_e[..., 1:]
    smooth = jnp.exp(-gain * (np.log(eps) + jnp.log1p(smooth_e / eps)))
    if power == 0:
        return jnp.log1p(S * smooth)
    if bias == 0:
        return jnp.exp(power * (jnp.log(S) + jnp.log(smooth)))
    return (bias**power) * jnp.expm1(power * jnp.log1p(S * smooth / bias))


def power_to_db(
    S: jax.typing.ArrayLike,
    *,
    ref: float = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> jax.Array:
    """``10 log10(max(amin, S) / max(amin, ref))``, floored at ``max - top_db`` per spectrogram.

    Unlike librosa (one maximum over the whole array), the ``top_db`` floor uses the
    maximum over the last two axes, so each clip of a batch is treated on its own; for a
    single 2-D spectrogram the two agree.
    """
    fn = "power_to_db"
    V.positive_float(fn, "amin", amin)
    V.positive_float(fn, "ref", ref)
    if top_db is not None:
        V.positive_float(fn, "top_db", top_db)
    S = V.as_real_array(fn, "S", S, min_ndim=1)
    V.check_finite(fn, "S", S)
    S = jnp.asarray(S)
    if not jnp.issubdtype(S.dtype, jnp.floating):
        S = S.astype(jnp.float32)
    db = 10.0 * jnp.log10(jnp.maximum(amin, S)) - 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        axes = tuple(range(max(db.ndim - 2, 0), db.ndim))
        db = jnp.maximum(db, jnp.max(db, axis=axes, keepdims=True) - top_db)
    return db


def amplitude_to_db(
    S: jax.typing.ArrayLike,
    *,
    ref: float = 1.0,
    amin: float = 1e-5,
    top_db: float | None = 80.0,
) -> jax.Array:
    """``20 log10`` of a magnitude spectrogram: :func:`power_to_db` of ``S^2``."""
    S = V.as_real_array("amplitude_to_db", "S", S, min_ndim=1)
    return power_to_db(jnp.square(jnp.abs(jnp.asarray(S))), ref=float(ref) ** 2,
                       amin=float(amin) ** 2, top_db=top_db)


# -- resampling ----------------------------------------------------------------------------


@functools.cache
def lowpass_taps(factor: int) -> np.ndarray:
    """The anti-aliasing FIR of ``scipy.signal.resample_poly(x, 1, factor)``.

    ``firwin(20 factor + 1, 1 / factor, window=('kaiser', 5.0))``: cut-off at the new
    Nyquist frequency, half-length ``10 factor``.
    """
    factor = V.positive_int("lowpass_taps", "factor", factor)
    taps = scipy.signal.firwin(20 * factor + 1, 1.0 / factor, window=("kaiser", 5.0))
    taps = taps.astype(np.float32)
    taps.flags.writeable = False
    return taps


def decimate(
    x: jax.typing.ArrayLike, factor: int, *, taps: jax.typing.ArrayLike | None = None
) -> jax.Array:
    """Low-pass filters and keeps every ``factor``-th sample: ``y[n] = sum_k h[k] x[nq + K - k]``.

    ``h`` has odd length ``2K + 1`` (centred, so there is no delay); ``y`` has
    ``ceil(len(x) / q)`` samples and equals ``scipy.signal.resample_poly(x, 1, q,
    window=h)``. Only the kept outputs are computed (a strided convolution).

    Args:
      x: signals ``(..., num_samples)``.
      factor: decimation factor ``q`` (1 returns ``x``).
      taps: FIR coefficients of odd length (default :func:`lowpass_taps`).

    Raises:
      ValueError: ``factor`` not a positive int, even-length taps, NaN/inf in ``x``.
    """
    fn = "decimate"
    factor = V.positive_int(fn, "factor", factor)
    x = _as_signal(fn, x)
    if factor == 1:
        return x
    h = lowpass_taps(factor) if taps is None else np.asarray(taps, np.float32)
    if h.ndim != 1 or h.size % 2 == 0:
        raise ValueError(f"{fn}: taps must be a 1-D filter of odd length, got shape {h.shape}")
    half = h.size // 2
    lead = x.shape[:-1]
    flat = x.reshape((-1, 1, x.shape[-1]))
    kernel = jnp.asarray(h[::-1].copy(), x.dtype).reshape(1, 1, -1)
    y = jax.lax.conv_general_dilated(flat, kernel, window_strides=(factor,),
                                     padding=[(half, half)],
                                     precision=jax.lax.Precision.HIGHEST)
    return y.reshape(lead + (y.shape[-1],))
