"""A small fake Sampler (byte tokens, canned reasoning) and a fake embedder for the tests."""

from __future__ import annotations

import dataclasses
import re
import zlib

import jax
import numpy as np
import pytest

from llm_tools.tokenizer import ByteTokenizer


@dataclasses.dataclass(frozen=True)
class FakeCompletion:
    text: str
    token_ids: tuple
    logprobs: tuple
    finish_reason: str
    ends_with_stop_token: bool


PROMPT = "Q: Tom has 3 bags of 4 apples and eats 2. How many are left?\nA: "
COT = ("First I find the total. 3 * 4 = 12. Then I subtract what he ate. 12 - 2 = 10. "
       "So the answer is 10.")
# What may follow each number of finished sentences: (continuation, weight).
BRANCHES = {
    0: [("First I find the total. 3 * 4 = 12. Then 12 - 2 = 10. So the answer is 10.", 0.6),
        ("Let me add. 3 + 4 = 7. Then 7 - 2 = 5. So the answer is 5.", 0.4)],
    1: [("3 * 4 = 12. Then 12 - 2 = 10. So the answer is 10.", 0.7),
        ("3 * 4 = 11. Then 11 - 2 = 9. So the answer is 9.", 0.3)],
    2: [("Then I subtract what he ate. 12 - 2 = 10. So the answer is 10.", 0.9),
        ("Then I add what he ate. 12 + 2 = 14. So the answer is 14.", 0.1)],
    3: [("12 - 2 = 10. So the answer is 10.", 0.95), ("12 - 2 = 9. So the answer is 9.", 0.05)],
    4: [("So the answer is 10.", 1.0)],
    5: [("", 1.0)],
}


class FakeSampler:
    """Implements the token-level Sampler contract over canned continuations.

    Sample ``j`` of ``resample_ids(prefix, n, key)`` uses ``fold_in(fold_in(key, 0), j)`` as the
    engine does; which branch it takes depends on how many sentences the prefix has finished.
    ``fail_after`` raises after that many calls (an interruption).
    """

    name = "fake-reasoner"

    def __init__(self, fail_after: int | None = None):
        self.tokenizer = ByteTokenizer()
        self.calls, self.rows, self.fail_after = 0, 0, fail_after

    def _branches(self, text: str):
        cot = text.split("A: ", 1)[1] if "A: " in text else text
        if "answer is" in cot:
            return [("", 1.0)]
        done = len(re.findall(r"[.?!](\s|$)", cot))
        return BRANCHES[min(done, 5)]

    def resample_ids(self, prefix_ids, n, *, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                     stop=(), key):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls += 1
        self.rows += n
        text = self.tokenizer.decode(prefix_ids)
        branches = self._branches(text)
        lead = "" if (text.endswith(" ") or not text.strip()) else " "
        out = []
        for j in range(n):
            u = float(jax.random.uniform(jax.random.fold_in(jax.random.fold_in(key, 0), j)))
            cum = np.cumsum([w for _, w in branches])
            k = min(int(np.searchsorted(cum, u * cum[-1], side="right")), len(branches) - 1)
            cont, w = branches[k]
            cont = (lead + cont) if cont else cont
            ids = self.tokenizer.encode(cont)[:max_new_tokens]
            cont = self.tokenizer.decode(ids)
            lp = tuple([float(np.log(w))] + [-0.1] * (len(ids) - 1)) if ids else ()
            out.append(FakeCompletion(cont, tuple(ids) + (257,), lp + (-0.05,), "stop", True))
        return out

    def generate_ids(self, prompt_ids, *, n=1, key, **kw):
        return [self.resample_ids(p, n, key=jax.random.fold_in(key, i), **kw)
                for i, p in enumerate(prompt_ids)]


class FakeEmbedder:
    """Bag-of-words unit vectors (a stand-in for MiniLM): cosine = word overlap."""

    name, dim = "bow", 64

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for r, t in enumerate(texts):
            for w in re.findall(r"[a-z]+|\d+", t.lower()):
                out[r, zlib.crc32(w.encode()) % self.dim] += 1.0
            out[r] /= max(np.linalg.norm(out[r]), 1e-9)
        return out


@pytest.fixture
def fake_sampler():
    return FakeSampler()


@pytest.fixture
def fake_embedder():
    return FakeEmbedder()
