"""Regression heads with one interface: ``head(query, bank, bank_targets, exclude_self=...)``.

Every head maps query embeddings ``[n, d]``, bank (neighbour) embeddings ``[m, d]`` and
bank targets ``[m, o]`` to predictions ``[n, o]``:

* :class:`LinearHead`: ``y = W e + c`` (ignores the bank; the usual deep regressor).
* :class:`NadarayaWatsonHead`: ``y_i = sum_j softmax_j(s_ij) y_j`` (attention, no mask).
* :class:`SoftStepHead`: ``y_i = sum_j softmax_j(s_ij + T(s~_ij; a_i, b_i, t_i)) y_j`` with
  ``T`` the S1/S2 term of :func:`~softstep.soft_step` and ``s~`` the row-normalised ``s``.
* :class:`KNNHead`: the mean target of the ``k`` most similar neighbours (hard top-k; no
  gradient flows to the embeddings, so it is an inference head).

Self-exclusion rule: in training the neighbours of a batch item are the *other* items of
the batch, so ``exclude_self=True`` (query ``i`` is bank item ``i``) sets ``s_ii = -inf``.
At inference the bank is the stored training set and nothing is excluded.

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from softstep.similarity import check_similarity, minmax_normalize, pairwise_similarity
from softstep.step import SoftStep, SoftStepParams, check_step_kind, soft_step

__all__ = ["KNNHead", "LinearHead", "NadarayaWatsonHead", "SoftStepHead"]


def check_head_inputs(name, query, bank, bank_targets, exclude_self):
    """Shape checks shared by all heads; returns the arrays as ``jnp`` arrays."""
    query, bank, bank_targets = jnp.asarray(query), jnp.asarray(bank), jnp.asarray(bank_targets)
    if query.ndim != 2:
        raise ValueError(f"{name}: query must be 2-D [n, d], got shape {query.shape}")
    if bank.ndim != 2 or bank.shape[1] != query.shape[1]:
        raise ValueError(
            f"{name}: bank must be 2-D [m, {query.shape[1]}] like query, got shape {bank.shape}"
        )
    if bank_targets.ndim != 2 or bank_targets.shape[0] != bank.shape[0]:
        raise ValueError(
            f"{name}: bank_targets must be 2-D [{bank.shape[0]}, o] (one row per bank item), "
            f"got shape {bank_targets.shape}"
        )
    if exclude_self:
        if query.shape[0] != bank.shape[0]:
            raise ValueError(
                f"{name}: exclude_self=True needs query and bank to be the same items, got "
                f"{query.shape[0]} queries and {bank.shape[0]} bank items"
            )
        if bank.shape[0] < 2:
            raise ValueError(
                f"{name}: a batch of size {bank.shape[0]} has no neighbour besides self; "
                "training needs batches of at least 2"
            )
    elif bank.shape[0] < 1:
        raise ValueError(f"{name}: bank is empty")
    return query, bank, bank_targets


def candidate_mask(n: int, m: int, exclude_self: bool) -> jax.Array:
    """``[n, m]`` candidate mask: all True, or False on the diagonal when excluding self."""
    if exclude_self:
        return ~jnp.eye(n, m, dtype=bool)
    return jnp.ones((n, m), bool)


class _AttentionHead(nnx.Module):
    """Softmax-over-neighbours heads; subclasses define ``step_params``/``chunk_logits``."""

    similarity: str
    uses_bounds = False  # whether logits need the row's min/max similarity

    def step_params(self, query: jax.Array) -> SoftStepParams | None:
        return None

    def chunk_logits(self, params, sim: jax.Array, sim_norm: jax.Array | None) -> jax.Array:
        """Logits for a block of candidates (before masking invalid ones with -inf)."""
        return sim

    def neighbor_logits(self, query, bank, *, exclude_self: bool = False) -> jax.Array:
        """``[n, m]`` logits ``s + T`` (``-inf`` for excluded or masked neighbours)."""
        sim = pairwise_similarity(query, bank, self.similarity)
        valid = candidate_mask(query.shape[0], bank.shape[0], exclude_self)
        sim_norm = minmax_normalize(sim, valid) if self.uses_bounds else None
        logits = self.chunk_logits(self.step_params(query), sim, sim_norm)
        return jnp.where(valid, logits, -jnp.inf)

    def neighbor_weights(self, query, bank, *, exclude_self: bool = False) -> jax.Array:
        """``[n, m]`` attention weights over the bank (each row sums to 1)."""
        name = type(self).__name__
        query, bank, _ = check_head_inputs(
            name, query, bank, jnp.zeros((jnp.shape(bank)[0], 1)), exclude_self
        )
        return jax.nn.softmax(self.neighbor_logits(query, bank, exclude_self=exclude_self), 1)

    def __call__(self, query, bank, bank_targets, *, exclude_self: bool = False) -> jax.Array:
        query, bank, bank_targets = check_head_inputs(
            type(self).__name__, query, bank, bank_targets, exclude_self
        )
        logits = self.neighbor_logits(query, bank, exclude_self=exclude_self)
        return jax.nn.softmax(logits, axis=1) @ bank_targets


class NadarayaWatsonHead(_AttentionHead):
    """Nadaraya-Watson kernel regression over the bank: ``y_i = sum_j softmax_j(s_ij) y_j``.

    Args:
      similarity: one of ``neg_l2``, ``neg_l1``, ``dot``, ``cosine``.

    Raises:
      ValueError: for an unknown similarity.

    References:
      Nadaraya (1964), Watson (1964); as the unmasked baseline in Susman et al., SoftStep,
      arXiv:2506.08139.
    """

    def __init__(self, *, similarity: str = "neg_l2"):
        check_similarity(similarity, "NadarayaWatsonHead")
        self.similarity = similarity


class SoftStepHead(_AttentionHead):
    """Neighbour head with the learned SoftStep mask.

    ``y_i = sum_j softmax_j(s_ij + T(s~_ij)) y_j``, ``s~_ij = (s_ij - min_k s_ik) /
    (max_k s_ik - min_k s_ik)`` over the candidates ``k`` of query ``i`` and ``T`` the S1 term
    ``log m(s~)`` or the S2 term ``(t/(1-t))(b - s~) log(s~/b)``; ``(a, b, t)`` come from a
    :class:`~softstep.SoftStep` applied to the query embedding (``pointwise``) or are three
    learned scalars (``global``).

    Args:
      in_features: embedding width.
      kind: ``"s1"`` or ``"s2"``.
      mode: ``"pointwise"`` or ``"global"``.
      similarity: one of ``neg_l2``, ``neg_l1``, ``dot``, ``cosine``.
      rngs: ``nnx.Rngs``.

    Raises:
      ValueError: for an unknown kind, mode or similarity.

    References:
      Susman et al., SoftStep, arXiv:2506.08139.
    """

    uses_bounds = True

    def __init__(
        self,
        in_features: int,
        *,
        kind: str = "s1",
        mode: str = "pointwise",
        similarity: str = "neg_l2",
        rngs: nnx.Rngs,
    ):
        check_step_kind(kind, "SoftStepHead")
        check_similarity(similarity, "SoftStepHead")
        self.kind = kind
        self.similarity = similarity
        self.step = SoftStep(in_features, mode=mode, rngs=rngs)

    def step_params(self, query: jax.Array) -> SoftStepParams:
        return self.step(query)

    def chunk_logits(self, params, sim, sim_norm):
        # sim_norm uses the row's global min/max, so its max over all candidates is 1 and
        # the clamp of (a, b) to the row maximum is the identity: not needed per chunk.
        return sim + soft_step(sim_norm, params, kind=self.kind, clamp_to_row_max=False)


class KNNHead(nnx.Module):
    """Hard k-nearest-neighbour regression: the mean target of the ``k`` most similar.

    ``y_i = (1/k) sum_{j in topk_j s_ij} y_j``. Selection is not differentiable, so train
    the embedding with another head and swap this one in for inference.

    Args:
      k: number of neighbours (>= 1).
      similarity: one of ``neg_l2``, ``neg_l1``, ``dot``, ``cosine``.

    Raises:
      ValueError: for ``k < 1``, an unknown similarity, or (when called) a bank with fewer
        than ``k`` candidate neighbours.

    References:
      Cover and Hart (1967); the hard top-k baseline in Susman et al., SoftStep,
      arXiv:2506.08139.
    """

    def __init__(self, k: int = 5, *, similarity: str = "neg_l2"):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"KNNHead: k must be a positive int, got {k!r}")
        check_similarity(similarity, "KNNHead")
        self.k = k
        self.similarity = similarity

    def _check_k(self, bank_size: int, exclude_self: bool) -> None:
        available = bank_size - (1 if exclude_self else 0)
        if available < self.k:
            raise ValueError(
                f"KNNHead: bank has {available} candidate neighbours, fewer than k={self.k}"
            )

    def neighbor_weights(self, query, bank, *, exclude_self: bool = False) -> jax.Array:
        """``[n, m]`` weights: ``1/k`` on each query's top-k neighbours, 0 elsewhere."""
        query, bank, _ = check_head_inputs(
            "KNNHead", query, bank, jnp.zeros((jnp.shape(bank)[0], 1)), exclude_self
        )
        self._check_k(bank.shape[0], exclude_self)
        sim = pairwise_similarity(query, bank, self.similarity)
        sim = jnp.where(candidate_mask(*sim.shape, exclude_self), sim, -jnp.inf)
        _, idx = jax.lax.top_k(sim, self.k)
        rows = jnp.arange(sim.shape[0])[:, None]
        return jnp.zeros(sim.shape).at[rows, idx].set(1.0 / self.k)

    def __call__(self, query, bank, bank_targets, *, exclude_self: bool = False) -> jax.Array:
        query, bank, bank_targets = check_head_inputs(
            "KNNHead", query, bank, bank_targets, exclude_self
        )
        self._check_k(bank.shape[0], exclude_self)
        sim = pairwise_similarity(query, bank, self.similarity)
        sim = jnp.where(candidate_mask(*sim.shape, exclude_self), sim, -jnp.inf)
        _, idx = jax.lax.top_k(sim, self.k)
        return jnp.mean(bank_targets[idx], axis=1)


class LinearHead(nnx.Module):
    """The usual deep-regression head ``y = W e + c``; the bank is accepted and ignored.

    Args:
      in_features: embedding width.
      out_features: number of targets.
      rngs: ``nnx.Rngs``.

    Raises:
      ValueError: for non-positive sizes, or (when called) bank targets whose width is not
        ``out_features``.

    References:
      The linear-head baseline of Susman et al., SoftStep, arXiv:2506.08139.
    """

    def __init__(self, in_features: int, out_features: int = 1, *, rngs: nnx.Rngs):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"LinearHead: {name} must be a positive int, got {v!r}")
        self.out_features = out_features
        self.linear = nnx.Linear(in_features, out_features, rngs=rngs)

    def __call__(self, query, bank, bank_targets, *, exclude_self: bool = False) -> jax.Array:
        query, bank, bank_targets = check_head_inputs(
            "LinearHead", query, bank, bank_targets, exclude_self
        )
        if bank_targets.shape[1] != self.out_features:
            raise ValueError(
                f"LinearHead: bank_targets has {bank_targets.shape[1]} columns but the head "
                f"predicts {self.out_features}"
            )
        return self.linear(query)
