"""Finite MDPs, features and the sampler against independent computations; bad inputs."""

import jax
import numpy as np
import pytest

import lstdq as L


def test_random_mdp_and_sampler_frequencies():
    mdp = L.random_mdp(jax.random.key(0), 4, 2)
    np.testing.assert_allclose(mdp.transitions.sum(-1), 1.0)
    pi = L.random_policy(jax.random.key(1), 4, 2)
    mu = L.random_policy(jax.random.key(2), 4, 2) / 4
    phi = L.one_hot_features(4, 2)
    n = 200_000
    ds = L.sample_dataset(jax.random.key(3), mdp, pi, mu, phi, 0.9, n)
    freq = np.asarray(ds.features).mean(0).reshape(4, 2)
    np.testing.assert_allclose(freq, mu, atol=4 * np.sqrt(0.25 / n))
    # E[phi_bar(s') | (s, a)] = sum_s' P(s'|s,a) pi(.|s')
    sa = np.asarray(ds.features).argmax(1)
    nxt = np.asarray(ds.next_features).reshape(n, 4, 2).sum(-1)  # one-hot of s'
    emp = np.stack([nxt[sa == i].mean(0) for i in range(8)]).reshape(4, 2, 4)
    np.testing.assert_allclose(emp, mdp.transitions, atol=0.02)
    np.testing.assert_allclose(np.asarray(ds.rewards), mdp.rewards.reshape(-1)[sa], rtol=1e-6)
    assert np.all(np.asarray(ds.discounts) == np.float32(0.9))


def test_linear_mdp_is_bellman_complete():
    mdp, phi = L.linear_mdp(jax.random.key(0), 12, 3, 4)
    np.testing.assert_allclose(mdp.transitions.sum(-1), 1.0)
    pi = L.random_policy(jax.random.key(1), 12, 3)
    flat = phi.reshape(36, 4)
    pphi = L.policy_transition(mdp, pi) @ flat
    resid = pphi - flat @ np.linalg.lstsq(flat, pphi, rcond=None)[0]
    assert np.abs(resid).max() < 1e-10
    q = L.exact_q(mdp, pi, 0.9).reshape(-1)
    assert np.abs(q - flat @ np.linalg.lstsq(flat, q, rcond=None)[0]).max() < 1e-10


def test_chain_and_feature_families():
    mdp = L.chain_mdp(5, slip=0.2)
    np.testing.assert_allclose(mdp.transitions.sum(-1), 1.0)
    right = np.tile([0.0, 1.0], (5, 1))
    # always right from state 0: reach the end after geometric waits; check via simulation
    q = L.exact_q(mdp, right, 0.9)
    v_end = 1 / (1 - 0.9)
    assert q[4, 1] == pytest.approx(v_end)
    assert q[3, 1] == pytest.approx(0.8 * 0.9 * v_end / (1 - 0.2 * 0.9))
    mu = L.chain_behavior(5, 0.5, right_prob=0.7)
    assert mu.sum() == pytest.approx(1.0) and mu[0, 1] / mu[0, 0] == pytest.approx(0.7 / 0.3)
    assert mu[1].sum() / mu[0].sum() == pytest.approx(0.5)
    agg = L.aggregated_features(np.array([0, 0, 1, 1, 2]), 2)
    assert agg.shape == (5, 2, 6) and np.all(agg.sum(-1) == 1) and agg[1, 1, 1] == 1
    q = L.exact_q(L.random_mdp(jax.random.key(4), 5, 2), L.random_policy(jax.random.key(5), 5, 2),
                  0.9)
    phi = L.realizable_features(jax.random.key(6), q, 3).reshape(10, 3)
    assert np.abs(phi @ np.linalg.lstsq(phi, q.reshape(-1), rcond=None)[0] - q.reshape(-1)
                  ).max() < 1e-10
    bad = L.misspecified_features(jax.random.key(6), q, 3, 0.5).reshape(10, 3)
    assert np.abs(bad @ np.linalg.lstsq(bad, q.reshape(-1), rcond=None)[0] - q.reshape(-1)
                  ).max() > 1e-3
    mix = L.mixture(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25)
    np.testing.assert_allclose(mix, [0.25, 0.75])


