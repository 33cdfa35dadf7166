"""The SmolLM2 comparison against Hugging Face transformers (shared by claims and bench)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from llm_tools import generate_tokens, load_gguf, smollm2_path

PROMPT = [{"role": "user", "content": "Write a story about a robot who learns to paint."}]


def load_reference(path):
    """transformers' LlamaForCausalLM on the same GGUF (it dequantizes), fp32, eval mode."""
    import torch
    import transformers

    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return hf.eval()


def hf_greedy(hf, ids, n):
    """Greedy decoding with transformers' own KV cache, no stopping."""
    import torch

    out_ids, past, nxt = [], None, torch.tensor([ids])
    with torch.no_grad():
        for _ in range(n):
            out = hf(nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            t = int(out.logits[0, -1].argmax())
            out_ids.append(t)
            nxt = torch.tensor([[t]])
    return out_ids


def compare(n_greedy: int = 32) -> dict:
    """Max |logit difference| on the chat prompt and greedy agreement over ``n_greedy`` tokens.

    Raises:
      FileNotFoundError: SmolLM2 not fetched. ImportError: torch/transformers absent.
    """
    import torch

    path = smollm2_path()
    pre = load_gguf(path, max_seq_len=512)
    hf = load_reference(path)
    tok = pre.tokenizer
    ids = tok.encode(tok.apply_chat_template(PROMPT))
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0].numpy()
    ours = np.asarray(pre.model(jnp.asarray([ids]))[0])
    t0 = time.perf_counter()
    hf_ids = hf_greedy(hf, ids, n_greedy)
    gen = generate_tokens(pre.model, [ids], jax.random.split(jax.random.key(0), 1),
                          max_new_tokens=n_greedy, temperature=0.0)
    jax_ids = gen.tokens[0].tolist()
    agree = next((i for i, (a, b) in enumerate(zip(hf_ids, jax_ids, strict=True)) if a != b),
                 n_greedy)
    return {
        "max_abs_logit_diff": float(np.abs(ours - ref).max()),
        "max_abs_logit": float(np.abs(ref).max()),
        "prompt_tokens": len(ids),
        "greedy_tokens": n_greedy,
        "greedy_identical": jax_ids == hf_ids,
        "greedy_agreeing_prefix": agree,
        "greedy_text": tok.decode(jax_ids),
        "seconds": time.perf_counter() - t0,
    }
