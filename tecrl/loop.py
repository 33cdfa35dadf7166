"""Training loops: fully on-device for the JAX Pendulum, and over Gymnasium vector envs.

:func:`make_train` builds an :class:`OnDeviceTrainer` whose ``warmup``, ``train`` and
``evaluate`` are single jitted functions (``lax.scan`` over environment steps, one gradient
step per environment step, UTD 1) that are ``vmap``-ed over a leading seed axis, so several
seeds train in parallel on one CPU. The caller drives chunks of ``chunk_steps`` environment
steps from Python, logging and checkpointing the whole :class:`RunState` between chunks: the
state holds networks, targets, optimizer states, alpha, the ``sigma_bar`` EMA, the replay
buffer, the environment states, the RNG keys and the step counters, so a resumed run repeats
an uninterrupted one bit for bit.

:class:`GymLoop` runs the same agent on ``gymnasium.vector`` environments (MuJoCo v5 tasks,
``Pendulum-v1``): actions come from the jitted policy, transitions go into the device buffer
and ``Agent.update`` runs once per ``policy_delay`` environment steps per environment.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tecrl.agent import Agent, AgentState
from tecrl.pendulum import PENDULUM, PendulumState, pendulum_reset, pendulum_step
from tecrl.replay import ReplayBuffer, Transition, replay_add, replay_init, replay_sample

__all__ = ["GymLoop", "OnDeviceTrainer", "RunState", "make_train", "check_finite"]


class RunState(NamedTuple):
    """The complete state of one seed's on-device run."""

    agent: AgentState
    buffer: ReplayBuffer
    env: PendulumState
    obs: jax.Array
    ep_return: jax.Array  # return of the episode in progress
    env_steps: jax.Array  # int32 environment steps taken
    key: jax.Array


def check_finite(where: str, **arrays: Any) -> None:
    """Raises ``FloatingPointError`` naming the first non-finite array (host-side check)."""
    for name, x in arrays.items():
        x = np.asarray(x)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(
                f"{where}: {name} has non-finite values ({int(np.sum(~np.isfinite(x)))} of "
                f"{x.size}); stopping (the last checkpoint is kept)"
            )


def _typed_key(key: Any, who: str) -> None:
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(f"{who}: key must be a jax.random.key, got {type(key).__name__}")


