"""Smoke tests of experiments/e3_pruner (quick configs shrunk to seconds) and the claims' logic
on hand-made result tables."""

import json
import re

import jax
import numpy as np
import pytest
from flax import nnx

import e3_pruner as E
from experiments.config import load_config
from experiments.e3_pruner import arithmetic, bench, claims, common, small, smollm2
from llm_tools import ByteTokenizer, Llama, Pretrained
from llm_tools.tiny import tiny_config

SMALL = "experiments/e3_pruner/configs/small.py"
SMOLLM2 = "experiments/e3_pruner/configs/smollm2.py"
SPEED = "experiments/e3_pruner/configs/speed.py"


def _small_overrides():
    return {"max_corpus_bytes": 300_000, "seq_len": 16, "calibration_windows": 2,
            "valid_windows": 2, "eval_batch": 2, "search_steps": 2, "search_batch": 2,
            "dense.steps": 2, "dense.batch_size": 2, "dense.seq_len": 16,
            "dense.warmup_steps": 1, "dense.model.dim": 16, "dense.model.n_layers": 4,
            "dense.model.max_seq_len": 32, "recovery.steps": 2, "recovery.batch_size": 2}


@pytest.mark.slow
def test_small_quick_full_grid(tmp_path):
    cfg = load_config(SMALL, "quick", _small_overrides())
    s = small.run(cfg, tmp_path)
    assert set(s["ppl_after"]) == {f"{sel}/{kind}" for sel in ("e3", "block_influence", "sleb",
                                                               "last_n", "random_0")
                                   for kind in ("lm", "kd", "ekd")} | {"e3/mix"}
    assert s["held"] == claims.decide_small(s)


def test_small_quick_runs_and_resumes(tmp_path, monkeypatch):
    # one recovery loss (one compile) keeps this a smoke test; the full grid is the slow test
    cfg = load_config(SMALL, "quick", {**_small_overrides(), "recovery.kinds": "ekd",
                                       "recovery.e3_mix": False})
    s = small.run(cfg, tmp_path)
    assert s["L"] == 4 and s["k"] == 3 and s["seeds"] == 1
    assert set(s["ppl_after"]) == {f"{sel}/ekd" for sel in ("e3", "block_influence", "sleb",
                                                           "last_n", "random_0")}
    assert s["held"] == claims.decide_small(s)
    for name in ("results.json", "report.md", "ppl_after.png", "mask_search.png",
                 "seed0/store.json", "seed0/dense/model/params.npz"):
        assert (tmp_path / name).is_file(), name
    # the exhaustive reference is the true minimum of the calibration KL over all 4 masks
    store = json.loads((tmp_path / "seed0/store.json").read_text())
    allkl = store["select/exhaustive"]["all"]
    assert len(allkl) == 4 and allkl[0][1] == min(v for _, v in allkl)
    # restart: everything is read back from the store, nothing is recomputed
    monkeypatch.setattr(E, "recover", lambda *a, **k: pytest.fail("recomputed a recovery"))
    monkeypatch.setattr(E, "search_mask", lambda *a, **k: pytest.fail("recomputed the search"))
    assert small.run(cfg, tmp_path)["ppl_after"] == s["ppl_after"]


def _table(after, before=None):
    per_seed = []
    for i in range(len(next(iter(after.values())))):
        d = {"k": 6, "L": 8, "dense_ppl": 5.0}
        for name, vals in after.items():
            d[f"ppl_after/{name}"] = vals[i]
        for m in ("e3", "block_influence", "sleb", "last_n", "random_0", "exhaustive"):
            d[f"ppl_before/{m}"] = (before or {}).get(m, 9.0)
            d[f"select/{m}"] = {"keep": [0, 1, 2, 3, 4, 5], "seconds": 1.0}
        d["select/exhaustive"]["all"] = [[[0, 1, 2, 3, 4, 5], 0.1], [[0, 1, 2, 3, 4, 6], 0.2]]
        per_seed.append(d)
    return per_seed


