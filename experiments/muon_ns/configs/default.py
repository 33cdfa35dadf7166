"""Configs of the muon_ns experiments (Kim & Oh 2026, "Convergence of Muon with Newton-Schulz").

One config holds the four experiments; ``experiment`` picks which one ``main`` runs:

    python -m experiments.muon_ns.main --config=experiments/muon_ns/configs/default.py:quick \
        --config.experiment=convergence --workdir=/tmp/muon_conv
    python -m experiments.muon_ns.main --config=experiments/muon_ns/configs/default.py:standard \
        --config.experiment=digits --workdir=/tmp/muon_digits
    # experiment in {convergence, digits, lm, rank}; tiers quick | standard | full

The claims (``python -m experiments.reproduce --tier standard --only muon_ns``) run all four.
``RULES`` and ``validate`` check every value before a run writes anything; a restart in the
same workdir may change only ``RESUME_ALLOW``.
"""

from experiments.config import ConfigError, in_range, one_of, positive, tiered

EXPERIMENTS = ("convergence", "digits", "lm", "rank")

RULES = {
    "experiment": one_of(*EXPERIMENTS),
    "convergence.max_q": positive, "convergence.cond": positive,
    "convergence.num_matrices": positive,
    "train.muon_lr": positive, "train.sgdm_lr": positive, "train.adamw_lr": positive,
    "train.muon_beta": in_range(0.0, 1.0, closed=False),
    "train.sgdm_beta": in_range(0.0, 1.0, closed=False),
    "train.normalization": one_of("frobenius", "max1_frobenius", "spectral_bound", "none"),
    "train.checkpoint_every": positive, "train.timing_repeats": positive,
    "digits.steps": positive, "digits.batch_size": positive, "digits.hidden": positive,
    "digits.eval_every": positive,
    "lm.steps": positive, "lm.batch_size": positive, "lm.seq_len": positive,
    "lm.d_model": positive, "lm.num_layers": positive, "lm.num_heads": positive,
    "lm.eval_every": positive, "lm.eval_batches": positive, "lm.max_train_bytes": positive,
    "rank.dim": positive, "rank.num_samples": positive, "rank.batch_size": positive,
    "rank.max_steps": positive, "rank.target": positive,
    "rank.beta": in_range(0.0, 1.0, closed=False), "rank.seeds": positive,
    "rank.eval_every": positive,
}

# checkpoint_every only changes when state is saved.
RESUME_ALLOW = ("train.checkpoint_every",)


def validate(config) -> None:
    """Checks across keys (``RULES`` check each value on its own)."""
    from experiments.muon_ns.training import parse_optimizers

    for key in ("train.optimizers", "train.optimizers_lm"):
        try:
            parse_optimizers(config.train[key.split(".")[1]])
        except ValueError as e:
            raise ConfigError(f"config.{key}: {e}") from e
    for task in ("digits", "lm"):
        if config[task].steps % config[task].eval_every:
            raise ConfigError(f"config.{task}.steps ({config[task].steps}) must be a multiple "
                              f"of config.{task}.eval_every ({config[task].eval_every})")
    if min(config.rank.ranks) < 1 or max(config.rank.ranks) > config.rank.dim:
        raise ConfigError(f"config.rank.ranks must be <= dim={config.rank.dim} (and >= 1), "
                          f"got {tuple(config.rank.ranks)}")

# Optimizer grid of the training comparison: name -> settings (fixed before any run).
TRAIN_OPTIMIZERS_ALL = (
    "muon_svd,"
    + ",".join(f"muon_ns_k{k}_q{q}" for k in (1, 2) for q in range(1, 6))
    + ",sgdm,adamw"
)


def get_config(variant=None):
    base = {
        "experiment": "convergence",
        "seed": 0,
        "convergence": {
            "shape": (64, 128),  # m x n of each test matrix
            "kappas": (1, 2, 3, 4),
            "max_q": 6,
            "cond": 1e3,  # condition number of the log-uniform-spectrum matrix
            "num_matrices": 2,  # per kind
        },
        "train": {  # shared by the digits MLP and the byte LM
            "optimizers": TRAIN_OPTIMIZERS_ALL,
            "muon_lr": 0.02,
            "muon_beta": 0.95,
            "sgdm_lr": 0.02,
            "sgdm_beta": 0.9,
            "adamw_lr": 1e-3,
            "normalization": "frobenius",
            "checkpoint_every": 100,
            "timing_repeats": 1,
        },
        "digits": {"steps": 600, "batch_size": 128, "hidden": 128, "eval_every": 50},
        "lm": {
            "steps": 300,
            "batch_size": 16,
            "seq_len": 128,
            "d_model": 64,
            "num_layers": 2,
            "num_heads": 4,
            "eval_every": 50,
            "eval_batches": 8,
            "max_train_bytes": 2_000_000,
        },
        "rank": {
            "ranks": (1, 2, 4, 8, 16, 32, 64),
            "dim": 64,
            "num_samples": 4096,
            "batch_size": 64,
            "max_steps": 4000,
            "beta": 0.9,
            "target": 0.05,  # nuclear-norm stationarity to reach, ||grad f||_*
            "seeds": 2,
            "eval_every": 10,
        },
    }
    quick_opts = "muon_svd,muon_ns_k2_q1,muon_ns_k2_q3,muon_ns_k2_q5,sgdm,adamw"
    tiers = {
        "quick": {
            "convergence.shape": (32, 64),
            "convergence.num_matrices": 1,
            "train.optimizers": quick_opts,
            "digits.steps": 100,
            "digits.hidden": 64,
            "digits.eval_every": 25,
            "lm.steps": 20,
            "lm.seq_len": 64,
            "lm.d_model": 64,
            "lm.num_layers": 1,
            "lm.eval_every": 10,
            "lm.eval_batches": 2,
            "lm.max_train_bytes": 300_000,
            "train.optimizers_lm": "muon_svd,muon_ns_k2_q3,adamw",
            "rank.ranks": (1, 4, 16, 64),
            "rank.max_steps": 1500,
            "rank.seeds": 1,
        },
        "standard": {
            "convergence.shape": (128, 256),
            "train.optimizers_lm": "muon_svd,muon_ns_k1_q3,muon_ns_k1_q5,muon_ns_k2_q1,"
                                   "muon_ns_k2_q3,muon_ns_k2_q5,sgdm,adamw",
        },
        "full": {
            "convergence.shape": (1024, 4096),
            "train.optimizers_lm": TRAIN_OPTIMIZERS_ALL,
            "digits.steps": 3000,
            "digits.hidden": 512,
            "lm.steps": 5000,
            "lm.d_model": 256,
            "lm.num_layers": 4,
            "lm.max_train_bytes": 4_000_000,
            "rank.seeds": 5,
            "rank.max_steps": 10000,
        },
    }
    base["train"]["optimizers_lm"] = TRAIN_OPTIMIZERS_ALL
    return tiered(base, tiers, variant)
