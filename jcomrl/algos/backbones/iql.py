"""IQL (Kostrikov, Nair, Levine 2022): expectile value, in-sample Bellman backup, AWR actor.

One update, in the order of the official ``ikostrikov/implicit_q_learning`` ``learner.py:32-39``
(value, actor, critic, target):

1. ``V(s)`` regresses ``min_i Q'_i(s, a_data)`` (target critics) under the expectile loss
   ``|tau - 1(u < 0)| u^2``, ``u = min Q' - V`` (``critic.py:8-21``; tau = 0.7);
2. the actor maximises ``mean[min(exp(beta (min Q'(s, a) - V(s))), w_max) log pi(a_data | s)]``
   with the *new* V (``actor.py:14-24``; beta = 3, w_max = 100);
3. the twin Q regresses ``r + gamma (1 - d) V(s')`` with the new V (``critic.py:32-41``);
4. Polyak average of the critics (tau = 0.005).

Deviations: the policy is jcomrl's tanh-Gaussian (data actions clipped to
``+-action_logp_clip`` for the log-likelihood) where the official one is a Gaussian with a
tanh-squashed mean and a state-independent log-std; the actor's learning rate is constant (the
official code decays it with a cosine schedule over training); rewards are used as the dataset
gives them times ``reward_scale`` (the official locomotion runs scale them by
``1000 / (max return - min return)``, ``train_offline.py:35-52``: set ``reward_scale`` from the dataset to reproduce that).
Groups: ``actor``, ``critic``, ``critic_target``, ``value``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jcomrl.algos.backbones.base import (
  ActorCriticSettings,
  Backbone,
  make_critic,
  make_policy,
  register,
  tile,
)
from jcomrl.algos.config import HParams
from jcomrl.algos.settings import hyper
from jcomrl.nets.actor_critic import StateValue, tanh_gaussian_action_log_prob


def expectile_loss(diff, expectile):
  """``mean |tau - 1(u < 0)| u^2`` of ``u = diff``."""
  weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
  return jnp.mean(weight * diff ** 2)


def awr_weights(q, v, temperature, weight_max):
  """``min(exp(beta (Q - V)), w_max)``, no gradient."""
  return jax.lax.stop_gradient(jnp.minimum(jnp.exp(temperature * (q - v)), weight_max))


@hyper
class IQLHyper:
  """IQL's expectile tau, inverse temperature beta of the advantage weights exp(beta A) and
  their clip (Kostrikov et al. 2022; ikostrikov/implicit_q_learning, gym locomotion;
  ``hparams.iql.*``, before plug-in subtrees ``iql_<name>``). V(s)'s rate is ``value_lr``."""

  legacy = {"expectile": "iql_expectile", "temperature": "iql_temperature",
            "weight_max": "iql_weight_max"}
  ranges = {"expectile": "unit_open", "temperature": "positive"}

  expectile: float = 0.7
  temperature: float = 3.0
  weight_max: float = 100.0


@dataclasses.dataclass(frozen=True)
class IQLSettings(ActorCriticSettings):
  """IQL's settings (``learner.iql.*``): its actor's and critic's."""


@register
class IQL(Backbone):
  name = "iql"
  Settings = IQLSettings
  Hyper = IQLHyper

  def __init__(self, cfg):
    super().__init__(cfg)
    self.policy = make_policy(cfg, self.settings)
    self.critic = make_critic(cfg, self.settings)
    self.value = StateValue(cfg.rl_hidden, init_scheme=cfg.net_init)

  def init(self, keys) -> dict:
    obs, act, z = self.dummy_inputs()
    params = {"actor": self.policy.init(keys[0], obs, z),
              "critic": self.critic.init(keys[1], obs, z, act),
              "value": self.value.init(keys[2], obs, z)}
    return {**params, "critic_target": params["critic"]}

  def trained_groups(self) -> tuple[str, ...]:
    return ("actor", "critic", "value")

  def target_q(self, params, rl, z):
    """The tiled code ``[N, Z]`` and ``min_i Q'_i(s, a_data)`` of the target critics ``[N]``."""
    zt = tile(z, rl.reward.shape[0])
    return zt, jnp.min(self.critic.apply(params["critic_target"], rl.obs, zt, rl.action), axis=0)

  def value_loss_fn(self, params, hp: HParams):
    def loss(p, rl, zz, key):
      del key
      zt, q = self.target_q(params, rl, zz)
      v = self.value.apply(p, rl.obs, zt)
      value = expectile_loss(jax.lax.stop_gradient(q) - v, self.hyper(hp).expectile)
      return value, {"value/loss": value, "value/v": jnp.mean(v)}
    return loss

  def actor_loss_fn(self, params, hp: HParams, extra):
    del extra

    def loss(p, rl, zz, key):
      del key
      zt, q = self.target_q(params, rl, zz)
      w = awr_weights(q, self.value.apply(params["value"], rl.obs, zt), self.hyper(hp).temperature,
                      self.hyper(hp).weight_max)
      mean, log_std = self.policy.apply(p, rl.obs, zt)
      logp = tanh_gaussian_action_log_prob(rl.action, mean, log_std, self.settings.action_logp_clip)
      value = -jnp.mean(w * logp)
      return value, {"actor/loss": value, "actor/awr_weight": jnp.mean(w),
                     "actor/data_logp": jnp.mean(logp)}
    return loss

  def critic_loss_fn(self, params, hp: HParams, extra):
    del extra

    def loss(p, rl, zz, key):
      del key
      zt = tile(zz, rl.reward.shape[0])
      v_next = self.value.apply(params["value"], rl.next_obs, zt)
      target = jax.lax.stop_gradient(hp.reward_scale * rl.reward
                                     + hp.discount * (1.0 - rl.terminal) * v_next)
      q = self.critic.apply(p, rl.obs, zt, rl.action)
      value = jnp.mean(jnp.sum((q - target[None]) ** 2, axis=0))
      return value, {"critic/loss": value, "critic/q": jnp.mean(q),
                     "critic/target": jnp.mean(target)}
    return loss

  def update(self, params, opt, rls, z, hp: HParams, keys, step, z_grad: bool):
    del step
    k_value, k_critic, k_actor = keys
    rl = rls[0]
    params, opt, m_value = self.group_step("value", self.value_loss_fn(params, hp), params, opt,
                                           rl, z, k_value, hp.value_lr)
    params, opt, m_actor = self.group_step("actor", self.actor_loss_fn(params, hp, None), params,
                                           opt, rl, z, k_actor, hp.actor_lr)
    params, opt, m_critic, dz = self.critic_step(params, opt, rl, z, hp, k_critic, None, z_grad)
    params = {**params, "critic_target": optax.incremental_update(
        params["critic"], params["critic_target"], hp.tau)}
    return params, opt, {**m_value, **m_actor, **m_critic}, dz

  def act(self, params, obs, z, key, deterministic: bool):
    mean, log_std = self.policy.apply(params["actor"], obs, z)
    if deterministic:
      return jnp.tanh(mean)
    return jnp.tanh(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape))

  def per_task_losses(self, params, rl, z, key, hp: HParams) -> dict:
    out = super().per_task_losses(params, rl, z, key, hp)
    out["value"] = self.value_loss_fn(params, hp)(params["value"], rl, z, key)[0]
    return out
