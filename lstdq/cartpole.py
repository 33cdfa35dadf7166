"""A real environment for linear OPE: Gymnasium ``CartPole-v1`` with RBF features.

* Target policy ``pi``: a fixed stochastic balance controller,
  ``pi(right | s) = sigmoid(k * (theta + c * theta_dot))`` (pole angle and angular velocity).
* Behaviour: the epsilon-mixture ``(1 - eps) pi + eps * uniform``; logged transitions
  ``(phi(s,a), r, gamma (1 - terminated), phi_bar(s'))`` with
  ``phi_bar(s') = sum_a' pi(a'|s') phi(s', a')`` (time-limit truncation is not terminal).
* Features: Gaussian RBFs on the scaled 4-D state (a grid of centres) plus a bias, one
  block per action: ``phi(s, a) = psi(s) (x) e_a``.
* Ground truth: Monte-Carlo average of ``sum_t gamma^t r_t`` over many on-policy rollouts
  (run to termination, or until ``gamma^t`` is below ``1e-8``).

Environments run with Gymnasium's vectorized ``CartPoleVectorEnv`` (NumPy).

References:
  Barto, Sutton, Anderson (1983), cart-pole; Gymnasium ``CartPole-v1``.
  Amortila, Huang, Krishnamurthy, Jiang. arXiv:2601.19030 (ICLR 2026).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstdq.mdp import Dataset

__all__ = [
    "CartPoleData",
    "RBFFeatures",
    "collect_cartpole",
    "make_rbf",
    "monte_carlo_value",
    "policy_features",
    "rbf_state_features",
    "target_policy",
]

# Typical ranges of (x, x_dot, theta, theta_dot) used to scale the state.
_SCALE = np.array([2.4, 2.0, 0.21, 2.0])


class RBFFeatures(NamedTuple):
    """RBF feature map: ``psi(s) = [1, exp(-|s/scale - c_k|^2 / (2 w^2))_k]``."""

    centers: np.ndarray  # (K, 4) in scaled units
    width: float


class CartPoleData(NamedTuple):
    """Logged data plus what the value estimate needs."""

    dataset: Dataset
    init_features: np.ndarray  # (d,) mean phi_bar(s0) over sampled initial states
    episodes: int


def make_rbf(per_dim: int = 3, width: float | None = None) -> RBFFeatures:
    """A grid of ``per_dim**4`` centres in ``[-1, 1]^4`` (scaled units)."""
    if isinstance(per_dim, bool) or not isinstance(per_dim, int) or per_dim < 1:
        raise ValueError(f"make_rbf: per_dim must be a positive int, got {per_dim!r}")
    grid = np.linspace(-1, 1, per_dim) if per_dim > 1 else np.zeros(1)
    centers = np.stack(np.meshgrid(*[grid] * 4, indexing="ij"), -1).reshape(-1, 4)
    width = float(width) if width is not None else (2.0 / max(per_dim - 1, 1))
    if not width > 0:
        raise ValueError(f"make_rbf: width must be > 0, got {width!r}")
    return RBFFeatures(centers, width)


def _obs(fn: str, obs) -> np.ndarray:
    obs = np.asarray(obs, np.float64)
    if obs.ndim != 2 or obs.shape[1] != 4:
        raise ValueError(f"{fn}: obs must have shape (n, 4), got {obs.shape}")
    if not np.all(np.isfinite(obs)):
        raise ValueError(f"{fn}: obs contains non-finite values")
    return obs


def rbf_state_features(rbf: RBFFeatures, obs) -> np.ndarray:
    """``psi(s)`` of shape ``(n, K + 1)`` (bias first)."""
    obs = _obs("rbf_state_features", obs)
    z = obs / _SCALE
    d2 = ((z[:, None, :] - rbf.centers[None]) ** 2).sum(-1)
    return np.concatenate([np.ones((len(obs), 1)), np.exp(-d2 / (2 * rbf.width**2))], axis=1)


def target_policy(obs, *, gain: float = 3.0, damping: float = 0.3) -> np.ndarray:
    """``pi(.|s)`` (n, 2): ``pi(right|s) = sigmoid(gain (theta + damping theta_dot))``."""
    obs = _obs("target_policy", obs)
    h = gain * (obs[:, 2] + damping * obs[:, 3])
    right = 1.0 / (1.0 + np.exp(-np.clip(h, -50, 50)))
    return np.stack([1 - right, right], axis=1)


def policy_features(psi: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``sum_a probs[:, a] * (psi (x) e_a)``: pass one-hot ``probs`` for ``phi(s, a)``."""
    psi, probs = np.asarray(psi), np.asarray(probs)
    if psi.ndim != 2 or probs.ndim != 2 or len(psi) != len(probs):
        raise ValueError(f"policy_features: psi (n, K) and probs (n, A) must be 2-D with the "
                         f"same number of rows, got {psi.shape} and {probs.shape}")
    return (probs[:, :, None] * psi[:, None, :]).reshape(len(psi), -1)


