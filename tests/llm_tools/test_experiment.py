"""Smoke test of experiments/llm_tools: the quick LM config shrunk to seconds, with resume."""

import json

from experiments.config import load_config
from experiments.llm_tools.train import run, unigram_entropy_bits

CONFIG = "experiments/llm_tools/configs/lm.py"


def test_unigram_entropy():
    import numpy as np

    assert unigram_entropy_bits(np.array([0, 1, 2, 3])) == 2.0
    assert unigram_entropy_bits(np.array([5, 5, 5])) == 0.0


def test_quick_config_runs_and_resumes(tmp_path):
    overrides = {"steps": 2, "eval_every": 1, "eval_batches": 1, "checkpoint_every": 1,
                 "batch_size": 4, "seq_len": 32, "max_corpus_bytes": 200_000, "warmup_steps": 1,
                 "model.dim": 32, "model.n_layers": 1}
    cfg = load_config(CONFIG, "quick", overrides)
    r = run(cfg, tmp_path)
    assert r["steps"] == 2 and r["valid_bits_per_byte"] < r["initial_valid_bits_per_byte"]
    for name in ("results.json", "metrics.jsonl", "loss.png", "report.md", "model/params.npz"):
        assert (tmp_path / name).is_file(), name
    # resume: one more step continues from the step-2 checkpoint, not from scratch
    cfg3 = load_config(CONFIG, "quick", {**overrides, "steps": 3})
    run(cfg3, tmp_path)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1, 2, 3]
