"""Differentiable k-of-L layer masks: Gumbel-top-k sampling and its relaxations.

A mask over ``L`` layers keeps exactly ``k``. With logits ``θ ∈ R^L`` and i.i.d. standard
Gumbel noise ``g_l = −log(−log u_l)``, ``u_l ~ U(0, 1)``:

- **Gumbel-top-k** (Kool et al., 2019): the indices of the ``k`` largest ``θ_l + g_l``, in
  decreasing order, are an exact sample *without replacement* from the Plackett–Luce
  distribution: the first index is ``l`` with probability ``softmax(θ)_l``, the next is drawn
  from the softmax over the remaining ones, and so on.
- **Relaxed k-hot** (Xie & Ermon, 2019): starting from ``w = θ + g``, for ``j = 1..k``::

      w ← w + log(max(1 − a_{j−1}, ε))          (a_0 = 0)
      a_j = softmax(w / t)

  and the relaxed mask is ``m = Σ_j a_j``. It sums to exactly ``k`` (each ``a_j`` is a
  distribution), is differentiable in ``θ``, and tends to the hard k-hot of the same noise as
  the temperature ``t → 0``. At intermediate temperatures an entry can exceed 1 (two
  near-tied layers share two draws unevenly); it is a relaxation, not a probability.
- **Straight-through**: the forward value is the hard k-hot of ``θ + g`` and the gradient is
  that of the relaxed mask, ``m = hard + relaxed − stop_gradient(relaxed)``.

All functions are pure, ``jax.jit``-able and ``jax.vmap``-able; ``k`` is static (a Python int),
the temperature may be a traced scalar (annealed inside a jitted loop).

References:
  Kool, van Hoof & Welling, "Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick
  for Sampling Sequences Without Replacement", ICML 2019.
  Xie & Ermon, "Reparameterizable Subset Sampling via Continuous Relaxations", IJCAI 2019.
  Yuan et al., "E³-Pruner: Towards Efficient, Economical, and Effective Layer Pruning for
  Large Language Models", arXiv:2511.17205, 2025.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_k",
    "gumbel_noise",
    "gumbel_topk",
    "relaxed_topk_mask",
    "straight_through_topk_mask",
    "topk_mask",
]


def check_k(who: str, k, num_layers: int) -> int:
    """``k`` as an int, if ``0 < k < num_layers`` (a mask must keep some and drop some)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{who}: k must be an int, got {type(k).__name__} {k!r}")
    if not 0 < k < num_layers:
        raise ValueError(f"{who}: k (layers kept) must satisfy 0 < k < L = {num_layers}, "
                         f"got k={k}")
    return int(k)


def _check_logits(who: str, logits) -> jax.Array:
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"{who}: logits must be a float array [..., L], got "
                         f"{logits.dtype}{logits.shape}")
    return logits


def _check_key(who: str, key) -> None:
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(f"{who}: key must be a typed key from jax.random.key(seed), got "
                        f"{getattr(key, 'dtype', type(key).__name__)}")


def _check_temperature(who: str, temperature) -> jax.Array:
    """Checks a concrete temperature (> 0, finite); a traced one passes unchecked."""
    try:
        t = float(np.asarray(temperature))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return jnp.asarray(temperature, jnp.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: temperature must be a float scalar, got "
                        f"{type(temperature).__name__} {temperature!r}") from None
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"{who}: temperature must be a finite float > 0, got {t!r}")
    return jnp.asarray(temperature, jnp.float32)


