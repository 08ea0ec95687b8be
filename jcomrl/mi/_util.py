"""Shared shape checks and masks of the MI bounds (private)."""

from __future__ import annotations

import chex
import jax.numpy as jnp


def check_square(matrix: jnp.ndarray, what: str) -> int:
  """Checks that ``matrix`` is ``[K, K]`` with ``K >= 2`` (negatives exist) and returns ``K``."""
  chex.assert_rank(matrix, 2)
  k = matrix.shape[0]
  if matrix.shape[1] != k:
    raise ValueError(f"{what} must be square [K, K], got shape {matrix.shape}")
  if k < 2:
    raise ValueError(f"need K >= 2 samples for negatives, got K={k}")
  return k


def offdiag_mask(k: int) -> jnp.ndarray:
  """``[K, K]`` boolean mask, True off the diagonal (use with ``jnp.where``, never ``inf * eye``)."""
  return ~jnp.eye(k, dtype=bool)


def offdiag_mean(values: jnp.ndarray) -> jnp.ndarray:
  """Mean over the ``K (K - 1)`` off-diagonal entries of a ``[K, K]`` matrix."""
  k = values.shape[0]
  return jnp.sum(jnp.where(offdiag_mask(k), values, 0.0)) / (k * (k - 1))
