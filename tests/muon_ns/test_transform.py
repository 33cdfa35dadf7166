"""Muon / SGD-M transforms against optax.contrib.muon, optax.sgd and float64 references."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import muon_ns
from muon_ns import MuonDimensionNumbers as MDN
from tests.muon_ns._reference import ns_numpy, polar_scipy


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)  # noqa: E731
    return {"dense": f(12, 20), "tall": f(20, 12), "bias": f(20),
            "nested": ({"same": f(12, 20), "scalar": f()}, f(3, 4, 5))}


def _grads(params, t):
    rng = np.random.default_rng(100 + t)
    return jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape), jnp.float32), params)


def _run(opt, params, steps=4):
    state = opt.init(params)
    update = jax.jit(opt.update)
    outs = []
    for t in range(steps):
        u, state = update(_grads(params, t), state, params)
        params = optax.apply_updates(params, u)
        outs.append(u)
    return outs, params, state


@pytest.mark.parametrize("lr", [1e-2, optax.linear_schedule(1e-2, 1e-3, 4)])
def test_optax_compat_equals_optax_contrib_muon(lr):
    params = _tree()
    ours, p1, _ = _run(muon_ns.muon(lr, **muon_ns.OPTAX_COMPAT), params)
    ref, p2, _ = _run(optax.contrib.muon(lr), params)
    for a, b in zip(ours, ref, strict=True):
        chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(p1, p2, atol=1e-5, rtol=1e-5)


def test_gram_method_matches_optax_to_float_tolerance():
    params = _tree(8)
    kw = dict(muon_ns.OPTAX_COMPAT, ns_method="auto")
    ours, _, _ = _run(muon_ns.muon(1e-2, **kw), params, 2)
    ref, _, _ = _run(optax.contrib.muon(1e-2), params, 2)
    for a, b in zip(ours, ref, strict=True):
        chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)


def test_optax_compat_consistent_rms_and_weight_decay():
    params = _tree(1)
    kw = dict(muon_ns.OPTAX_COMPAT, update_scaling="consistent_rms", rms_scale=0.2,
              weight_decay=0.1)
    ours, _, _ = _run(muon_ns.muon(1e-2, **kw), params, 3)
    ref, _, _ = _run(optax.contrib.muon(1e-2, consistent_rms=0.2, weight_decay=0.1), params, 3)
    for a, b in zip(ours, ref, strict=True):
        chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)


def test_optax_compat_with_dimension_numbers_conv_and_stacked():
    rng = np.random.default_rng(2)
    params = {"conv": jnp.asarray(rng.standard_normal((3, 3, 4, 8)), jnp.float32),
              "stack": jnp.asarray(rng.standard_normal((4, 6, 10)), jnp.float32),
              "w": jnp.asarray(rng.standard_normal((6, 10)), jnp.float32),
              "b": jnp.zeros(10)}
    dims = {"conv": MDN((0, 1, 2), 3), "stack": MDN(1, 2), "w": MDN(), "b": None}
    ours, _, _ = _run(muon_ns.muon(1e-2, weight_dimension_numbers=dims, **muon_ns.OPTAX_COMPAT),
                      params, 3)
    ref, _, _ = _run(optax.contrib.muon(1e-2, muon_weight_dimension_numbers=dims), params, 3)
    for a, b in zip(ours, ref, strict=True):
        chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)


def test_paper_muon_equals_float64_reference():
    # M_t = beta M_{t-1} + G_t ; W <- W - eta NS_q(M_t) from X_0 = M / max(1, ||M||_F).
    rng = np.random.default_rng(3)
    w = rng.standard_normal((10, 16)).astype(np.float32)
    beta, lr = 0.9, 0.05
    opt = muon_ns.muon(lr, scheme="taylor2", ns_steps=5, beta=beta)
    params = {"w": jnp.asarray(w)}
    state = opt.init(params)
    m = np.zeros((10, 16))
    rows = muon_ns.resolve_coeffs("taylor2", 5)
    for _ in range(3):
        g = rng.standard_normal((10, 16)).astype(np.float32)
        u, state = jax.jit(opt.update)({"w": jnp.asarray(g)}, state, params)
        m = beta * m + g
        np.testing.assert_allclose(u["w"], -lr * ns_numpy(m, rows, "max1_frobenius"), atol=1e-5)


def test_svd_orthogonalizer_and_nesterov_paper_momentum():
    rng = np.random.default_rng(4)
    beta, lr = 0.8, 0.1
    opt = muon_ns.muon(lr, orthogonalizer="svd", beta=beta, nesterov=True)
    params = {"w": jnp.zeros((7, 11))}
    state = opt.init(params)
    m = np.zeros((7, 11))
    for _ in range(3):
        g = rng.standard_normal((7, 11)).astype(np.float32)
        u, state = jax.jit(opt.update)({"w": jnp.asarray(g)}, state, params)
        m = beta * m + g
        np.testing.assert_allclose(u["w"], -lr * polar_scipy(g + beta * m), atol=2e-5)


def test_callable_orthogonalizer_gets_wide_stacks():
    seen = []

    def ortho(s):
        seen.append(s.shape)
        return jnp.sign(s)

    opt = muon_ns.muon(1.0, orthogonalizer=ortho, beta=0.0)
    params = {"a": jnp.ones((5, 3)), "b": jnp.ones((3, 5))}
    u, _ = opt.update({"a": -jnp.ones((5, 3)), "b": jnp.ones((3, 5))}, opt.init(params), params)
    assert seen == [(2, 3, 5)]  # both leaves, oriented wide, in one batched call
    np.testing.assert_allclose(u["a"], jnp.ones((5, 3)))
    np.testing.assert_allclose(u["b"], -jnp.ones((3, 5)))


def test_batching_same_shape_layers_does_not_change_updates():
    params = _tree(5)
    params["stack"] = jnp.asarray(np.random.default_rng(5).standard_normal((3, 12, 20)),
                                  jnp.float32)
    dims = lambda p: jax.tree.map(  # noqa: E731
        lambda x: MDN(1, 2) if x.ndim == 3 and x.shape[0] == 3 else
        (MDN() if x.ndim == 2 else None), p)
    kw = dict(scheme="polar_express", weight_dimension_numbers=dims)
    a, _, _ = _run(muon_ns.muon(1e-2, batch_same_shape=True, **kw), params, 2)
    b, _, _ = _run(muon_ns.muon(1e-2, batch_same_shape=False, **kw), params, 2)
    for x, y in zip(a, b, strict=True):
        chex.assert_trees_all_close(x, y, atol=1e-6)


def test_sgd_momentum_equals_optax_sgd():
    params = _tree(6)
    for nesterov in (False, True):
        ours, _, _ = _run(muon_ns.sgd_momentum(0.1, 0.9, nesterov=nesterov), params, 3)
        ref, _, _ = _run(optax.sgd(0.1, momentum=0.9, nesterov=nesterov), params, 3)
        for a, b in zip(ours, ref, strict=True):
            chex.assert_trees_all_close(a, b, atol=1e-6)


def test_ema_momentum_without_nesterov_is_bias_corrected_mean():
    opt = muon_ns.scale_by_momentum(0.5, momentum="ema")
    p = jnp.zeros(2)
    s = opt.init(p)
    u1, s = opt.update(jnp.array([2.0, 0.0]), s)
    u2, s = opt.update(jnp.array([0.0, 4.0]), s)
    np.testing.assert_allclose(u1, [2.0, 0.0], rtol=1e-6)  # (0.5 * 2) / (1 - 0.5)
    np.testing.assert_allclose(u2, [0.25 * 2 / 0.75, 0.5 * 4 / 0.75], rtol=1e-6)
    assert int(s.count) == 2


def test_schedules_and_weight_decay_mask():
    params = {"a": jnp.ones((4, 6)), "b": jnp.ones((4, 6)), "c": jnp.ones(3)}
    g = jax.tree.map(jnp.zeros_like, params)
    opt = muon_ns.muon(lambda c: 0.1 * (c + 1), beta=lambda c: 0.5, weight_decay=lambda c: 0.2,
                       weight_decay_mask={"a": True, "b": False, "c": False})
    s = opt.init(params)
    u, s = opt.update(g, s, params)
    # zero gradient: NS(0) = 0, so only the decay of "a" remains: -lr * wd * W
    np.testing.assert_allclose(u["a"], -0.1 * 0.2 * np.ones((4, 6)), rtol=1e-6)
    np.testing.assert_allclose(u["b"], 0.0)
    u, s = opt.update(g, s, params)
    np.testing.assert_allclose(u["a"], -0.2 * 0.2 * np.ones((4, 6)), rtol=1e-6)


def test_other_transform_for_non_matrix_leaves():
    params = {"w": jnp.ones((4, 6)), "b": jnp.ones(6)}
    opt = muon_ns.muon(0.1, other=optax.sgd(1.0))
    g = {"w": jnp.ones((4, 6)), "b": jnp.full(6, 3.0)}
    u, _ = opt.update(g, opt.init(params), params)
    np.testing.assert_allclose(u["b"], -3.0 * np.ones(6))


def test_diagnostics_in_state_match_ns_diagnostics():
    rng = np.random.default_rng(7)
    params = {"w": jnp.zeros((8, 12)), "stack": jnp.zeros((2, 6, 4)), "b": jnp.zeros(3)}
    dims = {"w": MDN(), "stack": MDN(1, 2), "b": None}
    opt = muon_ns.muon(0.1, scheme="taylor1", ns_steps=3, diagnostics=True,
                       weight_dimension_numbers=dims)
    g = {k: jnp.asarray(rng.standard_normal(v.shape), jnp.float32) for k, v in params.items()}
    _, state = jax.jit(opt.update)(g, opt.init(params), params)
    diag = state.inner_states["muon"].inner_state[0].diagnostics
    chex.assert_shape(diag["stack"].delta_0, (2,))
    chex.assert_shape(diag["w"].chi, ())
    direct = muon_ns.ns_diagnostics(g["w"], "taylor1", 3, normalization="max1_frobenius")
    for f in ("delta_0", "delta_q", "eps_q", "chi", "chi_bound"):
        np.testing.assert_allclose(getattr(diag["w"], f), getattr(direct, f), rtol=1e-5)
    stack_t = jnp.swapaxes(g["stack"], 1, 2)  # each (6, 4) slice
    direct_s = muon_ns.ns_diagnostics(stack_t, "taylor1", 3, normalization="max1_frobenius")
    np.testing.assert_allclose(diag["stack"].delta_q, direct_s.delta_q, rtol=1e-5)
    assert np.all(np.asarray(diag["w"].chi) <= np.asarray(diag["w"].chi_bound))


def test_bad_inputs():
    with pytest.raises(ValueError,
                       match=r"muon: learning_rate must be a finite number >= 0.0, got -0.1"):
        muon_ns.muon(-0.1)
    with pytest.raises(ValueError,
                       match=r"scale_by_muon: beta must be a finite number in \[0.0, 1.0\), got 1"):
        muon_ns.muon(0.1, beta=1.0)
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0.0, 1.0\), got -0.5"):
        muon_ns.sgd_momentum(0.1, beta=-0.5)
    with pytest.raises(ValueError, match=r"sgd_momentum: learning_rate must be"):
        muon_ns.sgd_momentum(-1.0)
    with pytest.raises(ValueError, match=r"momentum must be one of \['paper', 'ema'\], got 'x'"):
        muon_ns.scale_by_muon(momentum="x")
    with pytest.raises(ValueError, match=r"unknown scheme 'nope'; valid names"):
        muon_ns.muon(0.1, scheme="nope")
    with pytest.raises(ValueError, match=r"orthogonalizer must be one of"):
        muon_ns.muon(0.1, orthogonalizer="qr")
    with pytest.raises(ValueError, match=r"ns_method must be one of"):
        muon_ns.muon(0.1, ns_method="fastest")
    with pytest.raises(ValueError, match=r"update_scaling must be one of"):
        muon_ns.muon(0.1, update_scaling="spectral")
    with pytest.raises(ValueError, match=r"diagnostics=True needs orthogonalizer='newton_schulz'"):
        muon_ns.muon(0.1, orthogonalizer="svd", diagnostics=True)
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number >= 0.0, got -1.0"):
        muon_ns.muon(0.1, weight_decay=-1.0)
    with pytest.raises(TypeError, match=r"other must be an optax GradientTransformation"):
        muon_ns.muon(0.1, other=lambda x: x)
    with pytest.raises(TypeError, match=r"beta must be a number or a schedule"):
        muon_ns.scale_by_momentum("0.9")
    opt = muon_ns.scale_by_muon()
    p = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    with pytest.raises(ValueError, match=r"leaf \['b'\] has shape \(4,\); Muon needs a matrix"):
        opt.update(p, opt.init(p))
    bad = muon_ns.scale_by_muon(weight_dimension_numbers=MDN(0, 0))
    with pytest.raises(ValueError, match=r"must be non-empty and disjoint"):
        bad.update({"w": jnp.ones((3, 4))}, bad.init({"w": jnp.ones((3, 4))}))
    wrong = muon_ns.scale_by_muon(orthogonalizer=lambda s: s[..., :1])
    with pytest.raises(ValueError, match=r"orthogonalizer returned shape \(1, 3, 1\)"):
        wrong.update({"w": jnp.ones((3, 4))}, wrong.init({"w": jnp.ones((3, 4))}))


