"""Mind Your Entropy: From Maximum Entropy to Trajectory Entropy-Constrained RL.

Zhan, Wang, Wang, Zhang, Duan, Tomizuka, Li; arXiv 2511.11592 (2025).

SAC, DSAC-T and DSAC-E (TECRL on DSAC-T) as per-transition losses (:mod:`tecrl.losses`,
batched with ``vmap``), one small set of pure functions per algorithm
(:mod:`tecrl.algorithms`), fully jitted agents whose ``update`` runs many gradient steps in
one ``lax.scan``, a device-resident replay buffer, a Gymnasium vector-env loop with
bit-identical resume, and a fully on-device loop over a JAX port of ``Pendulum-v1`` (seeds in
parallel with ``vmap``); the same on-device loop runs MuJoCo ``HalfCheetah-v5`` / ``Hopper-v5``
on MJX (:mod:`tecrl.envs`) for accelerators.
"""

from tecrl.agent import ALGOS, Agent, AgentConfig
from tecrl.algorithms import ALGORITHMS, ActorMetrics, AgentState, Algorithm, CriticMetrics, Metrics
from tecrl.envs import JaxEnv, make_jax_env, mjx_env, pendulum_env
from tecrl.loop import (
    EnvSnapshot,
    GymLoop,
    GymState,
    OnDeviceTrainer,
    RunState,
    check_finite,
    make_train,
)
from tecrl.losses import (
    CRITIC_FORMS,
    bounded_target,
    dsac_e_actor_loss,
    dsac_t_critic_loss,
    dsac_t_targets,
    entropy_critic_loss,
    entropy_critic_target,
    gradient_weight,
    huber,
    sac_actor_loss,
    sac_target,
    sampled_return,
    temperature_loss,
    trajectory_entropy_budget,
    twin_critic_loss,
    twin_min,
    update_std_ema,
)
from tecrl.networks import Critic, Policy, squashed_gaussian_log_prob, squashed_gaussian_sample
from tecrl.pendulum import (
    PENDULUM,
    PendulumParams,
    PendulumState,
    pendulum_obs,
    pendulum_reset,
    pendulum_step,
)
from tecrl.replay import ReplayBuffer, Transition, replay_add, replay_init, replay_sample

__all__ = [
    "ALGORITHMS",
    "ALGOS",
    "ActorMetrics",
    "Agent",
    "AgentConfig",
    "AgentState",
    "Algorithm",
    "CRITIC_FORMS",
    "Critic",
    "CriticMetrics",
    "EnvSnapshot",
    "GymLoop",
    "GymState",
    "JaxEnv",
    "Metrics",
    "OnDeviceTrainer",
    "PENDULUM",
    "PendulumParams",
    "PendulumState",
    "Policy",
    "ReplayBuffer",
    "RunState",
    "Transition",
    "bounded_target",
    "check_finite",
    "dsac_e_actor_loss",
    "dsac_t_critic_loss",
    "dsac_t_targets",
    "entropy_critic_loss",
    "entropy_critic_target",
    "gradient_weight",
    "huber",
    "make_jax_env",
    "make_train",
    "mjx_env",
    "pendulum_env",
    "pendulum_obs",
    "pendulum_reset",
    "pendulum_step",
    "replay_add",
    "replay_init",
    "replay_sample",
    "sac_actor_loss",
    "sac_target",
    "sampled_return",
    "squashed_gaussian_log_prob",
    "squashed_gaussian_sample",
    "temperature_loss",
    "trajectory_entropy_budget",
    "twin_critic_loss",
    "twin_min",
    "update_std_ema",
]
