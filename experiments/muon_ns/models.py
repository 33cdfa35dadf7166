"""The two small networks of the training comparison (Flax NNX), and their data."""

from __future__ import annotations

import glob
import os
import sysconfig

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class MLP(nnx.Module):
    """64 -> hidden -> hidden -> 10 ReLU classifier for scikit-learn's 8x8 digits."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(64, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.l1(x))
        x = jax.nn.relu(self.l2(x))
        return self.head(x)


class Block(nnx.Module):
    def __init__(self, d: int, heads: int, *, rngs: nnx.Rngs):
        self.heads = heads
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, use_bias=False, rngs=rngs)
        self.proj = nnx.Linear(d, d, use_bias=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, 4 * d, use_bias=False, rngs=rngs)
        self.down = nnx.Linear(4 * d, d, use_bias=False, rngs=rngs)

    def __call__(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
        q, k, v = (a.reshape(b, t, h, d // h) for a in (q, k, v))
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(d // h)
        mask = jnp.tril(jnp.ones((t, t), bool))
        att = jax.nn.softmax(jnp.where(mask, att, -1e30), axis=-1)
        y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.down(jax.nn.gelu(self.up(self.ln2(x))))


class ByteLM(nnx.Module):
    """A small causal byte-level transformer (vocabulary 256, learned positions)."""

    def __init__(self, d: int, layers: int, heads: int, seq_len: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(256, d, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (seq_len, d)))
        self.blocks = nnx.List([Block(d, heads, rngs=rngs) for _ in range(layers)])
        self.ln = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, 256, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens) + self.pos[...][: tokens.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


def digits_data(seed: int):
    """scikit-learn's bundled digits (1797 8x8 images), scaled to [0, 1], stratified 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return (xtr, ytr.astype(np.int32)), (xva, yva.astype(np.int32))


def stdlib_bytes(max_train_bytes: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Bytes of the standard library's top-level ``.py`` files: every 10th file is validation.

    Returns:
      (train bytes, validation bytes, info) as uint8 arrays; validation is capped at a fifth
      of ``max_train_bytes``.

    Raises:
      FileNotFoundError: if the standard library sources are not installed.
    """
    root = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(root, "*.py")))
    if len(files) < 20:
        raise FileNotFoundError(f"stdlib_bytes: expected the standard library's .py files in "
                                f"{root}, found {len(files)}")
    train, val = [], []
    for i, f in enumerate(files):
        with open(f, "rb") as fh:
            (val if i % 10 == 0 else train).append(fh.read())
    tr = np.frombuffer(b"\n".join(train), np.uint8)[:max_train_bytes]
    va = np.frombuffer(b"\n".join(val), np.uint8)[: max(max_train_bytes // 5, 10_000)]
    info = {"stdlib": root, "files": len(files), "val_files": len(val), "train_bytes": len(tr),
            "val_bytes": len(va)}
    return tr, va, info
