"""The small trained reasoning model that ships with the package.

``llm_tools/thought_branches/reasoner/`` holds a 3-layer, 96-wide llm_tools Llama with a word
tokenizer (``config.json``, ``params.npz``, ``vocab.json``), trained on generated CoT-formatted
arithmetic by ``python -m experiments.thought_branches.reasoner`` (command, held-out accuracy
and training log in ``train_log.json`` beside the weights and in docs/thought_branches.md).
Prompts are ``format_prompt(problem)`` = ``"Q: <question>\\nA:"``; the model answers with a
chain of thought ending in ``So the answer is N.`` and EOS.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["load_reasoner", "reasoner_path", "reasoner_sampler"]


def reasoner_path() -> Path:
    """Folder of the shipped weights."""
    return Path(__file__).resolve().parent / "reasoner"


def load_reasoner(path: str | os.PathLike | None = None):
    """``(model, tokenizer)`` of the trained reasoner (the shipped one by default).

    Raises:
      FileNotFoundError: if the folder lacks ``config.json``, ``params.npz`` or ``vocab.json``.
    """
    from llm_tools.thought_branches.vocab import WordTokenizer
    from llm_tools.train import load_model

    path = Path(path) if path is not None else reasoner_path()
    if not (path / "vocab.json").is_file():
        raise FileNotFoundError(f"load_reasoner: {path / 'vocab.json'} is missing (expected a "
                                "folder written by experiments.thought_branches.reasoner)")
    return load_model(path), WordTokenizer.load(path / "vocab.json")


def reasoner_sampler(path: str | os.PathLike | None = None, *, max_batch: int = 128):
    """A :class:`~llm_tools.JaxSampler` over the trained reasoner (BOS added to prompts)."""
    from llm_tools import JaxSampler

    model, tok = load_reasoner(path)
    return JaxSampler(model, tok, add_bos=True, max_batch=max_batch, name="tb-reasoner")
