"""Pure batch losses of SAC, DSAC-T and DSAC-E (TECRL on DSAC-T).

All functions take per-transition arrays of shape ``[B]`` (network outputs already computed)
and return a scalar loss (plus, for the critics, the targets as ``aux``), so each can be
checked on a hand-computed batch. ``discount`` is always ``gamma * (1 - terminated)``:
time-limit truncations bootstrap, terminations do not. Targets are wrapped in
``stop_gradient``.

Notation (TECRL paper, section 3-4; DSAC-T paper, section 4):

* SAC soft target: ``y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))``.
* DSAC-T: each critic outputs ``(Q_theta, sigma_theta)``; a sampled return is
  ``Z = Q + clip(z, -3, 3) sigma``, ``z ~ N(0, 1)``; the next value comes from the critic with
  the smaller mean: ``y = r + gamma (1 - d) (Q' - alpha log pi'(a'|s'))`` and ``y_s`` the same
  with ``Z'``; bounded target ``y_b = Q + clip(y_s - Q, -3 sigma_bar, 3 sigma_bar)``.
* DSAC-E: ``Q_r`` is the DSAC-T critic with ``alpha = 0`` in its target; the entropy critic
  solves ``Q_e(s, a) = gamma E[-log pi(a'|s') + Q_e(s', a')]``; the actor maximises
  ``Q_r + alpha (-log pi + Q_e)``; ``alpha`` is the Lagrange multiplier of
  ``E[-log pi(a|s) + Q_e(s, a)] >= H_budget``.

References:
  Zhan et al., "Mind Your Entropy: From Maximum Entropy to Trajectory Entropy-Constrained
  RL", arXiv 2511.11592 (2025).
  Duan et al., "Distributional Soft Actor-Critic with Three Refinements", arXiv 2310.05858.
  Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv 1812.05905.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "CRITIC_FORMS",
    "actor_loss",
    "bounded_target",
    "dsac_e_actor_loss",
    "dsac_t_critic_loss",
    "dsac_t_targets",
    "entropy_critic_loss",
    "entropy_critic_target",
    "gradient_weight",
    "sac_critic_loss",
    "sampled_return",
    "temperature_loss",
    "trajectory_entropy_budget",
    "twin_min",
    "update_std_ema",
]

CRITIC_FORMS = ("nll", "huber")
_sg = jax.lax.stop_gradient


def _batch(who: str, **arrays: ArrayLike) -> dict[str, jax.Array]:
    """Checks every array is a floating ``[B]`` vector with one common ``B``."""
    out, shape = {}, None
    for name, x in arrays.items():
        x = jnp.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"{who}: {name} must be a 1-D batch [B], got shape {x.shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{who}: {name} must be floating, got dtype {x.dtype}")
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            raise ValueError(
                f"{who}: {name} has shape {x.shape} but the batch shape is {shape} "
                f"(from {next(iter(arrays))})"
            )
        out[name] = x
    if shape is not None and shape[0] == 0:
        raise ValueError(f"{who}: the batch is empty")
    return out


def _scalar(who: str, name: str, x: ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 0:
        raise ValueError(f"{who}: {name} must be a scalar, got shape {x.shape}")
    return x


def sac_critic_loss(
    q1: ArrayLike, q2: ArrayLike, next_q1: ArrayLike, next_q2: ArrayLike,
    next_log_prob: ArrayLike, reward: ArrayLike, discount: ArrayLike, alpha: ArrayLike,
) -> tuple[jax.Array, jax.Array]:
    """Twin soft-Q regression of SAC.

    ``y = r + gamma (1 - d) (min(Q'_1, Q'_2)(s', a') - alpha log pi(a'|s'))`` with
    ``a' ~ pi(.|s')`` (the current policy) and target critics ``Q'``;
    ``L = 1/2 mean (Q_1 - y)^2 + 1/2 mean (Q_2 - y)^2``.

    Args:
      q1, q2: online critics at ``(s, a)``, ``[B]``.
      next_q1, next_q2: target critics at ``(s', a')``, ``[B]``.
      next_log_prob: ``log pi(a'|s')``, ``[B]``.
      reward: ``r``, ``[B]``.
      discount: ``gamma (1 - terminated)``, ``[B]``.
      alpha: temperature, scalar.

    Returns:
      ``(loss, y)``.

    References:
      Haarnoja et al., arXiv 1812.05905, eqs. (5)-(6).
    """
    b = _batch("sac_critic_loss", q1=q1, q2=q2, next_q1=next_q1, next_q2=next_q2,
               next_log_prob=next_log_prob, reward=reward, discount=discount)
    alpha = _scalar("sac_critic_loss", "alpha", alpha)
    y = _sg(b["reward"] + b["discount"] * (
        jnp.minimum(b["next_q1"], b["next_q2"]) - alpha * b["next_log_prob"]))
    loss = 0.5 * jnp.mean((b["q1"] - y) ** 2) + 0.5 * jnp.mean((b["q2"] - y) ** 2)
    return loss, y


def actor_loss(log_prob: ArrayLike, q1: ArrayLike, q2: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """SAC / DSAC-T policy loss ``E[alpha log pi(a|s) - min(Q_1, Q_2)(s, a)]``, ``a ~ pi``.

    Args:
      log_prob: ``log pi(a|s)`` of reparameterised actions, ``[B]``.
      q1, q2: critic means at those actions, ``[B]``.
      alpha: temperature, scalar (treated as a constant).

    References:
      Haarnoja et al., arXiv 1812.05905, eq. (7); Duan et al., arXiv 2310.05858, eq. (9).
    """
    b = _batch("actor_loss", log_prob=log_prob, q1=q1, q2=q2)
    alpha = _sg(_scalar("actor_loss", "alpha", alpha))
    return jnp.mean(alpha * b["log_prob"] - jnp.minimum(b["q1"], b["q2"]))


def temperature_loss(log_alpha: ArrayLike, entropy: ArrayLike, target: ArrayLike) -> jax.Array:
    """Dual loss of the temperature: ``L(log alpha) = log alpha * E[sg(H_hat - target)]``.

    Gradient descent on it is dual ascent on the constraint ``E[H_hat] >= target``: alpha
    grows while the entropy estimate is below the target. SAC and DSAC-T use the per-step
    estimate ``H_hat = -log pi(a|s)`` with ``target = -|A|``; DSAC-E uses the trajectory
    estimate ``H_hat = -log pi(a|s) + Q_e(s, a)`` with ``target = H_budget``.

    Args:
      log_alpha: scalar log-temperature (the variable).
      entropy: per-sample entropy estimate ``[B]``.
      target: scalar target.

    References:
      Haarnoja et al., arXiv 1812.05905, eq. (18); Zhan et al., arXiv 2511.11592, sec. 4.
    """
    b = _batch("temperature_loss", entropy=entropy)
    log_alpha = _scalar("temperature_loss", "log_alpha", log_alpha)
    target = _scalar("temperature_loss", "target", target)
    return log_alpha * _sg(jnp.mean(b["entropy"]) - target)


def sampled_return(mean: ArrayLike, std: ArrayLike, z: ArrayLike, clip: float = 3.0) -> jax.Array:
    """``Z = mean + clip(z, -clip, clip) * std`` (DSAC-T's sampled return).

    Raises:
      ValueError: for mismatched shapes or ``clip <= 0``.
    """
    if not clip > 0:
        raise ValueError(f"sampled_return: clip must be > 0, got {clip!r}")
    b = _batch("sampled_return", mean=mean, std=std, z=z)
    return b["mean"] + jnp.clip(b["z"], -clip, clip) * b["std"]


def twin_min(mean1: ArrayLike, sample1: ArrayLike, mean2: ArrayLike,
             sample2: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Returns ``(min(mean1, mean2), sample of the critic with the smaller mean)``.

    Ties pick critic 2, as ``torch.where(q1 < q2, ...)`` in the DSAC-T code.
    """
    b = _batch("twin_min", mean1=mean1, sample1=sample1, mean2=mean2, sample2=sample2)
    pick1 = b["mean1"] < b["mean2"]
    return (jnp.where(pick1, b["mean1"], b["mean2"]),
            jnp.where(pick1, b["sample1"], b["sample2"]))


def dsac_t_targets(
    reward: ArrayLike, discount: ArrayLike, next_mean: ArrayLike, next_sample: ArrayLike,
    next_log_prob: ArrayLike, alpha: ArrayLike,
) -> tuple[jax.Array, jax.Array]:
    """Expected-value-substituted targets of DSAC-T.

    ``y = r + gamma (1 - d) (Q'(s', a') - alpha log pi'(a'|s'))`` (mean target) and
    ``y_s = r + gamma (1 - d) (Z'(s', a') - alpha log pi'(a'|s'))`` (sampled target),
    ``a' ~ pi'`` the target policy. DSAC-E's reward critic uses ``alpha = 0``.

    Returns:
      ``(y, y_s)``, both ``[B]`` and stop-gradiented.

    References:
      Duan et al., arXiv 2310.05858, sec. 4.1 (expected value substituting).
    """
    b = _batch("dsac_t_targets", reward=reward, discount=discount, next_mean=next_mean,
               next_sample=next_sample, next_log_prob=next_log_prob)
    alpha = _scalar("dsac_t_targets", "alpha", alpha)
    ent = alpha * b["next_log_prob"]
    y = b["reward"] + b["discount"] * (b["next_mean"] - ent)
    y_s = b["reward"] + b["discount"] * (b["next_sample"] - ent)
    return _sg(y), _sg(y_s)


def bounded_target(q_mean: ArrayLike, target_sample: ArrayLike, std_ema: ArrayLike,
                   bound: float = 3.0) -> jax.Array:
    """Bounded TD target ``y_b = Q + clip(y_s - Q, -b sigma_bar, b sigma_bar)``.

    Args:
      q_mean: the online critic's mean ``Q(s, a)``, ``[B]`` (stop-gradiented here).
      target_sample: the sampled target ``y_s``, ``[B]``.
      std_ema: ``sigma_bar``, the EMA of the batch-mean critic std, scalar ``>= 0``.
      bound: ``b`` (DSAC-T: 3).

    References:
      Duan et al., arXiv 2310.05858, sec. 4.3 (clipped target).
    """
    if not bound > 0:
        raise ValueError(f"bounded_target: bound must be > 0, got {bound!r}")
    b = _batch("bounded_target", q_mean=q_mean, target_sample=target_sample)
    s = _scalar("bounded_target", "std_ema", std_ema)
    q = _sg(b["q_mean"])
    return _sg(q + jnp.clip(b["target_sample"] - q, -bound * s, bound * s))


def gradient_weight(std: ArrayLike, std_ema: ArrayLike, eps: float = 0.1,
                    lo: float = 0.1, hi: float = 10.0) -> jax.Array:
    """Variance-based gradient weight ``omega = clip(sigma_bar^2 / (sg(sigma)^2 + eps), lo, hi)``.

    References:
      Duan et al., arXiv 2310.05858, sec. 4.2 (variance-based critic gradient adjusting).
    """
    if not (eps > 0 and 0 < lo <= hi):
        raise ValueError(f"gradient_weight: need eps > 0 and 0 < lo <= hi, got {eps}, {lo}, {hi}")
    b = _batch("gradient_weight", std=std)
    s = _scalar("gradient_weight", "std_ema", std_ema)
    return _sg(jnp.clip(s**2 / (_sg(b["std"]) ** 2 + eps), lo, hi))


def dsac_t_critic_loss(
    mean: ArrayLike, std: ArrayLike, target: ArrayLike, target_bound: ArrayLike,
    std_ema: ArrayLike, *, form: str = "nll", eps: float = 0.1, huber_delta: float = 1.0,
) -> jax.Array:
    """One DSAC-T critic's loss (a surrogate whose gradient is the paper's).

    With ``sigma_d = sg(sigma)`` and ``omega = clip(sigma_bar^2 / (sigma_d^2 + eps), 0.1, 10)``
    the Gaussian negative log-likelihood ``(y - Q)^2 / (2 sigma^2) + log sigma`` (mean target
    ``y``, variance target ``y_b``) scaled by ``sigma_bar^2`` has gradients
    ``dQ = -omega (y - Q)`` and ``dsigma = -omega ((y_b - Q)^2 - sigma^2) / sigma``.

    * ``form="nll"`` (the original DSAC-T form):
      ``L = mean omega [ -sg(y - Q) Q - sg(((y_b - Q)^2 - sigma_d^2) / (sigma_d + eps)) sigma ]``.
    * ``form="huber"``: the mean term is ``omega * huber_delta(y - Q)`` (the TD error's
      gradient clipped at ``delta``), the variance term as above. This is our reading of the
      authors' later Huber variant; their current code was not available to check it.

    Args:
      mean: ``Q_theta(s, a)``, ``[B]``.
      std: ``sigma_theta(s, a) > 0``, ``[B]``.
      target: ``y``, ``[B]``.
      target_bound: ``y_b``, ``[B]``.
      std_ema: ``sigma_bar``, scalar.
      form: ``"nll"`` or ``"huber"``.
      eps: the ``epsilon`` of the weights (DSAC-T code: 0.1).
      huber_delta: ``delta`` of the Huber form.

    References:
      Duan et al., arXiv 2310.05858, eqs. (14)-(16) and Algorithm 1.
    """
    if form not in CRITIC_FORMS:
        raise ValueError(f"dsac_t_critic_loss: form must be one of {CRITIC_FORMS}, got {form!r}")
    if not huber_delta > 0:
        raise ValueError(f"dsac_t_critic_loss: huber_delta must be > 0, got {huber_delta!r}")
    b = _batch("dsac_t_critic_loss", mean=mean, std=std, target=target, target_bound=target_bound)
    omega = gradient_weight(b["std"], std_ema, eps)
    q, s = b["mean"], b["std"]
    sd = _sg(s)
    var_grad = _sg(((_sg(q) - b["target_bound"]) ** 2 - sd**2) / (sd + eps))
    var_term = -var_grad * s
    if form == "nll":
        mean_term = -_sg(b["target"] - q) * q
    else:
        err = b["target"] - q
        abs_err = jnp.abs(err)
        mean_term = jnp.where(abs_err <= huber_delta, 0.5 * err**2,
                              huber_delta * (abs_err - 0.5 * huber_delta))
    return jnp.mean(omega * (mean_term + var_term))


def update_std_ema(std_ema: ArrayLike, std: ArrayLike, rate: float) -> jax.Array:
    """``sigma_bar <- (1 - rate) sigma_bar + rate mean(sigma)``; a negative ``sigma_bar``
    means "not yet set" and is replaced by ``mean(sigma)`` (the DSAC-T code's first step)."""
    if not 0 < rate <= 1:
        raise ValueError(f"update_std_ema: rate must be in (0, 1], got {rate!r}")
    b = _batch("update_std_ema", std=std)
    e = _scalar("update_std_ema", "std_ema", std_ema)
    m = _sg(jnp.mean(b["std"]))
    return jnp.where(e < 0, m, (1 - rate) * e + rate * m)


def entropy_critic_target(discount: ArrayLike, next_log_prob: ArrayLike,
                          next_q_e: ArrayLike) -> jax.Array:
    """TECRL entropy-critic target ``y_e = gamma (1 - d) (-log pi(a'|s') + Q_e'(s', a'))``.

    ``Q_e(s, a) = E[sum_{t >= 1} gamma^t H_t]`` counts the entropy of the *future* actions
    only, so ``-log pi(a|s) + Q_e(s, a)`` estimates the trajectory entropy from ``s``.

    References:
      Zhan et al., arXiv 2511.11592, sec. 4 (entropy Q-function).
    """
    b = _batch("entropy_critic_target", discount=discount, next_log_prob=next_log_prob,
               next_q_e=next_q_e)
    return _sg(b["discount"] * (-b["next_log_prob"] + b["next_q_e"]))


def entropy_critic_loss(q_e: ArrayLike, discount: ArrayLike, next_log_prob: ArrayLike,
                        next_q_e: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``L = 1/2 mean (Q_e(s, a) - y_e)^2`` (target: :func:`entropy_critic_target`).

    Returns:
      ``(L, y_e)``.
    """
    _batch("entropy_critic_loss", q_e=q_e, discount=discount)
    y = entropy_critic_target(discount, next_log_prob, next_q_e)
    return 0.5 * jnp.mean((jnp.asarray(q_e) - y) ** 2), y


def dsac_e_actor_loss(q1: ArrayLike, q2: ArrayLike, log_prob: ArrayLike, q_e: ArrayLike,
                      alpha: ArrayLike) -> jax.Array:
    """DSAC-E policy loss ``-E[min(Q_r1, Q_r2)(s, a) + alpha (-log pi(a|s) + Q_e(s, a))]``.

    References:
      Zhan et al., arXiv 2511.11592, sec. 4 (policy improvement with the Lagrangian).
    """
    b = _batch("dsac_e_actor_loss", q1=q1, q2=q2, log_prob=log_prob, q_e=q_e)
    alpha = _sg(_scalar("dsac_e_actor_loss", "alpha", alpha))
    return -jnp.mean(jnp.minimum(b["q1"], b["q2"]) + alpha * (-b["log_prob"] + b["q_e"]))


def trajectory_entropy_budget(target_entropy: float, gamma: float, rho: float) -> float:
    """``H_budget = rho * target_entropy / (1 - gamma)``.

    A policy whose per-step entropy equals ``target_entropy`` has discounted trajectory
    entropy ``target_entropy / (1 - gamma)``; ``rho`` scales this budget (the paper uses 20
    for Humanoid and Walker2d and 1 elsewhere). This closed form is our derivation (the
    paper's exact scaling was not available); ``rho = 1`` matches SAC's per-step target.
    """
    if not 0 <= gamma < 1:
        raise ValueError(f"trajectory_entropy_budget: gamma must be in [0, 1), got {gamma!r}")
    if not rho > 0:
        raise ValueError(f"trajectory_entropy_budget: rho must be > 0, got {rho!r}")
    return float(rho) * float(target_entropy) / (1.0 - float(gamma))
