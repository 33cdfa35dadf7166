"""A marine acoustic scene simulator: calls of several species in ship, rain, shrimp and flow noise.

The recordings of the paper are not public, so the experiments run on simulated scenes
whose ingredients follow the bioacoustics literature (nominal bands at the default 96 kHz):

=====================  =============================================================  ==========
class                  call model                                                     band (Hz)
=====================  =============================================================  ==========
``noise``              no call: the noise alone                                       --
``beluga_whistle``     frequency-modulated tone (linear trend + sinusoidal wiggle),   2k-12k
                       0.2-1.2 s, weak second harmonic
``echolocation``       click train: Gabor clicks (peak 25-40 kHz, ~40 % bandwidth,    10k-48k
                       ~0.2 ms) with an inter-click interval gliding 4-40 ms
``humpback_unit``      harmonic song unit, f0 120-500 Hz (rising, falling or arched), 100-4k
                       0.4-1.8 s, harmonics up to 4 kHz, tremolo
``blue_fin``           fin-whale 20 Hz pulse (~25 -> 17 Hz, 0.6-1 s) or blue-whale    15-100
                       D call (~90 -> 40 Hz, 1-2 s)
``minke_pulse_train``  3-8 pulses of 40-80 ms at 80-250 Hz, inter-pulse interval      50-400
                       0.15-0.4 s speeding up or slowing down
=====================  =============================================================  ==========

Noise: an always-present ambient floor (Wenz-like, falling ~17 dB/decade above 500 Hz),
plus each of four sources with probability ``noise_prob``: **shipping** (blade-rate
harmonic lines and machinery lines as narrow spectral peaks, plus broadband cavitation
peaking at 50-150 Hz and amplitude-modulated at the blade rate), **rain** (Poisson drop
impacts exciting ~13-17 kHz bubble resonances, plus splash), **snapping shrimp**
(Poisson snaps with Pareto amplitudes, broadband above ~2 kHz) and **flow noise** (steep
infrasonic noise with slow bursts). Their levels are drawn relative to the ambient floor.

A call clip holds 1-``max_calls`` calls of its class at independent start times (so they
may overlap) and, with probability ``distractor_prob``, a weaker call of another class.
The target calls are scaled to the clip's SNR, defined **in the class band over the whole
clip**: ``SNR = 10 log10(E_band(calls) / E_band(noise))``. The simulator returns the
biological and noise components separately, so :func:`mgc.representation.
representations_with_masks` gives the ground-truth soft mask of the biological energy.

Clip ``i`` depends only on ``(key, i)`` (``jax.random.fold_in``), so a data set can be
generated in chunks (``start_index``) and is identical however it is chunked. Each class
is rendered by one jitted, vmapped function over the clips that need it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mgc import _validate as V

__all__ = [
    "CALL_CLASSES",
    "CLASSES",
    "NOISE_TYPES",
    "Scene",
    "SceneConfig",
    "class_band",
    "render_calls",
    "render_noise",
    "simulate_scenes",
]

CLASSES = ("noise", "beluga_whistle", "echolocation", "humpback_unit", "blue_fin",
           "minke_pulse_train")
CALL_CLASSES = CLASSES[1:]
NOISE_TYPES = ("shipping", "rain", "shrimp", "flow")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Static parameters of the simulated scenes.

    Attributes:
      sample_rate: Hz; must exceed twice the click peak range's top plus its bandwidth.
      num_samples: samples per clip (default 2.048 s at 96 kHz).
      snr_db: (low, high) of the uniform in-band SNR of the target calls.
      max_calls: at most this many calls of the target class per clip.
      call_count_probs: probabilities of 1..max_calls calls.
      distractor_prob: probability that a call clip also holds a call of another class.
      distractor_db: (low, high) level of the distractor relative to the target, dB.
      noise_prob: probability of each of shipping, rain, shrimp and flow noise.
      noise_level_db: (low, high) level of each present source relative to the ambient
        floor, dB (broadband power).
      ambient_rms: (low, high) log-uniform RMS of the ambient floor (full scale 1).
      click_peak_hz: (low, high) peak frequency of echolocation clicks. 25-40 kHz suits
        beluga-like broadband clicks at 96 kHz; porpoise clicks (~130 kHz) need a sample
        rate above ~300 kHz and ``click_peak_hz=(120e3, 140e3)``.
    """

    sample_rate: float = 96_000.0
    num_samples: int = 196_608
    snr_db: tuple[float, float] = (-12.0, 6.0)
    max_calls: int = 3
    call_count_probs: tuple[float, ...] = (0.5, 0.3, 0.2)
    distractor_prob: float = 0.25
    distractor_db: tuple[float, float] = (-15.0, -6.0)
    noise_prob: float = 0.5
    noise_level_db: tuple[float, float] = (-5.0, 15.0)
    ambient_rms: tuple[float, float] = (0.003, 0.03)
    click_peak_hz: tuple[float, float] = (25_000.0, 40_000.0)

    def __post_init__(self):
        fn = "SceneConfig"
        V.positive_float(fn, "sample_rate", self.sample_rate)
        V.positive_int(fn, "num_samples", self.num_samples)
        V.positive_int(fn, "max_calls", self.max_calls)
        if self.num_samples % 64:
            raise ValueError(f"{fn}: num_samples must be a multiple of 64 (low-rate synthesis), "
                             f"got {self.num_samples}")
        for name in ("snr_db", "distractor_db", "noise_level_db", "ambient_rms",
                     "click_peak_hz"):
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"{fn}: {name} must be a finite (low, high) with low <= high, "
                                 f"got {getattr(self, name)!r}")
        if len(self.call_count_probs) != self.max_calls or any(
                p < 0 for p in self.call_count_probs) or abs(sum(self.call_count_probs) - 1) > 1e-6:
            raise ValueError(f"{fn}: call_count_probs must be {self.max_calls} probabilities "
                             f"summing to 1, got {self.call_count_probs!r}")
        for name in ("distractor_prob", "noise_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{fn}: {name} must be in [0, 1], got {p!r}")
        if self.ambient_rms[0] <= 0:
            raise ValueError(f"{fn}: ambient_rms must be > 0, got {self.ambient_rms!r}")
        top = self.click_peak_hz[1] * 1.2
        if top > self.sample_rate / 2:
            raise ValueError(
                f"{fn}: click_peak_hz={self.click_peak_hz} needs a sample rate of at least "
                f"{2 * top:.0f} Hz (twice the clicks' upper band edge), got "
                f"sample_rate={self.sample_rate}")
        if self.sample_rate < 2 * 12_000 * 1.25:
            raise ValueError(f"{fn}: sample_rate must be >= 30 kHz for the whistle band "
                             f"(2-12 kHz), got {self.sample_rate}")
        if self.duration < 1.0:
            raise ValueError(f"{fn}: clips must last >= 1 s (the calls do), got "
                             f"{self.duration:.3f} s")

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def class_band(name: str, config: SceneConfig = SceneConfig()) -> tuple[float, float]:
    """The (low, high) Hz band in which a class's calls put their energy (SNR is measured there)."""
    if name == "beluga_whistle":
        return (2_000.0, 12_000.0)
    if name == "echolocation":
        return (10_000.0, min(config.sample_rate / 2, config.click_peak_hz[1] * 1.6))
    if name == "humpback_unit":
        return (100.0, 4_000.0)
    if name == "blue_fin":
        return (15.0, 100.0)
    if name == "minke_pulse_train":
        return (50.0, 400.0)
    raise ValueError(f"class_band: name must be one of {list(CALL_CLASSES)}, got {name!r}")


