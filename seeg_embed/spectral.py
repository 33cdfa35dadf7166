"""Welch power spectra and band powers in JAX (batched over any leading axes).

``welch_psd`` follows SciPy's ``scipy.signal.welch`` defaults: Hann window of ``nperseg``
samples, 50% overlap, per-segment mean removed, one-sided density scaling

    P(f_k) = (c_k / (fs Σ_n w_n²)) · mean_segments |Σ_n w_n x_n e^{-2πi k n / nperseg}|²,

with ``c_k = 2`` except at DC and Nyquist (``c_k = 1``). A band's power is the PSD summed
over the bins with ``lo <= f < hi`` times the bin width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DEFAULT_BANDS", "band_power", "log_band_power", "welch_psd"]

DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "low_beta": (13.0, 20.0),
    "high_beta": (20.0, 30.0),
    "gamma": (30.0, 60.0),
    "high_gamma": (60.0, 90.0),
    "hfa": (100.0, 200.0),
}


def welch_psd(x: jax.typing.ArrayLike, fs: float, nperseg: int, noverlap: int | None = None
              ) -> tuple[np.ndarray, jax.Array]:
    """One-sided Welch PSD along the last axis.

    Args:
      x: ``[..., T]`` real signal.
      fs: sampling rate (Hz), > 0.
      nperseg: samples per segment (``2 <= nperseg <= T``).
      noverlap: overlap in samples (default ``nperseg // 2``).

    Returns:
      ``(freqs [nperseg // 2 + 1], psd [..., nperseg // 2 + 1])`` in units² / Hz.

    Raises:
      ValueError: on a bad ``fs``, ``nperseg``/``noverlap`` or a signal shorter than one
        segment.
    """
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"welch_psd: x must have a time axis, got shape {x.shape}")
    if not (np.isfinite(fs) and fs > 0):
        raise ValueError(f"welch_psd: fs must be a positive number, got {fs!r}")
    T = x.shape[-1]
    if not (isinstance(nperseg, int | np.integer) and 2 <= nperseg <= T):
        raise ValueError(f"welch_psd: nperseg must be an int in [2, {T}] (the signal length), "
                         f"got {nperseg!r}")
    noverlap = nperseg // 2 if noverlap is None else int(noverlap)
    if not 0 <= noverlap < nperseg:
        raise ValueError(f"welch_psd: noverlap must be in [0, nperseg), got {noverlap}")
    step = nperseg - noverlap
    n_seg = (T - nperseg) // step + 1
    idx = np.arange(n_seg)[:, None] * step + np.arange(nperseg)[None]
    segs = x[..., idx]                                            # [..., n_seg, nperseg]
    segs = segs - jnp.mean(segs, axis=-1, keepdims=True)
    n = np.arange(nperseg)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / nperseg)               # periodic Hann (SciPy)
    spec = jnp.abs(jnp.fft.rfft(segs * w, axis=-1)) ** 2
    psd = jnp.mean(spec, axis=-2) / (fs * np.sum(w ** 2))
    c = np.full(nperseg // 2 + 1, 2.0)
    c[0] = 1.0
    if nperseg % 2 == 0:
        c[-1] = 1.0
    return np.fft.rfftfreq(nperseg, 1.0 / fs), psd * c


def _band_masks(freqs: np.ndarray, bands) -> np.ndarray:
    if isinstance(bands, Mapping):
        bands = list(bands.values())
    bands = [tuple(map(float, b)) for b in bands]
    if not bands:
        raise ValueError("band_power: bands is empty")
    for lo, hi in bands:
        if not lo < hi:
            raise ValueError(f"band_power: band ({lo}, {hi}) must have lo < hi")
    masks = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in bands])
    empty = [b for b, m in zip(bands, masks, strict=True) if not m.any()]
    if empty:
        raise ValueError(f"band_power: band(s) {empty} contain no frequency bin (resolution "
                         f"{freqs[1] - freqs[0]:.3g} Hz, up to {freqs[-1]:.4g} Hz)")
    return masks.astype(np.float32)


def band_power(x: jax.typing.ArrayLike, fs: float,
               bands: Mapping[str, Sequence[float]] | Sequence[Sequence[float]] = DEFAULT_BANDS,
               nperseg: int | None = None) -> jax.Array:
    """Power in each band ``[..., n_bands]`` from :func:`welch_psd` (units²).

    Args:
      x: ``[..., T]`` signal.
      fs: sampling rate (Hz).
      bands: ``{name: (lo, hi)}`` or a list of ``(lo, hi)``; bin ``f`` counts if
        ``lo <= f < hi``.
      nperseg: Welch segment length (default ``min(T, round(fs))``: 1 Hz bins).

    Raises:
      ValueError: on an empty band list, a band with ``lo >= hi`` or without any bin.
    """
    x = jnp.asarray(x)
    nperseg = int(min(x.shape[-1], round(fs))) if nperseg is None else nperseg
    freqs, psd = welch_psd(x, fs, nperseg)
    masks = _band_masks(freqs, bands)
    return psd @ masks.T * (freqs[1] - freqs[0])


def log_band_power(x: jax.typing.ArrayLike, fs: float,
                   bands: Mapping[str, Sequence[float]] | Sequence[Sequence[float]] = DEFAULT_BANDS,
                   nperseg: int | None = None, eps: float = 1e-12) -> jax.Array:
    """``log(band_power + eps)``; see :func:`band_power`."""
    return jnp.log(band_power(x, fs, bands, nperseg) + eps)
