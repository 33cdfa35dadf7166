"""SAC, DSAC-T and DSAC-E as small sets of pure functions, one set per algorithm.

Each algorithm is an :class:`Algorithm`: a critic step, an actor step (policy + temperature
+ Polyak targets), the reward critic's TD target (for probes) and the list of networks it
keeps. :class:`tecrl.agent.Agent` selects one set once, from ``AgentConfig.algo``; nothing
inside a jitted step branches on the algorithm's name.

Every step is ``f(nets, config, state, batch, key) -> (state, metrics)``: ``nets`` holds the
network apply functions and optimizers (:class:`Networks`), ``state`` is an
:class:`AgentState` whose unused fields are ``None`` (no parameters are carried for networks
an algorithm never uses), and the losses of :mod:`tecrl.losses` are applied per transition
under ``jax.vmap``.

* ``sac``: twin critics and their targets; ``a' ~ pi`` (current policy); soft target
  :func:`~tecrl.losses.sac_target`; per-step entropy target ``-|A|``.
* ``dsac_t``: twin distributional critics ``(Q, sigma)``, target critics and a target policy
  ``pi'``; ``a' ~ pi'``; the critic with the smaller mean gives the next value; bounded
  target with each critic's ``sigma_bar``; :func:`~tecrl.losses.dsac_t_critic_loss`.
* ``dsac_e``: the DSAC-T reward critic with ``alpha = 0`` in its target, an entropy critic
  ``Q_e`` (and its target) trained on :func:`~tecrl.losses.entropy_critic_loss` with
  ``a' ~ pi'``, actor loss :func:`~tecrl.losses.dsac_e_actor_loss` and ``alpha`` the
  Lagrange multiplier of ``E[-log pi(a|s) + Q_e(s, a)] >= H_budget``.

References:
  Zhan et al., arXiv 2511.11592 (TECRL / DSAC-E); Duan et al., arXiv 2310.05858 (DSAC-T) and
  Jingliang-Duan/DSAC-v2 ``dsac_v2.py``; Haarnoja et al., arXiv 1812.05905 (SAC).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from tecrl import losses
from tecrl.replay import Transition

__all__ = [
    "ALGORITHMS", "ActorMetrics", "AgentState", "Algorithm", "CriticMetrics", "Metrics",
    "Networks",
]


class AgentState(NamedTuple):
    """Everything an agent carries between updates (a pytree; checkpointed whole).

    Fields an algorithm does not use are ``None`` (SAC: ``policy_target``, ``std_ema`` and
    the entropy critic; DSAC-T: the entropy critic).
    """

    policy: Any
    critic: Any  # the twin critics' params, stacked on a leading axis of 2
    critic_target: Any
    policy_opt: Any
    critic_opt: Any
    alpha_opt: Any
    log_alpha: jax.Array
    critic_steps: jax.Array
    actor_steps: jax.Array
    key: jax.Array
    policy_target: Any = None  # DSAC-T, DSAC-E
    std_ema: jax.Array | None = None  # [2]: sigma_bar per critic; < 0 until the first step
    ent_critic: Any = None  # DSAC-E
    ent_critic_target: Any = None
    ent_opt: Any = None


class CriticMetrics(NamedTuple):
    """Batch means from one critic step (``critic_std``, ``q_e`` and ``entropy_critic_loss``
    are 0 where the algorithm has no such quantity)."""

    critic_loss: jax.Array
    q: jax.Array
    target_q: jax.Array
    critic_std: jax.Array
    q_e: jax.Array
    entropy_critic_loss: jax.Array


class ActorMetrics(NamedTuple):
    """Batch means from one actor step; ``trajectory_entropy`` is the estimate the temperature
    sees (``-log pi`` for SAC and DSAC-T, ``-log pi + Q_e`` for DSAC-E) and
    ``constraint_violation = max(target - trajectory_entropy, 0)``."""

    actor_loss: jax.Array
    entropy: jax.Array
    alpha: jax.Array
    trajectory_entropy: jax.Array
    constraint_violation: jax.Array


class Metrics(NamedTuple):
    """One update block's metrics: the critic metrics averaged over its critic steps, then the
    actor step's (the fields of :class:`CriticMetrics` followed by :class:`ActorMetrics`)."""

    critic_loss: jax.Array
    q: jax.Array
    target_q: jax.Array
    critic_std: jax.Array
    q_e: jax.Array
    entropy_critic_loss: jax.Array
    actor_loss: jax.Array
    entropy: jax.Array
    alpha: jax.Array
    trajectory_entropy: jax.Array
    constraint_violation: jax.Array


class Networks(NamedTuple):
    """Apply functions and optimizers shared by the algorithms (static under ``jit``)."""

    policy: Callable  # (params, obs) -> (mu, log_std)
    critic: Callable  # (params, obs, act) -> (mean, std) of one critic
    sample: Callable  # (params, obs, key) -> (action, log_prob)
    policy_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation

    def twin(self, params, obs, act):
        """``(mean [2, B], std [2, B])`` of the twin critics (params stacked on axis 0)."""
        return jax.vmap(self.critic, in_axes=(0, None, None))(params, obs, act)


