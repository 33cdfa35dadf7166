"""E³-Pruner: layer pruning with Gumbel-TopK masks and entropy-aware distillation.

Yuan et al., "E³-Pruner: Towards Efficient, Economical, and Effective Layer Pruning for Large
Language Models" (arXiv:2511.17205, 2025), on :mod:`llm_tools` Llama models:

- masks: :func:`gumbel_topk` (Plackett–Luce sampling of k of L layers),
  :func:`relaxed_topk_mask` (Xie & Ermon's relaxed k-hot), :func:`straight_through_topk_mask`,
  :func:`topk_mask`;
- the mask search :func:`search_mask` (learned logits, model frozen, annealed temperature);
- the baselines: :func:`block_influence` / :func:`select_by_block_influence` (ShortGPT),
  :func:`sleb_keep` (SLEB), :func:`last_n_keep`, :func:`random_keep`;
- recovery: :func:`distillation_loss` (LM, plain KD, fixed mix, entropy-aware KD),
  :func:`entropy_weights`, :func:`recover`;
- :func:`prune` (a smaller ``Llama`` that saves, loads, samples and serves like the dense one).
"""

from e3_pruner.baselines import (
    block_influence,
    block_influence_from_hidden,
    calibration_nll,
    last_n_keep,
    random_keep,
    select_by_block_influence,
    sleb_keep,
)
from e3_pruner.distill import KINDS, distillation_loss, entropy_weights, token_entropy
from e3_pruner.masks import (
    gumbel_noise,
    gumbel_topk,
    relaxed_topk_mask,
    straight_through_topk_mask,
    topk_mask,
)
from e3_pruner.prune import gates_from_keep, keep_from_drop, prune
from e3_pruner.recover import make_recovery_loss, make_recovery_step, recover
from e3_pruner.search import MaskSearchResult, anneal_temperature, make_search_loss, search_mask

__all__ = [
    "KINDS",
    "MaskSearchResult",
    "anneal_temperature",
    "block_influence",
    "block_influence_from_hidden",
    "calibration_nll",
    "distillation_loss",
    "entropy_weights",
    "gates_from_keep",
    "gumbel_noise",
    "gumbel_topk",
    "keep_from_drop",
    "last_n_keep",
    "make_recovery_loss",
    "make_search_loss",
    "make_recovery_step",
    "prune",
    "random_keep",
    "recover",
    "relaxed_topk_mask",
    "search_mask",
    "select_by_block_influence",
    "sleb_keep",
    "straight_through_topk_mask",
    "token_entropy",
    "topk_mask",
]
