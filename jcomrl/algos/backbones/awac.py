"""AWAC (Nair, Gupta, Dalal, Levine 2020) as SMAC trains it offline: a twin-Q critic with a soft
Bellman target and an advantage-weighted maximum-likelihood actor.

Source: ``rail-berkeley/rlkit`` at ac45a9d, SMAC's trainer ``rlkit/torch/smac/smac.py``
(``SmacTrainer.train_from_torch``, the task-conditioned copy of ``rlkit/torch/sac/awac_trainer.py``)
with the offline settings of ``rlkit/torch/smac/base_config.py:20-49``. One update, every loss
taken at the parameters the update starts from (smac.py:340-501 builds all of them before the
first optimiser step, :506-527), then the Polyak target (:532-538):

1. critic: each of the twin Q regresses ``y = reward_scale r + gamma (1 - d)(min_i Q'_i(s', a')
   - alpha log pi(a' | s'))``, ``a' ~ pi(. | s')`` (smac.py:381-392; ``nn.MSELoss`` per Q, the two
   losses summed by their two backward passes);
2. actor: ``L = alpha mean log pi(a_pi | s) + awr_weight mean(-log pi(a_data | s) w)
   + reparam_weight mean(-min_i Q_i(s, a_pi))`` (smac.py:489-499), ``a_pi ~ pi(. | s)`` one
   reparameterised sample; the advantage score is ``A = min_i Q_i(s, a_data) - min_i Q_i(s, a_pi)``
   (``awr_min_q``: the min of the twin Qs at the data action, else Q_1; V(s) from one policy
   sample, ``vf_K = 1``: smac.py:423-443, 461) and the weights
   ``w = M softmax(A / beta)`` over *all* M = B x N transitions of the meta-batch
   (``normalize_over_batch=True``, ``len(weights) * weights``: smac.py:469-471, 492-493), no
   gradient through them. ``beta`` divides the score (a temperature, not IQL's inverse one).
3. ``Q' <- tau Q + (1 - tau) Q'`` every update (``target_update_period`` 1).

SMAC's offline values are the defaults: beta 100, awr_weight 1, no reparameterised term
(``use_reparam_update=False``, reparam_weight 0: base_config.py:21,25,27,33), alpha 0 and no
learned temperature (:22,26; ``hparams.entropy_alpha=0`` in the preset, the shared field). Its
online phase switches the reparameterised term on (``online_trainer_kwargs``: reparam_weight 1,
base_config.py:81-86): ``hparams.awac.reparam_weight=1``.

``weights="task"`` normalises within each task's N transitions (rlkit's single-task AWAC,
awac_trainer.py:619-620, on one task's batch); ``"exp"`` is the unnormalised ``exp(A / beta)``
(``normalize_over_batch="exp"``, smac.py:477-478). Data actions are clipped to
``+-action_logp_clip`` = 0.999999 before their log-likelihood, as rlkit's ``TanhNormal.log_prob``
(``rlkit/torch/distributions.py:366-371``).

Deviation: SMAC's next-state actions come from a second pass of its agent, which samples a fresh
z from the posterior for them (``next_dist = self.agent(next_obs, context)``, smac.py:346 with
agent.py:228-229), while the target critic reads the first sample; here one z per task serves
every term (the learner's detached code). Groups: ``actor``, ``critic``, ``critic_target``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones.base import gradient_step, register, tile
from jcomrl.algos.backbones.sac import SAC, SACSettings
from jcomrl.algos.config import HParams
from jcomrl.algos.settings import hyper
from jcomrl.nets.actor_critic import tanh_gaussian_action_log_prob, tanh_gaussian_sample

AWAC_WEIGHTS = ("meta_batch", "task", "exp")


def awac_weights(score, beta, weights: str = "meta_batch"):
  """Advantage weights ``[B, N]`` of scores ``[B, N]``, no gradient: ``M softmax(A / beta)``
  over all ``M = B N`` entries (``"meta_batch"``, SMAC), ``N softmax`` within each task's row
  (``"task"``) or ``exp(A / beta)`` (``"exp"``)."""
  s = jax.lax.stop_gradient(score) / beta
  if weights == "meta_batch":
    return jax.nn.softmax(s.reshape(-1)).reshape(s.shape) * s.size
  if weights == "task":
    return jax.nn.softmax(s, axis=-1) * s.shape[-1]
  return jnp.exp(s)


@dataclasses.dataclass(frozen=True)
class AWACSettings(SACSettings):
  """AWAC's settings (``learner.awac.*``): how the weights are normalised, which Q scores the
  data action, and rlkit's clip of data actions for their log-likelihood."""

  weights: str = "meta_batch"  # smac.py:469-471 (normalize_over_batch=True, smac.py:108)
  awr_min_q: bool = True  # base_config.py:32; False: Q_1 alone (smac.py:440-443)
  action_logp_clip: float = 0.999999  # rlkit/torch/distributions.py:369

  def validate(self) -> None:
    super().validate()
    self._choice("weights", AWAC_WEIGHTS)


