"""Recovery of a pruned model by fine-tuning or distillation from the dense one.

Every kind of recovery sees the same batches (same key) and the same token budget
``steps × batch_size × seq_len``, so their results are paired. The dense teacher's logits are
computed per batch outside the student's gradient; the student step is
``llm_tools.make_train_step`` with a custom loss (:func:`make_recovery_loss`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from e3_pruner.distill import KINDS, distillation_loss
from llm_tools import (
    Llama,
    forward,
    init_train_state,
    make_train_step,
    sample_windows,
)
from llm_tools.train import token_logprobs  # not re-exported by llm_tools (yet)

__all__ = ["make_recovery_loss", "make_recovery_step", "recover"]


def make_recovery_loss(kind: str, *, alpha: float = 0.5, temperature: float = 1.0):
    """``loss_fn(model, batch) -> (loss, aux)`` for ``llm_tools.make_train_step``.

    ``batch["ids"]`` is ``[B, S+1]`` (position ``t`` predicts ``t+1``); for every kind but
    ``"lm"`` it also holds ``batch["teacher_logits"]`` ``[B, S, V]`` of the dense model. The
    ``"lm"`` loss is ``−mean llm_tools.token_logprobs(model, ids)`` (the output projection in
    chunks, no ``[B, S, V]`` array); the others need the student's full distribution and are
    :func:`~e3_pruner.distill.distillation_loss`.
    """
    if kind not in KINDS:
        raise ValueError(f"make_recovery_loss: kind must be one of {KINDS}, got {kind!r}")

    def lm_loss(model, batch):
        ce = -jnp.mean(token_logprobs(model, batch["ids"]))
        return ce, {"ce": ce, "alpha": jnp.zeros(())}

    def kd_loss(model, batch):
        ids = batch["ids"]
        logits = forward(model, ids[:, :-1])[0]
        return distillation_loss(logits, batch["teacher_logits"], ids[:, 1:], kind=kind,
                                 alpha=alpha, temperature=temperature)

    return lm_loss if kind == "lm" else kd_loss


def make_recovery_step(student: Llama, optimizer: optax.GradientTransformation, kind: str, *,
                       alpha: float = 0.5, temperature: float = 1.0):
    """``llm_tools.make_train_step`` with the recovery loss of ``kind``, for students shaped
    like ``student``. Pass it (with the same ``optimizer``) to several :func:`recover` calls
    to compile the step once."""
    graphdef, _ = init_train_state(student, optimizer)
    return make_train_step(graphdef, optimizer, make_recovery_loss(kind, alpha=alpha,
                                                                    temperature=temperature))


@functools.partial(jax.jit, static_argnames="graphdef")
def _teacher_logits(graphdef, state, inputs):
    return forward(nnx.merge(graphdef, state), inputs)[0]


def recover(student: Llama, teacher: Llama, train_tokens, *, kind: str, steps: int,
            batch_size: int, seq_len: int, key: jax.Array,
            optimizer: optax.GradientTransformation | None = None,
            learning_rate: float = 1e-3, alpha: float = 0.5, temperature: float = 1.0,
            train_step=None, callback: Callable[[int, float, dict], None] | None = None
            ) -> tuple[Llama, dict]:
    """Trains the pruned ``student`` for ``steps`` batches of windows of ``train_tokens``.

    Args:
      student: the pruned model (not modified; a trained copy is returned).
      teacher: the dense model (frozen; only used for ``kind != "lm"``).
      train_tokens: a 1-D int token stream.
      kind: ``"lm"``, ``"kd"``, ``"mix"`` or ``"ekd"`` (see :mod:`e3_pruner.distill`).
      steps, batch_size, seq_len: the token budget ``steps · batch_size · seq_len``.
      key: typed PRNG key for the windows (same key ⇒ same batches for every kind).
      optimizer: default ``adamw(cosine(learning_rate, steps), weight_decay=0)``; pass the
        same optimizer object to several recoveries to compile their step once.
      alpha, temperature: see :func:`~e3_pruner.distill.distillation_loss`.
      train_step: optional step from :func:`make_recovery_step` for this ``kind``, built with
        this ``optimizer`` for a student of the same architecture (saves a compilation).
      callback: optional ``callback(step, loss, aux)`` after each step.

    Returns:
      ``(trained student, history)`` with ``history = {"loss": [...], "ce": [...],
      "kl": [...], "alpha": [...]}`` per step (``"kl"`` stays empty for ``"lm"``, which
      never computes the teacher).

    Raises:
      ValueError: on an unknown kind, non-positive budget, a stream shorter than one window,
        a teacher with another vocabulary, or a non-finite loss.
    """
    who = "recover"
    for name, m in (("student", student), ("teacher", teacher)):
        if not isinstance(m, Llama):
            raise TypeError(f"{who}: {name} must be an llm_tools.Llama, got {type(m).__name__}")
    if kind not in KINDS:
        raise ValueError(f"{who}: kind must be one of {KINDS}, got {kind!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"{who}: alpha must be a float in [0, 1], got {alpha!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not 0 < temperature < float("inf"):
        raise ValueError(f"{who}: temperature must be a finite float > 0, got {temperature!r}")
    if student.config.vocab_size != teacher.config.vocab_size:
        raise ValueError(f"{who}: student and teacher vocabularies differ "
                         f"({student.config.vocab_size} vs {teacher.config.vocab_size})")
    if seq_len > student.config.max_seq_len:
        raise ValueError(f"{who}: seq_len ({seq_len}) exceeds the model's max_seq_len "
                         f"({student.config.max_seq_len})")
    train_tokens = jnp.asarray(train_tokens)
    if train_tokens.ndim != 1 or train_tokens.shape[0] < seq_len + 2:
        raise ValueError(f"{who}: train_tokens must be a 1-D stream longer than seq_len + 1 = "
                         f"{seq_len + 1} tokens (the context needed), got shape "
                         f"{train_tokens.shape}")
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(f"{who}: key must be a typed key from jax.random.key(seed), got "
                        f"{getattr(key, 'dtype', type(key).__name__)}")
    if train_step is not None and optimizer is None:
        raise ValueError(f"{who}: pass the optimizer the train_step was built with")
    if optimizer is None:
        optimizer = optax.adamw(optax.cosine_decay_schedule(learning_rate, steps),
                                weight_decay=0.0)
    graphdef, state = init_train_state(nnx.clone(student), optimizer)
    step = train_step or make_train_step(graphdef, optimizer, make_recovery_loss(
        kind, alpha=alpha, temperature=temperature))
    t_graph, t_state = nnx.split(teacher)
    history = {"loss": [], "ce": [], "kl": [], "alpha": []}
    for i in range(steps):
        window = sample_windows(jax.random.fold_in(key, i), train_tokens, batch_size,
                                seq_len + 1)
        batch = {"ids": window}
        if kind != "lm":
            batch["teacher_logits"] = _teacher_logits(t_graph, t_state, window[:, :-1])
        state, loss, aux = step(state, batch)
        loss = float(loss)
        if not math.isfinite(loss):
            raise ValueError(f"{who}: loss is {loss} at step {i + 1} (kind={kind!r})")
        history["loss"].append(loss)
        for name in ("ce", "kl", "alpha") if kind != "lm" else ("ce", "alpha"):
            history[name].append(float(aux[name]))
        if callback is not None:
            callback(i + 1, loss, {k: float(v) for k, v in aux.items()})
    return nnx.merge(graphdef, state.params, state.rest), history
