"""BRAC: SAC plus a KL(pi || pi_b) penalty estimated by a dual critic (FOCAL's backbone).

The dual critic c(s, z, a) is trained for ``dual_steps`` steps before the critic's, each further
step on a fresh RL batch of the same tasks (``dual_fresh_batches``). The weight w of the
divergence enters the actor loss (``brac_penalty="policy"``), the Bellman target (``"value"``),
both, or neither (``"none"``: c is trained and unused); w is ``hparams.brac.weight`` or auto-tuned
towards ``hparams.brac.target_div`` (``learner.brac.auto_weight``; the group ``brac_offset`` holds
the raw weight minus ``hparams.brac.weight``). The losses and their sources are in
:mod:`jcomrl.algos.backbones.losses`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones import losses
from jcomrl.algos.backbones.base import register
from jcomrl.algos.backbones.sac import SAC, SACSettings
from jcomrl.algos.config import HParams
from jcomrl.algos.settings import hyper
from jcomrl.nets.actor_critic import StateActionCritic

BRAC_PENALTIES = ("policy", "value", "both", "none")
BRAC_GRADIENT_PENALTIES = ("grad", "output")


@dataclasses.dataclass(frozen=True)
class BRACSettings(SACSettings):
  """BRAC's settings (``learner.brac.*``; before plug-in subtrees ``brac_<name>``, and
  ``dual_hidden``, ``dual_steps``, ``dual_fresh_batches``)."""

  legacy = {"penalty": "brac_penalty", "auto_weight": "brac_auto_weight", "gp": "brac_gp",
            "fresh_batches": "dual_fresh_batches", "div_before_dual": "brac_div_before_dual",
            "actor_div_grad": "brac_actor_div_grad", "weight_projected": "brac_weight_projected"}

  dual_hidden: tuple[int, ...] = (64, 64)
  # Where the weight w enters: the actor loss, the Bellman target, both, or nowhere ("none":
  # the dual critic is trained and unused, the workload of UNICORN's own code).
  penalty: str = "policy"
  auto_weight: bool = False
  gp: str = "grad"
  dual_steps: int = 1
  # Each dual step after the first draws a fresh RL batch of the same tasks, with the same codes
  # (FOCAL sac.py:201-203, CSRO sac.py:206-208, UNICORN train_offline_FOCAL.py:789-791).
  fresh_batches: bool = True
  # D(s) in the target, the actor loss and the weight update comes from the dual critic as it
  # was *before* this update's dual steps (FOCAL sac.py:278-286; UNICORN
  # train_offline_FOCAL.py:356-364); False: after them (CSRO sac.py:278-287).
  div_before_dual: bool = False
  # False: the actor's ``w * D`` term is a constant, no gradient through D (UNICORN's FOCALSAC:
  # D under torch.no_grad, divergences.py:70-73, focalsac.py:196).
  actor_div_grad: bool = True
  # Auto-tuned weight: False keeps the raw weight unclipped and clips it only where it is used
  # (FOCAL and CSRO sac.py get_alpha + the alpha step); True stores the clipped weight.
  weight_projected: bool = False

  def validate(self) -> None:
    super().validate()
    self._choice("penalty", BRAC_PENALTIES)
    self._choice("gp", BRAC_GRADIENT_PENALTIES)
    self._positive("dual_steps", "dual_hidden")
    if self.auto_weight and self.penalty == "none":
      raise ValueError(f"{self._key('auto_weight')} needs a BRAC penalty; "
                       f"{self._key('penalty')}='none' uses no weight")


@hyper
class BRACHyper:
  """BRAC's hyper-parameters (``hparams.brac.*``; before plug-in subtrees ``brac_<name>``,
  ``dual_lr`` and ``gp_weight``)."""

  legacy = {"weight": "brac_weight", "weight_lr": "brac_weight_lr",
            "target_div": "brac_target_div", "weight_max": "brac_weight_max"}

  dual_lr: float = 1e-4
  weight: float = 0.1
  gp_weight: float = 5.0
  weight_lr: float = 1.0  # auto_weight: w <- w + lr * (D - target), used clip(w, 0, max)
  target_div: float = 0.05
  weight_max: float = 2000.0


@register
class BRAC(SAC):
  name = "brac"
  Settings = BRACSettings
  Hyper = BRACHyper

  def __init__(self, cfg):
    super().__init__(cfg)
    s = self.settings
    self.dual = StateActionCritic(s.dual_hidden, init_scheme=cfg.net_init)
    self.extra_batches = s.dual_steps - 1 if s.fresh_batches else 0

  def init(self, keys) -> dict:
    params = super().init(keys)
    obs, act, z = self.dummy_inputs()
    params["dual"] = self.dual.init(keys[2], obs, z, act)
    if self.settings.auto_weight:
      params["brac_offset"] = jnp.zeros(())
    return params

  def trained_groups(self) -> tuple[str, ...]:
    return super().trained_groups() + ("dual",)

  def weight(self, params, hp: HParams):
    """The BRAC weight as used: the auto-tuned raw weight clipped to ``[0, max]`` (FOCAL
    sac.py:95-97 ``get_alpha``; CSRO sac.py:100-102)."""
    h = self.hyper(hp)
    if not self.settings.auto_weight:
      return h.weight
    return jnp.clip(h.weight + params["brac_offset"], 0.0, h.weight_max)

  def dual_loss_fn(self, params, hp: HParams):
    return lambda p, rl, zz, k: losses.dual_loss(p, params["actor"], rl, zz, k, hp,
                                                 policy=self.policy, dual=self.dual,
                                                 gp=self.settings.gp)

  def pre_update(self, params, opt, rls, z, hp, key):
    """The dual steps. ``brac_div_before_dual``: the D of the critic target, actor loss and
    weight update uses the dual critic as it was before them (FOCAL sac.py:278-286, UNICORN
    train_offline_FOCAL.py:356-364); FOCAL (torch 1.2, in-place .data updates) back-propagates
    the actor's D through the already updated weights, we use the pre-step weights for value
    and gradient alike. The returned ``extra`` is those weights, or None (use the new ones)."""
    before = params["dual"] if self.settings.div_before_dual else None
    rls = list(rls) + [rls[0]] * (self.settings.dual_steps - len(rls))
    metrics = {}
    for i, rl_i in enumerate(rls):
      params, opt, metrics = self.group_step("dual", self.dual_loss_fn(params, hp), params, opt,
                                             rl_i, z, jax.random.fold_in(key, i),
                                             self.hyper(hp).dual_lr)
    return params, opt, metrics, before

  def critic_loss_fn(self, params, hp: HParams, extra):
    if self.settings.penalty not in ("value", "both"):
      return super().critic_loss_fn(params, hp, extra)
    penalty = (self.dual, params["dual"] if extra is None else extra, self.weight(params, hp))
    return lambda p, rl, zz, k: losses.critic_loss(
        p, params["critic_target"], params["actor"], self.alpha(params, hp), rl, zz, k, hp,
        policy=self.policy, critic=self.critic, value_penalty=penalty,
        soft_target=self.settings.soft_target)

  def actor_loss_fn(self, params, hp: HParams, extra):
    s = self.settings
    w = self.weight(params, hp) if s.penalty in ("policy", "both") else None
    d_params = params["dual"] if extra is None else extra
    # brac_penalty="none": D is never evaluated in the actor (no KL metric either), so its two
    # forward passes and their gradient are not compiled at all.
    dual = self.dual if s.penalty != "none" else None
    return lambda p, rl, zz, k: losses.actor_loss(
        p, params["critic"], d_params, self.alpha(params, hp), rl, zz, k, hp, policy=self.policy,
        critic=self.critic, dual=dual, brac_weight=w, div_grad=s.actor_div_grad)

  def post_actor(self, params, hp: HParams, divergence):
    metrics = {}
    if self.settings.auto_weight:
      # FOCAL sac.py:377-382, CSRO sac.py:400-405: w <- w + lr (D - target), w kept raw;
      # brac_weight_projected: w <- clip(w + lr (D - target), 0, w_max).
      h = self.hyper(hp)
      w = h.weight + params["brac_offset"] + h.weight_lr * (divergence - h.target_div)
      if self.settings.weight_projected:
        w = jnp.clip(w, 0.0, h.weight_max)
      params = {**params, "brac_offset": w - h.weight}
      metrics["actor/brac_weight_raw"] = w
    metrics["actor/brac_weight"] = self.weight(params, hp)
    return params, metrics

  def per_task_losses(self, params, rl, z, key, hp: HParams) -> dict:
    out = super().per_task_losses(params, rl, z, key, hp)
    k_dual = jax.random.split(key, 3)[2]
    out["dual"] = self.dual_loss_fn(params, hp)(params["dual"], rl, z, k_dual)[0]
    return out
