"""CQL(H) (Kumar et al. 2020) on SAC, as JaxCQL's ``ConservativeSAC``, the code MISA is derived from.

Critic loss of each Q head ``i`` (young-geng/JaxCQL ``conservative_sac.py:211-290``)::

    L_i = TD_i + w * mean_s[ T * logsumexp_j(c_ij / T) - Q_i(s, a_data) ]

over ``3K`` proposals per state (``cql_importance_sample``, lines 242-255): ``K`` uniform actions
in [-1, 1]^A with ``c = Q_i(s, a) - log 0.5^A``, ``K`` policy samples at s' and ``K`` at s, both
evaluated *at s*, with ``c = Q_i(s, a) - log pi(a|.)`` (the importance weights of a log-mean-exp
under the proposal mix; without it the data action joins the set, lines 233-238). The TD target
has no entropy term (``backup_entropy = False``); the temperature is learned towards ``-|A|``
(``conservative_sac_main.py:80-81``) at the policy's rate; the actor loss is SAC's; every loss is
taken at the parameters the update started from (one multi-gradient, lines 293-301). Defaults:
``K = partition_samples = 10``, ``w = cql_weight = 5``, ``T = cql_temperature = 1``; no Lagrange
variant (``cql_lagrange = False`` there; not implemented here).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones.base import register, tile
from jcomrl.algos.backbones.sac import SAC, SACSettings
from jcomrl.algos.config import HParams
from jcomrl.algos.settings import hyper
from jcomrl.nets.actor_critic import tanh_gaussian_log_prob


def repeat_states(x, k: int):
  """``[N, D]`` -> ``[N, K, D]`` (each state repeated for ``k`` actions)."""
  return jnp.broadcast_to(x[:, None], (x.shape[0], k) + x.shape[1:])


def policy_samples(policy, actor_params, obs, z, key, k: int):
  """``k`` reparameterised samples per state: actions ``[N, K, A]``, pre-tanh ``u`` and
  ``log pi [N, K]``."""
  mean, log_std = policy.apply(actor_params, obs, z)
  mean, log_std = repeat_states(mean, k), repeat_states(log_std, k)
  u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
  return jnp.tanh(u), u, tanh_gaussian_log_prob(u, mean, log_std)


def cql_regulariser(q_fn, q_data, obs, rand_a, cur_a, cur_logp, next_a, next_logp, *,
                    temperature, importance_sample: bool = True):
  """Per head, ``mean_s[T logsumexp(c / T) - Q(s, a_data)]`` ``[heads]``. ``q_fn(obs [N, K, O],
  a [N, K, A]) -> [heads, N, K]``; ``q_data [heads, N]``."""
  k = rand_a.shape[1]
  obs_k = repeat_states(obs, k)
  q_rand, q_cur, q_next = (q_fn(obs_k, a) for a in (rand_a, cur_a, next_a))
  if importance_sample:
    log_uniform = rand_a.shape[-1] * math.log(0.5)
    cat = jnp.concatenate([q_rand - log_uniform, q_next - next_logp[None],
                           q_cur - cur_logp[None]], axis=-1)
  else:
    cat = jnp.concatenate([q_rand, q_data[..., None], q_next, q_cur], axis=-1)
  ood = temperature * jax.scipy.special.logsumexp(cat / temperature, axis=-1)
  return jnp.mean(ood - q_data, axis=-1)


@dataclasses.dataclass(frozen=True)
class CQLSettings(SACSettings):
  """CQL's settings (``learner.cql.*``; before plug-in subtrees ``partition_samples`` and
  ``cql_importance_sample``)."""

  legacy = {"importance_sample": "cql_importance_sample"}

  # Policy samples per state for the log-partition estimate (JaxCQL cql_n_actions = 10).
  partition_samples: int = 10
  importance_sample: bool = True  # JaxCQL conservative_sac.py:242-255 (CQL(H) with IS)

  def validate(self) -> None:
    super().validate()
    self._positive("partition_samples")


@hyper
class CQLHyper:
  """CQL(H)'s regulariser weight and temperature (JaxCQL conservative_sac.py:38-46;
  ``hparams.cql.*``, before plug-in subtrees ``cql_weight``, ``cql_temperature``)."""

  legacy = {"weight": "cql_weight", "temperature": "cql_temperature"}
  ranges = {"temperature": "positive"}

  weight: float = 5.0
  temperature: float = 1.0


@register
class CQL(SAC):
  name = "cql"
  Settings = CQLSettings
  Hyper = CQLHyper
  actor_uses_updated_critic = False

  def critic_loss_fn(self, params, hp: HParams, extra):
    td = super().critic_loss_fn(params, hp, extra)
    k = self.settings.partition_samples
    h = self.hyper(hp)

    def loss(p, rl, zz, key):
      k_td, k_rand, k_cur, k_next = jax.random.split(key, 4)
      value, metrics = td(p, rl, zz, k_td)
      n = rl.reward.shape[0]
      zt = tile(zz, n)
      zk = repeat_states(zt, k)
      q_fn = lambda o, a: self.critic.apply(p, o, zk, a)
      rand_a = jax.random.uniform(k_rand, (n, k, self.cfg.action_size), minval=-1.0, maxval=1.0)
      sample = lambda o, kk: jax.lax.stop_gradient(
          policy_samples(self.policy, params["actor"], o, zt, kk, k))
      cur_a, _, cur_logp = sample(rl.obs, k_cur)
      next_a, _, next_logp = sample(rl.next_obs, k_next)
      q_data = self.critic.apply(p, rl.obs, zt, rl.action)
      reg = cql_regulariser(q_fn, q_data, rl.obs, rand_a, cur_a, cur_logp, next_a, next_logp,
                            temperature=h.temperature,
                            importance_sample=self.settings.importance_sample)
      value = value + h.weight * jnp.sum(reg)
      return value, {**metrics, "critic/cql_gap": jnp.mean(reg), "critic/loss": value}

    return loss
