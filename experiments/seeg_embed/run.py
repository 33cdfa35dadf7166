"""The seeg_embed study: functional embeddings vs anatomy, clusters, cross-subject
transformer, on simulated multi-subject LFP (the paper's recordings are not public).

Per seed (a new cohort each):

1. Simulate ``n_subjects`` subjects, one rest and one movement session each
   (:mod:`seeg_embed.simulate`). Each session's first half is *calibration* data, the second
   half *test* data. ``n_heldout`` subjects are held out of all training.
2. Train the Siamese encoder (Hadsell loss, AdamW) on class-balanced same/different-region
   pairs of calibration segments of the training subjects. A channel's embedding is the mean
   over its calibration segments.
3. Zero-shot region assignment of held-out channels by nearest training-region centroid,
   in embedding space and in MNI space (``|x|`` folded) at each localization error of the
   sweep; balanced accuracy (mean per-region recall).
4. k-means clustering of held-out channels (k = regions present): adjusted Rand index and
   the silhouette of the region labels, for embeddings and for coordinates.
5. Within-subject discrimination: same vs different region for pairs of *test* segments of
   a held-out subject, by embedding distance below a threshold fit on training subjects.
6. The channel transformer is trained on the training subjects' windows (signals low-passed
   and resampled to ``recon.fs``, each channel scaled by its calibration median absolute
   deviation; tokens from the encoder's embeddings) to reconstruct randomly masked channels.
   On held-out subjects' test windows, with the same random masks for every method, its
   error is compared with the mean of the visible channels and a per-subject linear
   regression fit on that subject's calibration data. Also reported: masking a whole region.

Each seed writes ``seeds/seed_<i>.json`` (and ``.npz`` with the arrays for plots) atomically;
encoder and transformer training checkpoint every ``checkpoint_every`` steps, so a restarted
run resumes inside a seed and skips finished seeds.
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import signal, stats

import seeg_embed as S
from experiments.checkpoint import Checkpointer
from experiments.config import check_resume, load_config, validate_config
from experiments.progress import Progress
from experiments.seeg_embed.configs import default as default_config
from experiments.workdir import Workdir, atomic_write_bytes, atomic_write_json

CONFIG_PATH = Path(__file__).parent / "configs" / "default.py"


def floats(text: str) -> list[float]:
    return [float(p) for p in str(text).split(",") if p.strip()]


def validate(config) -> None:
    """Checks ``config`` against ``configs/default.py``'s ``RULES`` and ``validate``."""
    validate_config(config, default_config)


def sim_config(config) -> S.SimConfig:
    return S.SimConfig(**dict(config.sim))


# -- data ------------------------------------------------------------------------------

class Data:
    """One simulated cohort: sessions, flat channel tables, subject split."""

    def __init__(self, config, seed_index: int):
        self.sim = sim_config(config)
        seed = config.seed * 1000 + seed_index
        self.cohort = S.make_cohort(jax.random.key(seed), self.sim)
        key = jax.random.key(seed + 500_000)
        self.sessions = [S.simulate_session(key, self.cohort, 0, 0, config.rest_s, self.sim),
                         S.simulate_session(key, self.cohort, 1, 1, config.move_s, self.sim)]
        self.fs = self.sim.fs
        n = np.asarray(self.cohort.n_channels)
        self.n_channels = n
        reg = np.asarray(self.cohort.region)
        self.ch_subject = np.concatenate([np.full(k, s) for s, k in enumerate(n)])
        self.ch_index = np.concatenate([np.arange(k) for k in n])
        self.ch_region = reg[self.ch_subject, self.ch_index]
        self.true_xyz = np.asarray(self.cohort.true_xyz)[self.ch_subject, self.ch_index]
        self.loc_noise = np.asarray(self.cohort.loc_noise)[self.ch_subject, self.ch_index]
        perm = np.random.default_rng([config.seed, seed_index]).permutation(len(n))
        self.heldout = np.sort(perm[:config.n_heldout])
        self.train = np.sort(perm[config.n_heldout:])
        self.is_heldout = np.isin(self.ch_subject, self.heldout)

    def coords(self, error_mm: float) -> np.ndarray:
        return S.fold_hemisphere(self.true_xyz + error_mm * self.loc_noise)

    def halves(self, part: str) -> list[np.ndarray]:
        """Each session's calibration (first half) or test (second half) ``[S, C, T/2]``."""
        out = []
        for x in self.sessions:
            h = x.shape[-1] // 2
            out.append(x[..., :h] if part == "calibration" else x[..., h:])
        return out

    def segments(self, part: str, seg_n: int) -> list[np.ndarray]:
        """Per flat channel, its segments ``[n, seg_n]`` of both sessions' ``part``."""
        out = []
        halves = self.halves(part)
        for s, c in zip(self.ch_subject, self.ch_index, strict=True):
            segs = [S.segment(x[s, c][None], seg_n)[0] for x in halves]
            out.append(np.concatenate(segs))
        return out


