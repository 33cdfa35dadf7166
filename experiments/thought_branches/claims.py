"""Reproduce claims of llm_tools.thought_branches (Thought Branches, arXiv:2510.27484, and
Thought Anchors, arXiv:2506.19143), judged at each tier.

All three claims share one run of ``experiments/thought_branches/run.py`` (``experiment=all``)
in ``<workdir>/../_run`` (rollouts are stored there, so a rerun resumes). Criteria, fixed here
before running; each uses a 95% bootstrap CI and says *undecided* (``held=None``) when the CI
contains 0:

* sentence_types_importance (Thought Anchors): on the trained reasoner, mean |counterfactual
  importance (KL)| of plan and check sentences minus that of compute sentences: held if the CI
  lies above 0, not held if below.
* on_policy_beats_off_policy (Thought Branches): on decision prompts, per problem |effect of
  on-policy resampling to the target sentence| − |effect of inserting it off-policy|: held if
  the CI of the mean lies above 0, not held if below (undecided with < 2 on-policy successes).
* resilience_cf_plus_plus (Thought Branches): per resampled sentence |CF++| − |one-shot
  counterfactual effect|: held if the CI lies above 0, not held if below.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments.claims import Claim, ClaimResult
from experiments.config import load_config
from experiments.workdir import Workdir

CONFIG = Path(__file__).resolve().parent / "configs" / "default.py"
PAPER = ("Macar, Bogdan, Rajamanoharan, Nanda: Thought Branches: Interpreting LLM Reasoning "
         "Requires Resampling (arXiv:2510.27484); Bogdan, Macar, Nanda, Conmy: Thought Anchors "
         "(arXiv:2506.19143)")


def verdict(ci) -> bool | None:
    """True if a ``(value, low, high)`` CI lies above 0, False if below, None if it holds 0."""
    if ci is None:
        return None
    _, lo, hi = ci
    if lo > 0:
        return True
    if hi < 0:
        return False
    return None


def shared_run(tier: str, workdir: Path) -> tuple[dict, Path]:
    """The tier's one run of every experiment (computed once, then read)."""
    from experiments.thought_branches.run import run

    root = (Path(workdir).parent / "_run").resolve()
    res = root / "results.json"
    if res.exists():
        results = json.loads(res.read_text())
        if results.get("tier") == tier:
            return results, root
    config = load_config(CONFIG, tier)
    Workdir(root).write_config(config)
    results = run(config, root)
    results["tier"] = tier
    Workdir(root).write_results(results)
    return results, root


def _fmt(ci) -> str:
    return "n/a" if ci is None else f"{ci[0]:+.3f} [{ci[1]:+.3f}, {ci[2]:+.3f}]"


def _types(tier: str, workdir: Path) -> ClaimResult:
    r, root = shared_run(tier, workdir)
    imp = r["importance"]
    first = r["models"][0]
    s = imp[first]
    key = "plan_check_minus_compute_counterfactual_importance_kl"
    ci = s.get(key)
    numbers = {f"{m}/{k}": v for m, d in imp.items() for k, v in d.items()
               if k != "by_type"}
    for m, d in imp.items():
        for t, row in d["by_type"].items():
            for k in ("counterfactual_importance_kl", "resampling_importance_accuracy"):
                if k in row:
                    numbers[f"{m}/{t}/{k}"] = row[k]
            numbers[f"{m}/{t}/n"] = row["n"]
    plots = [str(root / f"importance_{m}.png") for m in imp if (root / f"importance_{m}.png")
             .exists()]
    return ClaimResult(numbers=numbers, held=verdict(ci), plots=plots, summary=(
        f"{first}: {s['problems']} problems (of {s['screened']} screened, "
        f"{s['screened_in_range']:.0%} in the 25-75% accuracy band), {s['rollouts']} rollouts "
        f"per sentence; mean |CF importance KL| plan+check minus compute = {_fmt(ci)}; the type "
        f"with the largest |resampling importance| is "
        f"{s.get('top_type_resampling_importance_accuracy', 'n/a')}."))


def _interventions(tier: str, workdir: Path) -> ClaimResult:
    r, root = shared_run(tier, workdir)
    name, s = next(iter(r["interventions"].items()))
    ci = s.get("on_minus_off_abs")
    return ClaimResult(numbers=s, held=verdict(ci), summary=(
        f"{name}, {s['problems']} decision prompts, target sentence inserted after the first "
        f"computation: off-policy effect {s['off_mean']:+.3f} (sd {s['off_std']:.3f}); "
        f"on-policy search succeeded on {s['on_policy_successes']}, effect {s['on_mean']:+.3f} "
        f"(sd {s['on_std']:.3f}); |on| - |off| = {_fmt(ci)}."))


def _resilience(tier: str, workdir: Path) -> ClaimResult:
    r, root = shared_run(tier, workdir)
    s = r["resilience"]
    ci = s.get("cfpp_minus_cf_abs")
    plots = [str(root / "resilience.png")] if (root / "resilience.png").exists() else []
    return ClaimResult(numbers=s, held=verdict(ci), plots=plots, summary=(
        f"{s['sentences']} sentences x {s['rollouts_per_sentence']} rollouts, up to "
        f"{s['max_iterations']} iterations: mean resilience score {s['mean_score']:.2f}, "
        f"persistence {s['persistence_rate']:.0%}; |CF++| - |counterfactual effect| over "
        f"{s['paired_cf']} sentences = {_fmt(ci)}."))


CLAIMS = [
    Claim(package="thought_branches", name="sentence_types_importance", paper=PAPER,
          statement=("Planning and checking sentences carry more counterfactual importance "
                     "than computation sentences (Thought Anchors' thought anchors)."),
          run=_types),
    Claim(package="thought_branches", name="on_policy_beats_off_policy", paper=PAPER,
          statement=("Off-policy edits (a hand-written sentence inserted into the CoT) move the "
                     "model's decision less than on-policy resampling that reaches the same "
                     "sentence."),
          run=_interventions),
    Claim(package="thought_branches", name="resilience_cf_plus_plus", paper=PAPER,
          statement=("Removed content often comes back; once it is removed for good (CF++), its "
                     "effect is larger than the one-shot counterfactual importance suggests."),
          run=_resilience),
]
