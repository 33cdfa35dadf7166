"""Multi-band spectrogram images and ground-truth soft masks from one recording.

A :class:`Frontend` splits a recording into frequency bands (e.g. a low band for baleen
moans analysed after decimation, a high band for whistles and echolocation clicks at the
full rate). Each band is analysed by one of four transforms, all giving ``n_bins``
frequency rows on the same ``n_frames`` time grid, and the bands are stacked as channels:

* ``"stft"``: band-limited STFT power on ``n_bins`` linearly spaced bins
  (:func:`mgc.frontends.linear_filterbank`), in dB;
* ``"mel"``: mel power (:func:`mgc.frontends.mel_filterbank`), in dB;
* ``"pcen"``: mel power through :func:`mgc.frontends.pcen`;
* ``"logfreq"``: the pseudo-constant-Q magnitude (:func:`mgc.frontends.logfreq_filterbank`),
  squared, in dB.

Time alignment: band ``b`` is decimated by ``q_b``, framed with hop ``h_b`` and centred
windows, and ``p_b`` (odd) consecutive frames are averaged (centred) into one output frame,
so output frame ``j`` of every band is centred at sample ``j * q_b * h_b * p_b`` of the
recording: ``q_b h_b p_b`` must be the same for all bands. Averaging short frames keeps the
high band's short windows (clicks last ~100 us) while matching the low band's frame rate.

The ideal soft mask of the biological energy is the Wiener gain on the transform's power
grid, ``m = P_bio / (P_bio + P_noise)``, computed from the separately analysed sources.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mgc import _validate as V
from mgc import frontends as F

__all__ = [
    "KINDS",
    "Band",
    "Frontend",
    "band_powers",
    "compress",
    "default_frontend",
    "representation",
    "representations_with_masks",
]

KINDS = ("stft", "mel", "pcen", "logfreq")


@dataclasses.dataclass(frozen=True)
class Band:
    """One analysis band.

    Attributes:
      name: label of the band (``"low"``, ``"high"``).
      fmin, fmax: band limits in Hz (``fmax`` at most the decimated Nyquist frequency).
      decimate: integer decimation applied before analysis (anti-aliased,
        :func:`mgc.frontends.decimate`).
      n_fft: STFT size of the ``stft``/``mel``/``pcen`` transforms, at the decimated rate.
      hop_length: STFT hop at the decimated rate.
      pool: odd number of consecutive frames averaged into one output frame.
      logfreq_filter_scale: ``filter_scale`` of the constant-Q wavelets (< 1 shortens the
        low-frequency wavelets, trading frequency for time resolution).
    """

    name: str
    fmin: float
    fmax: float
    decimate: int = 1
    n_fft: int = 2048
    hop_length: int = 1024
    pool: int = 1
    logfreq_filter_scale: float = 1.0

    def sample_rate(self, sample_rate: float) -> float:
        return sample_rate / self.decimate

    def frame_hop(self) -> int:
        """Samples of the original recording between output frames."""
        return self.decimate * self.hop_length * self.pool


@dataclasses.dataclass(frozen=True)
class Frontend:
    """How a recording becomes a ``(n_bins, n_frames, n_bands)`` image.

    Attributes:
      sample_rate: of the recordings, Hz.
      bands: the :class:`Band`s (channels, in order).
      n_bins: frequency rows per band.
      n_frames: output frames (the first ``n_frames`` of each band's grid).
      top_db: dynamic range kept by the dB transforms (per clip and band).
      pcen_time_constant, pcen_gain, pcen_bias, pcen_power: PCEN parameters
        (:func:`mgc.frontends.pcen`); the smoother starts at the first frame.
      pcen_input_scale: audio is scaled by this before PCEN (librosa's advice for
        full-scale float audio is ``2**31``), i.e. powers by its square.
    """

    sample_rate: float
    bands: tuple[Band, ...]
    n_bins: int = 64
    n_frames: int = 64
    top_db: float = 80.0
    pcen_time_constant: float = 0.4
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    pcen_input_scale: float = 2.0**31

    def __post_init__(self):
        fn = "Frontend"
        V.positive_float(fn, "sample_rate", self.sample_rate)
        V.positive_int(fn, "n_bins", self.n_bins)
        V.positive_int(fn, "n_frames", self.n_frames)
        if not self.bands:
            raise ValueError(f"{fn}: bands must hold at least one Band, got none")
        hops = {b.frame_hop() for b in self.bands}
        for b in self.bands:
            if not isinstance(b, Band):
                raise TypeError(f"{fn}: bands must be Band instances, got {type(b).__name__}")
            V.positive_int(fn, f"band {b.name!r} decimate", b.decimate)
            V.positive_int(fn, f"band {b.name!r} n_fft", b.n_fft)
            V.positive_int(fn, f"band {b.name!r} hop_length", b.hop_length)
            V.positive_int(fn, f"band {b.name!r} pool", b.pool)
            if b.pool % 2 == 0:
                raise ValueError(f"{fn}: band {b.name!r} pool must be odd (centred), got "
                                 f"{b.pool}")
            V.check_band(f"{fn} band {b.name!r}", b.fmin, b.fmax,
                         b.sample_rate(self.sample_rate))
            if b.fmin <= 0:
                raise ValueError(f"{fn}: band {b.name!r} fmin must be > 0 Hz (the log-frequency "
                                 f"transform starts there), got {b.fmin}")
        if len(hops) != 1:
            raise ValueError(
                f"{fn}: every band must have the same frame hop decimate*hop_length*pool; got "
                + ", ".join(f"{b.name}={b.frame_hop()}" for b in self.bands))
        for b in self.bands:  # the log-frequency wavelets must fit below the band's Nyquist
            try:
                _logfreq(self, b)
            except ValueError as e:
                raise ValueError(f"{fn}: band {b.name!r} cannot hold the log-frequency "
                                 f"transform: {e}") from e

    @property
    def frame_hop(self) -> int:
        return self.bands[0].frame_hop()

    @property
    def min_samples(self) -> int:
        """Shortest recording that fills ``n_frames`` frames in every band."""
        need = 0
        for b in self.bands:
            centre_last = b.pool * (self.n_frames - 1) + b.pool // 2  # in band frames
            need = max(need, (centre_last * b.hop_length) * b.decimate)
        return need

    def frame_times(self) -> np.ndarray:
        """Centre time (s) of each output frame."""
        return np.arange(self.n_frames) * self.frame_hop / self.sample_rate

    def bin_frequencies(self, kind: str) -> np.ndarray:
        """Centre frequency (Hz) of each row, ``(n_bands, n_bins)``, for ``kind``."""
        _check_kind(kind)
        rows = []
        for b in self.bands:
            if kind == "stft":
                rows.append(np.linspace(b.fmin, b.fmax, self.n_bins + 2)[1:-1])
            elif kind in ("mel", "pcen"):
                rows.append(F.mel_frequencies(self.n_bins + 2, b.fmin, b.fmax)[1:-1])
            else:
                rows.append(F.constant_q_frequencies(b.fmin, self.n_bins, _bpo(b, self.n_bins)))
        return np.stack(rows)


def default_frontend(sample_rate: float = 96_000.0, n_bins: int = 64,
                     n_frames: int = 64) -> Frontend:
    """Two bands for underwater recordings at 96 kHz.

    ``low``: 15 Hz to 1 kHz (blue/fin, minke, humpback fundamentals) after decimating by 32
    (3 kHz rate; 512-point STFT, 171 ms windows, 5.9 Hz bins, hop 32 ms). ``high``: 1 kHz to
    45 kHz (whistles, humpback harmonics, echolocation clicks) at the full rate (2048-point
    STFT, 21 ms windows, hop 10.7 ms, three frames averaged to the common 32 ms hop).
    """
    if sample_rate != 96_000.0:
        raise ValueError("default_frontend: the default bands are laid out for 96 kHz; build "
                         f"a Frontend with your own Bands for sample_rate={sample_rate}")
    return Frontend(
        sample_rate=sample_rate,
        bands=(
            Band("low", 15.0, 1000.0, decimate=32, n_fft=512, hop_length=96, pool=1,
                 logfreq_filter_scale=0.33),
            Band("high", 1000.0, 45000.0, decimate=1, n_fft=2048, hop_length=1024, pool=3,
                 logfreq_filter_scale=1.0),
        ),
        n_bins=n_bins,
        n_frames=n_frames,
    )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"representation: kind must be one of {list(KINDS)}, got {kind!r}")


def _bpo(band: Band, n_bins: int) -> float:
    """Bins per octave that put ``n_bins`` geometric bins from ``fmin`` to ``fmax``."""
    return (n_bins - 1) / np.log2(band.fmax / band.fmin)


def _pool_frames(p: jax.Array, pool: int, n_frames: int) -> jax.Array:
    """Mean of ``pool`` frames centred on ``pool * j`` (edge frames repeated), ``j < n_frames``."""
    if pool == 1:
        return p[..., :n_frames]
    k = p.shape[-1]
    idx = pool * np.arange(n_frames)[:, None] + np.arange(-(pool // 2), pool // 2 + 1)[None, :]
    idx = np.clip(idx, 0, k - 1)
    return jnp.mean(p[..., idx], axis=-1)


def _filterbank(frontend: Frontend, band: Band, kind: str) -> np.ndarray:
    sr = band.sample_rate(frontend.sample_rate)
    if kind == "stft":
        return F.linear_filterbank(sample_rate=sr, n_fft=band.n_fft, n_bins=frontend.n_bins,
                                   fmin=band.fmin, fmax=band.fmax)
    return F.mel_filterbank(sample_rate=sr, n_fft=band.n_fft, n_mels=frontend.n_bins,
                            fmin=band.fmin, fmax=band.fmax)


def _logfreq(frontend: Frontend, band: Band) -> tuple[np.ndarray, int]:
    return F.logfreq_filterbank(
        sample_rate=band.sample_rate(frontend.sample_rate), fmin=band.fmin,
        n_bins=frontend.n_bins, bins_per_octave=_bpo(band, frontend.n_bins),
        filter_scale=band.logfreq_filter_scale, hop_length=band.hop_length)


def _check_signal(fn: str, name: str, x: Any, frontend: Frontend) -> jax.Array:
    x = V.as_real_array(fn, name, x, min_ndim=1)
    V.check_finite(fn, name, x)
    if x.shape[-1] < frontend.min_samples:
        raise ValueError(
            f"{fn}: {name} has {x.shape[-1]} samples ({x.shape[-1] / frontend.sample_rate:.3f} "
            f"s) but the frontend needs at least {frontend.min_samples} for n_frames="
            f"{frontend.n_frames}")
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _band_stfts(xs: list[jax.Array], frontend: Frontend, kinds: tuple[str, ...]):
    """Complex STFTs per band of each signal in ``xs`` (linear: mixes are sums of them)."""
    out = []
    for band in frontend.bands:
        dec = [F.decimate(x, band.decimate) for x in xs]
        entry = {}
        if any(k != "logfreq" for k in kinds):
            entry["fft"] = [F.stft(d, n_fft=band.n_fft, hop_length=band.hop_length) for d in dec]
        if "logfreq" in kinds:
            _, n_fft = _logfreq(frontend, band)
            entry["cq"] = [F.stft(d, n_fft=n_fft, hop_length=band.hop_length) for d in dec]
        out.append(entry)
    return out


def _powers_from_stft(z: jax.Array, frontend: Frontend, band: Band, kind: str) -> jax.Array:
    """Pooled power of one band on ``kind``'s grid, from its complex STFT."""
    if kind == "logfreq":
        basis, n_fft = _logfreq(frontend, band)
        mag = jnp.einsum("kf,...ft->...kt", jnp.asarray(basis), jnp.abs(z)) / np.sqrt(n_fft)
        power = jnp.square(mag)
    else:
        w = _filterbank(frontend, band, kind)
        power = jnp.einsum("kf,...ft->...kt", jnp.asarray(w), jnp.square(jnp.abs(z)))
    return _pool_frames(power, band.pool, frontend.n_frames)


def band_powers(x: jax.typing.ArrayLike, frontend: Frontend, kind: str) -> jax.Array:
    """Per-band power on ``kind``'s grid, ``(..., n_bins, n_frames, n_bands)``.

    For ``"pcen"`` this is the mel power (PCEN is applied by :func:`compress`).
    """
    _check_kind(kind)
    x = _check_signal("band_powers", "x", x, frontend)
    stfts = _band_stfts([x], frontend, (kind,))
    key = "cq" if kind == "logfreq" else "fft"
    return jnp.stack([_powers_from_stft(s[key][0], frontend, b, kind)
                      for s, b in zip(stfts, frontend.bands, strict=True)], axis=-1)


def compress(power: jax.typing.ArrayLike, frontend: Frontend, kind: str) -> jax.Array:
    """dB (``stft``, ``mel``, ``logfreq``; ``top_db`` per clip and band) or PCEN (``pcen``)."""
    _check_kind(kind)
    power = V.as_real_array("compress", "power", power, min_ndim=3)
    p = jnp.moveaxis(jnp.asarray(power), -1, -3)  # (..., bands, bins, frames)
    if kind == "pcen":
        out = F.pcen(p * frontend.pcen_input_scale**2, sample_rate=frontend.sample_rate,
                     hop_length=frontend.frame_hop, gain=frontend.pcen_gain,
                     bias=frontend.pcen_bias, power=frontend.pcen_power,
                     time_constant=frontend.pcen_time_constant,
                     initial_state=p[..., :1] * frontend.pcen_input_scale**2)
    else:
        out = F.power_to_db(p, top_db=frontend.top_db)
    return jnp.moveaxis(out, -3, -1)


def representation(x: jax.typing.ArrayLike, frontend: Frontend, kind: str) -> jax.Array:
    """The ``(..., n_bins, n_frames, n_bands)`` image of recordings ``x`` for ``kind``.

    Args:
      x: recordings ``(..., num_samples)`` at ``frontend.sample_rate``.
      frontend: the bands and grid.
      kind: one of :data:`KINDS`.

    Raises:
      ValueError: an unknown kind, NaN/inf audio, or a recording too short for the grid.
    """
    return compress(band_powers(x, frontend, kind), frontend, kind)


def representations_with_masks(
    bio: jax.typing.ArrayLike,
    noise: jax.typing.ArrayLike,
    frontend: Frontend,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Images of the mixture ``bio + noise`` and ground-truth masks, for several transforms.

    The STFTs of ``bio`` and ``noise`` are computed once per band and shared; the mixture's
    STFT is their sum. For each kind the mask is ``P_bio / (P_bio + P_noise)`` on that kind's
    pooled power grid (the ideal ratio mask of the biological sources).

    Returns:
      ``{kind: (image, mask)}``, each ``(..., n_bins, n_frames, n_bands)``; masks in [0, 1].

    Raises:
      ValueError: shapes of ``bio`` and ``noise`` differ, an unknown kind, NaN/inf audio.
    """
    fn = "representations_with_masks"
    for k in kinds:
        _check_kind(k)
    bio = _check_signal(fn, "bio", bio, frontend)
    noise = _check_signal(fn, "noise", noise, frontend)
    if bio.shape != noise.shape:
        raise ValueError(f"{fn}: bio has shape {tuple(bio.shape)} but noise has "
                         f"{tuple(noise.shape)}")
    stfts = _band_stfts([bio, noise], frontend, tuple(kinds))
    out = {}
    for kind in kinds:
        key = "cq" if kind == "logfreq" else "fft"
        mix_p, masks = [], []
        for s, band in zip(stfts, frontend.bands, strict=True):
            zb, zn = s[key]
            pb = _powers_from_stft(zb, frontend, band, kind)
            pn = _powers_from_stft(zn, frontend, band, kind)
            mix_p.append(_powers_from_stft(zb + zn, frontend, band, kind))
            masks.append(pb / jnp.maximum(pb + pn, jnp.finfo(pb.dtype).tiny))
        image = compress(jnp.stack(mix_p, axis=-1), frontend, kind)
        out[kind] = (image, jnp.stack(masks, axis=-1))
    return out
