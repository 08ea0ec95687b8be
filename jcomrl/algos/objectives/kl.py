"""A KL-to-prior term on a Gaussian encoder, and BOReL's objective built from it.

``kl``: ``kl_weight`` times KL(q(z | context) || prior), summed over latent dimensions and
averaged over the context's positions and the meta-batch. For a Gaussian sequence encoder
(``gru_gaussian``) q after each prefix of the context is a term, as in VariBAD/BOReL's ELBO (one
KL per ELBO_t); for UNICORN's ``stochastic`` set encoder each transition's Gaussian (before the
tanh) is one. ``kl_prior="gauss"`` takes N(0, I) as every term's prior
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

import dataclasses

import jax.numpy as jnp

from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.objectives.unicorn_ss import (
  Reconstruction,
  ReconstructionHyper,
  ReconstructionSettings,
)
from jcomrl.algos.settings import Settings, hyper
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


def kl_term(encoder, prior: str, params, batch, weight):
  """``(weight * KL, metrics)`` of the encoder's beliefs on the meta-batch's contexts."""
  mean, log_var = encoder.posterior(params, batch.context)
  kl = jnp.mean(kl_to_prior(mean, log_var, prior))
  return weight * kl, {"rep/kl": kl}


KL_PRIORS = ("gauss", "previous")


@dataclasses.dataclass(frozen=True)
class KLSettings(Settings):
  """The ``kl`` term's prior (``learner.<objective>.kl_prior``): "gauss" (N(0, I) for every
  code) or "previous" (a sequence encoder's belief after t steps against the one after t - 1,
  N(0, I) before the first: VariBAD/BOReL's default ``kl_to_gauss_prior=False``)."""

  kl_prior: str = "gauss"

  def validate(self) -> None:
    self._choice("kl_prior", KL_PRIORS)


@hyper
class KLHyper:
  """``hparams.<objective>.kl_weight`` (BOReL's --kl-weight; UNICORN Table 6 sweeps it)."""

  kl_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class BorelSettings(ReconstructionSettings, KLSettings):
  """BOReL's: the reconstruction term's settings and the KL prior."""


@hyper
class BorelHyper(ReconstructionHyper, KLHyper):
  """BOReL's weights: the reconstruction NLL's and the KL's."""


def _check_encoder(cfg, name: str, prior: str) -> None:
  if cfg.encoder not in GAUSSIAN_ENCODERS:
    raise ValueError(f"the {name} term needs a Gaussian encoder {GAUSSIAN_ENCODERS}, got "
                     f"encoder={cfg.encoder!r}")
  if prior == "previous" and cfg.encoder not in SEQUENCE_ENCODERS:
    raise ValueError(f"learner.{name}.kl_prior='previous' needs a sequence encoder (the belief "
                     f"one step earlier); encoder={cfg.encoder!r} is a set encoder: use "
                     f"kl_prior='gauss'")


@register
class KL(Objective):
  """``kl_weight`` x the mean KL of the encoder's Gaussian beliefs to ``kl_prior``."""

  name = "kl"
  Settings = KLSettings
  Hyper = KLHyper

  @classmethod
  def validate(cls, cfg) -> None:
    _check_encoder(cfg, cls.name, cls.settings_of(cfg).kl_prior)

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    return kl_term(self.encoder, self.settings.kl_prior, params, batch,
                   self.hyper(hp).kl_weight)


@register
class Borel(Reconstruction):
  """BOReL's VAE objective: reconstruction NLL + ``kl_weight`` x KL (see the module)."""

  name = "borel"
  Settings = BorelSettings
  Hyper = BorelHyper

  @classmethod
  def validate(cls, cfg) -> None:
    _check_encoder(cfg, cls.name, cls.settings_of(cfg).kl_prior)

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    recon, m = super().loss(params, batch, hp, key, z)
    kl, mk = kl_term(self.encoder, self.settings.kl_prior, params, batch,
                     self.hyper(hp).kl_weight)
    return recon + kl, {**m, **mk}
