"""Training loops: fully on-device for the JAX Pendulum, and over Gymnasium vector envs.

:func:`make_train` builds an :class:`OnDeviceTrainer` (the JAX Pendulum, or MuJoCo on MJX:
:mod:`tecrl.envs`) whose ``warmup``, ``train`` and
``evaluate`` are single jitted functions (``lax.scan`` over environment steps, one gradient
step per environment step, UTD 1) that are ``vmap``-ed over a leading seed axis, so several
seeds train in parallel on one CPU. The caller drives chunks of environment steps from
Python, logging and checkpointing the whole :class:`RunState` between chunks: the state holds
networks, targets, optimizer states, alpha, the ``sigma_bar`` EMA, the replay buffer, the
environment states, the RNG keys and the step counters, so a resumed run repeats an
uninterrupted one bit for bit.

:class:`GymLoop` runs the same agent on ``gymnasium.vector`` environments (MuJoCo v5 tasks,
``Pendulum-v1``). Each environment step costs one jitted call (two when it adds to the
buffer) and one device-to-host copy of the actions; transitions are staged on the host, added
to the device buffer every ``K`` steps, and the call that runs the gradient steps
(``Agent.update``) also picks the next actions. Episodes are
reset in the same step they end (``AutoresetMode.SAME_STEP``), so every environment step
stores a transition, the last one of an episode with its true final observation. Its
:class:`GymState` includes a snapshot of every environment (physics state, RNG, time-limit
counter, current observation), so a resumed run continues the same episodes bit for bit
(MuJoCo and classic-control envs; see :meth:`GymLoop.snapshot`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tecrl.agent import Agent, AgentState
from tecrl.envs import JaxEnv, pendulum_env
from tecrl.replay import ReplayBuffer, Transition, replay_add, replay_init, replay_sample

__all__ = [
    "EnvSnapshot",
    "GymLoop",
    "GymState",
    "OnDeviceTrainer",
    "RunState",
    "check_finite",
    "make_train",
]


class RunState(NamedTuple):
    """The complete state of one seed's on-device run."""

    agent: AgentState
    buffer: ReplayBuffer
    env: Any  # the JaxEnv's state
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


