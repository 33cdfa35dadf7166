"""Per-transition losses on hand-computed values and gradients (worked out by hand / numpy)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tecrl import losses as L

F = lambda *x: jnp.array(x, jnp.float32)  # noqa: E731
f32 = jnp.float32
OMEGA_1 = 1.0 / (1.0 + 0.1)  # weight at sigma = sigma_bar = 1: clip(1 / (1 + 0.1), 0.1, 10)


def test_sac_target_and_twin_critic_loss_hand_computed():
    # y_0 = 1 + 0.9 (min(4, 3) - 0.2 * -0.5) = 1 + 0.9 * 3.1 = 3.79 ; y_1 = 0 (terminal)
    y = jax.vmap(L.sac_target, in_axes=(0, 0, 0, 0, 0, None))(
        F(1.0, 0.0), F(0.9, 0.0), F(4.0, -1.0), F(3.0, 0.0), F(-0.5, 1.0), f32(0.2))
    np.testing.assert_allclose(y, [3.79, 0.0], rtol=1e-6)
    loss = jax.vmap(L.twin_critic_loss)(F(1.0, 2.0), F(0.5, 3.0), y)
    np.testing.assert_allclose(loss, [0.5 * 2.79**2 + 0.5 * 3.29**2, 0.5 * 4 + 0.5 * 9],
                               rtol=1e-5)
    # d/dq1 = q1 - y; nothing flows into the target
    g = jax.grad(lambda q, yy: L.twin_critic_loss(q, f32(0.5), yy), argnums=(0, 1))(
        f32(1.0), f32(3.79))
    np.testing.assert_allclose(g, [1.0 - 3.79, 0.0], rtol=1e-6)
    assert jax.grad(lambda lp: L.sac_target(1.0, 0.9, 4.0, 3.0, lp, 0.2))(f32(-0.5)) == 0.0


def test_actor_losses_hand_computed():
    # alpha lp - min(q1, q2): 0.1 * -1 - 2 = -2.1 ; alpha is a constant for the policy
    np.testing.assert_allclose(L.sac_actor_loss(f32(-1.0), f32(2.0), f32(3.0), f32(0.1)), -2.1,
                               rtol=1e-6)
    assert jax.grad(lambda a: L.sac_actor_loss(f32(-1.0), f32(2.0), f32(3.0), a))(f32(0.1)) == 0
    # -(min + a(-lp + qe)) = -(-1 + 0.1 (-0.5 + 4)) = 0.65
    np.testing.assert_allclose(L.dsac_e_actor_loss(f32(1.0), f32(-1.0), f32(0.5), f32(4.0),
                                                   f32(0.1)), 0.65, rtol=1e-6)
    g = jax.grad(L.dsac_e_actor_loss, argnums=(2, 3))(f32(1.0), f32(-1.0), f32(0.5), f32(4.0),
                                                       f32(0.1))
    np.testing.assert_allclose(g, [0.1, -0.1], rtol=1e-6)


def test_temperature_loss_gradient_is_dual_ascent():
    per = jax.vmap(L.temperature_loss, in_axes=(None, 0, None))
    g = jax.grad(lambda la: jnp.mean(per(la, F(1.0, 3.0), f32(5.0))))(f32(0.3))
    np.testing.assert_allclose(g, 2.0 - 5.0)  # entropy 2 below target 5: log alpha grows
    np.testing.assert_allclose(L.temperature_loss(f32(0.3), f32(1.0), f32(5.0)), 0.3 * -4.0,
                               rtol=1e-6)


def test_huber_matches_closed_form():
    x = F(-60.0, -2.0, 0.5, 50.0)
    np.testing.assert_allclose(L.huber(x, 50.0), [50 * (60 - 25), 2.0, 0.125, 1250.0])
    np.testing.assert_allclose(jax.vmap(jax.grad(lambda v: L.huber(v, 50.0)))(x),
                               [-50.0, -2.0, 0.5, 50.0])


def test_sampled_return_and_twin_min():
    z = F(5.0, -0.5, -4.0)
    np.testing.assert_allclose(jax.vmap(L.sampled_return)(F(1.0, 1.0, 1.0), F(2.0, 2.0, 2.0), z),
                               [7.0, 0.0, -5.0])
    m, s = jax.vmap(L.twin_min)(F(1.0, 5.0, 2.0), F(10.0, 50.0, 20.0), F(3.0, 4.0, 2.0),
                                F(30.0, 40.0, 21.0))
    np.testing.assert_allclose(m, [1.0, 4.0, 2.0])
    np.testing.assert_allclose(s, [10.0, 40.0, 21.0])  # tie goes to critic 2


def test_dsac_t_targets_and_bounded_target_clipping():
    y, ys = jax.vmap(L.dsac_t_targets, in_axes=(0, 0, 0, 0, 0, None))(
        F(1.0, 0.0), F(0.5, 0.5), F(2.0, 4.0), F(10.0, -6.0), F(-1.0, 0.0), f32(0.5))
    np.testing.assert_allclose(y, [1 + 0.5 * 2.5, 0.5 * 4.0])
    np.testing.assert_allclose(ys, [1 + 0.5 * 10.5, 0.5 * -6.0])
    # y_b = q + clip(y_s - q, -3 s, 3 s) with s = 0.5: bound 1.5
    bt = jax.vmap(L.bounded_target, in_axes=(0, 0, None))
    q = F(2.0, 2.0, 2.0)
    np.testing.assert_allclose(bt(q, F(10.0, 2.7, -4.0), f32(0.5)), [3.5, 2.7, 0.5], rtol=1e-6)
    g = jax.grad(lambda qq: jnp.sum(bt(qq, F(10.0, 2.7, -4.0), f32(0.5))))(q)
    np.testing.assert_allclose(g, 0.0)  # no gradient through the bounded target


def _grads(form, q, s, y, yb, ema=1.0, **kw):
    fn = functools.partial(L.dsac_t_critic_loss, form=form, **kw)
    return jax.grad(fn, argnums=(0, 1))(f32(q), f32(s), f32(y), f32(yb), f32(ema))


def test_dsac_v2_form_is_the_authors_loss_hand_computed():
    """omega (h(Q - y) + sigma (sigma_d^2 - h(q_d - y_b)) / (sigma_d + 0.1)), h = Huber(50)."""
    # Q = 0, sigma = 1, y = 40, y_b = 2, sigma_bar = 1: omega = 1 / 1.1
    loss = L.dsac_t_critic_loss(f32(0.0), f32(1.0), f32(40.0), f32(2.0), f32(1.0))
    np.testing.assert_allclose(loss, OMEGA_1 * (800.0 + 1.0 * (1.0 - 2.0) / 1.1), rtol=1e-6)
    gq, gs = _grads("dsac_v2", 0.0, 1.0, 40.0, 2.0)
    np.testing.assert_allclose(gq, OMEGA_1 * -40.0, rtol=1e-6)  # ~ -36.4: not clipped at 40
    np.testing.assert_allclose(gs, OMEGA_1 * (1.0 - 2.0) / 1.1, rtol=1e-6)
    gq, _ = _grads("dsac_v2", 0.0, 1.0, 60.0, 2.0)
    np.testing.assert_allclose(gq, OMEGA_1 * -50.0, rtol=1e-6)  # clipped at delta = 50
    # |Q - y_b| = 2: the variance gradient vanishes at sigma = 2 / sqrt(2) (h(2) = 2)
    s = np.sqrt(2.0)
    w = np.clip(1.0 / (s**2 + 0.1), 0.1, 10)
    np.testing.assert_allclose(_grads("dsac_v2", 0.0, s, 0.0, 2.0)[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(_grads("dsac_v2", 0.0, 2.0, 0.0, 2.0)[1],
                               np.clip(1 / 4.1, 0.1, 10) * (4.0 - 2.0) / 2.1, rtol=1e-5)
    assert w > 0
    # beyond delta the variance term uses the linear part: h(60) = 50 (60 - 25)
    _, gs = _grads("dsac_v2", 0.0, 1.0, 0.0, 60.0, ema=1.0, huber_delta=50.0)
    np.testing.assert_allclose(gs, OMEGA_1 * (1.0 - 1750.0) / 1.1, rtol=1e-5)


def test_nll_and_huber_mean_forms_hand_computed():
    gq, gs = _grads("nll", 0.0, 1.0, 40.0, 2.0)
    np.testing.assert_allclose(gq, OMEGA_1 * -40.0, rtol=1e-6)
    np.testing.assert_allclose(gs, OMEGA_1 * (1.0 - 4.0) / 1.1, rtol=1e-6)
    # the paper's NLL form: variance gradient zero at sigma = |Q - y_b| = 2
    np.testing.assert_allclose(_grads("nll", 0.0, 2.0, 0.0, 2.0)[1], 0.0, atol=1e-6)
    gq, gs = _grads("huber_mean", 0.0, 1.0, 40.0, 2.0, huber_delta=1.0)
    np.testing.assert_allclose(gq, OMEGA_1 * -1.0, rtol=1e-6)
    np.testing.assert_allclose(gs, OMEGA_1 * (1.0 - 4.0) / 1.1, rtol=1e-6)
    # omega is clipped at 10 for a tiny std and at 0.1 for a huge one
    w = jax.vmap(L.gradient_weight, in_axes=(0, None))(F(1e-4, 100.0), f32(2.0))
    np.testing.assert_allclose(w, [10.0, 0.1])
    np.testing.assert_allclose(L.gradient_weight(f32(0.5), f32(1.0)), 1 / 0.35, rtol=1e-6)


def test_update_std_ema():
    np.testing.assert_allclose(L.update_std_ema(f32(-1.0), f32(2.0), 0.1), 2.0)
    np.testing.assert_allclose(L.update_std_ema(f32(1.0), f32(2.0), 0.1), 0.9 + 0.2, rtol=1e-6)


def test_entropy_critic_target_hand_computed():
    y = jax.vmap(L.entropy_critic_target)(F(0.9, 0.0), F(-2.0, 1.0), F(10.0, 10.0))
    np.testing.assert_allclose(y, [0.9 * 12.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(L.entropy_critic_loss(f32(3.0), f32(1.0)), 2.0)


def test_entropy_critic_two_state_mdp_closed_form():
    """Fitted Q_e iteration with the loss's gradient reaches (I - gamma P)^-1 gamma P H.

    Two states, two actions with pi(.|s0) = (1/4, 3/4), pi(.|s1) = (1/2, 1/2). Action 0 moves
    to s0 and action 1 to s1. Batches hold every (s, a, a') in proportion to
    pi(a|s) pi(a'|s'), so the batch mean is the exact expectation.
    """
    gamma = 0.9
    pi = np.array([[0.25, 0.75], [0.5, 0.5]])
    H = -(pi * np.log(pi)).sum(1)
    V = np.linalg.solve(np.eye(2) - gamma * pi, gamma * pi @ H)
    q_exact = np.array([[gamma * (H[a] + V[a]) for a in range(2)] for _ in range(2)])
    rows = []
    for s in range(2):
        for a in range(2):
            for a2 in range(2):
                rows += [(s, a, a2)] * int(round(16 * pi[s, a] * pi[a, a2]))
    s_i, a_i, a2_i = (np.array(c) for c in zip(*rows, strict=True))
    nlp = jnp.asarray(np.log(pi[a_i, a2_i]), jnp.float32)
    disc = jnp.full(len(rows), gamma, jnp.float32)
    table = jnp.zeros((2, 2))
    counts = np.zeros((2, 2))
    np.add.at(counts, (s_i, a_i), 1)
    for _ in range(300):
        def loss(t, table=table):
            y = jax.vmap(L.entropy_critic_target)(disc, nlp, table[a_i, a2_i])
            return jnp.mean(jax.vmap(L.entropy_critic_loss)(t[s_i, a_i], y))
        g = jax.grad(loss)(table)
        table = table - g * len(rows) / counts
    np.testing.assert_allclose(table, q_exact, rtol=1e-4)


def test_trajectory_entropy_budget():
    assert L.trajectory_entropy_budget(-6.0, 1.0) == pytest.approx(-6.0)
    assert L.trajectory_entropy_budget(-17.0, 20.0) == pytest.approx(-340.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: L.sac_target(F(1.0, 2.0), 1.0, 1.0, 1.0, 1.0, 0.1),
         r"sac_target: reward must be a scalar \(one transition; batch with jax.vmap\), got "
         r"shape \(2,\)"),
        (lambda: L.sac_actor_loss(jnp.ones((2, 2)), 1.0, 1.0, 0.1),
         r"sac_actor_loss: log_prob must be a scalar"),
        (lambda: L.temperature_loss(0.0, jnp.ones((), jnp.int32), 1.0),
         r"temperature_loss: entropy must be floating, got dtype int32"),
        (lambda: L.dsac_t_critic_loss(1.0, 1.0, 1.0, 1.0, 1.0, form="mse"),
         r"form must be one of \('dsac_v2', 'nll', 'huber_mean'\), got 'mse'"),
        (lambda: L.dsac_t_critic_loss(1.0, 1.0, 1.0, 1.0, 1.0, huber_delta=0.0),
         r"dsac_t_critic_loss: huber_delta must be > 0, got 0.0"),
        (lambda: L.bounded_target(1.0, 1.0, 1.0, bound=0.0), r"bound must be > 0"),
        (lambda: L.sampled_return(1.0, 1.0, 1.0, clip=-1.0), r"clip must be > 0"),
        (lambda: L.twin_min(F(1.0), 1.0, 1.0, 1.0), r"twin_min: mean1 must be a scalar"),
        (lambda: L.dsac_t_targets(1.0, 1.0, 1.0, 1.0, F(1.0, 2.0), 0.1),
         r"next_log_prob must be a scalar"),
        (lambda: L.gradient_weight(1.0, 1.0, eps=0.0), r"eps > 0"),
        (lambda: L.update_std_ema(1.0, 1.0, 0.0), r"rate must be in \(0, 1\]"),
        (lambda: L.entropy_critic_target(1.0, 1.0, F(1.0, 2.0)), r"next_q_e must be a scalar"),
        (lambda: L.entropy_critic_loss(F(1.0, 2.0), 1.0), r"q_e must be a scalar"),
        (lambda: L.dsac_e_actor_loss(1.0, 1.0, 1.0, F(1.0, 1.0), 0.1), r"q_e must be a scalar"),
        (lambda: L.twin_critic_loss(1.0, 1.0, F(1.0, 1.0)), r"target must be a scalar"),
        (lambda: L.huber(1.0, 0.0), r"huber: delta must be > 0"),
        (lambda: L.trajectory_entropy_budget(-1.0, 0.0), r"rho must be > 0"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
