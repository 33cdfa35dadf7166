"""Tiny configurations of the same Llama architecture, for tests and quick experiments."""

from __future__ import annotations

from llm_tools.model import LlamaConfig
from llm_tools.tokenizer import ByteTokenizer

__all__ = ["tiny_config"]


def tiny_config(*, dim: int = 64, n_layers: int = 2, n_heads: int = 4, n_kv_heads: int = 2,
                hidden_dim: int | None = None, max_seq_len: int = 256,
                vocab_size: int = ByteTokenizer.vocab_size, **kwargs) -> LlamaConfig:
    """A small byte-level Llama config (vocab 259 = bytes + BOS/EOS/PAD by default).

    ``hidden_dim`` defaults to ``8/3·dim`` rounded up to a multiple of 8 (Llama's SwiGLU rule).
    """
    if hidden_dim is None:
        hidden_dim = -(-int(8 * dim / 3) // 8) * 8
    return LlamaConfig(vocab_size=vocab_size, dim=dim, n_layers=n_layers, n_heads=n_heads,
                       n_kv_heads=n_kv_heads, hidden_dim=hidden_dim, max_seq_len=max_seq_len,
                       **kwargs)
