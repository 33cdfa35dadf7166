"""experiments/llm_tools/bench.py: the alternation, the report and bad flags (no timing)."""

import pytest
from absl import flags

from experiments.llm_tools import bench


def test_interleaved_alternates_and_takes_the_median():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    out = bench.interleaved(fns, repeats=3)
    # one untimed warm-up each, then 3 rounds in which every contestant runs once, in turn
    assert calls == ["a", "b", "c"] * 4
    assert set(out) == {"a", "b", "c"} and all(v >= 0 for v in out.values())


def _gen_row(jax_s, hf_s):
    load = " 05:00:00 up 1:00,  0 users,  load average: 1.00, 2.00, 3.00"
    row = {"load_before": load, "load_after": load, "seconds": {}}
    for who, s in (("jax", jax_s), ("hf", hf_s)):
        for mode in bench.MODES:
            row[f"{who}_{mode}_tokens_per_s"] = 2 * 4 / s
            row[f"{who}_{mode}_ttft_s"] = 0.1
            row[f"{who}_{mode}_step_ms"] = 1e3 * (s - 0.1) / 3
    for mode in bench.MODES:
        row[f"speedup_{mode}"] = hf_s / jax_s
    row["jax_sampled_over_greedy_per_step"] = 1.0
    return row


def test_report_shows_the_ratios_and_the_load():
    results = {"device": "cpu", "backend": "cpu", "weights": "SmolLM2 GGUF", "dtype": "float32",
               "prompt_tokens": 8, "new_tokens": 4, "prefix_tokens": 16,
               "generation": {"batch_2": _gen_row(jax_s=1.0, hf_s=3.0)},
               "resample": {"new_1": {"load_before": "load average: 4.00, 5.00, 6.00",
                                      "seconds": {"one": 0.5, "shared_32": 0.75,
                                                  "unshared_32": 8.0},
                                      "shared_32_over_one": 1.5, "unshared_32_over_one": 16.0}}}
    text = bench.report(results)
    assert "| 2 | greedy |" in text and "| 3.00x |" in text  # 3 s / 1 s
    assert "1.00, 2.00, 3.00" in text
    assert "| 1 | 0.500 | 0.750 | 1.50x | 8.000 | 16.00x |" in text


def test_unknown_section_is_rejected(tmp_path):
    if "sections" not in flags.FLAGS:
        bench.define_flags()  # the script defines its flags only when run
    flags.FLAGS(["bench", "--sections=generation,warp", f"--workdir={tmp_path}"])
    try:
        with pytest.raises(ValueError, match=r"unknown --sections \['warp'\]"):
            bench.main([])
    finally:
        flags.FLAGS.unparse_flags()
