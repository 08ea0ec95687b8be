"""Representation objectives: the losses that train the context encoder.

UNICORN's view (DESIGN.md §4): the COMRL methods differ only in which bound on I(Z; M) their
encoder optimises. ``make_representation(cfg)`` returns a :class:`Representation`: the encoder
group's ``init``, a deterministic-or-sampled ``encode`` and the objective ``loss``, a pure function
``(params, batch, hparams, key) -> (loss, {"metrics": ..., "z": [B, Z]})``. The encoder group's
parameters are a dict: ``{"encoder": ...}`` plus the objective's own networks (``decoder``,
``classifier``, ``club``); they share one optimiser, as in the official codes.

| objective      | loss                                                   | bound              |
|----------------|--------------------------------------------------------|--------------------|
| ``focal``      | w_focal * FOCAL distance-metric loss on task codes     | upper, I(Z; X)     |
| ``csro``       | focal + lambda * CLUB(z_i; s_i, a_i) + q_psi NLL       | interpolation      |
| ``unicorn_ss`` | Gaussian NLL of (ds, r) from (z, s, a) + w_focal * focal | aI(Z;X)+(1-a)I(Z;X_t|X_b) |
| ``unicorn_sup``| task-classifier cross-entropy                          | I(Z; M)            |
| ``corro``      | InfoNCE, negatives share (s, a); (r, s') from CVAE or noise | lower, I(Z;X_t|X_b) |
| ``supervised`` | none (encoder trained by the critic)                   | —                  |
| ``oracle``     | none, z = true task parameters                         | —                  |

CORRO's CVAE is trained by ``pretrain_loss`` in a separate parameter group during the first
``pretrain_steps`` updates (see the learner).

Loss conventions (each the official one by default; the other is a named option):

* ``unicorn_ss`` reconstruction: mbrl-lib's ``gaussian_nll`` as UNICORN's ``FOCALDecoder`` uses
  it, ``(mu - t)^2 exp(-lv) + lv`` with no 1/2, averaged over transitions and output dims
  (``cfg.decoder_nll="mbrl"``); ``"half"`` is the NLL in nats (the 1/2 included, no 2 pi), which
  halves the reconstruction against ``focal_weight`` and the log-variance-bound penalty.
* ``csro``'s q_psi NLL keeps CSRO's own convention, ``(z - mu)^2 / (2 var) + log sd`` averaged
  over codes and dims (``MoreanP/CSRO`` ``rlkit/torch/sac/sac.py:303``).
* ``corro``: positives are any transition of the anchor's task (``cfg.corro_positives="task"``,
  CORRO's ``sample_positive_pairs``); ``"context"`` pairs transitions of the same context (one
  trajectory in trajectory mode). The CVAE loss is ``mean-MSE(s') + mean-MSE(r) + 0.2 KL`` with
  each MSE over all its elements (``F.mse_loss``, ``train_generative_model.py:114-118``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jcomrl import mi
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.data.sampler import task_positives
from jcomrl.nets.decoders import ClubNet, TransitionCVAE, TransitionDecoder
from jcomrl.nets.encoders import context_feature_size, context_features, make_encoder
from jcomrl.nets.mlp import MLP
from jcomrl.types import MetaBatch, Transition


@dataclasses.dataclass(frozen=True)
class Representation:
  """The encoder side of a learner.

  Attributes:
    init: ``init(key) -> params`` of the encoder group (``{}`` for the oracle).
    encode: ``encode(params, context [..., K], task_params [..., P], key=None) -> z``; without
      a key stochastic encoders return their mean code.
    loss: the objective ``(params, MetaBatch, HParams, key) -> (loss, aux)`` or None.
    critic_mask: ``critic_mask(params) -> bool pytree``: which encoder leaves the critic loss
      trains (None when z is detached from the critic).
    pretrain_init / pretrain_loss: CORRO's CVAE (``(params, Transition [N], hp, key) ->
      (loss, metrics)``), or None.
  """

  init: Callable
  encode: Callable
  loss: Callable | None
  critic_mask: Callable | None
  pretrain_init: Callable | None
  pretrain_loss: Callable | None


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


def make_representation(cfg: LearnerConfig) -> Representation:
  """Builds the encoder, the objective's networks and its loss for ``cfg.representation``."""
  rep = cfg.representation
  if rep == "oracle":
    return Representation(init=lambda key: {},
                          encode=lambda params, context, task_params, key=None: task_params,
                          loss=None, critic_mask=None, pretrain_init=None, pretrain_loss=None)

  encoder = make_encoder(cfg.encoder, cfg.encoder_hidden, cfg.latent_size)
  feat_size = context_feature_size(cfg.obs_size, cfg.action_size, cfg.use_next_obs)
  obs0 = jnp.zeros((1, cfg.obs_size))
  act0 = jnp.zeros((1, cfg.action_size))
  z0 = jnp.zeros((1, cfg.latent_size))
  decoder = TransitionDecoder(cfg.aux_hidden, cfg.obs_size)
  club_net = ClubNet(cfg.aux_hidden, cfg.latent_size)
  classifier = MLP(cfg.aux_hidden, max(cfg.num_task_labels, 2))
  cvae = TransitionCVAE(cfg.aux_hidden, cfg.cvae_latent, cfg.obs_size)
  recon_nll = mbrl_gaussian_nll if cfg.decoder_nll == "mbrl" else gaussian_nll_per_dim

  def features(context: Transition):
    return context_features(context, cfg.use_next_obs)

  def init(key):
    ks = jax.random.split(key, 2)
    params = {"encoder": encoder.init(ks[0], jnp.zeros((1, cfg.context_size, feat_size)))}
    if rep == "csro":
      params["club"] = club_net.init(ks[1], obs0, act0)
    elif rep == "unicorn_ss":
      params["decoder"] = decoder.init(ks[1], z0, obs0, act0)
    elif rep == "unicorn_sup":
      params["classifier"] = classifier.init(ks[1], z0)
    return params

  def encode(params, context, task_params, key=None):
    del task_params
    return encoder.apply(params["encoder"], features(context), key)

  def embed(params, context, key=None):
    return encoder.apply(params["encoder"], features(context), key, method="embed")

  def focal_term(z, batch, hp):
    loss, metrics = mi.focal_metric_loss(z, batch.task_label)
    return hp.focal_weight * loss, metrics

  def focal(params, batch: MetaBatch, hp: HParams, key):
    z = encode(params, batch.context, batch.task_params, key)
    loss, metrics = focal_term(z, batch, hp)
    return loss, {"metrics": metrics, "z": z}

  def csro(params, batch: MetaBatch, hp: HParams, key):
    e = embed(params, batch.context, key)  # [B, K, Z] per-transition codes
    z = jnp.mean(e, axis=-2)
    loss, metrics = focal_term(z, batch, hp)
    mean, log_var = club_net.apply(params["club"], batch.context.obs, batch.context.action)
    # q_psi is fitted to the detached codes; the encoder minimises CLUB through z with q frozen.
    nll = gaussian_nll_per_dim(mean, log_var, jax.lax.stop_gradient(e))
    keys = jax.random.split(jax.random.fold_in(key, 7), e.shape[0])
    club = jnp.mean(jax.vmap(lambda e_, m_, lv_, k_: csro_club(e_, m_, lv_, cfg.upper_bound, k_))(
        e, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(log_var), keys))
    loss = loss + hp.club_weight * club + hp.club_model_weight * nll
    metrics.update({"rep/club": club, "rep/club_nll": nll})
    return loss, {"metrics": metrics, "z": z}

  def unicorn_ss(params, batch: MetaBatch, hp: HParams, key):
    ctx = batch.context
    z = encode(params, ctx, batch.task_params, key)
    loss, metrics = focal_term(z, batch, hp)
    # Reconstruct every context transition from the code of the context it belongs to.
    zt = jnp.broadcast_to(z[:, None, :], ctx.obs.shape[:-1] + z.shape[-1:])
    heads = decoder.apply(params["decoder"], zt, ctx.obs, ctx.action)
    (ms, lvs, pens), (mr, lvr, penr) = heads["state"], heads["reward"]
    nll_s = recon_nll(ms, lvs, ctx.next_obs - ctx.obs)
    nll_r = recon_nll(mr, lvr, ctx.reward[..., None])
    recon = nll_s + pens + nll_r + penr
    loss = loss + hp.decoder_weight * recon
    metrics.update({"rep/nll_state": nll_s, "rep/nll_reward": nll_r})
    return loss, {"metrics": metrics, "z": z}

  def unicorn_sup(params, batch: MetaBatch, hp: HParams, key):
    z = encode(params, batch.context, batch.task_params, key)
    logits = classifier.apply(params["classifier"], z)
    bound = mi.classification_bound(logits, batch.task_label)
    ce = jnp.log(float(logits.shape[-1])) - bound
    acc = jnp.mean(jnp.argmax(logits, -1) == batch.task_label)
    return hp.sup_weight * ce, {"metrics": {"rep/ce": ce, "rep/accuracy": acc,
                                            "rep/mi_bound": bound}, "z": z}

  def corro(params, batch: MetaBatch, hp: HParams, key, pretrain_params=None):
    ctx = batch.context
    k_perm, k_neg, k_z = jax.random.split(key, 3)
    b, k = ctx.reward.shape
    e = embed(params, ctx)  # [B, K, Z] anchors
    if cfg.corro_positives == "task":
      # Positive: a transition of the same task from any trajectory (CORRO), drawn from the
      # task's RL batch (uniform over its whole data, independent of the context).
      del k_perm
      pos = embed(params, task_positives(batch.rl, k))
    else:  # another transition of the same context (a random derangement)
      shift = jax.random.randint(k_perm, (), 1, k)
      pos = jnp.roll(e, shift, axis=1)
    m = cfg.corro_negatives
    tile = lambda x: jnp.broadcast_to(x[:, :, None], (b, k, m) + x.shape[2:])
    if cfg.corro_negative_source == "cvae":
      next_obs, reward = cvae.apply(pretrain_params, tile(ctx.obs), tile(ctx.action), k_neg,
                                    method="generate")
    else:  # reward randomisation: keep s', perturb r
      next_obs = tile(ctx.next_obs)
      reward = tile(ctx.reward) + hp.corro_reward_noise * jax.random.normal(k_neg, (b, k, m))
    neg_ctx = Transition(obs=tile(ctx.obs), action=tile(ctx.action),
                         reward=jax.lax.stop_gradient(reward),
                         next_obs=jax.lax.stop_gradient(next_obs),
                         terminal=tile(ctx.terminal), timeout=tile(ctx.timeout))
    neg = embed(params, neg_ctx)  # [B, K, M, Z]
    bound = corro_infonce(e.reshape(b * k, -1), pos.reshape(b * k, -1),
                          neg.reshape(b * k, m, -1), hp.corro_temperature,
                          bound=cfg.contrastive_bound, alpha=cfg.contrastive_alpha)
    z = encode(params, ctx, batch.task_params, k_z)
    return -hp.corro_weight * bound, {"metrics": {f"rep/{cfg.contrastive_bound}": bound},
                                      "z": z}

  def cvae_loss(pretrain_params, rl: Transition, hp: HParams, key):
    next_hat, r_hat, mu, log_var = cvae.apply(pretrain_params, rl.obs, rl.action, rl.reward,
                                              rl.next_obs, key)
    # CORRO: F.mse_loss on s' and on r, each a mean over all its elements, + beta * KL.
    mse_s = jnp.mean((next_hat - rl.next_obs) ** 2)
    mse_r = jnp.mean((r_hat - rl.reward) ** 2)
    kl = jnp.mean(0.5 * jnp.sum(jnp.exp(log_var) + mu ** 2 - 1.0 - log_var, axis=-1))
    loss = mse_s + mse_r + hp.cvae_kl_weight * kl
    return loss, {"cvae/loss": loss, "cvae/mse_next_obs": mse_s, "cvae/mse_reward": mse_r,
                  "cvae/kl": kl}

  losses = {"focal": focal, "csro": csro, "unicorn_ss": unicorn_ss, "unicorn_sup": unicorn_sup,
            "corro": corro, "supervised": None}
  if rep not in losses:
    raise ValueError(f"no objective for {rep!r}")

  critic_mask = None
  if rep == "supervised":
    critic_mask = lambda params: jax.tree.map(lambda _: True, params)
  elif rep == "corro":
    def critic_mask(params):
      mask = jax.tree.map(lambda _: False, params)
      mask["encoder"]["params"]["pool"] = jax.tree.map(
          lambda _: True, params["encoder"]["params"]["pool"])
      return mask

  pretrain_init = pretrain_loss = None
  if cfg.uses_cvae:
    pretrain_init = lambda key: cvae.init(key, obs0, act0, jnp.zeros((1,)), obs0, key)
    pretrain_loss = cvae_loss
  return Representation(init=init, encode=encode, loss=losses[rep], critic_mask=critic_mask,
                        pretrain_init=pretrain_init, pretrain_loss=pretrain_loss)


def z_spread(z: jnp.ndarray) -> jnp.ndarray:
  """Mean per-dimension standard deviation of a batch of codes (a collapse diagnostic)."""
  return jnp.mean(jnp.std(z, axis=0))
