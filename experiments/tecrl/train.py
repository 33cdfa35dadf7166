"""Resumable training of SAC / DSAC-T / DSAC-E: on the device with seeds in parallel (the JAX
Pendulum ``pendulum_jax``, or MuJoCo on MJX ``mjx/HalfCheetah-v5``, ``mjx/Hopper-v5``) or on a
Gymnasium env (MuJoCo v5, ``Pendulum-v1``; one seed per run).

``run(config, workdir)`` validates the config, trains in chunks of ``config.eval_every``
environment steps, evaluates the deterministic policy after each chunk, logs to
``metrics.jsonl``, checkpoints the complete state through
:class:`experiments.checkpoint.Checkpointer` and resumes from it bit for bit (both paths: the
Gymnasium path saves the envs' physics, RNG and time-limit counters). At the end
:mod:`experiments.tecrl.report` writes ``results.json``, plots and ``report.md``. Probes
(target drift, ``Q_e`` vs Monte Carlo) live in :mod:`experiments.tecrl.probes`.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.checkpoint import Checkpointer
from experiments.config import ConfigError, validate_config
from experiments.progress import Progress
from experiments.tecrl import probes, report
from experiments.tecrl.configs import common
from experiments.workdir import Workdir
from tecrl import AgentConfig, GymLoop, check_finite, make_jax_env, make_train

__all__ = ["Crash", "run"]


class Crash(RuntimeError):
    """Raised by ``config.fail_at_chunk`` (tests simulate an interrupted run with it)."""


def _agent_config(config) -> AgentConfig:
    validate_config(config, common)
    return AgentConfig.from_mapping(config.agent.to_dict())


@functools.lru_cache(maxsize=8)
def _trainer(agent_cfg: AgentConfig, env: str, buffer_size: int, learning_starts: int,
             eval_episodes: int):
    """Trainers are cached by their (hashable) settings so repeated runs in one process (the
    claims, the resume test) reuse the compiled functions."""
    return make_train(agent_cfg, buffer_size=buffer_size, learning_starts=learning_starts,
                      eval_episodes=eval_episodes, env=make_jax_env(env))


def _floats(metrics) -> dict[str, float]:
    return {k: float(jnp.mean(v)) for k, v in metrics.items()
            if k not in ("train_return", "episodes", "reward_sum")}


def _train_on_device(config, wd: Workdir, agent_cfg: AgentConfig):
    trainer = _trainer(agent_cfg, config.env, config.buffer_size, config.learning_starts,
                       config.eval_episodes)
    chunk = trainer.check_steps(config.eval_every)
    total_chunks = (config.total_steps - config.learning_starts) // chunk
    k_init, k_eval, k_probe, _ = jax.random.split(jax.random.key(config.seed), 4)
    rs = trainer.warmup(trainer.init(jax.random.split(k_init, config.num_seeds)))
    probe = jax.tree.map(lambda x: x[:, : config.probe_size], rs.buffer.data)
    init = {"run": rs, "probe": probe, "prev_y": trainer.probe_targets(rs, probe, k_probe)}
    ckpt = Checkpointer(wd.path / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=common.RESUME_ALLOW)
    state, start = ckpt.restore_or(init)
    wd.truncate_metrics(start)
    progress = Progress(config.total_steps, name=f"tecrl/{agent_cfg.algo}", interval_s=10.0,
                        start_step=config.learning_starts + start * chunk)
    eval_keys = jax.random.split(k_eval, (total_chunks, config.num_seeds))
    for c in range(start, total_chunks):
        if c == config.fail_at_chunk:
            raise Crash(f"simulated crash at chunk {c}")
        t0 = time.perf_counter()
        rs, m = trainer.train(state["run"], chunk)
        ev = trainer.evaluate(rs, eval_keys[c])
        y = trainer.probe_targets(rs, state["probe"], k_probe)
        jax.block_until_ready(ev)
        dt = time.perf_counter() - t0
        check_finite(f"tecrl/{agent_cfg.algo} chunk {c}", reward=m["reward_sum"],
                     eval_return=ev, critic_loss=m["critic_loss"], q=m["q"])
        drift = probes.target_drift(y, state["prev_y"])
        state = {"run": rs, "probe": state["probe"], "prev_y": y}
        env_steps = int(rs.env_steps[0])
        wd.log_metrics(
            c + 1, env_steps=env_steps, eval_return=float(jnp.mean(ev)),
            eval_return_per_seed=[float(v) for v in ev],
            train_return=(float(jnp.nanmean(m["train_return"]))
                          if bool(jnp.any(m["episodes"] > 0)) else None),
            target_drift=float(jnp.mean(drift)),
            target_drift_per_seed=[float(v) for v in drift],
            env_steps_per_s=chunk * config.num_seeds / dt, **_floats(m))
        progress.update(env_steps, extra=f"eval {float(jnp.mean(ev)):.1f}")
        ckpt.maybe_save(c + 1, state)
    ckpt.save(total_chunks, state)
    ckpt.close()
    return trainer, state


def _train_gym(config, wd: Workdir, agent_cfg: AgentConfig):
    try:
        loop = GymLoop(agent_cfg, config.env, num_envs=config.num_envs,
                       buffer_size=config.buffer_size, learning_starts=config.learning_starts,
                       max_episode_steps=config.max_episode_steps or None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config.env: {e}") from e
    total_chunks = config.total_steps // config.eval_every
    vector_steps = config.eval_every // config.num_envs
    if vector_steps % loop.steps_per_call:
        raise ConfigError(f"config.eval_every / config.num_envs must be a multiple of "
                          f"{loop.steps_per_call} (policy_delay / gcd(num_envs, policy_delay)), "
                          f"got {vector_steps}")
    ckpt = Checkpointer(wd.path / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=common.RESUME_ALLOW)
    state, start = ckpt.restore_or(loop.init(jax.random.key(config.seed)))
    wd.truncate_metrics(start)
    progress = Progress(config.total_steps, name=f"tecrl/{agent_cfg.algo}/{config.env}",
                        interval_s=30.0, start_step=start * config.eval_every)
    try:
        for c in range(start, total_chunks):
            if c == config.fail_at_chunk:
                raise Crash(f"simulated crash at chunk {c}")
            t0 = time.perf_counter()
            state, m = loop.collect_and_train(state, vector_steps, seed=config.seed)
            dt = time.perf_counter() - t0
            ev = loop.evaluate(state, config.eval_episodes, seed=10_000 + 100 * c)
            rets = m.pop("finished_returns")
            if m:
                check_finite(f"tecrl/{agent_cfg.algo} chunk {c}", critic_loss=m["critic_loss"],
                             q=m["q"])
            wd.log_metrics(c + 1, env_steps=int(state.env_steps), eval_return=ev,
                           eval_return_per_seed=[ev],
                           train_return=float(np.mean(rets)) if rets else None,
                           episodes=len(rets), env_steps_per_s=config.eval_every / dt, **m)
            progress.update(int(state.env_steps), extra=f"eval {ev:.1f}")
            ckpt.maybe_save(c + 1, state)
    finally:
        loop.close()
    ckpt.save(total_chunks, state)
    ckpt.close()
    return loop, state


def run(config, workdir, *, return_state: bool = False):
    """Trains, evaluates, checkpoints and reports one algorithm on ``config.env``.

    Returns:
      The results dict (also in ``results.json``); with ``return_state`` the pair
      ``(results, final state)``.

    Raises:
      ConfigError: for a bad or unknown config value (agent keys included).
      FloatingPointError: if the environment or the losses produce NaN/inf (the last
        checkpoint is kept).
    """
    agent_cfg = _agent_config(config)
    wd = Workdir(workdir)
    if common.on_device(config.env):
        trainer, state = _train_on_device(config, wd, agent_cfg)
        results = report.on_device(config, wd, agent_cfg, trainer, state)
    else:
        _, state = _train_gym(config, wd, agent_cfg)
        results = report.gym(config, wd, agent_cfg)
    return (results, state) if return_state else results
