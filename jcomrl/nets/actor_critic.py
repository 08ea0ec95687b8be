"""Policy and critics for the offline actor-critic backbones, conditioned on a task code z."""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcomrl.nets.mlp import MLP

# A Python float, not jnp.log(2.0): importing jcomrl must not start a JAX backend (a
# multi-process run calls jax.distributed.initialize after the imports). Same float32 value.
_LOG2 = math.log(2.0)


class TanhGaussianPolicy(nn.Module):
  """pi(a | s, z): a Gaussian squashed by tanh into [-1, 1]^A.

  ``__call__(obs, z)`` returns ``(mean, log_std)`` of the pre-tanh Gaussian, ``log_std`` clipped
  to ``[log_std_min, log_std_max]`` (FOCAL/CSRO use max 0, UNICORN/CORRO 2).
  ``log_std_affine``: ``log_std = m * raw + o`` with learnable scalars ``m``, ``o`` initialised
  at 1 and -1 before the clip, and ``mean_clip > 0`` clips the mean to ``+-mean_clip``: the
  JaxCQL / MISA policy (sail-sg/MISA ``algos/model.py:188-198``, clip [-5, 2], mean +-9).
  """

  hidden_sizes: Sequence[int]
  action_size: int
  log_std_min: float = -20.0
  log_std_max: float = 2.0
  log_std_affine: bool = False
  mean_clip: float = 0.0
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS

  @nn.compact
  def __call__(self, obs: jnp.ndarray, z: jnp.ndarray):
    out = MLP(self.hidden_sizes, 2 * self.action_size, final_scale=1e-3, init_scheme=self.init_scheme)(
        jnp.concatenate([obs, z], axis=-1))
    mean, log_std = jnp.split(out, 2, axis=-1)
    if self.mean_clip > 0:
      mean = jnp.clip(mean, -self.mean_clip, self.mean_clip)
    if self.log_std_affine:
      scale = self.param("log_std_multiplier", nn.initializers.constant(1.0), ())
      offset = self.param("log_std_offset", nn.initializers.constant(-1.0), ())
      log_std = scale * log_std + offset
    return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def tanh_gaussian_sample(key: jax.Array, mean: jnp.ndarray, log_std: jnp.ndarray):
  """Reparameterised sample ``a = tanh(u)`` and its log-density ``log pi(a)`` (summed over A)."""
  u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
  return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


def tanh_gaussian_action_log_prob(action, mean, log_std, clip: float):
  """log-density of a given squashed ``action`` (e.g. a dataset's), clipped to ``+-clip`` so
  that ``u = atanh(a)`` stays finite (MISA clips data actions at 0.999)."""
  return tanh_gaussian_log_prob(jnp.arctanh(jnp.clip(action, -clip, clip)), mean, log_std)


def tanh_gaussian_log_prob(u, mean, log_std):
  """log-density of ``tanh(u)`` where ``u ~ N(mean, exp(log_std)^2)``; stable tanh Jacobian."""
  gauss = -0.5 * ((u - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
  log_det = 2.0 * (_LOG2 - u - jax.nn.softplus(-2.0 * u))
  return jnp.sum(gauss - log_det, axis=-1)


ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu}


def _head(init: str) -> dict:
  """MLP settings of a scalar head: rlkit's ``FlattenMlp`` output layer is ``U(+-3e-3)``
  (``init_w=3e-3``, UNICORN torchkit/networks.py:24,60-62); lecun-normal keeps flax's."""
  return {"init_scheme": init, "final_scale": 3e-3 if init == "rlkit" else None}


class DoubleCritic(nn.Module):
  """``num_critics`` independent Q(s, z, a) heads (vmapped ensemble); output ``[num_critics, ...]``
  for inputs of any leading shape."""

  hidden_sizes: Sequence[int]
  num_critics: int = 2
  activation: str = "relu"
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS

  @nn.compact
  def __call__(self, obs, z, action):
    x = jnp.concatenate([obs, z, action], axis=-1)
    ensemble = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True},
                       in_axes=None, out_axes=0, axis_size=self.num_critics)
    return ensemble(self.hidden_sizes, 1, activation=ACTIVATIONS[self.activation],
                    final_scale=3e-3, init_scheme=self.init_scheme)(x)[..., 0]


class StateValue(nn.Module):
  """A state value V(s, z) (IQL's expectile value)."""

  hidden_sizes: Sequence[int]
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS

  @nn.compact
  def __call__(self, obs, z):
    return MLP(self.hidden_sizes, 1, **_head(self.init_scheme))(
        jnp.concatenate([obs, z], axis=-1))[..., 0]


class StateActionCritic(nn.Module):
  """A scalar critic c(s, z, a), e.g. BRAC's dual critic for the KL divergence."""

  hidden_sizes: Sequence[int]
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS

  @nn.compact
  def __call__(self, obs, z, action):
    x = jnp.concatenate([obs, z, action], axis=-1)
    return MLP(self.hidden_sizes, 1, **_head(self.init_scheme))(x)[..., 0]