# -- encoder ---------------------------------------------------------------------------

def _mesh(batch: int):
    n = jax.device_count()
    if n > 1 and batch % n == 0:
        return jax.make_mesh((n,), ("data",))
    return None


def train_encoder(config, data: Data, seg_cal: list[np.ndarray], seed_dir: Path,
                  seed: int) -> tuple[S.SiameseEncoder, dict]:
    ec = config.encoder
    train_ch = np.flatnonzero(~data.is_heldout)
    bank = S.make_segment_bank([seg_cal[i] for i in train_ch], data.ch_subject[train_ch],
                               data.ch_region[train_ch])
    sampler = S.make_pair_sampler(data.ch_subject[train_ch], data.ch_region[train_ch])
    model = S.SiameseEncoder(ec.embed_dim, dropout=ec.dropout, rngs=nnx.Rngs(seed))
    opt = optax.adamw(ec.learning_rate, weight_decay=ec.weight_decay)
    graphdef, state = S.init_train_state(model, opt)
    step_fn = S.make_encoder_step(graphdef, opt, loss=ec.loss, margin=ec.margin,
                                  temperature=ec.temperature, mesh=_mesh(2 * ec.batch_pairs))
    wd = Workdir(seed_dir)
    ckpt = Checkpointer(seed_dir / "encoder_ckpt", save_every=config.checkpoint_every,
                        config=config.to_dict(), resume_allow=default_config.RESUME_ALLOW)
    restored, start = ckpt.restore_or({"state": state, "key": jax.random.key(seed + 7)})
    state, key = restored["state"], restored["key"]
    progress = Progress(ec.steps, name=f"seeg_embed encoder (seed dir {seed_dir.name})",
                        start_step=start, interval_s=30.0)
    t0, timed, losses = None, 0, []
    for step in range(start, ec.steps):
        key, k_batch, k_drop = jax.random.split(key, 3)
        if ec.loss == "hadsell":
            batch = S.sample_pairs(k_batch, sampler, bank, ec.batch_pairs, ec.within_fraction)
        else:
            batch = S.sample_labelled(k_batch, bank, ec.batch_pairs * 2)
        state, loss = step_fn(state, batch, k_drop)
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"seeg_embed encoder: loss is {loss} at step {step + 1}; "
                                     "the last good checkpoint is kept")
        if step == start:
            t0 = time.perf_counter()
        else:
            timed += 1
        losses.append(loss)
        if (step + 1) % 25 == 0 or step + 1 == ec.steps:
            wd.log_metrics(step + 1, phase="encoder", loss=float(np.mean(losses[-25:])))
        progress.update(step + 1, f"loss {loss:.4f}")
        ckpt.maybe_save(step + 1, {"state": state, "key": key})
    ckpt.save(ec.steps, {"state": state, "key": key})
    ckpt.close()
    elapsed = time.perf_counter() - t0 if t0 is not None and timed else 0.0
    info = {"encoder_steps": ec.steps, "encoder_final_loss": float(np.mean(losses[-25:]))
            if losses else None,
            "encoder_segments_per_s": (2 * ec.batch_pairs * timed / elapsed) if elapsed else None}
    return S.merge_model(graphdef, state), info


def _pair_distances(emb: np.ndarray, owner: np.ndarray, subject: np.ndarray,
                    region: np.ndarray, subjects, n_pairs: int, rng) -> tuple:
    """Distances and same-region flags of random within-subject pairs of segments."""
    d_all, same_all = [], []
    for s in subjects:
        idx = np.flatnonzero(subject[owner] == s)
        if len(np.unique(owner[idx])) < 2:
            continue
        a = rng.choice(idx, n_pairs)
        b = rng.choice(idx, n_pairs)
        keep = owner[a] != owner[b]
        a, b = a[keep], b[keep]
        d_all.append(np.linalg.norm(emb[a] - emb[b], axis=1))
        same_all.append(region[owner[a]] == region[owner[b]])
    return np.concatenate(d_all), np.concatenate(same_all)


