"""Thought Branches: interpreting a reasoning model by resampling its chain of thought.

A reasoning model defines a distribution over chains of thought (CoTs); one sample cannot show
what causes what. This subpackage resamples from every sentence onward and measures how the
distribution of final answers moves, on any :class:`~llm_tools.Sampler` (our JAX models in
process, or an OpenAI-compatible server for large reasoning models).

- :func:`split_sentences` — sentences with exact character offsets (the reference's rule,
  trailing chunk kept); :class:`Trace` — prompt and CoT as token ids with a token cut per
  sentence.
- :func:`sweep` / :func:`collect` — rollouts from every cut through ``resample_ids``, stored in
  a resumable :class:`RolloutStore` that refuses to mix models or sampling parameters.
- :func:`extract_answer` — boxed, numeric, multiple-choice and yes/no answers.
- :func:`sentence_importance` — resampling, counterfactual and forced-answer importance
  (accuracy and KL), different-trajectories fraction and overdeterminedness, with bootstrap
  CIs; :func:`analyze` collects them into a :class:`CoTAnalysis`.
- :func:`resilience` and :func:`cf_plus_plus` — how often a sentence's content comes back.
- :func:`on_policy_search` vs :func:`off_policy_prefix` — on- and off-policy interventions.
- :func:`parallel_mediation` and :func:`transplant_prefix` — hint mediation.
- :func:`render_html` — a self-contained browser view; :func:`plot_importance`,
  :func:`plot_resilience`.

References:
  Macar, Bogdan, Rajamanoharan, Nanda, "Thought Branches: Interpreting LLM Reasoning Requires
  Resampling", 2025 (arXiv:2510.27484).
  Bogdan, Macar, Nanda, Conmy, "Thought Anchors: Which LLM Reasoning Steps Matter?", 2025
  (arXiv:2506.19143).
"""

from llm_tools.thought_branches.analysis import METRIC_NAMES, CoTAnalysis, analyze
from llm_tools.thought_branches.answers import (
    ANSWER_KINDS,
    answers_match,
    extract_answer,
    extract_boxed,
    normalize_answer,
)
from llm_tools.thought_branches.browser import render_html, write_html
from llm_tools.thought_branches.interventions import (
    OnPolicyResult,
    candidate_score,
    off_policy_prefix,
    on_policy_search,
)
from llm_tools.thought_branches.mediation import (
    MediationResult,
    parallel_mediation,
    transplant_prefix,
)
from llm_tools.thought_branches.metrics import (
    Estimate,
    RolloutSet,
    accuracy,
    answer_distribution,
    bootstrap_mean,
    kl_divergence,
    sentence_importance,
)
from llm_tools.thought_branches.models import load_reasoner, reasoner_path, reasoner_sampler
from llm_tools.thought_branches.plots import plot_importance, plot_resilience
from llm_tools.thought_branches.problems import (
    Problem,
    decision_problems,
    format_prompt,
    generated_problems,
    gsm_symbolic_problems,
)
from llm_tools.thought_branches.resampling import (
    Trace,
    collect,
    embed_similarities,
    prefix_key,
    rollout_sets,
    sampler_identity,
    sweep,
    token_access,
)
from llm_tools.thought_branches.resilience import ResilienceResult, cf_plus_plus, resilience
from llm_tools.thought_branches.splitter import (
    Sentence,
    first_sentence,
    join_sentences,
    split_sentences,
)
from llm_tools.thought_branches.store import Rollout, RolloutStore, SamplingParams
from llm_tools.thought_branches.taxonomy import SENTENCE_TYPES, sentence_type
from llm_tools.thought_branches.vocab import WordTokenizer

__all__ = [
    "Problem",
    "decision_problems",
    "format_prompt",
    "generated_problems",
    "gsm_symbolic_problems",
    "accuracy",
    "analyze",
    "answer_distribution",
    "ANSWER_KINDS",
    "answers_match",
    "bootstrap_mean",
    "candidate_score",
    "cf_plus_plus",
    "collect",
    "CoTAnalysis",
    "embed_similarities",
    "Estimate",
    "extract_answer",
    "extract_boxed",
    "first_sentence",
    "join_sentences",
    "kl_divergence",
    "load_reasoner",
    "MediationResult",
    "METRIC_NAMES",
    "normalize_answer",
    "off_policy_prefix",
    "on_policy_search",
    "OnPolicyResult",
    "parallel_mediation",
    "plot_importance",
    "plot_resilience",
    "prefix_key",
    "reasoner_path",
    "reasoner_sampler",
    "render_html",
    "resilience",
    "ResilienceResult",
    "Rollout",
    "rollout_sets",
    "RolloutSet",
    "RolloutStore",
    "sampler_identity",
    "SamplingParams",
    "Sentence",
    "sentence_importance",
    "sentence_type",
    "SENTENCE_TYPES",
    "split_sentences",
    "sweep",
    "token_access",
    "Trace",
    "WordTokenizer",
    "transplant_prefix",
    "write_html",
]