class OnDeviceTrainer:
    """SAC / DSAC-T / DSAC-E on the JAX Pendulum, every step on the device.

    Args:
      agent: the :class:`~tecrl.agent.Agent` (``obs_dim=3``, ``act_dim=1``).
      buffer_size: replay capacity (>= ``batch_size``).
      learning_starts: uniform-random steps before learning (>= ``batch_size``).
      eval_episodes: deterministic-policy episodes per evaluation.

    All methods take and return states with a leading seed axis.
    """

    def __init__(self, agent: Agent, *, buffer_size: int, learning_starts: int,
                 eval_episodes: int = 5):
        if (agent.obs_dim, agent.act_dim) != (PENDULUM.obs_dim, PENDULUM.act_dim):
            raise ValueError(f"OnDeviceTrainer: the agent must have obs_dim=3, act_dim=1 for "
                             f"Pendulum, got {agent.obs_dim}, {agent.act_dim}")
        bs = agent.config.batch_size
        for name, v in (("buffer_size", buffer_size), ("learning_starts", learning_starts),
                        ("eval_episodes", eval_episodes)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"OnDeviceTrainer: {name} must be a positive int, got {v!r}")
        if learning_starts < bs:
            raise ValueError(f"OnDeviceTrainer: learning_starts ({learning_starts}) must be >= "
                             f"batch_size ({bs}): a batch cannot be larger than the filled buffer")
        if buffer_size < learning_starts:
            raise ValueError(f"OnDeviceTrainer: buffer_size ({buffer_size}) must be >= "
                             f"learning_starts ({learning_starts})")
        self.agent = agent
        self.buffer_size, self.learning_starts = buffer_size, learning_starts
        self.eval_episodes = eval_episodes
        self.warmup = jax.jit(jax.vmap(self._warmup))
        self.train = jax.jit(jax.vmap(self._train, in_axes=(0, None)), static_argnums=1)
        self.evaluate = jax.jit(jax.vmap(self._evaluate))

    def init(self, keys: jax.Array) -> RunState:
        """Fresh states for ``keys [S]`` (one per seed), stacked on a leading seed axis.

        Built seed by seed outside ``jit`` (tracing the network constructors under ``jit``
        costs more than running them).
        """
        _typed_key(keys, "OnDeviceTrainer.init")
        if keys.ndim != 1 or keys.shape[0] == 0:
            raise ValueError(f"OnDeviceTrainer.init: keys must be a non-empty 1-D array of keys "
                             f"(one per seed), got shape {keys.shape}")
        states = [self._init(k) for k in keys]
        return jax.tree.map(lambda *x: jnp.stack(x), *states)

    # -- one seed ----------------------------------------------------------------------
    def _init(self, key: jax.Array) -> RunState:
        ka, ke, key = jax.random.split(key, 3)
        env, obs = pendulum_reset(ke)
        return RunState(self.agent.init(ka), replay_init(self.buffer_size, 3, 1), env, obs,
                        jnp.zeros(()), jnp.zeros((), jnp.int32), key)

    def _env_step(self, rs: RunState, action: jax.Array):
        """Steps the pendulum with ``action`` in ``[-1, 1]``, stores the transition, auto-resets."""
        key, kr = jax.random.split(rs.key)
        env, next_obs, reward, term, trunc = pendulum_step(rs.env, action * PENDULUM.max_torque)
        tr = Transition(rs.obs[None], action[None], reward[None], next_obs[None],
                        term.astype(jnp.float32)[None])
        buffer = replay_add(rs.buffer, tr)
        done = term | trunc
        reset_env, reset_obs = pendulum_reset(kr)
        env = jax.tree.map(lambda a, b: jnp.where(done, a, b), reset_env, env)
        obs = jnp.where(done, reset_obs, next_obs)
        ep_ret = rs.ep_return + reward
        rs = rs._replace(buffer=buffer, env=env, obs=obs, ep_return=jnp.where(done, 0.0, ep_ret),
                         env_steps=rs.env_steps + 1, key=key)
        return rs, (done, ep_ret, reward)

    def _warmup(self, rs: RunState) -> RunState:
        def body(rs, _):
            key, k = jax.random.split(rs.key)
            a = jax.random.uniform(k, (1,), minval=-1.0, maxval=1.0)
            rs, _ = self._env_step(rs._replace(key=key), a)
            return rs, None

        return jax.lax.scan(body, rs, None, length=self.learning_starts)[0]

    def _train(self, rs: RunState, num_steps: int) -> tuple[RunState, dict]:
        agent, d = self.agent, self.agent.config.policy_delay

        def env_and_critic(rs, _):
            key, k = jax.random.split(rs.key)
            a = agent.act(rs.agent.policy, rs.obs, k)
            rs, (done, ep_ret, reward) = self._env_step(rs._replace(key=key), a)
            key, k = jax.random.split(rs.key)
            batch = replay_sample(rs.buffer, k, agent.config.batch_size)
            ag, cm = agent.critic_step(rs.agent, batch)
            return rs._replace(agent=ag, key=key), (cm, batch, done, ep_ret, reward)

        def block(rs, _):
            rs, (cm, batches, done, ep_ret, reward) = jax.lax.scan(env_and_critic, rs, None,
                                                                   length=d)
            last = jax.tree.map(lambda x: x[-1], batches)
            ag, am = agent.actor_step(rs.agent, last)
            cm = jax.tree.map(jnp.mean, cm)
            return rs._replace(agent=ag), ({**cm, **am}, done, ep_ret, reward)

        rs, (m, done, ep_ret, reward) = jax.lax.scan(block, rs, None, length=num_steps // d)
        m = jax.tree.map(jnp.mean, m)
        n_done = jnp.sum(done)
        m["train_return"] = jnp.where(n_done > 0, jnp.sum(ep_ret * done) / jnp.maximum(n_done, 1),
                                      jnp.nan)
        m["episodes"] = n_done
        m["reward_sum"] = jnp.sum(reward)  # non-finite => the env produced NaN/inf
        return rs, m

    def _evaluate(self, rs: RunState, key: jax.Array) -> jax.Array:
        """Mean undiscounted return of the deterministic policy over ``eval_episodes``."""
        policy = rs.agent.policy

        def episode(k):
            env, obs = pendulum_reset(k)

            def step(carry, _):
                env, obs = carry
                a = self.agent.act(policy, obs, None, deterministic=True)
                env, obs, r, _, _ = pendulum_step(env, a * PENDULUM.max_torque)
                return (env, obs), r

            return jnp.sum(jax.lax.scan(step, (env, obs), None,
                                        length=PENDULUM.max_episode_steps)[1])

        return jnp.mean(jax.vmap(episode)(jax.random.split(key, self.eval_episodes)))

    def check_steps(self, num_steps: int) -> int:
        """Validates a chunk length: a positive multiple of ``policy_delay``."""
        d = self.agent.config.policy_delay
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0 \
                or num_steps % d:
            raise ValueError(f"OnDeviceTrainer: num_steps must be a positive multiple of "
                             f"policy_delay={d}, got {num_steps!r}")
        return num_steps


def make_train(agent_config, *, buffer_size: int, learning_starts: int,
               eval_episodes: int = 5) -> OnDeviceTrainer:
    """An :class:`OnDeviceTrainer` for the JAX Pendulum from an agent config (or mapping).

    Raises:
      ValueError: for an unknown agent config key or a bad value.
    """
    return OnDeviceTrainer(Agent(agent_config, PENDULUM.obs_dim, PENDULUM.act_dim),
                           buffer_size=buffer_size, learning_starts=learning_starts,
                           eval_episodes=eval_episodes)


class GymLoop:
    """Placeholder, replaced below."""
