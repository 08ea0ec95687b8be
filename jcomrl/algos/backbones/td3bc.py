"""TD3+BC (Fujimoto & Gu 2021): deterministic actor, twin Q with target-policy smoothing.

The actor and both targets move every ``policy_delay`` updates (the critic every update), as in
``sfujim/TD3_BC`` ``TD3_BC.py:134-158``. Groups: ``actor``, ``critic``, ``critic_target``,
``actor_target``. Losses in :mod:`jcomrl.algos.backbones.losses`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jcomrl.algos.backbones import losses
from jcomrl.algos.backbones.base import (
  ActorCriticSettings,
  Backbone,
  make_critic,
  make_policy,
  register,
)
from jcomrl.algos.config import HParams
from jcomrl.algos.settings import hyper


def _select(flag, new, old):
  return jax.tree.map(lambda n, o: jnp.where(flag, n, o), new, old)


TD3BC_BC_REDUCTIONS = ("mean", "sum")


@dataclasses.dataclass(frozen=True)
class TD3BCSettings(ActorCriticSettings):
  """TD3+BC's settings (``learner.td3bc.*``; before plug-in subtrees ``policy_delay``,
  ``td3bc_bc``)."""

  legacy = {"bc": "td3bc_bc"}

  policy_delay: int = 2
  bc: str = "mean"  # BC term over action dims: "mean" (TD3_BC.py:143 F.mse_loss) / "sum"

  def validate(self) -> None:
    super().validate()
    self._choice("bc", TD3BC_BC_REDUCTIONS)
    self._positive("policy_delay")


@hyper
class TD3BCHyper:
  """TD3+BC's alpha and TD3's target-policy smoothing (``hparams.td3bc.*``; before plug-in
  subtrees ``td3_<name>``)."""

  legacy = {"alpha": "td3_alpha", "policy_noise": "td3_policy_noise",
            "noise_clip": "td3_noise_clip"}
  ranges = {"alpha": "positive"}

  alpha: float = 2.5
  policy_noise: float = 0.2
  noise_clip: float = 0.5


@register
class TD3BC(Backbone):
  name = "td3bc"
  Settings = TD3BCSettings
  Hyper = TD3BCHyper

  def __init__(self, cfg):
    super().__init__(cfg)
    self.policy = make_policy(cfg, self.settings)
    self.critic = make_critic(cfg, self.settings)

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
        bc=self.settings.bc)

  def update(self, params, opt, rls, z, hp: HParams, keys, step, z_grad: bool):
    _, k_critic, k_actor = keys
    rl = rls[0]
    params, opt, metrics, dz = self.critic_step(params, opt, rl, z, hp, k_critic, None, z_grad)
    stepped, opt_stepped, m_actor = self.group_step("actor", self.actor_loss_fn(params, hp, None),
                                                    params, opt, rl, z, k_actor, hp.actor_lr)
    do = (step % self.settings.policy_delay) == 0
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