def evaluate_embeddings(config, data: Data, model, seg_cal, seg_test, seed: int) -> tuple:
    owner_cal = np.concatenate([np.full(len(s), i) for i, s in enumerate(seg_cal)])
    e_cal = S.embed_segments(model, np.concatenate(seg_cal))
    emb = S.channel_embeddings(e_cal, owner_cal, len(seg_cal))
    tr, ho = ~data.is_heldout, data.is_heldout
    y_tr, y_ho = data.ch_region[tr], data.ch_region[ho]
    out: dict[str, Any] = {"n_train_channels": int(tr.sum()), "n_heldout_channels": int(ho.sum()),
                           "heldout_regions": int(len(np.unique(y_ho)))}
    pred = S.nearest_centroid(emb[tr], y_tr, emb[ho])
    out["zero_shot_embedding"] = S.accuracy_scores(y_ho, pred)
    sweep = {}
    for err in floats(config.loc_errors_mm):
        xyz = data.coords(err)
        sweep[str(err)] = S.accuracy_scores(y_ho, S.nearest_centroid(xyz[tr], y_tr, xyz[ho]))
    out["zero_shot_coordinates"] = sweep
    # clustering of held-out channels
    out["cluster_embedding"] = S.cluster_agreement(emb[ho], y_ho, seed=seed)
    out["cluster_coordinates"] = S.cluster_agreement(data.coords(config.paper_like_error_mm)[ho],
                                                     y_ho, seed=seed)
    out["cluster_true_coordinates"] = S.cluster_agreement(data.coords(0.0)[ho], y_ho, seed=seed)
    # within-subject discrimination on test segments, threshold from training subjects
    rng = np.random.default_rng(seed)
    d_tr, same_tr = _pair_distances(e_cal, owner_cal, data.ch_subject, data.ch_region,
                                    data.train, config.discrimination_pairs, rng)
    theta = S.fit_distance_threshold(d_tr, same_tr)
    owner_test = np.concatenate([np.full(len(s), i) for i, s in enumerate(seg_test)])
    ho_ch = np.flatnonzero(ho)
    test_rows = np.isin(owner_test, ho_ch)
    e_test = S.embed_segments(model, np.concatenate(seg_test)[test_rows])
    d_ho, same_ho = _pair_distances(e_test, owner_test[test_rows], data.ch_subject,
                                    data.ch_region, data.heldout, config.discrimination_pairs,
                                    rng)
    scores = S.pair_discrimination(d_ho, same_ho, theta)
    out["discrimination"] = {"balanced_accuracy": scores.balanced_accuracy, "auc": scores.auc,
                             "pairs": scores.n_pairs, "threshold": theta}
    return emb, out


# -- transformer -----------------------------------------------------------------------

class Windows:
    """Reconstruction windows ``[n, C, W]`` with their subject, session and part."""

    def __init__(self, config, data: Data):
        rc = config.recon
        self.fs = rc.fs
        down = int(round(data.fs / rc.fs))
        self.w = int(round(rc.window_s * rc.fs))
        hop = int(round(rc.hop_s * rc.fs))
        self.calibration = []   # per session [S, C, T/2] normalised (for the linear baseline)
        windows, subj, sess, part = [], [], [], []
        for k, x in enumerate(data.sessions):
            y = signal.resample_poly(x, 1, down, axis=-1).astype(np.float32)
            h = y.shape[-1] // 2
            med = np.median(y[..., :h], axis=-1, keepdims=True)
            mad = np.median(np.abs(y[..., :h] - med), axis=-1, keepdims=True)
            y = (y - med) / (1.4826 * mad + 1e-6)
            y = np.where(np.isfinite(y), y, 0.0)
            self.calibration.append(y[..., :h])
            for p, seg in (("calibration", y[..., :h]), ("test", y[..., h:])):
                starts = np.arange(0, seg.shape[-1] - self.w + 1, hop)
                win = np.stack([seg[..., t:t + self.w] for t in starts], axis=1)  # [S, n, C, W]
                for s in range(win.shape[0]):
                    windows.append(win[s])
                    subj += [s] * len(starts)
                    sess += [k] * len(starts)
                    part += [p] * len(starts)
        self.windows = np.concatenate(windows).astype(np.float32)
        self.subject, self.session = np.asarray(subj), np.asarray(sess)
        self.part = np.asarray(part)
        mask = np.asarray(data.cohort.mask)
        self.channel_mask = mask[self.subject]
        self.region = np.asarray(data.cohort.region)[self.subject]


