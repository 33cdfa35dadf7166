"""Tokenizers behind one small interface: a byte-level one for tiny models, and byte-level BPE
built from a GGUF vocabulary with the ``tokenizers`` library; plus chat-template rendering.

Both expose ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``,
``bos_id``/``eos_id``/``pad_id``, ``stop_ids`` (ids that end a generation) and
``apply_chat_template(messages, add_generation_prompt=True) -> str``.

References:
  Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units", ACL 2016.
  Radford et al., "Language Models are Unsupervised Multitask Learners", 2019 (byte-level BPE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["BPETokenizer", "ByteTokenizer", "render_chat"]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def _check_messages(messages, who):
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"{who}: messages must be a non-empty list of {{'role', 'content'}} "
                         f"dicts, got {messages!r:.80}")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(
                m.get("content"), str):
            raise ValueError(f"{who}: message {i} must be a dict with str 'role' and 'content', "
                             f"got {m!r:.80}")


def render_chat(template: str, messages: Sequence[Mapping[str, str]], *,
                add_generation_prompt: bool = True, **extra) -> str:
    """Renders a Hugging Face-style Jinja chat template.

    Uses ``jinja2`` (sandboxed) when installed. Without it, only ChatML templates (those built
    on ``<|im_start|>``/``<|im_end|>``, as SmolLM2's) are rendered, by a built-in equivalent
    that also reproduces SmolLM2's default system message.

    Raises:
      ValueError: for malformed messages.
      ImportError: for a non-ChatML template when jinja2 is absent.
    """
    _check_messages(messages, "render_chat")
    if not isinstance(template, str) or not template:
        raise ValueError(f"render_chat: template must be a non-empty str, got {template!r:.60}")
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        ImmutableSandboxedEnvironment = None
    if ImmutableSandboxedEnvironment is not None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(template).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, **extra)
    if "<|im_start|>" not in template:
        raise ImportError("render_chat: this chat template needs jinja2 (pip install jinja2)")
    out = []
    default_system = None
    marker = "<|im_start|>system\n"
    if "messages[0]['role'] != 'system'" in template and marker in template:
        start = template.index(marker) + len(marker)
        default_system = template[start: template.index("<|im_end|>", start)]
    if default_system is not None and messages[0]["role"] != "system":
        out.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
    for m in messages:
        out.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


class ByteTokenizer:
    """Bytes as tokens: ids ``0..255`` are UTF-8 bytes; ``256`` BOS, ``257`` EOS, ``258`` PAD.

    Decoding skips the special ids and replaces invalid UTF-8 with U+FFFD.
    Chat uses the ChatML layout with plain-text markers.
    """

    bos_id, eos_id, pad_id = 256, 257, 258
    vocab_size = 259
    chat_template = CHATML_TEMPLATE

    @property
    def stop_ids(self) -> tuple[int, ...]:
        return (self.eos_id,)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"ByteTokenizer.encode: text must be str, got {type(text).__name__}")
        ids = list(text.encode("utf-8"))
        return [self.bos_id, *ids] if add_bos else ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """``(ids, spans)``: byte ids and, for each, the ``(start, end)`` of its character."""
        if not isinstance(text, str):
            raise TypeError(f"ByteTokenizer.encode_with_offsets: text must be str, got "
                            f"{type(text).__name__}")
        ids, spans = [], []
        for i, ch in enumerate(text):
            b = ch.encode("utf-8")
            ids += list(b)
            spans += [(i, i + 1)] * len(b)
        return ids, spans

    def decode(self, ids: Sequence[int]) -> str:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ByteTokenizer.decode: ids must lie in [0, {self.vocab_size}), "
                             f"got min {ids.min()}, max {ids.max()}")
        return bytes(int(i) for i in ids if i < 256).decode("utf-8", errors="replace")

    def token_bytes(self, i: int) -> bytes:
        return bytes([i]) if i < 256 else b""

    def apply_chat_template(self, messages, *, add_generation_prompt: bool = True) -> str:
        return render_chat(self.chat_template, messages,
                           add_generation_prompt=add_generation_prompt)


class BPETokenizer:
    """Byte-level BPE from a GGUF ``gpt2``-model vocabulary, built with ``tokenizers``.

    The pre-tokenizer is the one SmolLM/StarCoder vocabularies were trained with (llama.cpp's
    ``smollm`` pre-type): each digit split off, then GPT-2's byte-level regex split. Tokens
    marked CONTROL in the file (type 3, e.g. ``<|im_start|>``) are added as special tokens so
    they are matched whole.

    Args:
      tokens: the vocabulary, in id order, as the GGUF spells it (byte-level alphabet).
      merges: ``"a b"`` merge rules, best first.
      token_types: GGUF token types (1 normal, 3 control, 4 user-defined), or None.
      bos_id, eos_id, pad_id: special ids from the file.
      chat_template: the Jinja chat template from the file, or None.
      pre: the GGUF pre-tokenizer name (``smollm``, ``gpt2``, ...).
    """

    def __init__(self, tokens: Sequence[str], merges: Sequence[str],
                 token_types: Sequence[int] | None = None, *, bos_id: int | None = None,
                 eos_id: int | None = None, pad_id: int | None = None,
                 chat_template: str | None = None, pre: str = "smollm"):
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        if not tokens:
            raise ValueError("BPETokenizer: tokens must be a non-empty vocabulary")
        vocab = {t: i for i, t in enumerate(tokens)}
        pairs = []
        for m in merges:
            a, sep, b = m.partition(" ")
            if not sep:
                raise ValueError(f"BPETokenizer: merge {m!r} is not of the form 'a b'")
            pairs.append((a, b))
        tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
        splits = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if pre in ("smollm", "starcoder", "refact", "codeshell"):
            splits.insert(0, pre_tokenizers.Digits(individual_digits=True))
        elif pre not in ("gpt2", "default"):
            raise ValueError(f"BPETokenizer: unsupported GGUF pre-tokenizer {pre!r}; supported: "
                             "smollm, starcoder, refact, codeshell, gpt2, default")
        tok.pre_tokenizer = pre_tokenizers.Sequence(splits)
        tok.decoder = decoders.ByteLevel()
        types = list(token_types) if token_types is not None else [1] * len(tokens)
        if len(types) != len(tokens):
            raise ValueError(f"BPETokenizer: token_types has {len(types)} entries but tokens has "
                             f"{len(tokens)}")
        special = [AddedToken(t, special=True, normalized=False)
                   for t, ty in zip(tokens, types, strict=True) if ty == 3]
        user = [AddedToken(t, special=False, normalized=False)
                for t, ty in zip(tokens, types, strict=True) if ty == 4]
        if special:
            tok.add_special_tokens(special)
        if user:
            tok.add_tokens(user)
        self._tok = tok
        self._special_ids = {vocab[t.content] for t in special}
        self._tokens = list(tokens)
        self.vocab_size = len(tokens)
        self.bos_id, self.eos_id = bos_id, eos_id
        self.pad_id = pad_id if pad_id is not None else eos_id
        self.chat_template = chat_template
        self.pre = pre

    @property
    def backend(self):
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    @property
    def stop_ids(self) -> tuple[int, ...]:
        ids = [self.eos_id]
        end = self._tok.token_to_id("<|im_end|>")
        if end is not None:
            ids.append(end)
        return tuple(i for i in dict.fromkeys(ids) if i is not None)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: text must be str, got {type(text).__name__}")
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if add_bos:
            if self.bos_id is None:
                raise ValueError("BPETokenizer.encode: add_bos=True but the vocabulary has no BOS")
            ids = [self.bos_id, *ids]
        return ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """``(ids, spans)``: token ids and the ``(start, end)`` characters of ``text`` each
        covers (a token holding part of a multi-byte character spans that character)."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode_with_offsets: text must be str, got "
                            f"{type(text).__name__}")
        enc = self._tok.encode(text, add_special_tokens=False)
        return list(enc.ids), [tuple(o) for o in enc.offsets]

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        ids = [int(i) for i in np.asarray(ids, np.int64).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"BPETokenizer.decode: ids must lie in [0, {self.vocab_size}), got "
                             f"{bad[:5]}")
        return self._tok.decode(ids, skip_special_tokens=skip_special)

    def token_bytes(self, i: int) -> bytes:
        """The raw bytes of one token (empty for special tokens)."""
        if i in self._special_ids:
            return b""
        table = _unicode_to_bytes()
        return bytes(table[ch] for ch in self._tokens[i] if ch in table)

    def apply_chat_template(self, messages, *, add_generation_prompt: bool = True) -> str:
        template = self.chat_template or CHATML_TEMPLATE
        return render_chat(template, messages, add_generation_prompt=add_generation_prompt)


def _unicode_to_bytes() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}
