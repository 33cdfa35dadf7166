"""Config of the CQC experiments (Givens et al., ICLR 2026, arXiv:2601.19666).

    python -m experiments.cqc.main --config=experiments/cqc/configs/default.py:quick \
        --workdir=/tmp/cqc_run --config.experiment=complexity

``experiment`` is one of ``complexity`` (claim 1: error vs nuisance complexity gamma on
scenario 4), ``robustness`` (claim 2: double robustness under misspecification),
``employment`` (claim 3: NSW jtrain2, g(y0 | age) - y0 with bootstrap bands) or ``all``.
Tiers: ``quick`` (minutes on 2 CPU cores, smoke scale), ``standard`` (where each claim is
judged, <= 20 minutes on 2 CPU cores), ``full`` (the paper's scale: gamma 0..10, 50 reps).
``RULES`` check every value before a run writes anything; a restart in the same workdir
(which skips the cells already logged) may change only ``RESUME_ALLOW``.
"""

from experiments.config import (
    ConfigError,
    at_least,
    in_range,
    non_negative,
    one_of,
    positive,
    tiered,
    tuple_of,
)

EXPERIMENTS = ("complexity", "robustness", "employment")

RULES = {
    "experiment": one_of("all", *EXPERIMENTS),
    "direct.steps": positive,
    "direct.learning_rate": positive,
    "direct.grid_size": positive,
    "direct.n_levels": positive,
    "complexity.scenario": one_of(1, 2, 3, 4),
    "complexity.gammas": tuple_of(non_negative),
    "complexity.ns": tuple_of(at_least(100)),
    "complexity.reps": positive,
    "robustness.scenario": one_of(1, 2, 3, 4),
    "robustness.gamma": non_negative,
    "robustness.ns": tuple_of(at_least(100)),
    "robustness.reps": positive,
    "employment.dataset": one_of("jtrain2", "jtrain3"),
    "employment.levels": tuple_of(in_range(0.0, 1.0, closed=False)),
    "employment.model": one_of("linear", "monotone"),
    "employment.steps": positive,
    "employment.learning_rate": positive,
    "employment.n_boot": positive,
    "employment.band_level": in_range(0.5, 0.999),
}

RESUME_ALLOW = ()


def validate(config) -> None:
    """Checks across keys (``RULES`` checks each value on its own)."""
    if config.employment.age_max <= config.employment.age_min:
        raise ConfigError("config.employment.age_max must be > config.employment.age_min, got "
                          f"{config.employment.age_max} <= {config.employment.age_min}")


def get_config(variant=None):
    base = {
        "experiment": "all",
        "seed": 0,
        "direct": {"steps": 400, "learning_rate": 0.05, "grid_size": 128, "n_levels": 9},
        "complexity": {
            "scenario": 4,
            "gammas": (0.0, 2.0, 4.0, 6.0, 8.0, 10.0),
            "ns": (500, 1000, 2000, 5000),
            "reps": 10,
        },
        "robustness": {
            "scenario": 4,
            "gamma": 1.0,
            "ns": (1000, 4000, 16000),
            "reps": 8,
        },
        "employment": {
            "dataset": "jtrain2",
            "age_min": 18,
            "age_max": 50,
            "levels": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            "model": "linear",
            "steps": 400,
            "learning_rate": 0.01,
            "n_boot": 100,
            "band_level": 0.9,
        },
    }
    tiers = {
        "quick": {
            "direct.steps": 200,
            "complexity.gammas": (0.0, 8.0),
            "complexity.ns": (1000,),
            "complexity.reps": 2,
            "robustness.ns": (1000, 4000),
            "robustness.reps": 1,
            "employment.n_boot": 10,
            "employment.steps": 200,
        },
        "standard": {},
        "full": {
            "complexity.gammas": tuple(float(g) for g in range(11)),
            "complexity.reps": 50,
            "robustness.ns": (1000, 4000, 16000, 64000),
            "robustness.reps": 50,
            "employment.n_boot": 500,
        },
    }
    return tiered(base, tiers, variant)
