"""Representation objectives: the loss that trains the context encoder.

Every objective is a pure function ``(encoder_params, batch, key) -> (loss, aux)`` where ``aux``
holds ``metrics`` (a dict of scalars) and ``z`` (the ``[B, Z]`` task codes it computed, which the
learner passes, detached, to the RL backbone). UNICORN's view (DESIGN.md §4): the objectives
differ only in which bound on I(Z; M) they optimise.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from jcomrl import mi
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.nets.encoders import MeanTanhEncoder, context_features
from jcomrl.types import MetaBatch


def make_encoder(cfg: LearnerConfig) -> MeanTanhEncoder:
  return MeanTanhEncoder(hidden_sizes=cfg.encoder_hidden, latent_size=cfg.latent_size)


def make_encode_fn(cfg: LearnerConfig) -> Callable:
  """``encode(encoder_params, context [..., K] Transition, task_params [..., P]) -> z``."""
  if cfg.representation == "oracle":
    return lambda params, context, task_params: task_params
  encoder = make_encoder(cfg)

  def encode(params, context, task_params):
    del task_params
    return encoder.apply(params, context_features(context, cfg.use_next_obs))

  return encode


def make_objective(cfg: LearnerConfig) -> Callable | None:
  """The representation loss for ``cfg.representation`` (None when there is no encoder)."""
  encode = make_encode_fn(cfg)
  if cfg.representation == "oracle":
    return None
  if cfg.representation == "focal":

    def focal(params, batch: MetaBatch, hp: HParams, key):
      del key
      z = encode(params, batch.context, batch.task_params)
      loss, metrics = mi.focal_metric_loss(z, batch.task_label)
      return hp.focal_weight * loss, {"metrics": metrics, "z": z}

    return focal
  raise ValueError(f"no objective for {cfg.representation!r}")


def z_spread(z: jnp.ndarray) -> jnp.ndarray:
  """Mean per-dimension standard deviation of a batch of codes (a collapse diagnostic)."""
  return jnp.mean(jnp.std(z, axis=0))
