"""CSRO (Gao et al. 2023): FOCAL's loss plus lambda * an upper bound on I(z; s, a), the part of
the code that the behaviour policy's state-action distribution explains.

q_psi(z | s, a) (a Gaussian net, 3x200 in CSRO) is fitted to the detached per-transition codes
by its NLL (weight ``hparams.csro.club_model_weight``); the encoder minimises the bound through z with
q_psi frozen. ``learner.csro.upper_bound`` names the bound of :data:`jcomrl.mi.UPPER_BOUNDS` (CSRO: CLUB
over all K^2 pairs of the context, ``MoreanP/CSRO`` ``rlkit/torch/sac/sac.py``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jcomrl import mi
from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.objectives.focal import focal_term
from jcomrl.algos.settings import Settings, hyper
from jcomrl.nets.decoders import ClubNet


def csro_club(embed: jnp.ndarray, mean: jnp.ndarray, log_var: jnp.ndarray,
              bound: str = "club", key=None) -> jnp.ndarray:
  """CSRO's upper bound on I(z; (s, a)) for one task's context, in nats.

  ``embed [K, Z]`` are the per-transition codes z_i; ``mean, log_var [K, Z]`` are q_psi(z | s_i,
  a_i). ``bound="club"`` (CSRO): ``mean_i log q(z_i|x_i) - mean_{i,j} log q(z_j|x_i)`` with the
  negative term over all K^2 pairs of the same context, as in the CSRO code
  (``mi.club(include_diagonal=True)``); ``"club_sampled"`` (needs ``key``) and ``"l1out"`` are
  the other bounds of ``mi.UPPER_BOUNDS`` on the same log-likelihood matrix.
  """
  log_q = mi.gaussian_log_q(mean, log_var, embed, include_constant=False)
  return mi.UPPER_BOUNDS[bound](log_q, key, include_diagonal=True)


def gaussian_nll_per_dim(mean, log_var, target):
  """Gaussian NLL in nats without the log(2 pi), averaged over samples *and* output dims:
  ``mean(0.5 * [(t - mu)^2 exp(-lv) + lv])``. CSRO's q_psi loss (``MoreanP/CSRO``
  ``rlkit/torch/sac/sac.py:303``: ``(z - mu)^2 / (2 var) + log sd``); ``decoder_nll="half"``."""
  return mi.gaussian_nll(mean, log_var, target, include_constant=False) / mean.shape[-1]


UPPER_BOUNDS = tuple(mi.UPPER_BOUNDS)


@dataclasses.dataclass(frozen=True)
class CSROSettings(Settings):
  """``learner.csro.upper_bound``: the MI upper bound on q_psi's log-likelihoods, "club" (CSRO,
  all K^2 pairs as its code), "club_sampled" (CLUB-S) or "l1out" (jcomrl.mi.UPPER_BOUNDS)."""

  upper_bound: str = "club"

  def validate(self) -> None:
    self._choice("upper_bound", UPPER_BOUNDS)


@hyper
class CSROHyper:
  """CSRO's weights (``hparams.csro.*``; the same names before plug-in subtrees): the FOCAL
  term's, lambda on the CLUB term, and q_psi's NLL."""

  focal_weight: float = 10.0
  club_weight: float = 1.0
  club_model_weight: float = 10.0


@register
class CSRO(Objective):
  name = "csro"
  Settings = CSROSettings
  Hyper = CSROHyper
  uses_embeddings = True

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    self.club_net = ClubNet(cfg.aux_hidden, cfg.latent_size)

  def init(self, key):
    zeros = lambda n: jnp.zeros((1, n))
    return {"club": self.club_net.init(key, zeros(self.cfg.obs_size),
                                       zeros(self.cfg.action_size))}

  def loss(self, params, batch, hp, key, z, pretrain_params=None, embed=None):
    # [B, K, Z] per-transition codes: those z was pooled from, when the composite passes them.
    e = self.encoder.embed(params, batch.context, key) if embed is None else embed
    h = self.hyper(hp)
    loss, metrics = focal_term(z, batch, h.focal_weight)
    mean, log_var = self.club_net.apply(params["club"], batch.context.obs, batch.context.action)
    # q_psi is fitted to the detached codes; the encoder minimises the bound with q frozen.
    nll = gaussian_nll_per_dim(mean, log_var, jax.lax.stop_gradient(e))
    keys = jax.random.split(jax.random.fold_in(key, 7), e.shape[0])
    bound = lambda e_, m_, lv_, k_: csro_club(e_, m_, lv_, self.settings.upper_bound, k_)
    club = jnp.mean(jax.vmap(bound)(e, jax.lax.stop_gradient(mean),
                                    jax.lax.stop_gradient(log_var), keys))
    loss = loss + h.club_weight * club + h.club_model_weight * nll
    return loss, {**metrics, "rep/club": club, "rep/club_nll": nll}
