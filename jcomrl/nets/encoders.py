"""Context encoders: a set of transitions of one task -> a task code z."""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jcomrl.nets.mlp import MLP
from jcomrl.types import Transition


def context_features(context: Transition, use_next_obs: bool) -> jnp.ndarray:
  """Per-transition encoder input ``[..., F]``: (s, a, r) or (s, a, r, s')."""
  parts = [context.obs, context.action, context.reward[..., None]]
  if use_next_obs:
    parts.append(context.next_obs)
  return jnp.concatenate(parts, axis=-1)


def context_feature_size(obs_dim: int, act_dim: int, use_next_obs: bool) -> int:
  return obs_dim + act_dim + 1 + (obs_dim if use_next_obs else 0)


class MeanTanhEncoder(nn.Module):
  """FOCAL/CSRO's deterministic encoder: per-transition MLP -> tanh -> mean over the context.

  Input ``[..., K, F]`` context features; output ``[..., latent_size]``.
  """

  hidden_sizes: Sequence[int]
  latent_size: int

  @nn.compact
  def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
    chex.assert_rank(features, {2, 3})
    per_transition = jnp.tanh(MLP(self.hidden_sizes, self.latent_size)(features))
    return jnp.mean(per_transition, axis=-2)
