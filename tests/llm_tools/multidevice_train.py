"""Run in its own process: on an 8-device CPU mesh, (1) the data-parallel LM train step equals
the single-device step and (2) a model-sharded (Megatron) forward equals the replicated one.
Prints "OK 8 devices" on success."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from llm_tools import Llama, shard_model  # noqa: E402
from llm_tools.tiny import tiny_config  # noqa: E402
from llm_tools.train import init_train_state, make_train_step  # noqa: E402


def main():
    assert jax.device_count() == 8, jax.devices()
    cfg = tiny_config(dim=32, n_heads=4, n_kv_heads=4, hidden_dim=64, max_seq_len=64)
    tokens = np.asarray(jax.random.randint(jax.random.key(1), (16, 17), 0, cfg.vocab_size))
    opt = optax.sgd(0.5)  # linear in the gradient: no amplification of float noise

    graphdef, s1 = init_train_state(Llama(cfg, rngs=nnx.Rngs(0)), opt)
    step1 = make_train_step(graphdef, opt)
    mesh = jax.make_mesh((8,), ("data",))
    graphdef, s8 = init_train_state(Llama(cfg, rngs=nnx.Rngs(0)), opt)
    step8 = make_train_step(graphdef, opt, mesh=mesh)
    for _ in range(3):
        s1, l1 = step1(s1, tokens)
        s8, l8 = step8(s8, tokens)
    np.testing.assert_allclose(float(l8), float(l1), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s8.params), jax.tree.leaves(s1.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)

    model = Llama(cfg, rngs=nnx.Rngs(2))
    ref = np.asarray(model(tokens[:2]))
    auto = jax.sharding.AxisType.Auto
    mesh2 = jax.make_mesh((2, 4), ("data", "model"), axis_types=(auto, auto))
    sharded = shard_model(model, mesh2, axis="model")
    assert len(sharded.wq[...].sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(sharded(tokens[:2])), ref, atol=1e-5)
    print("OK 8 devices")


if __name__ == "__main__":
    main()
