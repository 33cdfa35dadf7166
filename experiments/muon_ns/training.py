"""Training runs shared by the digits and LM comparisons: tasks, optimizers, one resumable run.

Every optimizer trains the same initialization on the same batches for a given seed
(paired comparisons). Each run is resumable (orbax checkpoints under its own directory),
logs validation loss against step and against wall-clock (the jitted training chunks only:
compilation and evaluation are excluded), records the NS diagnostics of the update actually
applied (eps_q of NS on the momentum, measured at each evaluation; see ``_diag_fn``) when
asked, and
stops with a clear error on a non-finite loss, keeping its last good checkpoint.

Optimizer names: ``muon_svd``; ``muon_ns_k<kappa>_q<steps>`` (Taylor kappa, q NS steps,
normalization ``train.normalization``) with an optional ``_fro`` / ``_max1`` suffix fixing
the normalization (``frobenius`` / ``max1_frobenius``); ``sgdm``; ``adamw``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import muon_ns
from experiments.checkpoint import Checkpointer
from experiments.muon_ns.models import MLP, ByteLM, digits_data, stdlib_bytes
from experiments.progress import Progress
from experiments.workdir import Workdir

_NS_NAME = re.compile(r"^muon_ns_k(\d+)_q(\d+)(?:_(fro|max1))?$")
_NORMS = {"fro": "frobenius", "max1": "max1_frobenius"}


class OptSpec(NamedTuple):
    """A parsed optimizer name."""

    name: str
    kind: str  # "svd" | "ns" | "sgdm" | "adamw"
    kappa: int = 0
    q: int = 0
    normalization: str | None = None  # None: the config's train.normalization


def parse_optimizer(name: str) -> OptSpec:
    """One optimizer name; raises ValueError naming it when unknown."""
    if name == "muon_svd":
        return OptSpec(name, "svd")
    if name in ("sgdm", "adamw"):
        return OptSpec(name, name)
    if m := _NS_NAME.match(name):
        return OptSpec(name, "ns", int(m.group(1)), int(m.group(2)),
                       _NORMS[m.group(3)] if m.group(3) else None)
    raise ValueError(f"train.optimizers: unknown optimizer {name!r}; expected muon_svd, "
                     "muon_ns_k<kappa>_q<steps>[_fro|_max1], sgdm or adamw")


def single_threaded_blas(fn):
    """Runs ``fn`` with one OpenBLAS/LAPACK thread (``threadpoolctl``).

    JAX's CPU SVD and eigendecompositions call scipy's OpenBLAS LAPACK. With its default
    thread count beside XLA's own threads, a 64 x 256 float32 SVD took 0.76 s on a loaded
    2-core machine and 3.8 ms with one BLAS thread (200x; numpy alone: 0.66 s vs 5 ms), which
    made every Muon-SVD step and every diagnostic cost seconds. Every muon_ns experiment runs
    under this limit.
    """
    import functools

    from threadpoolctl import threadpool_limits

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)
    return wrapped


def parse_optimizers(spec: str) -> list[str]:
    """Comma-separated optimizer names; raises ValueError naming any unknown one."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = []
    for n in names:
        try:
            parse_optimizer(n)
        except ValueError:
            bad.append(n)
    if not names or bad:
        raise ValueError(f"train.optimizers: unknown optimizer(s) {bad or spec!r}; expected "
                         "muon_svd, muon_ns_k<kappa>_q<steps>[_fro|_max1], sgdm or adamw")
    return names


def make_optimizer(name: str, lr: float, tc, dims, *, diagnostics: bool = False
                   ) -> optax.GradientTransformation:
    """The optimizer ``name`` at learning rate ``lr`` with the config's other settings.

    Built with ``optax.inject_hyperparams``, so the learning rate and, for Muon-NS, the step
    count q live in the state (``state.hyperparams``): runs that differ only in them share one
    compiled training step. Muon's non-matrix leaves go to AdamW at ``tc.adamw_lr``.
    """
    spec = parse_optimizer(name)
    common = dict(beta=tc.muon_beta, weight_dimension_numbers=dims,
                  adam_learning_rate=tc.adamw_lr)
    if spec.kind == "svd":
        return optax.inject_hyperparams(muon_ns.muon)(lr, orthogonalizer="svd", **common)
    if spec.kind == "ns":
        return optax.inject_hyperparams(muon_ns.muon)(
            lr, scheme=f"taylor{spec.kappa}", ns_steps=spec.q,
            normalization=spec.normalization or tc.normalization, diagnostics=diagnostics,
            **common)
    if spec.kind == "sgdm":
        return optax.inject_hyperparams(muon_ns.sgd_momentum)(lr, tc.sgdm_beta)
    return optax.inject_hyperparams(optax.adamw)(lr)


