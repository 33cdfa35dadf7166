"""llm_tools claims: the JAX SmolLM2 reproduces the reference implementation, and the tiny LM
learns from the standard library's sources."""

from __future__ import annotations

from pathlib import Path

from experiments.claims import Claim, ClaimResult
from experiments.config import load_config
from experiments.workdir import Workdir

_CONFIG = Path(__file__).parent / "configs" / "lm.py"
LOGIT_TOL = 1e-3  # fixed before running (the issue's criterion)


def smollm2_matches_transformers(tier: str, workdir: Path) -> ClaimResult:
    from experiments.llm_tools.reference import compare

    try:
        numbers = compare(n_greedy=32)
    except (FileNotFoundError, ImportError) as e:
        return ClaimResult(numbers={}, held=None,
                           summary=f"not run: {e} (needs `python -m llm_tools.fetch smollm2` "
                                   "and the reference extra: pip install -e '.[reference]')")
    Workdir(workdir).write_results(numbers)
    held = numbers["max_abs_logit_diff"] <= LOGIT_TOL and numbers["greedy_identical"]
    return ClaimResult(
        numbers={k: v for k, v in numbers.items() if k != "greedy_text"}, held=held,
        summary=(f"Pure-JAX SmolLM2-135M-Instruct vs transformers on the same GGUF: max |logit "
                 f"diff| {numbers['max_abs_logit_diff']:.2e} over {numbers['prompt_tokens']} "
                 f"tokens (criterion <= {LOGIT_TOL:g}); greedy 32 tokens identical: "
                 f"{numbers['greedy_identical']}."))


def tiny_lm_beats_unigram(tier: str, workdir: Path) -> ClaimResult:
    from experiments.llm_tools.train import run

    config = load_config(str(_CONFIG), tier)
    r = run(config, workdir)
    held = r["valid_bits_per_byte"] < r["unigram_entropy_bits"]
    return ClaimResult(
        numbers={k: r[k] for k in ("valid_bits_per_byte", "unigram_entropy_bits",
                                   "initial_valid_bits_per_byte", "uniform_bits_per_byte",
                                   "train_tokens_per_s",
                                   "steps", "params")},
        held=held, plots=["loss.png"],
        summary=(f"Byte-level Llama ({r['params']} params, {r['steps']} steps) on stdlib sources: "
                 f"{r['valid_bits_per_byte']:.3f} bits/byte on held-out files vs the byte-unigram "
                 f"entropy {r['unigram_entropy_bits']:.3f} (untrained model: "
                 f"{r['initial_valid_bits_per_byte']:.2f}; uniform: "
                 f"{r['uniform_bits_per_byte']:.2f})."))


CLAIMS = [
    Claim(package="llm_tools", name="smollm2_matches_transformers",
          paper="Allal et al., SmolLM2: When Smol Goes Big (2025); Touvron et al., LLaMA (2023)",
          statement="A pure-JAX Llama loading SmolLM2-135M-Instruct from its GGUF gives the same "
                    "logits (<= 1e-3) and the same greedy generation as the reference "
                    "transformers implementation.",
          run=smollm2_matches_transformers),
    Claim(package="llm_tools", name="tiny_lm_beats_unigram",
          paper="Touvron et al., LLaMA: Open and Efficient Foundation Language Models (2023)",
          statement="Next-token training of a small Llama on Python's standard-library sources "
                    "reaches a held-out bits-per-byte below the byte-unigram entropy.",
          run=tiny_lm_beats_unigram),
]
