"""Offline data collection: behaviour snapshots rolled out in every task in one jitted call.

``rollout_segments`` runs ``[tasks x snapshots x episodes]`` fixed-length segments vmapped on
device (``jcomrl.rollout.make_rollout_fn``: explicit resets after an early end, the env's stored
flags), stochastic actions by default; the last step of a segment that did not terminate is
marked ``timeout``.

Large datasets are collected in chunks of episodes (``collect_segments``): one compiled program,
device memory bounded by a chunk, optional per-chunk persistence (``ChunkCache``) for resuming a
killed collection, and a progress line per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.data.dataset import OfflineDataset, episode_ids
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.base import Task, TaskEnv
from jcomrl.logging import Progress
from jcomrl.rollout import first_episode_returns, make_rollout_fn
from jcomrl.types import Transition

QUALITIES = ("random", "medium", "expert", "mixed", "medium_expert")


def snapshot_ids(quality: str, num_snapshots: int) -> list[int]:
  """Snapshots a dataset quality preset draws from (0 = untrained, K-1 = final)."""
  k = num_snapshots
  table = {"random": [0], "medium": [k // 2], "expert": [k - 1], "mixed": list(range(k)),
           "medium_expert": sorted({k // 2, k - 1})}
  if quality not in table:
    raise ValueError(f"unknown dataset quality {quality!r}; expected one of {QUALITIES}")
  return table[quality]


def segment_keys(key: jax.Array, num_tasks: int, num_snapshots: int, episodes: int):
  """The rollout keys ``[T, K, E]`` of ``rollout_segments``: ``split(key, T * K * E)`` reshaped,
  so a collection chunk's episodes are reproducible from its key."""
  keys = jax.random.split(key, num_tasks * num_snapshots * episodes)
  return keys.reshape((num_tasks, num_snapshots, episodes) + keys.shape[1:])


def rollout_segments(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array,
                     episodes_per_snapshot: int, deterministic: bool = False,
                     reset_after_done: bool = True) -> Transition:
  """Rolls every snapshot in every task; returns leading axes ``[T, K, E, episode_length]``."""
  fn = make_rollout_fn(env, policies.make_policy, deterministic, reset_after_done)
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  keys = segment_keys(key, num_tasks, policies.num_snapshots, episodes_per_snapshot)
  return fn(policies.params, tasks, keys)


class ChunkCache(Protocol):
  """Where ``collect_segments`` keeps finished chunks so a killed collection can resume."""

  def get(self, index: int) -> dict[str, np.ndarray] | None:
    """The arrays of chunk ``index`` saved by an earlier run, or ``None``."""

  def put(self, index: int, arrays: dict[str, np.ndarray]) -> None:
    """Persists chunk ``index`` (``Transition`` fields, each ``[T, K, chunk, H, ...]``)."""