def _family(name: str, tc) -> tuple:
    """Optimizers that differ only in injected hyperparameters share a compiled step."""
    spec = parse_optimizer(name)
    if spec.kind == "ns":
        return ("ns", spec.kappa, spec.normalization or tc.normalization)
    return (spec.kind,)


def default_lr(name: str, tc) -> float:
    return {"svd": tc.muon_lr, "ns": tc.muon_lr, "sgdm": tc.sgdm_lr,
            "adamw": tc.adamw_lr}[parse_optimizer(name).kind]


def _muon_dims(exclude: tuple[str, ...]):
    """Muon for 2-D kernels whose path has none of ``exclude``; AdamW for the rest."""
    def dims(params):
        def one(path, x):
            key = jax.tree_util.keystr(path)
            if x.ndim == 2 and "kernel" in key and not any(e in key for e in exclude):
                return muon_ns.MuonDimensionNumbers()
            return None
        return jax.tree_util.tree_map_with_path(one, params)
    return dims


class Task:
    """A model + data + loss; ``init(seed)`` gives initial parameters, ``batch(key)`` a batch."""

    def __init__(self, make_model, loss, batch_fn, eval_batch, dims, info):
        graphdef, abstract = nnx.split(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))
        self.graphdef, self.abstract = graphdef, abstract
        self.batch_fn, self.dims, self.info = batch_fn, dims, info
        self._loss, self._eval_batch = loss, eval_batch

        @jax.jit
        def init(key):
            return nnx.to_pure_dict(nnx.state(make_model(nnx.Rngs(params=key))))

        self._init = init

    def init(self, seed: int):
        return self._init(jax.random.key(seed))

    def apply(self, params, x):
        state = jax.tree.map(lambda v: v, self.abstract)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state)(x)

    def loss_fn(self, params, batch):
        return self._loss(self.apply(params, batch[0]), batch[1])

    def eval_fn(self, params):
        return self.loss_fn(params, self._eval_batch)


