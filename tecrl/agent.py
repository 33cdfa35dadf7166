"""Fully jitted SAC, DSAC-T and DSAC-E agents: one ``update`` runs many gradient steps.

An :class:`Agent` is built from an :class:`AgentConfig` and the observation/action sizes. Its
state (:class:`AgentState`) is a pytree of NNX parameter states, optax states and scalars, so
``init``, ``update`` and ``act`` can be ``jit``-ed and ``vmap``-ed over seeds.

``update(state, buffer, num_updates)`` is a ``lax.scan`` over ``num_updates / policy_delay``
blocks; a block is ``policy_delay`` critic steps (each on a fresh batch) followed by one
actor step (policy, temperature and Polyak target updates) on the last critic batch. With
``policy_delay = 2`` (DSAC-T, DSAC-E) the policy, alpha and targets move every 2 critic steps;
SAC uses ``policy_delay = 1``. The DSAC-T code computes the policy gradient before the
critic step of the same iteration; we take it after (one critic step fresher).

Algorithms (``AgentConfig.algo``):

* ``sac``: twin critics, target critics, ``a' ~ pi`` (current policy),
  :func:`tecrl.losses.sac_critic_loss`, per-step entropy target ``-|A|``.
* ``dsac_t``: twin distributional critics ``(Q, sigma)``, target critics and a target
  policy ``pi'``; ``a' ~ pi'``; next value from the critic with the smaller mean; bounded
  target with each critic's ``sigma_bar`` EMA; :func:`tecrl.losses.dsac_t_critic_loss`.
* ``dsac_e``: the DSAC-T reward critic with no entropy in its target, a (single) entropy
  critic ``Q_e`` trained on :func:`tecrl.losses.entropy_critic_loss` with ``a' ~ pi'``, the
  actor loss :func:`tecrl.losses.dsac_e_actor_loss` and alpha as the Lagrange multiplier of
  ``E[-log pi(a|s) + Q_e(s, a)] >= rho * (-|A|) / (1 - gamma)``.

References:
  Zhan et al., arXiv 2511.11592 (TECRL / DSAC-E); Duan et al., arXiv 2310.05858 (DSAC-T);
  Haarnoja et al., arXiv 1812.05905 (SAC).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tecrl import losses as L
from tecrl.networks import ACTIVATIONS, Critic, Policy, squashed_gaussian_sample
from tecrl.replay import ReplayBuffer, Transition, replay_sample

__all__ = ["ALGOS", "Agent", "AgentConfig", "AgentState"]

ALGOS = ("sac", "dsac_t", "dsac_e")


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters (defaults: DSAC-T's public code, MuJoCo scale).

    Attributes:
      algo: ``sac``, ``dsac_t`` or ``dsac_e``.
      hidden: hidden widths of every MLP (DSAC-T: 256, 256, 256).
      activation: ``gelu`` (DSAC-T) or ``relu``/``tanh``/``silu``.
      actor_lr, critic_lr, alpha_lr: Adam learning rates (DSAC-T: 1e-4, 1e-4, 3e-4).
      gamma: discount.
      tau: Polyak rate of the target networks.
      tau_b: rate of the ``sigma_bar`` EMA (DSAC-T code: equal to ``tau``).
      batch_size: transitions per gradient step.
      policy_delay: critic steps per policy/alpha/target step (DSAC-T: 2, SAC: 1).
      initial_alpha: starting temperature (> 0).
      target_entropy: per-step entropy target; ``None`` means ``-|A|``.
      critic_form: DSAC-T critic loss form, ``nll`` or ``huber``.
      huber_delta: ``delta`` of the Huber form.
      td_bound: ``b`` of the bounded target (3).
      grad_eps: ``epsilon`` of the variance-based weights (0.1).
      rho: DSAC-E budget scale (1; the paper uses 20 for Humanoid and Walker2d).
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
    batch_size: int = 256
    policy_delay: int = 2
    initial_alpha: float = 1.0
    target_entropy: float | None = None
    critic_form: str = "nll"
    huber_delta: float = 1.0
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
        for name in ("tau", "tau_b"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        for name in ("batch_size", "policy_delay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                problems.append(f"{name} must be a positive int, got {v!r}")
        if self.critic_form not in L.CRITIC_FORMS:
            problems.append(f"critic_form must be one of {list(L.CRITIC_FORMS)}, "
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


class AgentState(NamedTuple):
    """Everything an agent carries between updates (a pytree; checkpointed whole)."""

    policy: Any
    policy_target: Any
    critic: Any  # the twin critics' params, stacked on a leading axis of 2
    critic_target: Any
    ent_critic: Any  # DSAC-E's entropy critic (present but unused for SAC and DSAC-T)
    ent_critic_target: Any
    policy_opt: Any
    critic_opt: Any
    ent_opt: Any
    alpha_opt: Any
    log_alpha: jax.Array
    std_ema: jax.Array  # [2]: sigma_bar of each critic; < 0 until the first step
    critic_steps: jax.Array
    actor_steps: jax.Array
    key: jax.Array


def _polyak(target, online, tau):
    return jax.tree.map(lambda t, o: (1 - tau) * t + tau * o, target, online)


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
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.target_entropy = float(-act_dim if c.target_entropy is None else c.target_entropy)
        self.entropy_budget = L.trajectory_entropy_budget(self.target_entropy, c.gamma, c.rho)
        rngs = nnx.Rngs(0)
        self._policy_def = nnx.split(Policy(obs_dim, act_dim, c.hidden, c.activation, rngs=rngs))[0]
        self._critic_def = nnx.split(Critic(obs_dim, act_dim, c.hidden, c.activation, rngs=rngs))[0]
        self.policy_tx = optax.adam(c.actor_lr)
        self.critic_tx = optax.adam(c.critic_lr)
        self.alpha_tx = optax.adam(c.alpha_lr)

    # -- networks ----------------------------------------------------------------------
    def policy_apply(self, params, obs):
        """``(mu, log_std)`` of the policy at ``obs [..., obs_dim]``."""
        return nnx.merge(self._policy_def, params)(obs)

    def critic_apply(self, params, obs, act):
        """``(mean, std)`` of one critic."""
        return nnx.merge(self._critic_def, params)(obs, act)

    def twin_apply(self, params, obs, act):
        """``(mean [2, B], std [2, B])`` of the twin critics."""
        return jax.vmap(self.critic_apply, in_axes=(0, None, None))(params, obs, act)

    def sample(self, params, obs, key):
        """Reparameterised ``a ~ pi(.|obs)`` in ``[-1, 1]^A`` and its ``log pi``."""
        mu, log_std = self.policy_apply(params, obs)
        return squashed_gaussian_sample(key, mu, log_std)

    def act(self, params, obs, key, deterministic: bool = False):
        """Action in ``[-1, 1]^A``; ``deterministic`` gives ``tanh(mu)`` (evaluation)."""
        mu, log_std = self.policy_apply(params, obs)
        if deterministic:
            return jnp.tanh(mu)
        return squashed_gaussian_sample(key, mu, log_std)[0]

    # -- state -------------------------------------------------------------------------
    def init(self, key: jax.Array) -> AgentState:
        """A fresh state: random networks, targets equal to them, zero optimizer states."""
        if not (isinstance(key, jax.Array)
                and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
            raise TypeError(f"Agent.init: key must be a jax.random.key, got {type(key).__name__}")
        c = self.config
        kp, kc, ke, key = jax.random.split(key, 4)
        policy = nnx.split(Policy(self.obs_dim, self.act_dim, c.hidden, c.activation,
                                  rngs=nnx.Rngs(kp)))[1]

        def one_critic(k):
            return nnx.split(Critic(self.obs_dim, self.act_dim, c.hidden, c.activation,
                                    rngs=nnx.Rngs(k)))[1]

        critic = jax.vmap(one_critic)(jax.random.split(kc, 2))
        ent = one_critic(ke)
        log_alpha = jnp.log(jnp.float32(c.initial_alpha))
        return AgentState(
            policy=policy, policy_target=policy, critic=critic, critic_target=critic,
            ent_critic=ent, ent_critic_target=ent,
            policy_opt=self.policy_tx.init(policy), critic_opt=self.critic_tx.init(critic),
            ent_opt=self.critic_tx.init(ent), alpha_opt=self.alpha_tx.init(log_alpha),
            log_alpha=log_alpha, std_ema=-jnp.ones((2,), jnp.float32),
            critic_steps=jnp.zeros((), jnp.int32), actor_steps=jnp.zeros((), jnp.int32),
            key=key,
        )

    # -- critic ------------------------------------------------------------------------
    def critic_targets(self, state: AgentState, batch: Transition, key: jax.Array):
        """Mean TD target ``y`` of the (reward) critic at ``batch`` (SAC: the soft target;
        DSAC-E: without entropy) and the next-action quantities used by :meth:`critic_step`."""
        c = self.config
        ka, kz = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        discount = c.gamma * (1.0 - batch.terminated)
        if c.algo == "sac":
            a2, lp2 = self.sample(state.policy, batch.next_obs, ka)
            m2, _ = self.twin_apply(state.critic_target, batch.next_obs, a2)
            y = batch.reward + discount * (jnp.minimum(m2[0], m2[1]) - alpha * lp2)
            return jax.lax.stop_gradient(y), dict(a2=a2, lp2=lp2, discount=discount, m2=m2)
        a2, lp2 = self.sample(state.policy_target, batch.next_obs, ka)
        m2, s2 = self.twin_apply(state.critic_target, batch.next_obs, a2)
        z = jax.random.normal(kz, m2.shape)
        samples = [L.sampled_return(m2[i], s2[i], z[i]) for i in range(2)]
        q_next, q_next_s = L.twin_min(m2[0], samples[0], m2[1], samples[1])
        a_eff = alpha if c.algo == "dsac_t" else jnp.zeros((), jnp.float32)
        y, y_s = L.dsac_t_targets(batch.reward, discount, q_next, q_next_s, lp2, a_eff)
        return y, dict(a2=a2, lp2=lp2, discount=discount, y_s=y_s, m2=m2)

    def critic_step(self, state: AgentState, batch: Transition) -> tuple[AgentState, dict]:
        """One gradient step of the critic(s) on ``batch``; returns ``(state, metrics)``."""
        c = self.config
        key, k = jax.random.split(state.key)
        y, aux = self.critic_targets(state, batch, k)
        alpha = jnp.exp(state.log_alpha)
        std_ema = state.std_ema
        if c.algo == "sac":
            def loss_fn(p):
                m, s = self.twin_apply(p, batch.obs, batch.action)
                loss, _ = L.sac_critic_loss(m[0], m[1], aux["m2"][0], aux["m2"][1], aux["lp2"],
                                            batch.reward, aux["discount"], alpha)
                return loss, (m, s)
        else:
            m_now, s_now = self.twin_apply(state.critic, batch.obs, batch.action)
            std_ema = jnp.stack([L.update_std_ema(state.std_ema[i], s_now[i], c.tau_b)
                                 for i in range(2)])
            y_b = [L.bounded_target(m_now[i], aux["y_s"], std_ema[i], c.td_bound)
                   for i in range(2)]

            def loss_fn(p):
                m, s = self.twin_apply(p, batch.obs, batch.action)
                loss = sum(L.dsac_t_critic_loss(m[i], s[i], y, y_b[i], std_ema[i],
                                                form=c.critic_form, eps=c.grad_eps,
                                                huber_delta=c.huber_delta) for i in range(2))
                return loss, (m, s)

        (loss, (m, s)), g = jax.value_and_grad(loss_fn, has_aux=True)(state.critic)
        upd, critic_opt = self.critic_tx.update(g, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, upd)
        metrics = dict(critic_loss=loss, q=jnp.mean(m), critic_std=jnp.mean(s),
                       target_q=jnp.mean(y), q_e=jnp.zeros(()), ent_loss=jnp.zeros(()))
        ent, ent_opt = state.ent_critic, state.ent_opt
        if c.algo == "dsac_e":
            qe_next, _ = self.critic_apply(state.ent_critic_target, batch.next_obs, aux["a2"])

            def ent_loss_fn(p):
                qe, _ = self.critic_apply(p, batch.obs, batch.action)
                return L.entropy_critic_loss(qe, aux["discount"], aux["lp2"], qe_next)[0], qe

            (eloss, qe), ge = jax.value_and_grad(ent_loss_fn, has_aux=True)(ent)
            upd, ent_opt = self.critic_tx.update(ge, ent_opt, ent)
            ent = optax.apply_updates(ent, upd)
            metrics.update(q_e=jnp.mean(qe), ent_loss=eloss)
        state = state._replace(critic=critic, critic_opt=critic_opt, ent_critic=ent,
                               ent_opt=ent_opt, std_ema=std_ema,
                               critic_steps=state.critic_steps + 1, key=key)
        return state, metrics

    # -- actor, temperature, targets ---------------------------------------------------
    def actor_step(self, state: AgentState, batch: Transition) -> tuple[AgentState, dict]:
        """Policy and temperature step on ``batch``, then Polyak updates of all targets."""
        c = self.config
        key, k = jax.random.split(state.key)
        alpha = jnp.exp(state.log_alpha)

        def loss_fn(p):
            a, lp = self.sample(p, batch.obs, k)
            m, _ = self.twin_apply(state.critic, batch.obs, a)
            if c.algo == "dsac_e":
                qe, _ = self.critic_apply(state.ent_critic, batch.obs, a)
                return L.dsac_e_actor_loss(m[0], m[1], lp, qe, alpha), (lp, qe)
            return L.actor_loss(lp, m[0], m[1], alpha), (lp, jnp.zeros_like(lp))

        (loss, (lp, qe)), g = jax.value_and_grad(loss_fn, has_aux=True)(state.policy)
        upd, policy_opt = self.policy_tx.update(g, state.policy_opt, state.policy)
        policy = optax.apply_updates(state.policy, upd)
        if c.algo == "dsac_e":
            ent_est, target = -lp + qe, jnp.float32(self.entropy_budget)
        else:
            ent_est, target = -lp, jnp.float32(self.target_entropy)
        ga = jax.grad(L.temperature_loss)(state.log_alpha, ent_est, target)
        upd, alpha_opt = self.alpha_tx.update(ga, state.alpha_opt, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, upd)
        state = state._replace(
            policy=policy, policy_opt=policy_opt, log_alpha=log_alpha, alpha_opt=alpha_opt,
            critic_target=_polyak(state.critic_target, state.critic, c.tau),
            ent_critic_target=_polyak(state.ent_critic_target, state.ent_critic, c.tau),
            policy_target=_polyak(state.policy_target, policy, c.tau),
            actor_steps=state.actor_steps + 1, key=key)
        metrics = dict(actor_loss=loss, entropy=-jnp.mean(lp), alpha=jnp.exp(log_alpha),
                       trajectory_entropy=jnp.mean(ent_est),
                       constraint_violation=jnp.maximum(target - jnp.mean(ent_est), 0.0))
        return state, metrics

    # -- many steps --------------------------------------------------------------------
    def update_block(self, state: AgentState, buffer: ReplayBuffer) -> tuple[AgentState, dict]:
        """``policy_delay`` critic steps on fresh batches, then one actor step."""
        c = self.config
        cm = {}
        batch = None
        for _ in range(c.policy_delay):
            key, k = jax.random.split(state.key)
            state = state._replace(key=key)
            batch = replay_sample(buffer, k, c.batch_size)
            state, cm = self.critic_step(state, batch)
        state, am = self.actor_step(state, batch)
        return state, {**cm, **am}

    def update(self, state: AgentState, buffer: ReplayBuffer,
               num_updates: int) -> tuple[AgentState, dict]:
        """``num_updates`` critic steps (and ``num_updates / policy_delay`` actor steps) in
        one ``lax.scan``; returns the state and the metrics averaged over the blocks.

        Raises:
          ValueError: if ``num_updates`` is not a positive multiple of ``policy_delay``, or
            (outside ``jit``) the buffer holds fewer than ``batch_size`` transitions.
        """
        d = self.config.policy_delay
        if isinstance(num_updates, bool) or not isinstance(num_updates, int) \
                or num_updates <= 0 or num_updates % d:
            raise ValueError(f"Agent.update: num_updates must be a positive multiple of "
                             f"policy_delay={d}, got {num_updates!r}")
        if not isinstance(buffer.size, jax.core.Tracer) and int(buffer.size) < \
                self.config.batch_size:
            raise ValueError(
                f"Agent.update: batch_size {self.config.batch_size} is larger than the filled "
                f"buffer ({int(buffer.size)} transitions)")
        state, ms = jax.lax.scan(lambda s, _: self.update_block(s, buffer), state, None,
                                 length=num_updates // d)
        return state, jax.tree.map(jnp.mean, ms)
