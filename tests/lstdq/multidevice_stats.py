"""Run in its own process: LSTDQ statistics summed over an 8-device CPU mesh (shard_map +
psum) must equal the single-device statistics and give the same theta. Exits non-zero
(with the difference) when they do not."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402

import lstdq as L  # noqa: E402
from experiments.mesh import data_mesh, shard_batch  # noqa: E402


def main():
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    n, d = 4096, 6
    f = rng.normal(size=(n, d)).astype(np.float32)
    fn = rng.normal(size=(n, d)).astype(np.float32)
    r = rng.normal(size=n).astype(np.float32)
    g = (0.95 * (rng.random(n) > 0.05)).astype(np.float32)
    single = L.compute_stats(f, r, g, fn)
    theta1 = L.solve(single)
    mesh = data_mesh()
    with jax.set_mesh(mesh):
        batch = shard_batch((f, r, g, fn), mesh)
        assert len(batch[0].sharding.device_set) == 8
        sharded = L.sharded_stats(*batch, mesh)
        theta8 = L.solve(sharded)
    assert float(sharded.count) == n
    assert sharded.a.sharding.is_fully_replicated
    # independent float64 reference of the same sums
    a64 = f.astype(np.float64).T @ (f - g[:, None] * fn)
    diffs = {name: float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for name, x, y in zip(("sigma", "a", "b"), sharded[1:], single[1:], strict=True)}
    print("max|diff| sharded vs single:", diffs)
    for x, y in zip(sharded[1:], single[1:], strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(np.asarray(sharded.a), a64, rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(np.asarray(theta8), np.asarray(theta1), rtol=1e-4, atol=1e-5)
    # host rows that do not divide over 8 devices: padded with weight 0, nothing inflated
    m = n - 3
    odd = L.sharded_stats(f[:m], r[:m], g[:m], fn[:m], mesh)
    ref = L.compute_stats(f[:m], r[:m], g[:m], fn[:m])
    assert float(odd.count) == m, odd.count
    for x, y in zip(odd[1:], ref[1:], strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=2e-3)
    # a row mask on pre-sharded global arrays: the masked rows drop out of every sum
    mask = (np.arange(n) < m).astype(np.float32)
    with jax.set_mesh(mesh):
        batch = shard_batch((f, r, g, fn, mask), mesh)
        masked = L.sharded_stats(*batch[:4], mesh, weights=batch[4])
    assert float(masked.count) == m
    np.testing.assert_allclose(np.asarray(masked.a), np.asarray(ref.a), rtol=1e-5, atol=2e-3)
    x0 = np.ones(d, np.float32) / d
    np.testing.assert_allclose(float(L.plugin_coverage(masked, x0, 0.95)),
                               float(L.plugin_coverage(ref, x0, 0.95)), rtol=1e-4)
    print("OK 8 devices")


if __name__ == "__main__":
    main()
