"""Muon with Newton-Schulz: optax transforms and the paper's theory made measurable.

Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.

Muon orthogonalizes each matrix's momentum with q Newton-Schulz (NS) steps instead of the
exact SVD polar factor. The paper proves NS-Muon converges at the SVD rate times a factor
chi_q that goes to 1 doubly exponentially in q, and that Muon removes the sqrt(rank) loss
of SGD with momentum.
"""

from muon_ns import theory
from muon_ns.newton_schulz import (
    GRAM_MIN_ASPECT,
    GRAM_RESTART,
    NORMALIZATIONS,
    NS_METHODS,
    NSDiagnostics,
    newton_schulz,
    ns_diagnostics,
    polar_svd,
)
from muon_ns.schemes import (
    SCHEMES,
    coefficient_table,
    convergence_order,
    residual_polynomial,
    resolve_coeffs,
    scheme_order,
    scheme_satisfies_theory,
    taylor_coeffs,
)
from muon_ns.transform import (
    DEFAULTS,
    OPTAX_COMPAT,
    MuonDimensionNumbers,
    ScaleByMomentumState,
    ScaleByMuonDiagnosticsState,
    ScaleByMuonState,
    ScaleByOrthogonalizationState,
    muon,
    scale_by_momentum,
    scale_by_muon,
    scale_by_orthogonalization,
    scale_by_shape,
    sgd_momentum,
    state_from_optax,
)

__all__ = [
    "DEFAULTS",
    "GRAM_MIN_ASPECT",
    "GRAM_RESTART",
    "NORMALIZATIONS",
    "NS_METHODS",
    "OPTAX_COMPAT",
    "SCHEMES",
    "MuonDimensionNumbers",
    "NSDiagnostics",
    "ScaleByMomentumState",
    "ScaleByMuonDiagnosticsState",
    "ScaleByMuonState",
    "ScaleByOrthogonalizationState",
    "coefficient_table",
    "convergence_order",
    "muon",
    "newton_schulz",
    "ns_diagnostics",
    "polar_svd",
    "residual_polynomial",
    "resolve_coeffs",
    "scale_by_momentum",
    "scale_by_muon",
    "scale_by_orthogonalization",
    "scale_by_shape",
    "scheme_order",
    "scheme_satisfies_theory",
    "sgd_momentum",
    "state_from_optax",
    "taylor_coeffs",
    "theory",
]
