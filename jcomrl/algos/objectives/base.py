"""The representation-objective interface, its registry, and their composition into the encoder
side of a learner.

An objective is one file under ``jcomrl/algos/objectives/`` holding a registered
:class:`Objective` subclass: its own networks' init, its loss on a meta-batch given the shared
code ``z``, an optional pretrain stage, and whether the critic loss also trains the encoder
(``critic_trains``; the encoder itself says which of its leaves, see
:func:`jcomrl.nets.encoders.critic_trainable_mask`). ``make_representation(cfg)`` builds the
objective ``cfg.representation`` plus the weighted terms of ``cfg.extra_objectives``
(``"name:weight,..."``) around one shared context encoder: the loss is the primary objective's
plus each ``weight * term``, every term seeing the same code (UNICORN-SS is the reconstruction
term plus the FOCAL term, and e.g. ``focal`` + ``corro:0.5`` is FOCAL with an InfoNCE term).
The encoder group's parameters are ``{"encoder": ..., <each term's networks>}`` under one
optimiser, as in the official codes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp

from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.settings import declare, parse_terms  # noqa: F401 (parse_terms re-exported)
from jcomrl.nets.encoders import (
  context_feature_size,
  context_features,
  critic_trainable_mask,
  make_encoder,
)
from jcomrl.types import MetaBatch, Transition

OBJECTIVES: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
  """Class decorator: makes ``cls`` selectable as ``LearnerConfig.representation = cls.name``
  (and as a term of ``extra_objectives``), with its ``Settings`` as ``learner.<name>.*`` and its
  ``Hyper`` as ``hparams.<name>.*``."""
  declare(cls.name, cls)
  OBJECTIVES[cls.name] = cls
  return cls


class ContextEncoder:
  """The context encoder shared by an objective's terms (``cfg.encoder`` of
  :data:`jcomrl.nets.encoders.ENCODERS`)."""

  def __init__(self, cfg: LearnerConfig):
    self.cfg = cfg
    self.module = make_encoder(cfg.encoder, cfg.encoder_hidden, cfg.latent_size, cfg.net_init)
    self.feature_size = context_feature_size(cfg.obs_size, cfg.action_size, cfg.use_next_obs)

  def init(self, key):
    return self.module.init(key, jnp.zeros((1, self.cfg.context_size, self.feature_size)))

  def features(self, context: Transition):
    return context_features(context, self.cfg.use_next_obs)

  def encode(self, params: dict, context: Transition, key=None):
    """The code ``[..., Z]`` from the encoder group ``params`` (mean code without a key)."""
    return self.module.apply(params["encoder"], self.features(context), key)

  def embed(self, params: dict, context: Transition, key=None):
    """Per-transition codes ``[..., K, Z]``."""
    return self.module.apply(params["encoder"], self.features(context), key, method="embed")

  def embed_and_encode(self, params: dict, context: Transition, key=None):
    """``(embeddings [..., K, Z], z [..., Z])`` from one encoder pass; ``z`` equals
    :meth:`encode`'s with the same key."""
    e = self.embed(params, context, key)
    if not hasattr(self.module, "pool_embeddings"):  # a code the embeddings alone do not give
      return e, self.encode(params, context, key)  # (pearl's precision-weighted product)
    return e, self.module.apply(params["encoder"], e, method="pool_embeddings")

  def posterior(self, params: dict, context: Transition):
    """``(mean, log_var)`` ``[..., K, Z]`` of a Gaussian encoder
    (:data:`jcomrl.nets.encoders.GAUSSIAN_ENCODERS`; ``pearl``: ``[..., 1, Z]``, the one
    product posterior of the context)."""
    return self.module.apply(params["encoder"], self.features(context), method="posterior")

  def critic_mask(self, params: dict) -> dict:
    return critic_trainable_mask(self.module, params["encoder"])


