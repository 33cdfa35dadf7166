"""Entropy weights and the recovery losses on hand-made distributions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from e3_pruner import distillation_loss, entropy_weights, token_entropy

LN2 = np.log(2.0)
# three teacher distributions over V = 4 with entropies known in closed form
P = np.array([[0.25, 0.25, 0.25, 0.25],      # H = ln 4
              [0.5, 0.25, 0.25, 0.0],         # H = 1.5 ln 2
              [1.0, 0.0, 0.0, 0.0]])          # H = 0
H = np.array([2 * LN2, 1.5 * LN2, 0.0])
TEACHER = np.log(np.maximum(P, 1e-30)).astype(np.float32)  # logits whose softmax is P


def test_token_entropy_closed_form():
    np.testing.assert_allclose(token_entropy(TEACHER), H, atol=1e-6)
    # temperature: softmax(log P / 2) = normalised sqrt(P)
    q = np.sqrt(P[1]) / np.sqrt(P[1]).sum()
    want = -np.sum(q[q > 0] * np.log(q[q > 0]))
    np.testing.assert_allclose(token_entropy(TEACHER[1], temperature=2.0), want, rtol=1e-5)


def test_entropy_weights_by_hand():
    h_bar = H.mean()
    want = H / (H + h_bar + 1e-6)               # [ln4/(ln4+H̄+ε), ..., 0]
    np.testing.assert_allclose(entropy_weights(TEACHER[None]), want[None], rtol=1e-5, atol=1e-7)
    assert want[0] > want[1] > want[2] == 0.0
    # a mask leaves padding out of H̄ and gives it weight 0
    mask = np.array([[1.0, 1.0, 0.0]])
    h_bar2 = H[:2].mean()
    np.testing.assert_allclose(entropy_weights(TEACHER[None], mask),
                               [[H[0] / (H[0] + h_bar2 + 1e-6), H[1] / (H[1] + h_bar2 + 1e-6),
                                 0.0]],
                               rtol=1e-5, atol=1e-7)
    # every teacher one-hot: no distillation weight at all (and no NaN)
    np.testing.assert_allclose(entropy_weights(TEACHER[None, 2:3]), [[0.0]], atol=1e-20)


def _by_hand(student, teacher_p, targets, alpha_t, tau=1.0):
    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    ps = softmax(student.astype(np.float64))
    ce = -np.log(ps[np.arange(len(targets)), targets])
    pt = softmax(np.log(np.maximum(teacher_p, 1e-300)) / tau)
    pst = softmax(student.astype(np.float64) / tau)
    kl = tau ** 2 * np.sum(np.where(pt > 0, pt * (np.log(np.maximum(pt, 1e-300))
                                                  - np.log(pst)), 0.0), -1)
    return float(np.mean(alpha_t * kl + (1 - alpha_t) * ce)), kl, ce


@pytest.mark.parametrize("kind", ["lm", "kd", "mix", "ekd"])
def test_distillation_loss_by_hand(kind):
    student = np.array([[0.3, -1.0, 2.0, 0.1], [1.0, 0.0, 0.0, -2.0], [0.5, 0.5, -0.5, 0.0]],
                       np.float32)
    targets = np.array([2, 1, 0])
    alpha = {"lm": np.zeros(3), "kd": np.ones(3), "mix": np.full(3, 0.3),
             "ekd": H / (H + H.mean() + 1e-6)}[kind]
    want, kl, ce = _by_hand(student, P, targets, alpha)
    loss, aux = distillation_loss(student[None], TEACHER[None], targets[None], kind=kind,
                                  alpha=0.3)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(aux["kl"]), kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["ce"]), ce.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["alpha"]), alpha.mean(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(aux["teacher_entropy"]), H.mean(), rtol=1e-5)


def test_lm_kind_is_cross_entropy_and_temperature_scales_kd():
    s = jax.random.normal(jax.random.key(0), (2, 5, 7))
    t = jax.random.normal(jax.random.key(1), (2, 5, 7)) * 2
    y = jax.random.randint(jax.random.key(2), (2, 5), 0, 7)
    loss, _ = distillation_loss(s, t, y, kind="lm")
    np.testing.assert_allclose(loss, optax.softmax_cross_entropy_with_integer_labels(s, y).mean(),
                               rtol=1e-6)
    want, _, _ = _by_hand(np.asarray(s[0]), np.asarray(jax.nn.softmax(t[0] / 1.0)),
                          np.asarray(y[0]), np.ones(5), tau=2.0)
    got, _ = distillation_loss(s[:1], t[:1], y[:1], kind="kd", temperature=2.0)
    np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_no_gradient_into_the_teacher_and_student_gradient_is_right():
    s = jax.random.normal(jax.random.key(0), (1, 3, 5))
    t = jax.random.normal(jax.random.key(1), (1, 3, 5))
    y = jnp.array([[0, 4, 2]])
    g_t = jax.grad(lambda t: distillation_loss(s, t, y, kind="ekd")[0])(t)
    np.testing.assert_array_equal(g_t, 0.0)
    # plain KD: d/ds KL(p_T || softmax(s)) per token = (softmax(s) - p_T) / N
    g_s = jax.grad(lambda s: distillation_loss(s, t, y, kind="kd")[0])(s)
    np.testing.assert_allclose(g_s, (jax.nn.softmax(s) - jax.nn.softmax(t)) / 3, atol=1e-6)


def test_mask_excludes_positions():
    s = jax.random.normal(jax.random.key(0), (1, 4, 5))
    t = jax.random.normal(jax.random.key(1), (1, 4, 5))
    y = jnp.array([[0, 4, 2, 1]])
    full, _ = distillation_loss(s[:, :2], t[:, :2], y[:, :2], kind="ekd")
    masked, _ = distillation_loss(s, t, y, jnp.array([[1, 1, 0, 0]]), kind="ekd")
    np.testing.assert_allclose(masked, full, rtol=1e-6)


def test_bad_inputs():
    s = jnp.zeros((1, 3, 4))
    y = jnp.zeros((1, 3), jnp.int32)
    with pytest.raises(ValueError, match=r"kind must be one of \('lm', 'kd', 'mix', 'ekd'\)"):
        distillation_loss(s, s, y, kind="soft")
    with pytest.raises(ValueError, match=r"alpha must be a float in \[0, 1\]"):
        distillation_loss(s, s, y, kind="mix", alpha=1.5)
    with pytest.raises(ValueError, match="temperature must be a finite float > 0"):
        distillation_loss(s, s, y, temperature=0.0)
    with pytest.raises(ValueError, match="must both be"):
        distillation_loss(s, jnp.zeros((1, 3, 5)), y)
    with pytest.raises(ValueError, match=r"targets must be int \(1, 3\)"):
        distillation_loss(s, s, jnp.zeros((1, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 3\)"):
        distillation_loss(s, s, y, jnp.ones((3,)))
    with pytest.raises(ValueError, match="student_logits must be a float array"):
        distillation_loss(jnp.zeros((1, 3, 4), jnp.int32), s, y)
    with pytest.raises(ValueError, match="temperature must be a finite float > 0"):
        token_entropy(TEACHER, temperature=-1.0)
    with pytest.raises(ValueError, match="logits must be a float array"):
        token_entropy(jnp.arange(3))
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\)"):
        entropy_weights(TEACHER, np.ones(4))
    with pytest.raises(ValueError, match="teacher_logits must be a float array"):
        entropy_weights(np.arange(4))
