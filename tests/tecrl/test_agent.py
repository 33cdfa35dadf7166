"""Agent update timing (policy delay, Polyak targets), losses wired as documented, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tecrl import losses as L
from tecrl.agent import Agent, AgentConfig
from tecrl.loop import OnDeviceTrainer, check_finite, make_train
from tecrl.replay import Transition, replay_add, replay_init, replay_sample

SMALL = dict(hidden=(8,), batch_size=8, actor_lr=1e-2, critic_lr=1e-2, alpha_lr=1e-2)


def _buffer(n=64):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    tr = Transition(jax.random.normal(k1, (n, 3)), jax.random.uniform(k2, (n, 1), minval=-1),
                    jax.random.normal(k3, (n,)), jax.random.normal(k1, (n, 3)) + 0.1,
                    (jnp.arange(n) % 7 == 0).astype(jnp.float32))
    return replay_add(replay_init(n, 3, 1), tr)


def _close(a, b):
    return all(bool(jnp.allclose(x, y, atol=1e-6)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _polyak(t, o, tau):
    return jax.tree.map(lambda a, b: (1 - tau) * a + tau * b, t, o)


@pytest.fixture(scope="module")
def dsac_t():
    agent = Agent(AgentConfig(algo="dsac_t", tau=0.5, policy_delay=2, **SMALL), 3, 1)
    return agent, agent.init(jax.random.key(1)), _buffer()


def test_policy_and_targets_move_every_second_critic_step(dsac_t):
    agent, s0, buf = dsac_t
    s, _ = jax.jit(agent.update, static_argnums=2)(s0, buf, 2)  # same compile as below
    assert int(s.critic_steps) == 2 and int(s.actor_steps) == 1
    # one block = critic, critic, actor: replay it by hand with the same keys
    @jax.jit
    def by_hand(s0):
        k, st, mids = s0.key, s0, []
        for _ in range(2):
            k, kb = jax.random.split(k)
            batch = replay_sample(buf, kb, 8)
            st, _ = agent.critic_step(st._replace(key=k), batch)
            k = st.key
            mids.append(st)
        return mids, agent.actor_step(st, batch)[0]

    mids, st = by_hand(s0)
    for mid in mids:  # critic steps leave the policy and all targets alone
        assert _close(mid.policy, s0.policy) and _close(mid.critic_target, s0.critic_target)
        assert _close(mid.policy_target, s0.policy_target)
    assert not _close(mids[-1].critic, s0.critic)
    assert not _close(st.policy, s0.policy)
    assert _close(st.critic_target, _polyak(s0.critic_target, st.critic, 0.5))
    assert _close(st.policy_target, _polyak(s0.policy_target, st.policy, 0.5))
    assert _close(st.policy, s.policy) and _close(st.critic, s.critic)
    update = jax.jit(agent.update, static_argnums=2)
    s4, _ = update(update(s0, buf, 2)[0], buf, 2)
    assert int(s4.critic_steps) == 4 and int(s4.actor_steps) == 2


def test_dsac_t_critic_step_uses_bounded_target_and_std_ema(dsac_t):
    agent, s0, buf = dsac_t
    batch = jax.tree.map(lambda x: x[:8], buf.data)

    @jax.jit
    def by_hand(s0):
        k = jax.random.split(s0.key)[1]
        y, aux = agent.critic_targets(s0, batch, k)
        m, s = agent.twin_apply(s0.critic, batch.obs, batch.action)
        ema = jnp.mean(s, axis=1)  # first step: EMA starts at the batch mean
        yb = [L.bounded_target(m[i], aux["y_s"], ema[i]) for i in range(2)]

        def loss(p):
            mm, ss = agent.twin_apply(p, batch.obs, batch.action)
            return sum(L.dsac_t_critic_loss(mm[i], ss[i], y, yb[i], ema[i]) for i in range(2))

        g = jax.grad(loss)(s0.critic)
        upd, _ = agent.critic_tx.update(g, s0.critic_opt, s0.critic)
        return ema, jax.tree.map(lambda a, b: a + b, s0.critic, upd)

    ema, critic = by_hand(s0)
    s1, _ = jax.jit(agent.critic_step)(s0, batch)
    np.testing.assert_allclose(s1.std_ema, ema, rtol=1e-6)
    assert _close(s1.critic, critic)


def test_sac_target_uses_current_policy_and_dsac_e_reward_target_has_no_entropy():
    buf = _buffer()
    batch = jax.tree.map(lambda x: x[:8], buf.data)
    k = jax.random.key(3)
    sac = Agent(AgentConfig(algo="sac", policy_delay=1, initial_alpha=0.5, **SMALL), 3, 1)
    s = sac.init(jax.random.key(2))
    y, _ = sac.critic_targets(s, batch, k)
    a2, lp2 = sac.sample(s.policy, batch.next_obs, jax.random.split(k)[0])
    m2, _ = sac.twin_apply(s.critic_target, batch.next_obs, a2)
    disc = 0.99 * (1 - batch.terminated)
    np.testing.assert_allclose(y, batch.reward + disc * (jnp.minimum(m2[0], m2[1]) - 0.5 * lp2),
                               rtol=1e-5, atol=1e-5)
    e = Agent(AgentConfig(algo="dsac_e", initial_alpha=5.0, **SMALL), 3, 1)
    s = e.init(jax.random.key(2))
    y, _ = e.critic_targets(s, batch, k)
    a2, _ = e.sample(s.policy_target, batch.next_obs, jax.random.split(k)[0])
    m2, _ = e.twin_apply(s.critic_target, batch.next_obs, a2)
    np.testing.assert_allclose(y, batch.reward + disc * jnp.minimum(m2[0], m2[1]),
                               rtol=1e-5, atol=1e-5)


def test_dsac_e_alpha_is_dual_variable_of_trajectory_budget():
    e = Agent(AgentConfig(algo="dsac_e", rho=2.0, gamma=0.9, **SMALL), 3, 1)
    assert e.entropy_budget == pytest.approx(2.0 * -1.0 / 0.1)
    s = e.init(jax.random.key(0))
    buf = _buffer()
    s1, m = jax.jit(e.actor_step)(s, jax.tree.map(lambda x: x[:8], buf.data))
    # an untrained policy's trajectory entropy is far above the (negative) budget: alpha drops
    assert float(m["trajectory_entropy"]) > e.entropy_budget
    assert float(s1.log_alpha) < float(s.log_alpha)
    assert float(m["constraint_violation"]) == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lr'\]; the agent knows"):
        AgentConfig.from_mapping({"algo": "sac", "lr": 1e-3})
    with pytest.raises(ValueError, match="algo must be one of"):
        AgentConfig(algo="td3")
    with pytest.raises(ValueError, match="gamma must be in"):
        AgentConfig(gamma=1.0)
    with pytest.raises(ValueError, match="policy_delay must be a positive int"):
        AgentConfig(policy_delay=0)
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
