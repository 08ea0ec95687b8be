"""Adaptation protocols on held-out tasks (reference: comrl-algorithms.md §2.2 and §5).

Every protocol is one jitted function vmapped over seeds x test tasks x episodes (or context
sources) on device; params carry a leading seed axis ``[S]``; datasets, contexts and task tables
are jit *arguments*; all randomness comes from the ``key`` argument, so a protocol is
deterministic given its key (bit-for-bit on one device). Compiled functions are cached per
``(learner, env, static settings)``, so calling a protocol again does not retrace.

* ``iid_returns``: context from the test task's own offline data: one whole stored trajectory
  (UNICORN/CORRO) or ``context_size`` random transitions (FOCAL's offline context without
  accumulation); one deterministic episode per context draw. ``[S, T, E]``.
* ``accumulating_returns``: FOCAL's protocol: per round add ``per_round`` (200) random offline
  transitions of the test task to the context, re-infer z from *all* accumulated transitions,
  run one deterministic episode. ``[S, T, E, R]``; FOCAL reports the last round.
* ``behaviour_contexts`` + ``context_returns``: UNICORN's behaviour-shift (OOD) protocol. jcomrl's
  behaviour policy is ONE task-conditioned network (snapshots ``k = 0..K-1``), so "the behaviour
  policy of task j" is snapshot k conditioned on task j's task vector. The context of test task
  t is one (stochastic) rollout, *in task t*, of snapshot k conditioned on task j, for every
  (k, j) pair; z is inferred from it and one deterministic episode is run. ``[S, T, Q]`` over
  the Q pairs; the OOD score is the mean over policies of the mean over test tasks.
* ``online_returns``: the agent collects its own context (CSRO §2.2). Per round: one collection
  episode with stochastic policy actions conditioned on the current z, whose transitions are
  appended to a fixed-size buffer; z is re-inferred from the accumulated context; then one
  deterministic evaluation episode (not added to the context). ``mode="prior"`` (PEARL-style):
  the first round explores with the *prior* code z = 0 (the centre of the tanh code space; we
  use zeros rather than encoding an empty context, which a mean-pool encoder cannot do).
  ``mode="nonprior"`` (CSRO): actions are uniform in [-1, 1]^A while the cumulative collection
  step count is below ``random_fraction`` (50 %) of all collection steps, policy actions after.
  ``[S, T, E, R]``; the reported value is the last round's return.

Jitting the growing online context: the buffer is a fixed ``[R * H]`` Transition and a round
counter; the learner's ``encode`` takes no mask, so z is re-inferred from the valid prefix by a
``lax.switch`` over the R static prefix lengths (exact for every encoder: mean-pool, attention,
recurrent). Collection episodes are fixed-length segments with an explicit reset after a true
termination (as the offline data), so every buffered transition is a real one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.algos.learner import Learner
from jcomrl.data.collect import make_segment_rollout, step_and_record
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_context, sample_transitions
from jcomrl.envs.base import Task, TaskEnv
from jcomrl.eval.rollout import evaluate_returns, make_episode_return
from jcomrl.types import Transition

ONLINE_MODES = ("prior", "nonprior")


def _num(tasks: Task) -> int:
  return int(jax.tree.leaves(tasks)[0].shape[0])


def _encode_one(learner: Learner):
  """``encode(params, context [K], task_params [P]) -> z [Z]`` for one context."""
  return lambda p, ctx, tp: learner.encode(p, ctx, tp)


# --------------------------------------------------------------------------------------------
# IID: context from the test task's own offline data
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _iid_fn(learner: Learner, env: TaskEnv, num_episodes: int, context_mode: str,
            context_size: int):
  def one_seed(p, data, rows, tasks, k_ctx, k_roll):
    def one_episode(kc, kr):
      ctx = sample_context(kc, data, rows, size=context_size, mode=context_mode)
      z = learner.encode(p, ctx, data.task_params[rows])
      return evaluate_returns(env, learner.act, p, z, tasks, kr, 1)[:, 0]

    kcs = jax.random.split(k_ctx, num_episodes)
    krs = jax.random.split(k_roll, num_episodes)
    return jax.vmap(one_episode, out_axes=1)(kcs, krs)

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None, None)))


def iid_returns(learner: Learner, params, env: TaskEnv, data: OfflineDataset, test_rows,
                test_tasks: Task, key: jax.Array, *, num_episodes: int, context_mode: str,
                context_size: int):
  """Returns ``[S, T, E]`` for params with a leading seed axis ``[S]``.

  Episode ``e`` of test task ``t`` uses its own context draw from task ``t``'s offline data.
  """
  rows = jnp.asarray(test_rows, jnp.int32)
  k_ctx, k_roll = jax.random.split(key)
  fn = _iid_fn(learner, env, int(num_episodes), context_mode, int(context_size))
  return fn(params, data, rows, test_tasks, k_ctx, k_roll)


@functools.lru_cache(maxsize=64)
def _accumulating_fn(learner: Learner, env: TaskEnv, num_episodes: int, num_rounds: int,
                     per_round: int):
  episode = make_episode_return(env, learner.act, deterministic=True)
  enc = jax.vmap(_encode_one(learner), in_axes=(None, 0, 0))

  def one_seed(p, data, rows, tasks, k_ctx, k_roll):
    tps = data.task_params[rows]
    # Round r encodes the first (r + 1) * per_round transitions: a switch over the static
    # prefix lengths (exact for every encoder) inside a scan, so the episode compiles once.
    branches = [(lambda c, n=(i + 1) * per_round: enc(p, jax.tree.map(lambda x: x[:, :n], c),
                                                       tps)) for i in range(num_rounds)]

    def one_episode(kc, kr):
      ctx = sample_transitions(kc, data, rows, num_rounds * per_round)  # [T, R * n]

      def one_round(_, r):
        z = jax.lax.switch(r, branches, ctx)
        keys = jax.random.split(jax.random.fold_in(kr, r), rows.shape[0])
        return None, jax.vmap(episode, in_axes=(None, 0, 0, 0))(p, z, tasks, keys)

      _, rets = jax.lax.scan(one_round, None, jnp.arange(num_rounds))
      return rets.T  # [T, R]

    kcs = jax.random.split(k_ctx, num_episodes)
    krs = jax.random.split(k_roll, num_episodes)
    return jax.vmap(one_episode, out_axes=1)(kcs, krs)

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None, None)))


def accumulating_returns(learner: Learner, params, env: TaskEnv, data: OfflineDataset,
                         test_rows, test_tasks: Task, key: jax.Array, *, num_episodes: int,
                         num_rounds: int = 3, per_round: int = 200):
  """FOCAL's accumulating offline context: returns ``[S, T, E, R]`` (report ``[..., -1]``).

  Round ``r`` encodes the first ``(r + 1) * per_round`` of one fixed draw of random offline
  transitions of the test task (so contexts only grow) and runs one deterministic episode.
  """
  if num_rounds <= 0 or per_round <= 0:
    raise ValueError(f"num_rounds and per_round must be positive, got {num_rounds}, {per_round}")
  rows = jnp.asarray(test_rows, jnp.int32)
  k_ctx, k_roll = jax.random.split(key)
  fn = _accumulating_fn(learner, env, int(num_episodes), int(num_rounds), int(per_round))
  return fn(params, data, rows, test_tasks, k_ctx, k_roll)


# --------------------------------------------------------------------------------------------
# OOD: contexts from other tasks' behaviour policies, rolled in the test task
# --------------------------------------------------------------------------------------------


def conditioned_make_policy(make_policy: Callable, task_size: int) -> Callable:
  """Wraps a task-conditioned behaviour ``make_policy`` so it acts *as if in another task*.

  The wrapped ``make_policy((snapshot_params, cond_vector), deterministic)`` returns a policy
  that replaces the trailing ``task_size`` entries of its observation (the task vector of the
  task it really acts in, appended by the rollout) with ``cond_vector``.
  """

  def make(params, deterministic):
    snapshot, cond = params
    policy = make_policy(snapshot, deterministic)

    def conditioned(obs, key):
      return policy(jnp.concatenate([obs[:-task_size], cond]), key)

    return conditioned

  return make


def pair_key(key: jax.Array, task: int | jax.Array, pair: int | jax.Array) -> jax.Array:
  """The rollout key of context pair ``pair`` in test task ``task`` (public for checks)."""
  return jax.random.fold_in(jax.random.fold_in(key, task), pair)


@functools.lru_cache(maxsize=16)
def _contexts_fn(env: TaskEnv, make_policy: Callable, deterministic: bool):
  rollout = make_segment_rollout(env, conditioned_make_policy(make_policy, env.task_size),
                                 deterministic)

  def one_task(snap_params, cond, snap_ids, task, t, key):
    def one_pair(k, c, q):
      params = (jax.tree.map(lambda x: x[k], snap_params), c)
      return rollout(params, task, pair_key(key, t, q))

    return jax.vmap(one_pair)(snap_ids, cond, jnp.arange(snap_ids.shape[0]))

  return jax.jit(jax.vmap(one_task, in_axes=(None, 0, None, 0, 0, None)))


def behaviour_contexts(env: TaskEnv, behaviour, tasks: Task, cond_vectors: jnp.ndarray,
                       snapshot_ids, key: jax.Array, *, deterministic: bool = False) -> Transition:
  """One behaviour rollout per (test task, pair) -> ``Transition [T, Q, episode_length]``.

  Args:
    env: the env the rollouts run in.
    behaviour: ``BehaviourPolicies`` (snapshot axis ``[K]`` on ``params``).
    tasks: the ``T`` tasks to roll in (the *test* tasks).
    cond_vectors: ``[T, Q, task_size]`` or ``[Q, task_size]``: the task vector each pair's
      snapshot is conditioned on (another task's vector = "that task's behaviour policy").
    snapshot_ids: ``[Q]`` int: the snapshot of each pair.
    key: pair ``q`` of task ``t`` rolls with ``pair_key(key, t, q)``.
    deterministic: behaviour mode actions instead of samples (UNICORN samples; tests use mode).
  """
  snapshot_ids = jnp.asarray(snapshot_ids, jnp.int32)
  num_tasks = _num(tasks)
  cond = jnp.asarray(cond_vectors, jnp.float32)
  if cond.ndim == 2:
    cond = jnp.broadcast_to(cond, (num_tasks,) + cond.shape)
  if cond.shape[:2] != (num_tasks, snapshot_ids.shape[0]) or cond.shape[2] != env.task_size:
    raise ValueError(f"cond_vectors has shape {cond.shape}; expected [{num_tasks}, "
                     f"{snapshot_ids.shape[0]}, {env.task_size}]")
  fn = _contexts_fn(env, behaviour.make_policy, bool(deterministic))
  return fn(behaviour.params, cond, snapshot_ids, tasks, jnp.arange(num_tasks), key)


def ood_pairs(num_snapshots: int, source_rows, snapshots=None, max_pairs: int | None = None,
              seed: int = 0) -> np.ndarray:
  """All ``(snapshot, source task row)`` pairs ``[Q, 2]``, optionally a fixed random subset."""
  snaps = list(range(num_snapshots)) if snapshots is None else [int(s) for s in snapshots]
  bad = [s for s in snaps if not 0 <= s < num_snapshots]
  if bad:
    raise ValueError(f"snapshot ids {bad} outside the {num_snapshots} behaviour snapshots")
  pairs = np.asarray([(k, int(j)) for k in snaps for j in source_rows], np.int32)
  if max_pairs is not None and 0 < max_pairs < len(pairs):
    pick = np.sort(np.random.RandomState(seed).choice(len(pairs), max_pairs, replace=False))
    pairs = pairs[pick]
  return pairs


@functools.lru_cache(maxsize=64)
def _context_returns_fn(learner: Learner, env: TaskEnv):
  episode = make_episode_return(env, learner.act, deterministic=True)

  def one_seed(p, contexts, task_params, tasks, key):
    def one_task(ctx_t, tp, task, t):
      def one_pair(ctx, q):
        z = learner.encode(p, ctx, tp)
        return episode(p, z, task, pair_key(key, t, q))

      return jax.vmap(one_pair)(ctx_t, jnp.arange(ctx_t.reward.shape[0]))

    return jax.vmap(one_task)(contexts, task_params, tasks, jnp.arange(task_params.shape[0]))

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None)))


def context_returns(learner: Learner, params, env: TaskEnv, contexts: Transition,
                    task_params: jnp.ndarray, tasks: Task, key: jax.Array):
  """One deterministic episode per given context: ``contexts [T, Q, K]`` -> returns ``[S, T, Q]``.

  ``task_params [T, P]`` are the true parameters of the tasks (used only by the oracle).
  """
  return _context_returns_fn(learner, env)(params, contexts, jnp.asarray(task_params), tasks,
                                           key)


# --------------------------------------------------------------------------------------------
# Online: the agent collects its own context
# --------------------------------------------------------------------------------------------


def make_collect_segment(env: TaskEnv, act: Callable):
  """``collect(params, z, task, key, first_step, explore_steps) -> Transition [H]``.

  One fixed-length segment of ``env.episode_length`` steps of ``act`` (stochastic), with an
  explicit reset after a true termination; the action of global collection step
  ``first_step + i`` is uniform in [-1, 1]^A instead while it is ``< explore_steps``.
  """
  length = env.episode_length

  def collect(params, z, task, key, first_step, explore_steps):
    k_reset, k_steps = jax.random.split(key)
    state0 = env.reset(k_reset, task)

    def step(state, inp):
      i, k = inp
      k_act, k_rand, k_reset = jax.random.split(k, 3)
      a_pol = act(params, state.obs, z, k_act, False)
      a_rand = jax.random.uniform(k_rand, (env.action_size,), minval=-1.0, maxval=1.0)
      action = jnp.where(first_step + i < explore_steps, a_rand, a_pol)
      return step_and_record(env, state, action, task, k_reset)

    _, traj = jax.lax.scan(step, state0, (jnp.arange(length), jax.random.split(k_steps, length)))
    return traj

  return collect


@functools.lru_cache(maxsize=64)
def _online_fn(learner: Learner, env: TaskEnv, num_episodes: int, num_rounds: int):
  h, r_total = env.episode_length, num_rounds
  collect = make_collect_segment(env, learner.act)
  episode = make_episode_return(env, learner.act, deterministic=True)
  z_size = learner.cfg.z_size

  def one_run(p, task, tp, key, explore_steps):
    k_first = jax.random.fold_in(key, 0)
    template = jax.eval_shape(lambda: collect(p, jnp.zeros(z_size), task, k_first, 0, 0))
    buf0 = jax.tree.map(lambda s: jnp.zeros((r_total * h,) + s.shape[1:], s.dtype), template)
    branches = [
        (lambda b, n=(i + 1) * h: learner.encode(p, jax.tree.map(lambda x: x[:n], b), tp))
        for i in range(r_total)]

    def one_round(carry, r):
      buf, z = carry
      k_col, k_eval = jax.random.split(jax.random.fold_in(key, r))
      traj = collect(p, z, task, k_col, r * h, explore_steps)
      buf = jax.tree.map(lambda b, t: jax.lax.dynamic_update_slice_in_dim(b, t, r * h, 0),
                         buf, traj)
      z = jax.lax.switch(r, branches, buf).astype(jnp.float32)  # valid prefix = (r + 1) * H
      return (buf, z), episode(p, z, task, k_eval)

    (_, _), rets = jax.lax.scan(one_round, (buf0, jnp.zeros(z_size, jnp.float32)),
                                jnp.arange(r_total))
    return rets  # [R]

  def one_seed(p, tasks, tps, key, explore_steps):
    num_tasks = tps.shape[0]
    keys = jax.random.split(key, num_tasks * num_episodes).reshape(
        (num_tasks, num_episodes) + key.shape)
    over_eps = jax.vmap(one_run, in_axes=(None, None, None, 0, None))
    return jax.vmap(over_eps, in_axes=(None, 0, 0, 0, None))(p, tasks, tps, keys, explore_steps)

  # explore_steps is traced: the prior and non-prior modes share one compiled program.
  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None)))


def online_returns(learner: Learner, params, env: TaskEnv, tasks: Task, key: jax.Array, *,
                   mode: str, num_episodes: int, num_rounds: int = 3,
                   random_fraction: float = 0.5):
  """Online context collection; returns ``[S, T, E, R]`` (the reported value is ``[..., -1]``).

  Args:
    mode: ``"prior"`` (PEARL: explore with the policy, z = 0 before any context) or
      ``"nonprior"`` (CSRO: uniform random actions for the first ``random_fraction`` of the
      ``num_rounds * episode_length`` collection steps, policy actions after).
    num_rounds: collection episodes; z is re-inferred from all collected transitions after each.
  """
  if mode not in ONLINE_MODES:
    raise ValueError(f"unknown online mode {mode!r}; expected one of {ONLINE_MODES}")
  if num_rounds <= 0:
    raise ValueError(f"num_rounds must be positive, got {num_rounds}")
  if not 0.0 <= random_fraction <= 1.0:
    raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
  explore = 0 if mode == "prior" else round(random_fraction * num_rounds
                                            * env.episode_length)
  tps = jax.vmap(env.task_vector)(tasks)
  fn = _online_fn(learner, env, int(num_episodes), int(num_rounds))
  return fn(params, tasks, tps, key, jnp.asarray(explore, jnp.int32))


def task_vectors(env: TaskEnv, tasks: Task) -> jnp.ndarray:
  return jax.vmap(env.task_vector)(tasks)


__all__ = [
    "ONLINE_MODES", "accumulating_returns", "behaviour_contexts", "conditioned_make_policy",
    "context_returns", "iid_returns", "make_collect_segment", "online_returns", "ood_pairs",
    "pair_key", "task_vectors",
]
