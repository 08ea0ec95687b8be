"""A plain multi-layer perceptron used by every network in jcomrl."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """``hidden_sizes`` dense layers with ``activation``, then a linear layer of ``output_size``.

  Attributes:
    hidden_sizes: widths of the hidden layers.
    output_size: width of the output layer.
    activation: hidden nonlinearity.
    final_scale: if set, the output layer is initialised uniformly in +-final_scale (the
      rlkit/SAC convention for value and policy heads); otherwise lecun-normal.
  """

  hidden_sizes: Sequence[int]
  output_size: int
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
  final_scale: float | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for width in self.hidden_sizes:
      x = self.activation(nn.Dense(width)(x))
    if self.final_scale is None:
      kernel_init = nn.initializers.lecun_normal()
    else:
      s = self.final_scale
      kernel_init = lambda key, shape, dtype=jnp.float32: nn.initializers.uniform(2 * s)(
          key, shape, dtype) - s
    return nn.Dense(self.output_size, kernel_init=kernel_init)(x)
