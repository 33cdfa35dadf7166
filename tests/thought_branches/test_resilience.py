"""Resilience loop, CF++, on/off-policy interventions, mediation and sentence types."""

import math

import jax
import numpy as np
import pytest

from llm_tools.thought_branches import (
    RolloutSet,
    RolloutStore,
    SamplingParams,
    Trace,
    candidate_score,
    cf_plus_plus,
    extract_answer,
    off_policy_prefix,
    on_policy_search,
    parallel_mediation,
    resilience,
    sentence_type,
    transplant_prefix,
)

from .conftest import COT, PROMPT, FakeCompletion, FakeEmbedder, FakeSampler

KEY = jax.random.key(3)


def answer(text):
    return extract_answer(text, "numeric") if "answer is" in text else ""


class ScriptedSampler(FakeSampler):
    """generate_ids returns scripted continuations per call; checks the prefixes it gets."""

    def __init__(self, script, expected_prefixes=None):
        super().__init__()
        self.script, self.expected, self.calls = script, expected_prefixes or {}, 0

    def generate_ids(self, prompt_ids, *, n=1, key, **kw):
        call = self.calls
        self.calls += 1
        texts = [self.tokenizer.decode(p) for p in prompt_ids]
        if call in self.expected:
            assert texts == self.expected[call], (call, texts)
        out = []
        for r in range(len(prompt_ids)):
            cont = self.script(call, r)
            ids = tuple(self.tokenizer.encode(cont)) + (257,)
            out.append([FakeCompletion(cont, ids, (-0.1,) * len(ids), "stop", True)])
        return out


def store(tmp_path, name="s"):
    return RolloutStore(tmp_path / name, model="fake", params=SamplingParams(max_new_tokens=99))


def test_resilience_scores_follow_the_content(tmp_path):
    tr = Trace.from_text(FakeSampler(), PROMPT, COT)
    assert tr.sentences[1].text == "3 * 4 = 12."
    script = {(0, 0): "Let me multiply. 3 * 4 = 12. So the answer is 10.",
              (0, 1): "I guess. So the answer is 7.",
              (1, 0): "12 - 2 = 10. So the answer is 10."}
    base = PROMPT + "First I find the total. "
    sampler = ScriptedSampler(lambda c, r: script[(c, r)],
                              {0: [base, base], 1: [base + "Let me multiply. "]})
    res = resilience(sampler, tr, 1, store(tmp_path), "p", embedder=FakeEmbedder(), key=KEY,
                     answer_fn=answer, n_rollouts=2, max_iterations=20)
    assert res.scores.tolist() == [1, 0]
    assert res.iterations.tolist() == [2, 1]
    assert res.persisted.tolist() == [False, False]
    assert res.final_answers == ("10", "7")
    assert res.last_match == ("3 * 4 = 12.", "")
    assert res.abandonment_rate == 1.0
    # CF++ = acc(S_2) - acc(finals of abandoned) = 3/4 - 1/2
    base_next = RolloutSet.from_answers(["10", "10", "10", "9"], "10")
    e = cf_plus_plus(base_next, res, "10", n_boot=200, key=KEY)
    assert e.value == pytest.approx(0.25) and e.low <= e.value <= e.high


def test_resilience_persists_and_resumes_from_the_store(tmp_path):
    tr = Trace.from_text(FakeSampler(), PROMPT, COT)
    always = ScriptedSampler(lambda c, r: "3 * 4 = 12. So the answer is 10.")
    s = store(tmp_path)
    res = resilience(always, tr, 1, s, "p", embedder=FakeEmbedder(), key=KEY, answer_fn=answer,
                     n_rollouts=3, max_iterations=4)
    assert res.scores.tolist() == [4, 4, 4] and res.persisted.all()

    def boom(c, r):
        raise AssertionError("a resumed run must not sample again")

    again = resilience(ScriptedSampler(boom), tr, 1, s, "p", embedder=FakeEmbedder(), key=KEY,
                       answer_fn=answer, n_rollouts=3, max_iterations=4)
    assert again.scores.tolist() == res.scores.tolist()
    assert again.final_answers == res.final_answers
    with pytest.raises(ValueError, match="CF\\+\\+ is undefined"):
        cf_plus_plus(RolloutSet.from_answers(["10", "9"], "10"), res, "10", key=KEY)


def test_on_policy_search_finds_the_target_on_policy(tmp_path):
    tr = Trace.from_text(FakeSampler(), PROMPT, COT)
    res = on_policy_search(FakeSampler(), tr, 2, "12 - 2 = 10.", embedder=FakeEmbedder(),
                           key=KEY, n_iterations=2, n_candidates=4, n_continuations=3)
    assert res.success and res.cosine == pytest.approx(1.0, abs=1e-6)
    assert res.next_sentence == "12 - 2 = 10." and res.iterations == 1
    assert res.candidate in ("Then I subtract what he ate.", "Then I add what he ate.")
    text = FakeSampler().tokenizer.decode(res.prefix_ids)
    assert text == PROMPT + COT[: tr.sentences[2].start] + res.candidate + " 12 - 2 = 10."