def gumbel_noise(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """I.i.d. standard Gumbel noise ``g = −log(−log u)``, float32 of ``shape``.

    The same ``key`` gives the same noise in :func:`gumbel_topk`, :func:`relaxed_topk_mask`
    and :func:`straight_through_topk_mask`, so their samples are coupled.
    """
    _check_key("gumbel_noise", key)
    return jax.random.gumbel(key, shape, jnp.float32)


def topk_mask(scores: jax.Array, k: int) -> jax.Array:
    """The deterministic k-hot mask (float32) of the ``k`` largest ``scores`` on the last axis.

    Ties are broken towards the lower index (``lax.top_k``'s order).

    Raises:
      ValueError: if ``k`` is not in ``(0, L)`` or ``scores`` is not a float array.
    """
    scores = _check_logits("topk_mask", scores)
    k = check_k("topk_mask", k, scores.shape[-1])
    _, idx = jax.lax.top_k(scores, k)
    return jnp.sum(jax.nn.one_hot(idx, scores.shape[-1], dtype=jnp.float32), axis=-2)


def gumbel_topk(key: jax.Array, logits: jax.Array, k: int) -> jax.Array:
    """A Plackett–Luce sample of ``k`` distinct indices: top-k of ``θ + g``.

    Args:
      key: a typed PRNG key.
      logits: float ``[..., L]`` (unnormalised log-weights ``θ``).
      k: how many to draw, ``0 < k < L``.

    Returns:
      int32 ``[..., k]``: distinct indices in draw order (decreasing ``θ_l + g_l``).

    Raises:
      ValueError: on ``k`` outside ``(0, L)`` or non-float logits.
      TypeError: on a key that is not a typed PRNG key.
    """
    logits = _check_logits("gumbel_topk", logits)
    k = check_k("gumbel_topk", k, logits.shape[-1])
    _check_key("gumbel_topk", key)
    perturbed = logits.astype(jnp.float32) + gumbel_noise(key, logits.shape)
    return jax.lax.top_k(perturbed, k)[1].astype(jnp.int32)


def _relaxed(perturbed: jax.Array, k: int, t: jax.Array, eps: float) -> jax.Array:
    def body(carry, _):
        w, a = carry
        w = w + jnp.log(jnp.maximum(1.0 - a, eps))
        a = jax.nn.softmax(w / t, axis=-1)
        return (w, a), a

    init = (perturbed, jnp.zeros_like(perturbed))
    _, steps = jax.lax.scan(body, init, None, length=k)
    return jnp.sum(steps, axis=0)


def relaxed_topk_mask(key: jax.Array | None, logits: jax.Array, k: int,
                      temperature: float | jax.Array, *, eps: float = 1e-20) -> jax.Array:
    """Continuous relaxation of the Gumbel-top-k k-hot mask (Xie & Ermon, 2019).

    ``w = θ + g``; for ``j = 1..k``: ``w ← w + log(max(1 − a_{j−1}, ε))``,
    ``a_j = softmax(w / t)``; returns ``Σ_j a_j`` (float32 ``[..., L]``, sums to ``k``).

    Args:
      key: a typed PRNG key for the Gumbel noise, or ``None`` for the noiseless relaxation
        of ``top-k(θ)``.
      logits: float ``[..., L]``.
      k: layers kept, ``0 < k < L``.
      temperature: ``t > 0`` (a traced scalar is allowed; it is then not checked).
      eps: floor inside the log, ``ε > 0``.

    Raises:
      ValueError: on ``k`` outside ``(0, L)``, ``t ≤ 0`` or ``ε ≤ 0``.
    """
    logits = _check_logits("relaxed_topk_mask", logits)
    k = check_k("relaxed_topk_mask", k, logits.shape[-1])
    t = _check_temperature("relaxed_topk_mask", temperature)
    if not eps > 0:
        raise ValueError(f"relaxed_topk_mask: eps must be > 0, got {eps!r}")
    w = logits.astype(jnp.float32)
    if key is not None:
        _check_key("relaxed_topk_mask", key)
        w = w + gumbel_noise(key, logits.shape)
    return _relaxed(w, k, t, eps)


def straight_through_topk_mask(key: jax.Array | None, logits: jax.Array, k: int,
                               temperature: float | jax.Array, *, eps: float = 1e-20
                               ) -> jax.Array:
    """Hard k-hot of ``θ + g`` in the forward pass, gradient of the relaxed mask backward.

    ``m = hard + relaxed − stop_gradient(relaxed)``: the value is exactly k-hot (the layers
    of :func:`gumbel_topk` with the same key), and ``∂m/∂θ = ∂relaxed/∂θ``.

    Args: as :func:`relaxed_topk_mask`.

    Raises:
      ValueError: on ``k`` outside ``(0, L)``, ``t ≤ 0`` or ``ε ≤ 0``.
    """
    logits = _check_logits("straight_through_topk_mask", logits)
    k = check_k("straight_through_topk_mask", k, logits.shape[-1])
    t = _check_temperature("straight_through_topk_mask", temperature)
    if not eps > 0:
        raise ValueError(f"straight_through_topk_mask: eps must be > 0, got {eps!r}")
    w = logits.astype(jnp.float32)
    if key is not None:
        _check_key("straight_through_topk_mask", key)
        w = w + gumbel_noise(key, logits.shape)
    relaxed = _relaxed(w, k, t, eps)
    hard = topk_mask(jax.lax.stop_gradient(w), k)
    return hard + relaxed - jax.lax.stop_gradient(relaxed)
