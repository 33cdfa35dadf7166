"""Simulated data sets of the mgc experiments: images and ground-truth masks per transform.

A split is simulated in chunks (:func:`mgc.simulate_scenes` with ``start_index``, so the
clips do not depend on the chunking), turned into images and soft masks for the requested
transforms with one jitted function, and stored as float16 in
``<workdir>/data/<split>/chunk_<i>.npz``; a re-run loads finished chunks instead of
simulating them again. Nothing but the images, masks and labels is kept, so memory stays
at the size of the images.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import mgc
from experiments.progress import Progress
from experiments.workdir import atomic_write_bytes


def scene_config(dc) -> mgc.SceneConfig:
    return mgc.SceneConfig(snr_db=(float(dc.snr_low), float(dc.snr_high)))


def frontend(dc) -> mgc.Frontend:
    return mgc.default_frontend(n_bins=int(dc.n_bins), n_frames=int(dc.n_frames))


@functools.cache
def _features_fn(fe: mgc.Frontend, kinds: tuple[str, ...]):
    @jax.jit
    def features(bio, noise):
        out = mgc.representations_with_masks(bio, noise, fe, kinds)
        return {k: (img.astype(jnp.float16), m.astype(jnp.float16)) for k, (img, m) in
                out.items()}

    return features


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def make_split(dc, split: str, num_clips: int, kinds: tuple[str, ...], key: jax.Array,
               workdir: Path) -> dict[str, np.ndarray]:
    """Simulates (or loads) ``num_clips`` clips; returns images/masks per kind and metadata.

    Returns:
      ``{"labels", "snr_db", "num_calls", "distractor", "noise_types",
      "image_<kind>", "mask_<kind>"}`` (images and masks ``(n, bins, frames, bands)``
      float16).
    """
    cfg, fe = scene_config(dc), frontend(dc)
    chunk = int(dc.chunk)
    folder = Path(workdir) / "data" / split
    starts = list(range(0, num_clips, chunk))
    done = [s for s in starts if (folder / f"chunk_{s:06d}.npz").exists()]
    progress = Progress(len(starts), name=f"mgc/data/{split}", interval_s=20.0,
                        start_step=len(done))
    features = _features_fn(fe, tuple(kinds))
    parts = []
    for i, start in enumerate(starts):
        path = folder / f"chunk_{start:06d}.npz"
        n = min(chunk, num_clips - start)
        if path.exists():
            with np.load(path) as z:
                part = {k: z[k] for k in z.files}
            if all(f"image_{k}" in part for k in kinds) and part["labels"].shape[0] == n:
                parts.append(part)
                continue
        scene = mgc.simulate_scenes(key, n, start_index=start, config=cfg)
        feats = features(scene.bio, scene.noise)
        part = {"labels": np.asarray(scene.labels), "snr_db": np.asarray(scene.snr_db),
                "num_calls": np.asarray(scene.num_calls),
                "distractor": np.asarray(scene.distractor),
                "noise_types": np.asarray(scene.noise_types)}
        for k, (img, m) in feats.items():
            part[f"image_{k}"] = np.asarray(img)
            part[f"mask_{k}"] = np.asarray(m)
        if not all(np.isfinite(part[f"image_{k}"].astype(np.float32)).all() for k in kinds):
            raise FloatingPointError(f"mgc data: non-finite image values in {split} chunk "
                                     f"{start}")
        _save_npz(path, part)
        parts.append(part)
        progress.update(i + 1)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
