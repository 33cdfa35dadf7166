"""Rollout engine and store: token cuts, keys, resume after interruption, refusing to mix."""

import json
import re

import jax
import numpy as np
import pytest

from llm_tools.thought_branches import (
    RolloutStore,
    SamplingParams,
    Trace,
    embed_similarities,
    extract_answer,
    prefix_key,
    rollout_sets,
    sampler_identity,
    sweep,
)

from .conftest import COT, PROMPT, FakeSampler

KEY = jax.random.key(7)
PARAMS = SamplingParams(max_new_tokens=200)


def answer(text):
    return extract_answer(text, "numeric") if "answer is" in text else ""


def make_store(tmp_path, name="store", params=PARAMS, model="fake-reasoner"):
    return RolloutStore(tmp_path / name, model=model, params=params)


def test_trace_cuts_on_byte_tokens(fake_sampler):
    tr = Trace.from_text(fake_sampler, PROMPT, COT)
    assert [s.text for s in tr.sentences] == ["First I find the total.", "3 * 4 = 12.",
                                              "Then I subtract what he ate.", "12 - 2 = 10.",
                                              "So the answer is 10."]
    for i, s in enumerate(tr.sentences):
        assert tr.prefix_text(i) == COT[: s.start]
        assert fake_sampler.tokenizer.decode(tr.prefix_ids(i)) == PROMPT + COT[: s.start]
    assert tr.prefix_ids(tr.num_sentences) == list(tr.prompt_ids) + list(tr.cot_ids)


class WordTokenizer:
    """BPE-like: words carry their leading space (" The"), so a sentence start is mid-token."""

    def __init__(self):
        self.vocab, self.inv = {}, []

    def encode(self, text, add_bos=False):
        ids = []
        for piece in re.findall(r" ?[^\s]+|\s+", text):
            if piece not in self.vocab:
                self.vocab[piece] = len(self.inv)
                self.inv.append(piece)
            ids.append(self.vocab[piece])
        return ids

    def decode(self, ids):
        return "".join(self.inv[i] for i in ids)


def test_trace_cut_never_splits_a_token():
    tok = WordTokenizer()
    cot = "We add 3 and 4. We add 3 and 4. The total is 7 so the answer is 7"
    tr = Trace.from_ids(tok, tok.encode("Q: add\n"), tok.encode(cot))
    assert [s.text for s in tr.sentences] == ["We add 3 and 4.", "We add 3 and 4.",
                                              "The total is 7 so the answer is 7"]
    # sentence 1 starts at 16, inside the token " We" that begins at 15: cut before it
    assert tr.sentences[1].start == 16 and tr.cut_chars[1] == 15
    assert tok.decode(tr.cot_ids[: tr.cuts[1]]) == cot[:15]
    # the repeated sentence has its own cut (no string search)
    assert tr.cuts[0] == 0 and tr.cuts[1] > tr.cuts[0] and tr.cuts[2] > tr.cuts[1]


def test_sweep_draws_with_the_documented_keys(tmp_path, fake_sampler):
    tr = Trace.from_text(fake_sampler, PROMPT, COT)
    S, F = sweep(fake_sampler, tr, make_store(tmp_path), "p0", n=6, key=KEY, answer_fn=answer)
    assert F is None and len(S) == tr.num_sentences + 1
    for i in (0, 3):
        direct = FakeSampler().resample_ids(tr.prefix_ids(i), 6, max_new_tokens=200,
                                            key=prefix_key(KEY, "p0", "resample", i))
        assert [r.text for r in S[i]] == [c.text for c in direct]
    # answers read from the new trace (prefix + continuation), resampled = first sentence
    assert all(r.answer in ("10", "9", "5", "14") for rs in S for r in rs)
    assert S[-1][0].answer == "10" and S[-1][0].text == ""
    r = S[1][0]
    assert r.resampled == r.text.strip().split(". ")[0] + "."


def test_raising_n_keeps_existing_rollouts(tmp_path):
    tr = Trace.from_text(FakeSampler(), PROMPT, COT)
    store = make_store(tmp_path)
    small, _ = sweep(FakeSampler(), tr, store, "p0", n=3, key=KEY, answer_fn=answer)
    big, _ = sweep(FakeSampler(), tr, store, "p0", n=8, key=KEY, answer_fn=answer)
    fresh, _ = sweep(FakeSampler(), tr, make_store(tmp_path, "other"), "p0", n=8, key=KEY,
                     answer_fn=answer)
    assert [rs[:3] for rs in big] == small
    assert big == fresh


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    tr = Trace.from_text(FakeSampler(), PROMPT, COT)
    forced = "\nSo the answer is "
    full, full_f = sweep(FakeSampler(), tr, make_store(tmp_path, "a"), "p0", n=10, key=KEY,
                         answer_fn=answer, forced_suffix=forced)
    store = make_store(tmp_path, "b")
    with pytest.raises(RuntimeError, match="interrupted"):
        sweep(FakeSampler(fail_after=5), tr, store, "p0", n=10, key=KEY, answer_fn=answer,
              forced_suffix=forced)
    # a crash in the middle of writing leaves half a line: it is ignored and redrawn
    path = tmp_path / "b" / "p0" / "resample_2.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]) + lines[4][:25])
    second = FakeSampler()
    resumed, resumed_f = sweep(second, tr, store, "p0", n=10, key=KEY, answer_fn=answer,
                               forced_suffix=forced)
    assert resumed == full and resumed_f == full_f
    # only the unfinished prefixes were sampled again: 2·6 prefixes, 4 finished, 1 damaged
    assert second.calls == 12 - 5 + 1


