"""A plain multi-layer perceptron used by every network in jcomrl.

Initialisation schemes (``MLP.init_scheme``):

* ``"lecun_normal"``: flax's default: truncated-normal hidden kernels of variance ``1/fan_in``,
  zero biases.
* ``"rlkit"``: the PyTorch codes of the COMRL lineage (rlkit's ``torchkit``, copied by FOCAL,
  CSRO, CORRO and UNICORN: UNICORN ``torchkit/networks.py:47-52``, ``pytorch_utils.py:40-49``):
  hidden kernels ``U(-1/sqrt(n), 1/sqrt(n))`` with ``n = size[0]`` of the torch weight, which is
  ``[out, in]``, so ``n`` is the layer's *output* width (a quirk of ``fanin_init``, kept as it
  is), and hidden biases 0.1. The output layer is ``U(+-final_scale)`` for kernel *and* bias
  (``networks.py:60-62``) when ``final_scale`` is set, else PyTorch's ``nn.Linear`` default
  (``U(+-1/sqrt(in))`` for both).
"""

from __future__ import annotations

from typing import Callable, Sequence

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

INITS = ("lecun_normal", "rlkit", "mbrl")
# rlkit's hidden-layer bias (torchkit/networks.py:27, ``b_init_value=0.1``).
RLKIT_HIDDEN_BIAS = 0.1


def _uniform(bound: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def _mbrl(fan_in: int):
  # flax's truncated_normal(stddev) draws N(0, stddev^2) truncated to +-2 stddev, as mbrl does
  return nn.initializers.truncated_normal(stddev=1.0 / (2.0 * math.sqrt(fan_in)))


def check_init(init: str) -> str:
  if init not in INITS:
    raise ValueError(f"unknown network init {init!r}; choose from {INITS}")
  return init


class MLP(nn.Module):
  """``hidden_sizes`` dense layers with ``activation``, then a linear layer of ``output_size``.

  Attributes:
    hidden_sizes: widths of the hidden layers.
    output_size: width of the output layer.
    activation: hidden nonlinearity.
    final_scale: if set, the output layer is initialised uniformly in +-final_scale (the
      rlkit/SAC convention for value and policy heads; with ``init_scheme="rlkit"`` its bias too);
      otherwise the scheme's default output layer.
    init_scheme: ``"lecun_normal"`` (default) or ``"rlkit"`` (see the module docstring).
  """

  hidden_sizes: Sequence[int]
  output_size: int
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
  final_scale: float | None = None
  init_scheme: str = "lecun_normal"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    rlkit = check_init(self.init_scheme) == "rlkit"
    if self.init_scheme == "mbrl":
      for width in self.hidden_sizes:
        x = self.activation(nn.Dense(width, kernel_init=_mbrl(x.shape[-1]))(x))
      return nn.Dense(self.output_size, kernel_init=_mbrl(x.shape[-1]))(x)
    for width in self.hidden_sizes:
      if rlkit:
        dense = nn.Dense(width, kernel_init=_uniform(1.0 / math.sqrt(width)),
                         bias_init=nn.initializers.constant(RLKIT_HIDDEN_BIAS))
      else:
        dense = nn.Dense(width)
      x = self.activation(dense(x))
    bias_init = nn.initializers.zeros
    if self.final_scale is not None:
      s = self.final_scale
      kernel_init = lambda key, shape, dtype=jnp.float32: nn.initializers.uniform(2 * s)(
          key, shape, dtype) - s
      if rlkit:
        bias_init = _uniform(s)
    elif rlkit:  # torch nn.Linear's own default: U(+-1/sqrt(in)) for kernel and bias
      kernel_init = bias_init = _uniform(1.0 / math.sqrt(x.shape[-1]))
    else:
      kernel_init = nn.initializers.lecun_normal()
    return nn.Dense(self.output_size, kernel_init=kernel_init, bias_init=bias_init)(x)
