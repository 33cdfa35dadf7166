"""Claim 1: SmolLM2-135M-Instruct, zero-shot chain of thought, on held-out GSM-Symbolic
templates: the original problems vs their numbers, names and distractor variants.

    python -m llm_tools.fetch smollm2 && python -m llm_tools.fetch gsm_symbolic
    python -m experiments.abstral.main --config=experiments/abstral/configs/zero_shot.py:quick \
        --workdir=/tmp/abstral_zs
    python -m experiments.abstral.main \
        --config=experiments/abstral/configs/zero_shot.py:standard --workdir=/tmp/abstral_zs_std

Inference only (CPU is fine). Resumes from ``--workdir`` (answers are appended to
answers.jsonl as they come). Writes results.json, zero_shot.png and report.md.
"""

from experiments.config import in_range, non_negative, one_of, positive, tiered

RULES = {
    "experiment": one_of("zero_shot"), "seed": non_negative, "split_seed": non_negative,
    "held_out": in_range(0.05, 0.95), "split": one_of("held_out", "all"),
    "max_templates": non_negative, "instances": positive, "max_new_tokens": positive,
    "batch_size": positive, "max_seq_len": positive, "bootstrap": positive,
}
# answers.jsonl is appended per problem: a longer budget or more bootstrap draws may resume
RESUME_ALLOW = ("bootstrap", "batch_size")


def get_config(variant=None):
    base = {
        "experiment": "zero_shot",
        "seed": 0,
        "split_seed": 0,
        "held_out": 0.3,
        "split": "held_out",  # held_out | all (every template: SmolLM2 trained on none)
        "max_templates": 2,  # 0 = every template of the split
        "instances": 1,  # draws per template of each perturbed variant
        "max_new_tokens": 48,
        "batch_size": 8,
        "max_seq_len": 1024,
        "bootstrap": 1000,
    }
    tiers = {
        "quick": {},
        "standard": {"max_templates": 0, "instances": 2, "max_new_tokens": 320,
                     "batch_size": 32, "bootstrap": 2000},
        "full": {"split": "all", "max_templates": 0, "instances": 8, "max_new_tokens": 512,
                 "batch_size": 64, "bootstrap": 5000},
    }
    return tiered(base, tiers, variant)