class Scene(NamedTuple):
    """A batch of simulated clips.

    Attributes:
      audio: ``bio + noise``, ``(n, num_samples)`` float32.
      bio: the biological sources (target calls and distractor).
      noise: the noise sources.
      labels: class index into :data:`CLASSES`, ``(n,)`` int32.
      snr_db: in-band SNR of the target calls; for noise-only clips the drawn value is
        unused (no call) and reported as given.
      num_calls: calls of the target class (0 for noise-only clips).
      distractor: class index of the distractor call, or -1.
      noise_types: which of :data:`NOISE_TYPES` are present, ``(n, 4)`` bool.
      call_spans: (start, end) seconds of each target call, ``(n, max_calls, 2)``; unused
        slots are ``(-1, -1)``.
    """

    audio: jax.Array
    bio: jax.Array
    noise: jax.Array
    labels: jax.Array
    snr_db: jax.Array
    num_calls: jax.Array
    distractor: jax.Array
    noise_types: jax.Array
    call_spans: jax.Array


# -- call models -----------------------------------------------------------------------------
# Band-limited calls are synthesised at a decimated rate (``_call_decimation``) and brought to
# the full rate by zero-padding their spectrum (exact band-limited interpolation); clicks are
# rendered at the full rate as short windows scattered at the click times. Each model takes
# (key, t, active (M,), cfg), with ``t`` the sample times at its own rate, and returns
# (waveform, spans (M, 2) in seconds).

# highest frequency each model puts out (Hz); its synthesis rate keeps Nyquist above it
_MAX_FREQ = {"beluga_whistle": 23_500.0, "humpback_unit": 4_000.0, "blue_fin": 100.0,
             "minke_pulse_train": 400.0}


def _call_decimation(name: str, cfg: SceneConfig) -> int:
    """Largest power-of-two decimation whose Nyquist frequency is above the model's top one."""
    if name not in _MAX_FREQ:
        return 1
    q = 1
    while (cfg.sample_rate / (4 * q) > 1.02 * _MAX_FREQ[name] and cfg.num_samples % (2 * q) == 0
           and q < 256):
        q *= 2
    return q


