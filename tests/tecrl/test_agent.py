"""Agents: targets from the right networks (targets perturbed away from the online ones), one
critic/actor step replayed by hand, the schedule, Polyak updates of used networks only, the
DSAC-E temperature as a dual variable, the on-device loop across episode ends, bad inputs."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tecrl import losses as L
from tecrl.agent import Agent, AgentConfig
from tecrl.envs import pendulum_env
from tecrl.loop import OnDeviceTrainer, check_finite, make_train
from tecrl.pendulum import PendulumParams, PendulumState, pendulum_step
from tecrl.replay import Transition, replay_add, replay_init, replay_sample

SMALL = dict(hidden=(8,), batch_size=8, actor_lr=1e-2, critic_lr=1e-2, alpha_lr=1e-2)
ALGOS = ("sac", "dsac_t", "dsac_e")


def _buffer(n=64):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    tr = Transition(jax.random.normal(k1, (n, 3)), jax.random.uniform(k2, (n, 1), minval=-1),
                    jax.random.normal(k3, (n,)), jax.random.normal(k1, (n, 3)) + 0.1,
                    (jnp.arange(n) % 7 == 0).astype(jnp.float32))
    return replay_add(replay_init(n, 3, 1), tr)


def _close(a, b, atol=1e-6):
    return all(bool(jnp.allclose(x, y, atol=atol)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _perturb(tree, key, scale=0.3):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([x + scale * jax.random.normal(k, x.shape)
                              for x, k in zip(leaves, keys, strict=True)])


def _agent(algo, **kw):
    cfg = dict(SMALL, algo=algo, policy_delay=1 if algo == "sac" else 2, initial_alpha=0.7)
    cfg.update(kw)
    agent = Agent(AgentConfig(**cfg), 3, 1)
    s = agent.init(jax.random.key(1))
    # move every target network away from its online network, as after training
    s = s._replace(critic_target=_perturb(s.critic_target, jax.random.key(10)))
    if s.policy_target is not None:
        s = s._replace(policy_target=_perturb(s.policy_target, jax.random.key(11)))
    if s.ent_critic is not None:
        s = s._replace(ent_critic_target=_perturb(s.ent_critic_target, jax.random.key(12)),
                       ent_critic=_perturb(s.ent_critic, jax.random.key(13), 0.1))
    return agent, s


def test_defaults_are_the_authors():
    c = AgentConfig()
    assert c.critic_form == "dsac_v2" and c.huber_delta == 50.0
    assert c.initial_alpha == pytest.approx(math.e)  # log alpha = 1 in dsac_v2.py
    assert (c.hidden, c.activation, c.policy_delay) == ((256, 256, 256), "gelu", 2)


def test_state_holds_only_the_networks_each_algorithm_uses():
    for algo, has_pt, has_e in (("sac", False, False), ("dsac_t", True, False),
                                ("dsac_e", True, True)):
        agent, s = _agent(algo)
        assert (s.policy_target is not None) == has_pt
        assert (s.ent_critic is not None) == has_e and (s.ent_opt is not None) == has_e
        assert (s.std_ema is not None) == (algo != "sac")


def _by_hand_targets(agent, s, batch, key, algo):
    """y of the reward critic, written out with the online/target networks named."""
    disc = agent.config.gamma * (1 - batch.terminated)
    alpha = jnp.exp(s.log_alpha)
    if algo == "sac":
        a2, lp2 = agent.sample(s.policy, batch.next_obs, key)  # current policy
        m2, _ = agent.twin_apply(s.critic_target, batch.next_obs, a2)
        return batch.reward + disc * (jnp.minimum(m2[0], m2[1]) - alpha * lp2), None
    ka, _ = jax.random.split(key)
    a2, lp2 = agent.sample(s.policy_target, batch.next_obs, ka)  # target policy
    m2, _ = agent.twin_apply(s.critic_target, batch.next_obs, a2)
    a_eff = alpha if algo == "dsac_t" else 0.0  # DSAC-E: no entropy in the reward target
    return batch.reward + disc * (jnp.minimum(m2[0], m2[1]) - a_eff * lp2), (a2, lp2)


@pytest.mark.parametrize("algo", ALGOS)
def test_reward_targets_use_target_networks_and_the_right_policy(algo):
    agent, s = _agent(algo)
    batch = jax.tree.map(lambda x: x[:8], _buffer().data)
    key = jax.random.key(3)
    y = jax.jit(agent.reward_targets)(s, batch, key)
    expect, _ = _by_hand_targets(agent, s, batch, key, algo)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algo", ALGOS)
def test_one_critic_step_by_hand(algo):
    """One critic step replayed with losses.* applied per transition and Adam by hand."""
    agent, s0 = _agent(algo)
    c = agent.config
    batch = jax.tree.map(lambda x: x[:8], _buffer().data)

    @jax.jit
    def by_hand(s0):
        key, k = jax.random.split(s0.key)
        y, nxt = _by_hand_targets(agent, s0, batch, k, algo)
        disc = c.gamma * (1 - batch.terminated)
        ema = None
        if algo == "sac":
            def loss(p):
                m, _ = agent.twin_apply(p, batch.obs, batch.action)
                return jnp.mean(0.5 * (m[0] - y) ** 2 + 0.5 * (m[1] - y) ** 2)
        else:
            ka, kz = jax.random.split(k)
            a2, lp2 = nxt
            m2, s2 = agent.twin_apply(s0.critic_target, batch.next_obs, a2)
            z = jnp.clip(jax.random.normal(kz, m2.shape), -3, 3)
            pick1 = m2[0] < m2[1]
            zs = jnp.where(pick1, m2[0] + z[0] * s2[0], m2[1] + z[1] * s2[1])
            a_eff = jnp.exp(s0.log_alpha) if algo == "dsac_t" else 0.0
            ys = batch.reward + disc * (zs - a_eff * lp2)
            m, sd = agent.twin_apply(s0.critic, batch.obs, batch.action)
            ema = jnp.mean(sd, axis=1)  # first step: the EMA starts at the batch mean
            yb = [m[i] + jnp.clip(ys - m[i], -3 * ema[i], 3 * ema[i]) for i in range(2)]

            def loss(p):
                mm, ss = agent.twin_apply(p, batch.obs, batch.action)
                per = functools.partial(L.dsac_t_critic_loss, form=c.critic_form)
                return sum(jnp.mean(jax.vmap(per, in_axes=(0, 0, 0, 0, None))(
                    mm[i], ss[i], y, yb[i], ema[i])) for i in range(2))
        g = jax.grad(loss)(s0.critic)
        upd, _ = agent.nets.critic_tx.update(g, s0.critic_opt, s0.critic)
        critic = jax.tree.map(lambda a, b: a + b, s0.critic, upd)
        ent = None
        if algo == "dsac_e":
            a2, lp2 = nxt
            qe2, _ = agent.critic_apply(s0.ent_critic_target, batch.next_obs, a2)
            ye = disc * (-lp2 + qe2)
            ge = jax.grad(lambda p: jnp.mean(0.5 * (agent.critic_apply(
                p, batch.obs, batch.action)[0] - ye) ** 2))(s0.ent_critic)
            upd, _ = agent.nets.critic_tx.update(ge, s0.ent_opt, s0.ent_critic)
            ent = jax.tree.map(lambda a, b: a + b, s0.ent_critic, upd)
        return ema, critic, ent

    ema, critic, ent = by_hand(s0)
    s1, m = jax.jit(agent.critic_step)(s0, batch)
    assert _close(s1.critic, critic, atol=1e-5)
    assert int(s1.critic_steps) == 1 and int(s1.actor_steps) == 0
    if ema is not None:
        np.testing.assert_allclose(s1.std_ema, ema, rtol=1e-6)
    if ent is not None:
        assert _close(s1.ent_critic, ent, atol=1e-5)
        assert float(m.q_e) != 0.0
    # a critic step leaves the policy and all targets alone
    assert _close(s1.policy, s0.policy) and _close(s1.critic_target, s0.critic_target)


@pytest.mark.parametrize("algo", ("sac", "dsac_e"))
def test_one_actor_step_by_hand_and_polyak_of_used_targets(algo):
    agent, s0 = _agent(algo, tau=0.3)
    c = agent.config
    batch = jax.tree.map(lambda x: x[:8], _buffer().data)

    @jax.jit
    def by_hand(s0):
        _, k = jax.random.split(s0.key)
        alpha = jnp.exp(s0.log_alpha)

        def loss(p):
            a, lp = agent.sample(p, batch.obs, k)
            m, _ = agent.twin_apply(s0.critic, batch.obs, a)
            if algo == "sac":
                return jnp.mean(alpha * lp - jnp.minimum(m[0], m[1])), -lp
            qe, _ = agent.critic_apply(s0.ent_critic, batch.obs, a)
            return -jnp.mean(jnp.minimum(m[0], m[1]) + alpha * (-lp + qe)), -lp + qe

        g, est = jax.grad(loss, has_aux=True)(s0.policy)
        upd, _ = agent.nets.policy_tx.update(g, s0.policy_opt, s0.policy)
        policy = jax.tree.map(lambda a, b: a + b, s0.policy, upd)
        target = agent.target_entropy if algo == "sac" else agent.entropy_budget
        ga = jnp.mean(est) - target  # d/dlog_alpha of log_alpha * (E[H_hat] - target)
        upd, _ = agent.nets.alpha_tx.update(ga, s0.alpha_opt, s0.log_alpha)
        return policy, s0.log_alpha + upd

    policy, log_alpha = by_hand(s0)
    s1, m = jax.jit(agent.actor_step)(s0, batch)
    assert _close(s1.policy, policy, atol=1e-5)
    np.testing.assert_allclose(s1.log_alpha, log_alpha, rtol=1e-6)

    def polyak(t, o):
        return jax.tree.map(lambda a, b: (1 - c.tau) * a + c.tau * b, t, o)

    assert _close(s1.critic_target, polyak(s0.critic_target, s0.critic))
    if algo == "dsac_e":
        assert _close(s1.policy_target, polyak(s0.policy_target, s1.policy))
        assert _close(s1.ent_critic_target, polyak(s0.ent_critic_target, s0.ent_critic))
    else:
        assert s1.policy_target is None and s1.ent_critic_target is None


def test_entropy_critic_target_moves_at_tau_e():
    agent, s0 = _agent("dsac_e", tau=0.3, tau_e=0.05)
    batch = jax.tree.map(lambda x: x[:8], _buffer().data)
    s1, _ = jax.jit(agent.actor_step)(s0, batch)
    mix = lambda t, o, r: jax.tree.map(lambda a, b: (1 - r) * a + r * b, t, o)  # noqa: E731
    assert _close(s1.ent_critic_target, mix(s0.ent_critic_target, s0.ent_critic, 0.05))
    assert not _close(s1.ent_critic_target, mix(s0.ent_critic_target, s0.ent_critic, 0.3))
    assert _close(s1.critic_target, mix(s0.critic_target, s0.critic, 0.3))
    with pytest.raises(ValueError, match=r"tau_e must be in \(0, 1\], got 0.0"):
        AgentConfig(tau_e=0.0)


def test_schedule_policy_and_targets_move_every_second_critic_step():
    agent, s0 = _agent("dsac_t", tau=0.5)
    buf = _buffer()
    update = jax.jit(agent.update, static_argnums=2)
    s, _ = update(s0, buf, 2)
    assert int(s.critic_steps) == 2 and int(s.actor_steps) == 1

    @jax.jit
    def by_hand(s0):  # one block = critic, critic, actor, with the same keys
        st, mids = s0, []
        for _ in range(2):
            key, kb = jax.random.split(st.key)
            batch = replay_sample(buf, kb, 8)
            st, _ = agent.critic_step(st._replace(key=key), batch)
            mids.append(st)
        return mids, agent.actor_step(st, batch)[0]

    mids, st = by_hand(s0)
    for mid in mids:
        assert _close(mid.policy, s0.policy) and _close(mid.policy_target, s0.policy_target)
    assert _close(st.policy, s.policy) and _close(st.critic, s.critic)
    assert _close(st.critic_target, s.critic_target)
    s4, _ = update(update(s0, buf, 2)[0], buf, 2)
    assert int(s4.critic_steps) == 4 and int(s4.actor_steps) == 2
    s6, _ = jax.jit(agent.update, static_argnums=2)(s0, buf, 6)  # scanned blocks
    assert int(s6.critic_steps) == 6 and int(s6.actor_steps) == 3


def test_dsac_e_alpha_is_dual_variable_of_trajectory_budget():
    batch = jax.tree.map(lambda x: x[:8], _buffer().data)
    e, s = _agent("dsac_e", rho=2.0)
    assert e.entropy_budget == pytest.approx(2.0 * -1.0)
    s1, m = jax.jit(e.actor_step)(s, batch)
    # an untrained policy's trajectory entropy is above the budget: alpha falls
    assert float(m.trajectory_entropy) > e.entropy_budget
    assert float(s1.log_alpha) < float(s.log_alpha) and float(m.constraint_violation) == 0.0
    # a budget above the estimate: the constraint is violated and alpha rises
    e, s = _agent("dsac_e", target_entropy=50.0)
    s1, m = jax.jit(e.actor_step)(s, batch)
    assert float(m.constraint_violation) > 0 and float(s1.log_alpha) > float(s.log_alpha)


def test_on_device_loop_crosses_episode_ends():
    """Episodes of 5 steps: truncations are stored as non-terminal with the true next
    observation, the next row starts a fresh episode, returns are counted per episode."""
    params = PendulumParams(max_episode_steps=5)
    tr = make_train(AgentConfig(algo="dsac_t", **SMALL), buffer_size=64, learning_starts=12,
                    env=pendulum_env(params))
    rs = tr.warmup(tr.init(jax.random.split(jax.random.key(0), 1)))
    d = jax.tree.map(lambda x: np.asarray(x[0]), rs.buffer.data)
    assert int(rs.buffer.size[0]) == 12 and not d.terminated.any()
    for i in range(11):
        o = d.obs[i]
        env = PendulumState(jnp.arctan2(o[1], o[0]), jnp.float32(o[2]), jnp.int32(0))
        _, nxt, r, *_ = pendulum_step(env, d.action[i] * params.max_torque, params)
        np.testing.assert_allclose(d.next_obs[i], nxt, atol=1e-5)  # the true next state
        np.testing.assert_allclose(d.reward[i], r, rtol=1e-5, atol=1e-5)
        if i % 5 == 4:  # episode end: the next row is a reset, not the continuation
            assert np.abs(d.obs[i + 1] - d.next_obs[i]).max() > 1e-3
        else:
            np.testing.assert_allclose(d.obs[i + 1], d.next_obs[i])
    rs, m = tr.train(rs, 10)  # env steps 13..22: two more episode ends (15, 20)
    assert int(m["episodes"][0]) == 2 and np.isfinite(float(m["train_return"][0]))
    assert int(rs.env_steps[0]) == 22 and int(rs.agent.critic_steps[0]) == 10


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lr'\]; the agent knows"):
        AgentConfig.from_mapping({"algo": "sac", "lr": 1e-3})
    with pytest.raises(ValueError, match="algo must be one of"):
        AgentConfig(algo="td3")
    with pytest.raises(ValueError, match="gamma must be in"):
        AgentConfig(gamma=1.0)
    with pytest.raises(ValueError, match="policy_delay must be a positive int"):
        AgentConfig(policy_delay=0)
    with pytest.raises(ValueError, match=r"critic_form must be one of \['dsac_v2', 'nll'"):
        AgentConfig(critic_form="huber")
    with pytest.raises(ValueError, match="Agent: act_dim must be a positive int"):
        Agent(AgentConfig(), 3, 0)
    agent = Agent(AgentConfig(algo="dsac_e", policy_delay=2, **SMALL), 3, 1)
    with pytest.raises(TypeError, match="Agent.init: key must be a jax.random.key"):
        agent.init(0)
    s = agent.init(jax.random.key(0))
    with pytest.raises(ValueError, match="num_updates must be a positive multiple of policy_d"):
        agent.update(s, _buffer(), 3)
    small = replay_add(replay_init(16, 3, 1), jax.tree.map(lambda x: x[:4], _buffer().data))
    with pytest.raises(ValueError, match=r"batch_size 8 is larger than the filled buffer \(4"):
        agent.update(s, small, 2)
    with pytest.raises(ValueError, match=r"learning_starts \(4\) must be >= batch_size \(8\)"):
        make_train(dict(algo="sac", **SMALL), buffer_size=100, learning_starts=4)
    with pytest.raises(ValueError, match="unknown key"):
        make_train({"algo": "sac", "bogus": 1}, buffer_size=100, learning_starts=10)
    with pytest.raises(TypeError, match="make_train: env must be a tecrl.envs.JaxEnv, got dict"):
        make_train(dict(algo="sac", **SMALL), buffer_size=100, learning_starts=10, env={})
    with pytest.raises(TypeError, match="pendulum_env: params must be a PendulumParams, got"):
        pendulum_env({})
    tr = make_train(dict(algo="sac", **SMALL), buffer_size=100, learning_starts=10)
    with pytest.raises(TypeError, match="OnDeviceTrainer.init: key must be a jax.random.key"):
        tr.init(np.zeros((2, 2), np.uint32))
    with pytest.raises(ValueError, match=r"keys must be a non-empty 1-D array of keys"):
        tr.init(jax.random.split(jax.random.key(0), (2, 2)))
    with pytest.raises(ValueError, match="num_steps must be a positive multiple of policy_delay=2"):
        tr.check_steps(0)
    with pytest.raises(ValueError, match="the agent must have obs_dim=3, act_dim=1"):
        OnDeviceTrainer(Agent(AgentConfig(**SMALL), 4, 1), buffer_size=100, learning_starts=10)
    with pytest.raises(FloatingPointError, match="reward has non-finite values"):
        check_finite("env", reward=np.array([1.0, np.nan]))
