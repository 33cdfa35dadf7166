"""SoftStep: Learning Sparse Similarity Powers Deep Neighbor-Based Regression.

Susman, Lin, Suarez-Farinas, Colonel; arXiv 2506.08139.

A neighbour-based regression head predicts a query's target as a similarity-weighted
average of its neighbours' targets; SoftStep learns a sparse, instance-wise mask over
those similarities. This package gives the pure step function, the NNX module, four
swappable heads, a chunked/top-k/sharded inference bank, and a scikit-learn-like
estimator.
"""

from softstep.backbones import BACKBONES, CNN, MLP, ResMLP, make_backbone
from softstep.bank import Bank, bank_predict, build_bank
from softstep.datasets import (
    DATASETS,
    Dataset,
    load_dataset,
    load_diabetes,
    load_digits_rotation,
    load_house_prices,
    load_wages,
    make_manifold,
)
from softstep.heads import KNNHead, LinearHead, NadarayaWatsonHead, SoftStepHead
from softstep.regressor import NeighborRegressor
from softstep.similarity import SIMILARITIES, minmax_normalize, pairwise_similarity
from softstep.step import MODES, STEP_KINDS, SoftStep, SoftStepParams, soft_step
from softstep.training import (
    HEADS,
    ModelSpec,
    NeighborModel,
    TrainConfig,
    TrainResult,
    make_model,
    predict_dense,
    train_model,
)

__all__ = [
    "MODES",
    "SIMILARITIES",
    "STEP_KINDS",
    "Bank",
    "KNNHead",
    "LinearHead",
    "NadarayaWatsonHead",
    "SoftStep",
    "SoftStepHead",
    "SoftStepParams",
    "bank_predict",
    "build_bank",
    "minmax_normalize",
    "pairwise_similarity",
    "soft_step",
    "BACKBONES",
    "CNN",
    "MLP",
    "ResMLP",
    "make_backbone",
    "NeighborRegressor",
    "HEADS",
    "ModelSpec",
    "NeighborModel",
    "TrainConfig",
    "TrainResult",
    "make_model",
    "predict_dense",
    "train_model",
    "DATASETS",
    "Dataset",
    "load_dataset",
    "load_diabetes",
    "load_digits_rotation",
    "load_house_prices",
    "load_wages",
    "make_manifold",
]
