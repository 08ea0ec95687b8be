"""CORRO (Yuan & Lu 2022): a contrastive lower bound on I(Z; X_t | X_b) over per-transition
embeddings, negatives sharing (s, a) with (r, s') drawn from a CVAE (or reward noise).

The anchor is one transition's embedding, the positive another transition of the same task
(``learner.corro.positives="task"``: any transition of the task, CORRO's ``sample_positive_pairs``;
``"context"``: one of the same context), the ``learner.corro.negatives`` negatives the anchor's (s,
a) with generated (r, s'). Scores are dot products / ``hparams.corro.temperature`` of L2-normalised
embeddings; ``learner.corro.contrastive_bound`` names the lower bound of :data:`jcomrl.mi.WITH_NEGATIVES`
(CORRO: InfoNCE). The critic loss trains what the encoder offers it (the attention pooling).

The CVAE is trained by :meth:`Corro.pretrain_loss` during the first ``pretrain_steps`` updates:
``mean-MSE(s') + mean-MSE(r) + hparams.corro.cvae_kl_weight * KL``, each MSE over all its elements
(``F.mse_loss``, CORRO ``train_generative_model.py:114-118``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jcomrl import mi
from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.settings import Settings, hyper
from jcomrl.data.sampler import task_positives
from jcomrl.nets.decoders import TransitionCVAE
from jcomrl.types import Transition


def corro_infonce(anchor: jnp.ndarray, positive: jnp.ndarray, negatives: jnp.ndarray,
                  temperature, bound: str = "infonce", alpha: float = 0.5) -> jnp.ndarray:
  """CORRO's contrastive bound (nats): anchors ``[N, Z]``, positives ``[N, Z]``, negatives
  ``[N, M, Z]``; scores are dot products / temperature of L2-normalised embeddings. ``bound``
  names a lower bound of ``mi.WITH_NEGATIVES`` (CORRO: ``"infonce"``; ``alpha`` is
  ``"interpolated"``'s)."""
  pos = jnp.sum(anchor * positive, axis=-1) / temperature
  neg = jnp.einsum("nz,nmz->nm", anchor, negatives) / temperature
  if bound == "interpolated":
    return mi.interpolated_with_negatives(pos, neg, alpha=alpha)
  return mi.WITH_NEGATIVES[bound](pos, neg)


CONTRASTIVE_BOUNDS = tuple(mi.WITH_NEGATIVES)
NEGATIVE_SOURCES = ("cvae", "reward_noise")
CORRO_POSITIVES = ("task", "context")


@dataclasses.dataclass(frozen=True)
class CorroSettings(Settings):
  """CORRO's settings (``learner.corro.*``; before plug-in subtrees ``corro_negatives``,
  ``corro_negative_source``, ``corro_positives``, ``contrastive_bound``, ``contrastive_alpha``,
  ``cvae_latent``)."""

  legacy = {"negatives": "corro_negatives", "negative_source": "corro_negative_source",
            "positives": "corro_positives"}

  negatives: int = 16
  negative_source: str = "cvae"
  positives: str = "task"  # "task" (CORRO: any transition of the task) | "context"
  # The MI lower bound on (anchor, positive, negatives) scores: any of jcomrl.mi.WITH_NEGATIVES
  # (CORRO: "infonce"); interpolated's alpha is contrastive_alpha.
  contrastive_bound: str = "infonce"
  contrastive_alpha: float = 0.5
  cvae_latent: int = 5

  def validate(self) -> None:
    self._choice("negative_source", NEGATIVE_SOURCES)
    self._choice("positives", CORRO_POSITIVES)
    self._choice("contrastive_bound", CONTRASTIVE_BOUNDS)
    self._positive("negatives", "cvae_latent")


@hyper
class CorroHyper:
  """CORRO's weights (``hparams.corro.*``; before plug-in subtrees ``corro_weight``,
  ``corro_temperature``, ``corro_reward_noise``, ``cvae_kl_weight``)."""

  legacy = {"weight": "corro_weight", "temperature": "corro_temperature",
            "reward_noise": "corro_reward_noise"}
  ranges = {"temperature": "positive"}

  weight: float = 1.0
  temperature: float = 0.1
  reward_noise: float = 0.5
  cvae_kl_weight: float = 0.2


@register
class Corro(Objective):
  name = "corro"
  Settings = CorroSettings
  Hyper = CorroHyper
  critic_trains = "encoder"

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    self.cvae = TransitionCVAE(cfg.aux_hidden, self.settings.cvae_latent, cfg.obs_size)

  @classmethod
  def has_pretrain(cls, cfg):
    return cls.settings_of(cfg).negative_source == "cvae"

  def negatives(self, ctx: Transition, hp, key, pretrain_params):
    """``negatives`` transitions per context transition ``[B, K, M]``: its (s, a)
    with (r, s') from the CVAE, or its s' with a noisy r (reward randomisation)."""
    b, k = ctx.reward.shape
    m = self.settings.negatives
    tile = lambda x: jnp.broadcast_to(x[:, :, None], (b, k, m) + x.shape[2:])
    if self.settings.negative_source == "cvae":
      next_obs, reward = self.cvae.apply(pretrain_params, tile(ctx.obs), tile(ctx.action), key,
                                         method="generate")
    else:
      next_obs = tile(ctx.next_obs)
      reward = tile(ctx.reward) + self.hyper(hp).reward_noise * jax.random.normal(key, (b, k, m))
    return Transition(obs=tile(ctx.obs), action=tile(ctx.action),
                      reward=jax.lax.stop_gradient(reward),
                      next_obs=jax.lax.stop_gradient(next_obs),
                      terminal=tile(ctx.terminal), timeout=tile(ctx.timeout))

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    del z  # the bound acts on per-transition embeddings; z only reaches the critic
    ctx = batch.context
    k_perm, k_neg, _ = jax.random.split(key, 3)
    b, k = ctx.reward.shape
    e = self.encoder.embed(params, ctx)  # [B, K, Z] anchors
    if self.settings.positives == "task":
      # Positive: a transition of the same task from any trajectory (CORRO), drawn from the
      # task's RL batch (uniform over its whole data, independent of the context).
      pos = self.encoder.embed(params, task_positives(batch.rl, k))
    else:  # another transition of the same context (a random derangement)
      pos = jnp.roll(e, jax.random.randint(k_perm, (), 1, k), axis=1)
    neg = self.encoder.embed(params, self.negatives(ctx, hp, k_neg, pretrain_params))
    s, h = self.settings, self.hyper(hp)
    m = s.negatives
    bound = corro_infonce(e.reshape(b * k, -1), pos.reshape(b * k, -1),
                          neg.reshape(b * k, m, -1), h.temperature,
                          bound=s.contrastive_bound, alpha=s.contrastive_alpha)
    return -h.weight * bound, {f"rep/{s.contrastive_bound}": bound}

  def pretrain_init(self, key):
    obs, act = jnp.zeros((1, self.cfg.obs_size)), jnp.zeros((1, self.cfg.action_size))
    return self.cvae.init(key, obs, act, jnp.zeros((1,)), obs, key)

  def pretrain_loss(self, params, rl: Transition, hp, key):
    next_hat, r_hat, mu, log_var = self.cvae.apply(params, rl.obs, rl.action, rl.reward,
                                                   rl.next_obs, key)
    mse_s = jnp.mean((next_hat - rl.next_obs) ** 2)
    mse_r = jnp.mean((r_hat - rl.reward) ** 2)
    kl = jnp.mean(0.5 * jnp.sum(jnp.exp(log_var) + mu ** 2 - 1.0 - log_var, axis=-1))
    loss = mse_s + mse_r + self.hyper(hp).cvae_kl_weight * kl
    return loss, {"cvae/loss": loss, "cvae/mse_next_obs": mse_s, "cvae/mse_reward": mse_r,
                  "cvae/kl": kl}
