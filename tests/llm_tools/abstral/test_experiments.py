"""experiments/abstral: the claims' logic on hand-made result tables, the statistics, a smoke
run of the quick config shrunk to seconds, and a resumed GRPO run equal to an uninterrupted
one."""

import json

import jax
import numpy as np
import pytest

from experiments.abstral.claims import (
    CLAIMS,
    decide,
    judge_faithfulness,
    judge_robustness,
    judge_zero_shot,
)
from experiments.abstral.stats import summarize
from experiments.config import ConfigError, load_config

ROBUST = "experiments/abstral/configs/robustness.py"


def _ci(mean, lo, hi):
    return {"mean": mean, "lo": lo, "hi": hi, "n_templates": 30}


def _table(cot_orig, drops, vs):
    """A results dict: accuracy per variant from an original accuracy and a drop."""
    acc, drop = {}, {}
    for m, d in drops.items():
        orig = cot_orig if m == "cot_sft" else 0.5
        acc[m] = {"original": _ci(orig, orig - 0.1, orig + 0.1),
                  **{v: _ci(orig - d, 0, 1) for v in ("numbers", "names", "distractor")}}
        drop[m] = _ci(d, d - 0.05, d + 0.05)
    return {"accuracy": {"held_out": acc}, "drop": {"held_out": drop},
            "drop_vs_cot": {"held_out": {m: _ci(*x) for m, x in vs.items()}}}


def test_decide():
    assert decide(_ci(0.2, 0.1, 0.3)) is True
    assert decide(_ci(-0.2, -0.3, -0.1)) is False
    assert decide(_ci(0.0, -0.1, 0.1)) is None
    assert decide(None) is None


def test_robustness_claim_logic():
    drops = {"cot_sft": 0.4, "abs_sft": 0.05, "abstral": 0.02}
    held = _table(0.6, drops, {"abs_sft": (0.35, 0.2, 0.5), "abstral": (0.38, 0.25, 0.5)})
    r = judge_robustness(held, "held_out")
    assert r.held is True and r.numbers["cot_minus_abstral_drop"] == 0.38
    assert "holds for both" in r.summary
    one_fails = _table(0.6, drops, {"abs_sft": (-0.2, -0.3, -0.1), "abstral": (0.3, 0.2, 0.4)})
    assert judge_robustness(one_fails, "held_out").held is False
    unsure = _table(0.6, drops, {"abs_sft": (0.1, -0.05, 0.3), "abstral": (0.3, 0.2, 0.4)})
    assert judge_robustness(unsure, "held_out").held is None
    floor = _table(0.02, drops, {"abs_sft": (0.35, 0.2, 0.5), "abstral": (0.38, 0.25, 0.5)})
    r = judge_robustness(floor, "held_out")
    assert r.held is None and "0.020 < 0.05" in r.summary
    assert judge_robustness(held, "train").held is None  # no such split evaluated


def test_faithfulness_and_zero_shot_claim_logic():
    results = {"faithful": {"train": {"abs_sft": _ci(0.3, 0.2, 0.4),
                                      "abstral": _ci(0.5, 0.4, 0.6)}},
               "faithful_gain": {"train": _ci(0.2, 0.1, 0.3)}}
    assert judge_faithfulness(results).held is True
    results["faithful_gain"]["train"] = _ci(-0.1, -0.2, -0.05)
    assert judge_faithfulness(results).held is False
    assert judge_faithfulness({"faithful_gain": {}}).held is None
    acc = {v: _ci(0.1, 0.0, 0.2) for v in ("original", "numbers", "names", "distractor")}
    zs = {"accuracy": acc, "drop": _ci(0.05, 0.01, 0.09), "templates": 30, "problems": 210,
          "answered": 0.9}
    r = judge_zero_shot(zs)
    assert r.held is True and r.numbers["drop"] == 0.05
    zs["drop"] = _ci(0.0, -0.03, 0.04)
    assert judge_zero_shot(zs).held is None
    assert {c.name for c in CLAIMS} == {"smollm2_drops_under_perturbation",
                                        "abstraction_more_robust_heldout",
                                        "abstraction_more_robust_seen_templates",
                                        "rl_more_faithful_than_sft"}


def test_summary_statistics_by_hand():
    def rec(m, t, v, c, f=None):
        return {"split": "held_out", "template_id": t, "variant": v, "correct": c,
                "faithful": f, "parsed": True}

    records = {"cot_sft": [], "abs_sft": []}
    for t in range(4):
        # CoT: right on every original, wrong on every perturbation -> drop 1 per template.
        records["cot_sft"] += [rec("cot", t, "original", True)] + [
            rec("cot", t, v, False) for v in ("numbers", "names", "distractor")]
        # Abstraction: right except the distractor of templates 0 and 1 -> drops 1/3, 1/3, 0, 0.
        records["abs_sft"] += [rec("abs", t, v, not (v == "distractor" and t < 2), True)
                               for v in ("original", "numbers", "names", "distractor")]
    s = summarize(records, variants=("original", "numbers", "names", "distractor"), n_boot=200)
    assert s["accuracy"]["held_out"]["cot_sft"]["original"]["mean"] == 1.0
    assert s["drop"]["held_out"]["cot_sft"]["mean"] == 1.0
    assert s["drop"]["held_out"]["abs_sft"]["mean"] == pytest.approx((1 / 3 + 1 / 3) / 4)
    diff = s["drop_vs_cot"]["held_out"]["abs_sft"]
    assert diff["mean"] == pytest.approx(1 - 1 / 6) and diff["lo"] >= 2 / 3 - 1e-9
    assert s["accuracy"]["held_out"]["abs_sft"]["distractor"]["mean"] == 0.5
    assert s["faithful"]["held_out"]["abs_sft"]["mean"] == 1.0
    assert s["drop_by_variant"]["held_out"]["abs_sft"]["distractor"] == 0.5


