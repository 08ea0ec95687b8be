"""Offline data collection: behaviour snapshots rolled out in every task in one jitted call.

``rollout_segments`` runs ``[tasks x snapshots x episodes]`` fixed-length segments vmapped on
device, stochastic actions by default. Within a segment an episode that terminates early is
followed by an *explicit* reset (never brax's cached-state auto-reset), so ``next_obs`` is always
the true successor and ``terminal``/``timeout`` are exact; the last step of a segment that did not
terminate is marked ``timeout``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.data.behaviour import BehaviourPolicies
from jcomrl.data.dataset import OfflineDataset
from jcomrl.envs.base import Task, TaskEnv
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


def make_segment_rollout(env: TaskEnv, make_policy: Callable, deterministic: bool = False):
  """``rollout(params, task, key) -> Transition [episode_length]`` for one snapshot and task."""
  length = env.episode_length

  def rollout(params, task, key):
    policy = make_policy(params, deterministic)
    task_vec = env.task_vector(task)
    k_reset, k_steps = jax.random.split(key)
    state0 = env.reset(k_reset, task)

    def step(state, k):
      k_act, k_reset = jax.random.split(k)
      action, _ = policy(jnp.concatenate([state.obs, task_vec]), k_act)
      nxt = env.step(state, action, task)
      tr = Transition(obs=state.obs, action=action, reward=nxt.reward, next_obs=nxt.obs,
                      terminal=nxt.terminal, timeout=nxt.truncation)
      fresh = env.reset(k_reset, task)
      carry = jax.tree.map(lambda a, b: jnp.where(nxt.done > 0, a, b), fresh, nxt)
      return carry, tr

    _, traj = jax.lax.scan(step, state0, jax.random.split(k_steps, length))
    last_open = 1.0 - traj.terminal[-1]
    return traj.replace(timeout=traj.timeout.at[-1].max(last_open))

  return rollout


def rollout_segments(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array,
                     episodes_per_snapshot: int, deterministic: bool = False) -> Transition:
  """Rolls every snapshot in every task; returns leading axes ``[T, K, E, episode_length]``."""
  rollout = make_segment_rollout(env, policies.make_policy, deterministic)
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  k = policies.num_snapshots
  keys = jax.random.split(key, num_tasks * k * episodes_per_snapshot)
  keys = keys.reshape((num_tasks, k, episodes_per_snapshot) + keys.shape[1:])
  over_eps = jax.vmap(rollout, in_axes=(None, None, 0))
  over_snap = jax.vmap(over_eps, in_axes=(0, None, 0))
  over_task = jax.vmap(over_snap, in_axes=(None, 0, 0))
  return jax.jit(over_task)(policies.params, tasks, keys)


def _episode_ids(terminal: np.ndarray, timeout: np.ndarray) -> np.ndarray:
  ends = np.maximum(terminal, timeout) > 0  # [T, N]
  ids = np.zeros(ends.shape, np.int32)
  ids[:, 1:] = np.cumsum(ends[:, :-1], axis=1)
  return ids


def build_dataset(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array, *,
                  quality: str = "mixed", episodes_per_snapshot: int = 10) -> OfflineDataset:
  """Collects an ``OfflineDataset`` over ``tasks`` from the snapshots of ``quality``."""
  ids = snapshot_ids(quality, policies.num_snapshots)
  traj = rollout_segments(env, policies.select(ids), tasks, key, episodes_per_snapshot)
  t, k, e, h = traj.reward.shape
  flat = jax.tree.map(lambda x: np.asarray(x).reshape((t, k * e * h) + x.shape[4:]), traj)
  ckpt = np.broadcast_to(np.asarray(ids, np.int32)[None, :, None, None], (t, k, e, h))
  task_params = np.asarray(jax.vmap(env.task_vector)(tasks), np.float32)
  return OfflineDataset(transitions=flat, checkpoint_id=ckpt.reshape(t, -1).copy(),
                        episode_id=_episode_ids(flat.terminal, flat.timeout),
                        task_params=task_params, segment_length=h)


def snapshot_returns(env: TaskEnv, policies: BehaviourPolicies, tasks: Task, key: jax.Array,
                     episodes: int = 4) -> np.ndarray:
  """Mean stochastic return ``[K, T]`` of every snapshot in every task (dataset report)."""
  traj = rollout_segments(env, policies, tasks, key, episodes)
  return np.asarray(jnp.mean(jnp.sum(traj.reward, axis=-1), axis=-1)).T


def dataset_summary(dataset: OfflineDataset) -> dict[str, Any]:
  """Per-checkpoint mean segment return over all tasks (host-side report)."""
  r = np.asarray(dataset.transitions.reward)
  seg = r.reshape(r.shape[0], -1, dataset.segment_length).sum(-1)
  ck = np.asarray(dataset.checkpoint_id)[:, ::dataset.segment_length]
  return {int(c): float(seg[ck == c].mean()) for c in np.unique(ck)}
