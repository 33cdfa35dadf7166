"""The layer-selection baselines E³-Pruner must beat, on calibration data.

- **Block Influence** (ShortGPT, Men et al. 2024): with ``X_l`` the hidden state entering
  layer ``l`` and ``X_{l+1}`` the one leaving it,

      BI_l = 1 − E_{x,t} [ X_{l,t}ᵀ X_{l+1,t} / (‖X_{l,t}‖ ‖X_{l+1,t}‖) ]

  averaged over every real (unpadded) token of the calibration set; the layers with the
  lowest BI (closest to the identity) are removed.
- **SLEB** (Song et al. 2024): greedy; at each round remove the one remaining layer whose
  removal gives the lowest calibration negative log-likelihood, until ``k`` are left.
- **Last-n**: remove the last ``L − k`` layers.
- **Random**: ``k`` layers uniformly at random (several draws give a reference spread).

Every method returns ``keep``, the sorted indices of the ``k`` layers that stay. Removal is
simulated with the model's per-layer gates (``g_l = 0``), which equals physical removal.

References:
  Men et al., "ShortGPT: Layers in Large Language Models are More Redundant Than You
  Expect", 2024.
  Song et al., "SLEB: Streamlining LLMs through Redundancy Verification and Elimination of
  Transformer Blocks", ICML 2024.
  Gromov et al., "The Unreasonable Ineffectiveness of the Deeper Layers", 2024.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from e3_pruner.masks import check_k
from llm_tools import Llama, hidden_states
from llm_tools.train import token_logprobs  # not re-exported by llm_tools (yet)

__all__ = [
    "block_influence",
    "block_influence_from_hidden",
    "calibration_nll",
    "check_tokens",
    "last_n_keep",
    "random_keep",
    "select_by_block_influence",
    "sleb_keep",
]


def check_tokens(who: str, tokens, attention_mask=None, *, vocab_size: int | None = None,
                 min_len: int = 2):
    """Validates calibration tokens ``[N, S]`` (``S ≥ min_len``) and an optional bool mask."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"{who}: tokens must be an int array [batch, seq], got "
                         f"{tokens.dtype}{tokens.shape}")
    if tokens.shape[0] == 0 or tokens.shape[1] < min_len:
        raise ValueError(f"{who}: calibration sequences must hold at least {min_len} tokens "
                         f"(the context needed) and at least one row, got shape {tokens.shape}")
    if vocab_size is not None:
        lo, hi = int(jnp.min(tokens)), int(jnp.max(tokens))
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{who}: token ids must lie in [0, {vocab_size}), got range "
                             f"[{lo}, {hi}]")
    if attention_mask is not None:
        attention_mask = jnp.asarray(attention_mask, bool)
        if attention_mask.shape != tokens.shape:
            raise ValueError(f"{who}: attention_mask must have shape {tokens.shape}, got "
                             f"{attention_mask.shape}")
    return tokens, attention_mask


def _check_model(who: str, model) -> None:
    if not isinstance(model, Llama):
        raise TypeError(f"{who}: model must be an llm_tools.Llama, got {type(model).__name__}")


def _chunks(n: int, batch_size: int):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@functools.partial(jax.jit, static_argnames="graphdef")
def _nll_sum(graphdef, state, tokens, mask, gates):
    """Σ over predicted positions of −log p(x_{t+1} | x_≤t), and their count."""
    lp = token_logprobs(nnx.merge(graphdef, state), tokens, mask, gates=gates)
    weight = (mask[:, :-1] & mask[:, 1:]).astype(jnp.float32)
    return -jnp.sum(lp * weight), jnp.sum(weight)


def calibration_nll(model: Llama, tokens, *, attention_mask=None, gates=None,
                    batch_size: int = 8) -> float:
    """Mean next-token negative log-likelihood (nats) of ``tokens [N, S]`` under ``model``.

    ``−(1/M) Σ_{n,t} log p(x_{n,t+1} | x_{n,≤t})`` over the ``M`` positions whose token and
    target are both real (``attention_mask``); evaluated ``batch_size`` rows at a time.

    Raises:
      ValueError: on tokens that are not ``[N, S ≥ 2]`` ints, bad mask or gates shapes.
    """
    _check_model("calibration_nll", model)
    tokens, attention_mask = check_tokens("calibration_nll", tokens, attention_mask)
    L = model.config.n_layers
    gates = jnp.ones((L,), jnp.float32) if gates is None else jnp.asarray(gates, jnp.float32)
    if gates.shape != (L,):
        raise ValueError(f"calibration_nll: gates must have shape ({L},), got {gates.shape}")
    mask = jnp.ones(tokens.shape, bool) if attention_mask is None else attention_mask
    graphdef, state = nnx.split(model)
    total, count = 0.0, 0.0
    for lo, hi in _chunks(tokens.shape[0], batch_size):
        s, c = _nll_sum(graphdef, state, tokens[lo:hi], mask[lo:hi], gates)
        total, count = total + float(s), count + float(c)
    if count == 0:
        raise ValueError("calibration_nll: no position has both a real token and a real target")
    return total / count


