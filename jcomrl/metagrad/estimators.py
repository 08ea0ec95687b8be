"""Policy-gradient and meta-gradient estimators as surrogate objectives (depends only on jax).

Every estimator here is a *surrogate*: a scalar function of one trajectory's per-step
log-probabilities ``logp [T]`` (a function of the policy parameters, so the caller
differentiates through it), its rewards ``rewards [T]`` and, where it uses one, a baseline
``values [T + 1]`` (``values[t]`` the critic's value of the state at step ``t``, ``values[T]``
the bootstrap value of the last state; treated as constant). ``jax.grad`` of a surrogate is that
estimator's gradient estimate, ``jax.hessian`` its Hessian estimate, and the estimate of a
meta-gradient is a gradient through an inner step taken with :func:`maml_inner_step`. Average the
surrogates of several trajectories before differentiating (``vmap`` then ``mean``).

Sampling policy: the trajectories are drawn from the policy ``mu`` whose per-step log-probabilities
are ``behaviour_logp``; ``None`` means on-policy (``mu`` is the policy being differentiated, held
constant: ``stop_gradient(logp)``), the case of every meta-RL estimator below. Each estimator's
importance ratio is ``rho_t = exp(logp_t - behaviour_logp_t)``; on-policy it equals 1 in value and
carries the score ``d log pi(a_t | s_t)`` in its derivatives, which is DiCE's "magic box".

Which derivative each estimate gets right in expectation (on-policy, with a baseline that does not
depend on the parameters), in Tang et al.'s off-policy-evaluation view (Tang, Kozuno, Rowland,
Munos, Valko, "Unifying Gradient Estimators for Meta-Reinforcement Learning via Off-Policy
Evaluation", NeurIPS 2021, Table 1; official code robintyh1/neurips2021-meta-gradient-offpolicy-
evaluation 873cce3 ``evaluation_utils.py``):

=======================  ==================================  ==========  =========  ============
surrogate                 also known as                       gradient    Hessian    higher
=======================  ==================================  ==========  =========  ============
:func:`pg_surrogate`      MAML's REINFORCE surrogate          unbiased    biased     biased
:func:`dice`              DiCE; with ``values`` Loaded DiCE,  unbiased    unbiased   unbiased
                          doubly-robust / step-wise IS
:func:`taylor` order 1    LVC; TRPO/PPO's linear surrogate    unbiased    biased     biased
:func:`taylor` order 2    second-order expansion              unbiased    unbiased   biased
:func:`vtrace`            truncated IS (rho_bar, c_bar)       biased off-policy
=======================  ==================================  ==========  =========  ============

:func:`emaml_surrogate` is the term MAML drops (E-MAML): the dependence of the inner-loop
trajectories' distribution on the parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def magic_box(x: jnp.ndarray) -> jnp.ndarray:
  """DiCE's magic box ``exp(x - stop_gradient(x))``: 1 in value, ``d box(x) = box(x) dx`` in every
  derivative (Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML
  2018, eq. 4)."""
  return jnp.exp(x - jax.lax.stop_gradient(x))


def _ratios(logp: jnp.ndarray, behaviour_logp: jnp.ndarray | None) -> jnp.ndarray:
  """``rho_t = pi(a_t|s_t) / mu(a_t|s_t)``; on-policy the magic box of ``logp_t``."""
  if behaviour_logp is None:
    return magic_box(logp)
  return jnp.exp(logp - behaviour_logp)


def _discounts(t: int, gamma: float) -> jnp.ndarray:
  return gamma ** jnp.arange(t, dtype=jnp.float32)


def returns_to_go(rewards: jnp.ndarray, gamma: float,
                  bootstrap: jnp.ndarray | float = 0.0) -> jnp.ndarray:
  """``G_t = sum_{k >= t} gamma^(k - t) r_k + gamma^(T - t) bootstrap`` for ``t < T``."""
  def back(g, r):
    g = r + gamma * g
    return g, g
  _, g = jax.lax.scan(back, jnp.asarray(bootstrap, jnp.float32), rewards, reverse=True)
  return g


def _advantages(rewards, gamma, values):
  """``Q_hat_t - V(s_t)``: the Monte-Carlo return bootstrapped with ``values[T]``, less the
  baseline; held constant (the estimators' critic terms, Tang et al. Sec. 3)."""
  if values is None:
    return jax.lax.stop_gradient(returns_to_go(rewards, gamma))
  values = jax.lax.stop_gradient(values)
  return jax.lax.stop_gradient(returns_to_go(rewards, gamma, values[-1]) - values[:-1])


def pg_surrogate(logp: jnp.ndarray, rewards: jnp.ndarray, gamma: float,
                 values: jnp.ndarray | None = None) -> jnp.ndarray:
  """MAML's policy-gradient surrogate ``sum_t gamma^t (Q_hat_t - V(s_t)) log pi(a_t | s_t)``.

  Its gradient is the REINFORCE estimate (with the baseline ``values``; unbiased). Its Hessian is
  ``sum_t gamma^t A_t d^2 log pi_t``: it lacks the score-function products that the sampling
  distribution's dependence on the parameters contributes, so a meta-gradient taken through a
  step on it is biased (Rothfuss et al., "ProMP", ICLR 2019, Sec. 4; Foerster et al. 2018,
  Sec. 3; the ``maml`` estimator of Theoretical-GMRL ``tabular/maml/evaluation_utils.py``
  ``MAML_evaluation``).
  """
  return jnp.sum(_discounts(logp.shape[0], gamma) * _advantages(rewards, gamma, values) * logp)


def dice(logp: jnp.ndarray, rewards: jnp.ndarray, gamma: float,
         values: jnp.ndarray | None = None,
         behaviour_logp: jnp.ndarray | None = None) -> jnp.ndarray:
  """DiCE, or with ``values`` Loaded DiCE: step-wise importance sampling of the return.

  Without ``values``: ``sum_t gamma^t r_t prod_{k <= t} rho_k`` (Foerster et al. 2018, eq. 5;
  V-trace with V = 0 and no truncation in Tang et al.'s code, ``main.py:153``). With ``values``:
  ``sum_t gamma^t (prod_{k <= t} rho_k - prod_{k < t} rho_k) (Q_hat_t - V(s_t))`` (Loaded DiCE,
  Farquhar et al., "Loaded DiCE", NeurIPS 2019, eq. 6; the doubly-robust estimator, Jiang & Li
  2016; Theoretical-GMRL ``Importancesampling_evaluation``), whose derivatives of every order are
  unbiased for those of the value, with less variance. Its value is 0 on-policy; off-policy, with
  ``values[T] = 0``, it estimates ``V^pi - V^mu`` of the first state without bias whatever the
  other baseline values (``E_mu[rho_t - 1 | s_t] = 0``).
  """
  rho = _ratios(logp, behaviour_logp)
  cum = jnp.cumprod(rho)
  disc = _discounts(logp.shape[0], gamma)
  if values is None:
    return jnp.sum(disc * rewards * cum)
  prev = jnp.concatenate([jnp.ones((1,), cum.dtype), cum[:-1]])
  return jnp.sum(disc * (cum - prev) * _advantages(rewards, gamma, values))


def taylor(logp: jnp.ndarray, rewards: jnp.ndarray, gamma: float, order: int = 1,
           values: jnp.ndarray | None = None,
           behaviour_logp: jnp.ndarray | None = None) -> jnp.ndarray:
  """The first- or second-order Taylor expansion of the value in the importance ratios.

  Loaded DiCE's weights ``prod_{k < t} rho_k (rho_t - 1)`` expanded around ``rho = 1`` and cut at
  ``order`` (Tang et al. 2021, Sec. 4; Tang et al., "Taylor Expansion Policy Optimization", ICML
  2020):

  * order 1: ``sum_t gamma^t (rho_t - 1) A_t``: TRPO/PPO's linear surrogate; on-policy without a
    baseline it is LVC (Rothfuss et al. 2019, eq. 11, up to a constant); the ``first-order``
    estimate of Tang et al.'s ``evaluation_utils.py`` (``Firstorder_evaluation``).
  * order 2: adds ``sum_{j < t} gamma^t (rho_j - 1)(rho_t - 1) A_t``.

  With ``A_t = Q_hat_t - V(s_t)`` held constant. On-policy an order-``K`` expansion has the same
  derivatives as Loaded DiCE up to order ``K`` (every dropped term has ``K + 1`` factors
  ``rho - 1 = 0``), so order 1 gives an unbiased gradient and a biased Hessian (it lacks the
  cross-time score products) and order 2 an unbiased Hessian.
  """
  if order not in (1, 2):
    raise ValueError(f"taylor: order must be 1 or 2, got {order}")
  d = _ratios(logp, behaviour_logp) - 1.0
  w = d
  if order == 2:
    w = d + d * (jnp.cumsum(d) - d)  # (rho_t - 1)(1 + sum_{j < t} (rho_j - 1))
  return jnp.sum(_discounts(logp.shape[0], gamma) * w * _advantages(rewards, gamma, values))


def vtrace(logp: jnp.ndarray, rewards: jnp.ndarray, gamma: float, values: jnp.ndarray,
           behaviour_logp: jnp.ndarray | None = None, rho_bar: float = 1.0,
           c_bar: float = 1.0) -> jnp.ndarray:
  """The V-trace estimate of the first state's value (Espeholt et al., ICML 2018, eq. 1).

  ``v_t = V_t + min(rho_bar, rho_t) (r_t + gamma V_{t+1} - V_t) + gamma min(c_bar, rho_t)
  (v_{t+1} - V_{t+1})`` from ``v_T = V_T``, differentiated through the ratios (Tang et al.
  ``evaluation_utils.py`` ``Vtrace_evaluation``; ``rho_bar = c_bar = inf`` with ``values = 0`` is
  DiCE). Truncation lowers the variance and biases every derivative off-policy.
  """
  rho = _ratios(logp, behaviour_logp)
  rb, cb = jnp.minimum(rho, rho_bar), jnp.minimum(rho, c_bar)
  v = jax.lax.stop_gradient(values)

  def back(v_next_est, x):
    r, v_t, v_next, rb_t, cb_t = x
    est = v_t + rb_t * (r + gamma * v_next - v_t) + gamma * cb_t * (v_next_est - v_next)
    return est, None

  out, _ = jax.lax.scan(back, v[-1], (rewards, v[:-1], v[1:], rb, cb), reverse=True)
  return out


def emaml_surrogate(inner_logp: jnp.ndarray, outer_value: jnp.ndarray) -> jnp.ndarray:
  """E-MAML's extra term for one inner-loop trajectory: ``stop_gradient(R') sum_t log pi(a_t|s_t)``.

  The meta-objective ``E_{tau ~ pi_theta}[R(theta'(theta, tau))]`` has two gradient terms: the
  path through the adapted parameters ``theta'`` (all that MAML differentiates) and
  ``E[R(theta') d log pi_theta(tau)]``, from the sampling distribution of the inner-loop
  trajectories (Stadie et al., "Some Considerations on Learning to Explore via Meta-Reinforcement
  Learning", NeurIPS 2018, eq. 3-4). ``outer_value`` is the post-adaptation return (its estimate
  from the outer trajectories); this surrogate's gradient is that second term's estimate. Its
  expectation vanishes when the adapted parameters do not depend on the inner trajectory (e.g. an
  inner step of size 0): then ``E[R' d log pi(tau)] = R' E[d log pi(tau)] = 0``.
  """
  return jax.lax.stop_gradient(outer_value) * jnp.sum(inner_logp)


def maml_inner_step(params, surrogate_fn, lr: float):
  """One inner adaptation step ``theta' = theta + lr d surrogate(theta)`` (gradient *ascent* on a
  return surrogate), differentiable in ``theta``: a meta-gradient through it sees the
  surrogate's Hessian (Finn et al., "Model-Agnostic Meta-Learning", ICML 2017, eq. 1)."""
  g = jax.grad(surrogate_fn)(params)
  return jax.tree.map(lambda p, d: p + lr * d, params, g)


# name -> surrogate(logp, rewards, gamma, values) of the on-policy estimators the tabular
# benchmark compares (``values=None`` where the estimator takes no baseline).
ESTIMATORS = {
    "maml": lambda lp, r, g, v: pg_surrogate(lp, r, g, v),
    "dice": lambda lp, r, g, v: dice(lp, r, g),
    "loaded_dice": lambda lp, r, g, v: dice(lp, r, g, v),
    "lvc": lambda lp, r, g, v: taylor(lp, r, g, 1, v),
    "second_order": lambda lp, r, g, v: taylor(lp, r, g, 2, v),
}