def _xent(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def digits_task(config) -> Task:
    dc = config.digits
    (xtr, ytr), (xva, yva) = digits_data(config.seed)
    xtr, ytr, xva, yva = map(jnp.asarray, (xtr, ytr, xva, yva))

    def batch(key):
        idx = jax.random.randint(key, (dc.batch_size,), 0, xtr.shape[0])
        return xtr[idx], ytr[idx]

    return Task(lambda rngs: MLP(dc.hidden, rngs=rngs), _xent, batch, (xva, yva),
                _muon_dims(("head",)),
                {"train_examples": int(xtr.shape[0]), "val_examples": int(xva.shape[0])})


def lm_task(config) -> Task:
    lc = config.lm
    tr, va, info = stdlib_bytes(lc.max_train_bytes)
    tr, va = jnp.asarray(tr, jnp.int32), jnp.asarray(va, jnp.int32)
    t = lc.seq_len

    def windows(data, starts):
        idx = starts[:, None] + jnp.arange(t + 1)[None, :]
        w = data[idx]
        return w[:, :-1], w[:, 1:]

    def batch(key):
        starts = jax.random.randint(key, (lc.batch_size,), 0, tr.shape[0] - t - 1)
        return windows(tr, starts)

    n_eval = lc.eval_batches * lc.batch_size
    eval_starts = jnp.asarray(np.linspace(0, va.shape[0] - t - 2, n_eval).astype(np.int32))
    return Task(lambda rngs: ByteLM(lc.d_model, lc.num_layers, lc.num_heads, t, rngs=rngs),
                _xent, batch, windows(va, eval_starts), _muon_dims(("head",)), info)


def _diag_fn(name: str, tc, dims):
    """eps_q statistics of NS applied to the current momentum, outside the training scan.

    With the paper's momentum (no Nesterov) the NS input of the last step is exactly the
    momentum buffer ``mu`` in the state, so ``ns_diagnostics(mu)`` measures the update that
    step applied. It is computed here, in its own jitted function at each evaluation, and not
    with ``muon(..., diagnostics=True)`` inside the scanned training chunk: on XLA:CPU (jax
    0.10) the chunk with an SVD and an eigendecomposition inside the ``lax.scan`` hung
    deterministically at the LM shape (reproduced twice; the same chunk without them runs).
    Returns (state) -> (mean eps_q, max eps_q) over every Muon matrix.
    """
    spec = parse_optimizer(name)
    scheme, norm = f"taylor{spec.kappa}", spec.normalization or tc.normalization

    def stats(state):
        mus = [s.mu for s in jax.tree.leaves(
            state["opt_state"], is_leaf=lambda x: isinstance(x, muon_ns.ScaleByMuonState))
            if isinstance(s, muon_ns.ScaleByMuonState)]
        if len(mus) != 1:
            raise ValueError(f"{name}: expected one Muon state in the optimizer state, found "
                             f"{len(mus)}")
        treedef = jax.tree.structure(state["params"])
        d = treedef.flatten_up_to(dims(state["params"]))
        mats = [m for m, di in zip(treedef.flatten_up_to(mus[0]), d, strict=True)
                if di is not None]
        eps = jnp.stack([muon_ns.ns_diagnostics(m, scheme, spec.q, normalization=norm).eps_q
                         for m in mats])
        return jnp.mean(eps), jnp.max(eps)
    return stats


def train_one(task: Task, name: str, lr: float, seed: int, steps: int, eval_every: int, tc,
              workdir: Path, *, diagnostics: bool = False, label: str | None = None,
              compiled: dict | None = None) -> list[dict]:
    """Trains one optimizer from ``task.init(seed)`` on the batches of ``seed``.

    ``compiled`` (a dict the caller keeps) holds the compiled training chunk of each optimizer
    family, so runs that differ in seed, learning rate or q compile once.

    Returns the run's records ``[{step, val_loss, wall_s, train_loss[, eps_q_mean,
    eps_q_max]}]`` (step 0 first). A finished run is read back, not retrained.
    """
    if steps % eval_every:
        raise ValueError(f"steps ({steps}) must be a multiple of eval_every ({eval_every})")
    wd = Workdir(workdir)
    diagnostics = diagnostics and parse_optimizer(name).kind == "ns"
    opt = make_optimizer(name, lr, tc, task.dims)
    params = task.init(seed)
    init = {"params": params, "opt_state": opt.init(params), "key": jax.random.key(seed),
            "wall_s": jnp.zeros([], jnp.float32)}
    ckpt = Checkpointer(workdir / "checkpoints", save_every=max(tc.checkpoint_every, 1))
    state, start = ckpt.restore_or(init)
    wd.truncate_metrics(start)
    if start < steps:
        compiled = {} if compiled is None else compiled
        key = (_family(name, tc), eval_every)
        if key not in compiled:  # compile outside the timed region
            compiled[key] = (jax.jit(_chunk_fn(task, opt, eval_every)).lower(state).compile(),
                             jax.jit(task.eval_fn))
        chunk_c, eval_c = compiled[key]
        if diagnostics:  # q is static here; one compile per (family, q)
            dkey = ("diag", name)
            if dkey not in compiled:
                compiled[dkey] = jax.jit(_diag_fn(name, tc, task.dims))
            diag_c = compiled[dkey]
        if start == 0:
            wd.log_metrics(0, val_loss=float(eval_c(state["params"])), wall_s=0.0)
        progress = Progress(steps, name=label or name, interval_s=30.0, start_step=start)
        wall = float(state["wall_s"])
        for step in range(start + eval_every, steps + 1, eval_every):
            jax.block_until_ready(state)
            t0 = time.perf_counter()
            new_state, loss = chunk_c(state)
            jax.block_until_ready(new_state)
            wall += time.perf_counter() - t0
            loss = float(loss)
            val = float(eval_c(new_state["params"]))
            if not (np.isfinite(loss) and np.isfinite(val)):
                ckpt.close()
                raise FloatingPointError(
                    f"{label or name}: non-finite loss at step {step} (train {loss}, val "
                    f"{val}); stopped. The last good checkpoint (step {ckpt.latest_step}) is "
                    f"kept in {workdir / 'checkpoints'}")
            state = dict(new_state, wall_s=jnp.asarray(wall, jnp.float32))
            extra = {}
            if diagnostics:
                eps_mean, eps_max = diag_c(new_state)
                extra = {"eps_q_mean": float(eps_mean), "eps_q_max": float(eps_max)}
            wd.log_metrics(step, val_loss=val, wall_s=wall, train_loss=loss, **extra)
            progress.update(step, f"val {val:.4f}")
            ckpt.maybe_save(step, state)
        ckpt.save(steps, state)
    ckpt.close()
    return list(wd.read_metrics())


def _chunk_fn(task: Task, opt, eval_every: int):
    """``eval_every`` jitted training steps: (state) -> (state, mean loss)."""
    def chunk(state):
        def one(carry, _):
            p, s, key = carry
            key, sub = jax.random.split(key)
            loss, g = jax.value_and_grad(task.loss_fn)(p, task.batch_fn(sub))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s, key), loss

        (p, s, key), losses = jax.lax.scan(one, (state["params"], state["opt_state"],
                                                 state["key"]), None, length=eval_every)
        return ({"params": p, "opt_state": s, "key": key, "wall_s": state["wall_s"]},
                jnp.mean(losses))
    return chunk


