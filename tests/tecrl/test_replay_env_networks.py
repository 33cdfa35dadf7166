"""Replay buffer (ring wraparound, sampling), JAX Pendulum vs gymnasium, policy log-probs."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from tecrl import networks, pendulum
from tecrl.replay import Transition, replay_add, replay_init, replay_sample


def _batch(values, obs_dim=2, act_dim=1):
    v = jnp.asarray(values, jnp.float32)
    n = v.shape[0]
    return Transition(jnp.tile(v[:, None], (1, obs_dim)), jnp.tile(v[:, None], (1, act_dim)),
                      v, jnp.tile(v[:, None] + 0.5, (1, obs_dim)), jnp.zeros(n))


def test_replay_wraparound():
    buf = replay_init(5, 2, 1)
    buf = replay_add(buf, _batch([1, 2, 3]))
    assert int(buf.ptr) == 3 and int(buf.size) == 3
    buf = jax.jit(replay_add)(buf, _batch([4, 5, 6, 7]))
    # slots: 0<-6, 1<-7, 2<-3, 3<-4, 4<-5 ; pointer after 7 writes is 7 % 5 = 2
    np.testing.assert_array_equal(buf.data.reward, [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(buf.data.next_obs[:, 0], [6.5, 7.5, 3.5, 4.5, 5.5])
    assert int(buf.ptr) == 2 and int(buf.size) == 5


def test_replay_sampling_uniform_over_filled_part():
    buf = replay_add(replay_init(100, 2, 1), _batch(np.arange(10)))
    s = jax.jit(replay_sample, static_argnums=2)(buf, jax.random.key(0), 20000)
    r = np.asarray(s.reward)
    assert set(np.unique(r)) == set(range(10))  # never the 90 empty slots
    np.testing.assert_array_equal(s.obs[:, 0], r)  # rows stay aligned across fields
    counts = np.bincount(r.astype(int), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_replay_bad_inputs():
    with pytest.raises(ValueError, match="replay_init: capacity must be a positive int, got 0"):
        replay_init(0, 2, 1)
    buf = replay_add(replay_init(5, 2, 1), _batch([1, 2]))
    with pytest.raises(ValueError, match=r"batch_size 3 is larger than the filled buffer \(2"):
        replay_sample(buf, jax.random.key(0), 3)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        replay_sample(buf, jax.random.key(0), 0)
    with pytest.raises(ValueError, match=r"batch.obs must have shape \[N, \*\(2,\)\]"):
        replay_add(buf, _batch([1.0], obs_dim=3))
    with pytest.raises(ValueError, match="cannot add 6 transitions to a buffer of capacity 5"):
        replay_add(buf, _batch(np.arange(6)))
    with pytest.raises(TypeError, match="batch must be a Transition"):
        replay_add(buf, (1, 2))


def test_jax_pendulum_matches_gymnasium_step_by_step():
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    step = jax.jit(pendulum.pendulum_step)
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        th, thdot = env.unwrapped.state
        state = pendulum.PendulumState(jnp.float32(th), jnp.float32(thdot), jnp.int32(0))
        np.testing.assert_allclose(pendulum.pendulum_obs(state), obs, atol=1e-6)
        for t in range(200):
            # re-sync from gymnasium's float64 state so float32 rounding cannot accumulate
            th, thdot = env.unwrapped.state
            state = pendulum.PendulumState(jnp.float32(th), jnp.float32(thdot), jnp.int32(t))
            a = rng.uniform(-3, 3, size=(1,)).astype(np.float32)  # beyond the bounds: clipped
            obs, r, term, trunc, _ = env.step(a)
            state, jobs, jr, jterm, jtrunc = step(state, a)
            np.testing.assert_allclose(jobs, obs, atol=1e-4)
            np.testing.assert_allclose(jr, r, rtol=1e-5, atol=1e-4)
            assert bool(jterm) == term and bool(jtrunc) == trunc
        assert trunc


def test_jax_pendulum_free_run_close_to_gymnasium():
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    th, thdot = env.unwrapped.state
    state = pendulum.PendulumState(jnp.float32(th), jnp.float32(thdot), jnp.int32(0))
    total_g, total_j = 0.0, 0.0
    for _ in range(50):
        a = np.array([0.7], np.float32)
        obs, r, *_ = env.step(a)
        state, jobs, jr, *_ = pendulum.pendulum_step(state, a)
        total_g += r
        total_j += float(jr)
    np.testing.assert_allclose(jobs, obs, atol=1e-3)
    np.testing.assert_allclose(total_j, total_g, rtol=1e-4)


def test_pendulum_reset_distribution_and_bad_inputs():
    states, obs = jax.vmap(pendulum.pendulum_reset)(jax.random.split(jax.random.key(0), 2000))
    assert float(jnp.abs(states.theta).max()) <= np.pi
    assert float(jnp.abs(states.theta_dot).max()) <= 1.0
    uniform = stats.uniform(-np.pi, 2 * np.pi).cdf
    assert stats.kstest(np.asarray(states.theta), uniform).pvalue > 1e-3
    with pytest.raises(TypeError, match="pendulum_reset: key must be a jax.random.key"):
        pendulum.pendulum_reset(np.zeros(2, np.uint32))
    s, _ = pendulum.pendulum_reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"action must have shape \(1,\), got \(2,\)"):
        pendulum.pendulum_step(s, jnp.zeros(2))
    with pytest.raises(TypeError, match="pendulum_obs: state must be a PendulumState, got tuple"):
        pendulum.pendulum_obs((0.0, 0.0))
    with pytest.raises(TypeError, match="pendulum_step: state must be a PendulumState"):
        pendulum.pendulum_step((0.0, 0.0), jnp.zeros(1))


def test_squashed_gaussian_log_prob_matches_change_of_variables():
    mu, log_std = jnp.array([0.3, -1.0]), jnp.array([-0.5, 0.2])
    a, lp = networks.squashed_gaussian_sample(jax.random.key(1), mu, log_std)
    u = np.arctanh(np.asarray(a, np.float64))
    expect = (stats.norm.logpdf(u, np.asarray(mu), np.exp(np.asarray(log_std)))
              - np.log(1 - np.tanh(u) ** 2)).sum()
    np.testing.assert_allclose(lp, expect, rtol=1e-4)


def test_networks_shapes_and_bad_inputs():
    c = networks.Critic(3, 2, (8,), rngs=nnx.Rngs(0))
    m, s = c(jnp.ones((4, 3)), jnp.ones((4, 2)))
    assert m.shape == (4,) and bool(jnp.all(s > 0))
    p = networks.Policy(3, 2, (8,), rngs=nnx.Rngs(0))
    mu, ls = p(100 * jnp.ones((4, 3)))
    assert mu.shape == (4, 2) and float(ls.max()) <= 0.5 and float(ls.min()) >= -20
    with pytest.raises(ValueError, match="Critic: activation must be one of"):
        networks.Critic(3, 2, (8,), "swish2", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="Policy: hidden must be a non-empty list"):
        networks.Policy(3, 2, (), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="Policy: obs_dim and act_dim must be positive"):
        networks.Policy(0, 2, (8,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mu, log_std must share a shape|must share a shape"):
        networks.squashed_gaussian_log_prob(jnp.ones(2), jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="squashed_gaussian_sample: mu and log_std"):
        networks.squashed_gaussian_sample(jax.random.key(0), jnp.ones(2), jnp.ones(3))
