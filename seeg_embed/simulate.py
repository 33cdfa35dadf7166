"""A simulator of multi-subject, multi-region basal ganglia–thalamic LFP, vectorized in JAX.

The real recordings of the paper are not public, so experiments run on a generative model
whose assumptions are written down here. Each subject has its own electrode count, covered
regions and MNI-like contact coordinates; each channel's signal is a sum of

* an **aperiodic** component with power spectral density
  ``P_ap(f) = p10 · (k + 10^χ) / (k + f^χ)`` (``P_ap(10 Hz) = p10``; knee ``k = f_knee^χ``),
  drawn in the frequency domain as ``X(f) = sqrt(N fs P(f) / 2) · Z(f)`` with ``Z`` complex
  standard normal, so ``irfft(X)`` has one-sided PSD ``P``;
* **narrow-band rhythms** ``j`` (pallidal theta, thalamic alpha, tremor, gamma) with Gaussian
  spectral peaks ``P_j(f) = a_j² · N(f; f_j, bw_j²)`` (so ``a_j`` is the rhythm's RMS), each a
  mix ``ρ_j e^{-i2πfτ_j} Z_shared(f) + sqrt(1-ρ_j²) Z_private(f)`` of a latent drive shared by
  the subject's regions (delayed by a region-specific lag ``τ_j``) and private noise;
* **beta bursts**: Hann-windowed oscillations ``a · sin²(πt / 2d) · cos(2πft + φ)`` whose
  durations ``d`` (time above half amplitude) are log-normal (median 0.22 s, clipped to
  [0.05, 1] s; amplitude grows with duration), at Poisson onsets. A subject-level train of
  *shared* bursts reaches every channel with weight ``ρ_β`` and lag ``τ_β`` (cortico-basal
  ganglia–thalamic beta), plus each channel's *private* bursts at its region's frequency;
* **state effects**: movement halves the beta burst rate, shrinks burst amplitude by a
  quarter, suppresses rest tremor and raises gamma (region-specific gains);
* **volume conduction** ``x ← M x`` with ``M_ij = κ exp(-|r_i - r_j| / λ)`` over true
  contact positions (``M_ii = 1``);
* **recording effects**: per-subject and per-channel gains, per-session gain offsets and a
  slow sinusoidal gain drift over the session, per-session beta peak shifts, a DC offset,
  line noise at 50 or 60 Hz with harmonics, electrode "pops" (steps with exponential decay),
  movement artefacts shared across a subject's contacts (movement state only), white
  amplifier noise.

Coordinates: a contact's true position is its region's MNI-like centre (mirrored to its
hemisphere) plus a subject-specific offset of that nucleus (``anatomy_sd_mm`` per axis) plus
its position inside the nucleus (region-specific spread). Reported positions add a
localization error ``σ · ε`` with ``ε`` fixed per contact (:meth:`Cohort.coordinates`), so a
sweep of ``σ`` moves every contact along the same direction.

Everything is generated from a ``jax.random.key``: block ``b`` of subject ``s`` in session
``k`` uses ``fold_in(split(fold_in(fold_in(key, s), k))[1], b)``, so a session generated in
one call or in several chunks is identical. Blocks are independent draws (the record is
continuous within a block); :func:`simulate_session` concatenates them.

The region signatures in :func:`default_regions` are illustrative and physiology-inspired
(STN high beta and finely-tuned gamma in movement; GPi theta and lower beta; GPe flatter
spectrum; thalamic alpha; VIM tremor in tremor patients; white matter weak and steep), not
fitted to data.

References:
  Javadzadeh, Soroushmojdehi, Mousavi, Asadi, Abe, Sanger. "Functional embeddings enable
  aggregation of multi-area SEEG recordings over subjects and sessions."
  Tinkhauser et al. (2017), beta burst durations; Donoghue et al. (2020), aperiodic
  ``1/f^χ`` fits with a knee.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "REGIONS",
    "RHYTHMS",
    "STATES",
    "Cohort",
    "RegionTable",
    "SimConfig",
    "default_regions",
    "iter_session",
    "make_cohort",
    "simulate_blocks",
    "simulate_session",
]

REGIONS = ("GPi", "GPe", "STN", "VA", "VL", "VIM", "WM")
RHYTHMS = ("theta", "alpha", "tremor", "gamma")
STATES = ("rest", "move")
_WM = REGIONS.index("WM")
_TREMOR = RHYTHMS.index("tremor")


class RegionTable(NamedTuple):
    """Per-region signature (arrays with a leading axis over :data:`REGIONS`).

    Amplitudes are in µV, frequencies in Hz, lags in ms, positions in mm (left hemisphere,
    MNI-like). ``rhythm_*`` arrays are ``[R, J]`` over :data:`RHYTHMS`; ``rhythm_move`` is
    the RMS multiplier of each rhythm in the movement state.
    """

    center_mm: np.ndarray
    spread_mm: np.ndarray
    chi: np.ndarray
    p10: np.ndarray
    beta_offset_hz: np.ndarray
    beta_amp: np.ndarray
    beta_rate: np.ndarray
    beta_coupling: np.ndarray
    beta_lag_ms: np.ndarray
    rhythm_rms: np.ndarray
    rhythm_hz: np.ndarray
    rhythm_bw: np.ndarray
    rhythm_coupling: np.ndarray
    rhythm_lag_ms: np.ndarray
    rhythm_move: np.ndarray


def default_regions() -> RegionTable:
    """The default signatures of GPi, GPe, STN, VA, VL, VIM and white matter."""
    f = lambda rows: np.asarray(rows, np.float32)  # noqa: E731
    #            GPi    GPe    STN    VA     VL     VIM    WM
    return RegionTable(
        center_mm=f([[-19, -5, -3], [-24, -4, 0], [-12, -13, -5], [-10, -5, 7],
                     [-13, -11, 6], [-14, -17, 4], [-18, -10, 7]]),
        spread_mm=f([[1.8, 3.0, 1.8], [1.8, 3.5, 2.2], [1.3, 1.8, 1.0], [1.3, 1.5, 1.3],
                     [1.3, 1.8, 1.3], [1.3, 1.3, 1.3], [3.0, 4.0, 3.0]]),
        chi=f([1.10, 0.95, 1.30, 1.55, 1.65, 1.75, 2.00]),
        p10=f([1.0, 1.2, 1.0, 0.8, 0.8, 0.7, 0.3]),
        beta_offset_hz=f([-2.0, -4.0, 2.0, -1.0, 0.0, 0.0, 0.0]),
        beta_amp=f([9.0, 7.0, 12.0, 4.0, 3.5, 3.0, 1.5]),
        beta_rate=f([1.2, 1.0, 1.5, 0.8, 0.8, 0.6, 0.5]),
        beta_coupling=f([0.6, 0.5, 0.8, 0.5, 0.4, 0.3, 0.3]),
        beta_lag_ms=f([6.0, -4.0, 0.0, 12.0, 14.0, 16.0, 0.0]),
        #                theta alpha tremor gamma
        rhythm_rms=f([[3.0, 0.8, 0.5, 0.3],    # GPi
                      [1.2, 0.8, 0.3, 0.6],    # GPe
                      [1.0, 0.5, 1.0, 0.4],    # STN
                      [1.0, 2.5, 0.5, 0.2],    # VA
                      [0.8, 2.0, 1.5, 0.4],    # VL
                      [0.6, 1.2, 3.5, 0.3],    # VIM
                      [0.4, 0.4, 0.4, 0.1]]),  # WM
        rhythm_hz=f([[6.0, 10.0, 5.0, 70.0], [6.0, 10.0, 5.0, 85.0], [6.5, 10.0, 5.0, 75.0],
                     [6.0, 9.5, 5.0, 80.0], [6.0, 11.0, 5.0, 90.0], [6.0, 10.5, 5.0, 85.0],
                     [6.0, 10.0, 5.0, 80.0]]),
        rhythm_bw=f([[1.0, 1.2, 0.4, 4.0], [1.0, 1.2, 0.4, 12.0], [1.0, 1.2, 0.4, 4.0],
                     [1.0, 1.2, 0.4, 10.0], [1.0, 1.2, 0.4, 15.0], [1.0, 1.2, 0.4, 10.0],
                     [1.0, 1.2, 0.4, 10.0]]),
        rhythm_coupling=f([[0.6, 0.3, 0.5, 0.3], [0.5, 0.3, 0.4, 0.3], [0.5, 0.3, 0.6, 0.4],
                           [0.4, 0.6, 0.5, 0.3], [0.4, 0.6, 0.7, 0.4], [0.3, 0.5, 0.8, 0.3],
                           [0.3, 0.3, 0.3, 0.2]]),
        rhythm_lag_ms=f([[0, 8, 15, 0], [-5, 8, 15, 0], [-3, 8, 12, 0], [10, 0, 5, 0],
                         [12, 0, 3, 0], [12, 0, 0, 0], [0, 0, 0, 0]]),
        rhythm_move=f([[0.85, 0.8, 0.3, 3.0], [0.85, 0.8, 0.3, 2.0], [0.85, 0.8, 0.3, 4.0],
                       [0.85, 0.8, 0.3, 2.0], [0.85, 0.8, 0.3, 3.0], [0.85, 0.8, 0.3, 2.5],
                       [0.85, 0.8, 0.3, 1.5]]),
    )


class SimConfig(NamedTuple):
    """Static settings of a simulated cohort (hashable: a ``jit`` static argument).

    Attributes:
      n_subjects: subjects in the cohort.
      min_channels / max_channels: channel count per subject, uniform in this range;
        arrays are padded to ``max_channels``.
      min_regions / max_regions: grey-matter regions covered per subject (of 6).
      wm_fraction: probability that a channel beyond the first ``k`` lies in white matter.
      fs: sampling rate (Hz).
      block_s: seconds per independently drawn block; ``pad_s`` extra each side is drawn
        and cropped (room for lags and burst tails).
      anatomy_sd_mm: per-axis SD of a subject's offset of each nucleus in MNI space.
      volume_conduction / vc_length_mm: ``κ`` and ``λ`` of the mixing matrix.
      tremor_prob: fraction of subjects with rest tremor.
      beta_hz / beta_hz_sd: mean and across-subject SD of the beta peak.
      shared_beta_rate: rate (1/s, rest) of the subject's shared beta bursts.
      burst_median_s / burst_sigma: log-normal burst duration (time above half amplitude).
      beta_move_rate / beta_move_amp: movement multipliers of burst rate and amplitude.
      subject_gain_sd / channel_gain_sd: log-normal SDs of gains.
      session_gain_sd / session_beta_shift_hz: per-session gain offset and beta shift SDs.
      drift_amp / drift_period_s: slow gain drift ``exp(a sin(2πt/T + φ))`` over a session.
      dc_uv: SD of a per-session DC offset.
      line_uv: median line-noise amplitude; ``line_60_prob`` chance a subject's mains is 60 Hz.
      pop_rate_hz / pop_uv: median electrode-pop rate per channel and amplitude.
      move_artifact_rate_hz / move_artifact_uv: movement artefacts (movement state only).
      white_uv: white amplifier noise SD.
      max_bursts / max_shared_bursts / max_pops / max_move_artifacts: per-block capacity of
        each event list (counts beyond it are truncated; the defaults are > mean + 4 SD).
    """

    n_subjects: int = 20
    min_channels: int = 6
    max_channels: int = 16
    min_regions: int = 2
    max_regions: int = 6
    wm_fraction: float = 0.15
    fs: float = 1000.0
    block_s: float = 10.0
    pad_s: float = 0.25
    anatomy_sd_mm: float = 1.5
    volume_conduction: float = 0.35
    vc_length_mm: float = 2.5
    tremor_prob: float = 0.5
    beta_hz: float = 20.0
    beta_hz_sd: float = 2.0
    shared_beta_rate: float = 1.0
    burst_median_s: float = 0.22
    burst_sigma: float = 0.55
    beta_move_rate: float = 0.5
    beta_move_amp: float = 0.75
    subject_gain_sd: float = 0.3
    channel_gain_sd: float = 0.25
    session_gain_sd: float = 0.1
    session_beta_shift_hz: float = 0.4
    drift_amp: float = 0.15
    drift_period_s: float = 1800.0
    dc_uv: float = 20.0
    line_uv: float = 2.0
    line_60_prob: float = 0.5
    pop_rate_hz: float = 0.01
    pop_uv: float = 150.0
    move_artifact_rate_hz: float = 0.15
    move_artifact_uv: float = 40.0
    white_uv: float = 0.5
    max_bursts: int = 0
    max_shared_bursts: int = 0
    max_pops: int = 4
    max_move_artifacts: int = 5

    def validate(self, where: str = "SimConfig") -> None:
        ints = ("n_subjects", "min_channels", "max_channels", "min_regions", "max_regions")
        for name in ints:
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")
        if self.min_channels > self.max_channels:
            raise ValueError(f"{where}: min_channels ({self.min_channels}) > max_channels "
                             f"({self.max_channels})")
        if not 1 <= self.min_regions <= self.max_regions <= 6:
            raise ValueError(f"{where}: need 1 <= min_regions <= max_regions <= 6, got "
                             f"{self.min_regions}, {self.max_regions}")
        if self.min_channels < 2:
            raise ValueError(f"{where}: min_channels must be >= 2 (a subject needs two "
                             f"channels to compare), got {self.min_channels}")
        if not self.fs >= 200:
            raise ValueError(f"{where}: fs must be >= 200 Hz, got {self.fs!r}")
        if not self.block_s * self.fs >= 64:
            raise ValueError(f"{where}: block_s * fs must be >= 64 samples, got "
                             f"{self.block_s * self.fs}")
        if not self.pad_s >= 0.05:
            raise ValueError(f"{where}: pad_s must be >= 0.05 s (room for lags), got "
                             f"{self.pad_s!r}")
        for name in ("wm_fraction", "tremor_prob", "line_60_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}: {name} must be in [0, 1], got {v!r}")
        if not 0.0 <= self.volume_conduction < 1.0:
            raise ValueError(f"{where}: volume_conduction must be in [0, 1), got "
                             f"{self.volume_conduction!r}")

    @property
    def block_n(self) -> int:
        return int(round(self.block_s * self.fs))

    @property
    def pad_n(self) -> int:
        return int(round(self.pad_s * self.fs))

    @property
    def burst_window_n(self) -> int:
        return int(round(2 * 1.0 * self.fs))  # Hann support 2 d, d <= 1 s

    def _capacity(self, rate: float, given: int) -> int:
        if given:
            return int(given)
        mean = rate * (self.block_s + 2 * self.pad_s + 2.0)
        return int(math.ceil(mean + 4 * math.sqrt(mean) + 2))

    @property
    def burst_capacity(self) -> int:
        return self._capacity(2.0, self.max_bursts)

    @property
    def shared_burst_capacity(self) -> int:
        return self._capacity(1.8 * self.shared_beta_rate, self.max_shared_bursts)


class Cohort(NamedTuple):
    """Subjects' electrodes and per-channel parameters, padded to ``max_channels``.

    Leading axes ``[S, C]`` (subject, channel); padded channels have ``mask = False`` and
    ``region = -1``. Build with :func:`make_cohort`.
    """

    n_channels: jax.Array   # [S] int32
    mask: jax.Array         # [S, C] bool
    region: jax.Array       # [S, C] int32, index into REGIONS, -1 for padding
    hemisphere: jax.Array   # [S, C] +1 right / -1 left
    true_xyz: jax.Array     # [S, C, 3] mm
    loc_noise: jax.Array    # [S, C, 3] standard normal localization direction
    chi: jax.Array
    p10: jax.Array
    beta_amp: jax.Array
    beta_hz: jax.Array       # [S, C] private-burst frequency (session shift added later)
    beta_rate: jax.Array
    beta_coupling: jax.Array
    beta_lag_s: jax.Array
    rhythm_rms: jax.Array    # [S, C, J]
    rhythm_hz: jax.Array
    rhythm_bw: jax.Array
    rhythm_coupling: jax.Array
    rhythm_lag_s: jax.Array
    rhythm_move: jax.Array
    gain: jax.Array          # [S, C]
    line_amp: jax.Array      # [S, C]
    pop_rate: jax.Array      # [S, C]
    move_weight: jax.Array   # [S, C]
    mixing: jax.Array        # [S, C, C]
    subject_beta_hz: jax.Array   # [S] shared-burst frequency
    shared_rate: jax.Array       # [S]
    line_hz: jax.Array           # [S]
    tremor: jax.Array            # [S] bool
    drift_phase: jax.Array       # [S]
    drift_period_s: jax.Array    # [S]

    @property
    def n_subjects(self) -> int:
        return int(self.mask.shape[0])

    def coordinates(self, error_mm: float = 0.0) -> jax.Array:
        """Reported contact coordinates ``[S, C, 3]`` with per-axis localization error SD
        ``error_mm`` (the same error direction for every ``error_mm``).

        Raises:
          ValueError: if ``error_mm`` is negative or not finite.
        """
        if not (np.isfinite(error_mm) and error_mm >= 0):
            raise ValueError(f"Cohort.coordinates: error_mm must be a finite number >= 0, "
                             f"got {error_mm!r}")
        return self.true_xyz + float(error_mm) * self.loc_noise

    def channel_names(self, subject: int) -> list[str]:
        """Clinical-style names (``"STN-L2"``) of a subject's real channels."""
        regions = np.asarray(self.region[subject])
        hemis = np.asarray(self.hemisphere[subject])
        names, counts = [], {}
        for r, h in zip(regions[: int(self.n_channels[subject])],
                        hemis[: int(self.n_channels[subject])], strict=True):
            tag = f"{REGIONS[r]}-{'R' if h > 0 else 'L'}"
            counts[tag] = counts.get(tag, 0) + 1
            names.append(f"{tag}{counts[tag]}")
        return names


