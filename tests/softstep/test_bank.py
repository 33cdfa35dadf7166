"""Chunked, top-k and sharded bank inference against the dense heads."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn.neighbors import KNeighborsRegressor

from softstep import (
    Bank,
    KNNHead,
    LinearHead,
    NadarayaWatsonHead,
    SoftStepHead,
    bank_predict,
    build_bank,
)

ROOT = Path(__file__).resolve().parents[2]
D = 4
RNG = np.random.default_rng(2)
Q = RNG.normal(size=(45, D)).astype(np.float32)
EMB = RNG.normal(size=(157, D)).astype(np.float32)
Y = RNG.normal(size=(157, 3)).astype(np.float32)
BANK = Bank(jnp.asarray(EMB), jnp.asarray(Y))

HEADS = {
    "nw": lambda: NadarayaWatsonHead(),
    "nw_cosine": lambda: NadarayaWatsonHead(similarity="cosine"),
    "s1": lambda: SoftStepHead(D, kind="s1", rngs=nnx.Rngs(0)),
    "s2_l1": lambda: SoftStepHead(D, kind="s2", similarity="neg_l1", rngs=nnx.Rngs(0)),
    "s1_global_dot": lambda: SoftStepHead(D, mode="global", similarity="dot", rngs=nnx.Rngs(0)),
    "knn": lambda: KNNHead(5),
    "linear": lambda: LinearHead(D, 3, rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_chunked_equals_dense(name):
    head = HEADS[name]()
    dense = np.asarray(head(Q, EMB, Y))
    chunked = np.asarray(bank_predict(head, Q, BANK, query_chunk=16, bank_chunk=20))
    np.testing.assert_allclose(chunked, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["nw", "s1"])
def test_top_k_of_whole_bank_equals_dense(name):
    head = HEADS[name]()
    out = np.asarray(bank_predict(head, Q, BANK, top_k=157, bank_chunk=32))
    np.testing.assert_allclose(out, np.asarray(head(Q, EMB, Y)), rtol=1e-5, atol=1e-5)


def test_top_k_exact_when_step_masks_the_rest():
    head = HEADS["s1"]()
    w = np.asarray(head.neighbor_weights(Q, EMB))
    support = int((w > 0).sum(1).max())
    assert support < 157  # the S1 step is sparse here, so pre-selection can be exact
    out = np.asarray(bank_predict(head, Q, BANK, top_k=support, bank_chunk=32))
    np.testing.assert_allclose(out, w @ Y, rtol=1e-5, atol=1e-5)


def test_knn_bank_against_sklearn():
    out = np.asarray(bank_predict(KNNHead(5), Q, BANK, bank_chunk=16))
    ref = KNeighborsRegressor(n_neighbors=5).fit(EMB, Y).predict(Q)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_query_index_is_leave_one_out():
    head = HEADS["s1"]()
    loo = np.asarray(bank_predict(head, EMB, BANK, query_index=np.arange(157), bank_chunk=40))
    dense = np.asarray(head(EMB, EMB, Y, exclude_self=True))
    np.testing.assert_allclose(loo, dense, rtol=1e-5, atol=1e-5)


def test_build_bank():
    bank = build_bank(lambda x: 2.0 * x, EMB, Y[:, 0], batch_size=50)
    np.testing.assert_allclose(np.asarray(bank.embeddings), 2.0 * EMB)
    assert bank.targets.shape == (157, 1)


def test_sharded_bank_on_eight_devices_equals_dense():
    out = subprocess.run([sys.executable, "-m", "tests.softstep.bank_multidevice"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK 8 devices" in out.stdout


def test_bad_inputs():
    head = HEADS["s1"]()
    with pytest.raises(ValueError, match="bank_predict: bank has 157 rows, fewer than top_k=200"):
        bank_predict(head, Q, BANK, top_k=200)
    with pytest.raises(ValueError, match="bank has 157 rows, fewer than KNNHead k=300"):
        bank_predict(KNNHead(300), Q, BANK)
    with pytest.raises(ValueError, match=r"query must be \[n, 4\] like the bank, got \(45, 3\)"):
        bank_predict(head, Q[:, :3], BANK)
    with pytest.raises(ValueError, match="bank_predict: query contains NaN or inf"):
        bank_predict(head, np.full((2, D), np.nan), BANK)
    with pytest.raises(ValueError, match="bank_chunk must be a positive int, got 0"):
        bank_predict(head, Q, BANK, bank_chunk=0)
    with pytest.raises(ValueError, match=r"query_index must be \[45\] ints"):
        bank_predict(head, Q, BANK, query_index=np.zeros(3, int))
    with pytest.raises(ValueError, match="mesh has axes \\('x',\\), not axis_name='data'"):
        bank_predict(head, Q, BANK, mesh=jax.make_mesh((1,), ("x",)))
    with pytest.raises(TypeError, match="bank must be a Bank, got tuple"):
        bank_predict(head, Q, (EMB, Y))
    with pytest.raises(TypeError, match="head must be one of"):
        bank_predict(object(), Q, BANK)
    with pytest.raises(ValueError, match=r"build_bank: y must be \[N\] or \[N, o\] with N = 157"):
        build_bank(lambda x: x, EMB, Y[:10])
    with pytest.raises(ValueError, match="build_bank: x contains NaN or inf"):
        build_bank(lambda x: x, np.full((3, 2), np.inf), np.zeros(3))