class Algorithm(NamedTuple):
    """One algorithm's pure functions (see the module docstring)."""

    name: str
    critic_step: Callable  # (nets, config, state, batch, key) -> (state, CriticMetrics)
    actor_step: Callable  # (nets, config, state, batch, key) -> (state, ActorMetrics)
    reward_target: Callable  # (nets, config, state, batch, key) -> y [B]
    uses_policy_target: bool
    uses_entropy_critic: bool
    distributional: bool


def _polyak(target, online, tau):
    return jax.tree.map(lambda t, o: (1 - tau) * t + tau * o, target, online)


def _apply(tx, grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _discount(config, batch: Transition) -> jax.Array:
    return config.gamma * (1.0 - batch.terminated)


def _zero():
    return jnp.zeros((), jnp.float32)


# -- SAC ----------------------------------------------------------------------------------


def _sac_target(nets, config, state, batch, key):
    alpha = jnp.exp(state.log_alpha)
    next_act, next_lp = nets.sample(state.policy, batch.next_obs, key)  # current policy
    next_mean, _ = nets.twin(state.critic_target, batch.next_obs, next_act)
    return jax.vmap(losses.sac_target, in_axes=(0, 0, 0, 0, 0, None))(
        batch.reward, _discount(config, batch), next_mean[0], next_mean[1], next_lp, alpha)


def _sac_critic_step(nets, config, state, batch, key):
    y = _sac_target(nets, config, state, batch, key)

    def loss_fn(params):
        mean, _ = nets.twin(params, batch.obs, batch.action)
        return jnp.mean(jax.vmap(losses.twin_critic_loss)(mean[0], mean[1], y)), mean

    (loss, mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic)
    critic, critic_opt = _apply(nets.critic_tx, grads, state.critic_opt, state.critic)
    state = state._replace(critic=critic, critic_opt=critic_opt,
                           critic_steps=state.critic_steps + 1)
    return state, CriticMetrics(loss, jnp.mean(mean), jnp.mean(y), _zero(), _zero(), _zero())


# -- DSAC-T reward critic (shared by DSAC-T and DSAC-E) -----------------------------------


def _dsac_targets(nets, config, state, batch, key, alpha):
    """``(y, y_s, a', log pi'(a'|s'))`` with ``a' ~ pi'`` (target policy)."""
    ka, kz = jax.random.split(key)
    next_act, next_lp = nets.sample(state.policy_target, batch.next_obs, ka)
    next_mean, next_std = nets.twin(state.critic_target, batch.next_obs, next_act)
    z = jax.random.normal(kz, next_mean.shape)
    sample = jax.vmap(jax.vmap(losses.sampled_return))(next_mean, next_std, z)
    q_next, q_next_sample = jax.vmap(losses.twin_min)(next_mean[0], sample[0], next_mean[1],
                                                      sample[1])
    y, y_s = jax.vmap(losses.dsac_t_targets, in_axes=(0, 0, 0, 0, 0, None))(
        batch.reward, _discount(config, batch), q_next, q_next_sample, next_lp, alpha)
    return y, y_s, next_act, next_lp


def _dsac_reward_critic_step(nets, config, state, batch, y, y_s):
    """One step of the twin distributional critics; one forward pass feeds the loss, the
    ``sigma_bar`` EMA and the bounded target (the last two stop-gradiented)."""
    per_transition = functools.partial(losses.dsac_t_critic_loss, form=config.critic_form,
                                       eps=config.grad_eps, huber_delta=config.huber_delta)
    # [2, B] x [B] targets, per-critic sigma_bar
    critic_loss = jax.vmap(jax.vmap(per_transition, in_axes=(0, 0, 0, 0, None)),
                           in_axes=(0, 0, None, 0, 0))
    bound = jax.vmap(jax.vmap(functools.partial(losses.bounded_target, bound=config.td_bound),
                              in_axes=(0, 0, None)), in_axes=(0, None, 0))
    ema = jax.vmap(functools.partial(losses.update_std_ema, rate=config.tau_b))

    def loss_fn(params):
        mean, std = nets.twin(params, batch.obs, batch.action)
        std_ema = ema(state.std_ema, jnp.mean(jax.lax.stop_gradient(std), axis=1))
        y_b = bound(mean, y_s, std_ema)
        loss = jnp.sum(jnp.mean(critic_loss(mean, std, y, y_b, std_ema), axis=1))
        return loss, (mean, std, std_ema)

    (loss, (mean, std, std_ema)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.critic)
    critic, critic_opt = _apply(nets.critic_tx, grads, state.critic_opt, state.critic)
    state = state._replace(critic=critic, critic_opt=critic_opt, std_ema=std_ema,
                           critic_steps=state.critic_steps + 1)
    return state, CriticMetrics(loss, jnp.mean(mean), jnp.mean(y), jnp.mean(std), _zero(),
                                _zero())


def _dsac_t_target(nets, config, state, batch, key):
    return _dsac_targets(nets, config, state, batch, key, jnp.exp(state.log_alpha))[0]


def _dsac_t_critic_step(nets, config, state, batch, key):
    y, y_s, _, _ = _dsac_targets(nets, config, state, batch, key, jnp.exp(state.log_alpha))
    return _dsac_reward_critic_step(nets, config, state, batch, y, y_s)


# -- DSAC-E -------------------------------------------------------------------------------


def _dsac_e_target(nets, config, state, batch, key):
    return _dsac_targets(nets, config, state, batch, key, _zero())[0]


def _dsac_e_critic_step(nets, config, state, batch, key):
    y, y_s, next_act, next_lp = _dsac_targets(nets, config, state, batch, key, _zero())
    state, metrics = _dsac_reward_critic_step(nets, config, state, batch, y, y_s)
    next_qe, _ = nets.critic(state.ent_critic_target, batch.next_obs, next_act)
    y_e = jax.vmap(losses.entropy_critic_target)(_discount(config, batch), next_lp, next_qe)

    def loss_fn(params):
        q_e, _ = nets.critic(params, batch.obs, batch.action)
        return jnp.mean(jax.vmap(losses.entropy_critic_loss)(q_e, y_e)), q_e

    (eloss, q_e), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.ent_critic)
    ent, ent_opt = _apply(nets.critic_tx, grads, state.ent_opt, state.ent_critic)
    state = state._replace(ent_critic=ent, ent_opt=ent_opt)
    return state, metrics._replace(q_e=jnp.mean(q_e), entropy_critic_loss=eloss)


