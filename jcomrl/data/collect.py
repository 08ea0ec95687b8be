"""Offline data collection: behaviour snapshots rolled out in every task in one jitted call.

``rollout_segments`` runs ``[tasks x snapshots x episodes]`` fixed-length segments vmapped on
device, stochastic actions by default. Within a segment an episode that terminates early is
followed by an *explicit* reset (never brax's cached-state auto-reset), so ``next_obs`` is always
the true successor and ``terminal``/``timeout`` are exact; the last step of a segment that did not
terminate is marked ``timeout``. The stored ``(terminal, timeout)`` follow the env variant's
``end_convention`` (``TaskEnv.stored_flags``): under ``"no_terminal"`` (UNICORN/CORRO lineage,
CORRO ``learner.py:474,484``) an early end is stored as a ``timeout`` with terminal 0.

Large datasets are collected in chunks of episodes (``collect_segments``): one compiled program,
device memory bounded by a chunk, optional per-chunk persistence (``ChunkCache``) for resuming a
killed collection, and a progress line per chunk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

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


def step_and_record(env: TaskEnv, state, action, task, reset_key):
  """One env step recorded as a ``Transition`` with the true ``s'``; the carried state is an
  explicit reset (``reset_key``) where the episode ended, so no cached auto-reset is ever stored.
  """
  nxt = env.step(state, action, task)
  terminal, timeout = env.stored_flags(nxt)
  tr = Transition(obs=state.obs, action=action, reward=nxt.reward, next_obs=nxt.obs,
                  terminal=terminal, timeout=timeout)
  fresh = env.reset(reset_key, task)
  return jax.tree.map(lambda a, b: jnp.where(nxt.done > 0, a, b), fresh, nxt), tr


def record_segment(env: TaskEnv, choose: Callable, task, key: jax.Array, *,
                   reset_after_done: bool = True, carry=None) -> Transition:
  """The one recorded env-step loop: ``env.episode_length`` steps from one reset of ``task``.

  ``choose(state, i, k) -> (action, reset_key)`` picks step ``i``'s action from the current
  ``EnvState`` and that step's key (``k`` is the ``i``-th of ``split(k_steps, length)`` after
  ``k_reset, k_steps = split(key)``), and returns the key of the explicit reset that follows a
  true end (``step_and_record``). ``reset_after_done=False`` never resets: an episode that ended
  early is stepped on to the end (the ``"no_terminal"`` evaluation episode). Returns
  ``Transition [episode_length]`` with the env's stored flags. Collection segments, recorded
  evaluation episodes and the online protocol's collection segments are this loop with their own
  ``choose`` (``make_batched_rollout`` is its whole-batch form).

  ``carry`` (a pytree, e.g. a history-dependent policy's state): when given, ``choose(state, i,
  k, carry) -> (action, reset_key, carry)`` threads it through the steps.
  """
  length = env.episode_length
  k_reset, k_steps = jax.random.split(key)
  state0 = env.reset(k_reset, task)

  def step(sc, inp):
    state, c = sc
    i, k = inp
    if carry is None:
      action, k_next_reset = choose(state, i, k)
    else:
      action, k_next_reset, c = choose(state, i, k, c)
    if reset_after_done:
      nxt, tr = step_and_record(env, state, action, task, k_next_reset)
      return (nxt, c), tr
    nxt = env.step(state, action, task)
    terminal, timeout = env.stored_flags(nxt)
    return (nxt, c), Transition(obs=state.obs, action=action, reward=nxt.reward,
                                next_obs=nxt.obs, terminal=terminal, timeout=timeout)

  _, traj = jax.lax.scan(step, (state0, carry),
                         (jnp.arange(length), jax.random.split(k_steps, length)))
  return traj


def make_segment_rollout(env: TaskEnv, make_policy: Callable, deterministic: bool = False):
  """``rollout(params, task, key) -> Transition [episode_length]`` for one snapshot and task."""

  def rollout(params, task, key):
    policy = make_policy(params, deterministic)
    task_vec = env.task_vector(task)

    def choose(state, i, k):
      k_act, k_reset = jax.random.split(k)
      action, _ = policy(jnp.concatenate([state.obs, task_vec]), k_act)
      return action, k_reset

    traj = record_segment(env, choose, task, key)
    last_open = 1.0 - traj.terminal[-1]
    return traj.replace(timeout=traj.timeout.at[-1].max(last_open))

  return rollout


def make_batched_rollout(env: TaskEnv, make_policy: Callable, deterministic: bool = False,
                         reset_after_done: bool = True):
  """``f(params [K], tasks [T], keys [T, K, E]) -> Transition [T, K, E, episode_length]``.

  ``reset_after_done=False`` never resets: an episode that ended early is stepped on to the end
  of the segment (the evaluation episode of the ``"no_terminal"`` convention).

  The same random streams and results as ``vmap``-ing ``make_segment_rollout`` over
  ``[T, K, E]`` (results up to float32 rounding: XLA may round a reduction differently for
  another batch layout, and MJX's chaotic dynamics amplify that), but the time loop runs over
  the whole batch, so the explicit reset after an early termination is computed (``lax.cond``)
  only at steps where some episode of the batch has terminated, not at every step as a vmapped
  per-episode select would. Envs that never terminate early (cheetah) skip resets entirely.

  The env is stepped and reset under one ``vmap`` over the flattened ``B = T * K * E`` batch
  (each task repeated ``K * E`` times), not under three nested ones: XLA's CPU backend runs the
  MJX step up to ~3x slower when a vmapped axis has size 1 (``E = 1`` or ``K = 1``), and one
  flat axis never has that problem. Only the policy keeps the ``[T, K, E]`` nesting, which
  shares each snapshot's weights across its ``T * E`` episodes.
  """
  length = env.episode_length

  def act(params, task, obs_and_key):
    obs, key = obs_and_key
    policy = make_policy(params, deterministic)
    action, _ = policy(jnp.concatenate([obs, env.task_vector(task)]), key)
    return action

  e_act = jax.vmap(act, in_axes=(None, None, 0))
  v_act = jax.vmap(jax.vmap(e_act, in_axes=(0, None, 0)), in_axes=(None, 0, 0))  # [T, K, E]
  v_split = jax.vmap(jax.random.split)
  v_reset, v_step = jax.vmap(env.reset), jax.vmap(env.step)  # flat [B]

  def rollout(params, tasks, keys):
    lead = keys.shape[:3]
    n = math.prod(lead)
    flat_tasks = jax.tree.map(lambda x: jnp.repeat(x, n // lead[0], axis=0), tasks)
    k0 = v_split(keys.reshape((n,) + keys.shape[3:]))
    k_reset, k_steps = k0[:, 0], k0[:, 1]
    state0 = v_reset(k_reset, flat_tasks)
    step_keys = jnp.moveaxis(jax.vmap(lambda k: jax.random.split(k, length))(k_steps), 1, 0)

    def body(state, xs):
      t, key = xs
      ks = v_split(key)
      k_act, k_reset = ks[:, 0], ks[:, 1]
      nested = (state.obs.reshape(lead + state.obs.shape[1:]),
                k_act.reshape(lead + k_act.shape[1:]))
      action = v_act(params, tasks, nested)
      action = action.reshape((n,) + action.shape[3:])
      nxt = v_step(state, action, flat_tasks)
      terminal, timeout = env.stored_flags(nxt)
      tr = Transition(obs=state.obs, action=action, reward=nxt.reward, next_obs=nxt.obs,
                      terminal=terminal, timeout=timeout)

      def with_resets():
        fresh = v_reset(k_reset, flat_tasks)
        return jax.tree.map(
            lambda a, b: jnp.where(_expand(nxt.done, b) > 0, a, b).astype(b.dtype), fresh, nxt)

      if not reset_after_done:
        return nxt, tr
      # The last step's successor is never used: the segment ends there.
      need = jnp.logical_and(jnp.any(nxt.done > 0), t < length - 1)
      return jax.lax.cond(need, with_resets, lambda: nxt), tr

    _, traj = jax.lax.scan(body, state0, (jnp.arange(length), step_keys))  # [length, B, ...]
    traj = jax.tree.map(lambda x: jnp.moveaxis(x.reshape((length,) + lead + x.shape[2:]), 0, 3),
                        traj)  # [T, K, E, length, ...]
    last_open = 1.0 - traj.terminal[..., -1]
    return traj.replace(timeout=traj.timeout.at[..., -1].max(last_open))

  return rollout


def _expand(mask, like):
  return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


_ROLLOUT_FNS: dict[tuple[int, int, bool, bool], tuple[Any, Any, Callable]] = {}


def make_rollout_fn(env: TaskEnv, make_policy: Callable, deterministic: bool = False,
                    reset_after_done: bool = True):
  """Jitted ``make_batched_rollout``: ``f(params [K], tasks [T], keys [T, K, E])``.

  One jitted function per ``(env, make_policy, deterministic, reset_after_done)`` (memoised), so
  collection chunks and the normalisation rollouts of equal shape share one compiled program.
  """
  key = (id(env), id(make_policy), bool(deterministic), bool(reset_after_done))
  hit = _ROLLOUT_FNS.get(key)
  if hit is not None and hit[0] is env and hit[1] is make_policy:
    return hit[2]
  fn = jax.jit(make_batched_rollout(env, make_policy, deterministic, reset_after_done))
  if len(_ROLLOUT_FNS) >= 32:
    _ROLLOUT_FNS.pop(next(iter(_ROLLOUT_FNS)))
  _ROLLOUT_FNS[key] = (env, make_policy, fn)  # holds env and policy so their ids stay unique
  return fn


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


def episode_ids(terminal: np.ndarray, timeout: np.ndarray) -> np.ndarray:
  """``episode_id [T, N]`` of stored transitions: per task row, 0 for the first episode and one
  more after every step flagged ``terminal`` or ``timeout``."""
  ends = np.maximum(terminal, timeout) > 0  # [T, N]
  ids = np.zeros(ends.shape, np.int32)
  ids[:, 1:] = np.cumsum(ends[:, :-1], axis=1)
  return ids


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
  t0 = time.time()
  t_first = None  # end of the first freshly collected chunk (it includes compilation)
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
    if progress is not None:
      now = time.time()
      if fresh == 1 and not reused:
        t_first = now
      if fresh > 1 and t_first is not None and now > t_first:
        rate = (fresh - 1) * per_chunk / (now - t_first)
        speed = f"{rate:,.0f} transitions/s, ETA {(num_chunks - i - 1) * per_chunk / rate:.0f}s"
      else:
        speed = f"{now - t0:.1f}s incl. compilation"
      if reused:
        speed = "reused from the work dir"
      progress(f"collect chunk {i + 1}/{num_chunks} ({100 * (i + 1) / num_chunks:.0f}%): "
               f"{hi * num_tasks * k * env.episode_length:,} transitions, {speed}")
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


def first_episode_returns(traj: Transition) -> jnp.ndarray:
  """Return of the first episode of each segment: rewards up to and including its first end.

  This is what evaluation rollouts count under the ``"true_terminal"`` convention (rewards after
  the first ``done`` are dropped), so it is the right normalisation anchor also for envs that
  terminate early (hopper, walker, ant); ``snapshot_returns`` handles ``"no_terminal"``.
  For envs without termination it is the segment's reward sum.
  """
  ended = jnp.maximum(traj.terminal, traj.timeout) > 0
  before = jnp.cumsum(ended, axis=-1) - ended  # ends strictly before each step
  return jnp.sum(jnp.where(before == 0, traj.reward, 0.0), axis=-1)


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


def episode_returns(reward: np.ndarray, terminal: np.ndarray, timeout: np.ndarray,
                    episode_id: np.ndarray, checkpoint_id: np.ndarray,
                    segment_length: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per task row: ``(checkpoint id, return)`` of every *complete* episode in stored data.

  An episode is complete when it ended by a true termination, lasted the whole time limit
  (``segment_length`` steps), or ended early inside its segment (a fall stored as a timeout
  under the ``"no_terminal"`` convention). An episode that began after an early end and was
  cut by the end of its segment is partial and left out. Host-side; reads memory-mapped
  arrays one task row at a time.
  """
  out = []
  for t in range(reward.shape[0]):
    ids = np.asarray(episode_id[t])
    n = int(ids[-1]) + 1
    ret = np.bincount(ids, weights=np.asarray(reward[t], np.float64), minlength=n)
    length = np.bincount(ids, minlength=n)
    last = np.cumsum(length) - 1
    first = last - length + 1
    # An early end inside a segment stored as a timeout ("no_terminal" convention) is complete
    # too; a timeout at a segment's last step may be the cut, so only a full length counts there.
    early_end = (np.asarray(timeout[t])[last] > 0) & ((last + 1) % segment_length != 0)
    complete = (np.asarray(terminal[t])[last] > 0) | (length >= segment_length) | early_end
    out.append((np.asarray(checkpoint_id[t])[first][complete], ret[complete]))
  return out


def dataset_summary(dataset: OfflineDataset) -> dict[str, Any]:
  """Per-checkpoint mean segment return over all tasks (host-side report)."""
  r = np.asarray(dataset.transitions.reward)
  seg = r.reshape(r.shape[0], -1, dataset.segment_length).sum(-1)
  ck = np.asarray(dataset.checkpoint_id)[:, ::dataset.segment_length]
  return {int(c): float(seg[ck == c].mean()) for c in np.unique(ck)}