def _draw(key: jax.Array, normal: dict[str, tuple], uniform: dict[str, tuple]) -> dict:
    """All of a function's random numbers from one normal and one uniform draw.

    (XLA compiles each ``jax.random`` call separately, so dozens of small draws make
    compilation slow; slicing two large draws keeps it to two.)
    """
    if set(normal) & set(uniform):
        raise ValueError(f"_draw: names in both draws: {sorted(set(normal) & set(uniform))}")
    kn, ku = jax.random.split(key)
    out = {}
    for k, spec, sampler in ((kn, normal, jax.random.normal), (ku, uniform, jax.random.uniform)):
        sizes = [math.prod(shape) for shape in spec.values()]
        flat = sampler(k, (max(sum(sizes), 1),))
        offset = 0
        for (name, shape), size in zip(spec.items(), sizes, strict=True):
            out[name] = flat[offset:offset + size].reshape(shape)
            offset += size
    return out


def _subject(key: jax.Array, config: SimConfig, t: RegionTable) -> dict:
    """One subject's electrodes and parameters (vmapped over subjects)."""
    C, J, R = config.max_channels, len(RHYTHMS), len(REGIONS)
    z = _draw(key, normal=dict(
        anat=(R, 3), within=(C, 3), loc=(C, 3), beta=(), region_gain=(R,), rhythm_shift=(J,),
        chi_s=(), chi=(C,), p10=(C,), beta_amp=(C,), beta_hz=(C,), beta_lag=(C,),
        rms=(C, J), hz=(C, J), tremor_hz=(C,), lag=(C, J), gain_s=(), gain=(C,), line=(C,),
        pop=(C,), shared_rate=()),
        uniform=dict(n_ch=(), k_reg=(), perm=(6,), pick=(C,), wm=(C,), hemi=(C,), tremor=(),
                     tremor_base=(), beta_coupling=(C,), coupling=(C, J), move_weight=(C,),
                     line_60=(), drift_phase=(), drift_period=()))
    n_ch = config.min_channels + jnp.floor(
        z["n_ch"] * (config.max_channels - config.min_channels + 1)).astype(jnp.int32)
    k_reg = config.min_regions + jnp.floor(
        z["k_reg"] * (config.max_regions - config.min_regions + 1)).astype(jnp.int32)
    perm = jnp.argsort(z["perm"])
    c = jnp.arange(C)
    pick = perm[jnp.floor(z["pick"] * k_reg).astype(jnp.int32)]
    region = jnp.where(c < k_reg, perm[jnp.minimum(c, 5)],
                       jnp.where(z["wm"] < config.wm_fraction, _WM, pick))
    mask = c < n_ch
    region = jnp.where(mask, region, -1)
    r = jnp.maximum(region, 0)
    hemi = jnp.where(z["hemi"] < 0.5, 1.0, -1.0)
    flip = jnp.stack([hemi, jnp.ones(C), jnp.ones(C)], axis=-1)
    anat = config.anatomy_sd_mm * z["anat"]
    true_xyz = (t.center_mm[r] + anat[r] + z["within"] * t.spread_mm[r]) * flip

    u = lambda name, lo, hi: lo + (hi - lo) * z[name]  # noqa: E731
    subj_beta = jnp.clip(config.beta_hz + config.beta_hz_sd * z["beta"], 14.0, 27.0)
    region_gain = jnp.exp(0.2 * z["region_gain"])
    tremor = z["tremor"] < config.tremor_prob
    rhythm_shift = z["rhythm_shift"] * jnp.asarray([0.5, 0.7, 0.0, 4.0])
    chi = t.chi[r] + 0.1 * z["chi_s"] + 0.08 * z["chi"]
    p10 = t.p10[r] * jnp.exp(0.2 * z["p10"])
    beta_amp = t.beta_amp[r] * region_gain[r] * jnp.exp(0.25 * z["beta_amp"])
    beta_hz = subj_beta + t.beta_offset_hz[r] + 0.7 * z["beta_hz"]
    beta_coupling = jnp.clip(t.beta_coupling[r] * u("beta_coupling", 0.7, 1.1), 0.0, 0.95)
    beta_lag_s = (t.beta_lag_ms[r] + 1.5 * z["beta_lag"]) / 1000.0
    rms = t.rhythm_rms[r] * jnp.exp(0.25 * z["rms"])
    rms = rms.at[:, _TREMOR].multiply(jnp.where(tremor, 1.0, 0.15))
    hz = t.rhythm_hz[r] + rhythm_shift + 0.3 * z["hz"]
    hz = hz.at[:, _TREMOR].set(u("tremor_base", 4.0, 6.0) + 0.1 * z["tremor_hz"])
    coupling = jnp.clip(t.rhythm_coupling[r] * u("coupling", 0.7, 1.1), 0.0, 0.95)
    lag = (t.rhythm_lag_ms[r] + 1.0 * z["lag"]) / 1000.0
    gain = jnp.exp(config.subject_gain_sd * z["gain_s"] + config.channel_gain_sd * z["gain"])
    line_amp = config.line_uv * jnp.exp(0.8 * z["line"])
    pop_rate = config.pop_rate_hz * jnp.exp(1.0 * z["pop"])
    d = jnp.linalg.norm(true_xyz[:, None] - true_xyz[None] + 1e-9, axis=-1)
    both = mask[:, None] & mask[None]
    mixing = jnp.where(both, config.volume_conduction * jnp.exp(-d / config.vc_length_mm), 0.0)
    mixing = mixing * (1 - jnp.eye(C)) + jnp.eye(C)
    zero = lambda x: jnp.where(mask.reshape((C,) + (1,) * (x.ndim - 1)), x, 0)  # noqa: E731
    return dict(
        n_channels=n_ch, mask=mask, region=region.astype(jnp.int32),
        hemisphere=zero(hemi), true_xyz=zero(true_xyz), loc_noise=zero(z["loc"]),
        chi=zero(chi), p10=zero(p10), beta_amp=zero(beta_amp), beta_hz=zero(beta_hz),
        beta_rate=zero(t.beta_rate[r]), beta_coupling=zero(beta_coupling),
        beta_lag_s=zero(beta_lag_s), rhythm_rms=zero(rms), rhythm_hz=zero(hz),
        rhythm_bw=zero(t.rhythm_bw[r]), rhythm_coupling=zero(coupling),
        rhythm_lag_s=zero(lag), rhythm_move=zero(t.rhythm_move[r]), gain=zero(gain),
        line_amp=zero(line_amp), pop_rate=zero(pop_rate),
        move_weight=zero(u("move_weight", 0.2, 1.0)), mixing=mixing, subject_beta_hz=subj_beta,
        shared_rate=config.shared_beta_rate * jnp.exp(0.2 * z["shared_rate"]),
        line_hz=jnp.where(z["line_60"] < config.line_60_prob, 60.0, 50.0),
        tremor=tremor, drift_phase=u("drift_phase", 0.0, 2 * math.pi),
        drift_period_s=config.drift_period_s * u("drift_period", 0.6, 1.4),
    )


