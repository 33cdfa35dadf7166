"""E³-Pruner claims: the learned mask with entropy-aware KD gives the best pruned small LM; the
learned mask is the best selection on SmolLM2 before recovery; pruning 25% of the layers gives
a proportional measured speedup. Each criterion is fixed here, before running."""

from __future__ import annotations

from pathlib import Path

from experiments.claims import Claim, ClaimResult
from experiments.config import load_config

_CONFIGS = Path(__file__).parent / "configs"
PAPER = ("Yuan et al., E³-Pruner: Towards Efficient, Economical, and Effective Layer Pruning "
         "for Large Language Models (arXiv:2511.17205, 2025)")
SPEED_FRACTION = 0.9  # measured speedups must reach 90% of the multiply-add ratio


def decide_small(summary: dict) -> bool:
    """E³ (mask + entropy-aware KD) has the lowest mean perplexity after recovery (ties ok)."""
    after = {name: v[0] for name, v in summary["ppl_after"].items()}
    return after["e3/ekd"] <= min(v for n, v in after.items() if n != "e3/ekd")


def decide_smollm2(summary: dict) -> bool:
    """The E³ mask has the lowest held-out perplexity of the selections (ties ok)."""
    ppl = summary["ppl"]
    return ppl["e3"] <= min(v for n, v in ppl.items() if n != "e3")


def decide_speed(res: dict) -> bool:
    """Prefill and decode speedups both reach SPEED_FRACTION of the ideal (MAC) ratio."""
    return (res["prefill_speedup"] >= SPEED_FRACTION * res["ideal_prefill_speedup"]
            and res["decode_speedup"] >= SPEED_FRACTION * res["ideal_decode_speedup"])


def small_lm(tier: str, workdir: Path) -> ClaimResult:
    from experiments.e3_pruner.small import run

    s = run(load_config(_CONFIGS / "small.py", tier), workdir)
    held = decide_small(s)
    e3 = s["ppl_after"]["e3/ekd"]
    ru = s["ppl_after"][s["runner_up"]]
    numbers = {"seeds": s["seeds"], "layers": s["L"], "kept": s["k"],
               "dense_ppl": s["dense_ppl"][0], "e3_ekd_ppl": e3[0], "e3_ekd_ci95": e3[1],
               "runner_up": s["runner_up"], "runner_up_ppl": ru[0],
               "e3_minus_runner_up": s["e3_minus_runner_up"][0],
               "e3_minus_runner_up_ci95": s["e3_minus_runner_up"][1]}
    for name, (m, _) in s["ppl_after"].items():
        numbers[f"after/{name}"] = m
    for name, (m, _) in s["ppl_before"].items():
        numbers[f"before/{name}"] = m
    return ClaimResult(
        numbers=numbers, held=held, plots=["ppl_after.png", "mask_search.png"],
        summary=(f"{s['L']}-layer byte LM, {s['L'] - s['k']} layers removed, {s['seeds']} "
                 f"seed(s), equal recovery budgets: E³ (mask + entropy-aware KD) reaches "
                 f"validation perplexity {e3[0]:.3f} ± {e3[1]:.3f} vs the best other pruned "
                 f"model ({s['runner_up']}) {ru[0]:.3f} ± {ru[1]:.3f}; dense "
                 f"{s['dense_ppl'][0]:.3f}."))


def smollm2_selection(tier: str, workdir: Path) -> ClaimResult:
    from experiments.e3_pruner.smollm2 import run

    try:
        s = run(load_config(_CONFIGS / "smollm2.py", tier), workdir)
    except FileNotFoundError as e:
        return ClaimResult(numbers={}, held=None,
                           summary=f"not run: {e} (python -m llm_tools.fetch smollm2)")
    held = decide_smollm2(s)
    numbers = {"layers": s["L"], "kept": s["k"], "dense_ppl": s["dense_ppl"],
               "dense_accuracy": s["dense_accuracy"], "runner_up": s["runner_up"]}
    for m in s["ppl"]:
        numbers[f"ppl/{m}"] = s["ppl"][m]
        numbers[f"accuracy/{m}"] = s["accuracy"][m]
    for name, v in s.get("ppl_after", {}).items():
        numbers[f"ppl_after/{name}"] = v
    return ClaimResult(
        numbers=numbers, held=held, plots=["smollm2.png"],
        summary=(f"SmolLM2-135M-Instruct, {s['L'] - s['k']} of {s['L']} layers removed, before "
                 f"recovery: held-out perplexity E³ {s['ppl']['e3']:.2f} vs "
                 f"{s['runner_up']} {s['ppl'][s['runner_up']]:.2f} (dense "
                 f"{s['dense_ppl']:.2f}); arithmetic accuracy E³ {s['accuracy']['e3']:.2f}, "
                 f"dense {s['dense_accuracy']:.2f}."))


def speedup(tier: str, workdir: Path) -> ClaimResult:
    from experiments.e3_pruner.bench import run

    try:
        r = run(load_config(_CONFIGS / "speed.py", tier), workdir)
    except FileNotFoundError as e:
        return ClaimResult(numbers={}, held=None,
                           summary=f"not run: {e} (python -m llm_tools.fetch smollm2)")
    keys = ("dense_prefill_tokens_per_s", "pruned_prefill_tokens_per_s", "prefill_speedup",
            "ideal_prefill_speedup", "dense_decode_tokens_per_s", "pruned_decode_tokens_per_s",
            "decode_speedup", "ideal_decode_speedup", "batch_size", "prompt_tokens",
            "new_tokens", "layers_dense", "layers_pruned", "device")
    numbers = {k: r[k] for k in keys}
    numbers["load_avg_1min"] = r["load_avg_before"][0]
    return ClaimResult(
        numbers=numbers, held=decide_speed(r),
        summary=(f"{r['layers_dense']} → {r['layers_pruned']} layers, batch "
                 f"{r['batch_size']}, {r['device']}: prefill {r['prefill_speedup']:.2f}× and "
                 f"decode {r['decode_speedup']:.2f}× (ideal from multiply-adds "
                 f"{r['ideal_prefill_speedup']:.2f}× / {r['ideal_decode_speedup']:.2f}×; the "
                 f"paper reports 1.33× at 25% on Qwen3-32B). Load average "
                 f"{r['load_avg_before'][0]:.1f}."))


CLAIMS = [
    Claim(package="e3_pruner", name="small_lm_e3_lowest_ppl", paper=PAPER,
          statement="Pruning 25% of a small LM's layers with the learned Gumbel-TopK mask and "
                    "recovering with entropy-aware KD gives lower validation perplexity than "
                    "Block Influence, SLEB, last-n and random selection and than LM-only or "
                    "plain-KD recovery, at equal recovery budgets.",
          run=small_lm),
    Claim(package="e3_pruner", name="smollm2_mask_beats_baselines", paper=PAPER,
          statement="On SmolLM2-135M-Instruct with 25% of layers removed, the learned mask "
                    "gives the lowest held-out perplexity of the selection methods before "
                    "recovery (arithmetic accuracy reported alongside).",
          run=smollm2_selection),
    Claim(package="e3_pruner", name="pruned_speedup", paper=PAPER,
          statement="Removing 25% of the layers speeds up prefill and decoding in proportion "
                    "to the compute removed (the paper: 1.33× at 25%).",
          run=speedup),
]
