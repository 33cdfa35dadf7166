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

__all__ = ["GymLoop", "GymState", "OnDeviceTrainer", "RunState", "check_finite", "make_train"]


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
        self.probe_targets = jax.jit(jax.vmap(self._probe_targets, in_axes=(0, 0, None)))

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

    def _probe_targets(self, rs: RunState, probe: Transition, key: jax.Array) -> jax.Array:
        """Mean TD targets of the (reward) critic on fixed probe transitions (a fixed ``key``
        draws the same next-action noise each time), used to measure target drift."""
        return self.agent.critic_targets(rs.agent, probe, key)[0]

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


class GymState(NamedTuple):
    """Checkpointable state of a :class:`GymLoop` (the Gymnasium envs themselves are not:
    a resumed run starts fresh episodes)."""

    agent: AgentState
    buffer: ReplayBuffer
    key: jax.Array
    env_steps: jax.Array  # int32 transitions collected (all envs)
    pending: jax.Array  # int32 environment steps not yet matched by gradient steps


class GymLoop:
    """The agent on ``gymnasium.vector`` environments (MuJoCo v5 tasks, ``Pendulum-v1``).

    Actions are sampled by the jitted policy in ``[-1, 1]^A`` and rescaled to the Box
    bounds; transitions go to the device buffer; once ``learning_starts`` transitions are in,
    ``Agent.update`` runs ``U = policy_delay * ceil(num_envs / policy_delay)`` gradient steps
    every time ``U`` environment steps have accumulated (UTD 1). Episodes that end are reset
    by the vector env (``NEXT_STEP`` autoreset); the step that performs the reset is not
    stored.

    Args:
      agent_config: an :class:`~tecrl.agent.AgentConfig` or mapping.
      env_id: a registered Gymnasium id with a ``Box`` action space.
      num_envs: parallel environments (``SyncVectorEnv``).
      buffer_size: replay capacity.
      learning_starts: uniform-random transitions before learning (>= ``batch_size``).

    Raises:
      ValueError: for an unregistered ``env_id``, non-vector observations, bad sizes or an
        unknown agent config key.
      TypeError: for a non-``Box`` (e.g. discrete) action space.
    """

    def __init__(self, agent_config, env_id: str, *, num_envs: int = 1, buffer_size: int,
                 learning_starts: int):
        import gymnasium as gym

        try:
            gym.spec(env_id)
        except gym.error.Error as e:
            raise ValueError(f"GymLoop: env_id {env_id!r} is not a registered Gymnasium "
                             f"environment ({type(e).__name__}: {e})") from None
        probe = gym.make(env_id)
        act_space, obs_space = probe.action_space, probe.observation_space
        probe.close()
        if not isinstance(act_space, gym.spaces.Box):
            raise TypeError(f"GymLoop: {env_id} has action space {act_space}; these agents need "
                            f"a continuous gymnasium.spaces.Box")
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"GymLoop: {env_id} must have 1-D Box observations, got {obs_space}")
        for name, v in (("num_envs", num_envs), ("buffer_size", buffer_size),
                        ("learning_starts", learning_starts)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"GymLoop: {name} must be a positive int, got {v!r}")
        self.agent = Agent(agent_config, int(obs_space.shape[0]), int(act_space.shape[0]))
        if learning_starts < self.agent.config.batch_size:
            raise ValueError(f"GymLoop: learning_starts ({learning_starts}) must be >= "
                             f"batch_size ({self.agent.config.batch_size}): a batch cannot be "
                             f"larger than the filled buffer")
        self.env_id, self.num_envs = env_id, num_envs
        self.buffer_size, self.learning_starts = buffer_size, learning_starts
        self.low = np.asarray(act_space.low, np.float32)
        self.high = np.asarray(act_space.high, np.float32)
        d = self.agent.config.policy_delay
        self.updates_per_call = d * -(-num_envs // d)
        self._act = jax.jit(self.agent.act, static_argnums=3)
        self._update = jax.jit(self.agent.update, static_argnums=2)
        self._add = jax.jit(replay_add)
        self._envs = None

    def scale(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` -> ``[low, high]``."""
        return self.low + (np.asarray(action) + 1.0) * 0.5 * (self.high - self.low)

    def init(self, key: jax.Array) -> GymState:
        """A fresh state (untrained agent, empty buffer)."""
        _typed_key(key, "GymLoop.init")
        ka, key = jax.random.split(key)
        return GymState(self.agent.init(ka),
                        replay_init(self.buffer_size, self.agent.obs_dim, self.agent.act_dim),
                        key, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def _reset(self, seed: int):
        import gymnasium as gym

        if self._envs is None:
            self._envs = gym.make_vec(self.env_id, num_envs=self.num_envs,
                                      vectorization_mode="sync")
        obs, _ = self._envs.reset(seed=seed)
        check_finite(f"GymLoop({self.env_id}) reset", observation=obs)
        self._obs = np.asarray(obs, np.float32)
        self._skip = np.zeros(self.num_envs, bool)
        self._ep_ret = np.zeros(self.num_envs)
        self.finished_returns: list[float] = []

    def collect_and_train(self, state: GymState, num_vector_steps: int,
                          seed: int = 0) -> tuple[GymState, dict]:
        """Runs ``num_vector_steps`` steps of all envs with learning interleaved.

        Raises:
          FloatingPointError: if an observation or reward is NaN/inf (nothing of that step
            is stored; the caller's last checkpoint stays valid).
        """
        if self._envs is None:
            self._reset(seed)
        metrics: dict = {}
        for _ in range(num_vector_steps):
            key, k = jax.random.split(state.key)
            if int(state.env_steps) < self.learning_starts:
                a = np.asarray(jax.random.uniform(k, (self.num_envs, self.agent.act_dim),
                                                  minval=-1.0, maxval=1.0))
            else:
                a = np.asarray(self._act(state.agent.policy, jnp.asarray(self._obs), k, False))
            obs2, r, term, trunc, _ = self._envs.step(self.scale(a))
            check_finite(f"GymLoop({self.env_id}) step", observation=obs2, reward=r)
            keep = ~self._skip
            if keep.any():
                tr = Transition(self._obs[keep], a[keep].astype(np.float32),
                                np.asarray(r, np.float32)[keep], np.asarray(obs2, np.float32)[keep],
                                np.asarray(term, np.float32)[keep])
                state = state._replace(buffer=self._add(state.buffer, tr))
            n = int(keep.sum())
            self._ep_ret = np.where(keep, self._ep_ret + r, 0.0)
            done = (term | trunc) & keep
            self.finished_returns += [float(x) for x in self._ep_ret[done]]
            self._skip = done
            self._obs = np.asarray(obs2, np.float32)
            state = state._replace(key=key, env_steps=state.env_steps + n)
            if int(state.env_steps) >= self.learning_starts:
                state = state._replace(pending=state.pending + n)
                if int(state.pending) >= self.updates_per_call:
                    ag, metrics = self._update(state.agent, state.buffer, self.updates_per_call)
                    state = state._replace(agent=ag,
                                           pending=state.pending - self.updates_per_call)
        return state, metrics

    def evaluate(self, state: GymState, episodes: int, seed: int) -> float:
        """Mean return of the deterministic policy ``tanh(mu)`` over ``episodes`` episodes."""
        import gymnasium as gym

        env = gym.make(self.env_id)
        total = 0.0
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            done = False
            while not done:
                a = np.asarray(self._act(state.agent.policy, jnp.asarray(obs, jnp.float32),
                                         None, True))
                obs, r, term, trunc, _ = env.step(self.scale(a))
                check_finite(f"GymLoop({self.env_id}) eval", observation=obs, reward=r)
                total += float(r)
                done = term or trunc
        env.close()
        return total / episodes

    def close(self) -> None:
        if self._envs is not None:
            self._envs.close()
            self._envs = None