def make_cohort(key: jax.Array, config: SimConfig | None = None,
                regions: RegionTable | None = None) -> Cohort:
    """Draws a cohort of ``config.n_subjects`` subjects.

    Args:
      key: a ``jax.random.key``.
      config: :class:`SimConfig` (default ``SimConfig()``).
      regions: region signatures (default :func:`default_regions`).

    Returns:
      :class:`Cohort`.

    Raises:
      TypeError: if ``key`` is not a typed JAX key or ``config`` not a :class:`SimConfig`.
      ValueError: for an invalid config.
    """
    _check_key(key, "make_cohort")
    config = SimConfig() if config is None else config
    if not isinstance(config, SimConfig):
        raise TypeError(f"make_cohort: config must be a SimConfig, got {type(config).__name__}")
    config.validate("make_cohort")
    table = regions if regions is not None else default_regions()
    table = RegionTable(*(jnp.asarray(x) for x in table))
    keys = jax.random.split(key, config.n_subjects)
    fields = jax.jit(jax.vmap(lambda k: _subject(k, config, table)))(keys)
    return Cohort(**fields)


def _check_key(key, where: str) -> None:
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
            and key.shape == ()):
        raise TypeError(f"{where}: key must be a scalar jax.random.key(...), got "
                        f"{getattr(key, 'dtype', type(key).__name__)} with shape "
                        f"{getattr(key, 'shape', None)}")


