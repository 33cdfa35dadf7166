"""Run in its own process: bank inference with the bank split over an 8-device CPU mesh must
equal the dense single-device computation. Exits non-zero (with the difference) otherwise."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from softstep import (  # noqa: E402
    Bank,
    KNNHead,
    NadarayaWatsonHead,
    SoftStepHead,
    bank_predict,
)


def main():
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    d = 5
    q = rng.normal(size=(29, d)).astype(np.float32)
    emb = rng.normal(size=(203, d)).astype(np.float32)  # not divisible by 8: padded
    y = rng.normal(size=(203, 2)).astype(np.float32)
    bank = Bank(emb, y)
    mesh = jax.make_mesh((8,), ("data",))
    heads = {
        "nw": NadarayaWatsonHead(),
        "s1": SoftStepHead(d, kind="s1", rngs=nnx.Rngs(0)),
        "s2": SoftStepHead(d, kind="s2", mode="global", rngs=nnx.Rngs(1)),
        "knn": KNNHead(4),
    }
    for name, head in heads.items():
        dense = np.asarray(head(q, emb, y))
        with jax.set_mesh(mesh):
            sharded = np.asarray(bank_predict(head, q, bank, mesh=mesh, bank_chunk=8,
                                              query_chunk=8))
        err = float(np.max(np.abs(sharded - dense)))
        print(f"{name}: max|sharded - dense| = {err:.2e}")
        np.testing.assert_allclose(sharded, dense, rtol=1e-5, atol=1e-5)
    # top-k pre-selection, sharded: exact for SoftStep when k covers every unmasked neighbour
    head = heads["s1"]
    support = int((np.asarray(head.neighbor_weights(q, emb)) > 0).sum(1).max())
    k = min(support + 3, 203)
    with jax.set_mesh(mesh):
        topk = np.asarray(bank_predict(head, q, bank, mesh=mesh, top_k=k, bank_chunk=8))
    err = float(np.max(np.abs(topk - np.asarray(head(q, emb, y)))))
    print(f"s1 top-{k} sharded: max|diff| = {err:.2e}")
    np.testing.assert_allclose(topk, np.asarray(head(q, emb, y)), rtol=1e-5, atol=1e-5)
    print("OK 8 devices")


if __name__ == "__main__":
    main()