def test_forced_answers(tmp_path, fake_sampler):
    tr = Trace.from_text(fake_sampler, PROMPT, COT)
    _, F = sweep(fake_sampler, tr, make_store(tmp_path), "p0", n=4, key=KEY, answer_fn=answer,
                 forced_suffix="\nSo the answer is ", forced_max_new_tokens=8)
    assert len(F) == tr.num_sentences + 1
    assert all(len(r.token_ids) <= 9 for rs in F for r in rs)
    assert all(r.resampled == "" for rs in F for r in rs)


def test_store_refuses_to_mix(tmp_path, fake_sampler):
    make_store(tmp_path)
    with pytest.raises(ValueError, match=r"holds rollouts of another params .*refusing to mix"):
        make_store(tmp_path, params=PARAMS.replace(temperature=0.7))
    with pytest.raises(ValueError, match=r"holds rollouts of another model \(model: stored "
                                         r"'fake-reasoner', now 'other'\)"):
        make_store(tmp_path, model="other")
    store = make_store(tmp_path)
    tr = Trace.from_text(fake_sampler, PROMPT, COT)
    sweep(fake_sampler, tr, store, "p0", n=2, key=KEY, answer_fn=answer, sentences=[0])
    tr2 = Trace.from_text(fake_sampler, PROMPT, COT.replace("10", "11"))
    with pytest.raises(ValueError, match="problem 'p0' is stored with another cot_ids; refusing"):
        sweep(fake_sampler, tr2, store, "p0", n=2, key=KEY, answer_fn=answer, sentences=[0])
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["model"] == "fake-reasoner" and manifest["params"]["temperature"] == 0.6


def test_similarities_and_rollout_sets(tmp_path, fake_sampler, fake_embedder):
    tr = Trace.from_text(fake_sampler, PROMPT, COT)
    S, _ = sweep(fake_sampler, tr, make_store(tmp_path), "p0", n=5, key=KEY, answer_fn=answer)
    sets = rollout_sets(tr, S, "10", embedder=fake_embedder)
    assert len(sets) == tr.num_sentences + 1 and sets[-1].similarity is None
    for i in range(tr.num_sentences):
        for r, sim in zip(S[i], sets[i].similarity, strict=True):
            a = fake_embedder.embed([tr.sentences[i].text, r.resampled])
            assert sim == pytest.approx(float(a[0] @ a[1]), abs=1e-6)
            assert (sim > 0.999) == (r.resampled == tr.sentences[i].text)
    sims = embed_similarities(fake_embedder, ["a b", "c"], [["a b", ""], ["d"]])
    np.testing.assert_allclose(sims[0], [1.0, 0.0], atol=1e-6)


def test_sampler_identity_hashes_weights():
    from flax import nnx

    from llm_tools import JaxSampler, Llama, tiny_config
    from llm_tools.tokenizer import ByteTokenizer

    a = JaxSampler(Llama(tiny_config(dim=16, n_layers=1), rngs=nnx.Rngs(0)), ByteTokenizer())
    b = JaxSampler(Llama(tiny_config(dim=16, n_layers=1), rngs=nnx.Rngs(1)), ByteTokenizer())
    assert sampler_identity(a).startswith("jax-llama@")
    assert sampler_identity(a) != sampler_identity(b)
    assert sampler_identity(FakeSampler()) == "fake-reasoner"


def test_bad_inputs(tmp_path, fake_sampler):
    tr = Trace.from_text(fake_sampler, PROMPT, COT)
    store = make_store(tmp_path)
    with pytest.raises(ValueError, match=r"sweep: sentence index must be an int in \[0, 5\] "
                                         r"\(the CoT has 5 sentences\), got 6"):
        sweep(fake_sampler, tr, store, "p0", n=2, key=KEY, answer_fn=answer, sentences=[6])
    with pytest.raises(ValueError, match=r"Trace.prefix_ids: sentence index must be an int"):
        tr.prefix_ids(-1)
    with pytest.raises(ValueError, match="Trace.from_text: the chain of thought is empty"):
        Trace.from_text(fake_sampler, PROMPT, "  ")
    with pytest.raises(ValueError, match="collect: n must be a positive int, got 0"):
        sweep(fake_sampler, tr, store, "p0", n=0, key=KEY, answer_fn=answer)
    with pytest.raises(ValueError, match="embed_similarities: no embedder given"):
        embed_similarities(None, ["a"], [["b"]])
    with pytest.raises(TypeError, match="gives no token-level access"):
        Trace.from_text(object(), PROMPT, COT)
    with pytest.raises(ValueError, match="problem_id must be 1-128 characters"):
        store.load("../x", "resample", 0)
    with pytest.raises(ValueError, match="SamplingParams: temperature must be > 0"):
        SamplingParams(temperature=0.0)
    with pytest.raises(ValueError, match="SamplingParams: top_p must lie in"):
        SamplingParams(top_p=1.5)
    with pytest.raises(ValueError, match="lacks samples"):
        store.get("p0", "resample", 0, 3)
    with pytest.raises(ValueError, match=r"rollout_sets: expected 6 rollout sets"):
        rollout_sets(tr, [[]], "10")
    with pytest.raises(ValueError, match="Trace: prompt_ids is empty"):
        Trace.from_ids(fake_sampler.tokenizer, [], [65, 46])
