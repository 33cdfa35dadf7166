"""Direct Doubly Robust Estimation of Conditional Quantile Contrasts.

Givens, Liu, Reeve, Reluga; ICLR 2026, arXiv 2601.19666. The conditional quantile
comparator ``g*(y0 | x) = F_1^{-1}(F_0(y0 | x) | x)`` maps an untreated outcome to the
treated outcome at the same conditional quantile. :class:`DirectCQC` parameterizes it
directly and fits it by gradient descent on a doubly robust objective; :class:`IndirectCQC`
(Givens et al., NeurIPS 2024), :class:`IPWCQC` and :class:`SeparateCQC` are the baselines.
All four are scikit-learn estimators (``fit(X, y, a=...)``), and any scikit-learn learner can
serve as a nuisance (:class:`SklearnPropensity`, :class:`SklearnCDF`).
"""

from cqc.data import DEFAULT_COVARIATES, EmploymentData, load_jtrain
from cqc.dr import control_term, direct_loss, grid_cdf, grid_integrated_cdf, pseudo_outcome
from cqc.estimators import (
    DEFAULT_LEVELS,
    IPWCQC,
    Bands,
    DirectCQC,
    IndirectCQC,
    NotFittedError,
    SeparateCQC,
    make_grid,
)
from cqc.isotonic import first_crossing, isotonic_increasing
from cqc.models import LinearCQC, MonotoneCQC, PolynomialCQC, make_model
from cqc.nuisance import (
    ConstantPropensity,
    FittedNuisance,
    KernelCDF,
    KernelPropensity,
    LogisticPropensity,
    MarginalCDF,
    MLPPropensity,
    NeuralCDF,
    Nuisance,
    NuisanceValues,
    OracleCDF,
    OraclePropensity,
    SklearnCDF,
    SklearnPropensity,
    cross_fit,
)
from cqc.simulate import SCENARIOS, Design, Simulation, simulate

__all__ = [
    "Bands",
    "ConstantPropensity",
    "DEFAULT_LEVELS",
    "FittedNuisance",
    "DEFAULT_COVARIATES",
    "Design",
    "DirectCQC",
    "EmploymentData",
    "IPWCQC",
    "IndirectCQC",
    "KernelCDF",
    "KernelPropensity",
    "LinearCQC",
    "LogisticPropensity",
    "MLPPropensity",
    "MarginalCDF",
    "MonotoneCQC",
    "NeuralCDF",
    "NotFittedError",
    "Nuisance",
    "NuisanceValues",
    "OracleCDF",
    "OraclePropensity",
    "PolynomialCQC",
    "SCENARIOS",
    "SeparateCQC",
    "Simulation",
    "SklearnCDF",
    "SklearnPropensity",
    "control_term",
    "cross_fit",
    "direct_loss",
    "first_crossing",
    "grid_cdf",
    "grid_integrated_cdf",
    "isotonic_increasing",
    "load_jtrain",
    "make_grid",
    "make_model",
    "pseudo_outcome",
    "simulate",
]
