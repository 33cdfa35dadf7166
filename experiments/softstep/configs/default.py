"""SoftStep suite: every dataset x backbone x head, several seeds (arXiv 2506.08139).

    python -m experiments.softstep.main --config=experiments/softstep/configs/default.py:quick \
        --workdir=/tmp/softstep_quick
    python -m experiments.softstep.main \
        --config=experiments/softstep/configs/default.py:standard --workdir=/tmp/softstep_std

Lists are comma-separated strings so they can be overridden on the command line
(``--config.datasets=diabetes,wages``). Heads: ``linear``, ``nw`` and
``s{1,2}_{pointwise,global}`` (SoftStep kind and mode).
"""

from experiments.config import tiered


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
