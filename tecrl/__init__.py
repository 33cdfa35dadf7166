"""Mind Your Entropy: From Maximum Entropy to Trajectory Entropy-Constrained RL.

Zhan, Wang, Wang, Zhang, Duan, Tomizuka, Li; arXiv 2511.11592 (2025).

SAC, DSAC-T and DSAC-E (TECRL on DSAC-T) as pure batch losses, fully jitted agents whose
``update`` runs many gradient steps in one ``lax.scan``, a device-resident replay buffer, a
Gymnasium vector-env loop and a fully on-device loop over a JAX port of ``Pendulum-v1``
(seeds in parallel with ``vmap``).
"""

from tecrl.agent import ALGOS, Agent, AgentConfig, AgentState
from tecrl.loop import GymLoop, GymState, OnDeviceTrainer, RunState, check_finite, make_train
from tecrl.losses import (
    CRITIC_FORMS,
    actor_loss,
    bounded_target,
    dsac_e_actor_loss,
    dsac_t_critic_loss,
    dsac_t_targets,
    entropy_critic_loss,
    entropy_critic_target,
    gradient_weight,
    sac_critic_loss,
    sampled_return,
    temperature_loss,
    trajectory_entropy_budget,
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
    "ALGOS",
    "Agent",
    "AgentConfig",
    "AgentState",
    "GymLoop",
    "GymState",
    "OnDeviceTrainer",
    "RunState",
    "check_finite",
    "make_train",
    "CRITIC_FORMS",
    "PENDULUM",
    "Critic",
    "PendulumParams",
    "PendulumState",
    "Policy",
    "ReplayBuffer",
    "Transition",
    "actor_loss",
    "bounded_target",
    "dsac_e_actor_loss",
    "dsac_t_critic_loss",
    "dsac_t_targets",
    "entropy_critic_loss",
    "entropy_critic_target",
    "gradient_weight",
    "pendulum_obs",
    "pendulum_reset",
    "pendulum_step",
    "replay_add",
    "replay_init",
    "replay_sample",
    "sac_critic_loss",
    "sampled_return",
    "squashed_gaussian_log_prob",
    "squashed_gaussian_sample",
    "temperature_loss",
    "trajectory_entropy_budget",
    "twin_min",
    "update_std_ema",
]