class Objective:
  """A representation objective. Subclasses set ``name`` and override what they use.

  Attributes:
    name: registry name.
    critic_trains: ``None`` (z reaches the critic detached), ``"all"`` (the critic loss trains
      every encoder leaf: the end-to-end baseline) or ``"encoder"`` (the leaves the encoder
      offers, ``critic_trainable_mask``: CORRO's attention pooling).
    uses_encoder: False when z is not computed by the context encoder (the oracle).
  """

  name: ClassVar[str]
  # The objective's static settings (a frozen jcomrl.algos.settings.Settings dataclass: its
  # subtree learner.<name>.*, read as ``self.settings`` or ``cls.settings_of(cfg)``) and traced
  # hyper-parameters (a jcomrl.algos.settings.hyper class: hparams.<name>.*, read as
  # ``self.hyper(hp)``); None: none.
  Settings: ClassVar[type | None] = None
  Hyper: ClassVar[type | None] = None
  critic_trains: ClassVar[str | None] = None
  uses_encoder: ClassVar[bool] = True
  # True: ``loss`` also takes ``embed=``, the per-transition embeddings ``[B, K, Z]`` of the
  # context that z was pooled from (same key), so the encoder runs once (CSRO's CLUB term).
  uses_embeddings: ClassVar[bool] = False

  def __init__(self, cfg: LearnerConfig, encoder: ContextEncoder | None):
    self.cfg = cfg
    self.encoder = encoder
    self.settings = self.settings_of(cfg)

  @classmethod
  def settings_of(cls, cfg: LearnerConfig):
    """This objective's settings in ``cfg`` (None when it declares none)."""
    return cfg.settings(cls.name) if cls.Settings is not None else None

  def hyper(self, hp: HParams):
    """This objective's hyper-parameters in ``hp`` (its ``Hyper``, ``hparams.<name>.*``)."""
    return hp.of(self.name)

  @classmethod
  def validate(cls, cfg: LearnerConfig) -> None:
    """Raises ValueError for settings this objective cannot train with."""

  @classmethod
  def code_size(cls, cfg: LearnerConfig) -> int:
    """The size of z: the encoder's latent, or the task parameters' without an encoder."""
    return cfg.latent_size if cls.uses_encoder else cfg.task_param_size

  # True when z is a Prompt-DT prompt (a flattened trajectory window), read by sequence backbones.
  code_is_prompt: ClassVar[bool] = False

  def code(self, context: Transition, task_params, key=None):
    """z of an objective without an encoder, from the context (the oracle ignores it)."""
    del context, key
    return self.code_without_encoder(task_params)

  @staticmethod
  def code_without_encoder(task_params):
    """z of an objective without an encoder (``uses_encoder = False``): the true task
    parameters (the oracle)."""
    return task_params

  @classmethod
  def has_pretrain(cls, cfg: LearnerConfig) -> bool:
    """Whether this objective has a pretrain stage under ``cfg`` (CORRO's CVAE)."""
    del cfg
    return False

  def init(self, key) -> dict:
    """The objective's own networks, a dict merged into the encoder group."""
    del key
    return {}

  def loss(self, params: dict, batch: MetaBatch, hp: HParams, key, z, pretrain_params=None):
    """``(loss, metrics)`` given the encoder group ``params`` and the shared code ``z [B, Z]``
    (computed from ``params`` with ``key``). Objectives without a loss of their own set
    ``has_loss = False`` and are never asked."""
    raise NotImplementedError

  has_loss: ClassVar[bool] = True

  # Only objectives whose ``has_pretrain`` is true are asked for these (CORRO's CVAE).

  def pretrain_init(self, key):
    raise NotImplementedError

  def pretrain_loss(self, params, rl: Transition, hp: HParams, key):
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Representation:
  """The encoder side of a learner.

  Attributes:
    init: ``init(key) -> params`` of the encoder group (``{}`` for the oracle).
    encode: ``encode(params, context [..., K], task_params [..., P], key=None) -> z``; without
      a key stochastic encoders return their mean code.
    loss: ``(params, MetaBatch, HParams, key, pretrain_params=None) -> (loss, {"metrics": ...,
      "z": [B, Z]})`` or None.
    critic_mask: ``critic_mask(params) -> bool pytree``: which encoder-group leaves the critic
      loss trains (None when z is detached from the critic).
    pretrain_init / pretrain_loss: the primary objective's pretrain stage
      (``(params, Transition [N], hp, key) -> (loss, metrics)``), or None.
  """

  init: Callable
  encode: Callable
  loss: Callable | None
  critic_mask: Callable | None
  pretrain_init: Callable | None
  pretrain_loss: Callable | None


