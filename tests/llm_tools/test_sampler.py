"""JaxSampler: the Sampler protocol on a tiny byte-level model, and a SmolLM2 chat."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_tools import (
    ByteTokenizer,
    JaxSampler,
    Llama,
    Sampler,
    forward,
    render_chat,
    tiny_config,
)

CFG = tiny_config(max_seq_len=64)


@pytest.fixture(scope="module")
def lm():
    return JaxSampler(Llama(CFG, rngs=nnx.Rngs(11)), ByteTokenizer())


def test_protocol(lm):
    assert isinstance(lm, Sampler)


def test_generate_is_reproducible_and_consistent(lm):
    kw = dict(max_new_tokens=10, temperature=1.0, n=3, key=jax.random.key(4))
    a = lm.generate(["abc", "hello"], **kw)
    b = lm.generate(["abc", "hello"], **kw)
    assert a == b
    assert [len(x) for x in a] == [3, 3]
    assert len({c.token_ids for c in a[0]}) > 1  # the n samples differ
    tok = lm.tokenizer
    for comps in a:
        for c in comps:
            assert c.text == tok.decode(list(c.token_ids))
            assert len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs)
            assert c.finish_reason in ("stop", "length")
    # resample is generate of one prefix
    assert lm.resample("abc", 3, max_new_tokens=10, temperature=1.0,
                       key=jax.random.key(4)) == lm.generate(["abc"], **kw)[0]
    # max_batch chunking does not change anything (each row has its own key)
    small = JaxSampler(lm.model, lm.tokenizer, max_batch=2)
    for x, y in zip(small.generate(["abc", "hello"], **kw), a, strict=True):
        assert [c.token_ids for c in x] == [c.token_ids for c in y]
        np.testing.assert_allclose([c.logprobs for c in x], [c.logprobs for c in y], atol=1e-5)


def test_stop_strings_cut_the_text(lm):
    full = lm.generate(["xyz"], max_new_tokens=16, temperature=0.0, key=jax.random.key(0))[0][0]
    stop = next(ch for ch in full.text[2:] if ch.isprintable() and ch != "\ufffd")
    cut = lm.generate(["xyz"], max_new_tokens=16, temperature=0.0, stop=[stop],
                      key=jax.random.key(0))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert stop in lm.tokenizer.decode(list(cut.token_ids))
    assert cut.token_ids == full.token_ids[: len(cut.token_ids)]


def test_logprobs_equal_softmax_of_the_model(lm):
    scores = lm.logprobs(["ab", "hello wor"], ["cd", "ld"])
    for prompt, cont, score in zip(["ab", "hello wor"], ["cd", "ld"], scores, strict=True):
        ids = list((prompt + cont).encode())
        logp = jax.nn.log_softmax(lm.model(jnp.asarray([ids]))[0], -1)
        expected = [float(logp[len(prompt) - 1 + t, ids[len(prompt) + t]])
                    for t in range(len(cont))]
        np.testing.assert_allclose(score.token_logprobs, expected, atol=1e-5)
        assert score.total == pytest.approx(sum(expected), abs=1e-4)
        assert score.token_ids == tuple(cont.encode())


def test_embed_is_mean_hidden_state_independent_of_batch(lm):
    texts = ["a", "some longer text here"]
    e = lm.embed(texts)
    assert e.shape == (2, CFG.dim) and e.dtype == np.float32
    _, _, h = forward(lm.model, jnp.asarray([list(texts[1].encode())]))
    np.testing.assert_allclose(e[1], np.asarray(h[0]).mean(0), atol=1e-5)
    np.testing.assert_allclose(lm.embed([texts[0]])[0], e[0], atol=1e-5)


def test_chat_applies_the_template(lm):
    msgs = [{"role": "user", "content": "hi"}]
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert lm.tokenizer.apply_chat_template(msgs) == prompt
    kw = dict(max_new_tokens=5, temperature=0.5, n=2, key=jax.random.key(1))
    assert lm.chat(msgs, **kw) == lm.generate([prompt], **kw)[0]


def test_bad_inputs(lm):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="prompts must be a non-empty list of str"):
        lm.generate([], max_new_tokens=3, key=key)
    with pytest.raises(TypeError, match="prompts must be a list of str, got str"):
        lm.generate("abc", max_new_tokens=3, key=key)
    with pytest.raises(TypeError, match=r"JaxSampler.resample: prefix must be str, got list"):
        lm.resample(["abc"], 2, max_new_tokens=3, key=key)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int, got 0"):
        lm.generate(["a"], max_new_tokens=0, key=key)
    with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
        lm.generate(["a"], max_new_tokens=3, temperature=-1.0, key=key)
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\], got 1.2"):
        lm.generate(["a"], max_new_tokens=3, top_p=1.2, key=key)
    with pytest.raises(ValueError, match="n must be a positive int"):
        lm.generate(["a"], max_new_tokens=3, n=0, key=key)
    with pytest.raises(ValueError, match="stop must be a list of non-empty strings"):
        lm.generate(["a"], max_new_tokens=3, stop="x", key=key)
    with pytest.raises(TypeError, match="key must be a single typed key"):
        lm.generate(["a"], max_new_tokens=3, key=0)
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        lm.generate([""], max_new_tokens=3, key=key)
    with pytest.raises(ValueError, match="> the context length 64"):
        lm.generate(["x" * 60], max_new_tokens=10, key=key)
    with pytest.raises(ValueError, match="prompts has 2 entries but continuations has 1"):
        lm.logprobs(["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"continuations\[0\] is an empty string"):
        lm.logprobs(["a"], [""])
    with pytest.raises(ValueError, match="texts must be a non-empty list"):
        lm.embed([])
    with pytest.raises(ValueError, match="messages must be a non-empty list"):
        lm.chat([], max_new_tokens=3, key=key)
    with pytest.raises(TypeError, match="tokenizer lacks"):
        JaxSampler(lm.model, object())
    with pytest.raises(ValueError, match="render_chat: template must be a non-empty str"):
        render_chat("", [{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="render_chat: messages must be a non-empty list"):
        render_chat("{{ messages }}", [])


def test_smollm2_chat(smollm2):
    lm = JaxSampler(smollm2.model, smollm2.tokenizer)
    reply = lm.chat([{"role": "user", "content": "What is the capital of France?"}],
                    max_new_tokens=16, temperature=0.0, key=jax.random.key(0))[0]
    assert "Paris" in reply.text and reply.finish_reason == "stop"
    s = lm.logprobs(["The capital of France is"] * 2, [" Paris", " London"])
    assert s[0].total > s[1].total
