"""GRPO advantages and loss against values computed by hand (formulas written out here)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_tools.abstral import group_advantages, grpo_loss, k3_kl

STATIC = ("epsilon_low", "epsilon_high", "beta", "reduction", "max_completion_length")
loss_jit = jax.jit(grpo_loss, static_argnames=STATIC)  # one compile per case (fast tests)


def test_advantages_by_hand():
    adv = group_advantages(jnp.array([[1.0, 0.0, 0.0, 1.0], [3.0, 1.0, 2.0, 2.0]]))
    # Row 1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 1/sqrt(3): advantages +-sqrt(3)/2.
    h = math.sqrt(3) / 2
    # Row 2: mean 2, unbiased std sqrt((1 + 1 + 0 + 0) / 3) = sqrt(2/3).
    s = math.sqrt(2 / 3)
    np.testing.assert_allclose(adv, [[h, -h, -h, h], [1 / s, -1 / s, 0, 0]], rtol=1e-6)


def test_equal_rewards_give_zero_advantage_not_nan():
    adv = group_advantages(jnp.array([[0.7, 0.7, 0.7], [1.0, 0.0, 1.0]]))
    assert np.all(np.isfinite(adv))
    np.testing.assert_array_equal(adv[0], [0.0, 0.0, 0.0])
    # The floor bounds nearly-equal groups: std 7.07e-7 < floor 1e-4, so (+-5e-7) / 1e-4.
    adv = group_advantages(jnp.array([[0.0, 1e-6]]), std_floor=1e-4)
    np.testing.assert_allclose(adv, [[-5e-3, 5e-3]], rtol=1e-4)


def test_advantage_scales():
    r = jnp.array([[1.0, 0.0], [4.0, 2.0]])
    np.testing.assert_allclose(group_advantages(r, scale="none"), [[0.5, -0.5], [1.0, -1.0]])
    batch_std = np.std([1.0, 0.0, 4.0, 2.0], ddof=1)
    np.testing.assert_allclose(group_advantages(r, scale="batch"),
                               np.array([[0.5, -0.5], [1.0, -1.0]]) / batch_std, rtol=1e-6)


def reference_loss(logp, old, adv, mask, ref, eps_low, eps_high, beta, reduction, length):
    """A plain-Python transcription of the GRPO objective, token by token."""
    per_seq, total, count = [], 0.0, 0
    for i in range(len(logp)):
        s, c = 0.0, 0
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            clipped = min(max(ratio, 1 - eps_low), 1 + eps_high)
            obj = min(ratio * adv[i], clipped * adv[i])
            d = ref[i][t] - logp[i][t]
            kl = math.exp(d) - d - 1
            loss = -(obj - beta * kl)
            s += loss
            c += 1
        per_seq.append(s / max(c, 1))
        total += s
        count += c
    if reduction == "grpo":
        return sum(per_seq) / len(per_seq)
    if reduction == "bnpo":
        return total / count
    return total / (len(logp) * length)


@pytest.mark.parametrize("reduction", ["grpo", "bnpo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_loss_matches_the_formula(reduction, beta):
    rng = np.random.default_rng(0)
    logp = rng.normal(-1.0, 0.3, (3, 5))
    old = logp + rng.normal(0, 0.4, (3, 5))  # ratios on both sides of the clip range
    ref = logp + rng.normal(0, 0.2, (3, 5))
    adv = np.array([1.5, -0.7, 0.2])
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    got, aux = loss_jit(jnp.asarray(logp), jnp.asarray(old), jnp.asarray(adv), jnp.asarray(mask),
                         jnp.asarray(ref), epsilon_low=0.2, epsilon_high=0.28, beta=beta,
                         reduction=reduction)
    want = reference_loss(logp, old, adv, mask, ref, 0.2, 0.28, beta, reduction, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert int(aux.tokens) == 10


def test_clipping_cases_by_hand():
    # One token each: ratio e^0.5 = 1.6487 and e^-0.5 = 0.6065, advantages +-1, eps 0.2.
    logp = jnp.array([[0.5], [-0.5], [0.5], [-0.5]])
    old = jnp.zeros((4, 1))
    adv = jnp.array([1.0, -1.0, -1.0, 1.0])
    mask = jnp.ones((4, 1))
    loss, aux = loss_jit(logp, old, adv, mask, reduction="bnpo")
    r_hi, r_lo = math.exp(0.5), math.exp(-0.5)
    # +A, ratio high -> clipped 1.2; -A, ratio low -> clipped 0.8 * -1 = -0.8;
    # -A, ratio high -> unclipped -1.6487; +A, ratio low -> unclipped 0.6065.
    objectives = [1.2, -0.8, -r_hi, r_lo]
    np.testing.assert_allclose(loss, -sum(objectives) / 4, rtol=1e-6)
    np.testing.assert_allclose(aux.clip_fraction, 0.5)
    # Gradients: zero where clipped; -A * ratio / 4 elsewhere.
    grad = jax.jit(jax.grad(lambda lp: grpo_loss(lp, old, adv, mask, reduction="bnpo")[0]))(logp)
    np.testing.assert_allclose(grad[:, 0], [0.0, 0.0, r_hi / 4, -r_lo / 4], rtol=1e-6)


def test_on_policy_gradient_is_advantage_weighted_logprob_gradient():
    # With logp == old_logp the ratio is 1 and d loss / d logp = -A / (tokens of the row) / N.
    logp = jnp.array([[-1.0, -2.0, -0.5], [-0.3, -0.1, -4.0]])
    adv = jnp.array([2.0, -1.0])
    mask = jnp.array([[1, 1, 1], [1, 0, 0]])
    grad = jax.jit(jax.grad(lambda lp: grpo_loss(lp, logp, adv, mask)[0]))(logp)
    np.testing.assert_allclose(grad, [[-2 / 3 / 2] * 3, [1 / 2, 0, 0]], rtol=1e-6)


def test_k3_by_hand():
    np.testing.assert_allclose(k3_kl(jnp.array(-1.0), jnp.array(-1.0)), 0.0)
    # ref - logp = ln 2: 2 - ln 2 - 1.
    np.testing.assert_allclose(k3_kl(jnp.array(0.0), jnp.array(math.log(2))),
                               1 - math.log(2), rtol=1e-6)
    assert float(k3_kl(jnp.array(0.0), jnp.array(-3.0))) > 0


def test_dr_grpo_uses_a_fixed_length():
    logp = jnp.zeros((2, 4))
    adv = jnp.array([1.0, -3.0])
    mask = jnp.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    loss, _ = loss_jit(logp, logp, adv, mask, reduction="dr_grpo", max_completion_length=10)
    # -(1 + 1 - 3) / (2 * 10)
    np.testing.assert_allclose(loss, 1 / 20, rtol=1e-6)


def test_jit_equals_eager():
    rng = np.random.default_rng(1)
    logp, old = jnp.asarray(rng.normal(size=(4, 6))), jnp.asarray(rng.normal(size=(4, 6)))
    adv, mask = jnp.asarray(rng.normal(size=4)), jnp.ones((4, 6))
    chex.assert_trees_all_close(loss_jit(logp, old, adv, mask, reduction="bnpo"),
                                grpo_loss(logp, old, adv, mask, reduction="bnpo"), rtol=1e-6)
    adv_jit = jax.jit(group_advantages)(jnp.ones((2, 3)))
    np.testing.assert_array_equal(adv_jit, np.zeros((2, 3)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="group size must be at least 2.*got 1"):
        group_advantages(jnp.ones((4, 1)))
    with pytest.raises(ValueError, match=r"rewards must be \[num_prompts, group_size\]"):
        group_advantages(jnp.ones(4))
    with pytest.raises(ValueError, match="scale must be"):
        group_advantages(jnp.ones((2, 2)), scale="std")
    with pytest.raises(ValueError, match="std_floor must be > 0"):
        group_advantages(jnp.ones((2, 2)), std_floor=0.0)
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        grpo_loss(x, x, jnp.zeros(2), x, reduction="mean")
    with pytest.raises(ValueError, match="beta > 0 needs ref_logp"):
        grpo_loss(x, x, jnp.zeros(2), x, beta=0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        grpo_loss(x, x, jnp.zeros(2), x, epsilon_low=-0.1)
    with pytest.raises(ValueError, match="advantages has 3 rows but logp has 2"):
        grpo_loss(x, x, jnp.zeros(3), x)
    with pytest.raises(AssertionError):
        grpo_loss(x, jnp.zeros((2, 4)), jnp.zeros(2), x)
