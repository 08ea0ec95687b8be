"""Auxiliary networks of the representation objectives: decoders, classifiers, CLUB's q, CVAE.

* ``GaussianMLP`` / ``TransitionDecoder``: UNICORN-SS's reconstruction of (delta s, r) from
  (z, s, a), a diagonal Gaussian with learned soft log-variance bounds (mbrl-lib's GaussianMLP).
* ``ClubNet``: CSRO's variational q_psi(z | s, a).
* ``TransitionCVAE``: CORRO's negative generator, (s', r) given (s, a) through a latent u.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcomrl import mi
from jcomrl.nets.mlp import MLP


class GaussianMLP(nn.Module):
  """x -> (mean, log_var) of a diagonal Gaussian over ``output_size`` dims.

  The raw log-variance is soft-clamped between learned bounds initialised at
  ``[min_log_var_init, max_log_var_init]`` ([-10, 0.5] in mbrl-lib, which UNICORN uses);
  ``bounds_penalty`` is the 0.01 * (sum max - sum min) term that keeps the bounds tight.
  Returns ``(mean, log_var, bounds_penalty)``.
  """

  hidden_sizes: Sequence[int]
  output_size: int
  min_log_var_init: float = -10.0
  max_log_var_init: float = 0.5
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS ("mbrl": mbrl-lib's own)

  @nn.compact
  def __call__(self, x):
    out = MLP(self.hidden_sizes, 2 * self.output_size, init_scheme=self.init_scheme)(x)
    mean, raw = jnp.split(out, 2, axis=-1)
    lo = self.param("min_log_var", nn.initializers.constant(self.min_log_var_init),
                    (self.output_size,))
    hi = self.param("max_log_var", nn.initializers.constant(self.max_log_var_init),
                    (self.output_size,))
    log_var = mi.soft_clamp_log_var(raw, lo, hi)
    return mean, log_var, mi.log_var_bounds_penalty(lo, hi)


class TransitionDecoder(nn.Module):
  """UNICORN-SS's decoder: two independent Gaussian heads on concat(z, s, a).

  ``__call__(z, obs, action)`` returns ``{"state": (mean, log_var, pen), "reward": (...)}`` where
  the state head predicts ``delta s = s' - s`` and the reward head ``r`` (shape ``[..., 1]``).
  """

  hidden_sizes: Sequence[int]
  obs_size: int
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS ("mbrl": UNICORN's mbrl decoder)

  @nn.compact
  def __call__(self, z, obs, action):
    x = jnp.concatenate([z, obs, action], axis=-1)
    return {"state": GaussianMLP(self.hidden_sizes, self.obs_size, name="state",
                                 init_scheme=self.init_scheme)(x),
            "reward": GaussianMLP(self.hidden_sizes, 1, name="reward",
                                  init_scheme=self.init_scheme)(x)}


class ClubNet(nn.Module):
  """CSRO's q_psi(z | s, a): MLP -> tanh on 2*latent outputs; mean = first half,
  variance = softplus(second half) (so the variance lies in (0.31, 1.31), as in the code).

  Returns ``(mean, log_var)``.
  """

  hidden_sizes: Sequence[int]
  latent_size: int

  @nn.compact
  def __call__(self, obs, action):
    out = jnp.tanh(MLP(self.hidden_sizes, 2 * self.latent_size)(
        jnp.concatenate([obs, action], axis=-1)))
    mean, raw = jnp.split(out, 2, axis=-1)
    return mean, jnp.log(jax.nn.softplus(raw))


class TransitionCVAE(nn.Module):
  """CORRO's negative generator: a conditional VAE over (s', r) given (s, a).

  ``__call__(obs, action, reward, next_obs, key)`` returns ``(next_obs_hat, reward_hat, mu,
  log_var)`` for the training loss; ``generate(obs, action, key)`` decodes ``u ~ N(0, I)``.
  """

  hidden_sizes: Sequence[int]
  latent_size: int
  obs_size: int

  def setup(self):
    self.enc = MLP(self.hidden_sizes, 2 * self.latent_size)
    self.dec = MLP(self.hidden_sizes, self.obs_size + 1)

  def _decode(self, obs, action, u):
    out = self.dec(jnp.concatenate([obs, action, u], axis=-1))
    return out[..., :self.obs_size], out[..., self.obs_size]

  def __call__(self, obs, action, reward, next_obs, key):
    h = self.enc(jnp.concatenate([obs, action, reward[..., None], next_obs], axis=-1))
    mu, log_var = jnp.split(h, 2, axis=-1)
    u = mu + jnp.exp(0.5 * log_var) * jax.random.normal(key, mu.shape)
    next_hat, r_hat = self._decode(obs, action, u)
    return next_hat, r_hat, mu, log_var

  def generate(self, obs, action, key):
    u = jax.random.normal(key, obs.shape[:-1] + (self.latent_size,))
    return self._decode(obs, action, u)
