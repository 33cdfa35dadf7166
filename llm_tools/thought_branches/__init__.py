"""Thought Branches: interpreting a reasoning model's chain of thought by resampling.

(filled in below)
"""

from llm_tools.thought_branches.answers import (
    ANSWER_KINDS,
    answers_match,
    extract_answer,
    extract_boxed,
    normalize_answer,
)
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

__all__ = [
    "OnPolicyResult", "candidate_score", "off_policy_prefix", "on_policy_search",
    "MediationResult", "parallel_mediation", "transplant_prefix", "ResilienceResult",
    "cf_plus_plus", "resilience", "SENTENCE_TYPES", "sentence_type",
    "Rollout", "RolloutStore", "SamplingParams", "Trace", "collect", "embed_similarities",
    "prefix_key", "rollout_sets", "sampler_identity", "sweep", "token_access",
    "Estimate", "RolloutSet", "accuracy", "answer_distribution", "bootstrap_mean",
    "kl_divergence", "sentence_importance",
    "ANSWER_KINDS", "answers_match", "extract_answer", "extract_boxed", "normalize_answer",
    "Sentence", "first_sentence", "join_sentences", "split_sentences"]