def test_off_policy_prefix():
    s = FakeSampler()
    tr = Trace.from_text(s, PROMPT, COT)
    ids = off_policy_prefix(s, tr, 1, "Wait, let me check that.")
    assert s.tokenizer.decode(ids) == PROMPT + COT[: tr.sentences[1].end] + \
        " Wait, let me check that."


def test_candidate_score():
    assert candidate_score(0.5, -5.0, w_cos=1.0, w_lp=1.0) == pytest.approx(
        0.5 + 1 / (1 + math.e))
    assert candidate_score(0.3, -100.0) == 0.3


def test_mediation_matches_the_product_of_paths():
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.integers(0, 2, n).astype(float)
    m = 0.8 * x + rng.normal(0, 1, n)
    y = 0.3 * x + 0.5 * m + rng.normal(0, 1, n)
    r = parallel_mediation(x, y, m, n_boot=300, key=KEY)
    # independent: a from M ~ X, b from Y ~ X + M, indirect = a * b for OLS
    A = np.column_stack([np.ones(n), x])
    a = np.linalg.lstsq(A, m, rcond=None)[0][1]
    b = np.linalg.lstsq(np.column_stack([A, m]), y, rcond=None)[0][2]
    assert r.indirect.value == pytest.approx(a * b, rel=1e-9)
    assert r.indirect.low < 0.4 < r.indirect.high
    assert r.direct.low < 0.3 < r.direct.high
    assert r.total.value == pytest.approx(r.direct.value + r.indirect.value)


def test_transplant_prefix():
    s = FakeSampler()
    tr = Trace.from_text(s, "Hint: 9. Q?\nA: ", COT)
    ids = transplant_prefix(tr, 2, s.tokenizer.encode("Q?\nA: "))
    assert s.tokenizer.decode(ids) == "Q?\nA: " + COT[: tr.sentences[2].start]


@pytest.mark.parametrize("text,kind", [
    ("So the answer is 10.", "answer"), ("Wait, let me check that again.", "check"),
    ("3 * 4 = 12.", "compute"), ("12 minus 2 is 10.", "compute"),
    ("First I find the total.", "plan"), ("Tom likes apples.", "other"),
    ("Then take away the 5 she gave away.", "plan"), ("Then 12 - 2 = 10.", "compute"),
])
def test_sentence_type(text, kind):
    assert sentence_type(text) == kind


def test_bad_inputs(tmp_path):
    s = FakeSampler()
    tr = Trace.from_text(s, PROMPT, COT)
    with pytest.raises(ValueError, match="resilience: no embedder given"):
        resilience(s, tr, 1, store(tmp_path), "p", embedder=None, key=KEY, answer_fn=answer)
    with pytest.raises(ValueError, match=r"resilience: sentence index must be an int in \[0, 4\]"):
        resilience(s, tr, 5, store(tmp_path), "p", embedder=FakeEmbedder(), key=KEY,
                   answer_fn=answer)
    with pytest.raises(ValueError, match="n_rollouts must be a positive int, got 0"):
        resilience(s, tr, 1, store(tmp_path), "p", embedder=FakeEmbedder(), key=KEY,
                   answer_fn=answer, n_rollouts=0)
    with pytest.raises(ValueError, match="on_policy_search: no embedder given"):
        on_policy_search(s, tr, 1, "x y", embedder=None, key=KEY)
    with pytest.raises(ValueError, match="target must be a non-empty sentence"):
        on_policy_search(s, tr, 1, " ", embedder=FakeEmbedder(), key=KEY)

    class NoLogprobs(FakeSampler):
        def resample_ids(self, *a, **k):
            return [FakeCompletion(c.text, c.token_ids, (), c.finish_reason, True)
                    for c in super().resample_ids(*a, **k)]

    with pytest.raises(ValueError, match="w_lp = 0.5 needs token logprobs"):
        on_policy_search(NoLogprobs(), tr, 2, "12 - 2 = 10.", embedder=FakeEmbedder(), key=KEY,
                         n_candidates=2, n_continuations=2, w_lp=0.5)
    with pytest.raises(ValueError, match="off_policy_prefix: sentence must be a non-empty str"):
        off_policy_prefix(s, tr, 1, "")
    with pytest.raises(ValueError, match="parallel_mediation: x does not vary"):
        parallel_mediation(np.ones(10), np.zeros(10), np.zeros(10), key=KEY)
    with pytest.raises(ValueError, match=r"x, y and m must have n rows each"):
        parallel_mediation(np.ones(10), np.zeros(9), np.zeros(10), key=KEY)
    with pytest.raises(ValueError, match="transplant_prefix: sentence index"):
        transplant_prefix(tr, 9, [1])
    with pytest.raises(TypeError, match="sentence_type: text must be str"):
        sentence_type(None)
