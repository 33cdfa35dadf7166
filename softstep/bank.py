"""The inference bank: stored training embeddings and targets, queried in bounded chunks.

At inference a neighbour head attends over the whole training set. :func:`bank_predict`
never forms the full ``n_query x n_bank`` matrix: queries are processed ``query_chunk`` at
a time (``lax.map``) and, for each query chunk, the bank is streamed ``bank_chunk`` rows at
a time (``lax.scan``), so the working set is ``O(query_chunk * bank_chunk)``.

For the softmax heads the streaming uses two passes:

1. the row bounds ``lo_i = min_j s_ij`` and ``hi_i = max_j s_ij`` (needed by SoftStep's
   min-max normalisation ``s~ = (s - lo)/(hi - lo)``);
2. an online log-sum-exp: per chunk ``m' = max(m, max_j z_ij)``,
   ``l' = l e^{m - m'} + sum_j e^{z_ij - m'}``, ``A' = A e^{m - m'} + sum_j e^{z_ij - m'} y_j``,
   and finally ``y_i = A_i / l_i`` with ``z = s + T(s~)`` the head's logits.

With ``top_k`` a running top-k by similarity is kept instead, and the head's logits (with
``s~`` from the *global* bounds) are applied to those ``k << N`` candidates only. This is
exact whenever the step masks every neighbour outside the top-k (SoftStep's ``s~ <= a``).

With a ``mesh`` the bank is split across the devices of its ``data`` axis
(``jax.shard_map``); each device streams its shard and the partial results are combined:
bounds by ``pmin``/``pmax``, log-sum-exps by ``M = pmax(m)``, ``l = psum(l e^{m - M})``,
``A = psum(A e^{m - M})``, and top-k candidates by ``all_gather`` then top-k again.

References:
  Susman, Lin, Suarez-Farinas, Colonel. "SoftStep: Learning Sparse Similarity Powers Deep
  Neighbor-Based Regression." arXiv:2506.08139, 2025.
  Milakov and Gimelshein. "Online normalizer calculation for softmax." arXiv:1805.02867.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from softstep.heads import KNNHead, LinearHead, NadarayaWatsonHead, SoftStepHead
from softstep.similarity import normalize_with, pairwise_similarity

__all__ = ["Bank", "bank_predict", "build_bank"]


class Bank(NamedTuple):
    """Stored neighbours: ``embeddings [N, d]`` and ``targets [N, o]``."""

    embeddings: jax.Array
    targets: jax.Array


def _check_finite(name: str, where: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: {name} contains NaN or inf")


def build_bank(
    embed_fn: Callable[[jax.Array], jax.Array],
    x: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    *,
    batch_size: int = 1024,
) -> Bank:
    """Embeds the training set with a trained backbone and stores it with its targets.

    Args:
      embed_fn: maps a batch of inputs ``[b, ...]`` to embeddings ``[b, d]``.
      x: ``[N, ...]`` training inputs.
      y: ``[N]`` or ``[N, o]`` training targets.
      batch_size: rows embedded per call (bounds memory).

    Returns:
      A :class:`Bank` with ``targets`` always 2-D.

    Raises:
      ValueError: on NaN/inf, mismatched rows, an empty set or a bad ``batch_size``.
    """
    x, y = np.asarray(x), np.asarray(y, dtype=np.float32)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"build_bank: x must have at least one row, got shape {x.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"build_bank: y must be [N] or [N, o] with N = {x.shape[0]} rows like x, "
            f"got shape {y.shape}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"build_bank: batch_size must be a positive int, got {batch_size!r}")
    _check_finite("x", "build_bank", x)
    _check_finite("y", "build_bank", y)
    parts = [np.asarray(embed_fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    emb = np.concatenate(parts, axis=0)
    if emb.ndim != 2 or emb.shape[0] != x.shape[0]:
        raise ValueError(f"build_bank: embed_fn must return [b, d] rows, got {emb.shape}")
    _check_finite("the embeddings", "build_bank", emb)
    return Bank(jnp.asarray(emb), jnp.asarray(y.reshape(len(y), -1)))


# --- streaming kernels (run per device; axis_name set inside shard_map) -------------------


def _vary(tree, axis_name):
    """Marks scan carries as device-varying inside ``shard_map`` (their updates are)."""
    if axis_name is None:
        return tree
    return jax.tree.map(lambda x: jax.lax.pcast(x, (axis_name,), to="varying"), tree)


def _gather_invariant(tree, axis_name):
    """All-gather along axis 1 as a ``psum`` of zero-padded slots (result is replicated)."""
    n_dev, me = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)

    def gather(x):
        k = x.shape[1]
        buf = jnp.zeros((x.shape[0], n_dev * k, *x.shape[2:]), x.dtype)
        start = (0, me * k) + (0,) * (x.ndim - 2)
        # -inf entries of other slots would poison the sum: carry them as a finite sentinel.
        finite = jnp.where(jnp.isfinite(x), x, jnp.finfo(x.dtype).min)
        return jax.lax.psum(jax.lax.dynamic_update_slice(buf, finite, start), axis_name)

    return jax.tree.map(gather, tree)


def _valid(ids, qid):
    return (ids[None, :] >= 0) & (ids[None, :] != qid[:, None])


def _bounds(q, qid, emb, ids, similarity, axis_name):
    def body(carry, chunk):
        lo, hi = carry
        e, i = chunk
        s = pairwise_similarity(q, e, similarity)
        v = _valid(i, qid)
        lo = jnp.minimum(lo, jnp.min(jnp.where(v, s, jnp.inf), axis=1))
        hi = jnp.maximum(hi, jnp.max(jnp.where(v, s, -jnp.inf), axis=1))
        return (lo, hi), None

    n = q.shape[0]
    init = _vary((jnp.full(n, jnp.inf), jnp.full(n, -jnp.inf)), axis_name)
    (lo, hi), _ = jax.lax.scan(body, init, (emb, ids))
    if axis_name is not None:
        lo, hi = jax.lax.pmin(lo, axis_name), jax.lax.pmax(hi, axis_name)
    return lo[:, None], hi[:, None]


def _top_k(q, qid, emb, tgt, ids, k, similarity, axis_name):
    n, o = q.shape[0], tgt.shape[-1]

    def merge(vals, tg, s, t):
        cat_v = jnp.concatenate([vals, s], axis=1)
        cat_t = jnp.concatenate([tg, t], axis=1)
        new_v, idx = jax.lax.top_k(cat_v, k)
        return new_v, jnp.take_along_axis(cat_t, idx[:, :, None], axis=1)

    def body(carry, chunk):
        e, t, i = chunk
        s = jnp.where(_valid(i, qid), pairwise_similarity(q, e, similarity), -jnp.inf)
        t = jnp.broadcast_to(t[None], (n, *t.shape))
        return merge(*carry, s, t), None

    init = _vary((jnp.full((n, k), -jnp.inf), jnp.zeros((n, k, o), tgt.dtype)), axis_name)
    (vals, tg), _ = jax.lax.scan(body, init, (emb, tgt, ids))
    if axis_name is not None:
        all_v, all_t = _gather_invariant((vals, tg), axis_name)
        all_v = jnp.where(all_v == jnp.finfo(all_v.dtype).min, -jnp.inf, all_v)
        vals, idx = jax.lax.top_k(all_v, k)
        tg = jnp.take_along_axis(all_t, idx[:, :, None], axis=1)
    return vals, tg


def _online_softmax(head, params, q, qid, emb, tgt, ids, lo, hi, axis_name):
    n, o = q.shape[0], tgt.shape[-1]

    def body(carry, chunk):
        m, den, acc = carry
        e, t, i = chunk
        s = pairwise_similarity(q, e, head.similarity)
        s_norm = normalize_with(s, lo, hi) if head.uses_bounds else None
        z = jnp.where(_valid(i, qid), head.chunk_logits(params, s, s_norm), -jnp.inf)
        m_new = jnp.maximum(m, jnp.max(z, axis=1))
        ref = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
        scale = jnp.exp(m - ref)
        p = jnp.exp(z - ref[:, None])
        return (m_new, den * scale + p.sum(1), acc * scale[:, None] + p @ t), None

    init = _vary((jnp.full(n, -jnp.inf), jnp.zeros(n), jnp.zeros((n, o))), axis_name)
    (m, den, acc), _ = jax.lax.scan(body, init, (emb, tgt, ids))
    if axis_name is not None:
        big = jax.lax.pmax(m, axis_name)
        f = jnp.exp(m - jnp.where(jnp.isfinite(big), big, 0.0))
        den = jax.lax.psum(den * f, axis_name)
        acc = jax.lax.psum(acc * f[:, None], axis_name)
    return acc / den[:, None]


def _predict_chunks(graphdef, state, q_chunks, qid_chunks, emb, tgt, ids, *, top_k,
                    bank_chunk, axis_name):
    head = nnx.merge(graphdef, state)
    nc = emb.shape[0] // bank_chunk
    emb = emb.reshape(nc, bank_chunk, emb.shape[-1])
    tgt = tgt.reshape(nc, bank_chunk, tgt.shape[-1])
    ids = ids.reshape(nc, bank_chunk)

    def one(args):
        q, qid = args
        if isinstance(head, KNNHead):
            _, tg = _top_k(q, qid, emb, tgt, ids, head.k, head.similarity, axis_name)
            return jnp.mean(tg, axis=1)
        params = head.step_params(q)
        lo = hi = None
        if head.uses_bounds:
            lo, hi = _bounds(q, qid, emb, ids, head.similarity, axis_name)
        if top_k is None:
            return _online_softmax(head, params, q, qid, emb, tgt, ids, lo, hi, axis_name)
        vals, tg = _top_k(q, qid, emb, tgt, ids, top_k, head.similarity, axis_name)
        s_norm = normalize_with(vals, lo, hi) if head.uses_bounds else None
        z = jnp.where(jnp.isfinite(vals), head.chunk_logits(params, vals, s_norm), -jnp.inf)
        return jnp.einsum("nk,nko->no", jax.nn.softmax(z, axis=1), tg)

    return jax.lax.map(one, (q_chunks, qid_chunks))


@functools.partial(
    jax.jit, static_argnames=("graphdef", "top_k", "bank_chunk", "mesh", "axis_name")
)
def _predict_jit(graphdef, state, q_chunks, qid_chunks, emb, tgt, ids, *, top_k, bank_chunk,
                 mesh, axis_name):
    kernel = functools.partial(_predict_chunks, graphdef, top_k=top_k, bank_chunk=bank_chunk)
    if mesh is None:
        return kernel(state, q_chunks, qid_chunks, emb, tgt, ids, axis_name=None)
    p_rep, p_bank = jax.P(), jax.P(axis_name)
    sharded = jax.shard_map(
        functools.partial(kernel, axis_name=axis_name),
        mesh=mesh,
        in_specs=(p_rep, p_rep, p_rep, p_bank, p_bank, p_bank),
        out_specs=p_rep,
    )
    return sharded(state, q_chunks, qid_chunks, emb, tgt, ids)


def _positive_int(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"bank_predict: {name} must be a positive int, got {value!r}")


def bank_predict(
    head: nnx.Module,
    query: jax.typing.ArrayLike,
    bank: Bank,
    *,
    top_k: int | None = None,
    query_chunk: int = 256,
    bank_chunk: int = 2048,
    query_index: jax.typing.ArrayLike | None = None,
    mesh: jax.sharding.Mesh | None = None,
    axis_name: str = "data",
) -> jax.Array:
    """Predicts for ``query`` embeddings with ``head`` attending over ``bank``, in chunks.

    Equals the dense ``head(query, bank.embeddings, bank.targets)`` (up to float rounding)
    without ever holding more than ``query_chunk x bank_chunk`` similarities per device.

    Args:
      head: a :class:`~softstep.SoftStepHead`, :class:`~softstep.NadarayaWatsonHead`,
        :class:`~softstep.KNNHead` or :class:`~softstep.LinearHead` (which ignores the bank).
      query: ``[n, d]`` query embeddings.
      bank: the :class:`Bank` of ``N`` training embeddings and targets.
      top_k: if given, keep only the ``top_k`` most similar candidates per query (by raw
        similarity) and apply the head's mask to them; ``None`` streams the whole bank.
      query_chunk: queries per block.
      bank_chunk: bank rows per block (per device when sharded).
      query_index: optional ``[n]`` ints; query ``i`` does not attend to bank row
        ``query_index[i]`` (leave-one-out on the training set; ``-1`` for none).
      mesh: optional mesh; the bank is split across its ``axis_name`` axis.
      axis_name: the mesh axis that splits the bank.

    Returns:
      ``[n, o]`` predictions.

    Raises:
      ValueError: on mismatched shapes, NaN/inf in ``query``, a bank smaller than ``top_k``
        (or than the KNN head's ``k``), a bad chunk size, or a mesh without ``axis_name``.
      TypeError: for a head of another type or a ``bank`` that is not a :class:`Bank`.

    References:
      Susman et al., SoftStep, arXiv:2506.08139 (inference over the training bank).
    """
    heads = (SoftStepHead, NadarayaWatsonHead, KNNHead, LinearHead)
    if not isinstance(head, heads):
        raise TypeError(
            f"bank_predict: head must be one of {[h.__name__ for h in heads]}, "
            f"got {type(head).__name__}"
        )
    if not isinstance(bank, Bank):
        raise TypeError(f"bank_predict: bank must be a Bank, got {type(bank).__name__}")
    q = np.asarray(query, dtype=np.float32)
    emb, tgt = jnp.asarray(bank.embeddings), jnp.asarray(bank.targets)
    if emb.ndim != 2 or tgt.ndim != 2 or tgt.shape[0] != emb.shape[0] or emb.shape[0] == 0:
        raise ValueError(
            f"bank_predict: bank must hold embeddings [N, d] and targets [N, o] with N >= 1, "
            f"got {emb.shape} and {tgt.shape}"
        )
    if q.ndim != 2 or q.shape[1] != emb.shape[1]:
        raise ValueError(
            f"bank_predict: query must be [n, {emb.shape[1]}] like the bank, got {q.shape}"
        )
    _check_finite("query", "bank_predict", q)
    _positive_int(query_chunk, "query_chunk")
    _positive_int(bank_chunk, "bank_chunk")
    n_bank = emb.shape[0]
    if top_k is not None:
        _positive_int(top_k, "top_k")
        if top_k > n_bank:
            raise ValueError(f"bank_predict: bank has {n_bank} rows, fewer than top_k={top_k}")
    if isinstance(head, KNNHead) and head.k > n_bank:
        raise ValueError(f"bank_predict: bank has {n_bank} rows, fewer than KNNHead k={head.k}")
    if isinstance(head, LinearHead):
        return head(jnp.asarray(q), emb, tgt)
    n = q.shape[0]
    if query_index is None:
        qid = np.full(n, -2, np.int32)
    else:
        qid = np.asarray(query_index)
        if qid.shape != (n,) or not np.issubdtype(qid.dtype, np.integer):
            raise ValueError(
                f"bank_predict: query_index must be [{n}] ints, got {qid.shape} {qid.dtype}"
            )
        qid = qid.astype(np.int32)
    n_dev = 1
    if mesh is not None:
        if axis_name not in mesh.axis_names:
            raise ValueError(
                f"bank_predict: mesh has axes {mesh.axis_names}, not axis_name={axis_name!r}"
            )
        n_dev = mesh.shape[axis_name]
    # Bank rows per device, padded (with id -1) to whole chunks.
    per_dev = -(-n_bank // n_dev)
    chunk = min(bank_chunk, per_dev)
    per_dev = -(-per_dev // chunk) * chunk
    pad_b = per_dev * n_dev - n_bank
    ids = jnp.concatenate([jnp.arange(n_bank, dtype=jnp.int32), jnp.full(pad_b, -1, jnp.int32)])
    emb = jnp.pad(emb, ((0, pad_b), (0, 0)))
    tgt = jnp.pad(tgt, ((0, pad_b), (0, 0)))
    cq = min(query_chunk, n)
    pad_q = -(-n // cq) * cq - n
    q_chunks = np.pad(q, ((0, pad_q), (0, 0))).reshape(-1, cq, q.shape[1])
    qid_chunks = np.pad(qid, (0, pad_q), constant_values=-2).reshape(-1, cq)
    graphdef, state = nnx.split(head)
    if mesh is not None:
        bank_sharding = jax.NamedSharding(mesh, jax.P(axis_name))
        emb, tgt, ids = (jax.device_put(a, bank_sharding) for a in (emb, tgt, ids))
    out = _predict_jit(graphdef, state, jnp.asarray(q_chunks), jnp.asarray(qid_chunks), emb,
                       tgt, ids, top_k=top_k, bank_chunk=chunk, mesh=mesh, axis_name=axis_name)
    return out.reshape(-1, out.shape[-1])[:n]
