"""Config of the CQC experiments (Givens et al., ICLR 2026, arXiv:2601.19666).

    python -m experiments.cqc.main --config=experiments/cqc/configs/default.py:quick \
        --workdir=/tmp/cqc_run --config.experiment=complexity

``experiment`` is one of ``complexity`` (claim 1: error vs nuisance complexity gamma on
scenario 4), ``robustness`` (claim 2: double robustness under misspecification),
``employment`` (claim 3: NSW jtrain2, g(y0 | age) - y0 with bootstrap bands) or ``all``.
Tiers: ``quick`` (minutes on 2 CPU cores, smoke scale), ``standard`` (where each claim is
judged, <= 20 minutes on 2 CPU cores), ``full`` (the paper's scale: gamma 0..10, 50 reps).
"""

from experiments.config import tiered


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
