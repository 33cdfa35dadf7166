"""CartPole testbed: logged data layout, features, Monte-Carlo truth; bad inputs."""

import numpy as np
import pytest

import lstdq as L


def test_collect_and_features():
    rbf = L.make_rbf(2)
    data = L.collect_cartpole(0, 600, epsilon=0.5, gamma=0.9, rbf=rbf, num_envs=8)
    ds = data.dataset
    d = 2 * (2**4 + 1)
    assert ds.features.shape == (600, d) and ds.next_features.shape == (600, d)
    assert set(np.unique(ds.discounts)) <= {np.float32(0.0), np.float32(0.9)}
    assert np.any(ds.discounts == 0)  # some episodes terminated with eps = 0.5
    assert np.all(ds.rewards == 1.0)
    # phi(s, a) has exactly one active action block; phi_bar mixes blocks with pi
    blocks = ds.features.reshape(600, 2, -1)
    assert np.all((blocks[:, 0, 0] == 1) ^ (blocks[:, 1, 0] == 1))
    nb = ds.next_features.reshape(600, 2, -1)
    np.testing.assert_allclose(nb[:, 0, 0] + nb[:, 1, 0], 1.0, rtol=1e-6)
    psi = L.rbf_state_features(rbf, np.zeros((1, 4)))
    assert psi[0, 0] == 1.0 and psi.shape == (1, 17)
    probs = L.target_policy(np.array([[0, 0, 0.1, 0.0], [0, 0, -0.1, 0.0]]))
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs[0, 1] > 0.5 > probs[1, 1]


def test_monte_carlo_value_matches_geometric_bounds():
    j, se = L.monte_carlo_value(0, 200, gamma=0.9)
    assert 1.0 <= j <= 1 / (1 - 0.9) + 1e-9 and se >= 0
    # gamma = 0: J = r_0 = 1 exactly
    assert L.monte_carlo_value(0, 10, gamma=0.0)[0] == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="per_dim must be a positive int"):
        L.make_rbf(0)
    with pytest.raises(ValueError, match=r"obs must have shape \(n, 4\)"):
        L.rbf_state_features(L.make_rbf(2), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="obs contains non-finite"):
        L.target_policy(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        L.collect_cartpole(0, 10, epsilon=2.0, gamma=0.9, rbf=L.make_rbf(2))
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\)"):
        L.monte_carlo_value(0, 10, gamma=1.0)
    with pytest.raises(ValueError, match="num_episodes must be an int >= 2"):
        L.monte_carlo_value(0, 1, gamma=0.9)
    with pytest.raises(ValueError, match=r"policy_features: psi \(n, K\) and probs \(n, A\) "
                                         r"must be 2-D with the same number of rows"):
        L.policy_features(np.ones((5, 3)), np.ones((4, 2)))
