"""Losses on hand-computed tiny batches (numbers worked out in numpy, not by the code)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tecrl import losses as L

F = lambda *x: jnp.array(x, jnp.float32)  # noqa: E731


def test_sac_critic_loss_hand_computed():
    q1, q2 = F(1.0, 2.0), F(0.5, 3.0)
    nq1, nq2 = F(4.0, -1.0), F(3.0, 0.0)
    nlp, r, disc = F(-0.5, 1.0), F(1.0, 0.0), F(0.9, 0.0)
    alpha = 0.2
    # y_0 = 1 + 0.9 * (min(4, 3) - 0.2 * -0.5) = 1 + 0.9 * 3.1 = 3.79 ; y_1 = 0 (terminal)
    y = np.array([3.79, 0.0])
    expect = 0.5 * np.mean((np.array([1.0, 2.0]) - y) ** 2) + 0.5 * np.mean(
        (np.array([0.5, 3.0]) - y) ** 2)
    loss, got_y = L.sac_critic_loss(q1, q2, nq1, nq2, nlp, r, disc, jnp.float32(alpha))
    np.testing.assert_allclose(got_y, y, rtol=1e-6)
    np.testing.assert_allclose(loss, expect, rtol=1e-6)
    # the gradient flows into q1 only through (q1 - y): d/dq1 = (q1 - y) / B
    g = jax.grad(lambda q: L.sac_critic_loss(q, q2, nq1, nq2, nlp, r, disc, 0.2)[0])(q1)
    np.testing.assert_allclose(g, (np.array([1.0, 2.0]) - y) / 2, rtol=1e-6)


def test_actor_and_dsac_e_actor_loss_hand_computed():
    lp, q1, q2 = F(-1.0, 0.5), F(2.0, 1.0), F(3.0, -1.0)
    # mean(0.1*lp - min) = mean(-0.1 - 2, 0.05 + 1) = (-2.1 + 1.05) / 2
    np.testing.assert_allclose(L.actor_loss(lp, q1, q2, 0.1), -0.525, rtol=1e-6)
    qe = F(-3.0, 4.0)
    # -mean(min + a(-lp + qe)) = -mean(2 + 0.1*(1 - 3), -1 + 0.1*(-0.5 + 4)) = -mean(1.8, -0.65)
    np.testing.assert_allclose(L.dsac_e_actor_loss(q1, q2, lp, qe, 0.1), -0.575, rtol=1e-6)


def test_temperature_loss_gradient_is_dual_ascent():
    ent = F(1.0, 3.0)  # mean 2
    g = jax.grad(L.temperature_loss)(jnp.float32(0.3), ent, jnp.float32(5.0))
    np.testing.assert_allclose(g, 2.0 - 5.0)  # entropy below target: log alpha grows
    np.testing.assert_allclose(L.temperature_loss(0.3, ent, 5.0), 0.3 * -3.0, rtol=1e-6)


def test_sampled_return_and_twin_min():
    z = F(5.0, -0.5, -4.0)
    np.testing.assert_allclose(L.sampled_return(F(1.0, 1.0, 1.0), F(2.0, 2.0, 2.0), z),
                               [7.0, 0.0, -5.0])
    m, s = L.twin_min(F(1.0, 5.0, 2.0), F(10.0, 50.0, 20.0), F(3.0, 4.0, 2.0),
                      F(30.0, 40.0, 21.0))
    np.testing.assert_allclose(m, [1.0, 4.0, 2.0])
    np.testing.assert_allclose(s, [10.0, 40.0, 21.0])  # tie goes to critic 2


def test_dsac_t_targets_and_bounded_target_clipping():
    r, disc = F(1.0, 0.0), F(0.5, 0.5)
    y, ys = L.dsac_t_targets(r, disc, F(2.0, 4.0), F(10.0, -6.0), F(-1.0, 0.0), 0.5)
    np.testing.assert_allclose(y, [1 + 0.5 * 2.5, 0.5 * 4.0])
    np.testing.assert_allclose(ys, [1 + 0.5 * 10.5, 0.5 * -6.0])
    # y_b = q + clip(y_s - q, -3 s, 3 s) with s = 0.5: bound 1.5
    q = F(2.0, 2.0, 2.0)
    yb = L.bounded_target(q, F(10.0, 2.7, -4.0), jnp.float32(0.5))
    np.testing.assert_allclose(yb, [3.5, 2.7, 0.5], rtol=1e-6)
    # no gradient through the bounded target
    g = jax.grad(lambda qq: jnp.sum(L.bounded_target(qq, F(10.0, 2.7, -4.0), 0.5)))(q)
    np.testing.assert_allclose(g, 0.0)


def test_dsac_t_critic_loss_gradients_match_scaled_nll():
    mean, std = F(1.0, 0.0), F(0.5, 2.0)
    y, yb, ema = F(2.0, -1.0), F(1.5, 3.0), jnp.float32(1.0)
    eps = 0.1
    sd = np.array([0.5, 2.0])
    omega = np.clip(1.0 / (sd**2 + eps), 0.1, 10)  # [2.857.., 0.2439..]
    gm, gs = jax.grad(lambda m, s: L.dsac_t_critic_loss(m, s, y, yb, ema), argnums=(0, 1))(
        mean, std)
    np.testing.assert_allclose(gm, -omega * (np.array([2.0, -1.0]) - [1.0, 0.0]) / 2, rtol=1e-5)
    expect_gs = -omega * ((np.array([1.0, 0.0]) - [1.5, 3.0]) ** 2 - sd**2) / (sd + eps) / 2
    np.testing.assert_allclose(gs, expect_gs, rtol=1e-5)
    # omega is clipped at 10 for a tiny std and at 0.1 for a huge one
    w = L.gradient_weight(F(1e-4, 100.0), jnp.float32(2.0))
    np.testing.assert_allclose(w, [10.0, 0.1])


def test_dsac_t_huber_form_clips_the_mean_gradient():
    mean, std = F(0.0, 0.0), F(1.0, 1.0)
    y, yb, ema = F(0.5, 5.0), F(0.0, 0.0), jnp.float32(1.0)
    gm = jax.grad(lambda m: L.dsac_t_critic_loss(m, std, y, yb, ema, form="huber"))(mean)
    omega = 1.0 / 1.1
    np.testing.assert_allclose(gm, [-omega * 0.5 / 2, -omega * 1.0 / 2], rtol=1e-5)


def test_update_std_ema():
    np.testing.assert_allclose(L.update_std_ema(-1.0, F(1.0, 3.0), 0.1), 2.0)
    np.testing.assert_allclose(L.update_std_ema(1.0, F(1.0, 3.0), 0.1), 0.9 + 0.2, rtol=1e-6)


def test_entropy_critic_target_hand_computed():
    y = L.entropy_critic_target(F(0.9, 0.0), F(-2.0, 1.0), F(10.0, 10.0))
    np.testing.assert_allclose(y, [0.9 * 12.0, 0.0], rtol=1e-6)


def test_entropy_critic_two_state_mdp_closed_form():
    """Fitted Q_e iteration with the loss's gradient reaches (I - gamma P)^-1 gamma P H.

    Two states, two actions with pi(.|s0) = (1/4, 3/4), pi(.|s1) = (1/2, 1/2). Action 0 moves
    to s0 and action 1 to s1. Batches hold every (s, a, a') in proportion to
    pi(a|s) pi(a'|s'), so the batch mean is the exact expectation.
    """
    gamma = 0.9
    pi = np.array([[0.25, 0.75], [0.5, 0.5]])
    H = -(pi * np.log(pi)).sum(1)
    # Q_e(s, a) = gamma * E_{a'}[-log pi(a'|s') + Q_e(s', a')], s' = a; let V(s) = E_a[Q_e(s, a)]
    # Q_e(s, a) = gamma (H(a) + V(a)) and V = pi (gamma (H + V)) -> V = (I - gamma pi)^-1 gamma pi H
    V = np.linalg.solve(np.eye(2) - gamma * pi, gamma * pi @ H)
    q_exact = np.array([[gamma * (H[a] + V[a]) for a in range(2)] for _ in range(2)])
    rows = []
    for s in range(2):
        for a in range(2):
            for a2 in range(2):
                w = int(round(16 * pi[s, a] * pi[a, a2]))
                rows += [(s, a, a2)] * w
    s_i, a_i, a2_i = (np.array(c) for c in zip(*rows, strict=True))
    nlp = jnp.asarray(np.log(pi[a_i, a2_i]), jnp.float32)
    disc = jnp.full(len(rows), gamma, jnp.float32)
    table = jnp.zeros((2, 2))
    # The batch weights (s, a) unevenly, so use an exact per-entry step: the loss's gradient
    # w.r.t. each table entry divided by its batch weight is (Q - mean target of that entry).
    counts = np.zeros((2, 2))
    np.add.at(counts, (s_i, a_i), 1)
    for _ in range(300):
        def loss(t, table=table):
            return L.entropy_critic_loss(t[s_i, a_i], disc, nlp, table[a_i, a2_i])[0]
        g = jax.grad(loss)(table)
        table = table - g * len(rows) / counts
    np.testing.assert_allclose(table, q_exact, rtol=1e-4)


def test_trajectory_entropy_budget():
    assert L.trajectory_entropy_budget(-2.0, 0.99, 1.0) == pytest.approx(-200.0)
    assert L.trajectory_entropy_budget(-2.0, 0.9, 20.0) == pytest.approx(-400.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: L.sac_critic_loss(F(1.0), F(1.0, 2.0), F(1.0), F(1.0), F(1.0), F(1.0), F(1.0),
                                   0.1), r"sac_critic_loss: q2 has shape \(2,\)"),
        (lambda: L.actor_loss(jnp.ones((2, 2)), F(1.0), F(1.0), 0.1),
         r"actor_loss: log_prob must be a 1-D batch \[B\], got shape \(2, 2\)"),
        (lambda: L.actor_loss(F(1.0), F(1.0), F(1.0), F(0.1, 0.2)),
         r"actor_loss: alpha must be a scalar"),
        (lambda: L.temperature_loss(0.0, jnp.ones(2, jnp.int32), 1.0),
         r"temperature_loss: entropy must be floating"),
        (lambda: L.dsac_t_critic_loss(F(1.0), F(1.0), F(1.0), F(1.0), 1.0, form="mse"),
         r"form must be one of"),
        (lambda: L.bounded_target(F(1.0), F(1.0), 1.0, bound=0.0), r"bound must be > 0"),
        (lambda: L.sampled_return(F(1.0), F(1.0), F(1.0), clip=-1.0), r"clip must be > 0"),
        (lambda: L.twin_min(F(), F(), F(), F()), r"twin_min: the batch is empty"),
        (lambda: L.dsac_t_targets(F(1.0), F(1.0), F(1.0), F(1.0), F(1.0, 2.0), 0.1),
         r"next_log_prob has shape"),
        (lambda: L.gradient_weight(F(1.0), 1.0, eps=0.0), r"eps > 0"),
        (lambda: L.update_std_ema(1.0, F(1.0), 0.0), r"rate must be in \(0, 1\]"),
        (lambda: L.entropy_critic_target(F(1.0), F(1.0), F(1.0, 2.0)), r"next_q_e has shape"),
        (lambda: L.entropy_critic_loss(F(1.0, 2.0), F(1.0), F(1.0), F(1.0)),
         r"discount has shape"),
        (lambda: L.dsac_e_actor_loss(F(1.0), F(1.0), F(1.0), F(1.0, 1.0), 0.1),
         r"q_e has shape"),
        (lambda: L.trajectory_entropy_budget(-1.0, 1.0, 1.0), r"gamma must be in \[0, 1\)"),
        (lambda: L.trajectory_entropy_budget(-1.0, 0.9, 0.0), r"rho must be > 0"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
