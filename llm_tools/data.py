"""A real text corpus every Python install ships: the standard library's own sources.

The corpus is the ``.py`` files directly in the standard library directory plus
``pydoc_data/topics.py`` (the language reference as text). The train/validation split is by
file and fixed: a file is in validation iff ``sha1(file name)`` mod 10 is 0 (about 10%), so
it does not depend on the order files are listed in, nor on which other files exist.
Files are byte-tokenized (:class:`~llm_tools.tokenizer.ByteTokenizer`) and joined with EOS.
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from llm_tools.tokenizer import ByteTokenizer

__all__ = ["Corpus", "sample_windows", "stdlib_corpus", "stdlib_files"]


class Corpus(NamedTuple):
    """Byte-token streams (int32) of the train and validation files, and the file names."""

    train: np.ndarray
    valid: np.ndarray
    train_files: tuple[str, ...]
    valid_files: tuple[str, ...]


def stdlib_files() -> list[Path]:
    """The corpus files, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    topics = root / "pydoc_data" / "topics.py"
    if topics.is_file():
        files.append(topics)
    if not files:
        raise FileNotFoundError(f"stdlib_files: no .py files under {root}")
    return files


def _is_valid(name: str) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10 == 0


def stdlib_corpus(max_bytes: int | None = None) -> Corpus:
    """Loads and byte-tokenizes the corpus with its fixed by-file split.

    Args:
      max_bytes: if given, keep only the first ``max_bytes`` tokens of each stream (for quick
        runs); must be positive.
    """
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes <= 0):
        raise ValueError(f"stdlib_corpus: max_bytes must be a positive int or None, got "
                         f"{max_bytes!r}")
    tok = ByteTokenizer()
    streams = {"train": [], "valid": []}
    names = {"train": [], "valid": []}
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib_files():
        name = str(path.relative_to(root))
        part = "valid" if _is_valid(name) else "train"
        data = np.frombuffer(path.read_bytes(), np.uint8).astype(np.int32)
        streams[part].extend([data, np.array([tok.eos_id], np.int32)])
        names[part].append(name)
    out = {k: np.concatenate(v) for k, v in streams.items()}
    if max_bytes is not None:
        out = {k: v[:max_bytes] for k, v in out.items()}
    return Corpus(out["train"], out["valid"], tuple(names["train"]), tuple(names["valid"]))


def sample_windows(key: jax.Array, tokens: jax.Array, batch_size: int, length: int) -> jax.Array:
    """``batch_size`` random windows of ``length`` tokens, ``[batch_size, length]`` (jittable).

    Raises:
      ValueError: if the stream is shorter than one window.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 1 or tokens.shape[0] < length + 1:
        raise ValueError(f"sample_windows: tokens must be 1-D and longer than length={length}, "
                         f"got shape {tokens.shape}")
    starts = jax.random.randint(key, (batch_size,), 0, tokens.shape[0] - length)
    return jax.vmap(lambda s: jax.lax.dynamic_slice(tokens, (s,), (length,)))(starts)
