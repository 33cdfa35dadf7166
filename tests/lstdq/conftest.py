"""Shared fixtures: small MDPs whose ground truth the tests compute by exact linear algebra."""

import jax
import numpy as np
import pytest

import lstdq as L


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def bellman_q(mdp, pi, gamma, iters=3000):
    """Q^pi by value iteration (independent of ``lstdq.exact_q``'s linear solve)."""
    q = np.zeros_like(mdp.rewards)
    for _ in range(iters):
        v = (pi * q).sum(1)
        q = mdp.rewards + gamma * mdp.transitions @ v
    return q


def occupancy_series(mdp, pi, gamma, iters=3000):
    """d^pi(s,a) by summing (1-gamma) sum_t gamma^t Pr(s_t, a_t) forward in time."""
    state = mdp.initial.copy()
    total = np.zeros_like(pi)
    disc = 1.0
    for _ in range(iters):
        sa = state[:, None] * pi
        total += disc * sa
        state = np.einsum("sa,sat->t", sa, mdp.transitions)
        disc *= gamma
    return (1 - gamma) * total


@pytest.fixture
def realizable_problem():
    k = jax.random.split(jax.random.key(3), 4)
    mdp = L.random_mdp(k[0], 7, 3)
    pi = L.random_policy(k[1], 7, 3)
    gamma = 0.8
    q = bellman_q(mdp, pi, gamma)
    phi = L.realizable_features(k[2], q, 5)
    mu = L.random_policy(k[3], 7, 3, concentration=3.0) / 7
    return mdp, pi, gamma, q, phi, mu
