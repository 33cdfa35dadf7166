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
    generate_tokens,
    render_chat,
    sample_key,
    tiny_config,
)
from llm_tools.sampler import split_at_boundary

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


class _StopAt(ByteTokenizer):
    """A byte tokenizer whose stop ids are given (to end rows on an ordinary byte)."""

    def __init__(self, stop_ids):
        self._stop = tuple(stop_ids)

    @property
    def stop_ids(self):
        return self._stop


def test_keys_are_fold_in_of_prompt_and_sample_index(lm):
    kw = dict(max_new_tokens=6, temperature=1.0, key=jax.random.key(5))
    small = lm.generate(["abc", "hello"], n=2, **kw)
    big = lm.generate(["abc", "hello", "xyz"], n=4, **kw)
    for i in range(2):
        assert [c.token_ids for c in big[i][:2]] == [c.token_ids for c in small[i]]
    # sample j of prompt i is generate_tokens with key fold_in(fold_in(key, i), j)
    want = generate_tokens(lm.model, [list(b"hello")], sample_key(jax.random.key(5), 1, 3)[None],
                           max_new_tokens=6, temperature=1.0)
    n = int(want.lengths[0])
    assert big[1][3].token_ids == tuple(want.tokens[0, :n].tolist())
    np.testing.assert_allclose(big[1][3].logprobs, want.logprobs[0, :n], atol=1e-5)


def test_generate_ids_equals_generate_and_resample_ids(lm):
    kw = dict(max_new_tokens=5, temperature=0.7, top_p=0.9, n=2, key=jax.random.key(2))
    by_text = lm.generate(["abc", "hi"], **kw)
    assert lm.generate_ids([list(b"abc"), list(b"hi")], **kw) == by_text
    kw.pop("n")
    again = lm.resample_ids(list(b"abc"), 2, **kw)  # another batch shape: rounding may differ
    assert [c.token_ids for c in again] == [c.token_ids for c in by_text[0]]
    np.testing.assert_allclose([c.logprobs for c in again], [c.logprobs for c in by_text[0]],
                               atol=1e-5)


def test_stop_token_is_kept_with_its_logprob(lm):
    full = lm.generate(["xyz"], max_new_tokens=12, temperature=0.0, key=jax.random.key(0))[0][0]
    stop = full.token_ids[4]
    first = full.token_ids.index(stop)
    lm_stop = JaxSampler(lm.model, _StopAt([stop]))
    c = lm_stop.generate(["xyz"], max_new_tokens=12, temperature=0.0, key=jax.random.key(0))[0][0]
    assert c.token_ids == full.token_ids[: first + 1] and c.token_ids[-1] == stop
    assert c.ends_with_stop_token and c.finish_reason == "stop"
    assert len(c.logprobs) == len(c.token_ids)
    assert c.text == ByteTokenizer().decode(list(c.token_ids[:-1]))
    # the stop token's logprob is the model's log-softmax at that position
    ids = list(b"xyz") + list(c.token_ids)
    logp = jax.nn.log_softmax(lm.model(jnp.asarray([ids]))[0], -1)
    assert c.logprobs[-1] == pytest.approx(float(logp[len(ids) - 2, stop]), abs=1e-4)
    assert not full.ends_with_stop_token and full.finish_reason == "length"


def test_logprobs_at_the_sampling_temperature(lm):
    c = lm.generate(["ab"], max_new_tokens=4, temperature=0.5, key=jax.random.key(1))[0][0]
    ids = list(b"ab") + list(c.token_ids)
    logp = jax.nn.log_softmax(lm.model(jnp.asarray([ids]))[0] / 0.5, -1)
    want = [float(logp[1 + t, tok]) for t, tok in enumerate(c.token_ids)]
    np.testing.assert_allclose(c.logprobs, want, atol=1e-4)


def test_prefix_sharing_equals_no_sharing(lm):
    unshared = JaxSampler(lm.model, lm.tokenizer, share_prefixes=False)
    prompts = [list(b"the cat sat on"), list(b"the cat"), list(b"the cat sat on"), list(b"a")]
    kw = dict(max_new_tokens=7, temperature=0.9, top_k=20, n=3, key=jax.random.key(8))
    a = lm.generate_ids(prompts, **kw)
    b = unshared.generate_ids(prompts, **kw)
    for x, y in zip(a, b, strict=True):
        assert [c.token_ids for c in x] == [c.token_ids for c in y]
        np.testing.assert_allclose([c.logprobs for c in x], [c.logprobs for c in y], atol=1e-5)


