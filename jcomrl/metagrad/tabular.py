"""Tabular MDPs with softmax policies, where values, adapted values and meta-gradients are exact.

The MDP of Tang et al.'s toy study (robintyh1/neurips2021-meta-gradient-offpolicy-evaluation
873cce3): ``num_states x num_actions`` with a fixed initial state 0 (``tabular_mdp.py:25``),
each ``P(. | s, a)`` drawn from a symmetric Dirichlet of intensity ``density``
(``tabular_mdp.py:4-6,19``; ``main.py:54`` uses 0.001: nearly deterministic transitions) and
deterministic rewards ``R(s, a) ~ U[0, 1)`` (``tabular_mdp.py:22``, ``r_std=0`` in ``main.py:104``);
their study uses 20 states, 5 actions, gamma 0.8, trajectories of 20 steps (``main.py:51-53``), as
Theoretical-GMRL's ``tabular/maml/argument.py`` defaults.

Exact quantities are differentiable functions of the policy logits ``params [S, A]``
(``pi = softmax(params)``), so ``jax.grad`` / ``jax.hessian`` give exact derivatives:

* :func:`value`: the value of state 0, over a finite ``horizon`` (the expectation of the
  discounted return of a ``horizon``-step trajectory, what the trajectory estimators estimate
  without bias) or, with ``horizon=None``, the infinite-horizon value (the official codes'
  ``oracle_value``; their estimators then carry a ``gamma^T`` truncation bias, 0.0115 of the value
  scale at gamma 0.8, T 20).
* :func:`adapted_params` / :func:`meta_value`: ``steps`` exact inner steps
  ``theta <- theta + lr d V(theta)`` and the value after them (Theoretical-GMRL
  ``tabular/maml/main.py:163-169``); ``jax.grad(meta_value)`` is the exact meta-gradient.
* :func:`enumerate_trajectories`: every trajectory of a tiny MDP with its probability, for exact
  expectations of the sampled estimators (tests).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TabularMDP(NamedTuple):
  """``P [S, A, S]`` transition probabilities, ``R [S, A]`` rewards; the initial state is 0."""

  P: jnp.ndarray
  R: jnp.ndarray

  @property
  def num_states(self) -> int:
    return int(self.R.shape[0])

  @property
  def num_actions(self) -> int:
    return int(self.R.shape[1])


def random_mdp(key, num_states: int = 20, num_actions: int = 5,
               density: float = 0.001) -> TabularMDP:
  """A random MDP as Tang et al.'s ``TabularMDP`` draws it (see the module docstring).

  A symmetric Dirichlet of intensity 0.001 puts almost all mass on one next state; it is drawn
  here as normalised Gamma variates in float64 on the host (float32 gammas of shape 0.001
  underflow to all-zero rows).
  """
  k_p, k_r = jax.random.split(key)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(k_p)).ravel().tolist())
  p = rng.dirichlet(np.full(num_states, density), size=(num_states, num_actions))
  p = np.where(np.isfinite(p), p, 0.0)
  empty = p.sum(-1) <= 0  # every gamma underflowed: the Dirichlet's mass is on one vertex
  if np.any(empty):
    p[empty] = np.eye(num_states)[rng.integers(num_states, size=int(empty.sum()))]
  p = p / p.sum(-1, keepdims=True)
  r = jax.random.uniform(k_r, (num_states, num_actions))
  return TabularMDP(jnp.asarray(p, jnp.float32), r)


def policy(params: jnp.ndarray) -> jnp.ndarray:
  return jax.nn.softmax(params, axis=-1)


def value(params: jnp.ndarray, mdp: TabularMDP, gamma: float,
          horizon: int | None = 20) -> jnp.ndarray:
  """The exact value of state 0 under ``softmax(params)`` (finite ``horizon``, or ``None``)."""
  pi = policy(params)
  p_pi = jnp.einsum("sat,sa->st", mdp.P, pi)
  r_pi = jnp.sum(mdp.R * pi, axis=-1)
  if horizon is None:
    v = jnp.linalg.solve(jnp.eye(mdp.num_states) - gamma * p_pi, r_pi)
    return v[0]
  v = jnp.zeros_like(r_pi)
  for _ in range(horizon):  # V_{k+1} = r_pi + gamma P_pi V_k, V_0 = 0
    v = r_pi + gamma * p_pi @ v
  return v[0]


def state_values(params: jnp.ndarray, mdp: TabularMDP, gamma: float,
                 horizon: int) -> jnp.ndarray:
  """``[horizon + 1, S]``: the exact value of each state with ``horizon - t`` steps left, the
  baseline a trajectory estimator would use at step ``t`` (row ``horizon`` is 0)."""
  pi = policy(params)
  p_pi = jnp.einsum("sat,sa->st", mdp.P, pi)
  r_pi = jnp.sum(mdp.R * pi, axis=-1)
  rows = [jnp.zeros_like(r_pi)]
  for _ in range(horizon):
    rows.append(r_pi + gamma * p_pi @ rows[-1])
  return jnp.stack(rows[::-1])


def adapted_params(params: jnp.ndarray, mdp: TabularMDP, gamma: float, lr: float,
                   steps: int = 1, horizon: int | None = 20) -> jnp.ndarray:
  """``steps`` exact policy-gradient ascent steps of size ``lr`` on :func:`value`."""
  for _ in range(steps):
    params = params + lr * jax.grad(value)(params, mdp, gamma, horizon)
  return params


def meta_value(params: jnp.ndarray, mdp: TabularMDP, gamma: float, lr: float, steps: int = 1,
               horizon: int | None = 20) -> jnp.ndarray:
  """The value after ``steps`` exact inner steps; ``jax.grad`` of it is the exact meta-gradient
  the sampled estimators are compared with (Theoretical-GMRL's oracle meta-gradient)."""
  return value(adapted_params(params, mdp, gamma, lr, steps, horizon), mdp, gamma, horizon)


class Trajectories(NamedTuple):
  """``states [N, T + 1]``, ``actions [N, T]``, ``rewards [N, T]`` (int32, int32, float32)."""

  states: jnp.ndarray
  actions: jnp.ndarray
  rewards: jnp.ndarray


def sample(key, params: jnp.ndarray, mdp: TabularMDP, num: int, horizon: int = 20
           ) -> Trajectories:
  """``num`` trajectories of ``horizon`` steps from state 0 under ``softmax(params)``."""
  pi = jax.lax.stop_gradient(policy(params))

  def step(s, k):
    k_a, k_s = jax.random.split(k)
    a = jax.random.categorical(k_a, jnp.log(pi[s]))
    s_next = jax.random.categorical(k_s, jnp.log(mdp.P[s, a]))
    return s_next, (s, a, mdp.R[s, a])

  def one(k):
    last, (s, a, r) = jax.lax.scan(step, jnp.int32(0), jax.random.split(k, horizon))
    return jnp.concatenate([s, last[None]]), a, r

  s, a, r = jax.vmap(one)(jax.random.split(key, num))
  return Trajectories(s.astype(jnp.int32), a.astype(jnp.int32), r)


def log_probs(params: jnp.ndarray, traj: Trajectories) -> jnp.ndarray:
  """``log pi(a_t | s_t)`` of each step, ``[..., T]``, differentiable in ``params``."""
  logpi = jax.nn.log_softmax(params, axis=-1)
  return logpi[traj.states[..., :-1], traj.actions]


def enumerate_trajectories(params: jnp.ndarray, mdp: TabularMDP, horizon: int
                           ) -> tuple[Trajectories, jnp.ndarray]:
  """Every ``horizon``-step trajectory from state 0 and its probability (differentiable in
  ``params``): ``num_actions * (num_states * num_actions)^(horizon - 1)`` of them, so only for
  tiny MDPs. Trajectories of probability 0 under the transitions are kept (weight 0)."""
  s_n, a_n = mdp.num_states, mdp.num_actions
  steps = [range(a_n)] + [range(s_n), range(a_n)] * (horizon - 1) + [range(s_n)]
  rows = np.array(list(itertools.product(*steps)), np.int32)
  actions = rows[:, 0::2]
  states = np.concatenate([np.zeros((len(rows), 1), np.int32), rows[:, 1::2]], axis=1)
  traj = Trajectories(jnp.asarray(states), jnp.asarray(actions),
                      mdp.R[states[:, :-1], actions])
  log_p = jnp.sum(log_probs(params, traj), axis=-1)
  trans = mdp.P[states[:, :-1], actions, states[:, 1:]]
  prob = jnp.exp(log_p) * jnp.prod(trans, axis=-1)
  return traj, prob


def _surrogate_of(name: str, traj: Trajectories, base_params: jnp.ndarray, mdp: TabularMDP,
                  gamma: float, horizon: int):
  """``q -> mean over trajectories of estimator name's surrogate at params q``; the baseline is
  the exact time-indexed value under ``base_params`` (held constant)."""
  from jcomrl.metagrad.estimators import ESTIMATORS

  est = ESTIMATORS[name]
  table = jax.lax.stop_gradient(state_values(base_params, mdp, gamma, horizon))
  base = table[jnp.arange(horizon + 1), traj.states]  # [N, T + 1]

  def surrogate(q):
    per = jax.vmap(lambda lp, r, v: est(lp, r, gamma, v))(log_probs(q, traj), traj.rewards, base)
    return jnp.mean(per)
  return surrogate


def sampled_meta_objective(params: jnp.ndarray, key, mdp: TabularMDP, gamma: float, lr: float,
                           inner: str, outer: str, num_inner: int, num_outer: int,
                           steps: int = 1, horizon: int = 20, emaml: bool = False):
  """A meta-objective surrogate whose ``jax.grad`` in ``params`` is a sampled meta-gradient.

  ``steps`` inner steps, each on ``num_inner`` fresh trajectories of the current policy with the
  ``inner`` estimator (a name of ``estimators.ESTIMATORS``) through
  :func:`~jcomrl.metagrad.estimators.maml_inner_step`; then the ``outer`` estimator on
  ``num_outer`` trajectories of the adapted policy (``"exact"``: the exact adapted value, as
  Theoretical-GMRL's ``--outer_est exact`` isolates the inner loop). ``emaml`` adds the E-MAML
  term for every inner batch (the score of the batch's joint probability times the outer return
  estimate). Returns ``(surrogate, outer return estimate)``.
  """
  from jcomrl.metagrad.estimators import emaml_surrogate, maml_inner_step

  keys = jax.random.split(key, steps + 1)
  p, scores = params, []
  for i in range(steps):
    traj = sample(keys[i], p, mdp, num_inner, horizon)
    surrogate = _surrogate_of(inner, traj, p, mdp, gamma, horizon)
    scores.append(jnp.sum(log_probs(p, traj)))
    p = maml_inner_step(p, surrogate, lr)
  if outer == "exact":
    obj = value(p, mdp, gamma, horizon)
    ret = obj
  else:
    traj = sample(keys[-1], p, mdp, num_outer, horizon)
    obj = _surrogate_of(outer, traj, p, mdp, gamma, horizon)(p)
    disc = gamma ** jnp.arange(horizon, dtype=jnp.float32)
    ret = jnp.mean(jnp.sum(traj.rewards * disc, axis=-1))
  if emaml:
    obj = obj + sum(emaml_surrogate(s, ret) for s in scores)
  return obj, ret


def expected_adapted_value(params: jnp.ndarray, mdp: TabularMDP, gamma: float, lr: float,
                           inner: str, horizon: int) -> jnp.ndarray:
  """``E_{tau ~ pi_theta}[V(theta'(theta, tau))]`` exactly, by enumeration, for one inner step on
  one trajectory: the meta-objective whose gradient MAML + the E-MAML term estimates without bias
  when the inner estimator's derivatives are unbiased (tests; tiny MDPs only)."""
  from jcomrl.metagrad.estimators import maml_inner_step

  traj, prob = enumerate_trajectories(params, mdp, horizon)

  def adapted_value(one):
    one = jax.tree.map(lambda x: x[None], one)
    surrogate = _surrogate_of(inner, one, params, mdp, gamma, horizon)
    return value(maml_inner_step(params, surrogate, lr), mdp, gamma, horizon)

  vals = jax.vmap(adapted_value)(traj)
  return jnp.sum(prob * vals)
