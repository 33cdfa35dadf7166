"""Fully jitted SAC, DSAC-T and DSAC-E agents: one ``update`` runs many gradient steps.

An :class:`Agent` is built from an :class:`AgentConfig` and the observation/action sizes; it
selects the algorithm's pure functions (:mod:`tecrl.algorithms`) once. Its state
(:class:`~tecrl.algorithms.AgentState`) is a pytree of NNX parameter states, optax states and
scalars, so ``init``, ``update`` and ``act`` can be ``jit``-ed and ``vmap``-ed over seeds.

The update schedule lives in one place, :meth:`Agent.update_block`: ``policy_delay`` critic
steps (each on a fresh batch), then one actor step (policy, temperature, Polyak targets) on
the last batch. :meth:`Agent.update` scans it over a replay buffer; the on-device Pendulum
trainer runs the same block with an environment step before each critic step. With
``policy_delay = 2`` (DSAC-T, DSAC-E) the policy, alpha and targets move every 2 critic
steps. The DSAC-T code computes the policy gradient before the critic step of the same
iteration; we take it after (one critic step fresher).

References:
  Zhan et al., arXiv 2511.11592 (TECRL / DSAC-E); Duan et al., arXiv 2310.05858 (DSAC-T);
  Haarnoja et al., arXiv 1812.05905 (SAC).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tecrl import losses
from tecrl.algorithms import ALGORITHMS, ActorMetrics, AgentState, CriticMetrics, Metrics, Networks
from tecrl.networks import ACTIVATIONS, Critic, Policy, squashed_gaussian_sample
from tecrl.replay import ReplayBuffer, Transition, replay_sample

__all__ = ["ALGOS", "Agent", "AgentConfig", "AgentState", "Metrics"]

ALGOS = tuple(ALGORITHMS)


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters (defaults: the DSAC-T authors' public code, MuJoCo scale).

    Attributes:
      algo: ``sac``, ``dsac_t`` or ``dsac_e``.
      hidden: hidden widths of every MLP (DSAC-T: 256, 256, 256).
      activation: ``gelu`` (DSAC-T) or ``relu``/``tanh``/``silu``.
      actor_lr, critic_lr, alpha_lr: Adam learning rates (DSAC-T: 1e-4, 1e-4, 3e-4).
      gamma: discount.
      tau: Polyak rate of the target networks.
      tau_e: Polyak rate of the entropy critic's target (DSAC-E); ``None`` (default) uses
        ``tau``. ``Q_e`` follows a change of the policy's entropy only as fast as its target
        moves (docs/tecrl.md measures the lag); a larger ``tau_e`` shortens it.
      tau_b: rate of the ``sigma_bar`` EMA (DSAC-T code: equal to ``tau``).
      batch_size: transitions per gradient step.
      policy_delay: critic steps per policy/alpha/target step (DSAC-T: 2, SAC: 1).
      initial_alpha: starting temperature (> 0; DSAC-T code: ``log alpha = 1``, i.e. e).
      target_entropy: per-step entropy target; ``None`` means ``-|A|``.
      critic_form: DSAC-T critic loss form, one of :data:`tecrl.losses.CRITIC_FORMS`
        (``dsac_v2``: the authors' code, the default).
      huber_delta: ``delta`` of the Huber terms (DSAC-T code: 50).
      td_bound: ``b`` of the bounded target (3).
      grad_eps: ``epsilon`` of the variance-based weights (0.1).
      rho: DSAC-E budget scale: ``H_budget = rho * target_entropy`` (1; the paper uses 20
        for Humanoid and Walker2d).
    """

    algo: str = "dsac_e"
    hidden: tuple[int, ...] = (256, 256, 256)
    activation: str = "gelu"
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    tau_b: float = 0.005
    tau_e: float | None = None
    batch_size: int = 256
    policy_delay: int = 2
    initial_alpha: float = math.e
    target_entropy: float | None = None
    critic_form: str = "dsac_v2"
    huber_delta: float = 50.0
    td_bound: float = 3.0
    grad_eps: float = 0.1
    rho: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        problems = []
        if self.algo not in ALGOS:
            problems.append(f"algo must be one of {list(ALGOS)}, got {self.algo!r}")
        if not self.hidden or min(self.hidden) <= 0:
            problems.append(f"hidden must be positive widths, got {self.hidden!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {sorted(ACTIVATIONS)}, "
                            f"got {self.activation!r}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "initial_alpha", "huber_delta",
                     "td_bound", "grad_eps", "rho"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.gamma < 1:
            problems.append(f"gamma must be in [0, 1), got {self.gamma!r}")
        for name in ("tau", "tau_b", "tau_e"):
            if name == "tau_e" and self.tau_e is None:
                continue
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        for name in ("batch_size", "policy_delay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                problems.append(f"{name} must be a positive int, got {v!r}")
        if self.critic_form not in losses.CRITIC_FORMS:
            problems.append(f"critic_form must be one of {list(losses.CRITIC_FORMS)}, "
                            f"got {self.critic_form!r}")
        if problems:
            raise ValueError("AgentConfig: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> AgentConfig:
        """Builds a config from a dict (or ``ConfigDict``).

        Raises:
          ValueError: for a key the agent does not know, listing the keys it knows.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise ValueError(
                f"AgentConfig: unknown key(s) {unknown}; the agent knows {sorted(known)}")
        return cls(**{k: (tuple(v) if k == "hidden" else v) for k, v in mapping.items()})


class Agent:
    """A SAC / DSAC-T / DSAC-E agent: vector observations, actions in ``[-1, 1]^act_dim``.

    Args:
      config: an :class:`AgentConfig` (or a mapping, checked by
        :meth:`AgentConfig.from_mapping`).
      obs_dim: observation size (> 0).
      act_dim: action size (> 0).

    Raises:
      ValueError: for a bad config, an unknown config key or non-positive sizes.
    """

    def __init__(self, config: AgentConfig | Mapping[str, Any], obs_dim: int, act_dim: int):
        if not isinstance(config, AgentConfig):
            config = AgentConfig.from_mapping(config)
        for name, v in (("obs_dim", obs_dim), ("act_dim", act_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"Agent: {name} must be a positive int, got {v!r}")
        self.config = c = config
        self.algorithm = ALGORITHMS[c.algo]
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.target_entropy = float(-act_dim if c.target_entropy is None else c.target_entropy)
        self.entropy_budget = losses.trajectory_entropy_budget(self.target_entropy, c.rho)
        # what the temperature's constraint compares against
        self.temperature_target = (self.entropy_budget if self.algorithm.uses_entropy_critic
                                   else self.target_entropy)
        rngs = nnx.Rngs(0)
        policy_def = nnx.split(Policy(obs_dim, act_dim, c.hidden, c.activation, rngs=rngs))[0]
        critic_def = nnx.split(Critic(obs_dim, act_dim, c.hidden, c.activation, rngs=rngs))[0]

        def policy_apply(params, obs):
            return nnx.merge(policy_def, params)(obs)

        def critic_apply(params, obs, act):
            return nnx.merge(critic_def, params)(obs, act)

        def sample(params, obs, key):
            mu, log_std = policy_apply(params, obs)
            return squashed_gaussian_sample(key, mu, log_std)

        self.nets = Networks(policy_apply, critic_apply, sample, optax.adam(c.actor_lr),
                             optax.adam(c.critic_lr), optax.adam(c.alpha_lr))

    # -- networks ----------------------------------------------------------------------
    def policy_apply(self, params, obs):
        """``(mu, log_std)`` of the policy at ``obs [..., obs_dim]``."""
        return self.nets.policy(params, obs)

    def critic_apply(self, params, obs, act):
        """``(mean, std)`` of one critic."""
        return self.nets.critic(params, obs, act)

    def twin_apply(self, params, obs, act):
        """``(mean [2, B], std [2, B])`` of the twin critics."""
        return self.nets.twin(params, obs, act)

    def sample(self, params, obs, key):
        """Reparameterised ``a ~ pi(.|obs)`` in ``[-1, 1]^A`` and its ``log pi``."""
        return self.nets.sample(params, obs, key)

    def act(self, params, obs, key, deterministic: bool = False):
        """Action in ``[-1, 1]^A``; ``deterministic`` gives ``tanh(mu)`` (evaluation)."""
        if deterministic:
            return jnp.tanh(self.policy_apply(params, obs)[0])
        return self.sample(params, obs, key)[0]

    # -- state -------------------------------------------------------------------------
    def init(self, key: jax.Array) -> AgentState:
        """A fresh state: random networks, targets equal to them, zero optimizer states.

        Only the networks the algorithm uses are created; the other fields are ``None``.
        """
        if not (isinstance(key, jax.Array)
                and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
            raise TypeError(f"Agent.init: key must be a jax.random.key, got {type(key).__name__}")
        c, alg, nets = self.config, self.algorithm, self.nets
        kp, kc, ke, key = jax.random.split(key, 4)
        policy = nnx.split(Policy(self.obs_dim, self.act_dim, c.hidden, c.activation,
                                  rngs=nnx.Rngs(kp)))[1]

        def one_critic(k):
            return nnx.split(Critic(self.obs_dim, self.act_dim, c.hidden, c.activation,
                                    rngs=nnx.Rngs(k)))[1]

        critic = jax.vmap(one_critic)(jax.random.split(kc, 2))
        log_alpha = jnp.log(jnp.float32(c.initial_alpha))
        state = AgentState(
            policy=policy, critic=critic, critic_target=critic,
            policy_opt=nets.policy_tx.init(policy), critic_opt=nets.critic_tx.init(critic),
            alpha_opt=nets.alpha_tx.init(log_alpha), log_alpha=log_alpha,
            critic_steps=jnp.zeros((), jnp.int32), actor_steps=jnp.zeros((), jnp.int32),
            key=key)
        if alg.uses_policy_target:
            state = state._replace(policy_target=policy)
        if alg.distributional:
            state = state._replace(std_ema=-jnp.ones((2,), jnp.float32))
        if alg.uses_entropy_critic:
            ent = one_critic(ke)
            state = state._replace(ent_critic=ent, ent_critic_target=ent,
                                   ent_opt=nets.critic_tx.init(ent))
        return state

    # -- one step of each kind ---------------------------------------------------------
    def critic_step(self, state: AgentState, batch: Transition) -> tuple[AgentState,
                                                                          CriticMetrics]:
        """One gradient step of the critic(s) on ``batch``."""
        key, k = jax.random.split(state.key)
        return self.algorithm.critic_step(self.nets, self.config, state._replace(key=key),
                                          batch, k)

    def actor_step(self, state: AgentState, batch: Transition) -> tuple[AgentState,
                                                                         ActorMetrics]:
        """Policy and temperature step on ``batch``, then Polyak updates of the targets."""
        key, k = jax.random.split(state.key)
        return self.algorithm.actor_step(self.nets, self.config, state._replace(key=key), batch,
                                         k, entropy_target=self.temperature_target)

    def reward_targets(self, state: AgentState, batch: Transition, key: jax.Array) -> jax.Array:
        """The (reward) critic's mean TD targets ``y [B]`` on ``batch`` (SAC: the soft target;
        DSAC-T: with ``-alpha log pi'``; DSAC-E: without entropy); a fixed ``key`` draws the
        same next-action noise each time (probes of target drift)."""
        return self.algorithm.reward_target(self.nets, self.config, state, batch, key)

    # -- the schedule ------------------------------------------------------------------
    def update_block(self, state: AgentState, carry: Any,
                     next_batch: Callable[[AgentState, Any, jax.Array], tuple[Any, Transition]]
                     ) -> tuple[AgentState, Any, Metrics]:
        """``policy_delay`` critic steps, each on ``carry, batch = next_batch(state, carry,
        key)``, then one actor step on the last batch.

        This is the one place the critic/actor schedule is written: :meth:`update` passes a
        replay sampler as ``next_batch``, the on-device trainer an environment step followed
        by a sample.

        Returns:
          ``(state, carry, metrics)``: critic metrics averaged over the block, actor metrics.
        """
        critic_metrics = []
        batch = None
        for _ in range(self.config.policy_delay):
            key, k = jax.random.split(state.key)
            carry, batch = next_batch(state._replace(key=key), carry, k)
            state = state._replace(key=key)
            state, cm = self.critic_step(state, batch)
            critic_metrics.append(cm)
        state, am = self.actor_step(state, batch)
        cm = jax.tree.map(lambda *x: jnp.mean(jnp.stack(x)), *critic_metrics)
        return state, carry, Metrics(*cm, *am)

    def update(self, state: AgentState, buffer: ReplayBuffer,
               num_updates: int) -> tuple[AgentState, Metrics]:
        """``num_updates`` critic steps (and ``num_updates / policy_delay`` actor steps) in
        one ``lax.scan``; returns the state and the metrics averaged over the blocks.

        Raises:
          ValueError: if ``num_updates`` is not a positive multiple of ``policy_delay``, or
            (outside ``jit``) the buffer holds fewer than ``batch_size`` transitions.
        """
        d, bs = self.config.policy_delay, self.config.batch_size
        if isinstance(num_updates, bool) or not isinstance(num_updates, int) \
                or num_updates <= 0 or num_updates % d:
            raise ValueError(f"Agent.update: num_updates must be a positive multiple of "
                             f"policy_delay={d}, got {num_updates!r}")
        if not isinstance(buffer.size, jax.core.Tracer) and int(buffer.size) < bs:
            raise ValueError(f"Agent.update: batch_size {bs} is larger than the filled "
                             f"buffer ({int(buffer.size)} transitions)")

        def sample(_, buf, key):
            return buf, replay_sample(buf, key, bs)

        def block(st, _):
            st, _, m = self.update_block(st, buffer, sample)
            return st, m

        if num_updates == d:  # one block: no loop
            state, m = block(state, None)
            return state, m
        state, ms = jax.lax.scan(block, state, None, length=num_updates // d)
        return state, jax.tree.map(jnp.mean, ms)
