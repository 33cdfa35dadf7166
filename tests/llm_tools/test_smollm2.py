"""SmolLM2-135M-Instruct from its GGUF against Hugging Face transformers on the same file."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_tools import generate_tokens

PROMPT = [{"role": "user", "content": "Write a story about a robot who learns to paint."}]


@pytest.fixture(scope="module")
def reference(smollm2_path):
    torch = pytest.importorskip("torch", reason="reference extra (torch) not installed")
    transformers = pytest.importorskip("transformers",
                                       reason="reference extra (transformers) not installed")
    pytest.importorskip("accelerate", reason="reference extra (accelerate) not installed")
    torch.set_num_threads(2)
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(smollm2_path.parent), gguf_file=smollm2_path.name, dtype=torch.float32)
    hf.eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(smollm2_path.parent),
                                                     gguf_file=smollm2_path.name)
    return torch, hf, tok


def test_smollm2_architecture(smollm2):
    c = smollm2.model.config
    assert (c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.vocab_size, c.head_dim) == (
        30, 576, 9, 3, 49152, 64)
    assert c.tie_embeddings and c.rope_base == 100000.0


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_logits_and_greedy_match_transformers(smollm2, reference):
    torch, hf, _ = reference
    tok = smollm2.tokenizer
    ids = tok.encode(tok.apply_chat_template(PROMPT))
    with torch.no_grad():
        ref_logits = hf(torch.tensor([ids])).logits[0].numpy()
    ours = np.asarray(smollm2.model(jnp.asarray([ids]))[0])
    diff = float(np.abs(ours - ref_logits).max())
    print(f"\nSmolLM2 max |logit diff| vs transformers over {len(ids)} tokens: {diff:.2e}")
    assert diff <= 1e-3

    # greedy 32 tokens: transformers with its own KV cache, no stopping
    hf_ids, past, nxt = [], None, torch.tensor([ids])
    with torch.no_grad():
        for _ in range(32):
            out = hf(nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            t = int(out.logits[0, -1].argmax())
            hf_ids.append(t)
            nxt = torch.tensor([[t]])
    gen = generate_tokens(smollm2.model, [ids], jax.random.split(jax.random.key(0), 1),
                          max_new_tokens=32, temperature=0.0)
    assert gen.tokens[0].tolist() == hf_ids
    print("greedy 32:", repr(tok.decode(hf_ids)))


def test_tokenizer_matches_transformers_gguf_tokenizer(smollm2, reference):
    _, _, hf_tok = reference
    for text in ["Hello world, the year 2024!", "naïve café — 東京 🙂\n\tdef f(x): return x",
                 "<|im_start|>user\nhi<|im_end|>\n"]:
        assert smollm2.tokenizer.encode(text) == hf_tok.encode(text, add_special_tokens=False)
