"""Run in its own process: on an 8-device CPU mesh the data-parallel encoder step (BatchNorm
statistics over the global batch) and transformer step equal the single-device steps.
Prints "OK 8 devices" on success."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import seeg_embed as S  # noqa: E402


def close(a, b, what):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5,
                                   err_msg=what)


def main():
    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",))
    rng = np.random.default_rng(0)
    opt = optax.sgd(0.05)
    x_a = rng.normal(size=(16, 400)).astype(np.float32)
    x_b = rng.normal(size=(16, 400)).astype(np.float32)
    diff = (np.arange(16) % 2).astype(np.int32)
    states = []
    for m in (None, mesh):
        model = S.SiameseEncoder(8, widths=(8, 8, 8), dropout=0.0, rngs=nnx.Rngs(0))
        graphdef, state = S.init_train_state(model, opt)
        step = S.make_encoder_step(graphdef, opt, mesh=m)
        for i in range(3):
            state, loss = step(state, (x_a, x_b, diff), jax.random.key(i))
        states.append((state, float(loss)))
    np.testing.assert_allclose(states[0][1], states[1][1], rtol=1e-4)
    close(states[0][0].params, states[1][0].params, "encoder params")
    close(states[0][0].rest, states[1][0].rest, "encoder batch stats")

    emb = rng.normal(size=(16, 5, 4)).astype(np.float32)
    win = rng.normal(size=(16, 5, 6)).astype(np.float32)
    cm = np.ones((16, 5), bool)
    cm[::3, 3:] = False
    tm = np.zeros((16, 5), bool)
    tm[:, 0] = True
    batch = S.ReconBatch(emb, win, win, cm, tm)
    states = []
    for m in (None, mesh):
        model = S.ChannelTransformer(4, 6, d_model=8, num_heads=2, num_layers=1, mlp_dim=8,
                                     rngs=nnx.Rngs(1))
        graphdef, state = S.init_train_state(model, opt)
        step = S.make_transformer_step(graphdef, opt, mesh=m)
        for i in range(3):
            state, loss = step(state, batch, jax.random.key(i))
        states.append((state, float(loss)))
    np.testing.assert_allclose(states[0][1], states[1][1], rtol=1e-4)
    close(states[0][0].params, states[1][0].params, "transformer params")
    print("OK 8 devices")


if __name__ == "__main__":
    main()