def test_bad_inputs():
    mdp = L.random_mdp(jax.random.key(0), 3, 2)
    pi = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"policy probabilities must sum to 1 \(row \(1,\)\), "
                                         r"got 0.9"):
        L.exact_q(mdp, np.array([[0.5, 0.5], [0.5, 0.4], [0.5, 0.5]]), 0.9)
    with pytest.raises(ValueError, match="policy has negative probabilities"):
        L.exact_q(mdp, np.array([[1.5, -0.5], [0.5, 0.5], [0.5, 0.5]]), 0.9)
    with pytest.raises(ValueError, match=r"policy must have shape \(3, 2\)"):
        L.occupancy(mdp, np.full((2, 2), 0.5), 0.9)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\), got 1.0"):
        L.exact_q(mdp, pi, 1.0)
    with pytest.raises(TypeError, match="mdp must be a FiniteMDP"):
        L.policy_value({"P": 1}, pi, 0.9)
    with pytest.raises(ValueError, match="mdp.transitions probabilities must sum to 1"):
        L.exact_q(mdp._replace(transitions=mdp.transitions * 2), pi, 0.9)
    with pytest.raises(TypeError, match="key must be a typed jax.random.key"):
        L.random_mdp(0, 3, 2)
    with pytest.raises(ValueError, match="num_states must be a positive int"):
        L.random_mdp(jax.random.key(0), 0, 2)
    with pytest.raises(ValueError, match="next_action must be 'expected' or 'sampled'"):
        L.make_sampler(mdp, pi, pi / 3, L.one_hot_features(3, 2), 0.9, next_action="max")
    with pytest.raises(ValueError, match=r"behavior probabilities must sum to 1, got 3"):
        L.make_sampler(mdp, pi, pi, L.one_hot_features(3, 2), 0.9)
    with pytest.raises(ValueError, match=r"features must have shape \(3, 2, d\)"):
        L.init_features(mdp, pi, np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="n must be a positive int"):
        L.sample_dataset(jax.random.key(0), mdp, pi, pi / 3, L.one_hot_features(3, 2), 0.9, 0)
    with pytest.raises(ValueError, match=r"policy_transition: policy probabilities must sum"):
        L.policy_transition(mdp, np.full((3, 2), 0.4))
    with pytest.raises(ValueError, match=r"population_stats: gamma must be in \[0, 1\), got 1.0"):
        L.population_stats(mdp, pi, pi / 3, L.one_hot_features(3, 2), 1.0)
    with pytest.raises(ValueError, match="sampler_tables: behavior probabilities must sum to 1"):
        L.sampler_tables(mdp, pi, pi, L.one_hot_features(3, 2), 0.9)
    tables = L.sampler_tables(mdp, pi, pi / 3, L.one_hot_features(3, 2), 0.9)
    with pytest.raises(ValueError, match="sample_from_tables: next_action must be 'expected' or"):
        L.sample_from_tables(jax.random.key(0), tables, 10, next_action="max")
    with pytest.raises(ValueError, match="random_policy: concentration must be > 0, got 0.0"):
        L.random_policy(jax.random.key(0), 3, 2, concentration=0.0)
    with pytest.raises(ValueError, match="linear_mdp: dim must be a positive int, got 0"):
        L.linear_mdp(jax.random.key(0), 3, 2, 0)
    with pytest.raises(ValueError, match="random_features: scale must be > 0, got 0.0"):
        L.random_features(jax.random.key(0), 3, 2, 2, scale=0.0)
    with pytest.raises(ValueError, match="misspecified_features: noise must be >= 0, got -1.0"):
        L.misspecified_features(jax.random.key(0), np.ones((3, 2)), 2, -1.0)
    with pytest.raises(ValueError, match="decay must be > 0"):
        L.chain_behavior(4, 0.0)
    with pytest.raises(ValueError, match="slip must be in"):
        L.chain_mdp(4, slip=1.0)
    with pytest.raises(ValueError, match="groups must use every label"):
        L.aggregated_features(np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"dim must be in \[2, 6\]"):
        L.realizable_features(jax.random.key(0), np.ones((3, 2)), 7)
    with pytest.raises(ValueError, match="weight must be in"):
        L.mixture(np.ones(2) / 2, np.ones(2) / 2, 1.5)
