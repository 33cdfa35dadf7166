"""A small byte-level BPE vocabulary trained on the task's own text, for the small models.

Byte-level models spend four times more positions than a BPE on English word problems, which
on a CPU decides whether an experiment fits its budget. :func:`train_tokenizer` learns a
byte-level BPE (digits split one by one, as SmolLM2's pre-tokenizer does, so numbers stay
compositional) with ``tokenizers`` and returns an :class:`llm_tools.BPETokenizer`, so the
samplers and the server use it like any other. Every byte is in the alphabet, so any text
(held-out problems included) encodes losslessly. Train it on the training split only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from llm_tools.tokenizer import BPETokenizer

__all__ = ["SPECIAL_TOKENS", "load_tokenizer", "save_tokenizer", "train_tokenizer"]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>")


def _build(tokens: list[str], merges: list[str]) -> BPETokenizer:
    types = [3 if t in SPECIAL_TOKENS else 1 for t in tokens]
    index = {t: i for i, t in enumerate(tokens)}
    tok = BPETokenizer(tokens, merges, types, bos_id=index["<|endoftext|>"],
                       eos_id=index["<|endoftext|>"], pad_id=index["<|pad|>"], pre="smollm")
    tok.merges = list(merges)  # kept for save_tokenizer
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> BPETokenizer:
    """Learns a byte-level BPE of ``vocab_size`` tokens (specials included) from ``texts``.

    Raises:
      ValueError: if ``vocab_size`` is below 256 + the specials or ``texts`` is empty.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    minimum = 256 + len(SPECIAL_TOKENS)
    if not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(f"train_tokenizer: vocab_size must be an int >= {minimum}, got "
                         f"{vocab_size!r}")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("train_tokenizer: texts is empty")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return _build(tokens, merges)


def save_tokenizer(tokenizer: BPETokenizer, path: str | os.PathLike) -> Path:
    """Writes the vocabulary and merges as JSON (atomically)."""
    merges = getattr(tokenizer, "merges", None)
    if merges is None:
        raise ValueError("save_tokenizer: only tokenizers from train_tokenizer/load_tokenizer "
                         "can be saved")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps({"tokens": tokenizer._tokens, "merges": merges}))
    os.replace(tmp, path)
    return path


def load_tokenizer(path: str | os.PathLike) -> BPETokenizer:
    """Reads a tokenizer written by :func:`save_tokenizer`.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: if the file is not such a tokenizer.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "tokens" not in data or "merges" not in data:
        raise ValueError(f"load_tokenizer: {path} is not a saved tokenizer")
    return _build(list(data["tokens"]), list(data["merges"]))
