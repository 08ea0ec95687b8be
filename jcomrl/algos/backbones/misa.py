"""MISA (Ma, Kang, Xu, Lin, Yan; NeurIPS 2023): offline RL regularised by a lower bound on I(S; A).

With the critic as the bound's energy, ``mu(a|s) = pi(a|s) exp(Q(s, a)) / Z(s)`` and
``Z(s) = E_pi exp(Q(s, a))``, the three bounds on the data's I(S; A) (up to the constant H(A)) are

* ``misa``: ``E_D[log pi(a|s) + Q(s, a)] - E_s log Z(s)``           (per-state partition)
* ``dv``:   ``E_D[log pi(a|s) + Q(s, a)] - log E_s Z(s)``           (Donsker-Varadhan)
* ``f``:    ``E_D[log pi(a|s) + Q(s, a)] - E_s E_pi exp(Q - 1)``    (f-divergence / NWJ)

and MISA >= MISA-DV >= MISA-f (Jensen, then ``log x <= x / e``). The backbone is SAC with
(``sail-sg/MISA`` ``algos/misa.py``, default config lines 38-69, losses 153-491):

* critic, per head: TD error with no entropy in the target (``backup_entropy = False``) plus
  ``gamma_1 (partition(Q) - E_D Q(s, a))`` with ``K = partition_samples = 50`` policy samples per
  dataset state (lines 279-433: ``cat_q = Q(s, a_k)``, no uniform samples, no importance
  weights, ``temp = 1``); ``gamma_1 = misa_critic_weight = 5``;
* actor: ``b * mean(alpha log pi(a~|s) - log pi(a_data|s)) - mean min Q(s, a~) + u * E_mu log
  pi(a|s)`` (lines 189-212 and 436-487): the SAC entropy sits inside the BC bracket, scaled by
  ``b = misa_bc_weight = 0.5``; the last term's gradient is the partition's,
  ``grad log Z(s) = E_mu[grad log pi]``, with ``u = misa_partition_weight = 0.1``;
* mu sampled by HMC (``misa_partition_grad = "hmc"``, lines 438-477): one chain per dataset
  state, started at the data action, target ``log pi(a|s) + min_i Q_i(s, a)`` in the squashed
  action space, ``hmc_burnin = 5`` burn-in steps, ``hmc_leapfrog = 2`` leapfrog steps of
  ``hmc_step_size = 1``, ``partition_samples`` kept samples, no gradient through them;
* the temperature learned towards ``-|A|`` (``experiments/main.py:170-172``) at the policy's
  rate (1e-4); policy lr 1e-4, Q lr 3e-4; every loss taken at the parameters the update started
  from (one ``value_and_multi_grad``, lines 493-501).

Deviations, each deliberate:

1. The critic's Monte-Carlo partition is a true log-mean-exp (``- log K``); MISA's code subtracts
   ``log(batch size)`` (``log_k_norm``, lines 379-381). A constant: the gradient is the same.
2. HMC is BlackJAX's (the tfp JAX substrate MISA uses does not import on jax >= 0.7). tfp's
   ``SimpleStepSizeAdaptation`` over ``int(0.8 * 5) = 4`` steps at rate 0.01 changes the step
   size by at most ~4 %; the step size here is fixed.
3. HMC's target is ``-inf`` outside ``|a_j| <= action_logp_clip`` (0.999, where MISA clips the data
   actions, ``experiments/main.py:128-130``): there the tanh-Gaussian log-density is ~infinite
   and MISA's chains rely on the rejection of NaN proposals.
4. MISA-DV and MISA-f are the paper's bounds; the released code has only the per-state bound.
   Their actor gradient has no per-state mu, so they use ``misa_partition_grad = "importance"``:
   ``K`` policy samples weighted by ``exp(Q)`` (DV: normalised over the batch; f: the
   unnormalised ``exp(Q - 1) / (N K)``). For the per-state bound this self-normalised estimate is
   the cheaper, biased alternative to HMC.

Measured (``actor/hmc_accept``; synthetic hopper-shaped data, MISA's settings, 2 x 64 nets): at
the official step size 1 fewer than 1 % of HMC moves are accepted in the first 100 updates (2
leapfrog steps of size 1 leave the box nearly always), so the chains mostly return their starts,
the data actions, and the partition term becomes ``+u log pi(a_data|s)`` in the loss: it lowers the BC
weight from 0.5 to 0.4; at step size 0.1 about 85 % are accepted. MISA's tfp adaptation (4 steps
at rate 0.01) cannot move the step size far enough to change this.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones.base import register, tile
from jcomrl.algos.backbones.cql import policy_samples, repeat_states
from jcomrl.algos.backbones.sac import SAC, SACSettings
from jcomrl.algos.config import HParams
from jcomrl.algos.settings import hyper
from jcomrl.nets.actor_critic import (
  tanh_gaussian_action_log_prob,
  tanh_gaussian_log_prob,
  tanh_gaussian_sample,
)

# ------------------------------------------------------------------ the bounds (pure functions)


def log_partition(q, log_w, bound: str):
  """The partition term of a bound from energies ``q [N, K]`` at ``K`` actions per state with
  log-weights ``log_w [N, K]`` (``-log K`` for K samples of pi; ``log pi(a|s)`` when the K actions
  enumerate a discrete action set, which makes the term exact):
  ``misa``: ``mean_s log sum_k w e^q``; ``dv``: ``log mean_s sum_k w e^q``;
  ``f``: ``mean_s sum_k w e^(q - 1)``."""
  if bound == "misa":
    return jnp.mean(jax.scipy.special.logsumexp(q + log_w, axis=-1))
  if bound == "dv":
    return jax.scipy.special.logsumexp(q + log_w) - jnp.log(q.shape[0])
  if bound == "f":
    return jnp.mean(jnp.sum(jnp.exp(q + log_w - 1.0), axis=-1))
  raise ValueError(f"unknown MISA bound {bound!r}")


def bound_value(logp_data, q_data, q, log_w, bound: str):
  """The bound on I(S; A) - H(A): ``E_D[log pi(a|s) + Q(s, a)] - partition``."""
  return jnp.mean(logp_data + q_data) - log_partition(q, log_w, bound)


def partition_weights(q, bound: str):
  """Weights ``[N, K]`` on K policy samples per state whose weighted ``grad log pi`` estimates the
  partition term's gradient (no gradient through them): per-state softmax (``misa``), softmax
  over the batch (``dv``, summed over states), ``exp(q - 1) / (N K)`` (``f``)."""
  n, k = q.shape
  if bound == "misa":
    w = jax.nn.softmax(q, axis=-1) / n
  elif bound == "dv":
    w = jax.nn.softmax(q.reshape(-1)).reshape(n, k)
  else:
    w = jnp.exp(q - 1.0) / (n * k)
  return jax.lax.stop_gradient(w)


# ------------------------------------------------------------------ HMC (BlackJAX)


def hmc_chain(logdensity, init, key, *, num_samples: int, burnin: int, leapfrog: int, step_size):
  """One HMC chain from ``init [D]``: the ``num_samples`` states after ``burnin`` steps
  ``[num_samples, D]`` and the acceptance rate of those steps."""
  # Imported here, not with the module: blackjax computes on the default device when it loads,
  # which would start JAX's backend while a training config is read (the registries load every
  # backbone), before a multi-process run may call jax.distributed.initialize.
  import blackjax

  kernel = blackjax.hmc(logdensity, step_size, jnp.ones(init.shape[-1]), leapfrog)

  def step(state, k):
    state, info = kernel.step(k, state)
    return state, (state.position, info.is_accepted)

  _, (positions, accepted) = jax.lax.scan(step, kernel.init(init),
                                          jax.random.split(key, burnin + num_samples))
  return positions[burnin:], jnp.mean(accepted[burnin:].astype(jnp.float32))


def box_logdensity(logdensity, bound: float):
  """``logdensity`` on the box ``|x_j| <= bound``, ``-inf`` outside (finite gradients)."""
  def inner(x):
    inside = jnp.all(jnp.abs(x) <= bound)
    return jnp.where(inside, logdensity(jnp.clip(x, -bound, bound)), -jnp.inf)
  return inner


# ------------------------------------------------------------------ the backbone


# MISA (Ma et al. 2023) lower bounds on I(S; A) with the critic Q as the energy:
# "misa" (per-state log-partition), "dv" (Donsker-Varadhan: one log-partition over the batch),
# "f" (f-divergence / NWJ: E exp(Q - 1)); MISA >= MISA-DV >= MISA-f on the same critic.
MISA_BOUNDS = ("misa", "dv", "f")
# How MISA's actor gets the gradient of its log-partition term, E_mu[grad log pi] with
# mu ~ pi exp(Q): "hmc" (samples of mu by HMC from the data actions, MISA's code), "importance"
# (the policy's own K samples weighted by exp(Q), cheaper and biased for the "misa" bound),
# "none" (drop the term).
MISA_PARTITION_GRADS = ("hmc", "importance", "none")


@dataclasses.dataclass(frozen=True)
class MISASettings(SACSettings):
  """MISA's settings (``learner.misa.*``; before plug-in subtrees ``partition_samples``,
  ``misa_bound``, ``misa_partition_grad``, ``hmc_burnin``, ``hmc_leapfrog``)."""

  legacy = {"bound": "misa_bound", "partition_grad": "misa_partition_grad"}

  # Policy samples per state for the log-partition estimate, also the number of HMC results per
  # state (MISA's n_actions = 50; jcomrl's default 10, the presets set MISA's).
  partition_samples: int = 10
  bound: str = "misa"
  partition_grad: str = "hmc"
  hmc_burnin: int = 5  # MISA misa.py:64-66: 5 burn-in steps, 2 leapfrog steps
  hmc_leapfrog: int = 2

  def validate(self) -> None:
    super().validate()
    self._choice("bound", MISA_BOUNDS)
    self._choice("partition_grad", MISA_PARTITION_GRADS)
    self._positive("partition_samples", "hmc_leapfrog")
    if self.hmc_burnin < 0:
      raise ValueError(f"{self._key('hmc_burnin')} must be non-negative, got {self.hmc_burnin}")
    if self.partition_grad == "hmc" and self.bound != "misa":
      raise ValueError(f"{self._key('partition_grad')}='hmc' samples the per-state mu(a|s) of "
                       f"the 'misa' bound; {self._key('bound')}={self.bound!r} needs "
                       f"partition_grad='importance' (or 'none')")


@hyper
class MISAHyper:
  """MISA's weights (sail-sg/MISA algos/misa.py:55-66; ``hparams.misa.*``, before plug-in
  subtrees ``misa_<name>`` and ``hmc_step_size``): gamma_1 on the critic's bound term
  (min_q_weight), the BC + entropy bracket's weight (bc_weight_misa), the partition-gradient
  term's weight (unbiased_weight), and HMC's step size (mcmc_step_size)."""

  legacy = {"critic_weight": "misa_critic_weight", "bc_weight": "misa_bc_weight",
            "partition_weight": "misa_partition_weight"}
  ranges = {"hmc_step_size": "positive"}

  critic_weight: float = 5.0
  bc_weight: float = 0.5
  partition_weight: float = 0.1
  hmc_step_size: float = 1.0


@register
class MISA(SAC):
  name = "misa"
  Settings = MISASettings
  Hyper = MISAHyper
  actor_uses_updated_critic = False

  def min_q(self, critic_params, obs, z, action):
    return jnp.min(self.critic.apply(critic_params, obs, z, action), axis=0)

  def critic_loss_fn(self, params, hp: HParams, extra):
    td = super().critic_loss_fn(params, hp, extra)
    k, bound = self.settings.partition_samples, self.settings.bound

    def loss(p, rl, zz, key):
      k_td, k_pi = jax.random.split(key)
      value, metrics = td(p, rl, zz, k_td)
      zt = tile(zz, rl.reward.shape[0])
      a_k, _, _ = jax.lax.stop_gradient(
          policy_samples(self.policy, params["actor"], rl.obs, zt, k_pi, k))
      q_k = self.critic.apply(p, repeat_states(rl.obs, k), repeat_states(zt, k), a_k)
      q_data = self.critic.apply(p, rl.obs, zt, rl.action)
      log_w = jnp.full(q_k.shape[1:], -jnp.log(k))
      gaps = jax.vmap(lambda qk, qd: log_partition(qk, log_w, bound) - jnp.mean(qd))(q_k, q_data)
      value = value + self.hyper(hp).critic_weight * jnp.sum(gaps)
      return value, {**metrics, "critic/misa_gap": jnp.mean(gaps), "critic/loss": value}

    return loss

  def mu_samples(self, actor_params, critic_params, obs, z, data_action, key, hp: HParams):
    """HMC samples of mu(a|s) ~ pi(a|s) exp(min Q(s, a)) ``[N, K, A]`` from the data actions, and
    the acceptance rate (no gradient)."""
    cfg = self.settings
    actor_params, critic_params = jax.lax.stop_gradient((actor_params, critic_params))

    def chain(o, zz, a0, kk):
      def logdensity(a):
        mean, log_std = self.policy.apply(actor_params, o, zz)
        logp = tanh_gaussian_action_log_prob(a, mean, log_std, cfg.action_logp_clip)
        return logp + self.min_q(critic_params, o, zz, a)
      init = jnp.clip(a0, -cfg.action_logp_clip, cfg.action_logp_clip)
      return hmc_chain(box_logdensity(logdensity, cfg.action_logp_clip), init, kk,
                       num_samples=cfg.partition_samples, burnin=cfg.hmc_burnin,
                       leapfrog=cfg.hmc_leapfrog, step_size=self.hyper(hp).hmc_step_size)

    keys = jax.random.split(key, obs.shape[0])
    samples, accept = jax.vmap(chain)(obs, z, data_action, keys)
    return jax.lax.stop_gradient(samples), jnp.mean(accept)

  def partition_term(self, p, params, rl, zt, mean, log_std, key, hp: HParams):
    """``u``'s term of the actor loss (its gradient is the partition's) and its metrics."""
    cfg = self.settings
    if cfg.partition_grad == "hmc":
      a_mu, accept = self.mu_samples(p, params["critic"], rl.obs, zt, rl.action, key, hp)
      logp = tanh_gaussian_action_log_prob(a_mu, repeat_states(mean, cfg.partition_samples),
                                           repeat_states(log_std, cfg.partition_samples),
                                           cfg.action_logp_clip)
      return jnp.mean(logp), {"actor/hmc_accept": accept}
    k = cfg.partition_samples
    a_k, u_k, _ = jax.lax.stop_gradient(policy_samples(self.policy, p, rl.obs, zt, key, k))
    q_k = self.min_q(params["critic"], repeat_states(rl.obs, k), repeat_states(zt, k), a_k)
    w = partition_weights(q_k, cfg.bound)
    logp = tanh_gaussian_log_prob(u_k, repeat_states(mean, k), repeat_states(log_std, k))
    return jnp.sum(w * logp), {"actor/partition_weight_max": jnp.max(w)}

  def actor_loss_fn(self, params, hp: HParams, extra):
    del extra
    cfg = self.settings
    alpha = self.alpha(params, hp)

    def loss(p, rl, zz, key):
      k_pi, k_mu = jax.random.split(key)
      zt = tile(zz, rl.reward.shape[0])
      mean, log_std = self.policy.apply(p, rl.obs, zt)
      a, logp = tanh_gaussian_sample(k_pi, mean, log_std)
      q = self.min_q(params["critic"], rl.obs, zt, a)
      logp_data = tanh_gaussian_action_log_prob(rl.action, mean, log_std, cfg.action_logp_clip)
      bc = jnp.mean(alpha * logp - logp_data)
      value = self.hyper(hp).bc_weight * bc - jnp.mean(q)
      metrics = {"actor/entropy": -jnp.mean(logp), "actor/q": jnp.mean(q),
                 "actor/data_logp": jnp.mean(logp_data)}
      if cfg.partition_grad != "none":
        term, m = self.partition_term(p, params, rl, zt, mean, log_std, k_mu, hp)
        value = value + self.hyper(hp).partition_weight * term
        metrics.update(m)
      metrics["actor/loss"] = value
      return value, (metrics, jnp.mean(logp), jnp.zeros(()))

    return loss
