"""Muon and SGD with momentum as optax ``GradientTransformation``s.

Muon (Kim & Oh 2026, Algorithm 1) on a matrix parameter W with stochastic gradient G_t:

    M_t = beta M_{t-1} + G_t                        (momentum="paper": undamped)
    O_t = NS_q(M_t)  ~  Polar(M_t) = U V^T         (q Newton-Schulz steps, or the SVD)
    W_{t+1} = W_t - eta O_t

``momentum="ema"`` is optax's bias-corrected M_t = beta M_{t-1} + (1 - beta) G_t, with
Nesterov as in ``optax.contrib.muon``. Leaves that are not matrices (or that the dimension
numbers mark ``None``) go to AdamW or a transform the user gives.

The update is composed of small pieces, as optax composes its own: the momentum step
(:func:`scale_by_momentum`), the orthogonalization of every matrix leaf
(:func:`scale_by_orthogonalization`), :func:`scale_by_shape`, decoupled weight decay and the
learning rate. :func:`scale_by_muon` is the first two with ``optax.contrib``'s state layout.

optax users: ``muon(learning_rate, **OPTAX_COMPAT, ...)`` (``OPTAX_COMPAT`` is
``{"defaults": "optax"}``) takes ``optax.contrib.muon``'s arguments, positional order,
options (``adaptive``, ``preconditioning``, ``consistent_rms``, presets ``"standard"`` and
``"dion"``) and dtypes (complex parameters too), gives its updates, and has a state with the
same leaves in the same places, so an optax checkpoint restores into it (see
:func:`state_from_optax`). Every numeric hyperparameter may be injected by
``optax.inject_hyperparams``, ``ns_steps`` included.

References:
  Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
  Liu et al., "Muon is Scalable for LLM Training", arXiv 2502.16982 (consistent RMS).
  Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv 2409.20325
  (``adaptive``: the dual-norm scaling).
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

from muon_ns.newton_schulz import (
    NS_METHODS,
    NSDiagnostics,
    check_normalization,
    newton_schulz,
    ns_diagnostics,
    polar_svd,
)
from muon_ns.schemes import check_steps, coefficient_table, resolve_coeffs

__all__ = [
    "DEFAULTS",
    "OPTAX_COMPAT",
    "MuonDimensionNumbers",
    "ScaleByMomentumState",
    "ScaleByMuonDiagnosticsState",
    "ScaleByMuonState",
    "ScaleByOrthogonalizationState",
    "muon",
    "scale_by_momentum",
    "scale_by_muon",
    "scale_by_orthogonalization",
    "scale_by_shape",
    "sgd_momentum",
    "state_from_optax",
]

MOMENTUMS = ("paper", "ema")
ORTHOGONALIZERS = ("newton_schulz", "svd")
UPDATE_SCALINGS = (None, "shape", "consistent_rms")

DEFAULTS: dict[str, dict[str, Any]] = {
    "paper": {"ns_coeffs": "taylor2", "nesterov": False, "momentum": "paper",
              "normalization": "max1_frobenius", "update_scaling": None, "ns_method": "auto"},
    "optax": {"ns_coeffs": "standard", "nesterov": True, "momentum": "ema",
              "normalization": "frobenius", "update_scaling": "shape", "ns_method": "direct"},
}
"""The two sets of defaults of :func:`muon`: the paper's algorithm and ``optax.contrib.muon``.

