"""Config of the lstdq experiments (arXiv:2601.19030): coverage vs error, the 1/sqrt(n)
rate, the unification identities and LSTDQ vs FQE on CartPole.

    python -m experiments.lstdq.main --config=experiments/lstdq/configs/default.py:quick \
        --workdir=/tmp/lstdq_quick
    python -m experiments.lstdq.main --config=experiments/lstdq/configs/default.py:standard \
        --workdir=/tmp/lstdq_std --config.experiment=coverage

``experiment`` is one of all|coverage|rate|unification|cartpole. The tiers: ``quick``
(seconds per experiment, CI smoke), ``standard`` (where the claims are judged, minutes on
2 CPU cores), ``full`` (more settings, repetitions and data). ``RULES`` and ``validate``
check every value before a run writes anything; a restart in the same workdir may change
only ``RESUME_ALLOW``.
"""

from experiments.config import ConfigError, in_range, one_of, positive, tiered

EXPERIMENTS = ("coverage", "rate", "unification", "cartpole")

RULES = {
    "experiment": one_of("all", *EXPERIMENTS),
    "coverage.num_settings": positive, "coverage.n": positive, "coverage.reps": positive,
    "coverage.num_states": positive, "coverage.num_actions": positive,
    "coverage.chain_states": positive,
    "coverage.gamma": in_range(0.0, 1.0, closed=False), "coverage.dim": positive,
    "rate.num_states": positive, "rate.num_actions": positive, "rate.dim": positive,
    "rate.reps": positive, "rate.num_n": positive,
    "rate.gamma": in_range(0.0, 1.0, closed=False),
    "rate.log10_n_min": in_range(1.0, 9.0),
    "unification.num_mdps": positive, "unification.num_states": positive,
    "unification.num_actions": positive, "unification.dim": positive,
    "unification.gamma": in_range(0.0, 1.0, closed=False),
    "cartpole.n": positive, "cartpole.epsilon": in_range(0.0, 1.0),
    "cartpole.gamma": in_range(0.0, 1.0, closed=False), "cartpole.mc_episodes": positive,
    "cartpole.per_dim": positive, "cartpole.ridge": in_range(0.0, 1e3),
    "cartpole.fqe_iterations": positive, "cartpole.fqe_tol": positive,
    "cartpole.timing_repeats": positive,
}

# Every experiment resumes by skipping the cells its metrics.jsonl already holds, so only
# keys that do not change a finished cell may differ on a restart.
RESUME_ALLOW = ()


def validate(config) -> None:
    """Checks across keys (``RULES`` checks each value on its own)."""
    if config.rate.log10_n_max < config.rate.log10_n_min:
        raise ConfigError("config.rate.log10_n_max must be >= config.rate.log10_n_min, got "
                          f"{config.rate.log10_n_max} < {config.rate.log10_n_min}")


def get_config(variant=None):
    base = {
        "experiment": "all",
        "seed": 0,
        "coverage": {
            "num_settings": 24,  # half random MDPs, half chains
            "num_states": 8,
            "num_actions": 2,
            "chain_states": 6,
            "dim": 4,
            "gamma": 0.9,
            "n": 2000,
            "reps": 40,
        },
        "rate": {
            "num_states": 8,
            "num_actions": 2,
            "dim": 4,
            "gamma": 0.9,
            "log10_n_min": 2.0,
            "log10_n_max": 4.0,
            "num_n": 5,
            "reps": 40,
        },
        "unification": {"num_mdps": 5, "num_states": 10, "num_actions": 3, "dim": 4,
                         "gamma": 0.9},
        "cartpole": {
            "n": 20000,
            "epsilon": 0.3,
            "gamma": 0.95,
            "per_dim": 3,
            "ridge": 1e-3,
            "mc_episodes": 2000,
            "fqe_iterations": 3000,
            "fqe_tol": 1e-4,  # float32 noise floor of the Q change at n >= 1e5
            "timing_repeats": 5,  # LSTDQ and FQE timed alternately, medians compared
        },
    }
    tiers = {
        "quick": {"cartpole.timing_repeats": 3},
        "standard": {
            "coverage.num_settings": 40,
            "coverage.n": 20000,
            "coverage.reps": 400,
            "rate.log10_n_max": 6.0,
            "rate.num_n": 9,
            "rate.reps": 200,
            "unification.num_mdps": 20,
            "cartpole.n": 200000,
            "cartpole.mc_episodes": 20000,
        },
        "full": {
            "coverage.num_settings": 100,
            "coverage.n": 100000,
            "coverage.reps": 500,
            "rate.log10_n_max": 7.0,
            "rate.num_n": 11,
            "rate.reps": 400,
            "unification.num_mdps": 100,
            "cartpole.n": 1000000,
            "cartpole.mc_episodes": 100000,
            "cartpole.per_dim": 4,
        },
    }
    return tiered(base, tiers, variant)