# -- one block -------------------------------------------------------------------------

def _scatter(length: int, onsets: jax.Array, waves: jax.Array) -> jax.Array:
    """Adds ``waves [K, L]`` into a zero signal of ``length`` starting at ``onsets [K]``."""
    idx = onsets[:, None] + jnp.arange(waves.shape[1])[None]
    idx = jnp.where((idx >= 0) & (idx < length), idx, length)  # out of range: dropped
    return jnp.zeros(length, waves.dtype).at[idx].add(waves, mode="drop")


def _arrivals(u: jax.Array, rate: jax.Array, start: float, stop: float, fs: float):
    """Onsets (samples) and presence of a Poisson process on ``[start, stop)`` samples, from
    uniforms ``u [K]`` (exponential inter-arrival times; the capacity ``K`` caps the count)."""
    gaps = -jnp.log(jnp.maximum(u, 1e-12)) / jnp.maximum(rate, 1e-9) * fs
    onsets = start + jnp.cumsum(gaps)
    present = onsets < stop
    return jnp.where(present, onsets, stop).astype(jnp.int32), present


def _bursts(u_arrival, u_phase, z_dur, z_amp, z_freq, length, rate, freq, amp,
            config: SimConfig):
    """A train of Hann-windowed beta bursts of log-normal durations (time domain)."""
    fs, L = config.fs, config.burst_window_n
    onsets, present = _arrivals(u_arrival, rate, -L, length, fs)
    dur = jnp.clip(config.burst_median_s * jnp.exp(config.burst_sigma * z_dur), 0.05, 1.0)
    a = amp * (dur / config.burst_median_s) ** 0.3 * jnp.exp(0.25 * z_amp)
    f = freq + 0.5 * z_freq
    tt = jnp.arange(L) / fs
    support = 2.0 * dur[:, None]
    env = jnp.where(tt[None] < support, jnp.sin(jnp.pi * tt[None] / support) ** 2, 0.0)
    waves = (a * present)[:, None] * env * jnp.cos(2 * jnp.pi * f[:, None] * tt[None]
                                                   + 2 * jnp.pi * u_phase[:, None])
    return _scatter(length, onsets, waves)


