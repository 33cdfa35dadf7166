"""Muon and SGD with momentum as optax ``GradientTransformation``s.

Muon (Kim & Oh 2026, Algorithm 1) on a matrix parameter W with stochastic gradient G_t:

    M_t = beta M_{t-1} + G_t                        (momentum="paper": undamped)
    O_t = NS_q(M_t)  ~  Polar(M_t) = U V^T         (q Newton-Schulz steps, or the SVD)
    W_{t+1} = W_t - eta O_t

``momentum="ema"`` is optax's bias-corrected M_t = beta M_{t-1} + (1 - beta) G_t, with
Nesterov as in ``optax.contrib.muon``. Leaves that are not matrices (or that the dimension
numbers mark ``None``) go to AdamW or a transform the user gives.

References:
  Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
  Liu et al., "Muon is Scalable for LLM Training", arXiv 2502.16982 (consistent RMS).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.contrib import MuonDimensionNumbers
from optax.transforms import _masking

from muon_ns.newton_schulz import (
    NORMALIZATIONS,
    NS_METHODS,
    NSDiagnostics,
    newton_schulz,
    ns_diagnostics,
    polar_svd,
)
from muon_ns.schemes import resolve_coeffs

__all__ = [
    "OPTAX_COMPAT",
    "MuonDimensionNumbers",
    "ScaleByMomentumState",
    "ScaleByMuonState",
    "muon",
    "scale_by_momentum",
    "scale_by_muon",
    "sgd_momentum",
]

MOMENTUMS = ("paper", "ema")
ORTHOGONALIZERS = ("newton_schulz", "svd")
UPDATE_SCALINGS = (None, "shape", "consistent_rms")

OPTAX_COMPAT: dict[str, Any] = {
    "orthogonalizer": "newton_schulz",
    "scheme": "jordan",
    "ns_steps": 5,
    "beta": 0.95,
    "momentum": "ema",
    "nesterov": True,
    "normalization": "frobenius",
    "eps": 1e-8,
    "ns_method": "direct",  # optax's operation order; "auto" is faster, equal to ~1e-5
    "update_scaling": "shape",
    "adam_b1": 0.9,
    "adam_b2": 0.999,
    "adam_eps_root": 0.0,
    "adam_weight_decay": 0.0,
}
"""Keyword arguments with which ``muon(lr, **OPTAX_COMPAT)`` equals ``optax.contrib.muon(lr)``."""


# -- validation ---------------------------------------------------------------------------

def _check_scalar_or_schedule(fn: str, name: str, value, lo: float, hi: float | None = None,
                              *, hi_open: bool = True) -> None:
    if callable(value):
        return
    if isinstance(value, bool | str | bytes):
        raise TypeError(f"{fn}: {name} must be a number or a schedule, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {name} must be a number or a schedule, got {value!r}") from e
    if isinstance(value, jax.core.Tracer):
        return
    ok = math.isfinite(v) and v >= lo and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        rng = f"in [{lo}, {hi})" if hi is not None and hi_open else (
            f"in [{lo}, {hi}]" if hi is not None else f">= {lo}")
        raise ValueError(f"{fn}: {name} must be a finite number {rng}, got {value!r}")


def _check_choice(fn: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {list(choices)}, got {value!r}")


def _at(value, count):
    return value(count) if callable(value) else value


# -- momentum ------------------------------------------------------------------------------

class ScaleByMomentumState(NamedTuple):
    """State of :func:`scale_by_momentum`: an int32 step count and the momentum M."""

    count: jax.Array
    mu: optax.Updates


def _momentum_step(updates, mu, count, beta, momentum: str, nesterov: bool):
    """Returns (direction to orthogonalize, new momentum, new count)."""
    b = _at(beta, count)
    count_inc = optax.safe_increment(count)
    if momentum == "paper":
        mu = jax.tree.map(lambda m, g: b * m + g, mu, updates)
        direction = (jax.tree.map(lambda m, g: g + b * m, mu, updates) if nesterov else mu)
        return direction, mu, count_inc
    mu = optax.tree.update_moment(updates, mu, b, 1)
    if nesterov:  # as optax.contrib.muon / nadam
        direction = jax.tree.map(
            lambda m, g: b * m + (1 - b) * g,
            optax.tree.bias_correction(mu, b, optax.safe_increment(count_inc)),
            optax.tree.bias_correction(updates, b, count_inc),
        )
    else:
        direction = optax.tree.bias_correction(mu, b, count_inc)
    return direction, mu, count_inc


def scale_by_momentum(
    beta: optax.ScalarOrSchedule = 0.9,
    *,
    momentum: str = "paper",
    nesterov: bool = False,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Heavy-ball momentum on every leaf: M_t = beta M_{t-1} + G_t (or optax's EMA form).

    Args:
      beta: momentum in [0, 1), or a schedule of the step count.
      momentum: ``"paper"`` (undamped, M_t = beta M_{t-1} + G_t) or ``"ema"``
        (M_t = beta M_{t-1} + (1 - beta) G_t, bias-corrected).
      nesterov: use G_t + beta M_t (paper) or optax's Nesterov correction (ema).
      mu_dtype: dtype of M (None: the parameters' dtype).

    Returns:
      A ``GradientTransformation`` whose update is the momentum direction.

    Raises:
      ValueError: beta outside [0, 1) or an unknown momentum name.

    References:
      Kim & Oh, arXiv 2601.19156 (SGD-M, the vector-based baseline of Theorem 1).
    """
    _check_scalar_or_schedule("scale_by_momentum", "beta", beta, 0.0, 1.0)
    _check_choice("scale_by_momentum", "momentum", momentum, MOMENTUMS)
    mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

    def init_fn(params):
        return ScaleByMomentumState(jnp.zeros([], jnp.int32),
                                    optax.tree.zeros_like(params, dtype=mu_dtype))

    def update_fn(updates, state, params=None):
        del params
        direction, mu, count = _momentum_step(updates, state.mu, state.count, beta, momentum,
                                              nesterov)
        return direction, ScaleByMomentumState(count, optax.tree.cast(mu, mu_dtype))

    return optax.GradientTransformation(init_fn, update_fn)