def test_text_logprobs_tokenize_once_and_reject_a_split_token(smollm2):
    lm = JaxSampler(smollm2.model, smollm2.tokenizer)
    tok = smollm2.tokenizer
    whole = tok.encode("Hello world")
    a, b = lm.logprobs(["Hello", "The capital of France is"], [" world", " Paris."])
    assert a.token_ids == tuple(whole[1:])
    c = lm.logprobs_ids([whole[:1]], [whole[1:]])[0]
    np.testing.assert_allclose(a.token_logprobs, c.token_logprobs, atol=1e-5)
    assert b.token_ids == tuple(tok.encode("The capital of France is Paris.")[5:])
    with pytest.raises(ValueError, match=r"boundary falls inside token .*' world'"):
        lm.logprobs(["Hello wor"], ["ld"])
    with pytest.raises(ValueError, match="boundary falls inside token"):
        lm.logprobs(["Hello "], ["world"])  # " world" is one token
    # special tokens and multi-byte characters on both sides of the boundary
    chat = tok.apply_chat_template([{"role": "user", "content": "Dis-moi: café"}])
    ids, k = split_at_boundary(tok, chat, "Le café 🙂 est")
    assert ids[:k] == tok.encode(chat) and tok.decode(ids[k:]) == "Le café 🙂 est"
    assert split_at_boundary(ByteTokenizer(), "café", "s") == (list("cafés".encode()), 5)


def test_bad_id_inputs(lm):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"prompt_ids\[0\] has ids outside the vocabulary "
                                         r"\[0, 259\): min 0, max 300"):
        lm.generate_ids([[0, 300]], max_new_tokens=2, key=key)
    with pytest.raises(ValueError, match=r"prompt_ids\[1\] is empty"):
        lm.generate_ids([[1], []], max_new_tokens=2, key=key)
    with pytest.raises(TypeError, match="prompt_ids must be a list of token-id lists, got str"):
        lm.generate_ids("abc", max_new_tokens=2, key=key)
    with pytest.raises(TypeError, match="prefix_ids must be a list of token ids, got str"):
        lm.resample_ids("abc", 2, max_new_tokens=2, key=key)
    with pytest.raises(ValueError, match=r"continuation_ids\[0\] has ids outside"):
        lm.logprobs_ids([[1]], [[-1]])
    with pytest.raises(ValueError, match="prompt_ids has 1 entries but continuation_ids has 2"):
        lm.logprobs_ids([[1]], [[2], [3]])
    with pytest.raises(TypeError, match="must be a flat list of int token ids"):
        lm.logprobs_ids([[1.5]], [[2]])


def test_update_weights_from_a_training_state(lm):
    import optax

    from llm_tools import init_train_state

    other = Llama(CFG, rngs=nnx.Rngs(12))
    sampler = JaxSampler(Llama(CFG, rngs=nnx.Rngs(11)), ByteTokenizer())
    _, state = init_train_state(other, optax.sgd(0.1))
    sampler.update_weights(state.params)
    kw = dict(max_new_tokens=6, temperature=0.8, n=2, key=jax.random.key(3))
    want = JaxSampler(other, ByteTokenizer()).generate(["abc"], **kw)
    assert [c.token_ids for c in sampler.generate(["abc"], **kw)[0]] == [
        c.token_ids for c in want[0]]
    np.testing.assert_allclose(sampler.logprobs(["ab"], ["cd"])[0].token_logprobs,
                               JaxSampler(other, ByteTokenizer()).logprobs(["ab"], ["cd"])[0]
                               .token_logprobs, atol=1e-5)
    with pytest.raises(TypeError, match="expected a Llama or an nnx.State"):
        sampler.update_weights({"wq": 1})


def test_hidden_states_ids(lm):
    from llm_tools import hidden_states

    hs = lm.hidden_states_ids([list(b"hello"), list(b"hi")], layers=[0, 2])
    assert [h.shape for h in hs] == [(2, 5, CFG.dim), (2, 2, CFG.dim)]
    want = hidden_states(lm.model, jnp.asarray([list(b"hi")]))[jnp.array([0, 2]), 0]
    np.testing.assert_allclose(hs[1], want, atol=1e-5)
    with pytest.raises(ValueError, match=r"layers must be a non-empty list of indices in "
                                         r"\[0, 2\]"):
        lm.hidden_states_ids([[1]], layers=[3])


def test_embed_computes_no_vocabulary_logits(lm):
    from llm_tools.sampler import _mean_hidden

    jaxpr = str(jax.make_jaxpr(lambda t, m: _mean_hidden(lm.model, t, m))(
        jnp.ones((1, 4), jnp.int32), jnp.ones((1, 4), bool)))
    assert f",{CFG.vocab_size}]" not in jaxpr.replace(" ", "")  # no [.., V] array
