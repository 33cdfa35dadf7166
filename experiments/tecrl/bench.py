"""Throughput of our Gymnasium loop against SBX's SAC, alternating in one process.

    pip install -e ".[bench]"          # sbx-rl (pulls stable-baselines3 and the CPU torch)
    python -m experiments.tecrl.bench --env Pendulum-v1 --steps 2000 --repeats 3

For each network size (``--hidden``: 64-64 and 256-256 by default) both agents are built
once, warmed up (compiles, buffers past ``learning_starts``), then timed ``--repeats`` times
in alternation: ``--steps`` environment steps of SAC with one gradient step per environment
step (UTD 1), batch 256, ReLU MLPs of the same widths, Adam 3e-4, a 1M-transition buffer.
Alternating in one process means both sides see the same machine load; the ratio reported
is the median over repeats of ours / SBX, in environment steps per wall second and per CPU
second (``time.process_time``, all threads). The target of issue 17 is ours >= 1.5x SBX at
256-256 on the Gymnasium env. The output JSON records ``uptime``'s load average before and
after.

``--algos`` adds our DSAC-T / DSAC-E timings (no SBX counterpart) for sizing MuJoCo runs,
e.g. ``--env HalfCheetah-v5 --algos sac,dsac_e --hidden 256 --no_sbx``.
``--device_only``: accelerator mode, ``Agent.update`` updates/s and the on-device Pendulum
loop with many vmapped seeds (no Gymnasium, no SBX); ``--mjx mjx/HalfCheetah-v5`` adds the
on-device loop on MuJoCo simulated by MJX.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from tecrl import Agent, AgentConfig, GymLoop, make_jax_env, make_train
from tecrl.replay import Transition, replay_add, replay_init

_ENV = flags.DEFINE_string("env", "Pendulum-v1", "Gymnasium env id.")
_STEPS = flags.DEFINE_integer("steps", 2000, "Timed environment steps per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating measurements per side.")
_HIDDEN = flags.DEFINE_list("hidden", ["64", "256"], "Widths w of the w-w MLPs to time.")
_ALGOS = flags.DEFINE_list("algos", ["sac"], "Our agents to time (SBX runs SAC only).")
_NO_SBX = flags.DEFINE_bool("no_sbx", False, "Time ours only.")
_MJX = flags.DEFINE_list("mjx", [], "With --device_only: also time the on-device loop on these "
                         "MJX envs, e.g. mjx/HalfCheetah-v5 (needs the mjx extra).")
_OUT = flags.DEFINE_string("out", "", "Also write the JSON here.")
_DEVICE_ONLY = flags.DEFINE_bool(
    "device_only", False, "Accelerator mode: updates/s of each agent and the on-device "
    "Pendulum loop with many vmapped seeds (no Gymnasium, no SBX).")

BATCH, LR, BUFFER, LEARNING_STARTS, WARMUP = 256, 3e-4, 1_000_000, 256, 600


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class _Ours:
    def __init__(self, algo: str, env_id: str, width: int):
        cfg = AgentConfig(algo=algo, hidden=(width, width), activation="relu", batch_size=BATCH,
                          actor_lr=LR, critic_lr=LR, alpha_lr=LR,
                          policy_delay=1 if algo == "sac" else 2)
        self.loop = GymLoop(cfg, env_id, buffer_size=BUFFER, learning_starts=LEARNING_STARTS)
        self.state = self.loop.init(jax.random.key(0))
        self.run(WARMUP)

    def run(self, steps: int) -> None:
        self.state, _ = self.loop.collect_and_train(self.state, steps)
        jax.block_until_ready(self.state.agent)


class _SBX:
    def __init__(self, env_id: str, width: int):
        import gymnasium as gym
        from sbx import SAC

        self.model = SAC("MlpPolicy", gym.make(env_id), learning_starts=LEARNING_STARTS,
                         batch_size=BATCH, learning_rate=LR, buffer_size=BUFFER,
                         policy_kwargs=dict(net_arch=[width, width]), train_freq=1,
                         gradient_steps=1, verbose=0, seed=0)
        self.model.learn(WARMUP)

    def run(self, steps: int) -> None:
        self.model.learn(steps, reset_num_timesteps=False)


def _time(side, steps: int) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    side.run(steps)
    return steps / (time.perf_counter() - w0), steps / (time.process_time() - c0)


def _compare(env_id: str, width: int, steps: int, repeats: int, algos, with_sbx: bool) -> dict:
    sides = {f"ours_{a}": _Ours(a, env_id, width) for a in algos}
    if with_sbx:
        sides["sbx_sac"] = _SBX(env_id, width)
    wall = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    for _ in range(repeats):  # alternate: every side once per round
        for name, side in sides.items():
            w, c = _time(side, steps)
            wall[name].append(w)
            cpu[name].append(c)
    out = {f"{k}_steps_per_s_wall": [round(x, 1) for x in v] for k, v in wall.items()}
    out.update({f"{k}_steps_per_cpu_s": [round(x, 1) for x in v] for k, v in cpu.items()})
    if with_sbx and "ours_sac" in sides:
        out["ratio_wall_median"] = round(statistics.median(
            o / s for o, s in zip(wall["ours_sac"], wall["sbx_sac"], strict=True)), 3)
        out["ratio_cpu_median"] = round(statistics.median(
            o / s for o, s in zip(cpu["ours_sac"], cpu["sbx_sac"], strict=True)), 3)
    return out


def _updates_per_s(algo: str, n: int = 1000) -> float:
    cfg = AgentConfig(algo=algo, policy_delay=1 if algo == "sac" else 2, batch_size=BATCH,
                      hidden=(256, 256, 256))
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


def _on_device(algo: str, steps: int, seeds: int, env: str = "pendulum_jax") -> float:
    cfg = AgentConfig(algo=algo, policy_delay=1 if algo == "sac" else 2, batch_size=BATCH,
                      hidden=(256, 256), activation="relu")
    tr = make_train(cfg, buffer_size=steps * 2 + 1000, learning_starts=256,
                    env=make_jax_env(env))
    rs = tr.warmup(tr.init(jax.random.split(jax.random.key(0), seeds)))
    rs, _ = tr.train(rs, steps)  # compile
    jax.block_until_ready(rs)
    t = time.perf_counter()
    rs, _ = tr.train(rs, steps)
    jax.block_until_ready(rs)
    return steps * seeds / (time.perf_counter() - t)


def main(argv):
    del argv
    out = {"device": str(jax.devices()[0]), "load_before": _load()}
    if _DEVICE_ONLY.value:
        for algo in ("sac", "dsac_t", "dsac_e"):
            out[f"{algo}_updates_per_s_256x3_b256"] = _updates_per_s(algo)
            for seeds in (1, 16, 64):
                out[f"{algo}_pendulum_jax_env_steps_per_s_{seeds}seeds"] = _on_device(
                    algo, _STEPS.value, seeds)
            for env in _MJX.value:  # MuJoCo on MJX, every step on the device
                for seeds in (1, 16):
                    out[f"{algo}_{env}_env_steps_per_s_{seeds}seeds"] = _on_device(
                        algo, _STEPS.value, seeds, env)
    else:
        out.update(env=_ENV.value, steps=_STEPS.value, repeats=_REPEATS.value,
                   batch=BATCH, utd=1)
        for w in _HIDDEN.value:
            out[f"{w}-{w}"] = _compare(_ENV.value, int(w), _STEPS.value, _REPEATS.value,
                                       _ALGOS.value, not _NO_SBX.value)
            print(json.dumps({f"{w}-{w}": out[f"{w}-{w}"]}), flush=True)
    out["load_after"] = _load()
    text = json.dumps(out, indent=1)
    print(text, flush=True)
    if _OUT.value:
        from experiments.workdir import atomic_write_text

        atomic_write_text(_OUT.value, text + "\n")


if __name__ == "__main__":
    app.run(main)
