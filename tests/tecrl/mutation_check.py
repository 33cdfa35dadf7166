"""Mutation check of the tecrl tests: each mutation below breaks one formula or loop on
purpose; the tests named beside it must then fail.

    python tests/tecrl/mutation_check.py            # all mutations (about 5 min on one core)
    python tests/tecrl/mutation_check.py polyak_swapped gym_truncation_as_termination

For each mutation ``tecrl/``, ``experiments/``, ``tests/`` and ``pyproject.toml`` are copied
to a temporary folder, the one source substitution is applied (it must match exactly once),
and pytest runs the named tests *from that folder* (``python -m pytest`` and pytest's
``prepend`` import mode both put the working folder first on ``sys.path``; run from the
repository, they imported the unmutated package, so every mutation "survived"). A
mutation that leaves its tests passing is reported as SURVIVED and the script exits 1.
``tests/tecrl/test_mutations.py`` (``-m slow``) runs this script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
AGENT = "tests/tecrl/test_agent.py"
GYM = "tests/tecrl/test_gym.py"
LOSSES = "tests/tecrl/test_losses.py"


class Mutation(NamedTuple):
    name: str
    file: str  # inside tecrl/
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation("sac_bootstraps_from_online_critic", "algorithms.py",
             "next_mean, _ = nets.twin(state.critic_target, batch.next_obs, next_act)",
             "next_mean, _ = nets.twin(state.critic, batch.next_obs, next_act)",
             (f"{AGENT}::test_reward_targets_use_target_networks_and_the_right_policy",)),
    Mutation("dsac_next_action_from_online_policy", "algorithms.py",
             "nets.sample(state.policy_target, batch.next_obs, ka)",
             "nets.sample(state.policy, batch.next_obs, ka)",
             (f"{AGENT}::test_reward_targets_use_target_networks_and_the_right_policy",)),
    Mutation("dsac_bootstraps_from_online_critic", "algorithms.py",
             "next_mean, next_std = nets.twin(state.critic_target, batch.next_obs, next_act)",
             "next_mean, next_std = nets.twin(state.critic, batch.next_obs, next_act)",
             (f"{AGENT}::test_reward_targets_use_target_networks_and_the_right_policy",)),
    Mutation("dsac_e_reward_target_with_entropy", "algorithms.py",
             "y, y_s, next_act, next_lp = _dsac_targets(nets, config, state, batch, key, _zero())",
             "y, y_s, next_act, next_lp = _dsac_targets(nets, config, state, batch, key, "
             "jnp.exp(state.log_alpha))",
             (f"{AGENT}::test_one_critic_step_by_hand",)),
    Mutation("entropy_critic_bootstraps_from_online", "algorithms.py",
             "nets.critic(state.ent_critic_target, batch.next_obs, next_act)",
             "nets.critic(state.ent_critic, batch.next_obs, next_act)",
             (f"{AGENT}::test_one_critic_step_by_hand",)),
    Mutation("no_termination_mask", "algorithms.py",
             "return config.gamma * (1.0 - batch.terminated)",
             "return config.gamma * jnp.ones_like(batch.terminated)",
             (f"{AGENT}::test_reward_targets_use_target_networks_and_the_right_policy",)),
    Mutation("polyak_swapped", "algorithms.py",
             "(1 - tau) * t + tau * o", "tau * t + (1 - tau) * o",
             (f"{AGENT}::test_one_actor_step_by_hand_and_polyak_of_used_targets",)),
    Mutation("dsac_e_actor_ignores_q_e", "algorithms.py",
             "mean[0], mean[1], lp, q_e, alpha)", "mean[0], mean[1], lp, 0.0 * q_e, alpha)",
             (f"{AGENT}::test_one_actor_step_by_hand_and_polyak_of_used_targets",)),
    Mutation("std_ema_never_updated", "algorithms.py",
             "std_ema = ema(state.std_ema, jnp.mean(jax.lax.stop_gradient(std), axis=1))",
             "std_ema = state.std_ema",
             (f"{AGENT}::test_one_critic_step_by_hand",)),
    Mutation("actor_every_critic_step", "agent.py",
             "for _ in range(self.config.policy_delay):", "for _ in range(1):",
             (f"{AGENT}::test_schedule_policy_and_targets_move_every_second_critic_step",)),
    Mutation("variance_term_without_huber", "losses.py",
             "spread = huber(qd - yb, huber_delta)", "spread = (qd - yb) ** 2",
             (f"{LOSSES}::test_dsac_v2_form_is_the_authors_loss_hand_computed",)),
    Mutation("temperature_sign_flipped", "losses.py",
             "return la * _sg(h - t)", "return la * _sg(t - h)",
             (f"{LOSSES}::test_temperature_loss_gradient_is_dual_ascent",
              f"{AGENT}::test_dsac_e_alpha_is_dual_variable_of_trajectory_budget")),
    Mutation("on_device_truncation_as_termination", "loop.py",
             "term.astype(jnp.float32)[None])", "(term | trunc).astype(jnp.float32)[None])",
             (f"{AGENT}::test_on_device_loop_crosses_episode_ends",)),
    Mutation("gym_truncation_as_termination", "loop.py",
             "staged.terminated[i0:i0 + n] = term", "staged.terminated[i0:i0 + n] = term | trunc",
             (f"{GYM}::test_every_transition_is_stored_across_episode_ends",
              f"{GYM}::test_terminating_env_stores_terminations_only_as_terminal")),
    Mutation("gym_reset_obs_as_final_obs", "loop.py",
             'true_next[i] = info["final_obs"][i]', "pass",
             (f"{GYM}::test_every_transition_is_stored_across_episode_ends",)),
    Mutation("resume_without_env_rng", "loop.py",
             "_rng_set(e.unwrapped.np_random, rng)", "pass",
             (f"{GYM}::test_resume_through_a_checkpoint_is_bit_identical",)),
    Mutation("resume_without_physics", "loop.py",
             "_physics_set(e, phys)", "pass",
             (f"{GYM}::test_resume_through_a_checkpoint_is_bit_identical",)),
]


def run(mutation: Mutation) -> bool:
    """Applies ``mutation`` in a temporary copy; returns True if its tests failed (caught)."""
    with tempfile.TemporaryDirectory() as tmp:
        ignore = shutil.ignore_patterns("__pycache__")
        for name in ("tecrl", "experiments", "tests"):
            shutil.copytree(ROOT / name, Path(tmp) / name, ignore=ignore)
        shutil.copy(ROOT / "pyproject.toml", Path(tmp) / "pyproject.toml")
        path = Path(tmp) / "tecrl" / mutation.file
        src = path.read_text()
        if src.count(mutation.old) != 1:
            raise RuntimeError(f"{mutation.name}: {mutation.old!r} occurs "
                               f"{src.count(mutation.old)} times in tecrl/{mutation.file}")
        path.write_text(src.replace(mutation.old, mutation.new))
        env = {**os.environ, "PYTHONPATH": tmp}
        probe = subprocess.run([sys.executable, "-c", "import tecrl; print(tecrl.__file__)"],
                               cwd=tmp, env=env, capture_output=True, text=True)
        if not probe.stdout.strip().startswith(tmp):
            raise RuntimeError(f"{mutation.name}: the mutated copy is not the one imported "
                               f"({probe.stdout.strip() or probe.stderr[-300:]})")
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider",
             *mutation.tests], cwd=tmp, env=env, capture_output=True, text=True)
        return proc.returncode != 0


def main(names: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    unknown = set(names) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"unknown mutation(s) {sorted(unknown)}; known: {[m.name for m in MUTATIONS]}")
        return 2
    survived = []
    for m in chosen:
        caught = run(m)
        print(f"{'caught  ' if caught else 'SURVIVED'} {m.name}", flush=True)
        if not caught:
            survived.append(m.name)
    print(f"{len(chosen) - len(survived)} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
