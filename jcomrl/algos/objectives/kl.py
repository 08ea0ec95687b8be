"""A KL-to-prior term on a Gaussian encoder, and BOReL's objective built from it.

``kl``: ``hp.kl_weight`` times KL(q(z | context) || prior), summed over latent dimensions and
averaged over the context's positions and the meta-batch. For a Gaussian sequence encoder
(``gru_gaussian``) q after each prefix of the context is a term, as in VariBAD/BOReL's ELBO (one
KL per ELBO_t); for UNICORN's ``stochastic`` set encoder each transition's Gaussian (before the
tanh) is one. ``cfg.kl_prior="gauss"`` takes N(0, I) as every term's prior
(``--kl-to-gauss-prior``); ``"previous"`` the belief one step earlier, N(0, I) before the first
(the default of VariBAD/BOReL, Rondorf/BOReL ``models/vae.py`` ``compute_kl_loss`` and
``vae_config/args_cheetah_vel.py:53``).

``borel``: the reward (and, with ``decode_state``, the state-change) reconstruction NLL plus the
KL term: BOReL's VAE loss (Dorfman et al. 2021) as UNICORN used it without oracle rewards
(UNICORN App. C.1: no reward relabelling, the belief inferred from offline context at test time).
Differences from BOReL, whose VAE is trained first and then frozen while offline SAC trains on
belief-relabelled states: here the encoder trains alongside the policy with z detached from the
critic (jcomrl's one-stage learner, as for CORRO), and the belief is the code of the whole
context (one z per task) rather than a per-step hyper-state.
"""

from __future__ import annotations

import jax.numpy as jnp

from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.objectives.unicorn_ss import Reconstruction
from jcomrl.nets.encoders import GAUSSIAN_ENCODERS, SEQUENCE_ENCODERS


def gaussian_kl(mean, log_var, prior_mean, prior_log_var):
  """KL(N(mean, e^log_var) || N(prior_mean, e^prior_log_var)) summed over the last axis."""
  ratio = jnp.exp(log_var - prior_log_var)
  d2 = (mean - prior_mean) ** 2 * jnp.exp(-prior_log_var)
  return 0.5 * jnp.sum(prior_log_var - log_var - 1.0 + ratio + d2, axis=-1)


def kl_to_prior(mean, log_var, prior: str):
  """Per-position KL ``[..., K]`` of beliefs ``[..., K, Z]`` to the prior ``prior``."""
  if prior == "gauss":
    zero = jnp.zeros_like(mean)
    return gaussian_kl(mean, log_var, zero, zero)
  pad = lambda x: jnp.concatenate([jnp.zeros_like(x[..., :1, :]), x[..., :-1, :]], axis=-2)
  return gaussian_kl(mean, log_var, pad(mean), pad(log_var))


def kl_term(encoder, cfg, params, batch, hp):
  """``(hp.kl_weight * KL, metrics)`` of the encoder's beliefs on the meta-batch's contexts."""
  mean, log_var = encoder.posterior(params, batch.context)
  kl = jnp.mean(kl_to_prior(mean, log_var, cfg.kl_prior))
  return hp.kl_weight * kl, {"rep/kl": kl}


def _check_encoder(cfg, name: str) -> None:
  if cfg.encoder not in GAUSSIAN_ENCODERS:
    raise ValueError(f"the {name} term needs a Gaussian encoder {GAUSSIAN_ENCODERS}, got "
                     f"encoder={cfg.encoder!r}")
  if cfg.kl_prior == "previous" and cfg.encoder not in SEQUENCE_ENCODERS:
    raise ValueError(f"kl_prior='previous' needs a sequence encoder (the belief one step "
                     f"earlier); encoder={cfg.encoder!r} is a set encoder: use kl_prior='gauss'")


@register
class KL(Objective):
  """``hp.kl_weight`` x the mean KL of the encoder's Gaussian beliefs to ``cfg.kl_prior``."""

  name = "kl"

  @classmethod
  def validate(cls, cfg) -> None:
    _check_encoder(cfg, cls.name)

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    return kl_term(self.encoder, self.cfg, params, batch, hp)


@register
class Borel(Reconstruction):
  """BOReL's VAE objective: reconstruction NLL + ``hp.kl_weight`` x KL (see the module)."""

  name = "borel"

  @classmethod
  def validate(cls, cfg) -> None:
    _check_encoder(cfg, cls.name)

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    recon, m = super().loss(params, batch, hp, key, z)
    kl, mk = kl_term(self.encoder, self.cfg, params, batch, hp)
    return recon + kl, {**m, **mk}
