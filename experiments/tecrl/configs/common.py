"""Shared builder of the tecrl configs (``sac.py``, ``dsac_t.py``, ``dsac_e.py`` call it).

Variants:

* ``pendulum_quick`` (= ``quick``) and ``pendulum_standard`` (= ``standard``): the JAX
  Pendulum, seeds in parallel (``vmap``) on CPU; claims 1-3.
* ``halfcheetah_standard``, ``hopper_standard``: MuJoCo v5 through the Gymnasium loop, one
  seed per run, sized for the 2-core CPU standard tier (claim 4; 256-256 ReLU nets, batch
  256, a short step budget; see ``MUJOCO_STANDARD_STEPS``).
* ``halfcheetah_mjx_full``, ``hopper_mjx_full``: the same 1M-step runs on MuJoCo simulated
  by MJX inside the on-device trainer (4 seeds vmapped, every step on the accelerator; needs
  ``pip install -e ".[mjx]"`` and a GPU; not run here).
* ``<task>_full`` for ``halfcheetah``, ``hopper``, ``walker2d``, ``ant``, ``humanoid`` (v5,
  Gymnasium loop, GPU): the DSAC-T paper's settings, 1M steps; ``full`` is
  ``halfcheetah_full``.

Pendulum departs from the MuJoCo settings in four documented ways: learning rates 1e-3 (the
1e-4 of DSAC-T is tuned for million-step MuJoCo runs; Pendulum runs are 4k-20k steps), Polyak
rate 0.02 instead of 0.005 (with 0.005 a 20k-step run makes only ~50 effective Bellman
backups through the target networks, too few for gamma = 0.99 values to converge), 64-64 GELU
MLPs for all three agents and batch 128 (CPU budget).

``RULES`` and ``validate`` (re-exported by each config file) check every value before a run
writes anything, agent keys included; a restart in the same workdir may change only
``RESUME_ALLOW``.
"""

from experiments.config import ConfigError, non_negative, positive, tiered

MUJOCO = ("halfcheetah", "hopper", "walker2d", "ant", "humanoid")
GYM_IDS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5",
           "ant": "Ant-v5", "humanoid": "Humanoid-v5"}
# Environment steps per run of the MuJoCo standard tier (claim 4): 2 tasks x 3 agents x
# MUJOCO_STANDARD_SEEDS seeds must fit ~40 min on 2 idle cores at the throughput
# experiments/tecrl/bench.py measures (docs/tecrl.md has the arithmetic).
MUJOCO_STANDARD_STEPS = 15_000
MUJOCO_STANDARD_SEEDS = 3

RULES = {
    "num_seeds": positive, "num_envs": positive, "total_steps": positive,
    "learning_starts": positive,
    "eval_every": positive, "eval_episodes": positive, "buffer_size": positive,
    "checkpoint_every": positive, "probe_size": positive, "seed": non_negative,
    "max_episode_steps": non_negative,
    "qe_mc.num_states": non_negative, "qe_mc.num_rollouts": positive,
    "qe_mc.horizon": positive,
}

# fail_at_chunk is the tests' crash switch; checkpoint_every only changes when state is saved.
RESUME_ALLOW = ("fail_at_chunk", "checkpoint_every")


def on_device(env: str) -> bool:
    """Whether ``env`` runs in the on-device trainer (seeds vmapped) or the Gymnasium loop."""
    return env == "pendulum_jax" or env.startswith("mjx/")


def validate(config) -> None:
    """Checks across keys and the agent's own (``RULES`` check each value on its own).

    Raises:
      ConfigError: naming the key, what was expected and what came.
    """
    from experiments.config import check
    from tecrl import AgentConfig
    from tecrl.envs import MJX_TASKS

    check(config, RULES)
    if config.env.startswith("mjx/") and config.env[4:] not in MJX_TASKS:
        raise ConfigError(f"config.env: an MJX env must be one of "
                          f"{['mjx/' + t for t in MJX_TASKS]}, got {config.env!r}")
    if on_device(config.env):
        if (config.total_steps - config.learning_starts) % config.eval_every:
            raise ConfigError(
                f"config.total_steps - config.learning_starts must be a multiple of "
                f"config.eval_every, got {config.total_steps} - {config.learning_starts} and "
                f"{config.eval_every}")
        if config.probe_size > config.learning_starts:
            raise ConfigError(f"config.probe_size must be <= config.learning_starts, got "
                              f"{config.probe_size} > {config.learning_starts}")
    else:
        if config.num_seeds != 1:
            raise ConfigError(f"config.num_seeds must be 1 for Gymnasium env {config.env!r} "
                              "(run seeds as separate jobs with --config.seed), got "
                              f"{config.num_seeds}")
        if config.total_steps % config.eval_every:
            raise ConfigError(f"config.total_steps must be a multiple of config.eval_every, "
                              f"got {config.total_steps} and {config.eval_every}")
        if config.eval_every % config.num_envs:
            raise ConfigError(f"config.eval_every must be a multiple of config.num_envs, got "
                              f"{config.eval_every} and {config.num_envs}")
    try:
        AgentConfig.from_mapping(config.agent.to_dict())
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.agent: {e}") from e


