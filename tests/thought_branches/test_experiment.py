"""Smoke test of the experiments (quick config shrunk, a fake arithmetic sampler) and the
claims' logic on hand-made result tables."""

import re
from pathlib import Path

import jax
import pytest

from experiments.config import load_config
from experiments.thought_branches import claims as C
from experiments.thought_branches import run as R
from llm_tools.tokenizer import ByteTokenizer

from .conftest import FakeCompletion, FakeEmbedder

CONFIG = Path(C.__file__).parent / "configs" / "default.py"


def _truth(q: str) -> str:
    n = [int(x) for x in re.findall(r"\d+", q)]
    if "Can " in q:
        return "yes" if n[0] >= n[1] * n[2] else "no"
    if "bags with" in q:
        return str(n[0] * n[1] - n[2])
    if "change" in q:
        return str(n[2] - n[0] * n[1])
    if "pages a day" in q:
        return str(n[0] * n[1] + n[2])
    if "shares the rest" in q:
        return str((n[0] - n[1]) // n[2])
    return str((n[0] + n[1]) * n[2])


class ArithmeticFake:
    """Answers the generated problems right about half the time, in four sentences."""

    name = "arith-fake"
    add_bos = False

    def __init__(self):
        self.tokenizer = ByteTokenizer()

    def _cont(self, text: str, u: float) -> str:
        q, _, cot = text.partition("\nA:")
        q = q.removeprefix("Q: ")
        t = _truth(q)
        x = t if u < 0.5 else ("no" if t == "yes" else "yes" if t == "no" else str(int(t) + 1))
        if cot.endswith("So the answer is"):
            return f" {x}."
        if "answer is" in cot:
            return ""
        sents = ["First, work it out.", "3 * 4 = 12.", "Check: that fits.",
                 f"So the answer is {x}."]
        done = len(re.findall(r"[.?!](\s|$)", cot))
        return " " + " ".join(sents[min(done, 3):])

    def generate_ids(self, prompt_ids, *, n=1, key, max_new_tokens, **kw):
        out = []
        for i, p in enumerate(prompt_ids):
            text = self.tokenizer.decode(p)
            row = []
            for j in range(n):
                k = jax.random.fold_in(jax.random.fold_in(key, i), j)
                cont = self._cont(text, float(jax.random.uniform(k)))
                ids = tuple(self.tokenizer.encode(cont)[:max_new_tokens]) + (257,)
                row.append(FakeCompletion(self.tokenizer.decode(ids[:-1]), ids,
                                          (-0.2,) * len(ids), "stop", True))
            out.append(row)
        return out

    def resample_ids(self, prefix_ids, n, **kw):
        return self.generate_ids([prefix_ids], n=n, **kw)[0]


def test_quick_config_runs_end_to_end(tmp_path, monkeypatch):
    cfg = load_config(CONFIG, "quick", {"reasoner.rollouts": 6, "n_boot": 50,
                                         "select.candidates": 6, "select.screen_samples": 6,
                                         "interventions.rollouts": 4})
    spec = R.ModelSpec("reasoner", ArithmeticFake(), chat=False,
                       forced_suffix=" So the answer is", cfg=cfg.reasoner)
    monkeypatch.setattr(R, "load_models", lambda config: ([spec], []))
    monkeypatch.setattr(R, "load_embedder", lambda: FakeEmbedder())
    res = R.run(cfg, tmp_path)
    imp = res["importance"]["reasoner"]
    assert imp["problems"] == 2 and set(imp["by_type"]) >= {"plan", "compute", "answer"}
    assert (tmp_path / "importance_reasoner.png").exists()
    views = list((tmp_path / "views" / "reasoner").glob("*.html"))
    assert len(views) == 2
    assert res["interventions"]["reasoner"]["problems"] >= 1
    assert res["resilience"]["sentences"] == 2
    assert (tmp_path / "results.json").exists() and (tmp_path / "resilience.png").exists()
    # a rerun resumes from the stored rollouts and selections: same numbers
    again = R.run(cfg, tmp_path)
    assert again["importance"] == res["importance"]
    assert again["resilience"] == res["resilience"]


def test_verdict_and_claims_on_hand_made_tables(tmp_path, monkeypatch):
    assert C.verdict((0.2, 0.05, 0.3)) is True
    assert C.verdict((-0.2, -0.3, -0.01)) is False
    assert C.verdict((0.1, -0.05, 0.3)) is None
    assert C.verdict(None) is None
    table = {
        "models": ["reasoner"],
        "importance": {"reasoner": {
            "problems": 10, "screened": 40, "screened_in_range": 0.4, "rollouts": 100,
            "by_type": {"plan": {"n": 10, "counterfactual_importance_kl": [0.3, 0.2, 0.4]},
                        "compute": {"n": 20, "counterfactual_importance_kl": [0.1, 0.05, 0.2]}},
            "plan_check_minus_compute_counterfactual_importance_kl": [0.2, 0.05, 0.3],
            "top_type_resampling_importance_accuracy": "compute"}},
        "interventions": {"reasoner": {
            "problems": 8, "on_policy_successes": 5, "off_mean": 0.01, "off_std": 0.1,
            "on_mean": -0.3, "on_std": 0.2, "on_minus_off_abs": [-0.1, -0.2, -0.01]}},
        "resilience": {"sentences": 6, "rollouts_per_sentence": 20, "max_iterations": 20,
                       "mean_score": 2.5, "persistence_rate": 0.1, "paired_cf": 6,
                       "cfpp_minus_cf_abs": [0.05, -0.02, 0.1]},
    }
    monkeypatch.setattr(C, "shared_run", lambda tier, wd: (table, tmp_path))
    r1, r2, r3 = (c.run("standard", tmp_path / c.name) for c in C.CLAIMS)
    assert r1.held is True and "compute" in r1.summary
    assert r1.numbers["reasoner/plan/counterfactual_importance_kl"] == [0.3, 0.2, 0.4]
    assert r2.held is False and "succeeded on 5" in r2.summary
    assert r3.held is None and "+0.050 [-0.020, +0.100]" in r3.summary


def test_bad_config(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="config.models must be a comma-separated list"):
        load_config(CONFIG, "quick", {"models": "gpt"})
    with pytest.raises(ValueError, match="config.models: unknown model 'gpt'"):
        R.load_models(load_config(CONFIG, "quick", {"models": "gpt"}, validate=False))
    cfg = load_config(CONFIG, "quick", {"experiment": "nope"}, validate=False)
    monkeypatch.setattr(R, "load_models", lambda config: ([R.ModelSpec(
        "reasoner", ArithmeticFake(), chat=False, forced_suffix=" So", cfg=config.reasoner)],
        []))
    monkeypatch.setattr(R, "load_embedder", lambda: FakeEmbedder())
    with pytest.raises(ValueError, match="config.experiment must be all|importance"):
        R.run(cfg, tmp_path)
    assert not (tmp_path / "results.json").exists()
