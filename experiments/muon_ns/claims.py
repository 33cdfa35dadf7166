"""The paper's claims, as run by ``python -m experiments.reproduce --only muon_ns``.

Criteria are fixed here, before running: (1) every delta_q / eps_q within its bound (plus a
float64 rounding floor); (2) digits: every NS run with q >= 3 within 2% of Muon-SVD's best
validation loss (early stopping, mean of ``train.seeds`` seeds) and reaching that level
sooner in training wall-clock; (3) LM: per normalization, the paired gap to SVD shrinks from
the largest to the smallest measured chi (95% CI above 0) and is within 1% at the smallest
chi (95% CI), NS at Muon-SVD's selected learning rate (``lm_sweep``); (4) with each
optimizer at Theorem 1's step size for its own smoothness constant, SGD-M's slope of
log(steps to target) vs log r exceeds Muon's by >= 0.25.

History: the first version (issue 3) judged the LM claim on one seed at one shared learning
rate with a 2% criterion at the final step, and the digits claim at the final step after the
runs had overfit; the rank claim gave SGD-M Muon's step size. Those designs could not decide
their claims (seed spread as large as the margin; overfit final losses; an SGD-M step size
its theory does not prescribe); docs/muon_ns.md reports the old results beside the new.
"""

from __future__ import annotations

from pathlib import Path

from experiments.claims import Claim, ClaimResult
from experiments.config import load_config
from experiments.muon_ns import convergence, lm_sweep, rank, training

PAPER = 'Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026 (arXiv 2601.19156)'
CONFIG = Path(__file__).parent / "configs" / "default.py"


def _config(tier: str, experiment: str):
    return load_config(CONFIG, tier, {"experiment": experiment})


@training.single_threaded_blas
def _convergence(tier: str, workdir: Path) -> ClaimResult:
    r = convergence.run(_config(tier, "convergence"), workdir)
    numbers = {k: v for k, v in r.items() if k != "held"}
    return ClaimResult(
        numbers=numbers, held=r["held"], plots=["ns_convergence.png"],
        summary=(f"{r['num_within_bound']}/{r['num_measurements']} measurements of delta_q and "
                 f"eps_q (kappa=1..4, q=0..6, Gaussian and cond-1e3 log-uniform "
                 f"{r['shape'][0]}x{r['shape'][1]} matrices, float64) are within "
                 "delta_0^{(kappa+1)^q} and 1-sqrt(1-delta_0^{(kappa+1)^q})."),
    )


@training.single_threaded_blas
def _digits(tier: str, workdir: Path) -> ClaimResult:
    r = training.run_digits(_config(tier, "digits"), workdir)
    numbers = {k: v for k, v in r.items() if k != "held" and v is not None}
    ok = [k[:-3] for k, v in r.items() if k.endswith("_ok") and v]
    bad = [k[:-3] for k, v in r.items() if k.endswith("_ok") and not v]
    return ClaimResult(
        numbers=numbers, held=r["held"], plots=["digits_val_loss.png"],
        summary=(f"Muon-SVD best validation loss {r['svd_best_val_loss']:.4f} (early "
                 f"stopping, mean of {r['num_seeds']} seeds). NS runs with q>=3 meeting both "
                 f"criteria (<= 2% worse at their best, reaching that level sooner in "
                 f"wall-clock): {ok or 'none'}; failing: {bad or 'none'}."),
    )


