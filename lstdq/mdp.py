"""Finite MDPs with exact ground truth, behaviour distributions and dataset sampling.

A :class:`FiniteMDP` holds ``P(s'|s,a)``, the mean reward ``R(s,a)`` and ``d0``. The model
quantities are computed in float64 NumPy by exact linear algebra:

    P^pi[(s,a),(s',a')] = P(s'|s,a) pi(a'|s'),
    Q^pi = (I - gamma P^pi)^{-1} R,                           (Bellman equation)
    d^pi = (1 - gamma) (I - gamma P^pi^T)^{-1} (d0 x pi),    (normalized occupancy)
    J(pi) = sum_{s,a} d0(s) pi(a|s) Q^pi(s,a) = <d^pi, R> / (1 - gamma).

Datasets are drawn i.i.d. from a behaviour distribution ``mu(s,a)`` with ``s' ~ P(.|s,a)``
(the offline setting of Amortila et al., 2026), as float32 JAX arrays ready for
:func:`lstdq.lstdq`.

References:
  Amortila, Huang, Krishnamurthy, Jiang. A Unifying View of Coverage in Linear Off-Policy
  Evaluation. ICLR 2026, arXiv:2601.19030.
  L. Baird. Residual Algorithms: Reinforcement Learning with Function Approximation.
  ICML 1995 (the star counterexample).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstdq.estimator import LSTDQStats

__all__ = [
    "Dataset",
    "FiniteMDP",
    "baird_counterexample",
    "chain_behavior",
    "chain_mdp",
    "exact_q",
    "init_features",
    "linear_mdp",
    "make_sampler",
    "mixture",
    "occupancy",
    "policy_transition",
    "policy_value",
    "population_stats",
    "random_mdp",
    "random_policy",
    "sample_dataset",
    "sample_from_tables",
    "sampler_tables",
    "SamplerTables",
]

_TOL = 1e-6


class FiniteMDP(NamedTuple):
    """A finite discounted MDP (float64 NumPy arrays).

    Attributes:
      transitions: ``(S, A, S)``, ``P(s'|s, a)``; each ``[s, a]`` row sums to 1.
      rewards: ``(S, A)`` mean reward ``R(s, a)``.
      initial: ``(S,)`` initial distribution ``d0``.
    """

    transitions: np.ndarray
    rewards: np.ndarray
    initial: np.ndarray

    @property
    def num_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.transitions.shape[1])


class Dataset(NamedTuple):
    """Logged transitions in the layout :func:`lstdq.lstdq` takes."""

    features: jax.Array
    rewards: jax.Array
    discounts: jax.Array
    next_features: jax.Array


# -- checks ------------------------------------------------------------------------------


def _distribution(fn: str, name: str, p, shape: tuple[int, ...], axis=None) -> np.ndarray:
    """Checks ``p`` has ``shape``, is finite, non-negative and sums to 1 (over ``axis``)."""
    try:
        p = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {name} must be a numeric array, got {type(p).__name__}") from e
    if p.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{fn}: {name} contains non-finite values")
    if np.any(p < 0):
        raise ValueError(f"{fn}: {name} has negative probabilities (min {p.min():.3g})")
    sums = p.sum(axis=axis)
    bad = np.abs(sums - 1.0) > _TOL
    if np.any(bad):
        where = np.argwhere(np.atleast_1d(bad))[0]
        got = float(np.atleast_1d(sums)[tuple(where)])
        loc = f" (row {tuple(int(i) for i in where)})" if np.ndim(sums) else ""
        raise ValueError(f"{fn}: {name} probabilities must sum to 1{loc}, got {got:.6g}")
    return p


def check_mdp(fn: str, mdp) -> FiniteMDP:
    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"{fn}: mdp must be a FiniteMDP, got {type(mdp).__name__}")
    t = np.asarray(mdp.transitions, np.float64)
    if t.ndim != 3 or t.shape[0] != t.shape[2]:
        raise ValueError(f"{fn}: mdp.transitions must have shape (S, A, S), got {t.shape}")
    s, a, _ = t.shape
    t = _distribution(fn, "mdp.transitions", t, (s, a, s), axis=2)
    r = np.asarray(mdp.rewards, np.float64)
    if r.shape != (s, a) or not np.all(np.isfinite(r)):
        raise ValueError(f"{fn}: mdp.rewards must be finite with shape {(s, a)}, got {r.shape}")
    d0 = _distribution(fn, "mdp.initial", mdp.initial, (s,))
    return FiniteMDP(t, r, d0)


def check_policy(fn: str, mdp: FiniteMDP, policy) -> np.ndarray:
    """A policy is an ``(S, A)`` array of action probabilities; rows sum to 1."""
    return _distribution(fn, "policy", policy, (mdp.num_states, mdp.num_actions), axis=1)


def check_features(fn: str, mdp: FiniteMDP, features) -> np.ndarray:
    try:
        f = np.asarray(features, np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: features must be a numeric (S, A, d) array") from e
    if f.ndim != 3 or f.shape[:2] != (mdp.num_states, mdp.num_actions):
        raise ValueError(
            f"{fn}: features must have shape ({mdp.num_states}, {mdp.num_actions}, d), "
            f"got {f.shape}"
        )
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{fn}: features contains non-finite values")
    return f


def _gamma(fn: str, gamma) -> float:
    from lstdq._validate import check_gamma

    return check_gamma(fn, gamma)


# -- exact quantities --------------------------------------------------------------------


def policy_transition(mdp: FiniteMDP, policy) -> np.ndarray:
    """``P^pi`` of shape ``(S*A, S*A)``: ``P(s'|s,a) pi(a'|s')``.

    Raises:
      ValueError: malformed MDP or a policy whose rows do not sum to 1.
    """
    mdp = check_mdp("policy_transition", mdp)
    pi = check_policy("policy_transition", mdp, policy)
    s, a = pi.shape
    return (mdp.transitions[:, :, :, None] * pi[None, None]).reshape(s * a, s * a)


def exact_q(mdp: FiniteMDP, policy, gamma: float) -> np.ndarray:
    """``Q^pi`` by one linear solve of ``(I - gamma P^pi) q = R``; shape ``(S, A)``.

    Raises:
      ValueError: malformed MDP, a policy whose rows do not sum to 1, or gamma outside
        ``[0, 1)``.
    """
    gamma = _gamma("exact_q", gamma)
    mdp = check_mdp("exact_q", mdp)
    p = policy_transition(mdp, policy)
    q = np.linalg.solve(np.eye(p.shape[0]) - gamma * p, mdp.rewards.reshape(-1))
    return q.reshape(mdp.rewards.shape)


def occupancy(mdp: FiniteMDP, policy, gamma: float) -> np.ndarray:
    """Normalized discounted occupancy ``d^pi(s, a)``, shape ``(S, A)``, summing to 1.

    ``d^pi = (1 - gamma) sum_t gamma^t Pr(s_t, a_t) = (1-gamma)(I - gamma P^pi^T)^{-1} d0 x pi``.
    """
    gamma = _gamma("occupancy", gamma)
    mdp = check_mdp("occupancy", mdp)
    pi = check_policy("occupancy", mdp, policy)
    p = policy_transition(mdp, pi)
    start = (mdp.initial[:, None] * pi).reshape(-1)
    d = (1 - gamma) * np.linalg.solve(np.eye(p.shape[0]) - gamma * p.T, start)
    return d.reshape(pi.shape)


def policy_value(mdp: FiniteMDP, policy, gamma: float) -> float:
    """``J(pi) = E_{s0~d0, a0~pi}[Q^pi(s0, a0)]`` (unnormalized discounted return)."""
    mdp = check_mdp("policy_value", mdp)
    pi = check_policy("policy_value", mdp, policy)
    q = exact_q(mdp, pi, gamma)
    return float(np.sum(mdp.initial[:, None] * pi * q))


def init_features(mdp: FiniteMDP, policy, features) -> np.ndarray:
    """``E_{s0~d0}[phi_bar(s0)] = sum_s d0(s) sum_a pi(a|s) phi(s, a)``, shape ``(d,)``."""
    mdp = check_mdp("init_features", mdp)
    pi = check_policy("init_features", mdp, policy)
    f = check_features("init_features", mdp, features)
    return np.einsum("s,sa,sad->d", mdp.initial, pi, f)


def population_stats(mdp: FiniteMDP, policy, behavior, features, gamma: float) -> LSTDQStats:
    """Exact LSTDQ statistics under ``mu``: ``count=1.0``, ``sigma=Sigma``, ``a=A``, ``b=b``.

    ``Sigma = Phi^T D_mu Phi``, ``A = Sigma - gamma Phi^T D_mu P^pi Phi``,
    ``b = Phi^T D_mu R`` (float64 NumPy; ``lstdq.solve`` of these gives the population
    ``theta`` in float64, which equals ``Q^pi`` whenever ``Q^pi`` is in the span of the
    features).

    Raises:
      ValueError: malformed inputs; ``behavior`` must be an ``(S, A)`` distribution.
    """
    gamma = _gamma("population_stats", gamma)
    mdp = check_mdp("population_stats", mdp)
    pi = check_policy("population_stats", mdp, policy)
    mu = _distribution("population_stats", "behavior", behavior, pi.shape).reshape(-1)
    phi = check_features("population_stats", mdp, features).reshape(mu.size, -1)
    p = policy_transition(mdp, pi)
    sigma = phi.T @ (mu[:, None] * phi)
    a = sigma - gamma * phi.T @ (mu[:, None] * (p @ phi))
    b = phi.T @ (mu * mdp.rewards.reshape(-1))
    return LSTDQStats(np.float64(1.0), sigma, a, b)


# -- MDP families ------------------------------------------------------------------------


def _check_size(fn: str, **sizes) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{fn}: {name} must be a positive int, got {v!r}")


def _check_key(fn: str, key) -> None:
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(f"{fn}: key must be a typed jax.random.key, got {type(key).__name__}")


def _rng(key) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key (cheap float64 draws for model construction)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _dirichlet(key, alpha: float, shape) -> np.ndarray:
    x = _rng(key).gamma(alpha, size=shape) + 1e-12
    return x / x.sum(axis=-1, keepdims=True)


def random_mdp(key, num_states: int, num_actions: int, *, concentration: float = 1.0
               ) -> FiniteMDP:
    """Random tabular MDP: ``P(.|s,a) ~ Dirichlet(c)``, ``R ~ U[0, 1]``, ``d0 ~ Dirichlet(1)``.

    Raises:
      ValueError: non-positive sizes or concentration; TypeError: a non-key ``key``.
    """
    _check_key("random_mdp", key)
    _check_size("random_mdp", num_states=num_states, num_actions=num_actions)
    if not concentration > 0:
        raise ValueError(f"random_mdp: concentration must be > 0, got {concentration!r}")
    kp, kr, k0 = jax.random.split(key, 3)
    p = _dirichlet(kp, concentration, (num_states, num_actions, num_states))
    r = _rng(kr).uniform(size=(num_states, num_actions))
    d0 = _dirichlet(k0, 1.0, (num_states,))
    return FiniteMDP(p, r, d0)


def random_policy(key, num_states: int, num_actions: int, *, concentration: float = 1.0
                  ) -> np.ndarray:
    """A random stochastic policy ``pi(.|s) ~ Dirichlet(c)``, shape ``(S, A)``."""
    _check_key("random_policy", key)
    _check_size("random_policy", num_states=num_states, num_actions=num_actions)
    if not concentration > 0:
        raise ValueError(f"random_policy: concentration must be > 0, got {concentration!r}")
    return _dirichlet(key, concentration, (num_states, num_actions))


def linear_mdp(key, num_states: int, num_actions: int, dim: int
               ) -> tuple[FiniteMDP, np.ndarray]:
    """A linear MDP: ``P(s'|s,a) = phi(s,a)^T psi(s')``, ``R = phi(s,a)^T w``.

    ``phi(s, a)`` lies in the probability simplex of ``R^dim`` and each ``psi_k`` is a
    distribution over states, so ``P`` is a valid kernel; ``w ~ U[0,1]^dim``. For every
    policy ``P^pi Phi = Phi (psi Pi Phi)``, so the features are Bellman complete and
    ``Q^pi`` is linear in them.

    Returns:
      ``(mdp, features)`` with features of shape ``(S, A, dim)``.
    """
    _check_key("linear_mdp", key)
    _check_size("linear_mdp", num_states=num_states, num_actions=num_actions, dim=dim)
    kf, kpsi, kw, k0 = jax.random.split(key, 4)
    phi = _dirichlet(kf, 0.5, (num_states, num_actions, dim))
    psi = _dirichlet(kpsi, 0.5, (dim, num_states))
    w = _rng(kw).uniform(size=dim)
    p = np.einsum("sak,kt->sat", phi, psi)
    p /= p.sum(axis=2, keepdims=True)
    return FiniteMDP(p, phi @ w, _dirichlet(k0, 1.0, (num_states,))), phi


def baird_counterexample() -> tuple[FiniteMDP, np.ndarray, np.ndarray, np.ndarray]:
    """Baird's star (7 states, 2 actions) in state-action form.

    Action 0 ("dashed") moves to one of states 0..5 uniformly, action 1 ("solid") moves to
    state 6; rewards are 0, so ``Q^pi = 0`` for every policy. State features are Baird's
    ``x(s) = 2 e_s + e_7`` for ``s < 6`` and ``x(6) = e_6 + 2 e_7`` (8-D); the action
    features are ``phi(s, a) = x(s) (x) e_a`` (16-D, more features than the 14 pairs, so
    ``Sigma`` is singular and LSTDQ needs a ridge). The target policy always takes solid;
    the behaviour distribution is uniform over states with dashed w.p. 6/7.

    Returns:
      ``(mdp, features (7, 2, 16), target_policy (7, 2), behavior (7, 2))``.
    """
    s, a = 7, 2
    p = np.zeros((s, a, s))
    p[:, 0, :6] = 1 / 6
    p[:, 1, 6] = 1.0
    x = np.zeros((s, 8))
    for i in range(6):
        x[i, i], x[i, 7] = 2.0, 1.0
    x[6, 6], x[6, 7] = 1.0, 2.0
    phi = np.einsum("sk,ab->sabk", x, np.eye(a)).reshape(s, a, 16)
    pi = np.tile([0.0, 1.0], (s, 1))
    mu = np.tile([6 / 7, 1 / 7], (s, 1)) / s
    return FiniteMDP(p, np.zeros((s, a)), np.full(s, 1 / s)), phi, pi, mu


def chain_mdp(num_states: int, *, slip: float = 0.1) -> FiniteMDP:
    """A chain: action 1 moves right, action 0 left, each failing (staying) w.p. ``slip``.

    Reward 1 for any action in the last state, 0 elsewhere; start in state 0. With a
    right-leaning target policy the value depends on far states that a behaviour
    distribution concentrated near the start covers poorly (see :func:`chain_behavior`).
    """
    _check_size("chain_mdp", num_states=num_states)
    if not 0.0 <= slip < 1.0:
        raise ValueError(f"chain_mdp: slip must be in [0, 1), got {slip!r}")
    n = num_states
    p = np.zeros((n, 2, n))
    for s in range(n):
        p[s, 1, min(s + 1, n - 1)] += 1 - slip
        p[s, 1, s] += slip
        p[s, 0, max(s - 1, 0)] += 1 - slip
        p[s, 0, s] += slip
    r = np.zeros((n, 2))
    r[-1] = 1.0
    d0 = np.zeros(n)
    d0[0] = 1.0
    return FiniteMDP(p, r, d0)


def chain_behavior(num_states: int, decay: float, *, right_prob: float = 0.5) -> np.ndarray:
    """Behaviour ``mu(s, a) prop. decay^s * (right_prob if a == 1 else 1 - right_prob)``.

    ``decay`` in ``(0, inf)`` controls coverage: below 1 the far end of the chain (where
    the reward is) is rarely seen, so coverage parameters grow.
    """
    _check_size("chain_behavior", num_states=num_states)
    if not decay > 0:
        raise ValueError(f"chain_behavior: decay must be > 0, got {decay!r}")
    if not 0.0 < right_prob < 1.0:
        raise ValueError(f"chain_behavior: right_prob must be in (0, 1), got {right_prob!r}")
    ws = decay ** np.arange(num_states, dtype=np.float64)
    mu = ws[:, None] * np.array([1 - right_prob, right_prob])[None]
    return mu / mu.sum()


def mixture(first, second, weight: float) -> np.ndarray:
    """``weight * first + (1 - weight) * second`` for two distributions of one shape."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mixture: weight must be in [0, 1], got {weight!r}")
    first = np.asarray(first, np.float64)
    second = np.asarray(second, np.float64)
    if first.shape != second.shape:
        raise ValueError(f"mixture: first has shape {first.shape} but second has {second.shape}")
    _distribution("mixture", "first", first, first.shape, axis=None)
    _distribution("mixture", "second", second, second.shape, axis=None)
    return weight * first + (1 - weight) * second


# -- sampling ----------------------------------------------------------------------------


class SamplerTables(NamedTuple):
    """The arrays :func:`sample_from_tables` draws from (float32; a pytree, so it can be a
    jit argument and one compiled sampler serves every MDP of the same shape)."""

    cdf_mu: jax.Array  # (S*A,) cumulative mu, last entry exactly 1
    cdf_p: jax.Array  # (S, A, S) cumulative P(.|s, a)
    cdf_pi: jax.Array  # (S, A) cumulative pi(.|s)
    rewards: jax.Array  # (S*A,)
    phi: jax.Array  # (S*A, d)
    phi_bar: jax.Array  # (S, d)
    gamma: jax.Array  # ()


def sampler_tables(mdp: FiniteMDP, policy, behavior, features, gamma: float) -> SamplerTables:
    """Validates the inputs and builds :class:`SamplerTables`.

    Raises:
      ValueError: malformed MDP, policy or behaviour rows not summing to 1, bad features
        or gamma.
    """
    gamma = _gamma("sampler_tables", gamma)
    mdp = check_mdp("sampler_tables", mdp)
    pi = check_policy("sampler_tables", mdp, policy)
    mu = _distribution("sampler_tables", "behavior", behavior, pi.shape)
    f = check_features("sampler_tables", mdp, features)
    s_n, a_n = pi.shape

    def cdf(p):  # cumulative sums normalised so that trailing zero-mass entries are exactly 1
        c = np.cumsum(p, axis=-1)
        return jnp.asarray(c / c[..., -1:], jnp.float32)

    return SamplerTables(
        cdf_mu=cdf(mu.reshape(-1)),
        cdf_p=cdf(mdp.transitions),
        cdf_pi=cdf(pi),
        rewards=jnp.asarray(mdp.rewards.reshape(-1), jnp.float32),
        phi=jnp.asarray(f.reshape(s_n * a_n, -1), jnp.float32),
        phi_bar=jnp.asarray(np.einsum("sa,sad->sd", pi, f), jnp.float32),
        gamma=jnp.asarray(gamma, jnp.float32),
    )


def sample_from_tables(key: jax.Array, tables: SamplerTables, n: int, *,
                       next_action: str = "expected") -> Dataset:
    """Draws ``n`` transitions ``(s, a) ~ mu``, ``s' ~ P(.|s, a)`` (pure, jit/vmap-able;
    ``n`` and ``next_action`` must be static under ``jit``)."""
    if next_action not in ("expected", "sampled"):
        raise ValueError(
            f"sample_from_tables: next_action must be 'expected' or 'sampled', got "
            f"{next_action!r}"
        )
    a_n = tables.cdf_pi.shape[1]
    u = jax.random.uniform(key, (3, n))  # inverse-CDF sampling: index = #{j: cdf_j <= u}
    idx = jnp.searchsorted(tables.cdf_mu, u[0], side="right")
    s, a = idx // a_n, idx % a_n
    s_next = jnp.sum(tables.cdf_p[s, a] <= u[1][:, None], axis=1)
    if next_action == "expected":
        nf = tables.phi_bar[s_next]
    else:
        a_next = jnp.sum(tables.cdf_pi[s_next] <= u[2][:, None], axis=1)
        nf = tables.phi[s_next * a_n + a_next]
    discounts = jnp.full((n,), tables.gamma, jnp.float32)
    return Dataset(tables.phi[idx], tables.rewards[idx], discounts, nf)


def make_sampler(
    mdp: FiniteMDP, policy, behavior, features, gamma: float, *, next_action: str = "expected"
) -> Callable[[jax.Array, int], Dataset]:
    """Returns a jitted ``sample(key, n) -> Dataset`` drawing ``(s, a) ~ mu, s' ~ P``.

    ``next_features`` is ``phi_bar(s') = sum_a' pi(a'|s') phi(s', a')`` when
    ``next_action == "expected"``, or ``phi(s', a')`` for one ``a' ~ pi(.|s')`` when
    ``"sampled"``. Rewards are ``R(s, a)``; discounts are ``gamma`` (no terminal states).
    ``sample`` is pure, so it can be ``vmap``-ed over keys.

    Raises:
      ValueError: malformed inputs or an unknown ``next_action``.
    """
    if next_action not in ("expected", "sampled"):
        raise ValueError(
            f"make_sampler: next_action must be 'expected' or 'sampled', got {next_action!r}"
        )
    tables = sampler_tables(mdp, policy, behavior, features, gamma)

    def sample(key: jax.Array, n: int) -> Dataset:
        return sample_from_tables(key, tables, n, next_action=next_action)

    return jax.jit(sample, static_argnums=1)


def sample_dataset(key, mdp: FiniteMDP, policy, behavior, features, gamma: float, n: int, *,
                   next_action: str = "expected") -> Dataset:
    """Draws ``n`` i.i.d. transitions (see :func:`make_sampler`).

    Raises:
      ValueError: ``n < 1`` or malformed inputs; TypeError: a non-key ``key``.
    """
    _check_key("sample_dataset", key)
    _check_size("sample_dataset", n=n)
    return make_sampler(mdp, policy, behavior, features, gamma, next_action=next_action)(
        key, int(n)
    )
