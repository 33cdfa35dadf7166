"""Contrastive objectives for functional electrode embeddings (pure, per-pair / per-batch).

Hadsell, Chopra, LeCun (2006) contrastive loss on the Euclidean distance
``d = ||f(x_a) - f(x_b)||_2`` of a pair labelled ``y = 0`` (same region) or ``y = 1``
(different regions), as in the authors' prototype:

    L(x_a, x_b, y) = (1 - y) · d² + y · max(0, m - d)².

Supervised contrastive loss (Khosla et al., 2020) on L2-normalised embeddings ``z`` with
temperature ``τ``; for anchor ``i`` with positives ``P(i)`` (same label, ``j != i``):

    L_i = -(1 / |P(i)|) Σ_{p ∈ P(i)} log( exp(z_i·z_p / τ) / Σ_{a != i} exp(z_i·z_a / τ) ),

averaged over anchors that have at least one positive. With labels that mark pairs
(``[0, 0, 1, 1, ...]``) this is InfoNCE / NT-Xent.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

__all__ = ["contrastive_loss", "pair_distance", "supcon_loss"]


def pair_distance(emb_a: jax.Array, emb_b: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Euclidean distance ``[B]`` of paired rows (``sqrt(Σ (a - b)² + eps)``)."""
    return jnp.sqrt(jnp.sum((emb_a - emb_b) ** 2, axis=-1) + eps)


def contrastive_loss(emb_a: jax.Array, emb_b: jax.Array, different: jax.Array,
                     margin: float = 1.0) -> jax.Array:
    """Hadsell contrastive loss per pair ``[B]`` (average it yourself).

    Args:
      emb_a: ``[B, D]`` embeddings of the first segments.
      emb_b: ``[B, D]`` embeddings of the second segments.
      different: ``[B]`` 1 (or True) where the pair comes from different regions, 0 where
        from the same region.
      margin: ``m > 0``.

    Returns:
      ``[B]`` losses ``(1 - y) d² + y max(0, m - d)²``.

    Raises:
      ValueError: on shapes that do not match or a non-positive margin.

    References:
      Hadsell, Chopra, LeCun. "Dimensionality reduction by learning an invariant
      mapping." CVPR 2006.
    """
    chex.assert_rank([emb_a, emb_b], 2)
    if emb_a.shape != emb_b.shape:
        raise ValueError(f"contrastive_loss: emb_a {emb_a.shape} and emb_b {emb_b.shape} differ")
    different = jnp.asarray(different)
    if different.shape != emb_a.shape[:1]:
        raise ValueError(f"contrastive_loss: different must have shape {emb_a.shape[:1]}, got "
                         f"{different.shape}")
    if not margin > 0:
        raise ValueError(f"contrastive_loss: margin must be > 0, got {margin!r}")
    y = different.astype(emb_a.dtype)
    d2 = jnp.sum((emb_a - emb_b) ** 2, axis=-1)
    d = jnp.sqrt(d2 + 1e-12)
    return (1.0 - y) * d2 + y * jnp.maximum(margin - d, 0.0) ** 2


def supcon_loss(emb: jax.Array, labels: jax.Array, temperature: float = 0.1,
                valid: jax.Array | None = None) -> jax.Array:
    """Supervised contrastive loss (mean over anchors with a positive).

    Args:
      emb: ``[B, D]`` embeddings (normalised inside).
      labels: ``[B]`` int labels (region ids).
      temperature: ``τ > 0``.
      valid: optional ``[B]`` bool; invalid rows are neither anchors nor candidates.

    Returns:
      Scalar loss (0 if no anchor has a positive).

    Raises:
      ValueError: on mismatched shapes or a non-positive temperature.

    References:
      Khosla et al. "Supervised contrastive learning." NeurIPS 2020.
    """
    chex.assert_rank(emb, 2)
    labels = jnp.asarray(labels)
    if labels.shape != emb.shape[:1]:
        raise ValueError(f"supcon_loss: labels must have shape {emb.shape[:1]}, got "
                         f"{labels.shape}")
    if not temperature > 0:
        raise ValueError(f"supcon_loss: temperature must be > 0, got {temperature!r}")
    B = emb.shape[0]
    valid = jnp.ones(B, bool) if valid is None else jnp.asarray(valid, bool)
    z = emb / jnp.maximum(jnp.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    logits = z @ z.T / temperature
    others = valid[None] & ~jnp.eye(B, dtype=bool)
    logits = jnp.where(others, logits, -jnp.inf)
    log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
    pos = others & (labels[:, None] == labels[None]) & valid[:, None]
    n_pos = jnp.sum(pos, axis=1)
    per_anchor = -jnp.sum(jnp.where(pos, log_prob, 0.0), axis=1) / jnp.maximum(n_pos, 1)
    has = n_pos > 0
    return jnp.sum(jnp.where(has, per_anchor, 0.0)) / jnp.maximum(jnp.sum(has), 1)
