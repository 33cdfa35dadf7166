"""Run in its own process: a data-parallel jitted step on an 8-device CPU mesh must equal
the single-device step. Exits non-zero (with the difference) when it does not."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from experiments.mesh import data_mesh, replicated_sharding, shard_batch  # noqa: E402


def main():
    assert jax.device_count() == 8, jax.devices()
    key = jax.random.key(0)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"w1": jax.random.normal(k1, (5, 16)) * 0.3, "w2": jax.random.normal(k2, (16, 1))}
    x = np.asarray(jax.random.normal(k3, (64, 5)))
    y = np.sin(x.sum(axis=1, keepdims=True))
    opt = optax.adam(1e-2)

    def loss_fn(p, batch):
        xb, yb = batch
        return jnp.mean((jnp.tanh(xb @ p["w1"]) @ p["w2"] - yb) ** 2)

    @jax.jit
    def step(p, s, batch):
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    single = jax.devices()[0]
    p1 = jax.device_put(params, single)
    s1 = opt.init(p1)
    b1 = jax.device_put((x, y), single)

    for _ in range(3):
        p1, s1, l1 = step(p1, s1, b1)

    mesh = data_mesh()
    with jax.set_mesh(mesh):
        p8 = jax.device_put(params, replicated_sharding(mesh))
        s8 = opt.init(p8)
        b8 = shard_batch((x, y), mesh)
        assert len(b8[0].sharding.device_set) == 8
        assert b8[0].addressable_shards[0].data.shape == (8, 5)
        for _ in range(3):
            p8, s8, l8 = step(p8, s8, b8)
    assert p8["w1"].sharding.is_fully_replicated
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
             for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8), strict=True)]
    print(f"max|diff| params={max(diffs):.3e} loss={abs(float(l1) - float(l8)):.3e}")
    np.testing.assert_allclose(float(l1), float(l8), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    try:
        shard_batch(np.zeros((10, 2)), mesh)
    except ValueError as e:
        assert "divisible by the 8 local devices" in str(e), e
    else:
        raise AssertionError("shard_batch accepted a batch of 10 on 8 devices")
    print("OK 8 devices")


if __name__ == "__main__":
    main()
