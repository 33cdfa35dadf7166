"""Muon with Newton-Schulz: optax transforms and the paper's theory made measurable.

Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.

Muon orthogonalizes each matrix's momentum with q Newton-Schulz (NS) steps instead of the
exact SVD polar factor. The paper proves NS-Muon converges at the SVD rate times a factor
chi_q that goes to 1 doubly exponentially in q, and that Muon removes the sqrt(rank) loss
of SGD with momentum.
"""

from muon_ns import theory
from muon_ns.newton_schulz import (
    NORMALIZATIONS,
    NS_METHODS,
    NSDiagnostics,
    newton_schulz,
    ns_diagnostics,
    polar_svd,
)
from muon_ns.schemes import (
    SCHEMES,
    convergence_order,
    residual_polynomial,
    resolve_coeffs,
    scheme_order,
    scheme_satisfies_theory,
    taylor_coeffs,
)
from muon_ns.transform import (
    OPTAX_COMPAT,
    MuonDimensionNumbers,
    ScaleByMomentumState,
    ScaleByMuonState,
    muon,
    scale_by_momentum,
    scale_by_muon,
    sgd_momentum,
)

__all__ = [
    "NORMALIZATIONS",
    "NS_METHODS",
    "OPTAX_COMPAT",
    "SCHEMES",
    "MuonDimensionNumbers",
    "NSDiagnostics",
    "ScaleByMomentumState",
    "ScaleByMuonState",
    "convergence_order",
    "muon",
    "newton_schulz",
    "ns_diagnostics",
    "polar_svd",
    "residual_polynomial",
    "resolve_coeffs",
    "scale_by_momentum",
    "scale_by_muon",
    "scheme_order",
    "scheme_satisfies_theory",
    "sgd_momentum",
    "taylor_coeffs",
    "theory",
]
