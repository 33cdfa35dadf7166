"""A word-level tokenizer with byte fallback for the small trained reasoning model.

Byte tokens make a word problem and its chain of thought ~300 tokens; on two CPU cores that
made training and the 100-rollout sweeps too slow. This tokenizer keeps whole words (with their
leading space, as BPE vocabularies do: ``" apples"``), single digits (``"4"``, ``" 4"``) and
punctuation, learned from a corpus, and falls back to raw bytes for anything else, so every
string round-trips exactly (``decode(encode(s)) == s``) and off-policy sentences with unseen
words still encode. Ids ``0..255`` are bytes, then BOS, EOS, PAD, then the learned pieces.
It offers the tokenizer interface :class:`~llm_tools.JaxSampler` uses (``encode``, ``decode``,
``token_bytes``, ``stop_ids``, ``apply_chat_template``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from llm_tools.tokenizer import CHATML_TEMPLATE, render_chat

__all__ = ["WordTokenizer"]

_PIECE = re.compile(r" ?\d| ?[A-Za-z]+| ?[^\sA-Za-z\d]|\n| +")


class WordTokenizer:
    """Words, digits and punctuation as tokens, bytes for the rest.

    Args:
      pieces: the learned pieces (each a string :data:`_PIECE` yields), in id order.
    """

    bos_id, eos_id, pad_id = 256, 257, 258
    chat_template = CHATML_TEMPLATE

    def __init__(self, pieces: Sequence[str]):
        pieces = list(pieces)
        bad = [p for p in pieces if not isinstance(p, str) or _PIECE.fullmatch(p) is None]
        if bad:
            raise ValueError(f"WordTokenizer: pieces must be single pre-tokens, got {bad[:3]}")
        if len(set(pieces)) != len(pieces):
            raise ValueError("WordTokenizer: pieces has duplicates")
        self.pieces = pieces
        self.index = {p: 259 + k for k, p in enumerate(pieces)}
        self.vocab_size = 259 + len(pieces)

    @classmethod
    def train(cls, texts: Iterable[str], *, min_count: int = 1) -> WordTokenizer:
        """Learns every piece seen at least ``min_count`` times in ``texts``."""
        counts = Counter(p for t in texts for p in _PIECE.findall(t))
        return cls(sorted(p for p, c in counts.items() if c >= min_count and
                          len(p.encode("utf-8")) > 1))

    @property
    def stop_ids(self) -> tuple[int, ...]:
        return (self.eos_id,)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer.encode: text must be str, got {type(text).__name__}")
        ids = [self.bos_id] if add_bos else []
        pos = 0
        for m in _PIECE.finditer(text):
            if m.start() > pos:  # characters no piece matched (other whitespace)
                ids += list(text[pos:m.start()].encode("utf-8"))
            p = m.group()
            k = self.index.get(p)
            ids += [k] if k is not None else list(p.encode("utf-8"))
            pos = m.end()
        ids += list(text[pos:].encode("utf-8"))
        return ids

    def token_bytes(self, i: int) -> bytes:
        i = int(i)
        if 0 <= i < 256:
            return bytes([i])
        if i < 259:
            return b""
        return self.pieces[i - 259].encode("utf-8")

    def decode(self, ids: Sequence[int]) -> str:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"WordTokenizer.decode: ids must lie in [0, {self.vocab_size}), "
                             f"got min {ids.min()}, max {ids.max()}")
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages, *, add_generation_prompt: bool = True) -> str:
        return render_chat(self.chat_template, messages,
                           add_generation_prompt=add_generation_prompt)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"pieces": self.pieces}, indent=0), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordTokenizer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["pieces"])
