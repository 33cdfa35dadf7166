"""One parameterised suite for the four heads, plus independent references."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.spatial.distance import cdist
from sklearn.neighbors import KNeighborsRegressor

from softstep import KNNHead, LinearHead, NadarayaWatsonHead, SoftStepHead

D, N_OUT = 6, 2
RNG = np.random.default_rng(1)
QUERY = RNG.normal(size=(11, D)).astype(np.float32)
BANK = RNG.normal(size=(23, D)).astype(np.float32)
TARGETS = RNG.normal(size=(23, N_OUT)).astype(np.float32)

HEADS = {
    "linear": lambda: LinearHead(D, N_OUT, rngs=nnx.Rngs(0)),
    "nw": lambda: NadarayaWatsonHead(),
    "softstep_s1_pointwise": lambda: SoftStepHead(D, kind="s1", rngs=nnx.Rngs(0)),
    "softstep_s2_global": lambda: SoftStepHead(D, kind="s2", mode="global", rngs=nnx.Rngs(0)),
    "knn": lambda: KNNHead(3),
}


@pytest.fixture(params=sorted(HEADS))
def head(request):
    return HEADS[request.param]()


def test_interface_shapes(head):
    out = head(QUERY, BANK, TARGETS)
    assert out.shape == (11, N_OUT) and np.all(np.isfinite(np.asarray(out)))
    out = head(BANK, BANK, TARGETS, exclude_self=True)
    assert out.shape == (23, N_OUT)


def test_self_is_never_its_own_neighbour(head):
    # Changing item i's own target must not change item i's prediction in training mode.
    base = np.asarray(head(BANK, BANK, TARGETS, exclude_self=True))
    for i in (0, 7, 22):
        changed = TARGETS.copy()
        changed[i] += 1000.0
        out = np.asarray(head(BANK, BANK, changed, exclude_self=True))
        np.testing.assert_allclose(out[i], base[i], rtol=1e-5, atol=1e-5)
    if hasattr(head, "neighbor_weights"):
        w = np.asarray(head.neighbor_weights(BANK, BANK, exclude_self=True))
        assert np.all(np.diag(w) == 0)
        assert np.all((w > 0).sum(1) >= 1)


def test_bad_inputs(head):
    name = type(head).__name__
    with pytest.raises(ValueError, match=f"{name}: a batch of size 1 has no neighbour"):
        head(BANK[:1], BANK[:1], TARGETS[:1], exclude_self=True)
    with pytest.raises(ValueError, match=rf"{name}: bank_targets must be 2-D \[23, o\]"):
        head(QUERY, BANK, TARGETS[:5])
    with pytest.raises(ValueError, match=rf"{name}: bank must be 2-D \[m, 6\] like query"):
        head(QUERY, BANK[:, :3], TARGETS)
    with pytest.raises(ValueError, match=f"{name}: exclude_self=True needs query and bank"):
        head(QUERY, BANK, TARGETS, exclude_self=True)


def test_nadaraya_watson_against_numpy():
    out = np.asarray(NadarayaWatsonHead()(QUERY, BANK, TARGETS))
    logits = -cdist(QUERY, BANK)
    w = np.exp(logits - logits.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    np.testing.assert_allclose(out, w @ TARGETS, rtol=1e-4, atol=1e-5)


def _numpy_softstep(s, a, b, t, kind):
    """Direct (not log-space) S1/S2 reference on min-max normalised similarities."""
    sn = (s - s.min(1, keepdims=True)) / (s.max(1, keepdims=True) - s.min(1, keepdims=True))
    with np.errstate(divide="ignore"):
        if kind == "s1":
            m = np.where(sn >= b, 1.0, np.where(sn <= a, 0.0,
                         np.abs(sn - a) ** (1 / t)
                         / (np.abs(sn - a) ** (1 / t) + np.abs(b - sn) ** (1 / t))))
            term = np.log(m)
        else:
            term = np.where(sn >= b, 0.0, (t / (1 - t)) * (b - sn) * np.log(sn / b))
    z = s + term
    w = np.exp(z - z.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


@pytest.mark.parametrize("kind", ["s1", "s2"])
def test_softstep_against_numpy(kind):
    head = SoftStepHead(D, kind=kind, rngs=nnx.Rngs(3))
    p = head.step(jnp.asarray(QUERY))
    a, b, t = (np.asarray(v, np.float64) for v in p)
    w_ref = _numpy_softstep(-cdist(QUERY, BANK), a, b, t, kind)
    w = np.asarray(head.neighbor_weights(QUERY, BANK))
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(head(QUERY, BANK, TARGETS)), w_ref @ TARGETS,
                               rtol=1e-4, atol=1e-5)
    if kind == "s1":
        assert np.all((w == 0).sum(1) > 0)  # the step is sparse at initialisation


def test_knn_against_sklearn():
    out = np.asarray(KNNHead(4)(QUERY, BANK, TARGETS))
    ref = KNeighborsRegressor(n_neighbors=4).fit(BANK, TARGETS).predict(QUERY)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_linear_head_is_affine():
    head = LinearHead(D, N_OUT, rngs=nnx.Rngs(0))
    w, c = np.asarray(head.linear.kernel[...]), np.asarray(head.linear.bias[...])
    np.testing.assert_allclose(np.asarray(head(QUERY, BANK, TARGETS)), QUERY @ w + c, rtol=1e-5,
                               atol=1e-6)


def test_constructor_bad_inputs():
    with pytest.raises(ValueError, match="KNNHead: k must be a positive int, got 0"):
        KNNHead(0)
    with pytest.raises(
        ValueError, match="KNNHead: bank has 22 candidate neighbours, fewer than k=23"
    ):
        KNNHead(23)(BANK, BANK, TARGETS, exclude_self=True)
    with pytest.raises(ValueError, match="NadarayaWatsonHead: similarity must be one of"):
        NadarayaWatsonHead(similarity="rbf")
    with pytest.raises(ValueError, match="SoftStepHead: kind must be one of"):
        SoftStepHead(D, kind="s9", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LinearHead: out_features must be a positive int"):
        LinearHead(D, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LinearHead: bank_targets has 2 columns but the head"):
        LinearHead(D, 1, rngs=nnx.Rngs(0))(QUERY, BANK, TARGETS)