def block_influence_from_hidden(hidden: jax.Array, attention_mask=None) -> jax.Array:
    """``BI_l = 1 − mean_{real tokens} cos(X_l, X_{l+1})`` for ``hidden [L+1, B, S, d]``.

    Args:
      hidden: the hidden states entering layer 0 .. leaving layer ``L−1``.
      attention_mask: optional bool ``[B, S]``; padding tokens are left out of the mean.

    Returns:
      float32 ``[L]``.

    Raises:
      ValueError: on a rank other than 4, fewer than 2 states, a bad mask or no real token.
    """
    hidden = jnp.asarray(hidden, jnp.float32)
    if hidden.ndim != 4 or hidden.shape[0] < 2:
        raise ValueError(f"block_influence_from_hidden: hidden must be [L+1 >= 2, B, S, d], got "
                         f"shape {hidden.shape}")
    B, S = hidden.shape[1:3]
    mask = jnp.ones((B, S), bool) if attention_mask is None else jnp.asarray(attention_mask,
                                                                            bool)
    if mask.shape != (B, S):
        raise ValueError(f"block_influence_from_hidden: attention_mask must have shape "
                         f"{(B, S)}, got {mask.shape}")
    if not bool(jnp.any(mask)):
        raise ValueError("block_influence_from_hidden: attention_mask has no real token")
    a, b = hidden[:-1], hidden[1:]
    norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
    cos = jnp.sum(a * b, axis=-1) / jnp.maximum(norms, 1e-30)
    w = mask.astype(jnp.float32)
    return 1.0 - jnp.sum(cos * w, axis=(1, 2)) / jnp.sum(w)


def block_influence(model: Llama, tokens, *, attention_mask=None, batch_size: int = 8
                    ) -> np.ndarray:
    """ShortGPT's Block Influence of every layer on calibration ``tokens [N, S]`` (``[L]``).

    The residual stream entering and leaving every layer comes from one forward pass
    (``llm_tools.hidden_states``); tokens are processed ``batch_size`` rows at a time and the
    mean is over all real tokens.
    """
    _check_model("block_influence", model)
    tokens, attention_mask = check_tokens("block_influence", tokens, attention_mask,
                                          vocab_size=model.config.vocab_size, min_len=1)
    mask = jnp.ones(tokens.shape, bool) if attention_mask is None else attention_mask
    total = np.zeros(model.config.n_layers)
    count = 0.0
    for lo, hi in _chunks(tokens.shape[0], batch_size):
        m = mask[lo:hi]
        n = float(jnp.sum(m))
        if n == 0:
            continue
        h = hidden_states(model, tokens[lo:hi], attention_mask=m)
        total += n * np.asarray(block_influence_from_hidden(h, m))
        count += n
    if count == 0:
        raise ValueError("block_influence: attention_mask has no real token")
    return total / count


def select_by_block_influence(scores, k: int) -> np.ndarray:
    """Keeps the ``k`` layers of highest Block Influence (removes the lowest ``L − k``)."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or not np.all(np.isfinite(scores)):
        raise ValueError(f"select_by_block_influence: scores must be a finite 1-D array, got "
                         f"shape {scores.shape}")
    k = check_k("select_by_block_influence", k, scores.size)
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k])


def sleb_keep(model: Llama, tokens, k: int, *, attention_mask=None, batch_size: int = 8,
              callback: Callable[[int, int, float], None] | None = None) -> np.ndarray:
    """SLEB: greedily removes the layer whose removal least raises calibration NLL.

    Round ``r`` evaluates, for every remaining layer ``l``, the mean NLL of the model with the
    already removed layers and ``l`` gated off, and removes the argmin; ``L − k`` rounds.

    Args:
      model: the dense model.
      tokens: calibration ``[N, S ≥ 2]``.
      k: layers to keep, ``0 < k < L``.
      attention_mask, batch_size: as :func:`calibration_nll`.
      callback: optional ``callback(round, removed_layer, nll)`` after each round.

    Returns:
      the sorted ``k`` kept layers.
    """
    _check_model("sleb_keep", model)
    L = model.config.n_layers
    k = check_k("sleb_keep", k, L)
    tokens, attention_mask = check_tokens("sleb_keep", tokens, attention_mask,
                                          vocab_size=model.config.vocab_size)
    gates = np.ones(L, np.float32)
    for r in range(L - k):
        best, best_nll = -1, np.inf
        for layer in np.flatnonzero(gates):
            trial = gates.copy()
            trial[layer] = 0.0
            nll = calibration_nll(model, tokens, attention_mask=attention_mask,
                                  gates=jnp.asarray(trial), batch_size=batch_size)
            if nll < best_nll:
                best, best_nll = int(layer), nll
        gates[best] = 0.0
        if callback is not None:
            callback(r, best, best_nll)
    return np.flatnonzero(gates)


def last_n_keep(num_layers: int, k: int) -> np.ndarray:
    """Keeps the first ``k`` layers (removes the last ``L − k``)."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) \
            or num_layers < 2:
        raise ValueError(f"last_n_keep: num_layers must be an int >= 2, got {num_layers!r}")
    k = check_k("last_n_keep", k, num_layers)
    return np.arange(k)


def random_keep(key: jax.Array, num_layers: int, k: int) -> np.ndarray:
    """``k`` of ``num_layers`` layers chosen uniformly at random (sorted)."""
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(f"random_keep: key must be a typed key from jax.random.key(seed), got "
                        f"{getattr(key, 'dtype', type(key).__name__)}")
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) \
            or num_layers < 2:
        raise ValueError(f"random_keep: num_layers must be an int >= 2, got {num_layers!r}")
    k = check_k("random_keep", k, num_layers)
    return np.sort(np.asarray(jax.random.choice(key, num_layers, (k,), replace=False)))
