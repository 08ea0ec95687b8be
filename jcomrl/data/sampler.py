"""Jit-friendly sampling of contexts and RL minibatches from an ``OfflineDataset``.

Everything here is a pure function of ``(key, dataset, task indices)``; the dataset is an
argument (never a closure) and all indexing is one gather per field, so a whole meta-batch is
drawn on device inside the learner's compiled step. A task's context and RL batch only ever
contain rows of that task.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jcomrl.data.dataset import OfflineDataset
from jcomrl.types import MetaBatch, Transition

CONTEXT_MODES = ("trajectory", "transitions")


def _gather(data: OfflineDataset, task_index: jnp.ndarray, idx: jnp.ndarray) -> Transition:
  """Rows ``idx[b, k]`` of task ``task_index[b]`` for every field -> leading axes ``[B, K]``."""
  rows = task_index[:, None]
  return jax.tree.map(lambda x: x[rows, idx], data.transitions)


def sample_transitions(key: jax.Array, data: OfflineDataset, task_index: jnp.ndarray,
                       size: int) -> Transition:
  """``size`` transitions drawn uniformly (with replacement) from each task's data."""
  chex.assert_rank(task_index, 1)
  idx = jax.random.randint(key, (task_index.shape[0], size), 0, data.num_transitions)
  return _gather(data, task_index, idx)


def sample_trajectory(key: jax.Array, data: OfflineDataset, task_index: jnp.ndarray,
                      size: int | None = None) -> Transition:
  """One random stored segment (a behaviour rollout) per task; its first ``size`` steps."""
  chex.assert_rank(task_index, 1)
  size = data.segment_length if size is None else size
  if size > data.segment_length:
    raise ValueError(f"trajectory context of {size} steps exceeds segment_length "
                     f"{data.segment_length}")
  seg = jax.random.randint(key, (task_index.shape[0],), 0, data.num_segments)
  idx = seg[:, None] * data.segment_length + jnp.arange(size)[None, :]
  return _gather(data, task_index, idx)


def sample_context(key: jax.Array, data: OfflineDataset, task_index: jnp.ndarray, *, size: int,
                   mode: str) -> Transition:
  """A context per task: ``mode="trajectory"`` (one whole segment) or ``"transitions"``."""
  if mode == "trajectory":
    return sample_trajectory(key, data, task_index, size)
  if mode == "transitions":
    return sample_transitions(key, data, task_index, size)
  raise ValueError(f"unknown context mode {mode!r}; expected one of {CONTEXT_MODES}")


def sample_meta_batch(key: jax.Array, data: OfflineDataset, task_pool: jnp.ndarray, *,
                      meta_batch_size: int, context_size: int, context_mode: str,
                      rl_batch_size: int, replace: bool = True) -> MetaBatch:
  """Draws ``meta_batch_size`` tasks from ``task_pool`` and a context + RL batch for each.

  Tasks are drawn *with* replacement by default (UNICORN), so label-based objectives see
  positive pairs; ``replace=False`` reproduces FOCAL/CSRO's default sampling.
  """
  chex.assert_rank(task_pool, 1)
  k_task, k_ctx, k_rl = jax.random.split(key, 3)
  pick = jax.random.choice(k_task, task_pool.shape[0], (meta_batch_size,), replace=replace)
  task_index = task_pool[pick]
  return MetaBatch(
      task_index=task_index, task_label=task_index,
      task_params=data.task_params[task_index],
      context=sample_context(k_ctx, data, task_index, size=context_size, mode=context_mode),
      rl=sample_transitions(k_rl, data, task_index, rl_batch_size))


def task_positives(draw: Transition, num: int) -> Transition:
  """CORRO's positive partners for ``num`` anchors per task: any transition of the same task.

  ``draw`` ``[B, R]`` must be transitions sampled uniformly with replacement from each task's
  *whole* data, with a key independent of the anchors' (the meta-batch's RL batch,
  :func:`sample_transitions`, is such a draw). Anchor ``k`` of task ``b`` is paired with
  ``draw[b, k mod R]``: a transition of task ``b`` from any of its trajectories, never of another
  task, as CORRO's ``sample_positive_pairs`` (``PKU-RL/CORRO`` ``train_contrastive.py:185-191``:
  one task index, independent query and key indices over that task's pooled transitions).
  With ``R < num`` positives repeat across anchors.
  """
  chex.assert_rank(draw.reward, 2)
  idx = jnp.arange(num) % draw.reward.shape[1]
  return jax.tree.map(lambda x: x[:, idx], draw)
