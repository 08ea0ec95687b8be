"""Jit-friendly sampling of contexts and RL minibatches from an ``OfflineDataset``.

Everything here is a pure function of ``(key, dataset, task indices)``; the dataset is an
argument (never a closure) and all indexing is one gather per field, so a whole meta-batch is
drawn on device inside the learner's compiled step. A task's context and RL batch only ever
contain rows of that task.

Sequence models (the decision transformer) train on :func:`sample_segments`: length-``K``
windows with returns-to-go and episode timesteps (:func:`episode_bookkeeping`), and a prompt is
a short window of a context trajectory (:func:`prompt_segment`).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jcomrl.data.dataset import OfflineDataset
from jcomrl.types import MetaBatch, Segment, Transition

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


def episode_bookkeeping(reward: jnp.ndarray, terminal: jnp.ndarray, timeout: jnp.ndarray):
  """Returns-to-go, timesteps and episode ends along the last axis of stored trajectories.

  A stored trajectory (a dataset segment or a context) may hold several episodes: an episode
  ends at every step whose stored ``terminal`` or ``timeout`` is set and at the last step. Under
  both values of ``TaskEnv.end_convention`` that is where collection reset the env (a true
  termination or the time limit under ``"true_terminal"``; any end, a fall stored as a
  ``timeout``, under ``"no_terminal"``), so windows and returns-to-go never cross a reset.

  Args:
    reward, terminal, timeout: ``[..., L]``.
  Returns:
    ``(rtg, timestep, end)``, each ``[..., L]``: ``rtg[j]`` = sum of the rewards of ``j``'s
    episode from ``j`` on (undiscounted, as ``discount_cumsum(rewards, gamma=1)`` in
    kzl/decision-transformer ``gym/experiment.py:141``), ``timestep[j]`` (int32) = ``j`` minus
    its episode's first index, ``end[j]`` (int32) = its episode's last index.
  """
  length = reward.shape[-1]
  axis = reward.ndim - 1
  pos = jnp.arange(length, dtype=jnp.int32)
  ended = jnp.maximum(terminal, timeout) > 0
  end = jax.lax.cummin(jnp.where(ended, pos, length - 1), axis=axis, reverse=True)
  first = jnp.concatenate([jnp.ones_like(ended[..., :1]), ended[..., :-1]], axis=-1)
  start = jax.lax.cummax(jnp.where(first, pos, 0), axis=axis)
  suffix = jnp.flip(jnp.cumsum(jnp.flip(reward, -1), axis=-1), -1)  # sum_{k >= j} r_k
  after = jnp.concatenate([suffix, jnp.zeros_like(suffix[..., :1])], axis=-1)
  rtg = suffix - jnp.take_along_axis(after, end + 1, axis=-1)
  return rtg, (pos - start).astype(jnp.int32), end.astype(jnp.int32)


def sample_segments(key: jax.Array, data: OfflineDataset, task_index: jnp.ndarray, size: int,
                    length: int, return_scale: float) -> Segment:
  """``size`` length-``length`` windows per task -> ``Segment [B, size, length]``.

  As the official DT batch (kzl/decision-transformer ``gym/experiment.py:117-160``; Prompt-DT
  ``prompt_dt/prompt_utils.py:209-264``): the first step is uniform over all stored steps of
  the task (their trajectory is drawn with probability proportional to its length and the start
  uniformly within it, ``p_sample``), the window runs for ``length`` steps or to the end of its
  episode, whichever is first, and a short window is left-padded (``mask`` 0, inputs 0; the
  official pads actions with -10, which the mask hides). Returns-to-go are divided by
  ``return_scale`` (``experiment.py:152``).
  """
  chex.assert_rank(task_index, 1)
  seg_len = data.segment_length
  start = jax.random.randint(key, (task_index.shape[0], size), 0, data.num_transitions)
  first = (start // seg_len) * seg_len  # [B, n] first row of the stored segment
  pos = start % seg_len
  t = task_index[:, None, None]
  whole = first[..., None] + jnp.arange(seg_len)  # [B, n, L]
  tr = data.transitions
  rtg, timestep, end = episode_bookkeeping(tr.reward[t, whole], tr.terminal[t, whole],
                                           tr.timeout[t, whole])
  last = jnp.take_along_axis(end, pos[..., None], axis=-1)  # [B, n, 1]
  n_real = jnp.minimum(length, last - pos[..., None] + 1)
  slot = jnp.arange(length)
  mask = slot >= length - n_real  # [B, n, K]
  src = jnp.clip(pos[..., None] + slot - (length - n_real), 0, seg_len - 1)
  rows = first[..., None] + src
  pad = lambda x: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)), x, 0)
  return Segment(obs=pad(tr.obs[t, rows]), action=pad(tr.action[t, rows]),
                 rtg=pad(jnp.take_along_axis(rtg, src, axis=-1) / return_scale),
                 timestep=pad(jnp.take_along_axis(timestep, src, axis=-1)),
                 mask=mask.astype(jnp.float32))


def prompt_segment(context: Transition, length: int, return_scale: float) -> Segment:
  """Prompt-DT's prompt from one context trajectory ``[..., L]`` -> ``Segment [..., length]``.

  The window of ``length`` steps that ends one step before the trajectory's end, as Prompt-DT's
  ``get_prompt`` (``prompt_dt/prompt_utils.py:120``: ``si = max(0, len - max_len - 1)``), with
  its returns-to-go over the rest of the step's episode inside the context (``:132``) divided by
  ``return_scale`` (``:146``) and its episode timesteps (``:130``); left-padded when the
  context is shorter (``:140-148``). The prompt is stochastic through the context draw (a random
  stored trajectory of the task, ``--stochastic-prompt``, ``:115-116``).
  """
  num = context.reward.shape[-1]
  first = max(0, num - length - 1)
  n_real = min(length, num - first)
  rtg, timestep, _ = episode_bookkeeping(context.reward, context.terminal, context.timeout)
  take = lambda x, axis: jax.lax.slice_in_dim(x, first, first + n_real, axis=axis)

  def padded(x, axis):
    x = take(x, axis)
    widths = [(0, 0)] * x.ndim
    widths[axis] = (length - n_real, 0)
    return jnp.pad(x, widths)

  lead = context.reward.ndim - 1
  mask = jnp.concatenate([jnp.zeros((length - n_real,)), jnp.ones((n_real,))])
  return Segment(obs=padded(context.obs, lead), action=padded(context.action, lead),
                 rtg=padded(rtg, lead) / return_scale, timestep=padded(timestep, lead),
                 mask=jnp.broadcast_to(mask, context.reward.shape[:-1] + (length,)))