def best_val(records: list[dict]) -> tuple[float, int]:
    """(lowest validation loss after step 0, its step): the run judged with early stopping."""
    recs = [r for r in records if r["step"] > 0]
    i = int(np.argmin([r["val_loss"] for r in recs]))
    return float(recs[i]["val_loss"]), int(recs[i]["step"])


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval (NaN width for one value)."""
    from scipy import stats

    v = np.asarray(values, np.float64)
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1)
                 / np.sqrt(v.size))
    return m, m - half, m + half


def judge_digits(records: dict[str, list[list[dict]]], tolerance: float = 0.02,
                 min_q: int = 3) -> dict:
    """The digits criterion, fixed before running; judged with early stopping.

    ``records[name][s]`` is seed s's run. Each run is judged at its best validation loss
    (early stopping: the runs overfit the 1,437 training images well before the last step).
    For every NS run with q >= min_q: (a) its best validation loss, averaged over seeds, is at
    most (1 + tolerance) x Muon-SVD's; (b) the median over seeds of the training wall-clock
    at which it first reaches the level (1 + tolerance) x SVD's mean best loss is below
    SVD's own. Held when (a) and (b) hold for all of them.
    """
    if "muon_svd" not in records:
        raise ValueError("judge_digits: the comparison needs a muon_svd run")
    svd_best = float(np.mean([best_val(r)[0] for r in records["muon_svd"]]))
    level = (1 + tolerance) * svd_best

    def time_to_level(recs):
        return next((r["wall_s"] for r in recs if r["step"] > 0 and r["val_loss"] <= level),
                    float("inf"))

    def median_time(runs):
        return float(np.median([time_to_level(r) for r in runs]))

    t_svd = median_time(records["muon_svd"])
    out = {"svd_best_val_loss": svd_best, "level": level,
           "svd_time_to_level_s": None if np.isinf(t_svd) else t_svd,
           "num_seeds": len(records["muon_svd"])}
    held, judged = True, 0
    for name, runs in records.items():
        out[f"{name}_best_val_loss"] = float(np.mean([best_val(r)[0] for r in runs]))
        out[f"{name}_final_val_loss"] = float(np.mean([r[-1]["val_loss"] for r in runs]))
        out[f"{name}_total_train_s"] = float(np.median([r[-1]["wall_s"] for r in runs]))
        spec = parse_optimizer(name)
        if spec.kind == "ns" and spec.q >= min_q:
            judged += 1
            t = median_time(runs)
            out[f"{name}_time_to_level_s"] = None if np.isinf(t) else t
            ok = out[f"{name}_best_val_loss"] <= level and t < t_svd
            out[f"{name}_ok"] = bool(ok)
            held &= ok
    out["num_ns_runs_judged"] = judged
    out["held"] = bool(held and judged > 0)
    return out


def run_digits(config, workdir: str | Path) -> dict:
    """Every ``train.optimizers`` entry on digits for ``train.seeds`` seeds; plots, judges."""
    tc, dc = config.train, config.digits
    task = digits_task(config)
    names = parse_optimizers(tc.optimizers)
    if dc.steps % dc.eval_every:
        raise ValueError(f"digits.steps ({dc.steps}) must be a multiple of digits.eval_every "
                         f"({dc.eval_every})")
    root = Path(workdir)
    records: dict[str, list[list[dict]]] = {n: [] for n in names}
    compiled: dict = {}
    for s in range(tc.seeds):
        for name in names:
            records[name].append(train_one(
                task, name, default_lr(name, tc), config.seed + s, dc.steps, dc.eval_every, tc,
                root / "digits" / name / f"seed{s}", label=f"digits/{name}/seed{s}",
                compiled=compiled))
    results = judge_digits(records)
    results.update({f"data_{k}": v for k, v in task.info.items()})
    wd = Workdir(root)
    plot_curves(wd, {n: r[0] for n, r in records.items()}, "digits (seed 0)",
                "digits_val_loss.png")
    wd.write_json("digits_results.json", results)
    return results


def plot_curves(wd: Workdir, records: dict[str, list[dict]], title: str, filename: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for name, recs in records.items():
        recs = [r for r in recs if r["step"] > 0]
        style = "-" if name.startswith("muon") else "--"
        lw = 2.2 if name == "muon_svd" else 1.2
        axes[0].plot([r["step"] for r in recs], [r["val_loss"] for r in recs], style, lw=lw,
                     label=name)
        axes[1].plot([r["wall_s"] for r in recs], [r["val_loss"] for r in recs], style, lw=lw,
                     label=name)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training wall-clock (s, this machine)")
    axes[0].set_ylabel("validation loss")
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    wd.save_figure(fig, filename)
    plt.close(fig)
