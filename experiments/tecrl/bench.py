"""Training throughput (environment steps per second including updates, UTD 1).

    python -m experiments.tecrl.bench --steps 2000 --envs pendulum_jax,Pendulum-v1,HalfCheetah-v5

Measures, in one process and after a compile/warm-up phase:
* the on-device JAX Pendulum loop (1 seed and 3 seeds under ``vmap``);
* the Gymnasium loop on ``Pendulum-v1`` and ``HalfCheetah-v5``;
* SBX's SAC (``sbx-rl``) at the same network sizes and batch on the same Gymnasium tasks,
  when ``sbx`` is importable (it is not a dependency; install it only for this benchmark);
  the ratio ours / SBX is reported against the target >= 1.0.
Networks: 256-256 ReLU for SAC (SBX's default architecture), batch 256. On a GPU machine the
same script reports updates/s of ``Agent.update`` alone.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from tecrl import AgentConfig, GymLoop, make_train
from tecrl.replay import Transition, replay_add, replay_init

_STEPS = flags.DEFINE_integer("steps", 2000, "Timed environment steps per measurement.")
_ENVS = flags.DEFINE_list("envs", ["pendulum_jax", "Pendulum-v1", "HalfCheetah-v5"], "Tasks.")
_ALGO = flags.DEFINE_string("algo", "sac", "Our agent: sac, dsac_t or dsac_e.")
_DEVICE_ONLY = flags.DEFINE_bool(
    "device_only", False, "Accelerator mode: updates/s of each agent and the on-device "
    "Pendulum loop with many vmapped seeds (no Gymnasium, no SBX).")

NET = dict(hidden=(256, 256), activation="relu", batch_size=256)


def _ours_jax(algo: str, steps: int, seeds: int) -> float:
    cfg = AgentConfig(algo=algo, policy_delay=1 if algo == "sac" else 2, **NET)
    tr = make_train(cfg, buffer_size=steps * 2 + 1000, learning_starts=256)
    rs = tr.warmup(tr.init(jax.random.split(jax.random.key(0), seeds)))
    rs, _ = tr.train(rs, steps)  # compile
    jax.block_until_ready(rs)
    t = time.perf_counter()
    rs, _ = tr.train(rs, steps)
    jax.block_until_ready(rs)
    return steps * seeds / (time.perf_counter() - t)


def _ours_gym(algo: str, env_id: str, steps: int) -> float:
    cfg = AgentConfig(algo=algo, policy_delay=1 if algo == "sac" else 2, **NET)
    loop = GymLoop(cfg, env_id, buffer_size=steps * 2 + 1000, learning_starts=256)
    st = loop.init(jax.random.key(0))
    st, _ = loop.collect_and_train(st, 512)  # warm-up and compile
    jax.block_until_ready(st)
    t = time.perf_counter()
    st, _ = loop.collect_and_train(st, steps)
    jax.block_until_ready(st)
    loop.close()
    return steps / (time.perf_counter() - t)


def _sbx(env_id: str, steps: int) -> float | None:
    try:
        from sbx import SAC
    except ImportError:
        return None
    import gymnasium as gym

    model = SAC("MlpPolicy", gym.make(env_id), learning_starts=256, batch_size=256,
                policy_kwargs=dict(net_arch=[256, 256]), train_freq=1, gradient_steps=1,
                verbose=0, seed=0)
    model.learn(512)
    t = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t)


def _updates_per_s(algo: str, n: int = 1000) -> float:
    cfg = AgentConfig(algo=algo, policy_delay=1 if algo == "sac" else 2,
                      **{**NET, "hidden": (256, 256, 256)})
    from tecrl import Agent

    agent = Agent(cfg, 17, 6)
    k = jax.random.key(0)
    buf = replay_add(replay_init(10_000, 17, 6), Transition(
        jax.random.normal(k, (10_000, 17)), jnp.zeros((10_000, 6)), jnp.zeros(10_000),
        jax.random.normal(k, (10_000, 17)), jnp.zeros(10_000)))
    up = jax.jit(agent.update, static_argnums=2)
    st, _ = up(agent.init(k), buf, n)
    jax.block_until_ready(st)
    t = time.perf_counter()
    st, _ = up(st, buf, n)
    jax.block_until_ready(st)
    return n / (time.perf_counter() - t)


def main(argv):
    del argv
    if _DEVICE_ONLY.value:
        out = {"device": str(jax.devices()[0])}
        for algo in ("sac", "dsac_t", "dsac_e"):
            out[f"{algo}_updates_per_s_256x3_b256"] = _updates_per_s(algo)
            for seeds in (1, 16, 64):
                out[f"{algo}_pendulum_jax_env_steps_per_s_{seeds}seeds"] = _ours_jax(
                    algo, _STEPS.value, seeds)
            print(json.dumps(out, indent=1), flush=True)
        return
    out = {"device": str(jax.devices()[0]), "algo": _ALGO.value, "steps": _STEPS.value}
    for env in _ENVS.value:
        if env == "pendulum_jax":
            out["pendulum_jax_1seed"] = _ours_jax(_ALGO.value, _STEPS.value, 1)
            out["pendulum_jax_3seeds"] = _ours_jax(_ALGO.value, _STEPS.value, 3)
            continue
        ours = _ours_gym(_ALGO.value, env, _STEPS.value)
        base = _sbx(env, _STEPS.value)
        out[f"{env}_ours"] = ours
        out[f"{env}_sbx"] = base if base is not None else "sbx not installed"
        if base is not None:
            out[f"{env}_ratio"] = ours / base
    out["updates_per_s_256x3_halfcheetah_shapes"] = _updates_per_s(_ALGO.value)
    print(json.dumps(out, indent=1), file=sys.stdout, flush=True)


if __name__ == "__main__":
    app.run(main)
