"""Run in its own process: on an 8-device CPU mesh the data-parallel GRPO and SFT steps equal
the single-device steps. Prints "OK 8 devices" on success."""

import jax

jax.config.update("jax_num_cpu_devices", 8)

from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from llm_tools import ByteTokenizer, Llama, init_train_state, tiny_config  # noqa: E402
from llm_tools.abstral.training import (  # noqa: E402
    GRPOConfig,
    encode_examples,
    make_grpo_step,
    make_sft_step,
    rollout_batch,
)


def main():
    assert jax.device_count() == 8, jax.devices()
    tok = ByteTokenizer()
    cfg = tiny_config(dim=32, n_heads=2, n_kv_heads=1, hidden_dim=64, max_seq_len=64)
    mesh = jax.make_mesh((8,), ("data",))
    opt = optax.sgd(0.5)
    gcfg = GRPOConfig(group_size=4)
    rng = np.random.default_rng(0)
    groups = [[SimpleNamespace(text=t, token_ids=tuple(tok.encode(t)), finish_reason="stop")
               for t in (f"#### {rng.integers(99)}" for _ in range(4))] for _ in range(2)]
    rollouts = rollout_batch(tok, ["P:", "Q:"], groups, rng.normal(size=(2, 4)), gcfg)
    sft = encode_examples(tok, [(f"Q{i}", f"#### {i}") for i in range(8)], max_len=64)
    results = []
    for m in (None, mesh):
        graphdef, state = init_train_state(Llama(cfg, rngs=nnx.Rngs(0)), opt)
        grpo = make_grpo_step(graphdef, opt, gcfg, mesh=m)
        sft_step = make_sft_step(graphdef, opt, mesh=m)
        for _ in range(2):
            state, metrics = grpo(state, rollouts)
            state, loss = sft_step(state, sft)
        results.append((state, float(metrics["loss"]), float(loss)))
    (s1, g1, l1), (s8, g8, l8) = results
    np.testing.assert_allclose(g8, g1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s8.params), jax.tree.leaves(s1.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    print("OK 8 devices")


if __name__ == "__main__":
    main()