Only arguments left unset take them; ``ns_method="direct"`` keeps optax's operation order.
"""

OPTAX_COMPAT: dict[str, Any] = {"defaults": "optax"}
"""``muon(lr, **OPTAX_COMPAT, <any optax.contrib.muon arguments>)`` equals
``optax.contrib.muon(lr, <the same arguments>)``."""

_UNSET = "default"


# -- validation ---------------------------------------------------------------------------

def _check_hparam(fn: str, name: str, value, lo: float, hi: float | None = None, *,
                  hi_open: bool = True) -> None:
    """A number (Python, NumPy or concrete JAX scalar) in range, a schedule, or a tracer.

    Tracers pass unchecked: ``optax.inject_hyperparams`` hands every numeric
    hyperparameter to the factory as an array, traced under ``jit``.
    """
    if callable(value) or isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool | str | bytes):
        raise TypeError(f"{fn}: {name} must be a number or a schedule, got {value!r}")
    try:
        v = float(np.asarray(value))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {name} must be a number or a schedule, got {value!r}") from e
    ok = math.isfinite(v) and v >= lo and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        rng = f"in [{lo}, {hi})" if hi is not None and hi_open else (
            f"in [{lo}, {hi}]" if hi is not None else f">= {lo}")
        raise ValueError(f"{fn}: {name} must be a finite number {rng}, got {value!r}")


def _check_choice(fn: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {list(choices)}, got {value!r}")


def _alias(fn: str, name: str, value, alias: str, alias_value, default=None):
    """One value from an argument and its alias (optax's name or ours); both set: an error."""
    if alias_value is None:
        return default if value is None else value
    if value is not None and value is not alias_value:
        try:
            same = bool(np.array_equal(np.asarray(value, dtype=object),
                                       np.asarray(alias_value, dtype=object)))
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(f"{fn}: {name}={value!r} and its alias {alias}={alias_value!r} "
                             "disagree; give one of them")
    return alias_value


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
      beta: momentum in [0, 1), or a schedule.
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
    _check_hparam("scale_by_momentum", "beta", beta, 0.0, 1.0)
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
    return x is None or isinstance(x, MuonDimensionNumbers | optax.MaskedNode)


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


def _plans(tree, spec):
    """One :class:`_Plan` (or None: not a Muon leaf) per leaf, and the tree's structure."""
    leaves_p, treedef = jax.tree.flatten_with_path(tree)
    dims = _leaf_dims(spec, tree)
    return [None if dn is None else _plan(x, dn, jax.tree_util.keystr(path))
            for (path, x), dn in zip(leaves_p, dims, strict=True)], treedef


# -- orthogonalization ----------------------------------------------------------------------

def _check_ortho_args(fn, orthogonalizer, ns_coeffs, ns_steps, normalization, eps, ns_method,
                      diagnostics, weight_dimension_numbers):
    """Validates the orthogonalization arguments; returns the canonical normalization."""
    normalization = check_normalization(normalization, fn)
    _check_choice(fn, "ns_method", ns_method, NS_METHODS)
    _check_hparam(fn, "eps", eps, 0.0)
    if not callable(orthogonalizer):
        _check_choice(fn, "orthogonalizer", orthogonalizer, ORTHOGONALIZERS)
    steps = check_steps(ns_steps, fn)
    if steps is not None:
        resolve_coeffs(ns_coeffs, steps)  # validates the scheme against the step count now
    else:
        coefficient_table(ns_coeffs)
    if diagnostics and orthogonalizer != "newton_schulz":
        raise ValueError(f"{fn}: diagnostics=True needs orthogonalizer='newton_schulz', got "
                         f"{orthogonalizer!r}")
    if isinstance(weight_dimension_numbers, str | bytes | int | float):
        raise TypeError(f"{fn}: weight_dimension_numbers must be None, MuonDimensionNumbers, a "
                        f"tree of them or a callable, got {weight_dimension_numbers!r}")
    return normalization


def _orthogonalizer(orthogonalizer, ns_steps, normalization, compute_dtype, eps, ns_method):
    """``ortho(stack, coeffs)``: a (batch, m, n) stack with m <= n to its orthogonalized self."""
    if orthogonalizer == "newton_schulz":
        return lambda s, coeffs: newton_schulz(s, coeffs, ns_steps, normalization=normalization,
                                               compute_dtype=compute_dtype, eps=eps,
                                               method=ns_method)
    if orthogonalizer == "svd":
        return lambda s, coeffs: polar_svd(s)
    return lambda s, coeffs: orthogonalizer(s)


def _orthogonalize_tree(direction, dims, ortho, *, batch_same_shape: bool, adaptive: bool,
                        diagnose: Callable | None, fn: str):
    """Orthogonalizes every Muon leaf of ``direction``; other leaves pass through.

    All leaves of one (short side, long side, dtype) shape are stacked (stacked layers and the
    many same-shape matrices of a transformer become a few batched calls). ``adaptive``
    multiplies each leaf's result O by <M, O> (optax's dual-norm scaling). ``diagnose(x, o)``
    (optional) measures each stack. Returns (updates, diagnostics tree or ()).
    """
    ps, treedef = _plans(direction, dims)
    leaves = treedef.flatten_up_to(direction)
    out = list(leaves)
    diag_out: list = [None] * len(leaves)
    groups: dict[Any, list[int]] = {}
    for i, (x, p) in enumerate(zip(leaves, ps, strict=True)):
        if p is not None:
            key = (min(p.fan_in, p.fan_out), max(p.fan_in, p.fan_out), jnp.dtype(x.dtype))
            groups.setdefault(key if batch_same_shape else i, []).append(i)
    for idx in groups.values():
        stacks = [_to_stack(_replicate_matrix_axes(leaves[i], ps[i]), ps[i]) for i in idx]
        if len(stacks) > 1 and any(_explicit_spec(st) is not None for st in stacks):
            stacks = [jax.sharding.reshard(st, jax.P()) for st in stacks]
        big = stacks[0] if len(stacks) == 1 else jnp.concatenate(stacks, axis=0)
        orth = ortho(big)
        if orth.shape != big.shape:
            raise ValueError(f"{fn}: the orthogonalizer returned shape {orth.shape} for a "
                             f"stack of shape {big.shape}")
        splits = np.cumsum([s.shape[0] for s in stacks])[:-1].tolist()
        parts = jnp.split(orth, splits, axis=0) if len(idx) > 1 else [orth]
        if diagnose is not None:
            d = diagnose(big, orth)
            dparts = zip(*(jnp.split(f, splits) if len(idx) > 1 else [f] for f in d),
                         strict=True)
            for i, fields in zip(idx, dparts, strict=True):
                diag_out[i] = NSDiagnostics(*(f.reshape(ps[i].batch_shape) for f in fields))
        for k, i in enumerate(idx):
            u = _from_stack(parts[k], ps[i]).astype(leaves[i].dtype)
            if adaptive:
                u = jnp.sum(jnp.conj(leaves[i]) * u) * u
            spec = _explicit_spec(leaves[i])
            if spec is not None and _explicit_spec(u) != spec:
                u = jax.sharding.reshard(u, jax.P(*spec))
            out[i] = u
    return treedef.unflatten(out), (treedef.unflatten(diag_out) if diagnose else ())


def _initial_diagnostics(params, dims):
    ps, treedef = _plans(params, dims)
    nan = lambda p: jnp.full(p.batch_shape, jnp.nan, jnp.float32)  # noqa: E731
    return treedef.unflatten([None if p is None else NSDiagnostics(*(nan(p),) * 6)
                              for p in ps])


def _diagnose_fn(ns_coeffs, ns_steps, normalization, eps):
    def diagnose(x, o):
        return ns_diagnostics(x, ns_coeffs, ns_steps, normalization=normalization, eps=eps,
                              output=o)
    return diagnose


class ScaleByOrthogonalizationState(NamedTuple):
    """State of :func:`scale_by_orthogonalization`: per Muon leaf an :class:`NSDiagnostics`
    of the last update (``None`` for other leaves), or ``()`` when diagnostics are off."""

    diagnostics: Any


def scale_by_orthogonalization(
    ns_coeffs="taylor2",
    ns_steps=5,
    *,
    orthogonalizer: str | Callable[[jax.Array], jax.Array] = "newton_schulz",
    normalization: str = "max1_frobenius",
    compute_dtype=None,
    eps=1e-8,
    ns_method: str = "auto",
    weight_dimension_numbers=None,
    adaptive: bool = False,
    diagnostics: bool = False,
    batch_same_shape: bool = True,
) -> optax.GradientTransformation:
    r"""Replaces every matrix leaf U by its orthogonalization O = NS_q(U) (or Polar(U)).

    The orthogonalization step of Muon on its own, to compose after any momentum (e.g.
    ``optax.chain(optax.trace(0.9), scale_by_orthogonalization())``).

    Args:
      ns_coeffs: NS coefficients (a name in :data:`muon_ns.SCHEMES`, a tuple, or a table).
      ns_steps: q, the number of NS steps (an int, or traced under ``inject_hyperparams``).
      orthogonalizer: ``"newton_schulz"``, ``"svd"`` (exact polar factor), or a callable
        mapping a (batch, m, n) stack with m <= n to its orthogonalized stack.
      normalization: how X_0 is formed (see :func:`muon_ns.newton_schulz`).
      compute_dtype: dtype of the NS iteration (e.g. ``jnp.bfloat16``).
      eps: added to the normalizing norm.
      ns_method: ``"auto"``, ``"direct"`` or ``"gram"`` (see :func:`muon_ns.newton_schulz`).
      weight_dimension_numbers: ``None`` (every leaf is a matrix with reduction axis 0 and
        output axis 1), one :class:`MuonDimensionNumbers` for all, a tree (or prefix) of them
        with ``None`` for leaves to pass through unchanged, or a callable params -> such tree.
        Axes not named are batch axes (stacked layers, conv kernel positions).
      adaptive: scale each O by <U, O> = ||U||_* for O = Polar(U) (optax's ``adaptive``).
      diagnostics: keep an :class:`NSDiagnostics` per matrix of the last update in the state,
        measured on the orthogonalized matrix actually returned (one SVD per matrix).
      batch_same_shape: batch same-shape leaves into one call (False: one call per leaf).

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByOrthogonalizationState`.

    Raises:
      ValueError: bad scheme, step count, normalization, method or orthogonalizer; at the
        first update, a Muon leaf that is not a matrix.

    References:
      Kim & Oh, arXiv 2601.19156, Algorithm 1 (NS-Muon) and its SVD counterpart.
    """
    fn = "scale_by_orthogonalization"
    normalization = _check_ortho_args(fn, orthogonalizer, ns_coeffs, ns_steps, normalization,
                                      eps, ns_method, diagnostics, weight_dimension_numbers)
    ortho = _orthogonalizer(orthogonalizer, ns_steps, normalization, compute_dtype, eps,
                            ns_method)
    diagnose = _diagnose_fn(ns_coeffs, ns_steps, normalization, eps) if diagnostics else None

    def init_fn(params):
        return ScaleByOrthogonalizationState(
            _initial_diagnostics(params, weight_dimension_numbers) if diagnostics else ())

    def update_fn(updates, state, params=None):
        del params, state
        out, diag = _orthogonalize_tree(updates, weight_dimension_numbers,
                                        lambda s: ortho(s, ns_coeffs),
                                        batch_same_shape=batch_same_shape, adaptive=adaptive,
                                        diagnose=diagnose, fn=fn)
        return out, ScaleByOrthogonalizationState(diag)

    return optax.GradientTransformation(init_fn, update_fn)


# -- Muon ----------------------------------------------------------------------------------

class ScaleByMuonState(NamedTuple):
    """State of :func:`scale_by_muon`: the fields of ``optax.contrib.MuonState``.

    Attributes:
      count: int32 number of updates so far.
      mu: the momentum M, shaped like the params.
      ns_coeffs: the NS coefficients the updates use: one row (d+1,) for a scheme that
        repeats a polynomial, else the (q, d+1) table of the q steps. Kept in the state, as
        optax keeps it, so that an optax checkpoint restores with its own coefficients.
    """

    count: jax.Array
    mu: optax.Updates
    ns_coeffs: jax.Array


class ScaleByMuonDiagnosticsState(NamedTuple):
    """State of :func:`scale_by_muon` with ``diagnostics=True``: :class:`ScaleByMuonState`'s
    fields, then per Muon leaf an :class:`NSDiagnostics` of the last update (arrays of the
    leaf's batch shape; ``None`` for other leaves)."""

    count: jax.Array
    mu: optax.Updates
    ns_coeffs: jax.Array
    diagnostics: Any


def _stored_coeffs(fn, ns_coeffs, ns_steps) -> jax.Array:
    """The ``ns_coeffs`` state entry: one row, or the table of the steps actually run."""
    rows, mode = coefficient_table(ns_coeffs)
    if mode == "repeat":
        return jnp.asarray(rows[0], jnp.float32)
    steps = check_steps(ns_steps, fn)
    if steps is None:
        if mode == "extend_last":
            raise ValueError(f"{fn}: scheme {ns_coeffs!r} needs a concrete ns_steps at init "
                             "(call init outside jit, or use a scheme of one row)")
        return jnp.asarray(rows, jnp.float32)  # used by its last ns_steps rows
    return jnp.asarray(resolve_coeffs(ns_coeffs, steps), jnp.float32).reshape(
        steps, rows.shape[1])


def scale_by_muon(
    ns_coeffs="taylor2",
    ns_steps=5,
    beta: optax.ScalarOrSchedule = 0.95,
    eps=1e-8,
    mu_dtype=None,
    *,
    nesterov: bool = False,
    adaptive: bool = False,
    preconditioning: str | None = None,
    weight_dimension_numbers=None,
    scheme=None,
    orthogonalizer: str | Callable[[jax.Array], jax.Array] = "newton_schulz",
    normalization: str | None = None,
    compute_dtype=None,
    ns_method: str = "auto",
    momentum: str = "paper",
    diagnostics: bool = False,
    batch_same_shape: bool = True,
) -> optax.GradientTransformation:
    r"""Momentum, then orthogonalization of every matrix leaf (the Muon direction).

    M_t = beta M_{t-1} + G_t (``momentum="paper"``; ``"ema"`` is optax's bias-corrected
    form), then O_t = NS_q(M_t) with q = ``ns_steps`` steps of X <- p(X X^H) X from
    X_0 = M_t / max{1, ||M_t||_F} (``normalization="max1_frobenius"``), or O_t = U V^H
    (``orthogonalizer="svd"``); with ``adaptive``, O_t <- <M_t, O_t> O_t. The arguments up to
    ``weight_dimension_numbers`` are ``optax.contrib.scale_by_muon``'s, in its order; the
    defaults are the paper's.

    Args:
      ns_coeffs: NS coefficients: a name in :data:`muon_ns.SCHEMES` (``"standard"`` and
        ``"dion"`` are optax's presets), a tuple, or a table (its last ``ns_steps`` rows).
      ns_steps: q, the number of NS steps (an int, or traced under ``inject_hyperparams``).
      beta: momentum in [0, 1), or a schedule.
      eps: added to the normalizing norm.
      mu_dtype: dtype of the momentum.
      nesterov: Nesterov momentum.
      adaptive: optax's dual-norm scaling of each orthogonalized leaf.
      preconditioning: optax's name for ``normalization`` (``"frobenius"``, ``"spectral"``,
        ``"aol"``, ``"schatten"``).
      weight_dimension_numbers: which leaves are Muon matrices and how (see
        :func:`scale_by_orthogonalization`).
      scheme: alias of ``ns_coeffs``.
      orthogonalizer, compute_dtype, ns_method, diagnostics, batch_same_shape: see
        :func:`scale_by_orthogonalization`.
      normalization: how X_0 is formed (default ``"max1_frobenius"``, the paper's).
      momentum: ``"paper"`` or ``"ema"``.

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByMuonState` (or
      :class:`ScaleByMuonDiagnosticsState`).

    Raises:
      ValueError: bad beta, scheme, step count, normalization, momentum or orthogonalizer, or
        an argument and its alias that disagree; at the first update, a Muon leaf that is not
        a matrix.

    References:
      Kim & Oh, arXiv 2601.19156, Algorithm 1 (NS-Muon) and its SVD counterpart.
    """
    fn = "scale_by_muon"
    ns_coeffs = _alias(fn, "ns_coeffs", ns_coeffs, "scheme", scheme)
    normalization = _alias(fn, "normalization", normalization, "preconditioning",
                           preconditioning, "max1_frobenius")
    _check_hparam(fn, "beta", beta, 0.0, 1.0)
    _check_choice(fn, "momentum", momentum, MOMENTUMS)
    normalization = _check_ortho_args(fn, orthogonalizer, ns_coeffs, ns_steps, normalization,
                                      eps, ns_method, diagnostics, weight_dimension_numbers)
    ortho = _orthogonalizer(orthogonalizer, ns_steps, normalization, compute_dtype, eps,
                            ns_method)
    diagnose = _diagnose_fn(ns_coeffs, ns_steps, normalization, eps) if diagnostics else None

    def init_fn(params):
        state = (jnp.zeros([], jnp.int32), optax.tree.zeros_like(params, dtype=mu_dtype),
                 _stored_coeffs(fn, ns_coeffs, ns_steps))
        if diagnostics:
            return ScaleByMuonDiagnosticsState(
                *state, _initial_diagnostics(params, weight_dimension_numbers))
        return ScaleByMuonState(*state)

    def update_fn(updates, state, params=None):
        del params
        direction, mu, count = _momentum_step(updates, state.mu, state.count, beta, momentum,
                                              nesterov)
        out, diag = _orthogonalize_tree(direction, weight_dimension_numbers,
                                        lambda s: ortho(s, state.ns_coeffs),
                                        batch_same_shape=batch_same_shape, adaptive=adaptive,
                                        diagnose=diagnose, fn=fn)
        new = (count, optax.tree.cast(mu, mu_dtype), state.ns_coeffs)
        if diagnostics:
            return out, ScaleByMuonDiagnosticsState(*new, diag)
        return out, ScaleByMuonState(*new)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_shape(
    weight_dimension_numbers=None,
    consistent_rms=None,
    *,
    update_scaling: str | None = "shape",
) -> optax.GradientTransformation:
    r"""Scales each Muon leaf's update by a factor of its shape (stateless).

    ``"shape"``: sqrt(max(1, fan_out / fan_in)) (Jordan's width scaling, optax's default);
    ``"consistent_rms"``: c sqrt(max(fan_in, fan_out)), which gives every update an RMS of
    about c like AdamW's (Liu et al. 2025; c = ``consistent_rms``, 0.2 if not given);
    ``None``: no scaling. A ``consistent_rms`` number selects ``"consistent_rms"``, as in
    ``optax.contrib.scale_by_shape``. fan_in / fan_out are the products of the reduction /
    output axes of the leaf's dimension numbers.

    Args:
      weight_dimension_numbers: as in :func:`scale_by_orthogonalization`.
      consistent_rms: c, a number >= 0 (may be injected), or None.
      update_scaling: ``"shape"``, ``"consistent_rms"`` or ``None``.

    Returns:
      A stateless ``GradientTransformation``.

    Raises:
      ValueError: an unknown update_scaling or a negative consistent_rms.
    """
    fn = "scale_by_shape"
    _check_choice(fn, "update_scaling", update_scaling, UPDATE_SCALINGS)
    if consistent_rms is not None:
        _check_hparam(fn, "consistent_rms", consistent_rms, 0.0)
        update_scaling = "consistent_rms"
    c = 0.2 if consistent_rms is None else consistent_rms

    def update_fn(updates, state, params=None):
        del params
        if update_scaling is None:
            return updates, state
        ps, treedef = _plans(updates, weight_dimension_numbers)
        leaves = treedef.flatten_up_to(updates)
        out = []
        for u, p in zip(leaves, ps, strict=True):
            if p is not None:
                if update_scaling == "shape":
                    u = math.sqrt(max(1.0, p.fan_out / p.fan_in)) * u
                else:
                    u = (c * math.sqrt(max(p.fan_in, p.fan_out))) * u
            out.append(u)
        return treedef.unflatten(out), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def _default_dims(params):
    return jax.tree.map(lambda x: MuonDimensionNumbers() if x.ndim == 2 else None, params)


def muon(
    learning_rate: optax.ScalarOrSchedule,
    ns_coeffs=None,
    ns_steps=5,
    beta: optax.ScalarOrSchedule = 0.95,
    eps=1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    weight_decay_mask=None,
    mu_dtype=None,
    *,
    nesterov: bool | None = None,
    adaptive: bool = False,
    preconditioning: str | None = None,
    adam_b1=0.9,
    adam_b2=0.999,
    adam_eps_root=0.0,
    adam_weight_decay: optax.ScalarOrSchedule = 0.0,
    adam_learning_rate: optax.ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers=None,
    consistent_rms=None,
    defaults: str = "paper",
    scheme=None,
    orthogonalizer: str | Callable[[jax.Array], jax.Array] = "newton_schulz",
    normalization: str | None = None,
    compute_dtype=None,
    ns_method: str | None = None,
    momentum: str | None = None,
    update_scaling: str | None = _UNSET,
    rms_scale=None,
    weight_dimension_numbers=None,
    diagnostics: bool = False,
    batch_same_shape: bool = True,
    other: optax.GradientTransformation | None = None,
    adam_nesterov: bool | None = None,
) -> optax.GradientTransformation:
    r"""Muon for matrix leaves, AdamW (or ``other``) for the rest.

    For each Muon leaf: W <- W - eta (s O_t + lambda W), O_t the orthogonalized momentum of
    :func:`scale_by_muon`, s the shape scaling of :func:`scale_by_shape` and lambda
    ``weight_decay`` (applied where ``weight_decay_mask`` is True). With the default
    ``defaults="paper"`` the unset arguments give the paper's algorithm (undamped momentum,
    Taylor kappa = 2, X_0 = M / max{1, ||M||_F}, q = 5, no shape scaling); with
    ``defaults="optax"`` (``**OPTAX_COMPAT``) they give ``optax.contrib.muon``'s, and the
    arguments up to ``consistent_rms`` are ``optax.contrib.muon``'s own, in its order, with
    its meaning. The state's leaves sit where optax's do (labels ``"muon"`` and ``"adam"``,
    chain of four), so :func:`state_from_optax` and orbax restores carry optax states over.

    Every numeric argument may be an array or, under ``optax.inject_hyperparams`` and ``jit``,
    a tracer; ``ns_steps`` too (the NS loop then runs as a ``lax.fori_loop``).

    Args:
      learning_rate: eta >= 0, or a schedule.
      ns_coeffs: NS coefficients (alias ``scheme``): a name in :data:`muon_ns.SCHEMES`
        (optax's presets ``"standard"``, ``"dion"`` included), a tuple, or a table.
      ns_steps: q, the number of NS steps.
      beta: momentum in [0, 1), or a schedule.
      eps: added to the normalizing norm; also AdamW's eps.
      weight_decay: decoupled weight decay of Muon leaves (>= 0, or a schedule).
      weight_decay_mask: a tree (or callable) of booleans; None decays every Muon leaf.
      mu_dtype: dtype of the momentum (Muon's and AdamW's).
      nesterov: Nesterov momentum (default: per ``defaults``).
      adaptive: optax's dual-norm scaling (see :func:`scale_by_orthogonalization`).
      preconditioning: optax's name for ``normalization``.
      adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW's hyperparameters.
      adam_learning_rate: AdamW's learning rate (default: ``learning_rate``).
      muon_weight_dimension_numbers: optax's name for ``weight_dimension_numbers``.
      consistent_rms: c of the consistent-RMS scaling (alias ``rms_scale``); selects it.
      defaults: ``"paper"`` or ``"optax"``: the defaults of the unset arguments
        (:data:`DEFAULTS`).
      scheme: alias of ``ns_coeffs``.
      orthogonalizer, compute_dtype, diagnostics, batch_same_shape: see
        :func:`scale_by_orthogonalization`.
      normalization: how X_0 is formed (see :func:`muon_ns.newton_schulz`). Note the paper's
        ``"max1_frobenius"`` leaves a momentum with ||M||_F < 1 unscaled, so its updates can
        be far from orthogonal after a few steps (singular values 0.15-0.48 on a 1e-3-scale
        gradient); ``"frobenius"`` does not have that problem.
      ns_method: ``"auto"``, ``"direct"`` or ``"gram"``.
      momentum: ``"paper"`` (undamped) or ``"ema"`` (optax's).
      update_scaling: ``None``, ``"shape"`` or ``"consistent_rms"`` (default: per
        ``defaults``).
      rms_scale: alias of ``consistent_rms``.
      weight_dimension_numbers: which leaves are Muon matrices and how (None: every 2-D
        leaf); ``None`` entries go to the other optimizer.
      other: the transform for non-Muon leaves (default: AdamW with the arguments above).
      adam_nesterov: AdamW's Nesterov flag (default: ``nesterov``).

    Returns:
      A ``GradientTransformation`` (an ``optax.partition`` of the two).

    Raises:
      ValueError: a negative learning rate or weight decay, beta outside [0, 1), an unknown
        ``defaults``, an argument and its alias that disagree, ``consistent_rms`` with an
        ``update_scaling`` other than ``"consistent_rms"``, or any error of
        :func:`scale_by_muon`.
      TypeError: ``other`` that is not a ``GradientTransformation``.

    References:
      Kim & Oh, "Convergence of Muon with Newton-Schulz", ICLR 2026, arXiv 2601.19156.
    """
    fn = "muon"
    _check_choice(fn, "defaults", defaults, tuple(DEFAULTS))
    d = DEFAULTS[defaults]
    ns_coeffs = _alias(fn, "ns_coeffs", ns_coeffs, "scheme", scheme, d["ns_coeffs"])
    normalization = _alias(fn, "normalization", normalization, "preconditioning",
                           preconditioning, d["normalization"])
    nesterov = d["nesterov"] if nesterov is None else nesterov
    momentum = d["momentum"] if momentum is None else momentum
    ns_method = d["ns_method"] if ns_method is None else ns_method
    dims = _alias(fn, "weight_dimension_numbers", weight_dimension_numbers,
                  "muon_weight_dimension_numbers", muon_weight_dimension_numbers)
    dims = _default_dims if dims is None else dims
    c = _alias(fn, "consistent_rms", consistent_rms, "rms_scale", rms_scale)
    if update_scaling == _UNSET:
        update_scaling = "consistent_rms" if c is not None else d["update_scaling"]
    _check_choice(fn, "update_scaling", update_scaling, UPDATE_SCALINGS)
    if c is not None and update_scaling != "consistent_rms":
        raise ValueError(f"{fn}: consistent_rms={c!r} selects update_scaling='consistent_rms', "
                         f"but update_scaling={update_scaling!r} was given")
    _check_hparam(fn, "learning_rate", learning_rate, 0.0)
    _check_hparam(fn, "weight_decay", weight_decay, 0.0)
    if adam_learning_rate is not None:
        _check_hparam(fn, "adam_learning_rate", adam_learning_rate, 0.0)
    _check_hparam(fn, "adam_b1", adam_b1, 0.0, 1.0)
    _check_hparam(fn, "adam_b2", adam_b2, 0.0, 1.0)

    if other is None:
        other_label = "adam"
        other = optax.adamw(
            learning_rate=learning_rate if adam_learning_rate is None else adam_learning_rate,
            b1=adam_b1, b2=adam_b2, eps=eps, eps_root=adam_eps_root,
            weight_decay=adam_weight_decay, mu_dtype=mu_dtype,
            nesterov=nesterov if adam_nesterov is None else adam_nesterov,
        )
    elif not isinstance(other, optax.GradientTransformation):
        raise TypeError(f"{fn}: other must be an optax GradientTransformation, got "
                        f"{type(other).__name__}")
    else:
        other_label = "other"

    def labels(params):
        flat = _leaf_dims(dims, params)
        return jax.tree.structure(params).unflatten(
            ["muon" if dn is not None else other_label for dn in flat])

    muon_chain = optax.chain(
        scale_by_muon(ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov=nesterov,
                      adaptive=adaptive, normalization=normalization,
                      weight_dimension_numbers=dims, orthogonalizer=orthogonalizer,
                      compute_dtype=compute_dtype, ns_method=ns_method, momentum=momentum,
                      diagnostics=diagnostics, batch_same_shape=batch_same_shape),
        scale_by_shape(dims, c if update_scaling == "consistent_rms" else None,
                       update_scaling=update_scaling),
        optax.add_decayed_weights(weight_decay, weight_decay_mask),
        optax.scale_by_learning_rate(learning_rate),
    )
    return optax.partition({"muon": muon_chain, other_label: other}, labels)


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
    _check_hparam("sgd_momentum", "learning_rate", learning_rate, 0.0)
    _check_hparam("sgd_momentum", "weight_decay", weight_decay, 0.0)
    return optax.chain(
        scale_by_momentum(beta, momentum=momentum, nesterov=nesterov, mu_dtype=mu_dtype),
        optax.add_decayed_weights(weight_decay, weight_decay_mask),
        optax.scale_by_learning_rate(learning_rate),
    )


def state_from_optax(state, like):
    """``state``'s leaves in ``like``'s structure, after checking they sit in the same places.

    For :func:`muon` with ``**OPTAX_COMPAT`` (and the same arguments), the state of
    ``optax.contrib.muon`` has the same leaves at the same paths, so this converts in either
    direction: ``state_from_optax(optax_state, muon_ns_opt.init(params))`` and back.
    (orbax restores an optax checkpoint into our state directly, for the same reason.)

    Args:
      state: the state to convert (e.g. ``optax.contrib.muon(...).init(params)``, trained).
      like: a state of the target optimizer (e.g. ``muon(..., **OPTAX_COMPAT).init(params)``).

    Returns:
      A state with ``like``'s structure and ``state``'s arrays.

    Raises:
      ValueError: naming the first path where the two differ (in path, shape or dtype).
    """
    src = jax.tree_util.tree_flatten_with_path(state)[0]
    dst, treedef = jax.tree_util.tree_flatten_with_path(like)
    if len(src) != len(dst):
        raise ValueError(f"state_from_optax: state has {len(src)} arrays but like has "
                         f"{len(dst)}; were the optimizers built with the same arguments?")
    for (ps, a), (pd, b) in zip(src, dst, strict=True):
        ks, kd = jax.tree_util.keystr(ps), jax.tree_util.keystr(pd)
        if ks != kd or np.shape(a) != np.shape(b) or jnp.result_type(a) != jnp.result_type(b):
            raise ValueError(f"state_from_optax: state has {ks} {np.shape(a)} "
                             f"{jnp.result_type(a)} where like has {kd} {np.shape(b)} "
                             f"{jnp.result_type(b)}")
    return jax.tree.unflatten(treedef, [a for _, a in src])
