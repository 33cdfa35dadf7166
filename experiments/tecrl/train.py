"""Resumable on-device training of SAC / DSAC-T / DSAC-E on the JAX Pendulum, seeds in parallel.

``run(config, workdir)`` trains ``config.num_seeds`` seeds at once (``vmap``), evaluates the
deterministic policy every ``config.eval_every`` environment steps, logs to
``metrics.jsonl``, checkpoints the complete run state through
:class:`experiments.checkpoint.Checkpointer` and resumes from it bit for bit. At the end it
writes ``results.json``, learning-curve plots and ``report.md``. For DSAC-E it also compares
``Q_e(s, a)`` with Monte-Carlo discounted sums of ``-log pi`` along policy rollouts from the
same states (``config.qe_mc.*``).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.checkpoint import Checkpointer
from experiments.config import ConfigError, validate_config
from experiments.progress import Progress
from experiments.tecrl.configs import common
from experiments.workdir import Workdir
from tecrl import AgentConfig, GymLoop, check_finite, make_train
from tecrl.pendulum import PENDULUM, PendulumState, pendulum_step

__all__ = ["run", "qe_vs_monte_carlo"]


class Crash(RuntimeError):
    """Raised by ``config.fail_at_chunk`` (tests simulate an interrupted run with it)."""


def _validate(config) -> None:
    validate_config(config, common)


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


def _plot(wd: Workdir, records, algo: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    per_seed = np.array([r["eval_return_per_seed"] for r in records])
    for s in range(per_seed.shape[1]):
        axes[0].plot(steps, per_seed[:, s], alpha=0.5)
    axes[0].plot(steps, per_seed.mean(1), "k", lw=2, label="mean")
    axes[0].axhline(-250, color="r", ls="--", lw=1, label="-250")
    axes[0].set(title=f"{algo}: eval return", xlabel="env steps")
    axes[0].legend()
    axes[1].plot(steps, [r["alpha"] for r in records])
    axes[1].set(title="alpha", xlabel="env steps", yscale="log")
    axes[2].plot(steps, [r["target_drift"] for r in records])
    axes[2].set(title="probe target drift |dy|/|y|", xlabel="env steps", yscale="log")
    fig.tight_layout()
    wd.save_figure(fig, "learning_curves.png")
    plt.close(fig)


def _run_gym(config, wd: Workdir, agent_cfg: AgentConfig, return_state: bool):
    """The Gymnasium path (MuJoCo v5, ``Pendulum-v1``): one seed per run (launch seeds with
    ``--config.seed``); resumes the agent, buffer, RNG and counters (episodes restart)."""
    try:
        loop = GymLoop(agent_cfg, config.env, num_envs=config.num_envs,
                       buffer_size=config.buffer_size, learning_starts=config.learning_starts)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config.env: {e}") from e
    total_chunks = config.total_steps // config.eval_every
    ckpt = Checkpointer(wd.path / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=common.RESUME_ALLOW)
    state, start = ckpt.restore_or(loop.init(jax.random.key(config.seed)))
    wd.truncate_metrics(start)
    progress = Progress(total_chunks, name=f"tecrl/{agent_cfg.algo}/{config.env}",
                        interval_s=30.0, start_step=start)
    try:
        for c in range(start, total_chunks):
            if c == config.fail_at_chunk:
                raise Crash(f"simulated crash at chunk {c}")
            t0 = time.perf_counter()
            state, m = loop.collect_and_train(state, config.eval_every // config.num_envs,
                                              seed=config.seed + 1000 * c)
            dt = time.perf_counter() - t0
            ev = loop.evaluate(state, config.eval_episodes, seed=10_000 + 100 * c)
            rets = loop.finished_returns[-10:]
            wd.log_metrics(c + 1, env_steps=int(state.env_steps), eval_return=ev,
                           eval_return_per_seed=[ev],
                           train_return=float(np.mean(rets)) if rets else None,
                           steps_per_s=config.eval_every / dt,
                           **{k: float(v) for k, v in m.items()})
            progress.update(c + 1, extra=f"eval {ev:.1f}")
            ckpt.maybe_save(c + 1, state)
    finally:
        loop.close()
    ckpt.save(total_chunks, state)
    ckpt.close()
    records = wd.read_metrics()
    results = {"algo": agent_cfg.algo, "env": config.env,
               "final_eval_return_mean": records[-1]["eval_return"],
               "best_eval_return_mean": max(r["eval_return"] for r in records),
               "env_steps_per_seed": records[-1]["env_steps"]}
    wd.write_results(results)
    return (results, state) if return_state else results


@functools.lru_cache(maxsize=8)
def _trainer(agent_cfg: AgentConfig, buffer_size: int, learning_starts: int, eval_episodes: int):
    """Trainers are cached by their (hashable) settings so repeated runs in one process (the
    claims, the resume test) reuse the compiled functions."""
    return make_train(agent_cfg, buffer_size=buffer_size, learning_starts=learning_starts,
                      eval_episodes=eval_episodes)


@functools.lru_cache(maxsize=8)
def _qe_mc_fn(trainer, num_states: int, num_rollouts: int, horizon: int):
    return jax.jit(lambda a, b, k: qe_vs_monte_carlo(
        trainer, a, b, k, num_states=num_states, num_rollouts=num_rollouts, horizon=horizon))


def run(config, workdir, *, return_state: bool = False):
    """Trains, evaluates, checkpoints and reports one algorithm on the JAX Pendulum.

    Returns:
      The results dict (also in ``results.json``); with ``return_state`` the pair
      ``(results, final state)``.

    Raises:
      ConfigError: for a bad or unknown config value (agent keys included).
      FloatingPointError: if the environment or the losses produce NaN/inf (the last
        checkpoint is kept).
    """
    _validate(config)
    wd = Workdir(workdir)
    try:
        agent_cfg = AgentConfig.from_mapping(config.agent.to_dict())
    except ValueError as e:
        raise ConfigError(f"config.agent: {e}") from e
    if config.env != "pendulum_jax":
        return _run_gym(config, wd, agent_cfg, return_state)
    trainer = _trainer(agent_cfg, config.buffer_size, config.learning_starts,
                       config.eval_episodes)
    chunk = trainer.check_steps(config.eval_every)
    total_chunks = (config.total_steps - config.learning_starts) // chunk
    root = jax.random.key(config.seed)
    k_init, k_eval, k_probe, k_mc = jax.random.split(root, 4)

    rs = trainer.warmup(trainer.init(jax.random.split(k_init, config.num_seeds)))
    probe = jax.tree.map(lambda x: x[:, : config.probe_size], rs.buffer.data)
    init = {"run": rs, "probe": probe,
            "prev_y": trainer.probe_targets(rs, probe, k_probe)}
    ckpt = Checkpointer(Path(workdir) / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=common.RESUME_ALLOW)
    state, start = ckpt.restore_or(init)
    wd.truncate_metrics(start)
    progress = Progress(total_chunks, name=f"tecrl/{agent_cfg.algo}", interval_s=10.0,
                        start_step=start)
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
        drift = jnp.mean(jnp.abs(y - state["prev_y"]), axis=1) / jnp.mean(jnp.abs(y), axis=1)
        state = {"run": rs, "probe": state["probe"], "prev_y": y}
        env_steps = int(rs.env_steps[0])
        wd.log_metrics(
            c + 1, env_steps=env_steps, eval_return=float(jnp.mean(ev)),
            eval_return_per_seed=[float(v) for v in ev],
            train_return=(float(jnp.nanmean(m["train_return"]))
                          if bool(jnp.any(m["episodes"] > 0)) else None),
            q_r=float(jnp.mean(m["q"])), q_e=float(jnp.mean(m["q_e"])),
            entropy=float(jnp.mean(m["entropy"])), alpha=float(jnp.mean(m["alpha"])),
            trajectory_entropy=float(jnp.mean(m["trajectory_entropy"])),
            constraint_violation=float(jnp.mean(m["constraint_violation"])),
            critic_std=float(jnp.mean(m["critic_std"])),
            target_q=float(jnp.mean(m["target_q"])), target_drift=float(jnp.mean(drift)),
            steps_per_s=chunk * config.num_seeds / dt)
        progress.update(c + 1, extra=f"eval {float(jnp.mean(ev)):.1f}")
        ckpt.maybe_save(c + 1, state)
    ckpt.save(total_chunks, state)
    ckpt.close()

    records = wd.read_metrics()
    for r in records:
        r["step"] = r["env_steps"]
    final = np.array(records[-1]["eval_return_per_seed"])
    half = records[len(records) // 2:]
    results = {
        "algo": agent_cfg.algo,
        "final_eval_return_mean": float(final.mean()),
        "final_eval_return_per_seed": final.tolist(),
        "best_eval_return_mean": float(max(r["eval_return"] for r in records)),
        "target_drift_second_half": float(np.mean([r["target_drift"] for r in half])),
        "env_steps_per_seed": records[-1]["env_steps"],
        "steps_per_s_mean": float(np.mean([r["steps_per_s"] for r in records[1:] or records])),
    }
    if agent_cfg.algo == "dsac_e" and config.qe_mc.num_states > 0:
        ag0 = jax.tree.map(lambda x: x[0], state["run"].agent)
        buf0 = jax.tree.map(lambda x: x[0], state["run"].buffer)
        q_e, mc = _qe_mc_fn(trainer, config.qe_mc.num_states, config.qe_mc.num_rollouts,
                            config.qe_mc.horizon)(ag0, buf0, k_mc)
        q_e, mc = np.asarray(q_e), np.asarray(mc)
        rel = np.abs(q_e - mc) / np.abs(mc)
        results.update(
            qe_mc_median_rel_error=float(np.median(rel)),
            qe_mc_mean_level_rel_error=float(abs(q_e.mean() - mc.mean()) / abs(mc.mean())),
            qe_mc_corr=float(np.corrcoef(q_e, mc)[0, 1]) if q_e.std() > 0 else float("nan"),
            qe_mean=float(q_e.mean()), mc_mean=float(mc.mean()))
        wd.write_json("qe_mc.json", {"q_e": q_e.tolist(), "mc": mc.tolist()})
    wd.write_results(results)
    _plot(wd, records, agent_cfg.algo)
    wd.write_report(
        f"# {agent_cfg.algo} on the JAX Pendulum-v1\n\n"
        f"{config.num_seeds} seeds x {config.total_steps} env steps. Final deterministic "
        f"eval return {results['final_eval_return_mean']:.1f} (per seed "
        f"{', '.join(f'{v:.1f}' for v in final)}).\n\n![curves](learning_curves.png)\n")
    return (results, state) if return_state else results