def test_small_claim_logic_on_hand_made_tables():
    cfg = load_config(SMALL, "quick")
    names = [f"{s}/{k}" for s, k in small.recovery_runs(cfg)]
    base = {n: [7.0, 7.2, 7.1] for n in names}
    # E³ lowest on average (though not in every seed): held
    won = dict(base, **{"e3/ekd": [6.5, 7.3, 6.6]})
    s = small.summarize(_table(won), cfg)
    assert s["held"] and claims.decide_small(s)
    assert s["calibration_kl_rank"]["e3"] == [1, 1, 1] and s["num_masks"] == 2
    assert s["runner_up"] in names and s["ppl_after"]["e3/ekd"][0] == pytest.approx(6.8)
    # paired difference vs the runner-up: mean of (6.5-7.0, 7.3-7.2, 6.6-7.1) = -0.3
    assert s["e3_minus_runner_up"][0] == pytest.approx(-0.3)
    # plain KD on the E³ mask beats it: not held, and the runner-up is named
    lost = dict(won, **{"e3/kd": [6.4, 7.0, 6.5]})
    s = small.summarize(_table(lost), cfg)
    assert not s["held"] and not claims.decide_small(s) and s["runner_up"] == "e3/kd"
    # a baseline that picked the same layers ties exactly: held (ties allowed)
    tie = dict(won, **{"block_influence/ekd": [6.5, 7.3, 6.6]})
    assert small.summarize(_table(tie), cfg)["held"]


def test_smollm2_claim_logic():
    ppl = {"e3": 30.0, "block_influence": 35.0, "sleb": 29.5, "last_n": 80.0, "random_0": 90.0}
    assert not claims.decide_smollm2({"ppl": ppl})
    assert claims.decide_smollm2({"ppl": dict(ppl, sleb=30.0)})
    assert claims.decide_smollm2({"ppl": dict(ppl, e3=20.0)})


def test_speed_claim_logic():
    r = {"prefill_speedup": 1.20, "ideal_prefill_speedup": 1.30, "decode_speedup": 1.25,
         "ideal_decode_speedup": 1.28}
    assert claims.decide_speed(r)  # 1.20 >= 0.9*1.30 = 1.17 and 1.25 >= 1.152
    assert not claims.decide_speed(dict(r, prefill_speedup=1.10))
    assert not claims.decide_speed(dict(r, decode_speedup=1.0))


def test_macs_per_token_by_hand():
    cfg = tiny_config(dim=8, n_layers=2, n_heads=2, n_kv_heads=1, hidden_dim=16,
                      vocab_size=10)  # head_dim 4
    # per layer: q 8*8 + k,v 2*8*4 + o 8*8 = 192; mlp 3*8*16 = 384; attention 2*2*4*ctx = 16 ctx
    ctx = 5
    assert bench.macs_per_token(cfg, ctx) == 2 * (192 + 384 + 16 * ctx) + 8 * 10


def _tiny_pretrained(**_):
    return Pretrained(Llama(tiny_config(dim=16, n_layers=4, max_seq_len=1024), rngs=nnx.Rngs(0)),
                      ByteTokenizer(), {})


def test_smollm2_pipeline_on_a_stand_in_model(tmp_path, monkeypatch):
    # The real run needs the SmolLM2 GGUF and minutes; the pipeline is the same for any Llama.
    monkeypatch.setattr(smollm2, "load_smollm2", _tiny_pretrained)
    overrides = {"text_bytes": 50_000, "seq_len": 16, "arithmetic_problems": 1,
                 "answer_tokens": 2, "search_steps": 2}
    s = smollm2.run(load_config(SMOLLM2, "quick", overrides), tmp_path)
    assert s["L"] == 4 and s["k"] == 3
    assert set(s["ppl"]) == {"e3", "block_influence", "sleb", "last_n", "random_0"}
    assert all(0.0 <= a <= 1.0 for a in s["accuracy"].values())
    assert s["held"] == claims.decide_smollm2(s)
    for name in ("results.json", "report.md", "smollm2.png", "store.json"):
        assert (tmp_path / name).is_file(), name
    store = json.loads((tmp_path / "store.json").read_text())
    assert len(store["answers/dense"]) == 1