def padded_embeddings(data: Data, emb: np.ndarray) -> np.ndarray:
    """``[S, C_max, D]`` channel embeddings, zero for padding."""
    out = np.zeros((len(data.n_channels), data.sim.max_channels, emb.shape[1]), np.float32)
    out[data.ch_subject, data.ch_index] = emb
    return out


def train_transformer(config, data: Data, win: Windows, emb_pad: np.ndarray, seed_dir: Path,
                      seed: int) -> tuple[S.ChannelTransformer, dict]:
    rc = config.recon
    rows = np.flatnonzero(np.isin(win.subject, data.train))
    model = S.ChannelTransformer(emb_pad.shape[-1], win.w, d_model=rc.d_model,
                                 num_heads=rc.num_heads, num_layers=rc.num_layers,
                                 mlp_dim=rc.mlp_dim, codebook_size=rc.codebook_size,
                                 dropout=rc.dropout, rngs=nnx.Rngs(seed + 11))
    opt = optax.adamw(optax.cosine_decay_schedule(rc.learning_rate, rc.steps, 0.1),
                      weight_decay=rc.weight_decay)
    graphdef, state = S.init_train_state(model, opt)
    step_fn = S.make_transformer_step(graphdef, opt, mesh=_mesh(rc.batch_size))
    windows = jnp.asarray(win.windows)
    cmask = jnp.asarray(win.channel_mask)
    emb_all = jnp.asarray(emb_pad)
    subj = jnp.asarray(win.subject)
    rows_j = jnp.asarray(rows)

    @jax.jit
    def make_batch(key):
        k1, k2 = jax.random.split(key)
        idx = rows_j[jax.random.randint(k1, (rc.batch_size,), 0, rows_j.shape[0])]
        cm = cmask[idx]
        tm = S.random_channel_mask(k2, cm, rc.mask_fraction)
        w = windows[idx]
        return S.ReconBatch(emb_all[subj[idx]], w, w, cm, tm)

    wd = Workdir(seed_dir)
    ckpt = Checkpointer(seed_dir / "transformer_ckpt", save_every=config.checkpoint_every,
                        config=config.to_dict(), resume_allow=default_config.RESUME_ALLOW)
    restored, start = ckpt.restore_or({"state": state, "key": jax.random.key(seed + 13)})
    state, key = restored["state"], restored["key"]
    progress = Progress(rc.steps, name=f"seeg_embed transformer ({seed_dir.name})",
                        start_step=start, interval_s=30.0)
    losses, t0, timed = [], None, 0
    for step in range(start, rc.steps):
        key, kb, kd = jax.random.split(key, 3)
        state, loss = step_fn(state, make_batch(kb), kd)
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"seeg_embed transformer: loss is {loss} at step "
                                     f"{step + 1}; the last good checkpoint is kept")
        if step == start:
            t0 = time.perf_counter()
        else:
            timed += 1
        losses.append(loss)
        if (step + 1) % 50 == 0 or step + 1 == rc.steps:
            wd.log_metrics(config.encoder.steps + step + 1, phase="transformer",
                           loss=float(np.mean(losses[-50:])))
        progress.update(step + 1, f"mse {loss:.4f}")
        ckpt.maybe_save(step + 1, {"state": state, "key": key})
    ckpt.save(rc.steps, {"state": state, "key": key})
    ckpt.close()
    elapsed = time.perf_counter() - t0 if t0 is not None and timed else 0.0
    info = {"transformer_steps": rc.steps,
            "transformer_final_mse": float(np.mean(losses[-50:])) if losses else None,
            "transformer_windows_per_s": (rc.batch_size * timed / elapsed) if elapsed else None}
    return S.merge_model(graphdef, state), info