@training.single_threaded_blas
def _lm(tier: str, workdir: Path) -> ClaimResult:
    r = lm_sweep.run(_config(tier, "lm"), workdir)
    numbers = {k: v for k, v in r.items() if k != "held" and v is not None}
    parts = []
    for tag in ("fro", "max1"):
        if f"{tag}_q_hi" not in r:
            continue
        q_lo, q_hi = r[f"{tag}_q_lo"], r[f"{tag}_q_hi"]
        parts.append(
            f"{tag}: gap shrinks from q={q_lo} to q={q_hi} by {r[f'{tag}_gap_shrink']:+.4f} "
            f"(95% CI low {r[f'{tag}_gap_shrink_ci_lo']:+.4f}); gap at q={q_hi} "
            f"{r[f'{tag}_q{q_hi}_gap']:+.4f} (95% CI high {r[f'{tag}_q{q_hi}_gap_ci_hi']:+.4f}, "
            f"chi {r[f'{tag}_q{q_hi}_chi']:.4g})")
    return ClaimResult(
        numbers=numbers, held=r["held"], plots=["lm_gap_vs_chi.png", "lm_val_loss.png"],
        summary=(f"Byte LM, {r['num_seeds']} paired seeds, each optimizer at its own best lr, "
                 f"judged at the best validation loss; Muon-SVD {r['svd_best_val_loss']:.4f}. "
                 + "; ".join(parts) + f" (margin {r['margin']:.0%})."),
    )


@training.single_threaded_blas
def _rank(tier: str, workdir: Path) -> ClaimResult:
    r = rank.run(_config(tier, "rank"), workdir)
    numbers = {k: v for k, v in r.items() if k != "held"}
    return ClaimResult(
        numbers=numbers, held=r["held"], plots=["rank_stationarity.png"],
        summary=(f"Steps to ||grad f||_* <= {r['target']} vs rank r (beta={r['beta']}), each "
                 f"optimizer at Theorem 1's step size for its own smoothness constant: slope in "
                 f"log r {r['sgdm_own_slope_log_steps_vs_log_r']:.3f} for SGD-M vs "
                 f"{r['muon_own_slope_log_steps_vs_log_r']:.3f} for Muon (gap "
                 f"{r['slope_gap_own']:.3f}; needs >= 0.25). With Muon's step size for both "
                 f"(the first version): SGD-M slope "
                 f"{r['sgdm_shared_slope_log_steps_vs_log_r']:.3f}, gap "
                 f"{r['slope_gap_shared']:.3f}. Runs not reaching the target within "
                 f"{r['max_steps']} steps (counted at the cap): SGD-M own "
                 f"{r['sgdm_own_runs_not_reaching_target']}, shared "
                 f"{r['sgdm_shared_runs_not_reaching_target']}, Muon "
                 f"{r['muon_own_runs_not_reaching_target']}."),
    )


CLAIMS = [
    Claim(package="muon_ns", name="ns_doubly_exponential", paper=PAPER,
          statement=("With the Taylor polynomial of degree kappa, q Newton-Schulz steps give "
                     "delta_q <= delta_0^{(kappa+1)^q} and eps_q <= 1 - sqrt(1 - "
                     "delta_0^{(kappa+1)^q}): doubly exponential convergence to the polar "
                     "factor, faster for higher degree."),
          run=_convergence),
    Claim(package="muon_ns", name="ns_matches_svd_digits", paper=PAPER,
          statement=("Muon with a few NS steps (q >= 3) trains as well as Muon with the exact "
                     "SVD polar factor (within 2% best validation loss) and gets there sooner "
                     "in wall-clock (MLP on scikit-learn digits)."),
          run=_digits),
    Claim(package="muon_ns", name="ns_matches_svd_lm", paper=PAPER,
          statement=("NS-Muon converges at Muon-SVD's rate up to the factor chi_q, which goes "
                     "to 1 with q: on a byte-level transformer LM (Python standard library, "
                     "split by file) the gap to Muon-SVD shrinks as the measured chi_q "
                     "approaches 1, and vanishes (within 1%) where chi_q is nearest 1."),
          run=_lm),
    Claim(package="muon_ns", name="no_sqrt_rank_loss", paper=PAPER,
          statement=("Muon's convergence in nuclear-norm stationarity does not degrade with "
                     "the gradient rank r, while SGD with momentum pays an extra sqrt(r)."),
          run=_rank),
]
