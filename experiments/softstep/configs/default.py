"""SoftStep suite: every dataset x backbone x head, several seeds (arXiv 2506.08139).

    python -m experiments.softstep.main --config=experiments/softstep/configs/default.py:quick \
        --workdir=/tmp/softstep_quick
    python -m experiments.softstep.main \
        --config=experiments/softstep/configs/default.py:standard --workdir=/tmp/softstep_std

Lists are comma-separated strings so they can be overridden on the command line
(``--config.datasets=diabetes,wages``). Heads: ``linear``, ``nw`` and
``s{1,2}_{pointwise,global}`` (SoftStep kind and mode). ``RULES`` and ``validate`` check
every value before a run writes anything; a restart in the same workdir (which skips the
finished cells) may change only ``RESUME_ALLOW``.
"""

from experiments.config import ConfigError, in_range, one_of, positive, tiered

HEADS = ("linear", "nw", "s1_pointwise", "s2_pointwise", "s1_global", "s2_global")

RULES = {
    "num_seeds": positive, "epochs": positive, "image_epochs": positive, "batch_size": positive,
    "learning_rate": positive, "patience": positive, "embed_dim": positive,
    "weight_decay": in_range(0.0, 1.0),
    "val_fraction": in_range(0.0, 0.5, closed=False),
    "test_fraction": in_range(0.0, 0.5, closed=False),
    "rank_pairs": positive, "similarity": one_of("neg_l2", "neg_l1", "dot", "cosine"),
}

# Finished cells are skipped on a restart and the suite refuses cells of another config
# itself, so nothing may differ.
RESUME_ALLOW = ()


def _items(text) -> list[str]:
    return [p.strip() for p in str(text).split(",") if p.strip()]


def validate(config) -> None:
    """The comma-separated lists: known names, positive ints (``RULES`` do the scalars)."""
    from softstep import DATASETS

    for key, allowed in (("datasets", DATASETS), ("heads", HEADS),
                         ("table_backbones", ("mlp", "resmlp")),
                         ("image_backbones", ("cnn", "mlp", "resmlp"))):
        items = _items(config[key])
        bad = [i for i in items if i not in allowed]
        if not items or bad:
            raise ConfigError(
                f"config.{key}: expected some of {sorted(allowed)}, got {bad or items}")
    for key in ("hidden_table", "hidden_cnn", "knn_grid"):
        items = _items(config[key])
        if not items or not all(i.isdigit() and int(i) > 0 for i in items):
            raise ConfigError(f"config.{key} must be comma-separated positive ints, got "
                              f"{config[key]!r}")


def get_config(variant=None):
    base = {
        "seed": 0,
        "num_seeds": 5,
        "datasets": "diabetes,house_prices,wages,manifold,digits_rotation",
        "table_backbones": "mlp,resmlp",
        "image_backbones": "cnn,mlp",
        "heads": "linear,nw,s1_pointwise,s2_pointwise,s1_global,s2_global",
        "similarity": "neg_l2",
        "hidden_table": "128,128",
        "hidden_cnn": "8,16,16",
        "embed_dim": 32,
        "epochs": 200,
        "image_epochs": 60,  # max epochs on the image task (CNN epochs are costly on CPU)
        "batch_size": 128,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "patience": 20,
        "val_fraction": 0.16,
        "test_fraction": 0.2,
        "knn_grid": "1,2,3,5,8,12,20,30,50",
        "rank_pairs": 4000,
        "plot_dataset": "manifold",
    }
    tiers = {
        "quick": {
            "num_seeds": 2,
            "datasets": "diabetes,manifold",
            "table_backbones": "mlp",
            "heads": "linear,nw,s1_pointwise",
            "epochs": 40,
            "patience": 10,
        },
        "standard": {"epochs": 150, "patience": 15},
        "full": {
            "num_seeds": 10,
            "epochs": 1000,
            "image_epochs": 1000,
            "patience": 50,
            "hidden_table": "256,256,256",
            "embed_dim": 64,
        },
    }
    return tiered(base, tiers, variant)
