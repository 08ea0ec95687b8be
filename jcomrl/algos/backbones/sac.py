"""Twin-Q SAC on (s, z): the actor-critic backbone the other entropy-regularised ones extend.

An update is ``pre_update`` (nothing here; BRAC's dual steps) -> critic step -> actor step ->
temperature step (``learn_entropy``) -> ``post_actor`` (nothing here; BRAC's weight) -> Polyak
target. Groups: ``actor``, ``critic``, ``critic_target``, and ``log_alpha`` when the temperature
is learned (``-exp(log_alpha) (log pi + target_entropy)``, target entropy ``-|A|``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from jcomrl.algos.backbones import losses
from jcomrl.algos.backbones.base import (
  ActorCriticSettings,
  Backbone,
  gradient_step,
  make_critic,
  make_policy,
  register,
)
from jcomrl.algos.config import HParams
from jcomrl.nets.actor_critic import tanh_gaussian_sample


@dataclasses.dataclass(frozen=True)
class SACSettings(ActorCriticSettings):
  """The settings of the SAC family (SAC, BRAC, CQL, MISA extend them)."""

  # False: the Bellman target has no ``- alpha log pi(a'|s')`` term (UNICORN's FOCALSAC,
  # focalsac.py:135).
  soft_target: bool = True
  learn_entropy: bool = False  # the temperature is a trained group (target entropy -|A|)


@register
class SAC(Backbone):
  """Twin-Q SAC with a fixed (``hp.entropy_alpha``) or learned temperature.

  Extension points for subclasses (each gets the ``extra`` that ``pre_update`` returned):
    pre_update(params, opt, rls, z, hp, key) -> (params, opt, metrics, extra): steps before the
      critic's (BRAC's dual critic, MISA's MI critic).
    critic_loss_fn(params, hp, extra): the per-task critic loss (a CQL regulariser goes here).
    actor_loss_fn(params, hp, extra): the per-task actor loss, aux ``(metrics, mean log pi,
      divergence)`` (AWR / IQL's weighted likelihood, MISA's I(S; A) term go here).
    post_actor(params, hp, divergence) -> (params, metrics): scalar updates after the actor's.
    actor_step(seen, params, opt, rl, z, hp, key, extra): the actor's step (a task-mean
      gradient step of ``actor_loss_fn``; AWAC's weights are normalised over the meta-batch).
  """

  name = "sac"
  Settings = SACSettings
  # True: the actor's loss sees the critic after this update's critic step (UNICORN
  # algorithms/sac.py, rlkit). False: every loss is taken at the parameters the update started
  # from, as JaxCQL / MISA do (one ``value_and_multi_grad`` over all losses, misa.py:493-501).
  actor_uses_updated_critic: ClassVar[bool] = True

  def __init__(self, cfg):
    super().__init__(cfg)
    self.policy = make_policy(cfg, self.settings)
    self.critic = make_critic(cfg, self.settings)
    self.target_entropy = -float(cfg.action_size)

  def init(self, keys) -> dict:
    obs, act, z = self.dummy_inputs()
    params = {"actor": self.policy.init(keys[0], obs, z),
              "critic": self.critic.init(keys[1], obs, z, act)}
    params["critic_target"] = params["critic"]
    if self.settings.learn_entropy:
      params["log_alpha"] = jnp.zeros(())
    return params

  def trained_groups(self) -> tuple[str, ...]:
    return ("actor", "critic") + (("log_alpha",) if self.settings.learn_entropy else ())

  def alpha(self, params, hp: HParams):
    return jnp.exp(params["log_alpha"]) if self.settings.learn_entropy else hp.entropy_alpha

  # --------------------------------------------------------------------------- extension points

  def pre_update(self, params, opt, rls, z, hp, key):
    del rls, z, hp, key
    return params, opt, {}, None

  def critic_loss_fn(self, params, hp: HParams, extra):
    del extra
    return lambda p, rl, zz, k: losses.critic_loss(
        p, params["critic_target"], params["actor"], self.alpha(params, hp), rl, zz, k, hp,
        policy=self.policy, critic=self.critic, soft_target=self.settings.soft_target)

  def actor_loss_fn(self, params, hp: HParams, extra):
    del extra
    return lambda p, rl, zz, k: losses.actor_loss(
        p, params["critic"], None, self.alpha(params, hp), rl, zz, k, hp, policy=self.policy,
        critic=self.critic, dual=None)

  def post_actor(self, params, hp, divergence):
    del hp, divergence
    return params, {}

  def actor_step(self, seen, params, opt, rl, z, hp: HParams, key, extra):
    """One actor step on the task mean of ``actor_loss_fn(seen, hp, extra)`` (``seen``: the
    parameters its loss reads); returns ``(params, opt, (metrics, mean log pi, divergence))``.
    AWAC overrides it to normalise its advantage weights over the whole meta-batch."""
    return self.group_step("actor", self.actor_loss_fn(seen, hp, extra), params, opt, rl, z, key,
                           hp.actor_lr)

  # --------------------------------------------------------------------------- the update

  def update(self, params, opt, rls, z, hp: HParams, keys, step, z_grad: bool):
    del step
    k_pre, k_critic, k_actor = keys
    params, opt, metrics, extra = self.pre_update(params, opt, rls, z, hp, k_pre)
    rl = rls[0]
    before = params
    params, opt, m_critic, dz = self.critic_step(params, opt, rl, z, hp, k_critic, extra, z_grad)
    seen = params if self.actor_uses_updated_critic else {**params, "critic": before["critic"]}
    params, opt, (m_actor, logp, divergence) = self.actor_step(seen, params, opt, rl, z, hp,
                                                               k_actor, extra)
    metrics = {**metrics, **m_critic, **m_actor}
    if self.settings.learn_entropy:
      logp = jax.lax.stop_gradient(logp)
      new, opt_a, _ = gradient_step(
          lambda la: (-jnp.exp(la) * (logp + self.target_entropy), None), params["log_alpha"],
          opt["log_alpha"], hp.alpha_lr)
      params, opt = {**params, "log_alpha": new}, {**opt, "log_alpha": opt_a}
    metrics["actor/alpha"] = self.alpha(params, hp)
    params, m_post = self.post_actor(params, hp, divergence)
    params = {**params, "critic_target": optax.incremental_update(
        params["critic"], params["critic_target"], hp.tau)}
    return params, opt, {**metrics, **m_post}, dz

  def act(self, params, obs, z, key, deterministic: bool):
    mean, log_std = self.policy.apply(params["actor"], obs, z)
    if deterministic:
      return jnp.tanh(mean)
    return tanh_gaussian_sample(key, mean, log_std)[0]
