"""BRAC: SAC plus a KL(pi || pi_b) penalty estimated by a dual critic (FOCAL's backbone).

The dual critic c(s, z, a) is trained for ``dual_steps`` steps before the critic's, each further
step on a fresh RL batch of the same tasks (``dual_fresh_batches``). The weight w of the
divergence enters the actor loss (``brac_penalty="policy"``), the Bellman target (``"value"``),
both, or neither (``"none"``: c is trained and unused); w is ``hp.brac_weight`` or auto-tuned
towards ``hp.brac_target_div`` (``brac_auto_weight``; the group ``brac_offset`` holds the raw
weight minus ``hp.brac_weight``). The losses and their sources are in
:mod:`jcomrl.algos.backbones.losses`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones import losses
from jcomrl.algos.backbones.base import register
from jcomrl.algos.backbones.sac import SAC
from jcomrl.algos.config import HParams
from jcomrl.nets.actor_critic import StateActionCritic


@register
class BRAC(SAC):
  name = "brac"

  def __init__(self, cfg):
    super().__init__(cfg)
    self.dual = StateActionCritic(cfg.dual_hidden, init_scheme=cfg.net_init)
    self.extra_batches = cfg.dual_steps - 1 if cfg.dual_fresh_batches else 0

  def init(self, keys) -> dict:
    params = super().init(keys)
    obs, act, z = self.dummy_inputs()
    params["dual"] = self.dual.init(keys[2], obs, z, act)
    if self.cfg.brac_auto_weight:
      params["brac_offset"] = jnp.zeros(())
    return params

  def trained_groups(self) -> tuple[str, ...]:
    return super().trained_groups() + ("dual",)

  def weight(self, params, hp: HParams):
    """The BRAC weight as used: the auto-tuned raw weight clipped to ``[0, max]`` (FOCAL
    sac.py:95-97 ``get_alpha``; CSRO sac.py:100-102)."""
    if not self.cfg.brac_auto_weight:
      return hp.brac_weight
    return jnp.clip(hp.brac_weight + params["brac_offset"], 0.0, hp.brac_weight_max)

  def dual_loss_fn(self, params, hp: HParams):
    return lambda p, rl, zz, k: losses.dual_loss(p, params["actor"], rl, zz, k, hp,
                                                 policy=self.policy, dual=self.dual,
                                                 gp=self.cfg.brac_gp)

  def pre_update(self, params, opt, rls, z, hp, key):
    """The dual steps. ``brac_div_before_dual``: the D of the critic target, actor loss and
    weight update uses the dual critic as it was before them (FOCAL sac.py:278-286, UNICORN
    train_offline_FOCAL.py:356-364); FOCAL (torch 1.2, in-place .data updates) back-propagates
    the actor's D through the already updated weights, we use the pre-step weights for value
    and gradient alike. The returned ``extra`` is those weights, or None (use the new ones)."""
    before = params["dual"] if self.cfg.brac_div_before_dual else None
    rls = list(rls) + [rls[0]] * (self.cfg.dual_steps - len(rls))
    metrics = {}
    for i, rl_i in enumerate(rls):
      params, opt, metrics = self.group_step("dual", self.dual_loss_fn(params, hp), params, opt,
                                             rl_i, z, jax.random.fold_in(key, i), hp.dual_lr)
    return params, opt, metrics, before

  def critic_loss_fn(self, params, hp: HParams, extra):
    if self.cfg.brac_penalty not in ("value", "both"):
      return super().critic_loss_fn(params, hp, extra)
    penalty = (self.dual, params["dual"] if extra is None else extra, self.weight(params, hp))
    return lambda p, rl, zz, k: losses.critic_loss(
        p, params["critic_target"], params["actor"], self.alpha(params, hp), rl, zz, k, hp,
        policy=self.policy, critic=self.critic, value_penalty=penalty,
        soft_target=self.cfg.soft_target)

  def actor_loss_fn(self, params, hp: HParams, extra):
    cfg = self.cfg
    w = self.weight(params, hp) if cfg.brac_penalty in ("policy", "both") else None
    d_params = params["dual"] if extra is None else extra
    # brac_penalty="none": D is never evaluated in the actor (no KL metric either), so its two
    # forward passes and their gradient are not compiled at all.
    dual = self.dual if cfg.brac_penalty != "none" else None
    return lambda p, rl, zz, k: losses.actor_loss(
        p, params["critic"], d_params, self.alpha(params, hp), rl, zz, k, hp, policy=self.policy,
        critic=self.critic, dual=dual, brac_weight=w, div_grad=cfg.brac_actor_div_grad)

  def post_actor(self, params, hp: HParams, divergence):
    metrics = {}
    if self.cfg.brac_auto_weight:
      # FOCAL sac.py:377-382, CSRO sac.py:400-405: w <- w + lr (D - target), w kept raw;
      # brac_weight_projected: w <- clip(w + lr (D - target), 0, w_max).
      w = (hp.brac_weight + params["brac_offset"]
           + hp.brac_weight_lr * (divergence - hp.brac_target_div))
      if self.cfg.brac_weight_projected:
        w = jnp.clip(w, 0.0, hp.brac_weight_max)
      params = {**params, "brac_offset": w - hp.brac_weight}
      metrics["actor/brac_weight_raw"] = w
    metrics["actor/brac_weight"] = self.weight(params, hp)
    return params, metrics

  def per_task_losses(self, params, rl, z, key, hp: HParams) -> dict:
    out = super().per_task_losses(params, rl, z, key, hp)
    k_dual = jax.random.split(key, 3)[2]
    out["dual"] = self.dual_loss_fn(params, hp)(params["dual"], rl, z, k_dual)[0]
    return out