def chunk_layout(episodes_per_snapshot: int, chunk_episodes: int) -> tuple[int, int]:
  """``(episodes per chunk, number of chunks)``; ``chunk_episodes <= 0`` means one chunk."""
  if episodes_per_snapshot < 1:
    raise ValueError(f"episodes_per_snapshot must be >= 1, got {episodes_per_snapshot}")
  size = episodes_per_snapshot if chunk_episodes <= 0 else min(chunk_episodes,
                                                               episodes_per_snapshot)
  return size, -(-episodes_per_snapshot // size)


def collect_segments(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array, *,
                     episodes_per_snapshot: int, chunk_episodes: int = 0,
                     cache: ChunkCache | None = None,
                     progress: Callable[[str], None] | None = None) -> Transition:
  """``rollout_segments`` in chunks of episodes, gathered into host arrays ``[T, K, E, H, ...]``.

  Every chunk has the same shape (the last one is rolled in full and trimmed), so one program
  is compiled. Device memory is bounded by one chunk; the host holds the result, allocated once.
  Chunk ``i`` uses ``fold_in(key, i)``, or ``key`` itself when there is only one chunk (then the
  result equals ``rollout_segments(..., key, episodes_per_snapshot)``).

  Args:
    env: the env; policies: the snapshots to roll (all of them); tasks: ``[T]`` tasks.
    key: collection key.
    episodes_per_snapshot: E, episodes per (task, snapshot).
    chunk_episodes: episodes per (task, snapshot) in one jitted call; ``<= 0`` = all at once.
    cache: optional store of finished chunks (resume after a kill).
    progress: optional ``progress(message)`` called once per chunk.
  """
  size, num_chunks = chunk_layout(episodes_per_snapshot, chunk_episodes)
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  k = policies.num_snapshots
  per_chunk = num_tasks * k * size * env.episode_length
  fn = None
  out: dict[str, np.ndarray] | None = None
  # The rate counts the fresh chunks after the first (which includes compilation).
  shown = Progress(num_chunks, "collect chunk", unit="transitions", unit_size=per_chunk,
                   progress=progress, waiting="")
  fresh = 0
  for i in range(num_chunks):
    arrays = cache.get(i) if cache is not None else None
    reused = arrays is not None
    if arrays is None:
      fn = fn or make_rollout_fn(env, policies.make_policy)
      chunk_key = key if num_chunks == 1 else jax.random.fold_in(key, i)
      traj = fn(policies.params, tasks, segment_keys(chunk_key, num_tasks, k, size))
      arrays = {f: np.asarray(v) for f, v in zip(_FIELDS, _fields(traj))}
      if cache is not None:
        cache.put(i, arrays)
      fresh += 1
    lo, hi = i * size, min((i + 1) * size, episodes_per_snapshot)
    if out is None:
      out = {f: np.empty(a.shape[:2] + (episodes_per_snapshot,) + a.shape[3:], a.dtype)
             for f, a in arrays.items()}
    for f, a in arrays.items():
      out[f][:, :, lo:hi] = a[:, :, :hi - lo]
    shown.advance(1, timed=fresh > 1 and not reused)
    note = None
    if reused:
      note = "reused from the work dir"
    elif fresh == 1:
      note = f"{shown.elapsed:.1f}s incl. compilation"
    shown.report(f"{hi * num_tasks * k * env.episode_length:,} transitions", note=note)
  assert out is not None
  return Transition(**out)


_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "timeout")


def _fields(tr: Transition):
  return tuple(getattr(tr, f) for f in _FIELDS)


def build_dataset(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array, *,
                  quality: str = "mixed", episodes_per_snapshot: int = 10,
                  chunk_episodes: int = 0, cache: ChunkCache | None = None,
                  progress: Callable[[str], None] | None = None) -> OfflineDataset:
  """Collects an ``OfflineDataset`` over ``tasks`` from the snapshots of ``quality``.

  Each task row holds ``[K_quality, E, H]`` segments flattened in that order. ``chunk_episodes``,
  ``cache`` and ``progress`` are passed to ``collect_segments``.
  """
  ids = snapshot_ids(quality, policies.num_snapshots)
  traj = collect_segments(env, policies.select(ids), tasks, key,
                          episodes_per_snapshot=episodes_per_snapshot,
                          chunk_episodes=chunk_episodes, cache=cache, progress=progress)
  t, k, e, h = traj.reward.shape
  flat = jax.tree.map(lambda x: np.asarray(x).reshape((t, k * e * h) + x.shape[4:]), traj)
  ckpt = np.broadcast_to(np.asarray(ids, np.int32)[None, :, None, None], (t, k, e, h))
  task_params = np.asarray(jax.vmap(env.task_vector)(tasks), np.float32)
  return OfflineDataset(transitions=flat, checkpoint_id=ckpt.reshape(t, -1).copy(),
                        episode_id=episode_ids(flat.terminal, flat.timeout),
                        task_params=task_params, segment_length=h)


def snapshot_returns(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array,
                     episodes: int = 4, deterministic: bool = False) -> np.ndarray:
  """Mean episode return ``[K, T]`` of every snapshot in every task, the snapshots acting
  stochastically or (``deterministic``) with their mean action.

  Counted as evaluation episodes count (``jcomrl.eval.rollout``): up to the first end under the
  ``"true_terminal"`` convention, all ``episode_length`` rewards without a reset under
  ``"no_terminal"``.
  """
  if env.end_convention == "no_terminal":
    traj = rollout_segments(env, policies, tasks, key, episodes, deterministic,
                            reset_after_done=False)
    return np.asarray(jnp.mean(jnp.sum(traj.reward, axis=-1), axis=-1)).T
  traj = rollout_segments(env, policies, tasks, key, episodes, deterministic)
  return np.asarray(jnp.mean(first_episode_returns(traj), axis=-1)).T