def _block(key, p: dict, state, session_gain, session_dc, beta_shift, t_center,
           config: SimConfig):
    """One block ``[C, block_n]`` of one subject (``p`` holds that subject's fields)."""
    fs, n, pad = config.fs, config.block_n, config.pad_n
    N = n + 2 * pad
    C, J = p["mask"].shape[0], len(RHYTHMS)
    Ks, Kp = config.shared_burst_capacity, config.burst_capacity
    mp, mm = config.max_pops, config.max_move_artifacts
    move = (state == 1)
    freqs = jnp.fft.rfftfreq(N, 1.0 / fs)
    F = freqs.shape[0]
    z = _draw(key, normal=dict(
        ap=(2, C, F), shared=(2, J, F), s_dur=(Ks,), s_amp=(Ks,),
        s_freq=(Ks,), p_dur=(C, Kp), p_amp=(C, Kp), p_freq=(C, Kp), pop_amp=(C, mp),
        move_amp=(mm,), white=(C, N)),
        uniform=dict(s_arr=(Ks,), s_phase=(Ks,), p_arr=(C, Kp), p_phase=(C, Kp),
                     line=(C, 3), pop_arr=(C, mp), pop_sign=(C, mp), pop_tau=(C, mp),
                     move_arr=(mm,), move_dur=(mm,), move_sign=(mm,)))
    cplx = lambda a: (a[0] + 1j * a[1]) / math.sqrt(2.0)  # noqa: E731
    scale = N * fs / 2.0

    # aperiodic: P(f) = p10 (k + 10^chi) / (k + f^chi), knee k = 1
    chi = p["chi"][:, None]
    f_safe = jnp.maximum(freqs, 1e-6)[None]
    p_ap = p["p10"][:, None] * (1.0 + 10.0 ** chi) / (1.0 + f_safe ** chi)
    p_ap = jnp.where(freqs[None] > 0, p_ap, 0.0)
    # narrow-band rhythms: shared drive (lagged) + private noise. The private parts of the
    # aperiodic component and of every rhythm are independent complex Gaussians, so their sum
    # is one Gaussian with the summed PSD: one draw per channel instead of J + 1.
    rms = p["rhythm_rms"] * jnp.where(move, p["rhythm_move"], 1.0)                 # [C, J]
    bw = jnp.maximum(p["rhythm_bw"], 1e-3)
    dens = jnp.exp(-0.5 * ((freqs[None, None] - p["rhythm_hz"][..., None]) / bw[..., None]) ** 2
                   ) / (math.sqrt(2 * math.pi) * bw[..., None])                   # [C, J, F]
    p_rhythm = dens * (rms ** 2)[..., None]
    rho = p["rhythm_coupling"][..., None]
    p_private = p_ap + jnp.sum((1 - rho ** 2) * p_rhythm, axis=1)
    X = jnp.sqrt(scale * p_private) * cplx(z["ap"])
    shift = jnp.exp(-2j * jnp.pi * freqs[None, None] * p["rhythm_lag_s"][..., None])
    X = X + jnp.sum(jnp.sqrt(scale * p_rhythm) * rho * shift * cplx(z["shared"])[None], axis=1)
    # shared beta bursts, delayed per channel in the frequency domain
    rate_mult = jnp.where(move, config.beta_move_rate, 1.0)
    amp_mult = jnp.where(move, config.beta_move_amp, 1.0)
    shared = _bursts(z["s_arr"], z["s_phase"], z["s_dur"], z["s_amp"], z["s_freq"], N,
                     p["shared_rate"] * rate_mult, p["subject_beta_hz"] + beta_shift, 1.0,
                     config)
    B = jnp.fft.rfft(shared)
    w_shared = (p["beta_amp"] * p["beta_coupling"] * amp_mult)[:, None]
    X = X + w_shared * jnp.exp(-2j * jnp.pi * freqs[None] * p["beta_lag_s"][:, None]) * B[None]
    x = jnp.fft.irfft(X, n=N, axis=-1)
    # private beta bursts
    w_priv = p["beta_amp"] * jnp.sqrt(1 - p["beta_coupling"] ** 2) * amp_mult
    private = _private_bursts(z, N, p["beta_rate"] * rate_mult, p["beta_hz"] + beta_shift,
                              w_priv, config)
    x = x + private
    # volume conduction, then the recording chain
    x = p["mixing"] @ x
    drift = jnp.exp(config.drift_amp * jnp.sin(2 * jnp.pi * t_center / p["drift_period_s"]
                                               + p["drift_phase"]))
    x = x * (p["gain"] * session_gain * drift)[:, None] + session_dc[:, None]
    t = jnp.arange(N) / fs
    h = jnp.arange(1, 4)
    harm = (h * p["line_hz"] < fs / 2) / h ** 1.5
    line = jnp.sum(harm[None, :, None] * jnp.sin(2 * jnp.pi * h[None, :, None] * p["line_hz"]
                                                 * t[None, None]
                                                 + 2 * jnp.pi * z["line"][..., None]), axis=1)
    x = x + p["line_amp"][:, None] * line
    # electrode pops: step + exponential decay
    Lp = int(round(0.3 * fs))
    tp = jnp.arange(Lp) / fs

    def pops(u_arr, z_amp, u_sign, u_tau, rate):
        onset, present = _arrivals(u_arr, rate, 0, N, fs)
        amp = config.pop_uv * jnp.exp(0.5 * z_amp) * jnp.where(u_sign < 0.5, 1.0, -1.0)
        tau = 0.02 + 0.08 * u_tau
        return _scatter(N, onset, (amp * present)[:, None] * jnp.exp(-tp[None] / tau[:, None]))

    x = x + jax.vmap(pops)(z["pop_arr"], z["pop_amp"], z["pop_sign"], z["pop_tau"],
                           p["pop_rate"])
    # movement artefacts: slow bumps shared by the subject's contacts (movement state only)
    Lm = int(round(1.0 * fs))
    tm = jnp.arange(Lm) / fs
    onset, present = _arrivals(z["move_arr"], config.move_artifact_rate_hz, -Lm, N, fs)
    present = present & move
    dur = 0.3 + 0.7 * z["move_dur"]
    amp = config.move_artifact_uv * jnp.exp(0.4 * z["move_amp"]) * jnp.where(
        z["move_sign"] < 0.5, 1.0, -1.0)
    bump = jnp.where(tm[None] < dur[:, None], jnp.sin(jnp.pi * tm[None] / dur[:, None]) ** 2, 0.0)
    art = _scatter(N, onset, (amp * present)[:, None] * bump)
    x = x + p["move_weight"][:, None] * art[None]
    x = x + config.white_uv * z["white"]
    x = x[:, pad:pad + n]
    return jnp.where(p["mask"][:, None], x, 0.0).astype(jnp.float32)


