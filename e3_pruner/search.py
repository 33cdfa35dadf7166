"""E³-Pruner's mask search: learn which ``k`` of ``L`` layers to keep, model frozen.

Layer ``l`` gets a logit ``θ_l``. Each step draws Gumbel noise, forms the straight-through
k-hot mask ``m = ST-top-k(θ + g; t)`` (:func:`~e3_pruner.masks.straight_through_topk_mask`;
hard in the forward pass, relaxed gradient), runs the frozen model with its residual branches
gated, ``h ← h + m_l · f_l(h)``, and takes an Adam step on ``θ`` for the calibration objective

- ``"kd"``: ``KL(p_dense ‖ p_masked)`` per token (the dense model is the same weights with
  every gate at 1, so no second copy is held), or
- ``"lm"``: the masked model's next-token cross-entropy.

The temperature is annealed geometrically, ``t_i = t_0 (t_1 / t_0)^{i/(n−1)}``, so early
steps explore (soft gradients spread over near-tied layers) and late ones commit. The
result is the top-k of the learned ``θ`` (no noise).

References:
  Yuan et al., "E³-Pruner: Towards Efficient, Economical, and Effective Layer Pruning for
  Large Language Models", arXiv:2511.17205, 2025.
  Kool et al., ICML 2019; Xie & Ermon, IJCAI 2019 (see :mod:`e3_pruner.masks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from e3_pruner.baselines import check_tokens
from e3_pruner.masks import check_k, relaxed_topk_mask, straight_through_topk_mask
from llm_tools import Llama, forward

__all__ = ["MaskSearchResult", "anneal_temperature", "search_mask"]

OBJECTIVES = ("kd", "lm")
ESTIMATORS = ("straight_through", "relaxed")


class MaskSearchResult(NamedTuple):
    """What :func:`search_mask` learned.

    Attributes:
      keep: sorted int ``[k]``, the layers kept (top-k of ``logits``).
      logits: float ``[L]``, the learned ``θ``.
      losses: float ``[steps]``, the objective at each step (on the sampled mask).
      temperatures: float ``[steps]``.
      logit_history: float ``[steps, L]``, ``θ`` after each step.
    """

    keep: np.ndarray
    logits: np.ndarray
    losses: np.ndarray
    temperatures: np.ndarray
    logit_history: np.ndarray


def anneal_temperature(step, steps: int, t_start: float, t_end: float):
    """Geometric annealing ``t_start · (t_end / t_start)^{step / (steps − 1)}``."""
    if not (t_start > 0 and t_end > 0):
        raise ValueError(f"anneal_temperature: temperatures must be > 0, got t_start={t_start!r}"
                         f", t_end={t_end!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"anneal_temperature: steps must be a positive int, got {steps!r}")
    frac = jnp.asarray(step, jnp.float32) / max(steps - 1, 1)
    return t_start * (t_end / t_start) ** frac


def _masked_objective(graphdef, state, theta, tokens, mask, key, t, *, k, objective, estimator):
    model = nnx.merge(graphdef, state)
    if estimator == "straight_through":
        gates = straight_through_topk_mask(key, theta, k, t)
    else:
        gates = relaxed_topk_mask(key, theta, k, t)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    in_mask = mask[:, :-1]
    weight = (mask[:, :-1] & mask[:, 1:]).astype(jnp.float32)
    logits = forward(model, inputs, attention_mask=in_mask, gates=gates)[0]
    log_s = jax.nn.log_softmax(logits, axis=-1)
    if objective == "lm":
        per = -jnp.take_along_axis(log_s, targets[..., None], axis=-1)[..., 0]
    else:
        dense = jnp.ones_like(theta)
        teacher = jax.lax.stop_gradient(forward(model, inputs, attention_mask=in_mask,
                                                gates=dense)[0])
        log_t = jax.nn.log_softmax(teacher, axis=-1)
        per = jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)
    return jnp.sum(per * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def search_mask(model: Llama, tokens, k: int, *, key: jax.Array, steps: int = 100,
                batch_size: int = 8, learning_rate: float = 0.1, t_start: float = 1.0,
                t_end: float = 0.05, objective: str = "kd",
                estimator: str = "straight_through", attention_mask=None,
                init_logits=None,
                callback: Callable[[int, float, float], None] | None = None
                ) -> MaskSearchResult:
    """Learns the ``k`` layers to keep with annealed Gumbel-top-k masks (model frozen).

    Args:
      model: the dense model (its weights are not changed).
      tokens: calibration sequences ``[N, S ≥ 2]``.
      k: layers to keep, ``0 < k < L``.
      key: typed PRNG key (mini-batch order and Gumbel noise).
      steps: Adam steps on the logits.
      batch_size: calibration rows per step (``≤ N``).
      learning_rate: Adam step size on ``θ``.
      t_start, t_end: temperature at the first and last step (``> 0``).
      objective: ``"kd"`` (KL from the dense model) or ``"lm"`` (cross-entropy).
      estimator: ``"straight_through"`` (hard mask forward) or ``"relaxed"``.
      attention_mask: optional bool ``[N, S]`` (False at padding).
      init_logits: optional float ``[L]`` starting ``θ`` (default zeros: no prior).
      callback: optional ``callback(step, loss, temperature)`` after each step.

    Returns:
      a :class:`MaskSearchResult`.

    Raises:
      ValueError: on ``k`` outside ``(0, L)``, a temperature ``≤ 0``, calibration data
        shorter than 2 tokens per row or with fewer rows than ``batch_size``, an unknown
        objective/estimator, or a non-finite loss.
    """
    who = "search_mask"
    if not isinstance(model, Llama):
        raise TypeError(f"{who}: model must be an llm_tools.Llama, got {type(model).__name__}")
    L = model.config.n_layers
    k = check_k(who, k, L)
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(f"{who}: key must be a typed key from jax.random.key(seed), got "
                        f"{getattr(key, 'dtype', type(key).__name__)}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    for name, value in (("t_start", t_start), ("t_end", t_end),
                        ("learning_rate", learning_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{who}: {name} must be a finite float > 0, got {value!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"{who}: objective must be one of {OBJECTIVES}, got {objective!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"{who}: estimator must be one of {ESTIMATORS}, got {estimator!r}")
    tokens, attention_mask = check_tokens(who, tokens, attention_mask,
                                          vocab_size=model.config.vocab_size)
    n = tokens.shape[0]
    if batch_size > n:
        raise ValueError(f"{who}: batch_size ({batch_size}) exceeds the {n} calibration rows")
    mask = jnp.ones(tokens.shape, bool) if attention_mask is None else attention_mask
    if init_logits is None:
        theta = jnp.zeros((L,), jnp.float32)
    else:
        theta = jnp.asarray(init_logits, jnp.float32)
        if theta.shape != (L,) or not bool(jnp.all(jnp.isfinite(theta))):
            raise ValueError(f"{who}: init_logits must be finite with shape ({L},), got "
                             f"{theta.shape}")

    graphdef, state = nnx.split(model)
    opt = optax.adam(learning_rate)

    def objective_fn(theta, state, batch, bmask, key, t):
        return _masked_objective(graphdef, state, theta, batch, bmask, key, t, k=k,
                                 objective=objective, estimator=estimator)

    @jax.jit
    def step(theta, opt_state, state, batch, bmask, key, t):
        loss, grad = jax.value_and_grad(objective_fn)(theta, state, batch, bmask, key, t)
        updates, opt_state = opt.update(grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, loss

    opt_state = opt.init(theta)
    order_key, noise_key = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(order_key)).ravel().tolist())
    perm, pos = rng.permutation(n), 0
    losses, temps, history = [], [], []
    for i in range(steps):
        if pos + batch_size > n:
            perm, pos = rng.permutation(n), 0
        rows = perm[pos:pos + batch_size]
        pos += batch_size
        t = anneal_temperature(i, steps, t_start, t_end)
        theta, opt_state, loss = step(theta, opt_state, state, tokens[rows], mask[rows],
                                      jax.random.fold_in(noise_key, i), t)
        loss = float(loss)
        if not np.isfinite(loss):
            raise ValueError(f"{who}: the objective is {loss} at step {i + 1}")
        losses.append(loss)
        temps.append(float(t))
        history.append(np.asarray(theta))
        if callback is not None:
            callback(i + 1, loss, float(t))
    theta_np = np.asarray(theta)
    keep = np.sort(np.argsort(-theta_np, kind="stable")[:k])
    return MaskSearchResult(keep=keep, logits=theta_np, losses=np.asarray(losses),
                            temperatures=np.asarray(temps), logit_history=np.stack(history))