def _positive_int(who: str, **values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{who}: {name} must be a positive int, got {v!r}")


class _Stats(NamedTuple):
    episodes: jax.Array
    return_sum: jax.Array
    reward_sum: jax.Array


class OnDeviceTrainer:
    """SAC / DSAC-T / DSAC-E on a :class:`~tecrl.envs.JaxEnv`, every step on the device.

    Args:
      agent: the :class:`~tecrl.agent.Agent` (its sizes must match the env's).
      buffer_size: replay capacity (>= ``learning_starts``).
      learning_starts: uniform-random steps before learning (>= ``batch_size``).
      eval_episodes: deterministic-policy episodes per evaluation.
      env: the environment (default: the JAX Pendulum, :func:`~tecrl.envs.pendulum_env`;
        MuJoCo on MJX: :func:`~tecrl.envs.mjx_env`).

    All methods take and return states with a leading seed axis.
    """

    def __init__(self, agent: Agent, *, buffer_size: int, learning_starts: int,
                 eval_episodes: int = 5, env: JaxEnv | None = None):
        env = pendulum_env() if env is None else env
        if not isinstance(env, JaxEnv):
            raise TypeError(f"OnDeviceTrainer: env must be a tecrl.envs.JaxEnv, got "
                            f"{type(env).__name__}")
        if (agent.obs_dim, agent.act_dim) != (env.obs_dim, env.act_dim):
            raise ValueError(f"OnDeviceTrainer: the agent must have obs_dim={env.obs_dim}, "
                             f"act_dim={env.act_dim} for {env.name}, got {agent.obs_dim}, "
                             f"{agent.act_dim}")
        bs = agent.config.batch_size
        _positive_int("OnDeviceTrainer", buffer_size=buffer_size,
                      learning_starts=learning_starts, eval_episodes=eval_episodes)
        if learning_starts < bs:
            raise ValueError(f"OnDeviceTrainer: learning_starts ({learning_starts}) must be >= "
                             f"batch_size ({bs}): a batch cannot be larger than the filled buffer")
        if buffer_size < learning_starts:
            raise ValueError(f"OnDeviceTrainer: buffer_size ({buffer_size}) must be >= "
                             f"learning_starts ({learning_starts})")
        self.agent = agent
        self.buffer_size, self.learning_starts = buffer_size, learning_starts
        self.eval_episodes = eval_episodes
        self.env = env
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
        env, obs = self.env.reset(ke)
        buffer = replay_init(self.buffer_size, self.env.obs_dim, self.env.act_dim)
        return RunState(self.agent.init(ka), buffer, env, obs, jnp.zeros(()),
                        jnp.zeros((), jnp.int32), key)

    def _env_step(self, rs: RunState, action: jax.Array) -> tuple[RunState, tuple]:
        """Steps the env with ``action`` in ``[-1, 1]``, stores the transition (its true next
        observation, ``terminated`` as the terminal flag), auto-resets."""
        key, kr = jax.random.split(rs.key)
        env, next_obs, reward, term, trunc = self.env.step(rs.env, action)
        tr = Transition(rs.obs[None], action[None], reward[None], next_obs[None],
                        term.astype(jnp.float32)[None])
        buffer = replay_add(rs.buffer, tr)
        done = term | trunc
        reset_env, reset_obs = self.env.reset(kr)
        env = jax.tree.map(lambda a, b: jnp.where(done, a, b), reset_env, env)
        obs = jnp.where(done, reset_obs, next_obs)
        ep_ret = rs.ep_return + reward
        rs = rs._replace(buffer=buffer, env=env, obs=obs, ep_return=jnp.where(done, 0.0, ep_ret),
                         env_steps=rs.env_steps + 1, key=key)
        return rs, (done, ep_ret, reward)

    def _warmup(self, rs: RunState) -> RunState:
        def body(rs, _):
            key, k = jax.random.split(rs.key)
            a = jax.random.uniform(k, (self.env.act_dim,), minval=-1.0, maxval=1.0)
            rs, _ = self._env_step(rs._replace(key=key), a)
            return rs, None

        return jax.lax.scan(body, rs, None, length=self.learning_starts)[0]

    def _train(self, rs: RunState, num_steps: int) -> tuple[RunState, dict]:
        agent, bs = self.agent, self.agent.config.batch_size

        def act_step_sample(agent_state, carry, key):
            rs, stats = carry
            k_rs, k_act = jax.random.split(rs.key)
            a = agent.act(agent_state.policy, rs.obs, k_act)
            rs, (done, ep_ret, reward) = self._env_step(rs._replace(key=k_rs), a)
            stats = _Stats(stats.episodes + done, stats.return_sum + jnp.where(done, ep_ret, 0.0),
                           stats.reward_sum + reward)
            return (rs, stats), replay_sample(rs.buffer, key, bs)

        def block(carry, _):
            rs, stats = carry
            ag, (rs, stats), m = agent.update_block(rs.agent, (rs, stats), act_step_sample)
            return (rs._replace(agent=ag), stats), m

        zero = jnp.zeros((), jnp.float32)
        stats = _Stats(jnp.zeros((), jnp.int32), zero, zero)
        (rs, stats), m = jax.lax.scan(block, (rs, stats), None,
                                      length=num_steps // agent.config.policy_delay)
        out = {k: jnp.mean(v) for k, v in m._asdict().items()}
        out["train_return"] = jnp.where(stats.episodes > 0,
                                        stats.return_sum / jnp.maximum(stats.episodes, 1), jnp.nan)
        out["episodes"] = stats.episodes
        out["reward_sum"] = stats.reward_sum  # non-finite => the env produced NaN/inf
        return rs, out

    def _evaluate(self, rs: RunState, key: jax.Array) -> jax.Array:
        """Mean undiscounted return of the deterministic policy over ``eval_episodes`` (an
        episode's rewards stop counting at its termination)."""
        policy, env_def = rs.agent.policy, self.env

        def episode(k):
            env, obs = env_def.reset(k)

            def step(carry, _):
                env, obs, alive = carry
                a = self.agent.act(policy, obs, None, deterministic=True)
                env, obs, r, term, _ = env_def.step(env, a)
                return (env, obs, alive & ~term), jnp.where(alive, r, 0.0)

            return jnp.sum(jax.lax.scan(step, (env, obs, jnp.ones((), bool)), None,
                                        length=env_def.max_episode_steps)[1])

        return jnp.mean(jax.vmap(episode)(jax.random.split(key, self.eval_episodes)))

    def _probe_targets(self, rs: RunState, probe: Transition, key: jax.Array) -> jax.Array:
        return self.agent.reward_targets(rs.agent, probe, key)

    def check_steps(self, num_steps: int) -> int:
        """Validates a chunk length: a positive multiple of ``policy_delay``."""
        d = self.agent.config.policy_delay
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0 \
                or num_steps % d:
            raise ValueError(f"OnDeviceTrainer: num_steps must be a positive multiple of "
                             f"policy_delay={d}, got {num_steps!r}")
        return num_steps


def make_train(agent_config, *, buffer_size: int, learning_starts: int,
               eval_episodes: int = 5, env: JaxEnv | None = None) -> OnDeviceTrainer:
    """An :class:`OnDeviceTrainer` from an agent config (or mapping); ``env`` defaults to the
    JAX Pendulum (:func:`~tecrl.envs.pendulum_env`).

    Raises:
      ValueError: for an unknown agent config key or a bad value.
    """
    env = pendulum_env() if env is None else env
    if not isinstance(env, JaxEnv):
        raise TypeError(f"make_train: env must be a tecrl.envs.JaxEnv, got {type(env).__name__}")
    return OnDeviceTrainer(Agent(agent_config, env.obs_dim, env.act_dim),
                           buffer_size=buffer_size, learning_starts=learning_starts,
                           eval_episodes=eval_episodes, env=env)


# -- Gymnasium ------------------------------------------------------------------------------


class EnvSnapshot(NamedTuple):
    """Host-side state of the vector env between chunks (numpy arrays, checkpointable).

    Attributes:
      started: whether the envs were reset yet (bool scalar).
      obs: current observations ``[N, obs_dim]``.
      action: the actions already chosen for ``obs`` ``[N, act_dim]`` (valid when started).
      ep_return: return of each episode in progress ``[N]``.
      physics: each env's physics state ``[N, P]`` (MuJoCo ``mjSTATE_INTEGRATION``, or a
        classic-control ``state``); ``P = 0`` if the env cannot be snapshotted.
      rng: each env's ``np_random`` (PCG64) state as 6 uint64 ``[N, 6]``.
      elapsed: each env's time-limit step counter ``[N]``.
    """

    started: np.ndarray
    obs: np.ndarray
    action: np.ndarray
    ep_return: np.ndarray
    physics: np.ndarray
    rng: np.ndarray
    elapsed: np.ndarray


class GymState(NamedTuple):
    """Checkpointable state of a :class:`GymLoop`: agent, buffer, key, counters, env snapshot."""

    agent: AgentState
    buffer: ReplayBuffer
    key: jax.Array
    env_steps: np.ndarray  # int64 transitions collected (all envs)
    env: EnvSnapshot


_MASK64 = (1 << 64) - 1


def _rng_get(gen: np.random.Generator) -> np.ndarray:
    st = gen.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise NotImplementedError(f"cannot snapshot a {st['bit_generator']} generator")
    s, inc = st["state"]["state"], st["state"]["inc"]
    return np.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64, st["has_uint32"],
                     st["uinteger"]], np.uint64)


