"""TD3+BC (Fujimoto & Gu 2021): deterministic actor, twin Q with target-policy smoothing.

The actor and both targets move every ``policy_delay`` updates (the critic every update), as in
``sfujim/TD3_BC`` ``TD3_BC.py:134-158``. Groups: ``actor``, ``critic``, ``critic_target``,
``actor_target``. Losses in :mod:`jcomrl.algos.backbones.losses`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jcomrl.algos.backbones import losses
from jcomrl.algos.backbones.base import Backbone, make_critic, make_policy, register
from jcomrl.algos.config import HParams


def _select(flag, new, old):
  return jax.tree.map(lambda n, o: jnp.where(flag, n, o), new, old)


@register
class TD3BC(Backbone):
  name = "td3bc"

  def __init__(self, cfg):
    super().__init__(cfg)
    self.policy = make_policy(cfg)
    self.critic = make_critic(cfg)

  def init(self, keys) -> dict:
    obs, act, z = self.dummy_inputs()
    params = {"actor": self.policy.init(keys[0], obs, z),
              "critic": self.critic.init(keys[1], obs, z, act)}
    return {**params, "critic_target": params["critic"], "actor_target": params["actor"]}

  def trained_groups(self) -> tuple[str, ...]:
    return ("actor", "critic")

  def critic_loss_fn(self, params, hp: HParams, extra):
    del extra
    return lambda p, rl, zz, k: losses.td3_critic_loss(
        p, params["critic_target"], params["actor_target"], rl, zz, k, hp, policy=self.policy,
        critic=self.critic)

  def actor_loss_fn(self, params, hp: HParams, extra):
    del extra
    return lambda p, rl, zz, k: losses.td3bc_actor_loss(
        p, params["critic"], rl, zz, k, hp, policy=self.policy, critic=self.critic,
        bc=self.cfg.td3bc_bc)

  def update(self, params, opt, rls, z, hp: HParams, keys, step, z_grad: bool):
    _, k_critic, k_actor = keys
    rl = rls[0]
    params, opt, metrics, dz = self.critic_step(params, opt, rl, z, hp, k_critic, None, z_grad)
    stepped, opt_stepped, m_actor = self.group_step("actor", self.actor_loss_fn(params, hp, None),
                                                    params, opt, rl, z, k_actor, hp.actor_lr)
    do = (step % self.cfg.policy_delay) == 0
    actor, opt_actor = _select(do, (stepped["actor"], opt_stepped["actor"]),
                               (params["actor"], opt["actor"]))
    targets = {"actor_target": (actor, params["actor_target"]),
               "critic_target": (params["critic"], params["critic_target"])}
    params = {**params, "actor": actor, **{
        name: _select(do, optax.incremental_update(new, old, hp.tau), old)
        for name, (new, old) in targets.items()}}
    return params, {**opt, "actor": opt_actor}, {**metrics, **m_actor}, dz

  def act(self, params, obs, z, key, deterministic: bool):
    del key, deterministic  # TD3+BC acts with its deterministic actor
    return losses.policy_mode(self.policy, params["actor"], obs, z)