def evaluate_reconstruction(config, data: Data, win: Windows, emb_pad, model, seed: int
                            ) -> tuple[dict, dict]:
    rc = config.recon
    rows = np.flatnonzero(np.isin(win.subject, data.heldout) & (win.part == "test"))
    w, cm, reg = win.windows[rows], win.channel_mask[rows], win.region[rows]
    subj = win.subject[rows]
    emb = emb_pad[subj]
    key = jax.random.key(seed + 17)
    masks = {
        "random": np.asarray(S.random_channel_mask(key, cm, rc.mask_fraction)),
        "region": np.asarray(S.region_channel_mask(jax.random.fold_in(key, 1), cm, reg)),
    }
    baselines = {}
    for s in data.heldout:
        n = data.n_channels[s]
        cal = np.concatenate([c[s, :n] for c in win.calibration], axis=-1)
        baselines[s] = S.LinearBaseline(cal, ridge=rc.ridge)
    predict = jax.jit(lambda e, x, c, t: model(e, x, c, t).pred)
    out, example = {}, {}
    for name, tm in masks.items():
        keep = tm.any(1)
        errs = {k: [] for k in ("transformer", "linear_regression", "mean_of_others", "zero")}
        per_subject = {k: {int(s): [] for s in data.heldout} for k in errs}
        pred_t = []
        for i in range(0, int(keep.sum()), 256):
            sel = np.flatnonzero(keep)[i:i + 256]
            pred_t.append(np.asarray(predict(jnp.asarray(emb[sel]), jnp.asarray(w[sel]),
                                             jnp.asarray(cm[sel]), jnp.asarray(tm[sel]))))
        pred_t = np.concatenate(pred_t)
        pred_m = S.mean_of_others(w[keep], cm[keep], tm[keep])
        for j, r in enumerate(np.flatnonzero(keep)):
            s, n = subj[r], data.n_channels[subj[r]]
            m = tm[r, :n]
            target = w[r, :n][m]
            pred_l = baselines[s].predict(w[r, :n], m)[m]
            for k, p in (("transformer", pred_t[j, :n][m]), ("linear_regression", pred_l),
                         ("mean_of_others", pred_m[j, :n][m]), ("zero", np.zeros_like(target))):
                e = float(np.mean((p - target) ** 2))
                errs[k].append(e)
                per_subject[k][int(s)].append(e)
            if name == "random" and j == 0:
                c0 = int(np.flatnonzero(m)[0])
                example = {"target": w[r, c0], "transformer": pred_t[j, c0],
                           "linear_regression": baselines[s].predict(w[r, :n], m)[c0],
                           "mean_of_others": pred_m[j, c0],
                           "region": S.REGIONS[int(reg[r, c0])], "fs": win.fs}
        out[name] = {k: float(np.mean(v)) for k, v in errs.items()}
        out[name]["windows"] = int(keep.sum())
        out[name]["per_subject"] = {k: {s: float(np.mean(v)) for s, v in d.items() if v}
                                    for k, d in per_subject.items()}
    return out, example


# -- one seed, the study ---------------------------------------------------------------

def run_seed(config, seed_index: int, seed_dir: Path) -> dict:
    t_start = time.perf_counter()
    seed = config.seed * 1000 + seed_index
    t = time.perf_counter()
    data = Data(config, seed_index)
    sim_s = time.perf_counter() - t
    seg_n = int(round(config.segment_s * data.fs))
    seg_cal = data.segments("calibration", seg_n)
    seg_test = data.segments("test", seg_n)
    encoder, enc_info = train_encoder(config, data, seg_cal, seed_dir, seed)
    emb, record = evaluate_embeddings(config, data, encoder, seg_cal, seg_test, seed)
    win = Windows(config, data)
    emb_pad = padded_embeddings(data, emb)
    transformer, tr_info = train_transformer(config, data, win, emb_pad, seed_dir, seed)
    record["reconstruction"], example = evaluate_reconstruction(config, data, win, emb_pad,
                                                                transformer, seed)
    record.update(enc_info)
    record.update(tr_info)
    record.update(seed_index=seed_index, simulate_s=sim_s,
                  n_subjects=int(len(data.n_channels)), heldout=data.heldout.tolist(),
                  channels_per_subject=data.n_channels.tolist(),
                  wall_s=time.perf_counter() - t_start)
    arrays = dict(emb=emb, region=data.ch_region, subject=data.ch_subject,
                  heldout=data.is_heldout, coords_paper=data.coords(config.paper_like_error_mm),
                  coords_true=data.coords(0.0), example_target=example.get("target", []),
                  example_transformer=example.get("transformer", []),
                  example_linear=example.get("linear_regression", []),
                  example_mean=example.get("mean_of_others", []))
    record["example_region"] = example.get("region", "")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(seed_dir.parent / f"seed_{seed_index}.npz", buf.getvalue())
    if seed_index == config.plot_seed:
        _spectra_plot(data, seed_dir.parent.parent)
    return record


