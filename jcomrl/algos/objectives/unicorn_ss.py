"""UNICORN-SS (Li et al. 2024): a Gaussian decoder reconstructs each context transition's
(s' - s, r) from (z, s, a), plus alpha/(1-alpha) times FOCAL's loss; it optimises
alpha I(Z; X) + (1 - alpha) I(Z; X_t | X_b).

Built as the sum of two registered terms: :class:`Reconstruction` (``reconstruction``, usable on
its own or as an ``extra_objectives`` term) and :class:`~.focal.Focal`.

Reconstruction NLL: mbrl-lib's ``gaussian_nll`` as UNICORN's ``FOCALDecoder`` uses it,
``(mu - t)^2 exp(-lv) + lv`` with no 1/2, averaged over transitions and output dims
(``decoder_nll="mbrl"``); ``"half"`` is the NLL in nats (the 1/2 included, no 2 pi), which
halves the reconstruction against ``focal_weight`` and the log-variance-bound penalty.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.objectives.csro import gaussian_nll_per_dim
from jcomrl.algos.objectives.focal import focal_term
from jcomrl.algos.settings import Settings, hyper
from jcomrl.nets.decoders import TransitionDecoder


def mbrl_gaussian_nll(mean, log_var, target):
  """mbrl-lib's Gaussian NLL as UNICORN's decoder uses it: ``mean((t - mu)^2 exp(-lv) + lv)``
  over samples and output dims, with no 1/2 (twice :func:`gaussian_nll_per_dim`).

  Source: ``facebookresearch/mbrl-lib`` v0.2.0 ``mbrl/util/math.py:59-61`` (``gaussian_nll``,
  ``reduce=False``) averaged by ``GaussianMLP._nll_loss`` (``mbrl/models/gaussian_mlp.py:299-303``,
  ``.mean((1, 2))`` over batch and dims, one ensemble member); UNICORN pins ``mbrl==0.2.0`` and
  calls it per head in ``models/decoder.py:203-208``.
  """
  diff = target - mean
  return jnp.mean(diff * diff * jnp.exp(-log_var) + log_var)


DECODER_NLLS = ("mbrl", "half")


@dataclasses.dataclass(frozen=True)
class ReconstructionSettings(Settings):
  """The reconstruction term's settings (``learner.<objective>.*``; before plug-in subtrees
  ``decoder_nll``, ``decode_state``)."""

  decoder_nll: str = "mbrl"  # "mbrl" (UNICORN's, no 1/2) | "half" (nats, 1/2)
  # Decode s' - s as well as r (BOReL decodes the reward only).
  decode_state: bool = True

  def validate(self) -> None:
    self._choice("decoder_nll", DECODER_NLLS)


@hyper
class ReconstructionHyper:
  """``hparams.<objective>.decoder_weight``: the reconstruction NLL's weight."""

  decoder_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class UnicornSSSettings(ReconstructionSettings):
  """UNICORN-SS's settings (``learner.unicorn_ss.*``): its reconstruction term's."""


@hyper
class UnicornSSHyper(ReconstructionHyper):
  """UNICORN-SS's weights: the reconstruction NLL's and the FOCAL term's (``focal_weight``)."""

  focal_weight: float = 10.0


@register
class Reconstruction(Objective):
  """``hparams.<objective>.decoder_weight`` times the NLL of every context transition's (s' - s, r) under the
  decoder given the code of the context it belongs to, plus the log-variance-bound penalties
  (``decode_state=False``: the reward's only)."""

  name = "reconstruction"
  Settings = ReconstructionSettings
  Hyper = ReconstructionHyper

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    # net_init="rlkit" is "as the official torch codes build their nets": UNICORN's decoder is
    # mbrl-lib's GaussianMLP, initialised by mbrl's truncated normal (jcomrl.nets.mlp "mbrl").
    self.decoder = TransitionDecoder(cfg.aux_hidden, cfg.obs_size,
                                     init_scheme="mbrl" if cfg.net_init == "rlkit"
                                     else cfg.net_init)
    self.nll = (mbrl_gaussian_nll if self.settings.decoder_nll == "mbrl"
                else gaussian_nll_per_dim)

  def init(self, key):
    zeros = lambda n: jnp.zeros((1, n))
    return {"decoder": self.decoder.init(key, zeros(self.cfg.latent_size),
                                         zeros(self.cfg.obs_size), zeros(self.cfg.action_size))}

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    ctx = batch.context
    zt = jnp.broadcast_to(z[:, None, :], ctx.obs.shape[:-1] + z.shape[-1:])
    heads = self.decoder.apply(params["decoder"], zt, ctx.obs, ctx.action)
    (ms, lvs, pens), (mr, lvr, penr) = heads["state"], heads["reward"]
    nll_s = self.nll(ms, lvs, ctx.next_obs - ctx.obs)
    nll_r = self.nll(mr, lvr, ctx.reward[..., None])
    recon = nll_r + penr
    if self.settings.decode_state:
      recon = recon + nll_s + pens
    return self.hyper(hp).decoder_weight * recon, {"rep/nll_state": nll_s, "rep/nll_reward": nll_r}


@register
class UnicornSS(Reconstruction):
  """Reconstruction + FOCAL (the same as ``representation="reconstruction"`` with
  ``extra_objectives="focal"``, up to metric names)."""

  name = "unicorn_ss"
  Settings = UnicornSSSettings
  Hyper = UnicornSSHyper

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    focal, metrics = focal_term(z, batch, self.hyper(hp).focal_weight)
    recon, m = super().loss(params, batch, hp, key, z)
    return focal + recon, {**metrics, **m}
