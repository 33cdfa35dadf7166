"""Run in its own process: a Muon update jitted over parameters sharded on an 8-device CPU
mesh must equal the single-device update. Exits non-zero (with the difference) when not."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
import optax  # noqa: E402

import muon_ns  # noqa: E402
from muon_ns import MuonDimensionNumbers as MDN  # noqa: E402


def main():
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    shapes = {"w": (16, 32), "stack": (8, 16, 24), "tall": (40, 16), "b": (32,)}
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
             for _ in range(3)]
    dims = {"w": MDN(), "stack": MDN(1, 2), "tall": MDN(), "b": None}
    opt = muon_ns.muon(0.02, scheme="taylor2", ns_steps=5, weight_dimension_numbers=dims,
                       diagnostics=True, weight_decay=0.01)

    @jax.jit
    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, u

    single = jax.devices()[0]
    p1 = jax.device_put(params, single)
    s1 = opt.init(p1)
    for g in grads:
        p1, s1, u1 = step(p1, s1, jax.device_put(g, single))

    mesh = jax.make_mesh((8,), ("data",))
    specs = {"w": jax.P(None, "data"), "stack": jax.P("data"), "tall": jax.P(), "b": jax.P()}
    with jax.set_mesh(mesh):
        shard = {k: jax.NamedSharding(mesh, v) for k, v in specs.items()}
        p8 = {k: jax.device_put(v, shard[k]) for k, v in params.items()}
        s8 = opt.init(p8)
        for g in grads:
            g8 = {k: jax.device_put(v, shard[k]) for k, v in g.items()}
            p8, s8, u8 = step(p8, s8, g8)
    assert len(p8["stack"].sharding.device_set) == 8
    assert not p8["w"].sharding.is_fully_replicated
    diffs = {k: float(np.max(np.abs(np.asarray(p1[k]) - np.asarray(p8[k])))) for k in params}
    print(f"max|diff| params={diffs}")
    for k in params:
        np.testing.assert_allclose(np.asarray(p1[k]), np.asarray(p8[k]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(u1[k]), np.asarray(u8[k]), rtol=1e-5, atol=1e-5)
    d1 = s1.inner_states["muon"].inner_state[0].diagnostics
    d8 = s8.inner_states["muon"].inner_state[0].diagnostics
    np.testing.assert_allclose(np.asarray(d1["stack"].chi), np.asarray(d8["stack"].chi),
                               rtol=1e-4)
    print("OK 8 devices")


if __name__ == "__main__":
    main()