TINY = {"max_templates": 2, "train_instances": 1, "eval_instances": 1, "eval_probes": 1,
        "tokenizer.vocab_size": 300, "tokenizer.stdlib_files": 1, "model.dim": 16,
        "model.n_layers": 1, "model.n_heads": 1, "model.n_kv_heads": 1,
        "model.max_seq_len": 512, "pretrain.steps": 2, "pretrain.batch_size": 2,
        "pretrain.seq_len": 16, "pretrain.max_files": 1, "sft.steps": 2, "sft.batch_size": 2,
        "grpo.iterations": 2, "grpo.prompts_per_iteration": 2, "grpo.group_size": 2,
        "grpo.max_new_tokens": 8, "grpo.n_probes": 1, "eval.max_new_tokens_cot": 8,
        "eval.max_new_tokens_abs": 8, "eval.batch_size": 16, "checkpoint_every": 1,
        "bootstrap": 50}


def test_quick_config_smoke(templates, tmp_path):
    from experiments.abstral.train import run

    cfg = load_config(ROBUST, "quick", TINY)
    r = run(cfg, tmp_path)
    for name in ("results.json", "report.md", "accuracy.png", "tokenizer.json",
                 "seed_0/eval_abstral.json", "seed_0/grpo/model/params.npz"):
        assert (tmp_path / name).is_file(), name
    assert set(r["accuracy"]["train"]) == {"cot_sft", "abs_sft", "abstral"}
    steps = [json.loads(line)["step"] for line in (tmp_path / "seed_0/grpo/metrics.jsonl")
             .open()]
    assert steps == [1, 2]
    again = run(cfg, tmp_path)  # everything finished: reloaded, same numbers
    assert again["accuracy"] == r["accuracy"]
    assert judge_robustness(r, "train").numbers  # the claims read this table


def test_resumed_grpo_equals_uninterrupted(templates, tmp_path):
    from flax import nnx

    from experiments.abstral.train import grpo_phase
    from llm_tools import ByteTokenizer, Llama, tiny_config
    from llm_tools.abstral import make_task, perturb

    cfg = load_config(ROBUST, "quick", {**TINY, "grpo.iterations": 3})
    tasks = [make_task(templates[1], perturb(templates[1], "original", jax.random.key(0)),
                       jax.random.key(1), n_probes=1)]
    tok = ByteTokenizer()
    model = Llama(tiny_config(dim=16, n_layers=1, n_heads=1, n_kv_heads=1, max_seq_len=512),
                  rngs=nnx.Rngs(0))
    from llm_tools.abstral import Rewards

    def varied(text, task):  # an untrained model's text: reward its variety, so groups differ
        r = len(set(text)) / 10.0
        return Rewards(r, r, 0.0, 0.0, True, False, False)

    full = grpo_phase(cfg, tmp_path / "a", model, tok, tasks, seed=0, reward_fn=varied)
    part = grpo_phase(cfg, tmp_path / "b", model, tok, tasks, seed=0, reward_fn=varied,
                      stop_after=1)
    assert not (tmp_path / "b/model").exists()
    resumed = grpo_phase(cfg, tmp_path / "b", part, tok, tasks, seed=0, reward_fn=varied)
    rows = [json.loads(line) for line in (tmp_path / "a/metrics.jsonl").open()]
    assert all(r["zero_std_groups"] < 1 for r in rows)  # the updates were not all zero
    steps = [json.loads(line)["step"] for line in (tmp_path / "b/metrics.jsonl").open()]
    assert steps == [1, 2, 3]
    a, b = nnx.state(full, nnx.Param), nnx.state(resumed, nnx.Param)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    changed = nnx.state(model, nnx.Param)
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(changed), strict=True))


def test_config_errors():
    from experiments.abstral.run import run
    from experiments.abstral.train import run as robustness

    # load_config checks the config file's RULES and validate ...
    with pytest.raises(ConfigError, match="grpo.group_size must be >= 2"):
        load_config(ROBUST, "quick", {"grpo.group_size": 1})
    with pytest.raises(ConfigError, match="config.sft.steps must be > 0"):
        load_config(ROBUST, "quick", {"sft.steps": 0})
    # ... and the runners check again for a config built without them
    with pytest.raises(ConfigError, match="grpo.group_size must be >= 2"):
        robustness(load_config(ROBUST, "quick", {"grpo.group_size": 1}, validate=False),
                   "/nonexistent")
    with pytest.raises(ConfigError, match="config.sft.steps must be > 0"):
        robustness(load_config(ROBUST, "quick", {"sft.steps": 0}, validate=False),
                   "/nonexistent")
    cfg = load_config(ROBUST, "quick", {"experiment": "other"}, validate=False)
    with pytest.raises(ConfigError, match="config.experiment must be 'robustness' or"):
        run(cfg, "/nonexistent")
