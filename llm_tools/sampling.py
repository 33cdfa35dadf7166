"""Token sampling: top-k/top-p masks (full sort or a capped candidate set), one sampling step.

Sampling with temperature ``τ``: ``y ~ softmax(z / τ)`` restricted to the top-k set and the
nucleus (the smallest set of most likely tokens whose probability reaches ``p``), drawn by the
Gumbel-max trick ``argmax(z/τ + G)`` over the kept tokens, or without truncation by an
inverse-CDF draw; ``τ = 0`` is greedy ``argmax z`` and draws no noise.

The top-k/top-p set is found among the ``cap`` (default 256) largest logits by
``lax.top_k`` instead of sorting the whole vocabulary each step; the softmax normaliser is
still over the whole vocabulary, so the set is exactly the full-sort set whenever it fits in
the cap, and a row whose set does not fit falls back to the full sort (see
:func:`truncation_mask`). The decode loop that uses this lives in :mod:`llm_tools.engine`.

References:
  Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020 (top-p).
  Fan et al., "Hierarchical Neural Story Generation", ACL 2018 (top-k).
  Gumbel, 1954; Maddison et al., "A* Sampling", NeurIPS 2014 (the Gumbel-max trick).
  Devroye, "Non-Uniform Random Variate Generation", 1986, ch. 2 (inversion).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "sample_logits",
    "sample_step",
    "top_k_mask",
    "top_p_mask",
    "truncation_mask",
]

_NEG = -jnp.inf


def _ranked_keep(desc, lse, p, k):
    """Which ranks of descending scaled logits ``desc [B, M]`` are kept (rank semantics).

    Rank ``j`` is kept iff ``j < k`` (``k > 0``) and the probability mass of the ranks before
    it, ``Σ_{i<j} exp(desc_i - lse)``, is ``< p``; rank 0 is always kept.
    """
    M = desc.shape[-1]
    ranks = jnp.arange(M)
    probs = jnp.exp(desc - lse[..., None])
    before = jnp.cumsum(probs, axis=-1) - probs
    keep = (before < p[..., None]) | (p[..., None] >= 1.0)
    keep = keep & ((ranks < k[..., None]) | (k[..., None] <= 0))
    return keep | (ranks == 0)


def _check_logits(who, logits):
    logits = jnp.asarray(logits)
    if logits.ndim < 1:
        raise ValueError(f"{who}: logits must have a vocabulary axis, got shape {logits.shape}")
    return logits


def truncation_mask(logits: jax.Array, top_p: jax.Array | float = 1.0,
                    top_k: jax.Array | int = 0, *, cap: int | None = None
                    ) -> tuple[jax.Array, jax.Array]:
    """The top-k/top-p keep-mask ``[..., V]`` of ``logits``, by a full sort or on ``cap``
    candidates; returns ``(keep, overflow)``.

    Tokens are ranked by descending logit, ties by lower token id (a stable sort; what
    ``lax.top_k`` returns). Rank ``j`` is kept iff ``j < k`` (when ``k > 0``) and the softmax
    mass of the ranks before it is ``< p``; the top rank is always kept. With ``cap``, only
    the ``cap`` largest logits are ranked (``lax.top_k``, no sort of the vocabulary) and the
    softmax normaliser is still over all ``V``: the mask equals the full-sort mask exactly
    whenever the kept set fits in the cap. ``overflow[...]`` is True where it does not (rank
    ``cap`` would be kept too: ``k = 0`` or ``k > cap``, and the top ``cap`` hold less than
    ``p`` of the mass); there the returned mask keeps only the ``cap`` candidates, and the
    sampler falls back to the full sort for that row (exact, slower).

    Args:
      logits: ``[..., V]`` (already temperature-scaled).
      top_p: in ``(0, 1]``, scalar or per row (1 = off).
      top_k: ``>= 0``, scalar or per row (0 = off).
      cap: candidate-set size, or None for the full sort.
    """
    logits = _check_logits("truncation_mask", logits).astype(jnp.float32)
    V = logits.shape[-1]
    batch = logits.shape[:-1]
    p = jnp.broadcast_to(jnp.asarray(top_p, jnp.float32), batch)
    k = jnp.broadcast_to(jnp.asarray(top_k, jnp.int32), batch)
    lse = jax.nn.logsumexp(logits, axis=-1)
    M = V if cap is None else min(int(cap), V)
    if M == V:
        order = jnp.argsort(-logits, axis=-1, stable=True)
        desc = jnp.take_along_axis(logits, order, axis=-1)
    else:
        desc, order = jax.lax.top_k(logits, M)
    keep_sorted = _ranked_keep(desc, lse, p, k)
    keep = jnp.zeros(logits.shape, bool)
    keep = jnp.put_along_axis(keep, order, keep_sorted, axis=-1, inplace=False)
    overflow = _overflow(desc, lse, p, k, V)
    return keep, overflow


def _overflow(desc, lse, p, k, V):
    """Rows whose kept set would extend past the ``M = desc.shape[-1]`` candidates."""
    M = desc.shape[-1]
    if M >= V:
        return jnp.zeros(desc.shape[:-1], bool)
    mass = jnp.sum(jnp.exp(desc - lse[..., None]), axis=-1)
    return ((k <= 0) | (k > M)) & ((p >= 1.0) | (mass < p))


def top_k_mask(logits: jax.Array, k: jax.Array | int) -> jax.Array:
    """Sets every logit outside the row's ``k`` largest to ``-inf`` (``k <= 0``: no masking).

    Ties are broken by lower token id, so exactly ``min(k, V)`` tokens are kept.

    Args:
      logits: ``[..., V]``.
      k: int scalar or per-row ``[...]``.
    """
    logits = _check_logits("top_k_mask", logits)
    keep, _ = truncation_mask(logits, 1.0, k)
    return jnp.where(keep, logits, _NEG)


def top_p_mask(logits: jax.Array, p: jax.Array | float) -> jax.Array:
    """Keeps the nucleus: the fewest most-likely tokens whose softmax mass reaches ``p``.

    Token ``j`` (in descending-probability order, ties by lower id) is kept iff the mass of
    the tokens before it is ``< p``; so the most likely token is always kept, and ``p = 1``
    keeps everything.

    Args:
      logits: ``[..., V]`` (already temperature-scaled if a temperature applies).
      p: scalar or per-row ``[...]`` in ``(0, 1]``.
    """
    logits = _check_logits("top_p_mask", logits)
    keep, _ = truncation_mask(logits, p, 0)
    return jnp.where(keep, logits, _NEG)


def _gumbel_rows(keys, n):
    """Per-row Gumbel noise ``[B, n]``; entry ``i`` depends on (key, i) only, so the first
    ``m`` of a draw of ``n`` equal a draw of ``m`` (threefry is partitionable)."""
    return jax.vmap(lambda k: jax.random.gumbel(k, (n,)))(keys)


def sample_step(keys: jax.Array, logits: jax.Array, temperature: jax.Array,
                top_p: jax.Array, top_k: jax.Array, *, cap: int = 256,
                all_greedy: bool = False, use_plain: bool = True, use_trunc: bool = True
                ) -> tuple[jax.Array, jax.Array]:
    """Draws one token per row and its log-probability at the sampling temperature.

    Row ``b`` with ``τ_b = 0`` is greedy, ``argmax z``; with ``τ_b > 0`` and no truncation it
    is an inverse-CDF draw from ``softmax(z/τ)`` (a block of 256 tokens by its mass, then a
    token in it: two uniforms per row); with top-k/top-p it is Gumbel-max over the kept
    ranks, ``argmax_j (r_j + G_j)`` for ``r`` the descending scaled logits: on the ``cap``
    candidates of ``lax.top_k`` when the kept set fits in them; else (the row overflows,
    :func:`truncation_mask`) that row alone is redone on the 4096 largest logits, or by a
    full stable sort if the set does not fit there either. The noise of rank ``j`` is the
    same in all three, so the token is the full-sort token, and a row's token depends on its
    own key, logits and parameters only. The logprob is ``log softmax(z/τ)_y`` (``τ = 1``
    where greedy).

    ``all_greedy`` skips the noise entirely; ``use_plain`` / ``use_trunc`` say whether any
    row needs the untruncated / truncated sampler (static, so unused paths are not compiled).
    """
    B, V = logits.shape
    t = temperature
    z = logits / jnp.where(t > 0, t, 1.0)[:, None]
    lse = jax.nn.logsumexp(z, axis=-1)
    tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if not all_greedy:
        sampled = t > 0
        trunc = sampled & ((top_k > 0) | (top_p < 1))
        if use_plain:
            tok = jnp.where(sampled & ~trunc, _inverse_cdf(keys, z, lse), tok)
        if use_trunc:
            M = min(int(cap), V)
            desc, order = jax.lax.top_k(z, M)
            keep = _ranked_keep(desc, lse, top_p, top_k)
            choice = jnp.argmax(jnp.where(keep, desc + _gumbel_rows(keys, M), -jnp.inf), -1)
            ranked = jnp.take_along_axis(order, choice[:, None], -1)[:, 0].astype(jnp.int32)
            over = trunc & _overflow(desc, lse, top_p, top_k, V)
            if M < V:
                ranked = _full_sort_rows(keys, z, lse, top_p, top_k, over, ranked)
            tok = jnp.where(trunc, ranked, tok)
    lp = jnp.take_along_axis(z, tok[:, None], -1)[:, 0] - lse
    return tok, lp


def _inverse_cdf(keys, z, lse, block: int = 256):
    """One exact draw per row from ``softmax(z)`` by a two-level inverse CDF: a block of
    ``block`` tokens with probability its mass, then a token within it (two uniforms per row
    instead of ``V`` Gumbel variates)."""
    B, V = z.shape
    nb = -(-V // block)
    p = jnp.exp(z - lse[:, None])
    p = jnp.pad(p, ((0, 0), (0, nb * block - V))).reshape(B, nb, block)
    u = 1.0 - jax.vmap(lambda k: jax.random.uniform(k, (2,)))(keys)  # in (0, 1]

    def pick(w, u):  # first index whose cumulative weight reaches u * total (> 0 weight)
        c = jnp.cumsum(w, axis=-1)
        return jnp.minimum(jnp.sum(c < u[:, None] * c[:, -1:], axis=-1), w.shape[-1] - 1)

    blk = pick(p.sum(-1), u[:, 0])
    inner = jnp.take_along_axis(p, blk[:, None, None], axis=1)[:, 0]
    return (blk * block + pick(inner, u[:, 1])).astype(jnp.int32)


def _full_sort_rows(keys, z, lse, top_p, top_k, over, tok, wide: int = 4096):
    """Re-samples the rows flagged ``over``, one row at a time (a ``while`` loop over just
    those rows): on the ``wide`` largest logits if the kept set fits there, else by a full
    stable sort. Same ranked noise as the capped path, so the token equals the full-sort one.
    """
    B, V = z.shape
    rows = jnp.nonzero(over, size=B, fill_value=0)[0]

    def ranked(desc, order, r):
        keep = _ranked_keep(desc[None], lse[r][None], top_p[r][None], top_k[r][None])[0]
        noise = jax.random.gumbel(keys[r], (desc.shape[0],))
        return order[jnp.argmax(jnp.where(keep, desc + noise, -jnp.inf))].astype(jnp.int32)

    def body(i, tok):
        r = rows[i]
        zr = z[r]

        def full():
            order = jnp.argsort(-zr, stable=True)
            return ranked(zr[order], order, r)

        if wide >= V:
            return tok.at[r].set(full())
        desc, order = jax.lax.top_k(zr, wide)
        still = _overflow(desc[None], lse[r][None], top_p[r][None], top_k[r][None], V)[0]
        return tok.at[r].set(jax.lax.cond(still, full, lambda: ranked(desc, order, r)))

    return jax.lax.fori_loop(0, jnp.sum(over), body, tok)


def sample_logits(key: jax.Array, logits: jax.Array, temperature: jax.Array | float,
                  top_p: jax.Array | float = 1.0, top_k: jax.Array | int = 0, *,
                  use_top_p: bool = True, use_top_k: bool = True, cap: int = 256) -> jax.Array:
    """Draws one token per row from ``logits [B, V]`` (one key per row, ``[B]`` keys).

    Greedy where ``temperature == 0``; otherwise as :func:`sample_step` (Gumbel-max over the
    top-k/top-p kept set of ``z / τ``, on ``cap`` candidates with an exact fallback; an
    inverse-CDF draw without truncation).
    ``use_top_p=False`` / ``use_top_k=False`` ignore that truncation.
    """
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim != 2:
        raise ValueError(f"sample_logits: logits must be [batch, vocab], got {logits.shape}")
    B = logits.shape[0]
    t = jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (B,))
    p = jnp.broadcast_to(jnp.asarray(top_p if use_top_p else 1.0, jnp.float32), (B,))
    k = jnp.broadcast_to(jnp.asarray(top_k if use_top_k else 0, jnp.int32), (B,))
    return sample_step(key, logits, t, p, k, cap=cap)[0]
