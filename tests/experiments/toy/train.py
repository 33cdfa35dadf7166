"""A toy resumable training loop that exercises the whole harness (tests only)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from experiments.checkpoint import Checkpointer
from experiments.config import validate_config
from experiments.progress import Progress
from experiments.workdir import Workdir

TOY_CONFIG = Path(__file__).with_name("config.py")


class Crash(RuntimeError):
    pass


def make_data(key, dim, n=256):
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (n, dim))
    w_true = jax.random.normal(kw, (dim,))
    return x, x @ w_true


def run(config, workdir):
    validate_config(config, TOY_CONFIG)
    wd = Workdir(workdir)
    x, y = make_data(jax.random.key(config.seed), config.model.dim)
    opt = optax.sgd(config.learning_rate, momentum=0.9)
    params = jnp.zeros(config.model.dim)
    init = {"params": params, "opt_state": opt.init(params), "key": jax.random.key(config.seed)}

    @jax.jit
    def step_fn(state):
        key, sub = jax.random.split(state["key"])
        idx = jax.random.choice(sub, x.shape[0], (config.batch_size,), replace=False)
        loss, g = jax.value_and_grad(lambda w: jnp.mean((x[idx] @ w - y[idx]) ** 2))(
            state["params"]
        )
        updates, opt_state = opt.update(g, state["opt_state"])
        return {"params": optax.apply_updates(state["params"], updates),
                "opt_state": opt_state, "key": key}, loss

    ckpt = Checkpointer(Path(workdir) / "checkpoints", save_every=config.checkpoint_every,
                        config=config, resume_allow=("fail_at_step", "steps"))
    state, start = ckpt.restore_or(init)
    wd.truncate_metrics(start)
    progress = Progress(config.steps, name="toy", interval_s=0.0, start_step=start)
    for step in range(start, config.steps):
        if step == config.fail_at_step:
            raise Crash(f"simulated crash at step {step}")
        state, loss = step_fn(state)
        wd.log_metrics(step + 1, loss=loss)
        progress.update(step + 1)
        ckpt.maybe_save(step + 1, state)
    ckpt.save(config.steps, state)
    ckpt.close()
    wd.write_results({"final_loss": float(jnp.mean((x @ state["params"] - y) ** 2))})
    return state, start