def _private_bursts(z, N, rate, freq, amp, config: SimConfig):
    """Each channel's own beta bursts ``[C, N]``."""
    def one(u_arr, u_ph, z_dur, z_amp, z_freq, r, f, a):
        return _bursts(u_arr, u_ph, z_dur, z_amp, z_freq, N, r, f, a, config)

    return jax.vmap(one)(z["p_arr"], z["p_phase"], z["p_dur"], z["p_amp"], z["p_freq"],
                         rate, freq, amp)


@functools.partial(jax.jit, static_argnames=("config",))
def _simulate_blocks(key, cohort: Cohort, session, state, block_ids, config: SimConfig):
    def per_subject(s, p):
        k_params, k_blocks = jax.random.split(
            jax.random.fold_in(jax.random.fold_in(key, s), session))
        C = p["mask"].shape[0]
        zs = jax.random.normal(k_params, (2 * C + 1,))
        session_gain = jnp.exp(config.session_gain_sd * zs[:C])
        session_dc = config.dc_uv * zs[C:2 * C]
        beta_shift = config.session_beta_shift_hz * zs[-1]

        def per_block(b):
            t_center = (b + 0.5) * config.block_s
            return _block(jax.random.fold_in(k_blocks, b), p, state, session_gain, session_dc,
                          beta_shift, t_center, config)

        return jax.lax.map(per_block, block_ids)

    fields = cohort._asdict()
    return jax.vmap(per_subject)(jnp.arange(cohort.mask.shape[0]), fields)


