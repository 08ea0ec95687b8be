"""SMAC's encoder loss (Pong et al., ICML 2022): a reward decoder's squared error plus
``kl_lambda`` times KL(q(z | context) || N(0, I)), on a Gaussian encoder (SMAC's own: ``pearl``).

Source: ``rail-berkeley/rlkit`` at ac45a9d, ``rlkit/torch/smac/smac.py:394-410``. The decoder
is a deterministic MLP ``r_hat(s, a, z)`` (``MlpDecoder``, a ``ConcatMlp`` of (s, a, z) with one
output: ``rlkit/torch/smac/launcher.py:157-162``; hidden [64, 64], ``base_config.py:12-14``:
``learner.aux_hidden``) trained together with the encoder (``train_context_decoder=True``,
base_config.py:35; one optimiser over both, smac.py:168-175). It reads the *RL batch's*
observations and actions, not the context's (smac.py:405), with the code z that the policy and
critic see, sampled from the posterior and carrying its gradient (``task_z_with_grad``), and
regresses the batch's unscaled rewards: ``mean (r_hat - r)^2`` (smac.py:406). The KL is
``kl_divergence(p_z, prior).mean(dim=0).sum()``: summed over latent dimensions, averaged over the
meta-batch's tasks (smac.py:400-401), which is the ``kl`` term's with ``kl_prior="gauss"`` on an
encoder with one posterior per context; weight ``kl_weight`` = kl_lambda 0.1 (base_config.py:42).
The critic loss does not train the encoder (``backprop_q_loss_into_encoder=False``,
base_config.py:34): z reaches the backbone detached, as for every objective without
``critic_trains``.

Why not ``borel`` / ``reconstruction``: their decoder is a Gaussian (mean and log-variance heads,
a negative log-likelihood) of the *context's* transitions, with a state head; SMAC's is a point
prediction of the RL batch's rewards under a squared error. The KL part is the ``kl`` term's
(:class:`Smac` extends :class:`~jcomrl.algos.objectives.kl.KL`). The decoder's parameters are the
group ``reward_decoder`` of the encoder's optimiser.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jcomrl.algos.objectives.base import register
from jcomrl.algos.objectives.kl import KL, KLHyper, KLSettings, kl_term
from jcomrl.algos.settings import hyper
from jcomrl.nets.mlp import MLP


def reward_mse(decoder, params, rl, z):
  """``mean (r_hat(s, a, z_task) - r)^2`` over a meta-batch's RL transitions ``[B, N]`` with the
  codes ``z [B, Z]`` (the decoder reads ``concat(s, a, z)``, rlkit's ConcatMlp order)."""
  zt = jnp.broadcast_to(z[:, None, :], rl.obs.shape[:-1] + z.shape[-1:])
  pred = decoder.apply(params, jnp.concatenate([rl.obs, rl.action, zt], axis=-1))[..., 0]
  return jnp.mean((pred - rl.reward) ** 2)


@dataclasses.dataclass(frozen=True)
class SmacSettings(KLSettings):
  """SMAC's (``learner.smac.*``): the KL term's prior (N(0, I), agent.py:97-100)."""


@hyper
class SmacHyper(KLHyper):
  """SMAC's weights: ``kl_weight`` (kl_lambda, base_config.py:42) and the reward decoder's
  squared error's ``decoder_weight`` (unweighted in smac.py:407)."""

  kl_weight: float = 0.1
  decoder_weight: float = 1.0


@register
class Smac(KL):
  """``decoder_weight`` x the reward decoder's MSE on the RL batch + ``kl_weight`` x KL."""

  name = "smac"
  Settings = SmacSettings
  Hyper = SmacHyper

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    # rlkit's Mlp head U(+-3e-3) (rlkit/torch/networks/mlp.py:55-57) with net_init="rlkit".
    self.decoder = MLP(cfg.aux_hidden, 1, init_scheme=cfg.net_init,
                       final_scale=3e-3 if cfg.net_init == "rlkit" else None)

  def init(self, key):
    cfg = self.cfg
    width = cfg.obs_size + cfg.action_size + cfg.latent_size
    return {"reward_decoder": self.decoder.init(key, jnp.zeros((1, width)))}

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    h = self.hyper(hp)
    mse = reward_mse(self.decoder, params["reward_decoder"], batch.rl, z)
    kl, metrics = kl_term(self.encoder, self.settings.kl_prior, params, batch, h.kl_weight)
    return h.decoder_weight * mse + kl, {**metrics, "rep/reward_mse": mse}
