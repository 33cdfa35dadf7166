"""Probes of trained tecrl agents (no training here).

* :func:`qe_vs_monte_carlo`: DSAC-E's entropy critic against Monte-Carlo sums of
  ``gamma^t (-log pi)`` along policy rollouts on the JAX Pendulum (claim 2).
* :func:`target_drift`: relative change of the reward critic's TD targets on a fixed probe
  batch between two evaluations (claim 3).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from tecrl.pendulum import PENDULUM, PendulumState, pendulum_step

__all__ = ["qe_mc_fn", "qe_vs_monte_carlo", "target_drift"]


def qe_vs_monte_carlo(trainer, agent_state, buffer, key, *, num_states: int, num_rollouts: int,
                      horizon: int):
    """``Q_e(s, a)`` vs ``mean_k sum_{t=1}^{H} gamma^t (-log pi(a_t|s_t))`` from each ``(s, a)``.

    States are drawn uniformly from one seed's replay buffer, ``a ~ pi(.|s)``; each rollout
    continues the pendulum (no time limit, as the critic bootstraps through truncations)
    with the stochastic policy. Returns ``(q_e [N], mc [N])``.
    """
    agent = trainer.agent
    gamma = agent.config.gamma
    ks, ka, kr = jax.random.split(key, 3)
    idx = jax.random.randint(ks, (num_states,), 0, buffer.size)
    obs = buffer.data.obs[idx]
    a, _ = agent.sample(agent_state.policy, obs, ka)
    q_e, _ = agent.critic_apply(agent_state.ent_critic, obs, a)

    def rollout(o, a0, k):
        env = PendulumState(jnp.arctan2(o[1], o[0]), o[2], jnp.zeros((), jnp.int32))
        env, o, *_ = pendulum_step(env, a0 * PENDULUM.max_torque)

        def step(carry, kt):
            env, o, disc = carry
            a, lp = agent.sample(agent_state.policy, o, kt)
            env, o, *_ = pendulum_step(env, a * PENDULUM.max_torque)
            return (env, o, disc * gamma), disc * -lp

        return jnp.sum(jax.lax.scan(step, (env, o, jnp.float32(gamma)),
                                    jax.random.split(k, horizon))[1])

    keys = jax.random.split(kr, (num_states, num_rollouts))
    mc = jax.vmap(lambda o, a0, ks: jnp.mean(jax.vmap(lambda k: rollout(o, a0, k))(ks)))(
        obs, a, keys)
    return q_e, mc


@functools.lru_cache(maxsize=8)
def qe_mc_fn(trainer, num_states: int, num_rollouts: int, horizon: int):
    """A jitted :func:`qe_vs_monte_carlo` (cached per trainer and sizes)."""
    return jax.jit(lambda a, b, k: qe_vs_monte_carlo(
        trainer, a, b, k, num_states=num_states, num_rollouts=num_rollouts, horizon=horizon))


def target_drift(y_new: jax.Array, y_old: jax.Array) -> jax.Array:
    """``mean |y_new - y_old| / mean |y_new|`` over the probe batch (last axis), per seed."""
    return jnp.mean(jnp.abs(y_new - y_old), axis=-1) / jnp.mean(jnp.abs(y_new), axis=-1)