def code_size(cfg: LearnerConfig) -> int:
  """The size of z under ``cfg``: its representation objective's ``code_size``."""
  return OBJECTIVES[cfg.representation].code_size(cfg)


def _mask(params: dict, objective: Objective, encoder: ContextEncoder) -> dict:
  mask = jax.tree.map(lambda _: objective.critic_trains == "all", params)
  if objective.critic_trains == "encoder":
    mask["encoder"] = encoder.critic_mask(params)
  return mask


def make_representation(cfg: LearnerConfig) -> Representation:
  """Builds the encoder, the objective's (and extra terms') networks and the summed loss."""
  primary_cls = OBJECTIVES[cfg.representation]
  if not primary_cls.uses_encoder:
    code = primary_cls(cfg, None).code
    return Representation(init=lambda key: {},
                          encode=lambda params, context, task_params, key=None: code(
                              context, task_params, key),
                          loss=None, critic_mask=None, pretrain_init=None, pretrain_loss=None)
  encoder = ContextEncoder(cfg)
  primary = primary_cls(cfg, encoder)
  extras = [(OBJECTIVES[name](cfg, encoder), w) for name, w in parse_terms(cfg.extra_objectives)]
  terms = ([(primary, None)] if primary.has_loss else []) + extras

  def init(key):
    k_enc, k_own = jax.random.split(key, 2)
    params = {"encoder": encoder.init(k_enc)}
    for i, (term, _) in enumerate([(primary, None)] + extras):
      own = term.init(k_own if i == 0 else jax.random.fold_in(k_own, i))
      clash = set(own) & set(params)
      if clash:
        raise ValueError(f"objective term {term.name!r} reuses network names {sorted(clash)}")
      params.update(own)
    return params

  def encode(params, context, task_params, key=None):
    del task_params
    return encoder.encode(params, context, key)

  shared_embed = any(term.uses_embeddings for term, _ in terms)

  def loss(params, batch: MetaBatch, hp: HParams, key, pretrain_params=None):
    if shared_embed:
      e, z = encoder.embed_and_encode(params, batch.context, key)
    else:
      z = encoder.encode(params, batch.context, key)
    total, metrics = None, {}
    for term, weight in terms:
      extra = {"embed": e} if term.uses_embeddings else {}
      value, m = term.loss(params, batch, hp, key, z, pretrain_params, **extra)
      if weight is None:
        metrics.update(m)
      else:  # an extra term: static weight, metrics under its name
        value = value if weight == 1.0 else weight * value
        metrics.update({f"{term.name}/{k}": v for k, v in m.items()})
      total = value if total is None else total + value
    return total, {"metrics": metrics, "z": z}

  has_pretrain = primary_cls.has_pretrain(cfg)
  return Representation(
      init=init, encode=encode, loss=loss if terms else None,
      critic_mask=(None if primary.critic_trains is None
                   else lambda params: _mask(params, primary, encoder)),
      pretrain_init=primary.pretrain_init if has_pretrain else None,
      pretrain_loss=primary.pretrain_loss if has_pretrain else None)


def z_spread(z: jnp.ndarray) -> jnp.ndarray:
  """Mean per-dimension standard deviation of a batch of codes (a collapse diagnostic; 0 for
  an empty code)."""
  return jnp.mean(jnp.std(z, axis=0)) if z.shape[-1] else jnp.zeros(())