def _rng_set(gen: np.random.Generator, x: np.ndarray) -> None:
    x = [int(v) for v in x]
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (x[0] << 64) | x[1], "inc": (x[2] << 64) | x[3]},
        "has_uint32": x[4], "uinteger": x[5]}


def _time_limit(env):
    while env is not None:
        if hasattr(env, "_elapsed_steps"):
            return env
        env = getattr(env, "env", None)
    return None


def _physics_get(env) -> np.ndarray:
    u = env.unwrapped
    if hasattr(u, "model") and hasattr(u, "data"):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        out = np.empty(mujoco.mj_stateSize(u.model, spec), np.float64)
        mujoco.mj_getState(u.model, u.data, out, spec)
        return out
    if getattr(u, "state", None) is not None:
        return np.asarray(u.state, np.float64).ravel()
    raise NotImplementedError(f"cannot snapshot the physics of {type(u).__name__}")


def _physics_set(env, x: np.ndarray) -> None:
    u = env.unwrapped
    if hasattr(u, "model") and hasattr(u, "data"):
        import mujoco

        mujoco.mj_setState(u.model, u.data, np.asarray(x, np.float64),
                           mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(u.model, u.data)
        return
    u.state = np.asarray(x, np.float64).reshape(np.shape(u.state)).copy()


class GymLoop:
    """The agent on ``gymnasium.vector`` environments (MuJoCo v5 tasks, ``Pendulum-v1``).

    Actions are sampled by the jitted policy in ``[-1, 1]^A`` and rescaled to the Box bounds.
    Every ``K = policy_delay / gcd(num_envs, policy_delay)`` vector steps the ``K * num_envs``
    staged transitions are added to the device buffer and, once ``learning_starts``
    transitions are in, ``Agent.update`` runs ``K * num_envs`` gradient steps (UTD 1) in a
    jitted call that also picks the next actions. Before that, actions are uniform.

    Args:
      agent_config: an :class:`~tecrl.agent.AgentConfig` or mapping.
      env_id: a registered Gymnasium id with a ``Box`` action space.
      num_envs: parallel environments (``SyncVectorEnv``).
      buffer_size: replay capacity.
      learning_starts: uniform-random transitions before learning (>= ``batch_size``).
      max_episode_steps: overrides the env's time limit (``None``: the registered one).

    Raises:
      ValueError: for an unregistered ``env_id``, non-vector observations, bad sizes or an
        unknown agent config key.
      TypeError: for a non-``Box`` (e.g. discrete) action space.
    """

    def __init__(self, agent_config, env_id: str, *, num_envs: int = 1, buffer_size: int,
                 learning_starts: int, max_episode_steps: int | None = None):
        import gymnasium as gym

        try:
            gym.spec(env_id)
        except gym.error.Error as e:
            raise ValueError(f"GymLoop: env_id {env_id!r} is not a registered Gymnasium "
                             f"environment ({type(e).__name__}: {e})") from None
        _positive_int("GymLoop", num_envs=num_envs, buffer_size=buffer_size,
                      learning_starts=learning_starts)
        if max_episode_steps is not None:
            _positive_int("GymLoop", max_episode_steps=max_episode_steps)
        probe = gym.make(env_id)
        act_space, obs_space = probe.action_space, probe.observation_space
        probe.close()
        if not isinstance(act_space, gym.spaces.Box):
            raise TypeError(f"GymLoop: {env_id} has action space {act_space}; these agents need "
                            f"a continuous gymnasium.spaces.Box")
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"GymLoop: {env_id} must have 1-D Box observations, got {obs_space}")
        self.agent = agent = Agent(agent_config, int(obs_space.shape[0]),
                                   int(act_space.shape[0]))
        if learning_starts < agent.config.batch_size:
            raise ValueError(f"GymLoop: learning_starts ({learning_starts}) must be >= "
                             f"batch_size ({agent.config.batch_size}): a batch cannot be "
                             f"larger than the filled buffer")
        self.env_id, self.num_envs = env_id, num_envs
        self.max_episode_steps = max_episode_steps
        self.buffer_size, self.learning_starts = buffer_size, learning_starts
        self.low = np.asarray(act_space.low, np.float32)
        self.high = np.asarray(act_space.high, np.float32)
        d = agent.config.policy_delay
        self.steps_per_call = d // math.gcd(num_envs, d)  # K vector steps per buffer add
        self.rows_per_call = self.steps_per_call * num_envs  # = gradient steps per call
        self.finished_returns: list[float] = []
        self._envs = None
        n, a_dim, rows = num_envs, agent.act_dim, self.rows_per_call

        def act(policy, obs, key):
            key, k = jax.random.split(key)
            return agent.act(policy, obs, k), key

        def explore(key):
            key, k = jax.random.split(key)
            return jax.random.uniform(k, (n, a_dim), minval=-1.0, maxval=1.0), key

        def add_explore(buffer, rows_, key):
            return (replay_add(buffer, rows_), *explore(key))

        def train_act(agent_state, buffer, obs, key):
            agent_state, metrics = agent.update(agent_state, buffer, rows)
            return (agent_state, metrics, *act(agent_state.policy, obs, key))

        self._act = jax.jit(act)
        self._explore = jax.jit(explore)
        self._add_explore = jax.jit(add_explore, donate_argnums=0)
        # The add is its own call: fused with the update, XLA copied the whole (donated)
        # buffer every call (3 ms per step at 1M transitions on CPU).
        self._add = jax.jit(replay_add, donate_argnums=0)
        self._train_act = jax.jit(train_act)
        self._eval_act = jax.jit(lambda policy, obs: agent.act(policy, obs, None, True))

    def scale(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` -> ``[low, high]``."""
        return self.low + (np.asarray(action) + 1.0) * 0.5 * (self.high - self.low)

    def init(self, key: jax.Array) -> GymState:
        """A fresh state (untrained agent, empty buffer, envs not yet reset)."""
        _typed_key(key, "GymLoop.init")
        ka, key = jax.random.split(key)
        n, o, a = self.num_envs, self.agent.obs_dim, self.agent.act_dim
        p = self._physics_size()
        env = EnvSnapshot(np.zeros((), bool), np.zeros((n, o), np.float32),
                          np.zeros((n, a), np.float32), np.zeros(n, np.float64),
                          np.zeros((n, p), np.float64), np.zeros((n, 6), np.uint64),
                          np.zeros(n, np.int64))
        return GymState(self.agent.init(ka),
                        replay_init(self.buffer_size, self.agent.obs_dim, self.agent.act_dim),
                        key, np.zeros((), np.int64), env)

    # -- environments --------------------------------------------------------------------
    def _make(self):
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        kwargs = {} if self.max_episode_steps is None else {
            "max_episode_steps": self.max_episode_steps}
        return gym.make_vec(self.env_id, num_envs=self.num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs)

    def _physics_size(self) -> int:
        envs = self._make()
        envs.reset(seed=0)
        try:
            return int(_physics_get(envs.envs[0]).size)
        except NotImplementedError:
            return 0
        finally:
            envs.close()

    @property
    def can_snapshot(self) -> bool:
        """Whether the env's state can be saved (MuJoCo or a classic-control ``state``);
        otherwise a resumed run starts fresh episodes."""
        return self._physics_size() > 0

    def snapshot(self, obs: np.ndarray, action: np.ndarray, ep_return: np.ndarray) -> EnvSnapshot:
        """The current envs' state (physics, RNG, time-limit counters) and the host arrays."""
        envs = self._envs.envs
        n = len(envs)
        try:
            physics = np.stack([_physics_get(e) for e in envs])
            rng = np.stack([_rng_get(e.unwrapped.np_random) for e in envs])
        except NotImplementedError:
            physics, rng = np.zeros((n, 0)), np.zeros((n, 6), np.uint64)
        elapsed = np.array([getattr(_time_limit(e), "_elapsed_steps", 0) or 0 for e in envs],
                           np.int64)
        return EnvSnapshot(np.ones((), bool), obs.astype(np.float32), action.astype(np.float32),
                           ep_return.astype(np.float64), physics, rng, elapsed)

    def _restore(self, snap: EnvSnapshot, seed: int) -> None:
        if self._envs is None:
            self._envs = self._make()
            self._envs.reset(seed=seed)  # creates the envs and arms the order checks
        if snap.physics.shape[1] == 0:  # cannot snapshot: fresh episodes
            obs, _ = self._envs.reset(seed=seed)
            self._obs, self._ep_ret = np.asarray(obs, np.float32), np.zeros(self.num_envs)
            self._action = None
            return
        for e, phys, rng, el in zip(self._envs.envs, snap.physics, snap.rng, snap.elapsed,
                                    strict=True):
            _physics_set(e, phys)
            _rng_set(e.unwrapped.np_random, rng)
            tl = _time_limit(e)
            if tl is not None:
                tl._elapsed_steps = int(el)
        self._obs, self._ep_ret = snap.obs.copy(), snap.ep_return.copy()
        self._action = snap.action.copy()

    def _start(self, state: GymState, seed: int) -> None:
        if bool(state.env.started):
            if getattr(self, "_live", None) is not state.env:
                self._restore(state.env, seed)
            return
        if self._envs is None:
            self._envs = self._make()
        obs, _ = self._envs.reset(seed=seed)
        check_finite(f"GymLoop({self.env_id}) reset", observation=obs)
        self._obs = np.asarray(obs, np.float32)
        self._ep_ret = np.zeros(self.num_envs)
        self._action = None

    # -- the loop ------------------------------------------------------------------------
    def collect_and_train(self, state: GymState, num_vector_steps: int,
                          seed: int = 0) -> tuple[GymState, dict]:
        """Runs ``num_vector_steps`` steps of all envs with learning interleaved.

        Args:
          state: from :meth:`init` or a previous call (or a restored checkpoint).
          num_vector_steps: a positive multiple of ``steps_per_call``.
          seed: seeds the envs' first reset (ignored once they have started).

        Returns:
          ``(state, metrics)``: the last update's metrics as floats (empty before learning)
          plus ``finished_returns`` (episodes finished in this call).

        Raises:
          ValueError: for a bad ``num_vector_steps``.
          FloatingPointError: if an observation or reward is NaN/inf (nothing of that step
            is stored; the caller's last checkpoint stays valid).
        """
        k = self.steps_per_call
        if isinstance(num_vector_steps, bool) or not isinstance(num_vector_steps, int) \
                or num_vector_steps <= 0 or num_vector_steps % k:
            raise ValueError(f"GymLoop.collect_and_train: num_vector_steps must be a positive "
                             f"multiple of {k} (policy_delay / gcd(num_envs, policy_delay)), "
                             f"got {num_vector_steps!r}")
        self._start(state, seed)
        n, rows = self.num_envs, self.rows_per_call
        agent_state, buffer, key = state.agent, state.buffer, state.key
        env_steps = int(state.env_steps)
        staged = Transition(np.zeros((rows, self.agent.obs_dim), np.float32),
                            np.zeros((rows, self.agent.act_dim), np.float32),
                            np.zeros(rows, np.float32),
                            np.zeros((rows, self.agent.obs_dim), np.float32),
                            np.zeros(rows, np.float32))
        obs, ep_ret, action = self._obs, self._ep_ret, self._action
        if action is None:
            if env_steps < self.learning_starts:
                a_dev, key = self._explore(key)
            else:
                a_dev, key = self._act(agent_state.policy, jnp.asarray(obs), key)
            action = np.asarray(a_dev)
        metrics, finished = None, []
        where = f"GymLoop({self.env_id}) step"
        for t in range(num_vector_steps):
            next_obs, reward, term, trunc, info = self._envs.step(self.scale(action))
            check_finite(where, observation=next_obs, reward=reward)
            done = term | trunc
            true_next = np.asarray(next_obs, np.float32)
            if done.any():  # SAME_STEP autoreset: next_obs is the reset obs for those envs
                true_next = true_next.copy()
                for i in np.flatnonzero(done):
                    true_next[i] = info["final_obs"][i]
                check_finite(where, final_observation=true_next)
            i0 = (t % k) * n
            staged.obs[i0:i0 + n] = obs
            staged.action[i0:i0 + n] = action
            staged.reward[i0:i0 + n] = reward
            staged.next_obs[i0:i0 + n] = true_next
            staged.terminated[i0:i0 + n] = term
            ep_ret = ep_ret + reward
            finished += [float(x) for x in ep_ret[done]]
            ep_ret = np.where(done, 0.0, ep_ret)
            obs = np.asarray(next_obs, np.float32)
            env_steps += n
            learning = env_steps >= self.learning_starts
            if (t + 1) % k == 0:
                if learning:
                    buffer = self._add(buffer, staged)
                    agent_state, metrics, a_dev, key = self._train_act(agent_state, buffer, obs,
                                                                       key)
                else:
                    buffer, a_dev, key = self._add_explore(buffer, staged, key)
            elif learning:
                a_dev, key = self._act(agent_state.policy, obs, key)
            else:
                a_dev, key = self._explore(key)
            action = np.asarray(a_dev)
        self._obs, self._ep_ret, self._action = obs, ep_ret, action
        self.finished_returns += finished
        snap = self.snapshot(obs, action, ep_ret)
        self._live = snap
        state = GymState(agent_state, buffer, key, np.asarray(env_steps, np.int64), snap)
        out = {} if metrics is None else {k_: float(v) for k_, v in metrics._asdict().items()}
        out["finished_returns"] = finished
        return state, out

    def evaluate(self, state: GymState, episodes: int, seed: int) -> float:
        """Mean return of the deterministic policy ``tanh(mu)`` over ``episodes`` episodes."""
        import gymnasium as gym

        _positive_int("GymLoop.evaluate", episodes=episodes)
        kwargs = {} if self.max_episode_steps is None else {
            "max_episode_steps": self.max_episode_steps}
        env = gym.make(self.env_id, **kwargs)
        total = 0.0
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            done = False
            while not done:
                a = np.asarray(self._eval_act(state.agent.policy, jnp.asarray(obs, jnp.float32)))
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
            self._live = None