def test_speed_bench_on_a_stand_in_model(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_load", lambda config: (
        Llama(tiny_config(dim=16, n_layers=4, max_seq_len=64), rngs=nnx.Rngs(0)), "tiny"))
    r = bench.run(load_config(SPEED, "quick", {"prompt_tokens": 8, "new_tokens": 4,
                                               "repeats": 1}), tmp_path)
    assert r["layers_dense"] == 4 and r["layers_pruned"] == 3 and r["keep"] == [0, 1, 2]
    for k in ("prefill", "decode"):
        assert r[f"dense_{k}_tokens_per_s"] > 0 and r[f"pruned_{k}_tokens_per_s"] > 0
        assert r[f"ideal_{k}_speedup"] > 1
    assert (tmp_path / "report.md").is_file()
    with pytest.raises(ValueError, match="new_tokens must be >= 2"):
        bench.run(load_config(SPEED, "quick", {"new_tokens": 1}), tmp_path)


def test_arithmetic_problems_are_right():
    problems = arithmetic.make_problems(200, seed=3)
    assert len({p.question for p in problems}) == 200
    assert problems == arithmetic.make_problems(200, seed=3)
    for p in problems:
        # every worked equation "a op b = c" holds, and the last result is the answer
        eqs = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", p.solution)
        assert eqs, p.solution
        for a, op, b, c in eqs:
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op] == c, p
        assert int(eqs[-1][3]) == p.answer and p.answer >= 0
    prompt = arithmetic.few_shot_prompt("Q?", problems[:2])
    assert prompt.count("The answer is") == 2 and prompt.endswith("Question: Q?\nAnswer:")


def test_parse_answer():
    assert arithmetic.parse_answer(" 3 + 4 = 7. The answer is 7.") == 7
    assert arithmetic.parse_answer(" 9 - 12 = -3. The answer is -3") == -3
    assert arithmetic.parse_answer(" 5 * 6 = 30") == 30
    assert arithmetic.parse_answer(" I do not know") is None


def test_store_and_windows(tmp_path):
    st = common.Store(tmp_path / "s.json")
    st.set("a", 1.5)
    assert "a" in common.Store(tmp_path / "s.json") and common.Store(tmp_path / "s.json").get(
        "a") == 1.5
    w = common.windows(np.arange(100), 3, 10, jax.random.key(0))
    assert w.shape == (3, 10) and np.all(np.diff(np.asarray(w), axis=1) == 1)
    with pytest.raises(ValueError, match="shorter than the 10 tokens of context needed"):
        common.windows(np.arange(9), 3, 10, jax.random.key(0))
    with pytest.raises(ValueError, match="unknown method"):
        common.select_layers("magic", Llama(tiny_config(n_layers=2), rngs=nnx.Rngs(0)),
                             w, 1, key=jax.random.key(0), config=None)
    assert common.mean_ci([1.0, 2.0, 3.0])[0] == 2.0
    # t(0.975, 2) * s / sqrt(3) with s = 1
    assert common.mean_ci([1.0, 2.0, 3.0])[1] == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)


def test_bad_configs(tmp_path):
    with pytest.raises(Exception, match="prune_fraction"):
        small.run(load_config(SMALL, "quick", {"prune_fraction": 1.0}), tmp_path)
    with pytest.raises(ValueError, match=r"config.seq_len \+ 1 must be <= config.dense.model"):
        small.run(load_config(SMALL, "quick", {"seq_len": 200}), tmp_path)
    with pytest.raises(Exception, match="search_steps"):
        smollm2.run(load_config(SMOLLM2, "quick", {"search_steps": 0}), tmp_path)
