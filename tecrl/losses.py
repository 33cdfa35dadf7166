"""Per-transition losses and targets of SAC, DSAC-T and DSAC-E (TECRL on DSAC-T).

Every function takes the quantities of *one* transition as scalars (network outputs already
computed) and returns a scalar, in the style of rlax: batch them with ``jax.vmap`` and
average (the agents do exactly that). ``discount`` is always ``gamma * (1 - terminated)``:
time-limit truncations bootstrap, terminations do not. Targets are stop-gradiented.

Notation (TECRL paper, sec. 3-4; DSAC-T paper, sec. 4):

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
  Duan et al., "Distributional Soft Actor-Critic with Three Refinements", arXiv 2310.05858;
  public code Jingliang-Duan/DSAC-v2, ``dsac_v2.py`` (the critic loss below, form
  ``"dsac_v2"``).
  Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv 1812.05905.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "CRITIC_FORMS",
    "bounded_target",
    "dsac_e_actor_loss",
    "dsac_t_critic_loss",
    "dsac_t_targets",
    "entropy_critic_loss",
    "entropy_critic_target",
    "gradient_weight",
    "huber",
    "sac_actor_loss",
    "sac_target",
    "sampled_return",
    "temperature_loss",
    "trajectory_entropy_budget",
    "twin_critic_loss",
    "twin_min",
    "update_std_ema",
]

# "dsac_v2": the authors' public DSAC-T code (default); "nll": the DSAC-T paper's Gaussian
# negative log-likelihood gradients; "huber_mean": Huber on the mean term only.
CRITIC_FORMS = ("dsac_v2", "nll", "huber_mean")
_sg = jax.lax.stop_gradient


def _scalars(who: str, **values: ArrayLike) -> list[jax.Array]:
    """Checks every value is a floating scalar (one transition); returns them as arrays."""
    out = []
    for name, x in values.items():
        x = jnp.asarray(x)
        if x.ndim != 0:
            raise ValueError(
                f"{who}: {name} must be a scalar (one transition; batch with jax.vmap), got "
                f"shape {x.shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{who}: {name} must be floating, got dtype {x.dtype}")
        out.append(x)
    return out


def _positive(who: str, **values: float) -> None:
    for name, v in values.items():
        if not v > 0:
            raise ValueError(f"{who}: {name} must be > 0, got {v!r}")


def huber(x: ArrayLike, delta: float) -> jax.Array:
    """``h_delta(x) = x^2 / 2`` for ``|x| <= delta``, else ``delta (|x| - delta / 2)``.

    The convention of ``torch.nn.functional.huber_loss`` (and ``optax.huber_loss``): its
    gradient is ``x`` clipped to ``[-delta, delta]``.

    Raises:
      ValueError: if ``delta <= 0``.
    """
    _positive("huber", delta=delta)
    x = jnp.asarray(x)
    ax = jnp.abs(x)
    return jnp.where(ax <= delta, 0.5 * x**2, delta * (ax - 0.5 * delta))


def sac_target(reward: ArrayLike, discount: ArrayLike, next_q1: ArrayLike, next_q2: ArrayLike,
               next_log_prob: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """SAC's soft TD target.

    ``y = r + gamma (1 - d) (min(Q'_1, Q'_2)(s', a') - alpha log pi(a'|s'))``.

    ``a' ~ pi(.|s')`` is drawn from the *current* policy and ``Q'`` are the *target* critics.

    References:
      Haarnoja et al., arXiv 1812.05905, eqs. (5)-(6).
    """
    r, d, q1, q2, lp, a = _scalars("sac_target", reward=reward, discount=discount,
                                   next_q1=next_q1, next_q2=next_q2,
                                   next_log_prob=next_log_prob, alpha=alpha)
    return _sg(r + d * (jnp.minimum(q1, q2) - a * lp))


def twin_critic_loss(q1: ArrayLike, q2: ArrayLike, target: ArrayLike) -> jax.Array:
    """``L = (Q_1 - y)^2 / 2 + (Q_2 - y)^2 / 2`` (SAC's critics regress the same target)."""
    q1, q2, y = _scalars("twin_critic_loss", q1=q1, q2=q2, target=target)
    y = _sg(y)
    return 0.5 * (q1 - y) ** 2 + 0.5 * (q2 - y) ** 2


def sac_actor_loss(log_prob: ArrayLike, q1: ArrayLike, q2: ArrayLike,
                   alpha: ArrayLike) -> jax.Array:
    """SAC / DSAC-T policy loss ``alpha log pi(a|s) - min(Q_1, Q_2)(s, a)``, ``a ~ pi`` (alpha
    is a constant here).

    References:
      Haarnoja et al., arXiv 1812.05905, eq. (7); Duan et al., arXiv 2310.05858, eq. (9).
    """
    lp, q1, q2, a = _scalars("sac_actor_loss", log_prob=log_prob, q1=q1, q2=q2, alpha=alpha)
    return _sg(a) * lp - jnp.minimum(q1, q2)


def dsac_e_actor_loss(q1: ArrayLike, q2: ArrayLike, log_prob: ArrayLike, q_e: ArrayLike,
                      alpha: ArrayLike) -> jax.Array:
    """DSAC-E policy loss ``-(min(Q_r1, Q_r2)(s, a) + alpha (-log pi(a|s) + Q_e(s, a)))``.

    References:
      Zhan et al., arXiv 2511.11592, sec. 4 (policy improvement with the Lagrangian).
    """
    q1, q2, lp, qe, a = _scalars("dsac_e_actor_loss", q1=q1, q2=q2, log_prob=log_prob,
                                 q_e=q_e, alpha=alpha)
    return -(jnp.minimum(q1, q2) + _sg(a) * (-lp + qe))


def temperature_loss(log_alpha: ArrayLike, entropy: ArrayLike, target: ArrayLike) -> jax.Array:
    """Dual loss of the temperature: ``L(log alpha) = log alpha * sg(H_hat - target)``.

    Averaged over a batch, gradient descent on it is dual ascent on ``E[H_hat] >= target``:
    alpha grows while the entropy estimate is below the target. SAC and DSAC-T use
    ``H_hat = -log pi(a|s)`` with ``target = -|A|`` (the DSAC-T code's
    ``-log_alpha (log pi + target)``); DSAC-E uses ``H_hat = -log pi(a|s) + Q_e(s, a)`` with
    ``target = H_budget``.

    References:
      Haarnoja et al., arXiv 1812.05905, eq. (18); Zhan et al., arXiv 2511.11592, sec. 4.
    """
    la, h, t = _scalars("temperature_loss", log_alpha=log_alpha, entropy=entropy,
                        target=target)
    return la * _sg(h - t)


def sampled_return(mean: ArrayLike, std: ArrayLike, z: ArrayLike, clip: float = 3.0) -> jax.Array:
    """``Z = mean + clip(z, -clip, clip) * std`` (DSAC-T's sampled return).

    Raises:
      ValueError: for a non-scalar input or ``clip <= 0``.
    """
    _positive("sampled_return", clip=clip)
    m, s, z = _scalars("sampled_return", mean=mean, std=std, z=z)
    return m + jnp.clip(z, -clip, clip) * s


def twin_min(mean1: ArrayLike, sample1: ArrayLike, mean2: ArrayLike,
             sample2: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``(min(mean1, mean2), sample of the critic with the smaller mean)``.

    Ties pick critic 2, as ``torch.where(q1 < q2, ...)`` in the DSAC-T code.
    """
    m1, s1, m2, s2 = _scalars("twin_min", mean1=mean1, sample1=sample1, mean2=mean2,
                              sample2=sample2)
    pick1 = m1 < m2
    return jnp.where(pick1, m1, m2), jnp.where(pick1, s1, s2)


def dsac_t_targets(reward: ArrayLike, discount: ArrayLike, next_mean: ArrayLike,
                   next_sample: ArrayLike, next_log_prob: ArrayLike,
                   alpha: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Expected-value-substituted targets of DSAC-T.

    ``y = r + gamma (1 - d) (Q'(s', a') - alpha log pi'(a'|s'))`` (mean target) and
    ``y_s = r + gamma (1 - d) (Z'(s', a') - alpha log pi'(a'|s'))`` (sampled target),
    ``a' ~ pi'`` the *target* policy. DSAC-E's reward critic uses ``alpha = 0``.

    Returns:
      ``(y, y_s)``, stop-gradiented.

    References:
      Duan et al., arXiv 2310.05858, sec. 4.1 (expected value substituting).
    """
    r, d, m, s, lp, a = _scalars("dsac_t_targets", reward=reward, discount=discount,
                                 next_mean=next_mean, next_sample=next_sample,
                                 next_log_prob=next_log_prob, alpha=alpha)
    return _sg(r + d * (m - a * lp)), _sg(r + d * (s - a * lp))


def bounded_target(q_mean: ArrayLike, target_sample: ArrayLike, std_ema: ArrayLike,
                   bound: float = 3.0) -> jax.Array:
    """Bounded TD target ``y_b = Q + clip(y_s - Q, -b sigma_bar, b sigma_bar)``.

    Args:
      q_mean: the online critic's mean ``Q(s, a)`` (stop-gradiented here).
      target_sample: the sampled target ``y_s``.
      std_ema: ``sigma_bar``, the EMA of the batch-mean critic std.
      bound: ``b`` (DSAC-T: 3).

    References:
      Duan et al., arXiv 2310.05858, sec. 4.3 (clipped target).
    """
    _positive("bounded_target", bound=bound)
    q, ys, s = _scalars("bounded_target", q_mean=q_mean, target_sample=target_sample,
                        std_ema=std_ema)
    q = _sg(q)
    return _sg(q + jnp.clip(ys - q, -bound * s, bound * s))


def gradient_weight(std: ArrayLike, std_ema: ArrayLike, eps: float = 0.1,
                    lo: float = 0.1, hi: float = 10.0) -> jax.Array:
    """Variance-based gradient weight ``omega = clip(sigma_bar^2 / (sg(sigma)^2 + eps), lo, hi)``.

    References:
      Duan et al., arXiv 2310.05858, sec. 4.2 (variance-based critic gradient adjusting).
    """
    if not (eps > 0 and 0 < lo <= hi):
        raise ValueError(f"gradient_weight: need eps > 0 and 0 < lo <= hi, got {eps}, {lo}, {hi}")
    s, e = _scalars("gradient_weight", std=std, std_ema=std_ema)
    return _sg(jnp.clip(e**2 / (_sg(s) ** 2 + eps), lo, hi))


def dsac_t_critic_loss(mean: ArrayLike, std: ArrayLike, target: ArrayLike,
                       target_bound: ArrayLike, std_ema: ArrayLike, *, form: str = "dsac_v2",
                       eps: float = 0.1, huber_delta: float = 50.0) -> jax.Array:
    """One DSAC-T critic's loss on one transition.

    With ``sigma_d = sg(sigma)``, ``q_d = sg(Q)`` and the weight
    ``omega = clip(sigma_bar^2 / (sigma_d^2 + eps), 0.1, 10)`` (:func:`gradient_weight`):

    * ``form="dsac_v2"`` (default; the authors' public code, ``dsac_v2.py``)::

        L = omega [h(Q - y) + sigma (sigma_d^2 - h(q_d - y_b)) / (sigma_d + eps)]

      with ``h`` the Huber function of :func:`huber` at ``delta = huber_delta`` (their code:
      50) on *both* terms. Gradients: ``dL/dQ = omega clip(Q - y, -delta, delta)``,
      ``dL/dsigma = omega (sigma^2 - h(Q - y_b)) / (sigma + eps)``, zero at
      ``sigma = |Q - y_b| / sqrt(2)`` for ``|Q - y_b| <= delta``.
    * ``form="nll"`` (the DSAC-T paper's Gaussian negative log-likelihood, eqs. 14-16)::

        L = omega [(Q - y)^2 / 2 + sigma (sigma_d^2 - (q_d - y_b)^2) / (sigma_d + eps)]

      ``dL/dsigma`` is zero at ``sigma = |Q - y_b|`` (sqrt 2 above ``dsac_v2``).
    * ``form="huber_mean"``: Huber on the mean term only, the variance term as ``nll``.

    Args:
      mean: ``Q_theta(s, a)``.
      std: ``sigma_theta(s, a) > 0``.
      target: ``y`` (mean target).
      target_bound: ``y_b`` (bounded sampled target).
      std_ema: ``sigma_bar``.
      form: one of :data:`CRITIC_FORMS`.
      eps: ``epsilon`` of the weights and of the variance term (DSAC-T code: 0.1).
      huber_delta: ``delta`` of the Huber terms (DSAC-T code: 50).

    Raises:
      ValueError: for an unknown ``form``, ``eps <= 0``, ``huber_delta <= 0`` or a
        non-scalar input.

    References:
      Duan et al., arXiv 2310.05858, eqs. (14)-(16) and Algorithm 1; Jingliang-Duan/DSAC-v2
      ``dsac_v2.py`` (``__compute_loss_q``).
    """
    if form not in CRITIC_FORMS:
        raise ValueError(f"dsac_t_critic_loss: form must be one of {CRITIC_FORMS}, got {form!r}")
    _positive("dsac_t_critic_loss", eps=eps, huber_delta=huber_delta)
    q, s, y, yb, e = _scalars("dsac_t_critic_loss", mean=mean, std=std, target=target,
                              target_bound=target_bound, std_ema=std_ema)
    omega = gradient_weight(s, e, eps)
    sd, qd, y, yb = _sg(s), _sg(q), _sg(y), _sg(yb)
    if form == "dsac_v2":
        mean_term = huber(q - y, huber_delta)
        spread = huber(qd - yb, huber_delta)
    elif form == "nll":
        mean_term = 0.5 * (q - y) ** 2
        spread = (qd - yb) ** 2
    else:  # huber_mean
        mean_term = huber(q - y, huber_delta)
        spread = (qd - yb) ** 2
    return omega * (mean_term + s * _sg(sd**2 - spread) / (sd + eps))


def update_std_ema(std_ema: ArrayLike, batch_std: ArrayLike, rate: float) -> jax.Array:
    """``sigma_bar <- (1 - rate) sigma_bar + rate batch_std`` (``batch_std``: the batch mean of
    ``sigma``); a negative ``sigma_bar`` means "not yet set" and is replaced by ``batch_std``
    (the DSAC-T code's first step)."""
    if not 0 < rate <= 1:
        raise ValueError(f"update_std_ema: rate must be in (0, 1], got {rate!r}")
    e, m = _scalars("update_std_ema", std_ema=std_ema, batch_std=batch_std)
    m = _sg(m)
    return jnp.where(e < 0, m, (1 - rate) * e + rate * m)


def entropy_critic_target(discount: ArrayLike, next_log_prob: ArrayLike,
                          next_q_e: ArrayLike) -> jax.Array:
    """TECRL entropy-critic target ``y_e = gamma (1 - d) (-log pi(a'|s') + Q_e'(s', a'))``.

    ``Q_e(s, a) = E[sum_{t >= 1} gamma^t H_t]`` counts the entropy of the *future* actions
    only, so ``-log pi(a|s) + Q_e(s, a)`` estimates the trajectory entropy from ``s``.

    References:
      Zhan et al., arXiv 2511.11592, sec. 4 (entropy Q-function).
    """
    d, lp, qe = _scalars("entropy_critic_target", discount=discount,
                         next_log_prob=next_log_prob, next_q_e=next_q_e)
    return _sg(d * (-lp + qe))


def entropy_critic_loss(q_e: ArrayLike, target: ArrayLike) -> jax.Array:
    """``L = (Q_e(s, a) - y_e)^2 / 2`` (target: :func:`entropy_critic_target`)."""
    qe, y = _scalars("entropy_critic_loss", q_e=q_e, target=target)
    return 0.5 * (qe - _sg(y)) ** 2


def trajectory_entropy_budget(target_entropy: float, rho: float) -> float:
    """DSAC-E's entropy budget ``H_budget = rho * H_target`` (``H_target = -|A|`` by default).

    The constraint is ``E_s,a~pi[-log pi(a|s) + Q_e(s, a)] >= H_budget``: the discounted
    entropy of the whole trajectory from ``s`` must be at least ``rho`` one-step SAC targets.
    For a policy with constant per-step entropy ``h`` the left side is ``h / (1 - gamma)``,
    so the constraint binds at ``h = rho * H_target * (1 - gamma)`` (with ``gamma = 0.99``,
    1/100 of SAC's per-step target: a more stochastic policy than SAC's).

    This is *our* definition: the paper's exact expression (arXiv 2511.11592, with
    ``rho = 20`` for Humanoid and Walker2d) could not be retrieved. The earlier
    ``rho * H_target / (1 - gamma)`` never bound on HalfCheetah-v5 (trajectory entropy +11 to
    +21 against -600), so alpha only ever shrank. This budget binds: in 60k-step runs on
    HalfCheetah-v5 and Hopper-v5 (``experiments/tecrl/budget.py``, docs/tecrl.md) the
    constraint was violated after 27-40k steps on every seed and alpha turned and rose. With
    the default Polyak rate alpha then swings; with a faster entropy-critic target
    (``AgentConfig.tau_e = 0.05``) it stays near the budget.

    Raises:
      ValueError: if ``rho <= 0``.
    """
    if not rho > 0:
        raise ValueError(f"trajectory_entropy_budget: rho must be > 0, got {rho!r}")
    return float(rho) * float(target_entropy)