# -- dimension numbers -------------------------------------------------------------------

def _is_dim_leaf(x) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers | _masking.MaskedNode)


class _Box:
    """Opaque holder so dimension numbers / None survive a tree broadcast as leaves."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _leaf_dims(spec, tree) -> list:
    """One MuonDimensionNumbers (or None: not a Muon leaf) per leaf of ``tree``."""
    leaves, treedef = jax.tree.flatten(tree)
    if spec is None:
        return [MuonDimensionNumbers() for _ in leaves]
    if isinstance(spec, MuonDimensionNumbers):
        return [spec for _ in leaves]
    if callable(spec):
        spec = spec(tree)
    try:
        boxed = jax.tree.map(
            lambda dn, sub: jax.tree.map(lambda _: _Box(dn), sub),
            spec, tree, is_leaf=_is_dim_leaf,
        )
        flat = treedef.flatten_up_to(boxed)
    except (ValueError, TypeError) as e:
        raise ValueError("scale_by_muon: weight_dimension_numbers must be a tree with the "
                         f"params' structure (or a prefix of it): {e}") from e
    return [b.value if isinstance(b, _Box) else None for b in flat]


def _axes(x_ndim: int, dn: MuonDimensionNumbers):
    red = (dn.reduction_axis,) if isinstance(dn.reduction_axis, int) else tuple(dn.reduction_axis)
    out = (dn.output_axis,) if isinstance(dn.output_axis, int) else tuple(dn.output_axis)
    red = tuple(a % x_ndim for a in red)
    out = tuple(a % x_ndim for a in out)
    return red, out


class _Plan(NamedTuple):
    """How one leaf becomes a (batch, m, n) stack with m <= n, and back."""

    perm: tuple[int, ...]
    flat: tuple[int, int, int]
    unflat: tuple[int, ...]
    inv_perm: tuple[int, ...]
    wide: bool  # False: the (batch, fan_in, fan_out) stack is transposed
    fan_in: int
    fan_out: int
    batch_shape: tuple[int, ...]


def _plan(x, dn: MuonDimensionNumbers, name: str) -> _Plan:
    if x.ndim < 2:
        raise ValueError(f"scale_by_muon: leaf {name} has shape {x.shape}; Muon needs a matrix "
                         "(ndim >= 2). Mark it None in weight_dimension_numbers to send it "
                         "elsewhere")
    red, out = _axes(x.ndim, dn)
    if set(red) & set(out) or not red or not out:
        raise ValueError(f"scale_by_muon: leaf {name}: reduction axes {red} and output axes "
                         f"{out} must be non-empty and disjoint (shape {x.shape})")
    batch = tuple(a for a in range(x.ndim) if a not in red and a not in out)
    perm = batch + red + out
    inv = tuple(sorted(range(x.ndim), key=lambda i: perm[i]))
    shp = lambda axes: tuple(x.shape[a] for a in axes)  # noqa: E731
    fan_in, fan_out = math.prod(shp(red)), math.prod(shp(out))
    flat = (math.prod(shp(batch)), fan_in, fan_out)
    return _Plan(perm, flat, shp(batch) + shp(red) + shp(out), inv, fan_in <= fan_out,
                 fan_in, fan_out, shp(batch))


def _to_stack(x, p: _Plan):
    s = jnp.transpose(x, p.perm).reshape(p.flat)
    return s if p.wide else jnp.swapaxes(s, -1, -2)


def _from_stack(s, p: _Plan):
    s = s if p.wide else jnp.swapaxes(s, -1, -2)
    return jnp.transpose(s.reshape(p.unflat), p.inv_perm)


def _explicit_spec(x) -> tuple | None:
    """x's partition spec when it is sharded over Explicit mesh axes (else None)."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or getattr(mesh, "empty", True):
        return None
    if not any(t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
        return None
    spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
    return spec if any(p is not None for p in spec) else None


def _replicate_matrix_axes(x, p: _Plan):
    """Under explicit sharding, keep a single batch axis' sharding and gather the rest.

    NS contracts over both matrix axes, which explicit sharding cannot do implicitly; a
    stack sharded over its layer axis stays sharded (each device orthogonalizes its own
    layers), a matrix sharded over rows or columns is gathered first.
    """
    spec = _explicit_spec(x)
    if spec is None:
        return x
    keep = len(p.perm) - 2 == 1 and p.perm[0] == 0 and p.flat[0] == x.shape[0]
    new = tuple(spec[a] if keep and a == 0 else None for a in range(x.ndim))
    return jax.sharding.reshard(x, jax.P(*new)) if new != spec else x


# -- Muon ----------------------------------------------------------------------------------

class ScaleByMuonState(NamedTuple):
    """State of :func:`scale_by_muon`.

    Attributes:
      count: int32 number of updates so far.
      mu: the momentum M, shaped like the params.
      diagnostics: per Muon leaf an :class:`NSDiagnostics` of the last update (arrays of the
        leaf's batch shape), ``None`` for other leaves; ``()`` when diagnostics are off.
    """

    count: jax.Array
    mu: optax.Updates
    diagnostics: Any


def scale_by_muon(
    *,
    orthogonalizer: str | Callable[[jax.Array], jax.Array] = "newton_schulz",
    scheme="taylor2",
    ns_steps: int = 5,
    normalization: str = "max1_frobenius",
    compute_dtype=None,
    eps: float = 1e-8,
    ns_method: str = "auto",
    beta: optax.ScalarOrSchedule = 0.95,
    momentum: str = "paper",
    nesterov: bool = False,
    update_scaling: str | None = None,
    rms_scale: optax.ScalarOrSchedule = 0.2,
    weight_dimension_numbers=None,
    mu_dtype=None,
    diagnostics: bool = False,
    batch_same_shape: bool = True,
) -> optax.GradientTransformation:
    r"""Momentum, then orthogonalization of every matrix leaf (the Muon direction).

    M_t = beta M_{t-1} + G_t (``momentum="paper"``; ``"ema"`` is optax's bias-corrected
    form), then O_t = NS_q(M_t) with q = ``ns_steps`` steps of X <- p(X X^T) X from
    X_0 = M_t / max{1, ||M_t||_F} (``normalization="max1_frobenius"``), or O_t = U V^T
    (``orthogonalizer="svd"``). Optional scaling: ``"shape"`` multiplies by
    sqrt(max(1, fan_out / fan_in)); ``"consistent_rms"`` by c sqrt(max(fan_in, fan_out)).

    All matrix leaves of the same (m, n) shape and dtype (after orienting each wide) are
    orthogonalized in one batched call: stacked layers and the many same-shape matrices of
    a transformer become a few large batched matmuls.

    Args:
      orthogonalizer: ``"newton_schulz"``, ``"svd"`` (exact polar factor), or a callable
        mapping a (batch, m, n) stack with m <= n to its orthogonalized stack.
      scheme: NS coefficients (a name in :data:`muon_ns.SCHEMES`, a tuple, or a table of
        ``ns_steps`` tuples).
      ns_steps: q, the number of NS steps.
      normalization: how X_0 is formed (see :func:`muon_ns.newton_schulz`).
      compute_dtype: dtype of the NS iteration (e.g. ``jnp.bfloat16``).
      eps: added to the normalizing norm.
      ns_method: ``"auto"``, ``"direct"`` or ``"gram"`` (see :func:`muon_ns.newton_schulz`).
      beta: momentum in [0, 1), or a schedule.
      momentum: ``"paper"`` or ``"ema"``.
      nesterov: Nesterov momentum.
      update_scaling: ``None``, ``"shape"`` or ``"consistent_rms"``.
      rms_scale: c of ``"consistent_rms"`` (> 0), or a schedule.
      weight_dimension_numbers: ``None`` (every leaf is a matrix with reduction axis 0 and
        output axis 1), one :class:`MuonDimensionNumbers` for all, a tree (or prefix) of them
        with ``None`` for leaves to pass through unchanged, or a callable params -> such tree.
        Axes not named are batch axes (stacked layers, conv kernel positions).
      mu_dtype: dtype of the momentum.
      diagnostics: record :class:`NSDiagnostics` per leaf in the state (costs one singular
        value decomposition per matrix; NS only).
      batch_same_shape: batch same-shape leaves into one call (False: one call per leaf).

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByMuonState`.

    Raises:
      ValueError: bad beta, scheme, step count, normalization, momentum, scaling or
        orthogonalizer; at the first update, a Muon leaf that is not a matrix.

    References:
      Kim & Oh, arXiv 2601.19156, Algorithm 1 (NS-Muon) and its SVD counterpart.
    """
    fn = "scale_by_muon"
    _check_scalar_or_schedule(fn, "beta", beta, 0.0, 1.0)
    _check_choice(fn, "momentum", momentum, MOMENTUMS)
    _check_choice(fn, "update_scaling", update_scaling, UPDATE_SCALINGS)
    _check_choice(fn, "normalization", normalization, NORMALIZATIONS)
    _check_choice(fn, "ns_method", ns_method, NS_METHODS)
    _check_scalar_or_schedule(fn, "eps", eps, 0.0)
    if update_scaling == "consistent_rms":
        _check_scalar_or_schedule(fn, "rms_scale", rms_scale, 0.0)
    if not callable(orthogonalizer):
        _check_choice(fn, "orthogonalizer", orthogonalizer, ORTHOGONALIZERS)
    table = resolve_coeffs(scheme, ns_steps)  # validates scheme and steps now
    if diagnostics and orthogonalizer != "newton_schulz":
        raise ValueError(f"{fn}: diagnostics=True needs orthogonalizer='newton_schulz', got "
                         f"{orthogonalizer!r}")
    if isinstance(weight_dimension_numbers, str | bytes | int | float):
        raise TypeError(f"{fn}: weight_dimension_numbers must be None, MuonDimensionNumbers, a "
                        f"tree of them or a callable, got {weight_dimension_numbers!r}")

    if orthogonalizer == "newton_schulz":
        def ortho(s):
            return newton_schulz(s, table, ns_steps, normalization=normalization,
                                 compute_dtype=compute_dtype, eps=eps, method=ns_method)
    elif orthogonalizer == "svd":
        ortho = polar_svd
    else:
        ortho = orthogonalizer

    def diag_of(s):
        return ns_diagnostics(s, table, ns_steps, normalization=normalization, eps=eps)

    def plans(tree):
        leaves_p, treedef = jax.tree.flatten_with_path(tree)
        dims = _leaf_dims(weight_dimension_numbers, tree)
        return [None if dn is None else _plan(x, dn, jax.tree_util.keystr(path))
                for (path, x), dn in zip(leaves_p, dims, strict=True)], treedef

    def init_fn(params):
        mu = optax.tree.zeros_like(params, dtype=mu_dtype)
        if not diagnostics:
            return ScaleByMuonState(jnp.zeros([], jnp.int32), mu, ())
        ps, treedef = plans(params)
        diag = [None if p is None else NSDiagnostics(*(jnp.zeros(p.batch_shape, jnp.float32),)
                                                     * 4, jnp.ones(p.batch_shape, jnp.float32))
                for p in ps]
        return ScaleByMuonState(jnp.zeros([], jnp.int32), mu, treedef.unflatten(diag))

    def update_fn(updates, state, params=None):
        del params
        direction, mu, count_inc = _momentum_step(updates, state.mu, state.count, beta,
                                                  momentum, nesterov)
        ps, treedef = plans(direction)
        leaves = treedef.flatten_up_to(direction)
        out = list(leaves)
        diag_out: list = [None] * len(leaves)
        groups: dict[Any, list[int]] = {}
        for i, (x, p) in enumerate(zip(leaves, ps, strict=True)):
            if p is None:
                continue
            key = (min(p.fan_in, p.fan_out), max(p.fan_in, p.fan_out), jnp.dtype(x.dtype))
            groups.setdefault(key if batch_same_shape else i, []).append(i)
        for idx in groups.values():
            stacks = [_to_stack(_replicate_matrix_axes(leaves[i], ps[i]), ps[i]) for i in idx]
            if len(stacks) > 1 and any(_explicit_spec(st) is not None for st in stacks):
                stacks = [jax.sharding.reshard(st, jax.P()) for st in stacks]
            sizes = [s.shape[0] for s in stacks]
            big = stacks[0] if len(stacks) == 1 else jnp.concatenate(stacks, axis=0)
            orth = ortho(big)
            if orth.shape != big.shape:
                raise ValueError(f"{fn}: the orthogonalizer returned shape {orth.shape} for a "
                                 f"stack of shape {big.shape}")
            splits = np.cumsum(sizes)[:-1].tolist()
            parts = jnp.split(orth, splits, axis=0) if len(idx) > 1 else [orth]
            dparts = None
            if diagnostics:
                d = diag_of(big)
                dparts = [NSDiagnostics(*(jnp.split(f, splits)[k] if len(idx) > 1 else f
                                          for f in d)) for k in range(len(idx))]
            for k, i in enumerate(idx):
                p = ps[i]
                u = _from_stack(parts[k], p)
                if update_scaling == "shape":
                    u = math.sqrt(max(1.0, p.fan_out / p.fan_in)) * u
                elif update_scaling == "consistent_rms":
                    u = (_at(rms_scale, state.count) * math.sqrt(max(p.fan_in, p.fan_out))) * u
                u = u.astype(leaves[i].dtype)
                spec = _explicit_spec(leaves[i])
                if spec is not None and _explicit_spec(u) != spec:
                    u = jax.sharding.reshard(u, jax.P(*spec))
                out[i] = u
                if dparts is not None:
                    diag_out[i] = NSDiagnostics(*(f.reshape(p.batch_shape).astype(jnp.float32)
                                                  for f in dparts[k]))
        new_diag = treedef.unflatten(diag_out) if diagnostics else ()
        mu = optax.tree.cast(mu, mu_dtype)
        return treedef.unflatten(out), ScaleByMuonState(count_inc, mu, new_diag)

    return optax.GradientTransformation(init_fn, update_fn)


def _default_dims(params):
    return jax.tree.map(lambda x: MuonDimensionNumbers() if x.ndim == 2 else None, params)


def muon(
    learning_rate: optax.ScalarOrSchedule,
    *,
    orthogonalizer: str | Callable[[jax.Array], jax.Array] = "newton_schulz",
    scheme="taylor2",
    ns_steps: int = 5,
    normalization: str = "max1_frobenius",
    compute_dtype=None,
    eps: float = 1e-8,
    ns_method: str = "auto",
    beta: optax.ScalarOrSchedule = 0.95,
    momentum: str = "paper",
    nesterov: bool = False,
    update_scaling: str | None = None,
    rms_scale: optax.ScalarOrSchedule = 0.2,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    weight_decay_mask=None,
    weight_dimension_numbers=None,
    mu_dtype=None,
    diagnostics: bool = False,
    batch_same_shape: bool = True,
    other: optax.GradientTransformation | None = None,
    adam_learning_rate: optax.ScalarOrSchedule | None = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: optax.ScalarOrSchedule = 0.0,
    adam_nesterov: bool | None = None,
) -> optax.GradientTransformation:
    r"""Muon for matrix leaves, AdamW (or ``other``) for the rest.

    For each Muon leaf: W <- W - eta (s O_t + lambda W), O_t the orthogonalized momentum of
    :func:`scale_by_muon`, s the update scaling and lambda ``weight_decay`` (applied where
    ``weight_decay_mask`` is True). The defaults are the paper's algorithm (undamped momentum,
    Taylor kappa = 2, X_0 = M / max{1, ||M||_F}, q = 5); ``muon(lr, **OPTAX_COMPAT)`` is
    ``optax.contrib.muon(lr)``.

    Args:
      learning_rate: eta >= 0, or a schedule.
      orthogonalizer, scheme, ns_steps, normalization, compute_dtype, eps, ns_method, beta,
        momentum, nesterov, update_scaling, rms_scale, mu_dtype, diagnostics, batch_same_shape:
        see :func:`scale_by_muon`.
      weight_decay: decoupled weight decay of Muon leaves (>= 0, or a schedule).
      weight_decay_mask: a tree (or callable) of booleans; None decays every Muon leaf.
      weight_dimension_numbers: which leaves are Muon matrices and how (None: every 2-D
        leaf); ``None`` entries go to the other optimizer.
      other: the transform for non-Muon leaves (default: AdamW with the arguments below).
      adam_learning_rate: AdamW's learning rate (default: ``learning_rate``).
      adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW's hyperparameters (its eps
        is ``eps``).
      adam_nesterov: AdamW's Nesterov flag (default: ``nesterov``).

    Returns:
      A ``GradientTransformation`` (an ``optax.partition`` of the two).

    Raises:
      ValueError: a negative learning rate or weight decay, beta outside [0, 1), or any
        error of :func:`scale_by_muon`.

    References:
      Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
    """
    _check_scalar_or_schedule("muon", "learning_rate", learning_rate, 0.0)
    _check_scalar_or_schedule("muon", "weight_decay", weight_decay, 0.0)
    if adam_learning_rate is not None:
        _check_scalar_or_schedule("muon", "adam_learning_rate", adam_learning_rate, 0.0)
    _check_scalar_or_schedule("muon", "adam_b1", adam_b1, 0.0, 1.0)
    _check_scalar_or_schedule("muon", "adam_b2", adam_b2, 0.0, 1.0)
    dims = _default_dims if weight_dimension_numbers is None else weight_dimension_numbers

    def labels(params):
        flat = _leaf_dims(dims, params)
        treedef = jax.tree.structure(params)
        return treedef.unflatten(["muon" if d is not None else "other" for d in flat])

    muon_chain = [
        scale_by_muon(
            orthogonalizer=orthogonalizer, scheme=scheme, ns_steps=ns_steps,
            normalization=normalization, compute_dtype=compute_dtype, eps=eps,
            ns_method=ns_method, beta=beta,
            momentum=momentum, nesterov=nesterov, update_scaling=update_scaling,
            rms_scale=rms_scale, weight_dimension_numbers=dims, mu_dtype=mu_dtype,
            diagnostics=diagnostics, batch_same_shape=batch_same_shape,
        )
    ]
    if callable(weight_decay) or weight_decay != 0:
        muon_chain.append(optax.add_decayed_weights(weight_decay, weight_decay_mask))
    muon_chain.append(optax.scale_by_learning_rate(learning_rate))
    if other is None:
        other = optax.adamw(
            learning_rate=learning_rate if adam_learning_rate is None else adam_learning_rate,
            b1=adam_b1, b2=adam_b2, eps=eps, eps_root=adam_eps_root,
            weight_decay=adam_weight_decay, mu_dtype=mu_dtype,
            nesterov=nesterov if adam_nesterov is None else adam_nesterov,
        )
    elif not isinstance(other, optax.GradientTransformation):
        raise TypeError(f"muon: other must be an optax GradientTransformation, got "
                        f"{type(other).__name__}")
    return optax.partition({"muon": optax.chain(*muon_chain), "other": other}, labels)


def sgd_momentum(
    learning_rate: optax.ScalarOrSchedule,
    beta: optax.ScalarOrSchedule = 0.9,
    *,
    momentum: str = "paper",
    nesterov: bool = False,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    weight_decay_mask=None,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """SGD with momentum under Muon's API: W <- W - eta (M_t + lambda W), M_t = beta M + G_t.

    The vector-based counterpart of :func:`muon` in the paper's comparison (its rate carries
    an extra sqrt(rank) factor). Applies to every leaf.

    Args:
      learning_rate: eta >= 0, or a schedule.
      beta: momentum in [0, 1), or a schedule.
      momentum, nesterov, mu_dtype: see :func:`scale_by_momentum`.
      weight_decay, weight_decay_mask: decoupled weight decay (>= 0) and its mask.

    Returns:
      A ``GradientTransformation``.

    Raises:
      ValueError: negative learning rate or weight decay, beta outside [0, 1).

    References:
      Kim & Oh, arXiv 2601.19156 (the SGD-M baseline).
    """
    _check_scalar_or_schedule("sgd_momentum", "learning_rate", learning_rate, 0.0)
    _check_scalar_or_schedule("sgd_momentum", "weight_decay", weight_decay, 0.0)
    chain = [scale_by_momentum(beta, momentum=momentum, nesterov=nesterov, mu_dtype=mu_dtype)]
    if callable(weight_decay) or weight_decay != 0:
        chain.append(optax.add_decayed_weights(weight_decay, weight_decay_mask))
    chain.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*chain)
