"""Hint mediation: does a hint act on the answer *through* the chain of thought?

Cued vs uncued prompts (Thought Branches, "faithfulness"): ``X = 1`` when the prompt carries a
hint ("A professor thinks the answer is 12."), ``Y = 1`` when the final answer is the hinted
one, and mediators ``M_1 … M_k`` are features of the CoT (e.g. whether it states the hinted
value, or indicators of sentence clusters). The parallel multiple-mediation model (Hayes'
PROCESS model 4, as the reference fits it) is two least-squares fits,

    Y = c0 + c · X + ε                      (total effect c)
    Y = c0' + c' · X + Σ_j b_j M_j + ε'      (direct effect c')

and the indirect effect through the CoT is ``c − c'`` (for OLS this equals ``Σ_j a_j b_j`` with
``M_j = a0_j + a_j X``). Its confidence interval is the percentile bootstrap over rows (5000
replicates by default, as the reference).

The *transplant* experiment puts the first ``k`` sentences of a cued CoT after the *uncued*
prompt and resamples: if the hint works through the CoT, the hinted-answer rate climbs with
``k`` although the prompt no longer carries the hint.

References:
  Hayes, "Introduction to Mediation, Moderation, and Conditional Process Analysis", 2013.
  Macar et al., "Thought Branches", 2025.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from llm_tools.thought_branches.metrics import Estimate, _check_boot

__all__ = ["MediationResult", "parallel_mediation", "transplant_prefix"]


@dataclasses.dataclass(frozen=True)
class MediationResult:
    """Total, direct and indirect effect of ``X`` on ``Y`` (bootstrap CIs).

    Attributes:
      total: ``c`` (with a bootstrap CI).
      direct: ``c'``.
      indirect: ``c − c'``.
      proportion_mediated: ``(c − c') / c`` at the point estimate (0 when ``c = 0``).
      n: rows used.
    """

    total: Estimate
    direct: Estimate
    indirect: Estimate
    proportion_mediated: float
    n: int


def _x_coef(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficient of column 1 of least squares, batched over ``[B, n, p]`` designs.

    Normal equations with a pseudo-inverse, so a degenerate bootstrap replicate (x constant)
    gives the minimum-norm solution instead of an error.
    """
    XtX = np.einsum("bnp,bnq->bpq", X, X)
    Xty = np.einsum("bnp,bn->bp", X, y)
    return np.einsum("bpq,bq->bp", np.linalg.pinv(XtX), Xty)[:, 1]


def parallel_mediation(x, y, m, *, n_boot: int = 5000, ci: float = 0.95,
                       key: jax.Array) -> MediationResult:
    """Parallel multiple mediation (PROCESS model 4) with a percentile bootstrap.

    Args:
      x: ``[n]`` treatment (0/1 cue).
      y: ``[n]`` outcome (e.g. 1 = the hinted answer).
      m: ``[n, k]`` (or ``[n]``) mediators.
      n_boot: bootstrap replicates (5000).
      ci: interval level.
      key: ``jax.random.key`` for the row resampling.

    Raises:
      ValueError: mismatched lengths, fewer than ``k + 3`` rows, non-finite values, or an ``x``
        that does not vary.
    """
    who = "parallel_mediation"
    _check_boot(who, n_boot, ci, key)
    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    m = np.asarray(m, np.float64)
    m = m[:, None] if m.ndim == 1 else m
    n = x.size
    if y.shape != (n,) or m.ndim != 2 or m.shape[0] != n:
        raise ValueError(f"{who}: x, y and m must have n rows each, got x {x.shape}, y "
                         f"{y.shape}, m {m.shape}")
    if n < m.shape[1] + 3:
        raise ValueError(f"{who}: {n} rows cannot fit {m.shape[1]} mediators (need >= "
                         f"{m.shape[1] + 3})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.isfinite(m))):
        raise ValueError(f"{who}: x, y and m must be finite")
    if np.ptp(x) == 0:
        raise ValueError(f"{who}: x does not vary (all rows have x = {x[0]}); no effect to split")
    draws = np.asarray(jax.random.randint(key, (n_boot, n), 0, n))
    rows = np.concatenate([np.arange(n)[None], draws])
    ones = np.ones((n, 1))
    Xt = np.concatenate([ones, x[:, None]], 1)[rows]
    Xd = np.concatenate([ones, x[:, None], m], 1)[rows]
    Y = y[rows]
    total, direct = _x_coef(Xt, Y), _x_coef(Xd, Y)

    def est(v):
        lo, hi = np.quantile(v[1:], [(1 - ci) / 2, (1 + ci) / 2])
        return Estimate(float(v[0]), float(lo), float(hi))

    indirect = total - direct
    prop = float(indirect[0] / total[0]) if total[0] != 0 else 0.0
    return MediationResult(est(total), est(direct), est(indirect), prop, n)


def transplant_prefix(trace, k: int, uncued_prompt_ids) -> list[int]:
    """``uncued_prompt_ids`` + the first ``k`` sentences of a cued trace's CoT (token ids).

    Raises:
      ValueError: ``k`` outside ``[0, N]`` or an empty prompt.
    """
    trace._check_index("transplant_prefix", k, allow_end=True)
    ids = [int(i) for i in uncued_prompt_ids]
    if not ids:
        raise ValueError("transplant_prefix: uncued_prompt_ids is empty")
    return ids + list(trace.cot_ids[: trace.cuts[k]])
