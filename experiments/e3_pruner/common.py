"""Pieces shared by the E³-Pruner experiments: a resumable result store, layer selection by
every method on the same calibration data, evaluation windows, perplexity, small statistics."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import e3_pruner as E
from experiments.progress import Progress
from experiments.workdir import atomic_write_json
from llm_tools import Llama, forward

SELECTIONS = ("e3", "block_influence", "sleb", "last_n")


class Store:
    """A JSON dict on disk, rewritten atomically after every ``set``: finished work survives
    an interruption and is skipped when the run is restarted."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data: dict[str, Any] = {}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> Any:
        self.data[key] = value
        atomic_write_json(self.path, self.data)
        return value


def windows(stream, n: int, length: int, key: jax.Array) -> jax.Array:
    """``n`` windows of ``length`` tokens from a 1-D stream (``[n, length]``); a clear error
    if the stream is shorter than one window."""
    stream = np.asarray(stream)
    if stream.ndim != 1 or stream.shape[0] < length + 1:
        raise ValueError(f"windows: the token stream ({stream.shape[0]} tokens) is shorter than "
                         f"the {length} tokens of context needed")
    starts = np.asarray(jax.random.randint(key, (n,), 0, stream.shape[0] - length))
    return jnp.asarray(np.stack([stream[s:s + length] for s in starts]).astype(np.int32))


def perplexity(model: Llama, tokens, *, batch_size: int = 8) -> float:
    """``exp`` of the mean next-token NLL (nats) of ``tokens [N, S]``."""
    return math.exp(E.calibration_nll(model, tokens, batch_size=batch_size))


def calibration_kl(model: Llama, tokens, gates, dense_logp, *, batch_size: int = 8) -> float:
    """Mean per-token ``KL(p_dense ‖ p_gated)`` on ``tokens`` (inputs ``tokens[:, :-1]``)."""
    graphdef, state = nnx.split(model)
    total = 0.0
    for lo in range(0, tokens.shape[0], batch_size):
        total += float(_kl_sum(graphdef, state, tokens[lo:lo + batch_size], gates,
                               dense_logp[lo:lo + batch_size]))
    return total / (tokens.shape[0] * (tokens.shape[1] - 1))


@jax.jit
def _kl_terms(logits, dense_logp):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(jnp.exp(dense_logp) * (dense_logp - logp))


def _kl_sum(graphdef, state, tokens, gates, dense_logp):
    logits = forward(nnx.merge(graphdef, state), tokens[:, :-1], gates=gates)[0]
    return _kl_terms(logits, dense_logp)


def dense_log_probs(model: Llama, tokens, *, batch_size: int = 8) -> jax.Array:
    """``log p_dense`` of every position, ``[N, S-1, V]`` (for small vocabularies)."""
    parts = [jax.nn.log_softmax(forward(model, tokens[lo:lo + batch_size, :-1])[0], axis=-1)
             for lo in range(0, tokens.shape[0], batch_size)]
    return jnp.concatenate(parts)


def exhaustive_best(model: Llama, tokens, k: int, *, batch_size: int = 8,
                    progress_name: str = "exhaustive") -> dict:
    """Calibration KL of every ``k``-of-``L`` mask: the best one and the sorted KL list.

    Only feasible for small ``L``; used as a reference for how good each method's pick is.
    """
    L = model.config.n_layers
    dense = dense_log_probs(model, tokens, batch_size=batch_size)
    combos = list(itertools.combinations(range(L), k))
    progress = Progress(len(combos), name=progress_name, interval_s=30)
    kls = {}
    for i, keep in enumerate(combos):
        kls[keep] = calibration_kl(model, tokens, E.gates_from_keep(keep, L), dense,
                                   batch_size=batch_size)
        progress.update(i + 1)
    best = min(kls, key=kls.get)
    return {"keep": list(best), "kl": kls[best],
            "all": [[list(c), v] for c, v in sorted(kls.items(), key=lambda kv: kv[1])]}


def select_layers(method: str, model: Llama, calibration, k: int, *, key: jax.Array,
                  config, log: Callable[[str], None] = print) -> dict:
    """Runs one selection method on the calibration windows; returns ``{"keep", "seconds", ...}``.

    ``method`` is ``e3``, ``block_influence``, ``sleb``, ``last_n`` or ``random_<i>``.
    ``config`` holds ``search_steps, search_batch, search_lr, t_start, t_end,
    search_objective, eval_batch``.
    """
    L = model.config.n_layers
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if method == "e3":
        progress = Progress(config.search_steps, name="e3 mask search", interval_s=30)
        r = E.search_mask(model, calibration, k, key=key, steps=config.search_steps,
                          batch_size=config.search_batch, learning_rate=config.search_lr,
                          t_start=config.t_start, t_end=config.t_end,
                          objective=config.search_objective,
                          callback=lambda i, loss, t: progress.update(i, f"loss {loss:.4f}"))
        keep = r.keep
        extra = {"logits": r.logits.tolist(), "losses": r.losses.tolist(),
                 "logit_history": r.logit_history.tolist()}
    elif method == "block_influence":
        scores = E.block_influence(model, calibration, batch_size=config.eval_batch)
        keep = E.select_by_block_influence(scores, k)
        extra = {"scores": np.asarray(scores).tolist()}
    elif method == "sleb":
        progress = Progress(L - k, name="sleb rounds", interval_s=30)
        order = []

        def cb(r, layer, nll):
            order.append([layer, nll])
            progress.update(r + 1, f"removed {layer} (nll {nll:.4f})")

        keep = E.sleb_keep(model, calibration, k, batch_size=config.eval_batch, callback=cb)
        extra = {"removal_order": order}
    elif method == "last_n":
        keep = E.last_n_keep(L, k)
    elif method.startswith("random_"):
        keep = E.random_keep(jax.random.fold_in(key, int(method.split("_")[1])), L, k)
    else:
        raise ValueError(f"select_layers: unknown method {method!r}")
    seconds = time.perf_counter() - t0
    keep = [int(i) for i in keep]
    log(f"{method}: keep {keep} ({seconds:.1f} s)")
    return {"keep": keep, "seconds": seconds, **extra}


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of a 95% Student-t interval (0 for a single value)."""
    from scipy import stats

    x = np.asarray(values, np.float64)
    if x.size < 2:
        return float(x.mean()), 0.0
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)