# -- actor, temperature, targets ----------------------------------------------------------


def _actor_step(nets, config, state, batch, key, *, with_entropy_critic: bool,
                entropy_target: float):
    """Policy step, temperature step, then Polyak updates of the networks the algorithm keeps.

    Without the entropy critic (SAC, DSAC-T) the policy minimises
    :func:`~tecrl.losses.sac_actor_loss` and the temperature targets ``-log pi``; with it
    (DSAC-E) the policy minimises :func:`~tecrl.losses.dsac_e_actor_loss` and the temperature
    targets ``-log pi + Q_e``.
    """
    alpha = jnp.exp(state.log_alpha)

    def loss_fn(params):
        act, lp = nets.sample(params, batch.obs, key)
        mean, _ = nets.twin(state.critic, batch.obs, act)
        if with_entropy_critic:
            q_e, _ = nets.critic(state.ent_critic, batch.obs, act)
            per = jax.vmap(losses.dsac_e_actor_loss, in_axes=(0, 0, 0, 0, None))(
                mean[0], mean[1], lp, q_e, alpha)
            return jnp.mean(per), (-lp + q_e, lp)
        per = jax.vmap(losses.sac_actor_loss, in_axes=(0, 0, 0, None))(lp, mean[0], mean[1],
                                                                         alpha)
        return jnp.mean(per), (-lp, lp)

    (loss, (estimate, lp)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.policy)
    policy, policy_opt = _apply(nets.policy_tx, grads, state.policy_opt, state.policy)
    target = jnp.float32(entropy_target)
    alpha_grad = jax.grad(lambda la: jnp.mean(jax.vmap(
        losses.temperature_loss, in_axes=(None, 0, None))(la, estimate, target)))(
        state.log_alpha)
    log_alpha, alpha_opt = _apply(nets.alpha_tx, alpha_grad, state.alpha_opt, state.log_alpha)
    tau = config.tau
    state = state._replace(policy=policy, policy_opt=policy_opt, log_alpha=log_alpha,
                           alpha_opt=alpha_opt, actor_steps=state.actor_steps + 1,
                           critic_target=_polyak(state.critic_target, state.critic, tau))
    if state.policy_target is not None:
        state = state._replace(policy_target=_polyak(state.policy_target, policy, tau))
    if state.ent_critic_target is not None:
        tau_e = tau if config.tau_e is None else config.tau_e
        state = state._replace(ent_critic_target=_polyak(state.ent_critic_target,
                                                         state.ent_critic, tau_e))
    est = jnp.mean(estimate)
    metrics = ActorMetrics(loss, -jnp.mean(lp), jnp.exp(log_alpha), est,
                           jnp.maximum(target - est, 0.0))
    return state, metrics


def _sac_actor_step(nets, config, state, batch, key, *, entropy_target: float):
    return _actor_step(nets, config, state, batch, key, with_entropy_critic=False,
                       entropy_target=entropy_target)


def _dsac_e_actor_step(nets, config, state, batch, key, *, entropy_target: float):
    return _actor_step(nets, config, state, batch, key, with_entropy_critic=True,
                       entropy_target=entropy_target)


ALGORITHMS = {
    "sac": Algorithm("sac", _sac_critic_step, _sac_actor_step, _sac_target,
                     uses_policy_target=False, uses_entropy_critic=False, distributional=False),
    "dsac_t": Algorithm("dsac_t", _dsac_t_critic_step, _sac_actor_step, _dsac_t_target,
                        uses_policy_target=True, uses_entropy_critic=False, distributional=True),
    "dsac_e": Algorithm("dsac_e", _dsac_e_critic_step, _dsac_e_actor_step, _dsac_e_target,
                        uses_policy_target=True, uses_entropy_critic=True, distributional=True),
}
