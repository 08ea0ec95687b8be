"""Critics ``f(x, y)`` for the contrastive MI bounds of :mod:`jcomrl.mi.lower`.

Both critics return the score matrix ``scores[i, j] = f(x_i, y_j)`` (rows index ``x``, columns
``y``, positives on the diagonal) from ``__call__(x, y)``, and elementwise scores of already
paired, broadcastable inputs from ``pair_scores(x, y)`` (e.g. ``x[:, None]`` against explicit
negatives ``y`` of shape ``[K, M, dy]``).

* :class:`SeparableCritic`: ``f(x, y) = <g(x), h(y)> / temperature`` with two MLP embeddings
  (optionally L2-normalised, i.e. cosine similarity). ``2K`` network evaluations for ``K^2``
  scores; the usual choice for representation learning (CPC, CORRO, SimCLR).
* :class:`ConcatCritic`: ``f(x, y) = MLP([x, y])``. More expressive (generally more accurate MI
  estimates at the same width) but ``K^2`` evaluations. All pairs are computed at once by
  broadcasting: the first layer on ``[x, y]`` is split as ``W_x x + W_y y + b``, so ``x`` and
  ``y`` are projected once each (``O(K)``) and only the sum is formed for the ``K^2`` pairs;
  the remaining layers act on the last axis of the ``[K, K, H]`` tensor, which is exactly what
  ``vmap`` over pairs would compute. No Python loops.

Reference: Poole et al., "On Variational Bounds of Mutual Information", ICML 2019 (separable vs
concatenated critics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jcomrl.nets.mlp import MLP


def _l2_normalize(v: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  # rsqrt(|v|^2 + eps) keeps the gradient finite at v = 0 (jnp.linalg.norm's is not).
  return v * jnp.reciprocal(jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps))


class SeparableCritic(nn.Module):
  """``f(x, y) = <g(x), h(y)> / temperature`` with MLP embeddings ``g`` and ``h``.

  Attributes:
    hidden_sizes: hidden widths of both embedding MLPs.
    embed_dim: embedding width.
    activation: hidden nonlinearity.
    temperature: divides the dot product (initial value if ``learn_temperature``).
    normalize: L2-normalise both embeddings (cosine similarity; scores in
      ``[-1/temperature, 1/temperature]``).
    learn_temperature: learn ``log(temperature)`` as a parameter.
  """

  hidden_sizes: Sequence[int]
  embed_dim: int
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
  temperature: float = 1.0
  normalize: bool = False
  learn_temperature: bool = False

  def setup(self):
    self.g = MLP(self.hidden_sizes, self.embed_dim, self.activation)
    self.h = MLP(self.hidden_sizes, self.embed_dim, self.activation)
    if self.learn_temperature:
      self.log_temperature = self.param(
          "log_temperature", lambda _: jnp.asarray(math.log(self.temperature), jnp.float32))

  def _inv_temperature(self) -> jnp.ndarray | float:
    if self.learn_temperature:
      return jnp.exp(-self.log_temperature)
    return 1.0 / self.temperature

  def embed(self, x: jnp.ndarray, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Embeddings ``(g(x), h(y))``, L2-normalised if ``normalize``."""
    gx, hy = self.g(x), self.h(y)
    if self.normalize:
      gx, hy = _l2_normalize(gx), _l2_normalize(hy)
    return gx, hy

  def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """All-pairs scores ``[Kx, Ky]`` for ``x`` of shape ``[Kx, dx]`` and ``y`` of ``[Ky, dy]``."""
    chex.assert_rank([x, y], 2)
    gx, hy = self.embed(x, y)
    return (gx @ hy.T) * self._inv_temperature()

  def pair_scores(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Elementwise scores ``f(x[..., :], y[..., :])`` over broadcast leading axes."""
    gx, hy = self.embed(x, y)
    return jnp.sum(gx * hy, axis=-1) * self._inv_temperature()


class ConcatCritic(nn.Module):
  """``f(x, y) = MLP([x, y])``, evaluated for all ``K^2`` pairs without loops.

  Attributes:
    hidden_sizes: hidden widths (at least one layer; the first is split into ``W_x x + W_y y``).
    activation: hidden nonlinearity.
  """

  hidden_sizes: Sequence[int]
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu

  def setup(self):
    if len(self.hidden_sizes) < 1:
      raise ValueError("ConcatCritic needs at least one hidden layer")
    width = self.hidden_sizes[0]
    self.first_x = nn.Dense(width)
    self.first_y = nn.Dense(width, use_bias=False)
    self.rest = MLP(tuple(self.hidden_sizes[1:]), 1, self.activation)

  def _head(self, pre: jnp.ndarray) -> jnp.ndarray:
    return self.rest(self.activation(pre))[..., 0]

  def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """All-pairs scores ``[Kx, Ky]`` for ``x`` of shape ``[Kx, dx]`` and ``y`` of ``[Ky, dy]``."""
    chex.assert_rank([x, y], 2)
    return self._head(self.first_x(x)[:, None, :] + self.first_y(y)[None, :, :])

  def pair_scores(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Elementwise scores ``f(x[..., :], y[..., :])`` over broadcast leading axes."""
    return self._head(self.first_x(x) + self.first_y(y))