def _upsample(x, q: int, n: int):
    """Band-limited (periodic) interpolation of ``x`` (length ``n / q``) to length ``n``."""
    if q == 1:
        return x
    z = jnp.fft.rfft(x)
    z = jnp.pad(z, (0, n // 2 + 1 - z.shape[0]))
    return jnp.fft.irfft(z, n) * q


def _ramp_envelope(t, start, dur, ramp):
    """1 inside [start, start+dur], raised-cosine ramps of ``ramp`` s at both ends, 0 outside."""
    rise = jnp.clip((t - start) / ramp, 0.0, 1.0)
    fall = jnp.clip((start + dur - t) / ramp, 0.0, 1.0)
    lin = jnp.minimum(rise, fall)
    return 0.5 - 0.5 * jnp.cos(jnp.pi * lin)


def _starts(key, dur, total):
    """Uniform start times that keep calls of duration ``dur`` (<= total) inside the clip."""
    return jax.random.uniform(key, dur.shape) * jnp.maximum(total - dur, 0.0)


def _whistle(key, t, active, cfg):
    m = active.shape[0]
    k = jax.random.split(key, 9)
    total = cfg.duration
    dur = jnp.minimum(total, jax.random.uniform(k[0], (m,), minval=0.2, maxval=1.2))
    start = _starts(k[1], dur, total)
    f0 = jax.random.uniform(k[2], (m,), minval=3_500.0, maxval=10_000.0)
    f1 = jax.random.uniform(k[3], (m,), minval=3_500.0, maxval=10_000.0)
    wig = jax.random.uniform(k[4], (m,), minval=0.0, maxval=1_500.0)
    cycles = jax.random.uniform(k[5], (m,), minval=0.5, maxval=2.0)
    phi = jax.random.uniform(k[6], (m,), maxval=2 * jnp.pi)
    h2 = jax.random.uniform(k[7], (m,), maxval=0.25)
    amp = jnp.exp(0.3 * jax.random.normal(k[8], (m,)))

    def one(s, d, a, b, w, c, p, h, g):
        tau = t - s
        # f(tau) = a + (b - a) tau / d + w sin(2 pi c tau / d + p); phase = 2 pi int_0^tau f
        ph = 2 * jnp.pi * (a * tau + (b - a) * tau**2 / (2 * d)) - w * d / c * (
            jnp.cos(2 * jnp.pi * c * tau / d + p) - jnp.cos(p))
        s1 = jnp.sin(ph)
        sig = s1 * (1.0 + 2.0 * h * jnp.cos(ph))  # sin(x) + h sin(2x)
        return g * _ramp_envelope(t, s, d, 0.02) * sig

    waves = jax.vmap(one)(start, dur, f0, f1, wig, cycles, phi, h2, amp)
    return jnp.sum(waves * active[:, None], 0), jnp.stack([start, start + dur], -1)


_MAX_CLICKS = 400


def _click_window(cfg: SceneConfig) -> int:
    """Samples rendered around each click: +-7 standard deviations of the widest click."""
    sigma_t = 2.355 / (2 * np.pi * 0.4 * cfg.click_peak_hz[0])
    return 2 * int(np.ceil(7 * sigma_t * cfg.sample_rate))


def _clicks(key, t, active, cfg):
    m = active.shape[0]
    n, sr = t.shape[0], cfg.sample_rate
    k = jax.random.split(key, 7)
    total = cfg.duration
    dur = jnp.minimum(total, jax.random.uniform(k[0], (m,), minval=0.3, maxval=1.5))
    start = _starts(k[1], dur, total)
    ici0 = jax.random.uniform(k[2], (m,), minval=0.008, maxval=0.040)
    ici1 = jax.random.uniform(k[3], (m,), minval=0.004, maxval=0.040)
    peak = jax.random.uniform(k[4], (m,), minval=cfg.click_peak_hz[0],
                              maxval=cfg.click_peak_hz[1])
    jitter = jax.random.normal(k[5], (m, _MAX_CLICKS))
    amp = jnp.exp(0.3 * jax.random.normal(k[6], (m,)))
    half = _click_window(cfg) // 2

    def one(s, d, i0, i1, fp, jit, g, on):
        # the inter-click interval glides linearly from i0 to i1 over the train
        idx = jnp.arange(_MAX_CLICKS)
        frac = jnp.clip(idx / jnp.maximum(d / (0.5 * (i0 + i1)), 1.0), 0.0, 1.0)
        ici = i0 + (i1 - i0) * frac
        times = s + jnp.cumsum(ici) - ici[0]
        valid = (times <= s + d) & (on > 0)
        centre = jnp.round(times * sr).astype(jnp.int32)
        pos = centre[:, None] + jnp.arange(-half, half)[None, :]
        offset = pos / sr - times[:, None]
        sigma_t = 1.0 / (2 * jnp.pi * 0.4 * fp / 2.355)  # -3 dB bandwidth 40 % of the peak
        click = jnp.exp(-0.5 * (offset / sigma_t) ** 2) * jnp.cos(2 * jnp.pi * fp * offset)
        gain = g * jnp.exp(0.2 * jit) * valid
        ok = (pos >= 0) & (pos < n)
        return jnp.where(ok, pos, 0).ravel(), (click * gain[:, None] * ok).ravel()

    pos, val = jax.vmap(one)(start, dur, ici0, ici1, peak, jitter, amp, active)
    wave = jnp.zeros((n,), t.dtype).at[pos.ravel()].add(val.ravel())
    return wave, jnp.stack([start, start + dur], -1)


def _humpback(key, t, active, cfg):
    m = active.shape[0]
    k = jax.random.split(key, 9)
    total = cfg.duration
    dur = jnp.minimum(total, jax.random.uniform(k[0], (m,), minval=0.4, maxval=1.8))
    start = _starts(k[1], dur, total)
    fa = jax.random.uniform(k[2], (m,), minval=120.0, maxval=500.0)
    fb = fa * jnp.exp(jax.random.uniform(k[3], (m,), minval=-0.5, maxval=0.5))
    fb = jnp.clip(fb, 120.0, 500.0)
    arch = jax.random.uniform(k[4], (m,), minval=-0.3, maxval=0.3) * fa
    tilt = jax.random.uniform(k[5], (m,), minval=0.5, maxval=1.5)
    trem = jax.random.uniform(k[6], (m,), minval=0.0, maxval=0.5)
    trem_hz = jax.random.uniform(k[7], (m,), minval=2.0, maxval=8.0)
    amp = jnp.exp(0.3 * jax.random.normal(k[8], (m,)))
    num_harm = 8

    def one(s, d, a, b, r, tl, tr, th, g):
        tau = t - s
        # f(tau) = a + (b - a) tau / d + r sin(pi tau / d)
        ph = 2 * jnp.pi * (a * tau + (b - a) * tau**2 / (2 * d)) + 2 * r * d * (
            1 - jnp.cos(jnp.pi * tau / d))
        fmax = jnp.maximum(a, b) + jnp.abs(r)
        s1, c1 = jnp.sin(ph), jnp.cos(ph)
        # sin(k ph) by the Chebyshev recurrence sin((k+1)x) = 2 cos x sin(kx) - sin((k-1)x)
        prev, cur, sig = jnp.zeros_like(ph), s1, jnp.zeros_like(ph)
        for h in range(1, num_harm + 1):
            keep = (h * fmax < _MAX_FREQ["humpback_unit"]).astype(ph.dtype)
            sig = sig + keep * h ** (-tl) * cur
            prev, cur = cur, 2 * c1 * cur - prev
        env = _ramp_envelope(t, s, d, 0.05) * (
            1 - tr * 0.5 * (1 + jnp.sin(2 * jnp.pi * th * tau)))
        return g * env * sig

    waves = jax.vmap(one)(start, dur, fa, fb, arch, tilt, trem, trem_hz, amp)
    return jnp.sum(waves * active[:, None], 0), jnp.stack([start, start + dur], -1)


def _blue_fin(key, t, active, cfg):
    m = active.shape[0]
    k = jax.random.split(key, 9)
    total = cfg.duration
    fin = jax.random.bernoulli(k[0], 0.5, (m,))
    dur = jnp.where(fin, jax.random.uniform(k[1], (m,), minval=0.6, maxval=1.0),
                    jax.random.uniform(k[2], (m,), minval=1.0, maxval=2.0))
    dur = jnp.minimum(dur, total)
    start = _starts(k[3], dur, total)
    fa = jnp.where(fin, jax.random.uniform(k[4], (m,), minval=22.0, maxval=28.0),
                   jax.random.uniform(k[5], (m,), minval=70.0, maxval=95.0))
    fb = jnp.where(fin, jax.random.uniform(k[6], (m,), minval=15.5, maxval=19.0),
                   jax.random.uniform(k[7], (m,), minval=35.0, maxval=50.0))
    amp = jnp.exp(0.3 * jax.random.normal(k[8], (m,)))

    def one(s, d, a, b, g):
        tau = t - s
        ph = 2 * jnp.pi * (a * tau + (b - a) * tau**2 / (2 * d))
        return g * _ramp_envelope(t, s, d, 0.1) * jnp.sin(ph)

    waves = jax.vmap(one)(start, dur, fa, fb, amp)
    return jnp.sum(waves * active[:, None], 0), jnp.stack([start, start + dur], -1)


_MAX_PULSES = 8


def _nearest_event(t, times, valid):
    """For every sample time, the offset to the nearest valid event time (times ascending)."""
    times = jnp.where(valid, times, jnp.inf)
    idx = jnp.clip(jnp.searchsorted(times, t), 1, times.shape[0] - 1)
    left, right = times[idx - 1], times[idx]
    nearest = jnp.where(jnp.abs(t - left) <= jnp.abs(right - t), left, right)
    return t - nearest


def _minke(key, t, active, cfg):
    m = active.shape[0]
    k = jax.random.split(key, 7)
    total = cfg.duration
    n_pulses = jax.random.randint(k[0], (m,), 3, _MAX_PULSES + 1)
    ipi0 = jax.random.uniform(k[1], (m,), minval=0.15, maxval=0.4)
    ipi1 = jax.random.uniform(k[2], (m,), minval=0.15, maxval=0.4)
    plen = jax.random.uniform(k[3], (m,), minval=0.04, maxval=0.08)
    fc = jax.random.uniform(k[4], (m,), minval=80.0, maxval=250.0)
    amp = jnp.exp(0.3 * jax.random.normal(k[5], (m,)))
    u = jax.random.uniform(k[6], (m,))

    def one(n, i0, i1, pl, f, g, uu):
        idx = jnp.arange(_MAX_PULSES)
        ipi = i0 + (i1 - i0) * idx / jnp.maximum(n - 1, 1)  # speeding up or slowing down
        rel = jnp.cumsum(ipi) - ipi[0]
        valid = idx < n
        span = jnp.max(jnp.where(valid, rel, 0.0)) + pl
        s = uu * jnp.maximum(total - span, 0.0)
        offset = _nearest_event(t, s + rel + pl / 2, valid)
        inside = jnp.abs(offset) <= pl / 2
        hann = 0.5 + 0.5 * jnp.cos(2 * jnp.pi * offset / pl)
        ph = 2 * jnp.pi * f * (offset - 0.15 * offset**2 / pl)  # sweeps down 15 % per pulse
        return g * jnp.where(inside, hann * jnp.sin(ph), 0.0), s, jnp.minimum(s + span, total)

    waves, s, e = jax.vmap(one)(n_pulses, ipi0, ipi1, plen, fc, amp, u)
    return jnp.sum(waves * active[:, None], 0), jnp.stack([s, e], -1)


_RENDERERS = {"beluga_whistle": _whistle, "echolocation": _clicks,
              "humpback_unit": _humpback, "blue_fin": _blue_fin,
              "minke_pulse_train": _minke}


@functools.cache
def _render_fn(name: str, cfg: SceneConfig):
    render = _RENDERERS[name]
    q = _call_decimation(name, cfg)

    def one(key, count):
        t = jnp.arange(cfg.num_samples // q, dtype=jnp.float32) * (q / cfg.sample_rate)
        active = (jnp.arange(cfg.max_calls) < count).astype(jnp.float32)
        wave, spans = render(key, t, active, cfg)
        spans = jnp.where(active[:, None] > 0, spans, -1.0)
        return _upsample(wave, q, cfg.num_samples), spans

    return jax.jit(jax.vmap(one))


def render_calls(key: jax.Array, name: str, counts: jax.typing.ArrayLike,
                 config: SceneConfig = SceneConfig()) -> tuple[jax.Array, jax.Array]:
    """Renders ``counts[i]`` calls of class ``name`` for each of ``len(counts)`` keys.

    Args:
      key: a ``jax.random.key`` array of shape ``(n,)`` (one key per clip).
      name: one of :data:`CALL_CLASSES`.
      counts: calls per clip, ``(n,)`` ints in ``[0, config.max_calls]``.
      config: the :class:`SceneConfig`.

    Returns:
      ``(waves (n, num_samples), spans (n, max_calls, 2))`` with unit-scale amplitudes;
      spans are (start, end) seconds, ``(-1, -1)`` for unused slots.

    Raises:
      ValueError: an unknown class, or counts of the wrong shape or out of range.
    """
    if name not in _RENDERERS:
        raise ValueError(f"render_calls: name must be one of {list(CALL_CLASSES)}, got {name!r}")
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.shape[0] != key.shape[0] or (counts < 0).any() or (
            counts > config.max_calls).any():
        raise ValueError(f"render_calls: counts must be ({key.shape[0]},) ints in [0, "
                         f"{config.max_calls}], got {counts!r}")
    return _render_fn(name, _shape_key(config))(key, jnp.asarray(counts, jnp.int32))


# -- noise models ---------------------------------------------------------------------------


def _parseval_power(z, n):
    """Mean-square value of ``irfft(z, n)``."""
    w = jnp.full(z.shape[-1], 2.0).at[0].set(1.0)
    if n % 2 == 0:
        w = w.at[-1].set(1.0)
    return jnp.sum(w * jnp.abs(z) ** 2, axis=-1) / float(n) ** 2


def _unit(z, n):
    return z / jnp.sqrt(jnp.maximum(_parseval_power(z, n), 1e-30))


def _gaussian_spectrum(key, amp_spectrum):
    """rfft coefficients of Gaussian noise with the given amplitude spectrum."""
    re, im = jax.random.normal(key, (2,) + amp_spectrum.shape)
    return (re + 1j * im) * amp_spectrum / np.sqrt(2.0)


def _poisson_events(key, rate, max_events, n, pareto_alpha=None):
    """An impulse train: Poisson(rate * n) events (at most ``max_events``) at uniform samples."""
    k = jax.random.split(key, 4)
    count = jax.random.poisson(k[0], rate * n)
    pos = jax.random.randint(k[1], (max_events,), 0, n)
    if pareto_alpha is None:
        mag = jnp.exp(0.5 * jax.random.normal(k[2], (max_events,)))
    else:  # heavy-tailed, capped (sensor clipping)
        mag = jnp.minimum(jax.random.pareto(k[2], pareto_alpha, (max_events,)), 100.0)
    sign = jnp.where(jax.random.bernoulli(k[3], 0.5, (max_events,)), 1.0, -1.0)
    val = mag * sign * (jnp.arange(max_events) < count)
    return jnp.zeros((n,), jnp.float32).at[pos].add(val)


_RAIN_RATE = (500.0, 5000.0)  # drops per second
_SHRIMP_RATE = (100.0, 2000.0)  # snaps per second
_FLOW_DECIMATION = 64


def _noise_one(key, cfg: SceneConfig, levels_cfg):
    n, sr = cfg.num_samples, cfg.sample_rate
    f = jnp.asarray(np.fft.rfftfreq(n, 1.0 / sr), jnp.float32)
    t = jnp.arange(n, dtype=jnp.float32) / sr
    k = jax.random.split(key, 24)
    noise_prob, lo, hi, a_lo, a_hi = levels_cfg  # dynamic: no recompilation when they change
    present = jax.random.bernoulli(k[0], noise_prob, (4,))
    levels = 10.0 ** (jax.random.uniform(k[1], (4,), minval=lo, maxval=hi) / 20.0)
    ambient_rms = jnp.exp(jax.random.uniform(k[2], (), minval=a_lo, maxval=a_hi))

    # ambient: Wenz-like 1 / (1 + (f/500)^1.7) power, roll-off below 10 Hz, white floor
    amb_psd = 1.0 / (1.0 + (f / 500.0) ** 1.7) / (1.0 + (10.0 / jnp.maximum(f, 1e-3)) ** 2)
    z_amb = _unit(_gaussian_spectrum(k[3], jnp.sqrt(amb_psd + 1e-4)), n)

    # shipping: blade-rate harmonics and machinery lines as narrow (0.6 Hz) spectral peaks ...
    blade = jax.random.uniform(k[4], (), minval=6.0, maxval=14.0)
    harm = jnp.arange(1, 41, dtype=jnp.float32)
    centres = jnp.concatenate([harm * blade, jax.random.uniform(k[5], (6,), minval=50.0,
                                                                maxval=400.0)])
    amps = jnp.concatenate([harm**-0.7, jnp.ones(6)]) * jnp.exp(
        0.5 * jax.random.normal(k[6], (46,)))
    width, df = 0.6, sr / n
    span = int(np.ceil(3 * width / df))
    near = jnp.round(centres / df).astype(jnp.int32)[:, None] + jnp.arange(-span, span + 1)
    near = jnp.clip(near, 1, f.shape[0] - 2)
    bump = amps[:, None] * jnp.exp(-0.25 * ((near * df - centres[:, None]) / width) ** 2)
    z_lines = jnp.zeros(f.shape, jnp.complex64).at[near.ravel()].add(
        _gaussian_spectrum(k[7], bump).ravel())
    z_lines = _unit(z_lines, n)
    # ... and broadband cavitation peaking at fp, -6 dB/octave above, modulated at blade rate
    fp = jax.random.uniform(k[8], (), minval=50.0, maxval=150.0)
    r = f / fp
    cav = jnp.fft.irfft(_unit(_gaussian_spectrum(k[9], r / (1.0 + r**2)), n), n)
    depth = jax.random.uniform(k[10], (), minval=0.3, maxval=0.9)
    cav = cav * (1.0 + depth * jnp.cos(2 * jnp.pi * blade * t + jax.random.uniform(
        k[11], (), maxval=2 * jnp.pi)))
    cav = cav / jnp.sqrt(jnp.mean(cav**2))

    # rain: Poisson drops ringing bubbles at fb (Lorentzian line) + splash above 1 kHz
    rate = jax.random.uniform(k[12], (), minval=_RAIN_RATE[0], maxval=_RAIN_RATE[1])
    drops = _poisson_events(k[13], rate / sr, int(1.2 * _RAIN_RATE[1] * cfg.duration) + 64, n)
    fb = jax.random.uniform(k[14], (), minval=13_000.0, maxval=17_000.0)
    decay = jax.random.uniform(k[15], (), minval=0.1e-3, maxval=0.4e-3)  # 0.8-3 kHz wide
    bubble = decay / jnp.sqrt(1.0 + (2 * jnp.pi * decay * (f - fb)) ** 2)
    splash = 0.3 * decay / jnp.sqrt(1.0 + (1_000.0 / jnp.maximum(f, 1.0)) ** 2)
    z_rain = _unit(jnp.fft.rfft(drops) * (bubble + splash), n)

    # snapping shrimp: Pareto-amplitude snaps, broadband from ~2 kHz upward
    rate = jax.random.uniform(k[16], (), minval=_SHRIMP_RATE[0], maxval=_SHRIMP_RATE[1])
    alpha = jax.random.uniform(k[17], (), minval=1.5, maxval=2.5)
    snaps = _poisson_events(k[18], rate / sr, int(1.2 * _SHRIMP_RATE[1] * cfg.duration) + 64, n,
                            pareto_alpha=alpha)
    x = f / 2_000.0
    z_shrimp = _unit(jnp.fft.rfft(snaps) * x / jnp.sqrt(1.0 + x**2) / jnp.sqrt(
        1.0 + (f / 60_000.0) ** 2), n)

    # flow noise: steep infrasonic spectrum with 0.5-3 Hz bursts, synthesised at a low rate
    q = _FLOW_DECIMATION
    nl = n // q
    fl = jnp.asarray(np.fft.rfftfreq(nl, q / sr), jnp.float32)
    fc = jax.random.uniform(k[19], (), minval=5.0, maxval=30.0)
    flow_amp = 1.0 / jnp.sqrt(1.0 + (fl / fc) ** 4) / jnp.sqrt(
        1.0 + (1.0 / jnp.maximum(fl, 1e-3)) ** 2)
    flow = jnp.fft.irfft(_gaussian_spectrum(k[20], flow_amp), nl)
    tl = jnp.arange(nl, dtype=jnp.float32) * (q / sr)
    burst = jax.random.uniform(k[21], (), minval=0.5, maxval=3.0)
    flow = flow * (1.0 + 0.8 * jnp.sin(2 * jnp.pi * burst * tl + jax.random.uniform(
        k[22], (), maxval=2 * jnp.pi)))
    z_flow = jnp.pad(jnp.fft.rfft(flow), (0, f.shape[0] - nl // 2 - 1))
    z_flow = _unit(z_flow, n)

    g = present * levels
    z = z_amb + g[0] * 0.7 * z_lines + g[1] * z_rain + g[2] * z_shrimp + g[3] * z_flow
    noise = jnp.fft.irfft(z, n) + g[0] * 0.7 * cav
    return ambient_rms * noise, present


@functools.cache
def _noise_fn(cfg: SceneConfig):
    return jax.jit(jax.vmap(lambda k, lv: _noise_one(k, cfg, lv), in_axes=(0, None)))


def _shape_key(cfg: SceneConfig) -> SceneConfig:
    """``cfg`` with the fields that compiled functions take as arguments set to defaults.

    The renderers depend only on the rate, the clip length, ``max_calls`` and the click
    band; caching compiled functions on this key lets configs that differ in SNR,
    probabilities or levels share them.
    """
    d = SceneConfig()
    return dataclasses.replace(cfg, snr_db=d.snr_db, distractor_prob=d.distractor_prob,
                               distractor_db=d.distractor_db, noise_prob=d.noise_prob,
                               noise_level_db=d.noise_level_db, ambient_rms=d.ambient_rms,
                               call_count_probs=(1.0,) + (0.0,) * (cfg.max_calls - 1))


def render_noise(key: jax.Array, config: SceneConfig = SceneConfig()):
    """Renders one noise clip per key.

    Returns:
      ``(noise (n, num_samples), present (n, 4) bool)`` with ``present`` over
      :data:`NOISE_TYPES` (the ambient floor is always there).

    Raises:
      ValueError: if ``key`` is not a 1-D array of keys.
    """
    if getattr(key, "ndim", None) != 1:
        raise ValueError("render_noise: key must be a 1-D array of jax.random keys, got "
                         f"{getattr(key, 'shape', type(key).__name__)}")
    levels = jnp.asarray([config.noise_prob, *config.noise_level_db,
                          np.log(config.ambient_rms[0]), np.log(config.ambient_rms[1])],
                         jnp.float32)
    return _noise_fn(_shape_key(config))(key, levels)


# -- mixing ---------------------------------------------------------------------------------


def _band_energy(x, lo, hi, sr):
    z = jnp.fft.rfft(x, axis=-1)
    f = jnp.asarray(np.fft.rfftfreq(x.shape[-1], 1.0 / sr), jnp.float32)
    inband = ((f >= lo[:, None]) & (f <= hi[:, None])).astype(jnp.float32)
    return jnp.sum(inband * jnp.abs(z) ** 2, axis=-1)


@functools.cache
def _mix_fn(cfg: SceneConfig):
    bands = np.array([[0.0, 1.0]] + [class_band(c, cfg) for c in CALL_CLASSES], np.float32)

    @jax.jit
    def mix(target, distract, noise, labels, snr_db, dist_db, has_dist):
        lo, hi = jnp.asarray(bands)[labels, 0], jnp.asarray(bands)[labels, 1]
        e_sig = _band_energy(target, lo, hi, cfg.sample_rate)
        e_noise = _band_energy(noise, lo, hi, cfg.sample_rate)
        is_call = labels > 0
        gain = jnp.sqrt(10.0 ** (snr_db / 10.0) * e_noise / jnp.maximum(e_sig, 1e-30))
        target = target * jnp.where(is_call, gain, 0.0)[:, None]
        e_t = jnp.sum(target**2, -1)
        e_d = jnp.sum(distract**2, -1)
        dg = jnp.sqrt(10.0 ** (dist_db / 10.0) * e_t / jnp.maximum(e_d, 1e-30))
        bio = target + distract * jnp.where(has_dist & is_call, dg, 0.0)[:, None]
        return bio

    return mix


def simulate_scenes(
    key: jax.Array,
    num_clips: int | None = None,
    *,
    labels: jax.typing.ArrayLike | None = None,
    start_index: int = 0,
    config: SceneConfig = SceneConfig(),
) -> Scene:
    """Simulates a batch of labelled clips with their biological and noise components.

    Args:
      key: a ``jax.random.key``; clip ``i`` uses ``fold_in(key, start_index + i)``.
      num_clips: number of clips; labels then cycle through the classes
        (``(start_index + i) % 6``), a balanced set.
      labels: class indices (into :data:`CLASSES`) instead of ``num_clips``.
      start_index: index of the first clip (generate a large set in chunks).
      config: the :class:`SceneConfig`.

    Returns:
      A :class:`Scene`.

    Raises:
      ValueError: neither or both of ``num_clips``/``labels``, labels out of range.
    """
    fn = "simulate_scenes"
    if (num_clips is None) == (labels is None):
        raise ValueError(f"{fn}: give exactly one of num_clips and labels")
    if labels is None:
        n = V.positive_int(fn, "num_clips", num_clips)
        labels = (start_index + np.arange(n)) % len(CLASSES)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu" or (
            labels.min() < 0) or labels.max() >= len(CLASSES):
        raise ValueError(f"{fn}: labels must be a non-empty 1-D int array with values in "
                         f"[0, {len(CLASSES) - 1}], got {labels!r}")
    if isinstance(start_index, bool) or not isinstance(start_index, int | np.integer) or (
            start_index < 0):
        raise ValueError(f"{fn}: start_index must be an int >= 0, got {start_index!r}")
    n = labels.size
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
        jnp.arange(start_index, start_index + n))
    sub = jax.vmap(lambda k: jax.random.split(k, 8))(keys)
    cfg = config
    # per-clip scalars (host side: they route clips to the per-class renderers)
    counts = np.asarray(jax.vmap(lambda k: jax.random.choice(
        k, cfg.max_calls, p=jnp.asarray(cfg.call_count_probs)))(sub[:, 0])) + 1
    counts = np.where(labels > 0, counts, 0)
    has_dist = np.asarray(jax.vmap(lambda k: jax.random.bernoulli(
        k, cfg.distractor_prob))(sub[:, 1])) & (labels > 0)
    offs = np.asarray(jax.vmap(lambda k: jax.random.randint(
        k, (), 1, len(CALL_CLASSES)))(sub[:, 2]))
    dist_cls = np.where(has_dist, (labels - 1 + offs) % len(CALL_CLASSES) + 1, -1)
    snr = jax.vmap(lambda k: jax.random.uniform(k, (), minval=cfg.snr_db[0],
                                                maxval=cfg.snr_db[1]))(sub[:, 3])
    dist_db = jax.vmap(lambda k: jax.random.uniform(k, (), minval=cfg.distractor_db[0],
                                                    maxval=cfg.distractor_db[1]))(sub[:, 4])
    noise, present = render_noise(sub[:, 5], cfg)
    target = np.zeros((n, cfg.num_samples), np.float32)
    distract = np.zeros((n, cfg.num_samples), np.float32)
    spans = np.full((n, cfg.max_calls, 2), -1.0, np.float32)
    target, distract = jnp.asarray(target), jnp.asarray(distract)
    for c, name in enumerate(CALL_CLASSES, start=1):
        for which, keys_col, need, n_calls in ((0, 6, labels == c, counts),
                                               (1, 7, dist_cls == c, np.ones_like(counts))):
            idx = np.flatnonzero(need)
            if not idx.size:
                continue
            # pad the group to a power of two so few batch shapes are ever compiled
            size = max(4, 1 << int(np.ceil(np.log2(idx.size))))
            padded = np.concatenate([idx, np.full(size - idx.size, idx[0])])
            w, s = render_calls(sub[padded, keys_col], name, n_calls[padded], cfg)
            if which == 0:
                target = target.at[idx].set(w[: idx.size])
                spans[idx] = np.asarray(s[: idx.size])
            else:
                distract = distract.at[idx].set(w[: idx.size])
    bio = _mix_fn(_shape_key(cfg))(target, distract, noise, jnp.asarray(labels, jnp.int32), snr,
                                   dist_db, jnp.asarray(has_dist))
    return Scene(audio=bio + noise, bio=bio, noise=noise,
                 labels=jnp.asarray(labels, jnp.int32), snr_db=snr,
                 num_calls=jnp.asarray(counts, jnp.int32),
                 distractor=jnp.asarray(dist_cls, jnp.int32), noise_types=present,
                 call_spans=jnp.asarray(spans))