def simulate_blocks(key: jax.Array, cohort: Cohort, session: int, state: int,
                    block_ids, config: SimConfig) -> jax.Array:
    """Blocks ``block_ids`` of session ``session`` for every subject.

    Args:
      key: ``jax.random.key`` of the recordings (not the cohort's key).
      cohort: from :func:`make_cohort` with the same ``config``.
      session: session index (its gain offsets, DC and beta shift are fixed per session).
      state: 0 rest, 1 movement (:data:`STATES`).
      block_ids: int array ``[B]`` of block indices within the session.
      config: the cohort's :class:`SimConfig`.

    Returns:
      float32 ``[S, B, C, block_n]`` in µV; padded channels are zero.

    Raises:
      ValueError: for an unknown state, a negative session or block, or a cohort whose
        channel axis does not match ``config.max_channels``.
    """
    _check_key(key, "simulate_blocks")
    if state not in (0, 1):
        raise ValueError(f"simulate_blocks: state must be 0 (rest) or 1 (move), got {state!r}")
    if int(session) < 0:
        raise ValueError(f"simulate_blocks: session must be >= 0, got {session!r}")
    block_ids = jnp.asarray(block_ids, jnp.int32).reshape(-1)
    if block_ids.size == 0 or int(jnp.min(block_ids)) < 0:
        raise ValueError(f"simulate_blocks: block_ids must be non-empty and >= 0, got "
                         f"{np.asarray(block_ids).tolist()}")
    if cohort.mask.shape[1] != config.max_channels:
        raise ValueError(f"simulate_blocks: cohort has {cohort.mask.shape[1]} channel slots but "
                         f"config.max_channels is {config.max_channels}; use the cohort's config")
    return _simulate_blocks(key, cohort, int(session), int(state), block_ids, config)