def _vec_env(num_envs: int, seed: int):
    import gymnasium as gym

    env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=seed)
    return env, obs


def collect_cartpole(seed: int, n: int, *, epsilon: float, gamma: float,
                     rbf: RBFFeatures, num_envs: int = 64) -> CartPoleData:
    """Logs ``n`` transitions from the epsilon-mixture behaviour policy.

    Args:
      seed: integer seed (environments and action sampling).
      n: number of transitions (positive).
      epsilon: mixing weight of the uniform policy, in ``[0, 1]``.
      gamma: discount in ``[0, 1)``.
      rbf: the feature map.
      num_envs: parallel environments.

    Returns:
      :class:`CartPoleData` with float32 arrays.
    """
    from lstdq._validate import check_gamma

    gamma = check_gamma("collect_cartpole", gamma)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"collect_cartpole: n must be a positive int, got {n!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"collect_cartpole: epsilon must be in [0, 1], got {epsilon!r}")
    rng = np.random.default_rng(seed)
    env, obs = _vec_env(num_envs, seed)
    starts = [obs.copy()]
    feats, rews, discs, nexts = [], [], [], []
    skip = np.zeros(num_envs, bool)  # next step is an autoreset (NEXT_STEP mode)
    count, episodes = 0, 0
    while count < n:
        probs = (1 - epsilon) * target_policy(obs) + epsilon * 0.5
        actions = (rng.random(num_envs) < probs[:, 1]).astype(np.int64)
        next_obs, r, term, trunc, _ = env.step(actions)
        keep = ~skip
        psi = rbf_state_features(rbf, obs[keep])
        psi_next = rbf_state_features(rbf, next_obs[keep])
        feats.append(policy_features(psi, np.eye(2)[actions[keep]]))
        nexts.append(policy_features(psi_next, target_policy(next_obs[keep])))
        rews.append(r[keep])
        discs.append(gamma * (1.0 - term[keep]))
        count += int(keep.sum())
        if skip.any():
            starts.append(next_obs[skip])
        done = term | trunc
        episodes += int((done & keep).sum())
        skip = done
        obs = next_obs
    env.close()
    cat = lambda xs: np.concatenate(xs)[:n].astype(np.float32)  # noqa: E731
    s0 = np.concatenate(starts)
    x0 = policy_features(rbf_state_features(rbf, s0), target_policy(s0)).mean(0)
    return CartPoleData(Dataset(cat(feats), cat(rews), cat(discs), cat(nexts)), x0, episodes)


def monte_carlo_value(seed: int, num_episodes: int, *, gamma: float, tol: float = 1e-8
                      ) -> tuple[float, float]:
    """On-policy Monte-Carlo ``J(pi) = E[sum_t gamma^t r_t]``: ``(mean, standard error)``.

    Rollouts stop at termination or once ``gamma^t < tol`` (the remaining tail is below
    ``tol / (1 - gamma)``); the 500-step time limit of ``CartPole-v1`` is not reached for
    ``gamma <= 0.96`` at the default ``tol``.
    """
    from lstdq._validate import check_gamma

    gamma = check_gamma("monte_carlo_value", gamma)
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 2:
        raise ValueError(f"monte_carlo_value: num_episodes must be an int >= 2, got "
                         f"{num_episodes!r}")
    horizon = int(np.ceil(np.log(tol) / np.log(gamma))) if gamma > 0 else 1
    rng = np.random.default_rng(seed)
    env, obs = _vec_env(num_episodes, seed)
    ret = np.zeros(num_episodes)
    alive = np.ones(num_episodes, bool)
    disc = 1.0
    for _ in range(horizon):
        actions = (rng.random(num_episodes) < target_policy(obs)[:, 1]).astype(np.int64)
        obs, r, term, trunc, _ = env.step(actions)
        ret += alive * disc * r
        alive &= ~(term | trunc)
        disc *= gamma
        if not alive.any():
            break
    env.close()
    return float(ret.mean()), float(ret.std(ddof=1) / np.sqrt(num_episodes))
