"""Behaviour cloning: maximum likelihood of the data actions under the tanh-Gaussian policy.

The ``BC`` baseline of the D4RL tables MISA reports (the IQL paper's column). The loss is
``-mean log pi(clip(a_data) | s, z)`` with data actions clipped to ``+-action_logp_clip`` (MISA's
``bc_mode="mle"`` term, ``algos/misa.py:189-196``, without its entropy part), plus FOCAL's optional
mean / log-std regularisers; evaluation acts with ``tanh(mean)``. BC has no critic, so objectives
that train the encoder through a critic cannot use it. Group: ``actor``.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jcomrl.algos.backbones.base import (
  ActorCriticSettings,
  Backbone,
  make_policy,
  register,
  tile,
)
from jcomrl.algos.config import HParams
from jcomrl.nets.actor_critic import tanh_gaussian_action_log_prob, tanh_gaussian_sample


@dataclasses.dataclass(frozen=True)
class BCSettings(ActorCriticSettings):
  """BC's settings (``learner.bc.*``): the actor's (``critic_activation`` is unused)."""


@register
class BC(Backbone):
  name = "bc"
  Settings = BCSettings
  has_critic = False

  def __init__(self, cfg):
    super().__init__(cfg)
    self.policy = make_policy(cfg, self.settings)

  def init(self, keys) -> dict:
    obs, _, z = self.dummy_inputs()
    return {"actor": self.policy.init(keys[0], obs, z)}

  def trained_groups(self) -> tuple[str, ...]:
    return ("actor",)

  def actor_loss_fn(self, params, hp: HParams, extra):
    del params, extra

    def loss(p, rl, zz, key):
      del key
      mean, log_std = self.policy.apply(p, rl.obs, tile(zz, rl.reward.shape[0]))
      logp = tanh_gaussian_action_log_prob(rl.action, mean, log_std, self.settings.action_logp_clip)
      reg = hp.policy_mean_reg * jnp.mean(mean ** 2) + hp.policy_std_reg * jnp.mean(log_std ** 2)
      value = -jnp.mean(logp) + reg
      return value, {"actor/loss": value, "actor/data_logp": jnp.mean(logp)}
    return loss

  def critic_loss_fn(self, params, hp: HParams, extra):
    raise ValueError("backbone 'bc' has no critic")

  def update(self, params, opt, rls, z, hp: HParams, keys, step, z_grad: bool):
    del step
    if z_grad:
      raise ValueError("backbone 'bc' has no critic to train the encoder through")
    params, opt, metrics = self.group_step("actor", self.actor_loss_fn(params, hp, None), params,
                                           opt, rls[0], z, keys[2], hp.actor_lr)
    return params, opt, metrics, None

  def act(self, params, obs, z, key, deterministic: bool):
    mean, log_std = self.policy.apply(params["actor"], obs, z)
    if deterministic:
      return jnp.tanh(mean)
    return tanh_gaussian_sample(key, mean, log_std)[0]

  def per_task_losses(self, params, rl, z, key, hp: HParams) -> dict:
    return {"actor": self.actor_loss_fn(params, hp, None)(params["actor"], rl, z, key)[0]}