def iter_session(key: jax.Array, cohort: Cohort, session: int, state: int, duration_s: float,
                 config: SimConfig, *, chunk_blocks: int = 6) -> Iterator[jax.Array]:
    """Yields a session as chunks ``[S, C, chunk_blocks * block_n]`` (memory-bounded).

    The concatenation of the chunks equals :func:`simulate_session` with the same arguments
    (a trailing partial chunk is shorter).
    """
    n_blocks = _n_blocks(duration_s, config, "iter_session")
    if int(chunk_blocks) < 1:
        raise ValueError(f"iter_session: chunk_blocks must be >= 1, got {chunk_blocks!r}")
    for start in range(0, n_blocks, chunk_blocks):
        ids = np.arange(start, min(start + chunk_blocks, n_blocks))
        blocks = simulate_blocks(key, cohort, session, state, ids, config)
        S, B, C, n = blocks.shape
        yield jnp.transpose(blocks, (0, 2, 1, 3)).reshape(S, C, B * n)


def _n_blocks(duration_s, config: SimConfig, where: str) -> int:
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"{where}: duration_s must be > 0, got {duration_s!r}")
    n = duration_s / config.block_s
    if abs(n - round(n)) > 1e-6:
        raise ValueError(f"{where}: duration_s ({duration_s}) must be a multiple of "
                         f"config.block_s ({config.block_s})")
    return int(round(n))


def simulate_session(key: jax.Array, cohort: Cohort, session: int, state: int,
                     duration_s: float, config: SimConfig, *, chunk_blocks: int = 6
                     ) -> np.ndarray:
    """A whole session ``[S, C, duration_s * fs]`` (float32 µV) as a NumPy array.

    Raises:
      ValueError: if ``duration_s`` is not a positive multiple of ``config.block_s``.
    """
    chunks = [np.asarray(c) for c in iter_session(key, cohort, session, state, duration_s,
                                                  config, chunk_blocks=chunk_blocks)]
    return np.concatenate(chunks, axis=-1)