@hyper
class AWACHyper:
  """AWAC's temperature ``beta`` of ``softmax(A / beta)`` and the weights of its actor terms
  (``hparams.awac.*``; SMAC's offline values, rlkit/torch/smac/base_config.py:21,27,33)."""

  ranges = {"beta": "positive"}

  beta: float = 100.0
  awr_weight: float = 1.0
  reparam_weight: float = 0.0


@register
class AWAC(SAC):
  """AWAC on (s, z): SAC's twin-Q critic step and target, AWAC's actor (see the module)."""

  name = "awac"
  Settings = AWACSettings
  Hyper = AWACHyper
  # smac.py computes the actor's loss (scores included) before the critic's step.
  actor_uses_updated_critic = False

  def actor_terms(self, p, params, rl, z, key):
    """One task's ``(log pi(a_data|s), log pi(a_pi|s), min Q(s, a_pi), Q(s, a_data))`` ``[N]``
    under the actor ``p`` and the critic ``params["critic"]``."""
    zt = tile(z, rl.reward.shape[0])
    mean, log_std = self.policy.apply(p, rl.obs, zt)
    a_pi, logp_pi = tanh_gaussian_sample(key, mean, log_std)
    logp_data = tanh_gaussian_action_log_prob(rl.action, mean, log_std,
                                              self.settings.action_logp_clip)
    q_pi = jnp.min(self.critic.apply(params["critic"], rl.obs, zt, a_pi), axis=0)
    q_data = self.critic.apply(params["critic"], rl.obs, zt, rl.action)
    q_data = jnp.min(q_data, axis=0) if self.settings.awr_min_q else q_data[0]
    return logp_data, logp_pi, q_pi, q_data

  def meta_actor_loss(self, p, params, rl, z, hp: HParams, key):
    """The actor loss of a meta-batch (``rl [B, N]``, ``z [B, Z]``), aux ``(metrics, mean log
    pi, 0)``; the weights are normalised over all its transitions (``weights="meta_batch"``)."""
    h = self.hyper(hp)
    keys = jax.random.split(key, z.shape[0])
    logp_data, logp_pi, q_pi, q_data = jax.vmap(
        lambda b, zz, k: self.actor_terms(p, params, b, zz, k))(rl, z, keys)
    score = q_data - q_pi
    w = awac_weights(score, h.beta, self.settings.weights)
    alpha = self.alpha(params, hp)
    awr = jnp.mean(-logp_data * w)
    loss = alpha * jnp.mean(logp_pi) + h.awr_weight * awr + h.reparam_weight * jnp.mean(-q_pi)
    metrics = {"actor/loss": loss, "actor/awr": awr, "actor/advantage": jnp.mean(score),
               "actor/weight_max": jnp.max(w), "actor/data_logp": jnp.mean(logp_data),
               "actor/entropy": -jnp.mean(logp_pi), "actor/q": jnp.mean(q_pi)}
    return loss, (metrics, jnp.mean(logp_pi), jnp.zeros(()))

  def actor_loss_fn(self, params, hp: HParams, extra):
    """One task's actor loss (a meta-batch of that task alone; ``per_task_losses``)."""
    del extra
    one = lambda x: x[None]
    return lambda p, rl, zz, k: self.meta_actor_loss(p, params, jax.tree.map(one, rl), one(zz),
                                                     hp, k)

  def actor_step(self, seen, params, opt, rl, z, hp: HParams, key, extra):
    del extra
    new, opt_a, aux = gradient_step(lambda p: self.meta_actor_loss(p, seen, rl, z, hp, key),
                                    params["actor"], opt["actor"], hp.actor_lr)
    return {**params, "actor": new}, {**opt, "actor": opt_a}, aux