def _ci(values) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    out = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
    if len(v) > 1:
        half = float(stats.t.ppf(0.975, len(v) - 1) * out["sd"] / math.sqrt(len(v)))
        out.update(lo=out["mean"] - half, hi=out["mean"] + half)
    else:
        out.update(lo=out["mean"], hi=out["mean"])
    return out


def summarize(records: list[dict], config) -> dict:
    """Means and 95% t-intervals over seeds (paired differences where two methods meet)."""
    paper = str(config.paper_like_error_mm)
    emb_bal = [r["zero_shot_embedding"]["balanced_accuracy"] for r in records]
    out: dict[str, Any] = {"num_seeds": len(records), "paper_like_error_mm":
                           config.paper_like_error_mm}
    out["zero_shot_embedding"] = _ci(emb_bal)
    out["zero_shot_embedding_accuracy"] = _ci(
        [r["zero_shot_embedding"]["accuracy"] for r in records])
    sweep = {}
    for err in floats(config.loc_errors_mm):
        coord = [r["zero_shot_coordinates"][str(err)]["balanced_accuracy"] for r in records]
        sweep[str(err)] = {"coordinates": _ci(coord),
                           "difference": _ci(np.subtract(emb_bal, coord))}
    out["zero_shot_sweep"] = sweep
    out["zero_shot_paper_like"] = sweep[paper]
    wins = [e for e in floats(config.loc_errors_mm) if sweep[str(e)]["difference"]["mean"] > 0]
    out["embeddings_win_from_error_mm"] = min(wins) if wins else None
    for key in ("ari", "silhouette"):
        e = [r["cluster_embedding"][key] for r in records]
        c = [r["cluster_coordinates"][key] for r in records]
        t = [r["cluster_true_coordinates"][key] for r in records]
        out[f"cluster_{key}"] = {"embedding": _ci(e), "coordinates": _ci(c),
                                 "true_coordinates": _ci(t), "difference": _ci(np.subtract(e, c))}
    out["discrimination"] = {k: _ci([r["discrimination"][k] for r in records])
                             for k in ("balanced_accuracy", "auc")}
    recon = {}
    for mask in ("random", "region"):
        m = {k: _ci([r["reconstruction"][mask][k] for r in records])
             for k in ("transformer", "linear_regression", "mean_of_others", "zero")}
        for base in ("linear_regression", "mean_of_others", "zero"):
            m[f"transformer_minus_{base}"] = _ci(
                [r["reconstruction"][mask]["transformer"] - r["reconstruction"][mask][base]
                 for r in records])
        recon[mask] = m
    out["reconstruction"] = recon
    out["wall_s_per_seed"] = _ci([r["wall_s"] for r in records])
    return out


def run_study(config, workdir: str | Path) -> dict:
    """Runs (or resumes) every seed and writes ``results.json``."""
    validate(config)
    workdir = Path(workdir)
    wd = Workdir(workdir)
    seeds_dir = workdir / "seeds"
    seeds_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = seeds_dir / "config.json"
    current = json.loads(json.dumps(config.to_dict(), sort_keys=True))
    if fingerprint.exists():   # finished seeds must come from the same config
        check_resume(json.loads(fingerprint.read_text()), current, default_config.RESUME_ALLOW,
                     where=f"seeg_embed study {seeds_dir}")
    else:
        atomic_write_json(fingerprint, current)
    progress = Progress(config.num_seeds, name="seeg_embed seeds", interval_s=0.0)
    records = []
    for i in range(config.num_seeds):
        path = seeds_dir / f"seed_{i}.json"
        if path.exists():
            record = json.loads(path.read_text())
        else:
            record = run_seed(config, i, seeds_dir / f"seed_{i}")
            atomic_write_json(path, record)
        records.append(record)
        acc = record["zero_shot_embedding"]["balanced_accuracy"]
        progress.update(i + 1, f"zero-shot embedding balanced accuracy {acc:.3f}")
    results = {"tier": config.tier, "summary": summarize(records, config), "seeds": records}
    wd.write_results(results)
    return results


# -- plots and report ------------------------------------------------------------------

_COLORS = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#66a61e", "#e6ab02", "#999999")


