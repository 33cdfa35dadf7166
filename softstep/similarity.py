"""Similarities between embeddings and their per-row min-max normalisation.

SoftStep (Susman et al., 2025) scores a query ``u`` against each candidate neighbour ``v``
with one of four similarities and then rescales each query's row of similarities to
``[0, 1]`` over its candidate neighbours before applying the learned step.

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["SIMILARITIES", "minmax_normalize", "pairwise_similarity"]

SIMILARITIES = ("neg_l2", "neg_l1", "dot", "cosine")


def check_similarity(kind: str, where: str) -> None:
    """Raises ``ValueError`` naming ``where`` if ``kind`` is not a known similarity."""
    if kind not in SIMILARITIES:
        raise ValueError(f"{where}: similarity must be one of {list(SIMILARITIES)}, got {kind!r}")


def _check_pair(query: jax.Array, keys: jax.Array, where: str) -> None:
    if query.ndim != 2 or keys.ndim != 2:
        raise ValueError(
            f"{where}: query and keys must be 2-D [n, d], got shapes {query.shape} and {keys.shape}"
        )
    if query.shape[1] != keys.shape[1]:
        raise ValueError(
            f"{where}: query has {query.shape[1]} features but keys has {keys.shape[1]}"
        )


def pairwise_similarity(query: jax.Array, keys: jax.Array, kind: str = "neg_l2") -> jax.Array:
    """All similarities ``s(u_i, v_j)`` between rows of ``query`` and rows of ``keys``.

    With ``u, v`` in R^d:

    * ``neg_l2``: s = -||u - v||_2 (gradient 0 rather than NaN at u = v),
    * ``neg_l1``: s = -||u - v||_1 (materialises [n, m, d]; keep chunks small),
    * ``dot``:    s = u . v / d,
    * ``cosine``: s = u . v / (||u|| ||v||), with norms floored at 1e-12.

    Args:
      query: ``[n, d]`` query embeddings.
      keys: ``[m, d]`` neighbour embeddings.
      kind: one of :data:`SIMILARITIES`.

    Returns:
      ``[n, m]`` similarities (larger = more similar).

    Raises:
      ValueError: for an unknown ``kind`` or mismatched / non-2-D shapes.

    References:
      Susman et al., SoftStep, arXiv:2506.08139 (similarity functions, Sec. 3).
    """
    check_similarity(kind, "pairwise_similarity")
    query, keys = jnp.asarray(query), jnp.asarray(keys)
    _check_pair(query, keys, "pairwise_similarity")
    if kind == "neg_l2":
        sq = (
            jnp.sum(query**2, axis=1)[:, None]
            + jnp.sum(keys**2, axis=1)[None, :]
            - 2.0 * query @ keys.T
        )
        sq = jnp.maximum(sq, 0.0)
        positive = sq > 0
        return -jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    if kind == "neg_l1":
        return -jnp.sum(jnp.abs(query[:, None, :] - keys[None, :, :]), axis=-1)
    if kind == "dot":
        return query @ keys.T / query.shape[1]
    qn = query / jnp.maximum(jnp.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    kn = keys / jnp.maximum(jnp.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    return qn @ kn.T


def normalize_with(similarity: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """``(s - lo) / (hi - lo)`` clipped to [0, 1]; rows with ``hi == lo`` map to 1."""
    rng = hi - lo
    flat = rng <= 0
    out = (similarity - lo) / jnp.where(flat, 1.0, rng)
    return jnp.where(flat, 1.0, jnp.clip(out, 0.0, 1.0))


def minmax_normalize(similarity: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """Per-row min-max normalisation over the candidate neighbours.

    ``s~_ij = (s_ij - min_k s_ik) / (max_k s_ik - min_k s_ik)`` with ``k`` over the valid
    candidates of row ``i``; a row whose candidates are all equally similar maps to 1 (they
    are all the nearest). Entries outside ``valid`` are set to 0 (callers mask them).

    Args:
      similarity: ``[n, m]`` similarities.
      valid: optional ``[n, m]`` (or broadcastable) boolean mask of candidate neighbours.

    Returns:
      ``[n, m]`` normalised similarities in [0, 1]; each row's largest valid entry is 1.

    Raises:
      ValueError: if ``similarity`` is not 2-D.

    References:
      Susman et al., SoftStep, arXiv:2506.08139 (normalisation before the step).
    """
    similarity = jnp.asarray(similarity)
    if similarity.ndim != 2:
        raise ValueError(
            f"minmax_normalize: similarity must be 2-D [n, m], got shape {similarity.shape}"
        )
    if valid is None:
        valid = jnp.ones(similarity.shape, bool)
    valid = jnp.broadcast_to(valid, similarity.shape)
    lo = jnp.min(jnp.where(valid, similarity, jnp.inf), axis=1, keepdims=True)
    hi = jnp.max(jnp.where(valid, similarity, -jnp.inf), axis=1, keepdims=True)
    out = normalize_with(similarity, jnp.where(jnp.isfinite(lo), lo, 0.0),
                         jnp.where(jnp.isfinite(hi), hi, 0.0))
    return jnp.where(valid, out, 0.0)