def make(algo: str, variant):
    sac = algo == "sac"
    base = {
        "env": "pendulum_jax",  # or a Gymnasium id (Pendulum-v1, HalfCheetah-v5, ...)
        "seed": 0,
        "num_seeds": 8,
        "num_envs": 1,  # Gymnasium path only
        "max_episode_steps": 0,  # Gymnasium path: 0 keeps the env's registered time limit
        "total_steps": 4000,
        "learning_starts": 1000,
        "buffer_size": 100_000,
        "eval_every": 1000,
        "eval_episodes": 5,
        "checkpoint_every": 1,
        "probe_size": 256,
        "fail_at_chunk": -1,  # tests: raise before this chunk (simulates a crash)
        "qe_mc": {"num_states": 32, "num_rollouts": 8, "horizon": 400},
        "agent": {
            "algo": algo,
            "hidden": (64, 64),
            "activation": "gelu",
            "actor_lr": 1e-3,
            "critic_lr": 1e-3,
            "alpha_lr": 1e-3,
            "gamma": 0.99,
            "tau": 0.02,
            "tau_b": 0.005,
            "batch_size": 128,
            "policy_delay": 1 if sac else 2,
            "initial_alpha": 2.718281828459045,  # log alpha = 1, as dsac_v2.py
            "critic_form": "dsac_v2",
            "huber_delta": 50.0,
            "td_bound": 3.0,
            "grad_eps": 0.1,
            "rho": 1.0,
        },
    }
    pendulum_quick = {"num_seeds": 3}
    pendulum_standard = {
        "total_steps": 20_000, "eval_every": 1000,
        "qe_mc.num_states": 64, "qe_mc.num_rollouts": 16, "qe_mc.horizon": 500,
    }
    mujoco_standard = {
        "num_seeds": 1, "total_steps": MUJOCO_STANDARD_STEPS, "learning_starts": 5000,
        "buffer_size": MUJOCO_STANDARD_STEPS, "eval_every": 2500, "eval_episodes": 3,
        "checkpoint_every": 1, "qe_mc.num_states": 0,
        "agent.hidden": (256, 256), "agent.activation": "relu", "agent.batch_size": 256,
        "agent.actor_lr": 3e-4, "agent.critic_lr": 3e-4, "agent.alpha_lr": 3e-4,
        "agent.tau": 0.005, "agent.tau_b": 0.005,
    }
    full_common = {
        "num_seeds": 1,  # Gymnasium path: launch seeds 0, 1, 2 as separate jobs
        "total_steps": 1_000_000, "learning_starts": 10_000, "buffer_size": 1_000_000,
        "eval_every": 5000, "eval_episodes": 10, "checkpoint_every": 20, "probe_size": 1024,
        "agent.hidden": (256, 256, 256), "agent.batch_size": 256,
        "agent.actor_lr": 3e-4 if sac else 1e-4, "agent.critic_lr": 3e-4 if sac else 1e-4,
        "agent.alpha_lr": 3e-4, "agent.tau": 0.005,
        "qe_mc.num_states": 0,
    }
    tiers = {"quick": pendulum_quick, "pendulum_quick": pendulum_quick,
             "standard": pendulum_standard, "pendulum_standard": pendulum_standard}
    for task in ("halfcheetah", "hopper"):
        tiers[f"{task}_standard"] = {**mujoco_standard, "env": GYM_IDS[task]}
    for task in MUJOCO:
        over = {**full_common, "env": GYM_IDS[task]}
        if algo == "dsac_e" and task in ("humanoid", "walker2d"):
            over["agent.rho"] = 20.0  # the paper's budget scale for these two tasks
        tiers[f"{task}_full"] = over
    for task in ("halfcheetah", "hopper"):
        # MuJoCo on MJX in the on-device trainer: seeds vmapped on one accelerator.
        tiers[f"{task}_mjx_full"] = {
            **full_common, "env": f"mjx/{GYM_IDS[task]}", "num_seeds": 4,
            "eval_every": 10_000, "checkpoint_every": 10}
    tiers["full"] = tiers["halfcheetah_full"]
    return tiered(base, tiers, variant)
