"""Config of the Thought Branches experiments (arXiv:2510.27484): importance curves, off- vs
on-policy interventions, resilience.

    python -m experiments.thought_branches.main \
        --config=experiments/thought_branches/configs/default.py:quick --workdir=/tmp/tb_quick
    python -m experiments.thought_branches.main \
        --config=experiments/thought_branches/configs/default.py:standard \
        --workdir=runs/tb_std --config.experiment=importance

``experiment`` is one of all|importance|interventions|resilience. ``models`` lists the
samplers: ``reasoner`` (the small trained model shipped in
``llm_tools/thought_branches/reasoner/``), ``smollm2`` (SmolLM2-135M-Instruct, after
``python -m llm_tools.fetch smollm2``) and, in the full tier, ``server`` (any
OpenAI-compatible server at ``server_url`` serving ``server_model``, e.g. vLLM with a
reasoning model). The sentence embedder is all-MiniLM-L6-v2 (``python -m llm_tools.fetch
minilm``). Rollouts are kept under ``<workdir>/rollouts/<model>/``, so a rerun resumes.
"""

from experiments.config import (
    ConfigError,
    comma_list,
    in_range,
    non_negative,
    one_of,
    positive,
    tiered,
)

RULES = {
    "experiment": one_of("all", "importance", "interventions", "resilience"),
    "seed": non_negative, "models": comma_list("reasoner", "smollm2", "server"),
    "n_boot": positive, "alpha": positive,
    "select.candidates": positive, "select.screen_samples": positive,
    "select.acc_low": in_range(0.0, 1.0), "select.acc_high": in_range(0.0, 1.0),
    "select.max_sentences": positive,
    "reasoner.problems": positive, "reasoner.rollouts": positive,
    "reasoner.max_new_tokens": positive, "reasoner.temperature": non_negative,
    "reasoner.top_p": in_range(0.0, 1.0, closed=False),
    "smollm2.problems": positive, "smollm2.rollouts": positive,
    "smollm2.max_new_tokens": positive, "smollm2.temperature": non_negative,
    "smollm2.top_p": in_range(0.0, 1.0, closed=False), "smollm2.gsm_symbolic": non_negative,
    "interventions.problems": positive, "interventions.rollouts": positive,
    "interventions.n_iterations": positive, "interventions.n_candidates": positive,
    "interventions.n_continuations": positive, "interventions.threshold": in_range(0.0, 1.0),
    "resilience.problems": positive, "resilience.sentences": positive,
    "resilience.rollouts": positive, "resilience.max_iterations": positive,
}
# rollouts are stored per (problem, sentence): a larger bootstrap may resume
RESUME_ALLOW = ("n_boot",)


def validate(config):
    if config.select.acc_low > config.select.acc_high:
        raise ConfigError(f"config.select.acc_low ({config.select.acc_low}) must be <= "
                          f"config.select.acc_high ({config.select.acc_high})")


def get_config(variant=None):
    base = {
        "experiment": "all",
        "seed": 0,
        "models": "reasoner,smollm2",
        "server_url": "http://127.0.0.1:8000/v1",
        "server_model": "",
        "n_boot": 1000,
        # KL smoothing. The reference's 1e-9 makes an answer missing from one of two 100-rollout
        # sets cost ~p·20.7 nats, so KL (and its CI) measures support mismatch; its own
        # laplace_smooth option (1.0) is used here (quick-tier run with 1e-9: CIs 0..6.6 nats).
        "alpha": 1.0,
        "select": {  # problem selection (the reference keeps problems with accuracy in [.25, .75])
            "candidates": 40,  # candidate problems screened per model
            "screen_samples": 8,  # base CoTs sampled per candidate
            "acc_low": 0.25,
            "acc_high": 0.75,
            "max_sentences": 12,  # skip base CoTs with more sentences
        },
        "reasoner": {"problems": 10, "rollouts": 100, "forced": True, "max_new_tokens": 80,
                     "temperature": 0.6, "top_p": 0.95},
        "smollm2": {"problems": 10, "rollouts": 20, "forced": False, "max_new_tokens": 160,
                    "temperature": 0.6, "top_p": 0.95, "gsm_symbolic": 0},
        "interventions": {"problems": 8, "rollouts": 50, "n_iterations": 6, "n_candidates": 12,
                          "n_continuations": 8, "threshold": 0.7,
                          "target": "Wait, that is not right."},
        # every rollout of the reasoner persisted in a reduced run (all 10 of 10 iterations), so
        # the cost is problems x sentences x rollouts x max_iterations continuations
        "resilience": {"problems": 3, "sentences": 2, "rollouts": 10, "max_iterations": 20},
    }
    tiers = {
        "quick": {
            "models": "reasoner",
            "n_boot": 200,
            "select.candidates": 12,
            "select.screen_samples": 6,
            "reasoner.problems": 2,
            "reasoner.rollouts": 12,
            "interventions.problems": 2,
            "interventions.rollouts": 10,
            "interventions.n_iterations": 2,
            "interventions.n_candidates": 4,
            "interventions.n_continuations": 3,
            "resilience.problems": 1,
            "resilience.sentences": 2,
            "resilience.rollouts": 4,
            "resilience.max_iterations": 3,
        },
        "standard": {},
        "full": {
            "models": "reasoner,smollm2,server",
            "n_boot": 2000,
            "select.candidates": 100,
            "select.screen_samples": 16,
            "smollm2.problems": 20,
            "smollm2.rollouts": 100,
            "smollm2.forced": True,
            "smollm2.gsm_symbolic": 10,
            "interventions.problems": 20,
            "interventions.rollouts": 100,
            "resilience.problems": 10,
            "resilience.sentences": 5,
            "resilience.rollouts": 30,
        },
    }
    return tiered(base, tiers, variant)