def _spectra_plot(data: Data, workdir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, x, title in zip(axes, data.sessions, ("rest", "movement"), strict=True):
        h = x.shape[-1] // 2
        f, p = signal.welch(x[..., :h], fs=data.fs, nperseg=int(data.fs), axis=-1)
        sel = (f >= 1) & (f <= 150)
        for r, name in enumerate(S.REGIONS):
            rows = data.ch_region == r
            if not rows.any():
                continue
            ps = p[data.ch_subject[rows], data.ch_index[rows]]
            ps = ps / ps[:, sel].sum(1, keepdims=True)
            ax.loglog(f[sel], np.exp(np.log(ps[:, sel]).mean(0)), color=_COLORS[r], label=name,
                      lw=1.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Hz")
    axes[0].set_ylabel("relative power (geometric mean over channels)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Simulated LFP spectra per region (one cohort, calibration halves)", fontsize=10)
    Workdir(workdir).save_figure(fig, "spectra.png")


def _embedding_plot(workdir: Path, arrays: dict, config) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emb, region, ho = arrays["emb"], arrays["region"], arrays["heldout"].astype(bool)
    mu = emb[~ho].mean(0)
    _, _, vt = np.linalg.svd(emb[~ho] - mu, full_matrices=False)
    p = (emb - mu) @ vt[:2].T
    xyz = arrays["coords_paper"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = ((p[:, 0], p[:, 1], "functional embedding (PCA of training channels)",
               "PC1", "PC2"),
              (xyz[:, 1], xyz[:, 2], f"MNI y-z, |x| folded, error {config.paper_like_error_mm} mm",
               "y (mm)", "z (mm)"),
              (xyz[:, 0], xyz[:, 1], "MNI |x|-y", "|x| (mm)", "y (mm)"))
    for ax, (a, b, title, xl, yl) in zip(axes, panels, strict=True):
        for r, name in enumerate(S.REGIONS):
            tr = (region == r) & ~ho
            te = (region == r) & ho
            ax.scatter(a[tr], b[tr], s=10, color=_COLORS[r], alpha=0.35)
            ax.scatter(a[te], b[te], s=34, color=_COLORS[r], edgecolor="k", lw=0.6, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    axes[0].legend(fontsize=7, title="held-out (edged)", title_fontsize=7)
    Workdir(workdir).save_figure(fig, "embeddings.png")
    return "embeddings.png"


def _sweep_plot(workdir: Path, summary: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errs = sorted(summary["zero_shot_sweep"], key=float)
    x = [float(e) for e in errs]
    c = [summary["zero_shot_sweep"][e]["coordinates"] for e in errs]
    e = summary["zero_shot_embedding"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(x, [v["mean"] for v in c], "o-", color="#d95f02", label="MNI coordinates")
    ax.fill_between(x, [v["lo"] for v in c], [v["hi"] for v in c], color="#d95f02", alpha=0.2)
    ax.axhline(e["mean"], color="#1b9e77", label="functional embedding")
    ax.axhspan(e["lo"], e["hi"], color="#1b9e77", alpha=0.2)
    ax.axvline(summary["paper_like_error_mm"], color="k", ls=":", lw=1, label="paper-like")
    ax.set_xlabel("localization error SD per axis (mm)")
    ax.set_ylabel("zero-shot balanced accuracy")
    ax.set_title(f"Held-out subjects, {summary['num_seeds']} seed(s), 95% CI", fontsize=9)
    ax.legend(fontsize=7)
    Workdir(workdir).save_figure(fig, "zero_shot_sweep.png")
    return "zero_shot_sweep.png"


def _recon_plot(workdir: Path, summary: dict, arrays: dict, region: str, fs: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    methods = ("transformer", "linear_regression", "mean_of_others", "zero")
    for i, mask in enumerate(("random", "region")):
        m = summary["reconstruction"][mask]
        means = [m[k]["mean"] for k in methods]
        err = [[m[k]["mean"] - m[k]["lo"] for k in methods],
               [m[k]["hi"] - m[k]["mean"] for k in methods]]
        axes[0].bar(np.arange(4) + 0.4 * i, means, 0.4, yerr=err, label=f"{mask} mask")
    axes[0].set_xticks(np.arange(4) + 0.2, [k.replace("_", " ") for k in methods], fontsize=8)
    axes[0].set_ylabel("MSE on masked channels (normalised units)")
    axes[0].set_title("Held-out subjects, test windows (95% CI over seeds)", fontsize=9)
    axes[0].legend(fontsize=7)
    tgt = np.asarray(arrays["example_target"])
    if tgt.size:
        t = np.arange(tgt.size) / fs
        axes[1].plot(t, tgt, "k", lw=1.2, label=f"masked {region} channel")
        axes[1].plot(t, arrays["example_transformer"], lw=1, label="transformer")
        axes[1].plot(t, arrays["example_linear"], lw=1, label="linear regression")
        axes[1].plot(t, arrays["example_mean"], lw=1, alpha=0.6, label="mean of others")
        axes[1].set_xlabel("s")
        axes[1].legend(fontsize=7)
        axes[1].set_title("One masked channel of a held-out subject", fontsize=9)
    Workdir(workdir).save_figure(fig, "reconstruction.png")
    return "reconstruction.png"


def make_plots(workdir: Path, results: dict, config) -> list[str]:
    workdir = Path(workdir)
    summary = results["summary"]
    plot_seed = min(config.plot_seed, len(results["seeds"]) - 1)
    with np.load(workdir / "seeds" / f"seed_{plot_seed}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    region = results["seeds"][plot_seed].get("example_region", "")
    return [_embedding_plot(workdir, arrays, config), _sweep_plot(workdir, summary),
            _recon_plot(workdir, summary, arrays, region, config.recon.fs)]


def _fmt(ci: dict, digits: int = 3) -> str:
    if ci.get("n", 1) > 1:
        return f"{ci['mean']:.{digits}f} [{ci['lo']:.{digits}f}, {ci['hi']:.{digits}f}]"
    return f"{ci['mean']:.{digits}f}"


def report(results: dict, config) -> str:
    s = results["summary"]
    lines = [f"# seeg_embed study ({config.tier} tier, {s['num_seeds']} seed(s))", "",
             "Means over seeds with 95% t-intervals in brackets (each seed is a new simulated "
             "cohort, subject split and training run).", "",
             "## Zero-shot region assignment of held-out channels (balanced accuracy)", "",
             f"Functional embedding: {_fmt(s['zero_shot_embedding'])}", "",
             "| localization error (mm, per axis) | MNI coordinates | embedding − coordinates |",
             "|---|---|---|"]
    for err, v in sorted(s["zero_shot_sweep"].items(), key=lambda kv: float(kv[0])):
        lines.append(f"| {err} | {_fmt(v['coordinates'])} | {_fmt(v['difference'])} |")
    lines += ["", "## Clusters of held-out channels", "", "| | embedding | coordinates "
              f"({config.paper_like_error_mm} mm) | true coordinates |", "|---|---|---|---|"]
    for key in ("ari", "silhouette"):
        c = s[f"cluster_{key}"]
        lines.append(f"| {key} | {_fmt(c['embedding'])} | {_fmt(c['coordinates'])} | "
                     f"{_fmt(c['true_coordinates'])} |")
    d = s["discrimination"]
    lines += ["", f"Within-subject same/different-region discrimination of test segments: "
              f"balanced accuracy {_fmt(d['balanced_accuracy'])}, AUC {_fmt(d['auc'])}.", "",
              "## Masked-channel reconstruction on held-out subjects (MSE, normalised units)", "",
              "| mask | transformer | linear regression (per subject) | mean of others | zero |",
              "|---|---|---|---|---|"]
    for mask, m in s["reconstruction"].items():
        lines.append(f"| {mask} | {_fmt(m['transformer'])} | {_fmt(m['linear_regression'])} | "
                     f"{_fmt(m['mean_of_others'])} | {_fmt(m['zero'])} |")
    lines += ["", "![embeddings](embeddings.png)", "", "![sweep](zero_shot_sweep.png)", "",
              "![reconstruction](reconstruction.png)", "", "![spectra](spectra.png)", ""]
    return "\n".join(lines)


def run(config, workdir) -> dict:
    """Entry point of ``experiments.seeg_embed.main``: the study, plots and ``report.md``."""
    results = run_study(config, workdir)
    make_plots(Path(workdir), results, config)
    Workdir(workdir).write_report(report(results, config))
    return results


def study_for_tier(tier: str, workdir: str | Path) -> dict:
    """Loads the default config at ``tier`` and runs (or resumes) the study in ``workdir``."""
    config = load_config(CONFIG_PATH, tier)
    Workdir(workdir).write_config(config, resume_allow=default_config.RESUME_ALLOW)
    return run(config, workdir)
