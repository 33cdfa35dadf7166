"""The simulator of :mod:`seeg_embed.simulate` written in plain NumPy/SciPy: the benchmark's
baseline.

Same model, same parameters (it takes a :class:`seeg_embed.Cohort` drawn by JAX), same
block structure; written the way a NumPy user would: a loop over subjects and blocks, each
block vectorized over channels, random numbers from ``numpy.random.Generator``, FFTs from
``scipy.fft``. Its random draws differ from JAX's, so outputs agree in distribution (the
tests compare band powers), not sample by sample.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

from seeg_embed.simulate import RHYTHMS, Cohort, SimConfig

__all__ = ["simulate_session_numpy"]


def _scatter(length, onsets, waves):
    out = np.zeros(length)
    L = waves.shape[1]
    for o, w in zip(onsets, waves, strict=True):
        lo, hi = max(o, 0), min(o + L, length)
        if hi > lo:
            out[lo:hi] += w[lo - o:hi - o]
    return out


def _bursts(rng, length, rate, freq, amp, config: SimConfig):
    fs, L = config.fs, config.burst_window_n
    count = rng.poisson(rate * (length + L) / fs)
    onsets = rng.integers(-L, length, count)
    dur = np.clip(config.burst_median_s * np.exp(config.burst_sigma * rng.normal(size=count)),
                  0.05, 1.0)
    a = amp * (dur / config.burst_median_s) ** 0.3 * np.exp(0.25 * rng.normal(size=count))
    f = freq + 0.5 * rng.normal(size=count)
    phi = rng.uniform(0, 2 * math.pi, count)
    tt = np.arange(L) / fs
    support = 2.0 * dur[:, None]
    env = np.where(tt[None] < support, np.sin(np.pi * tt[None] / support) ** 2, 0.0)
    waves = a[:, None] * env * np.cos(2 * np.pi * f[:, None] * tt[None] + phi[:, None])
    return _scatter(length, onsets, waves)


def _block(rng, p, state, session_gain, session_dc, beta_shift, t_center, config: SimConfig):
    fs, n, pad = config.fs, config.block_n, config.pad_n
    N = n + 2 * pad
    mask = p["mask"]
    C, J = mask.shape[0], len(RHYTHMS)
    move = state == 1
    freqs = fft.rfftfreq(N, 1.0 / fs)
    F = freqs.size
    scale = N * fs / 2.0

    def cnormal(shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / math.sqrt(2.0)

    chi = p["chi"][:, None]
    f_safe = np.maximum(freqs, 1e-6)[None]
    p_ap = p["p10"][:, None] * (1.0 + 10.0 ** chi) / (1.0 + f_safe ** chi)
    p_ap[:, freqs == 0] = 0.0
    rms = p["rhythm_rms"] * (p["rhythm_move"] if move else 1.0)
    bw = np.maximum(p["rhythm_bw"], 1e-3)
    z_shared = cnormal((J, F))
    p_private = p_ap.copy()
    shared = np.zeros((C, F), complex)
    for j in range(J):   # one rhythm at a time keeps memory at [C, F]
        dens = np.exp(-0.5 * ((freqs[None] - p["rhythm_hz"][:, j, None]) / bw[:, j, None]) ** 2
                      ) / (math.sqrt(2 * math.pi) * bw[:, j, None])
        p_rhythm = dens * rms[:, j, None] ** 2
        rho = p["rhythm_coupling"][:, j, None]
        p_private += (1 - rho ** 2) * p_rhythm
        shift = np.exp(-2j * np.pi * freqs[None] * p["rhythm_lag_s"][:, j, None])
        shared += np.sqrt(scale * p_rhythm) * rho * shift * z_shared[j][None]
    X = np.sqrt(scale * p_private) * cnormal((C, F)) + shared
    rate_mult = config.beta_move_rate if move else 1.0
    amp_mult = config.beta_move_amp if move else 1.0
    shared = _bursts(rng, N, p["shared_rate"] * rate_mult, p["subject_beta_hz"] + beta_shift,
                     1.0, config)
    B = fft.rfft(shared)
    w_shared = (p["beta_amp"] * p["beta_coupling"] * amp_mult)[:, None]
    X += w_shared * np.exp(-2j * np.pi * freqs[None] * p["beta_lag_s"][:, None]) * B[None]
    x = fft.irfft(X, n=N, axis=-1)
    w_priv = p["beta_amp"] * np.sqrt(1 - p["beta_coupling"] ** 2) * amp_mult
    for c in np.flatnonzero(mask):
        x[c] += _bursts(rng, N, p["beta_rate"][c] * rate_mult, p["beta_hz"][c] + beta_shift,
                        w_priv[c], config)
    x = p["mixing"] @ x
    drift = np.exp(config.drift_amp * np.sin(2 * np.pi * t_center / p["drift_period_s"]
                                             + p["drift_phase"]))
    x = x * (p["gain"] * session_gain * drift)[:, None] + session_dc[:, None]
    t = np.arange(N) / fs
    for h in range(1, 4):
        if h * p["line_hz"] < fs / 2:
            ph = rng.uniform(0, 2 * math.pi, (C, 1))
            x += (p["line_amp"][:, None] / h ** 1.5) * np.sin(2 * np.pi * h * p["line_hz"] * t
                                                              + ph)
    Lp = int(round(0.3 * fs))
    tp = np.arange(Lp) / fs
    for c in np.flatnonzero(mask):
        k = min(rng.poisson(p["pop_rate"][c] * N / fs), config.max_pops)
        if k:
            amp = config.pop_uv * np.exp(0.5 * rng.normal(size=k)) * rng.choice([-1.0, 1.0], k)
            tau = rng.uniform(0.02, 0.1, k)
            x[c] += _scatter(N, rng.integers(0, N, k), amp[:, None] * np.exp(-tp[None]
                                                                             / tau[:, None]))
    if move:
        k = min(rng.poisson(config.move_artifact_rate_hz * N / fs), config.max_move_artifacts)
        Lm = int(round(fs))
        tm = np.arange(Lm) / fs
        dur = rng.uniform(0.3, 1.0, k)
        amp = config.move_artifact_uv * np.exp(0.4 * rng.normal(size=k)) * rng.choice(
            [-1.0, 1.0], k)
        bump = np.where(tm[None] < dur[:, None], np.sin(np.pi * tm[None] / dur[:, None]) ** 2,
                        0.0)
        art = _scatter(N, rng.integers(-Lm, N, k), amp[:, None] * bump)
        x += p["move_weight"][:, None] * art[None]
    x += config.white_uv * rng.normal(size=x.shape)
    x = x[:, pad:pad + n]
    x[~mask] = 0.0
    return x.astype(np.float32)


def simulate_session_numpy(seed: int, cohort: Cohort, session: int, state: int,
                           duration_s: float, config: SimConfig) -> np.ndarray:
    """A session ``[S, C, duration_s * fs]`` (float32 µV), like
    :func:`seeg_embed.simulate_session` but in NumPy.

    Raises:
      ValueError: for an unknown state or a duration that is not a multiple of the block.
    """
    if state not in (0, 1):
        raise ValueError(f"simulate_session_numpy: state must be 0 or 1, got {state!r}")
    n_blocks = duration_s / config.block_s
    if n_blocks <= 0 or abs(n_blocks - round(n_blocks)) > 1e-6:
        raise ValueError(f"simulate_session_numpy: duration_s ({duration_s}) must be a positive "
                         f"multiple of block_s ({config.block_s})")
    n_blocks = int(round(n_blocks))
    fields = {k: np.asarray(v, np.float64 if np.asarray(v).dtype.kind == "f" else None)
              for k, v in cohort._asdict().items()}
    S_, C = fields["mask"].shape
    out = np.zeros((S_, C, n_blocks * config.block_n), np.float32)
    for s in range(S_):
        p = {k: v[s] for k, v in fields.items()}
        rng = np.random.default_rng([seed, s, session])
        session_gain = np.exp(config.session_gain_sd * rng.normal(size=C))
        session_dc = config.dc_uv * rng.normal(size=C)
        beta_shift = config.session_beta_shift_hz * rng.normal()
        for b in range(n_blocks):
            out[s, :, b * config.block_n:(b + 1) * config.block_n] = _block(
                rng, p, state, session_gain, session_dc, beta_shift, (b + 0.5) * config.block_s,
                config)
    return out
