"""Adaptation protocols on held-out tasks, as the official codes evaluate (FOCAL
``rl_algorithm.py`` ``collect_paths``; CORRO / UNICORN ``train_offline_FOCAL.py`` ``evaluate``;
CSRO's online exploration; UNICORN paper §3.3 for the OOD contexts).

Every protocol is one jitted function vmapped over seeds x test tasks x episodes (or context
sources) on device; params carry a leading seed axis ``[S]``; datasets, contexts and task tables
are jit *arguments*; all randomness comes from the ``key`` argument, so a protocol is
deterministic given its key (bit-for-bit on one device). Compiled functions are cached per
``(learner, env, static settings)``, so calling a protocol again does not retrace.

* ``iid_returns``: context from the test task's own offline data: one whole stored trajectory
  (UNICORN/CORRO) or ``context_size`` random transitions (FOCAL's offline context without
  accumulation); one deterministic episode per context draw. ``[S, T, E]``.
* ``accumulating_returns``: FOCAL's protocol: per round add ``per_round`` (``H`` =
  ``env.episode_length``: 200 MuJoCo, 20 point-robot) random offline transitions of the test
  task to the context, re-infer z from *all* accumulated transitions, run one deterministic
  episode. ``[S, T, E, R]``; FOCAL reports the last round.
* ``behaviour_contexts`` + ``context_returns``: UNICORN's behaviour-shift (OOD) protocol. jcomrl's
  behaviour policy is ONE task-conditioned network (snapshots ``k = 0..K-1``), so "the behaviour
  policy of task j" is snapshot k conditioned on task j's task vector. The context of test task
  t is one (stochastic) rollout, *in task t*, of snapshot k conditioned on task j, for every
  (k, j) pair; z is inferred from it and one deterministic episode is run. ``[S, T, Q]`` over
  the Q pairs; the OOD score is the mean over policies of the mean over test tasks. By default
  the untrained snapshot 0 is not a source (``ood_snapshot_ids``).
* ``online_returns``: the agent collects its own context; CSRO's schedule by default (non-prior:
  random-then-policy collection episodes, evaluation episodes with z = 0 until
  ``num_exp_traj_eval`` evaluation episodes have run, z inferred after each evaluation episode;
  prior: the deterministic evaluation episodes are the context), or jcomrl's earlier
  ``"reinfer_each_round"``. See ``online_returns``. ``[S, T, E, R]``; the reported value is the
  last round's return.

Stochastic encoders (UNICORN) give a *sampled* code at evaluation by default, as UNICORN's
``context_encoding`` does; ``code="mean"`` gives the mean code (``make_encode``). Evaluation
episodes count rewards per the env's ``end_convention`` (``jcomrl.eval.rollout``).

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

from jcomrl.algos.backbones.base import as_policy
from jcomrl.algos.learner import Learner
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_context, sample_transitions
from jcomrl.envs.base import Task, TaskEnv
from jcomrl.eval.rollout import (
  evaluate_returns,
  fresh_policy_state,
  make_episode_return,
  make_recorded_episode,
)
from jcomrl.rollout import make_segment_rollout, record_segment
from jcomrl.types import Transition

ONLINE_MODES = ("prior", "nonprior")


def _num(tasks: Task) -> int:
  return int(jax.tree.leaves(tasks)[0].shape[0])


CODE_MODES = ("sample", "mean")


def check_code_mode(code: str) -> str:
  if code not in CODE_MODES:
    raise ValueError(f"unknown encoder code mode {code!r}; expected one of {CODE_MODES}")
  return code


def make_encode(learner: Learner, code: str = "sample"):
  """``encode(params, context [K], task_params [P], key) -> z [Z]`` for one context.

  ``code="sample"`` (default) passes ``key`` to the learner's encoder, so a stochastic encoder
  returns a sampled code, as UNICORN does at evaluation: ``MLPEncoder.context_encoding`` ->
  ``forward``, which always draws ``rsample()`` (``models/encoder.py:246-250,262``), called by
  ``evaluate`` (``train_offline_FOCAL.py:484``). ``code="mean"`` gives the noise-free mean code.
  Deterministic encoders ignore the key, so both modes are identical for them.
  """
  check_code_mode(code)
  if code == "mean":
    return lambda p, ctx, tp, key: learner.encode(p, ctx, tp)
  return lambda p, ctx, tp, key: learner.encode(p, ctx, tp, key)


# --------------------------------------------------------------------------------------------
# IID: context from the test task's own offline data
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _iid_fn(learner: Learner, env: TaskEnv, num_episodes: int, context_mode: str,
            context_size: int, code: str):
  encode = make_encode(learner, code)

  def one_seed(p, data, rows, tasks, k_ctx, k_roll, perm):
    def one_episode(kc, kr):
      ctx = sample_context(kc, data, rows, size=context_size, mode=context_mode)
      z = encode(p, ctx, data.task_params[rows], jax.random.fold_in(kc, 1))  # [T, Z]
      # identity, or the z-shuffle control's derangement (a code may be a pytree: MACAW's
      # adapted policy)
      z = jax.tree.map(lambda x: x[perm], z)
      return evaluate_returns(env, learner.act, p, z, tasks, kr, 1)[:, 0]

    kcs = jax.random.split(k_ctx, num_episodes)
    krs = jax.random.split(k_roll, num_episodes)
    return jax.vmap(one_episode, out_axes=1)(kcs, krs)

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None, None, None)))


def derangement(num: int, key: jax.Array) -> np.ndarray:
  """A random permutation of ``range(num)`` with no fixed point (``num >= 2``): a uniformly
  random cyclic order, so every task gets the code of another task."""
  if num < 2:
    raise ValueError(f"a z-shuffle needs at least 2 test tasks, got {num}")
  order = np.asarray(jax.random.permutation(key, num))
  perm = np.empty(num, np.int32)
  perm[order] = np.roll(order, -1)
  return perm


def iid_returns(learner: Learner, params, env: TaskEnv, data: OfflineDataset, test_rows,
                test_tasks: Task, key: jax.Array, *, num_episodes: int, context_mode: str,
                context_size: int, code: str = "sample", z_permutation=None):
  """Returns ``[S, T, E]`` for params with a leading seed axis ``[S]``.

  Episode ``e`` of test task ``t`` uses its own context draw from task ``t``'s offline data;
  ``code``: see ``make_encode``. ``z_permutation [T]`` (the z-shuffle control): test task ``t``
  acts with the code inferred for test task ``z_permutation[t]`` (default: its own).
  """
  rows = jnp.asarray(test_rows, jnp.int32)
  k_ctx, k_roll = jax.random.split(key)
  num = int(rows.shape[0])
  perm = jnp.arange(num, dtype=jnp.int32) if z_permutation is None else jnp.asarray(
      z_permutation, jnp.int32)
  if perm.shape != (num,):
    raise ValueError(f"z_permutation must have shape ({num},), got {perm.shape}")
  fn = _iid_fn(learner, env, int(num_episodes), context_mode, int(context_size),
               check_code_mode(code))
  return fn(params, data, rows, test_tasks, k_ctx, k_roll, perm)


@functools.lru_cache(maxsize=64)
def _accumulating_fn(learner: Learner, env: TaskEnv, num_episodes: int, num_rounds: int,
                     per_round: int, code: str):
  episode = make_episode_return(env, learner.act, deterministic=True)
  enc = jax.vmap(make_encode(learner, code), in_axes=(None, 0, 0, 0))

  def one_seed(p, data, rows, tasks, k_ctx, k_roll):
    tps = data.task_params[rows]
    # Round r encodes the first (r + 1) * per_round transitions: a switch over the static
    # prefix lengths (exact for every encoder) inside a scan, so the episode compiles once.
    branches = [(lambda c, k, n=(i + 1) * per_round: enc(
        p, jax.tree.map(lambda x: x[:, :n], c), tps, jax.random.split(k, rows.shape[0])))
        for i in range(num_rounds)]

    def one_episode(kc, kr):
      ctx = sample_transitions(kc, data, rows, num_rounds * per_round)  # [T, R * n]

      def one_round(_, r):
        z = jax.lax.switch(r, branches, ctx, jax.random.fold_in(kc, r))
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
                         num_rounds: int = 3, per_round: int | None = None,
                         code: str = "sample"):
  """FOCAL's accumulating offline context: returns ``[S, T, E, R]`` (report ``[..., -1]``).

  Round ``r`` encodes the first ``(r + 1) * per_round`` of one fixed draw of random offline
  transitions of the test task (so contexts only grow) and runs one deterministic episode.
  ``per_round=None`` = ``env.episode_length`` (rlkit's ``offline_rollout`` draws
  ``random_batch(max_path_length)`` per round: CSRO ``rlkit/samplers/util.py:8``; 200 on MuJoCo,
  20 on point-robot). ``code``: see ``make_encode``.
  """
  per_round = env.episode_length if per_round is None else per_round
  if num_rounds <= 0 or per_round <= 0:
    raise ValueError(f"num_rounds and per_round must be positive, got {num_rounds}, {per_round}")
  rows = jnp.asarray(test_rows, jnp.int32)
  k_ctx, k_roll = jax.random.split(key)
  fn = _accumulating_fn(learner, env, int(num_episodes), int(num_rounds), int(per_round),
                        check_code_mode(code))
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


OOD_SNAPSHOT_SETS = ("trained", "all")


def ood_snapshot_ids(num_snapshots: int, snapshots="trained", steps=None) -> list[int]:
  """The behaviour snapshots of the OOD protocol.

  ``"trained"`` (default): every snapshot but the untrained one (id 0), as UNICORN's OOD lists,
  which start at a partly trained agent (``ood_test_config/AntDir-v0.txt``: agent20 ... agent200
  of each task; ``HopperRandParams-v0.txt``: agent100 ... agent700): CORRO's data collection
  saves its first checkpoint after ``save_interval`` iterations (``learner.py:199-200,294-302``)
  and never the untrained policy. ``"all"``: snapshot 0 too. A sequence: those ids.
  ``steps`` (the snapshots' env steps, ``BehaviourPolicies.steps``), when given, decides what is
  trained: every snapshot taken after a step > 0. jcomrl's trainers store the untrained policy
  first (step 0); the official agents a dataset imports (``datagen.official_behaviour``) are all
  trained, agent20 first, and all are sources as in UNICORN's lists.
  """
  if isinstance(snapshots, str):
    if snapshots not in OOD_SNAPSHOT_SETS:
      raise ValueError(f"unknown ood snapshot set {snapshots!r}; expected one of "
                       f"{OOD_SNAPSHOT_SETS} or a list of snapshot ids")
    if snapshots == "trained" and steps is not None:
      return [i for i in range(num_snapshots) if int(np.asarray(steps)[i]) > 0]
    return list(range(1 if snapshots == "trained" else 0, num_snapshots))
  return [int(s) for s in snapshots]


def ood_pairs(num_snapshots: int, source_rows, snapshots="trained",
              max_pairs: int | None = None, seed: int = 0, steps=None) -> np.ndarray:
  """All ``(snapshot, source task row)`` pairs ``[Q, 2]``, optionally a fixed random subset.

  ``snapshots``: see ``ood_snapshot_ids`` (default: the trained snapshots, not the untrained).
  """
  snaps = ood_snapshot_ids(num_snapshots, snapshots, steps)
  bad = [s for s in snaps if not 0 <= s < num_snapshots]
  if bad:
    raise ValueError(f"snapshot ids {bad} outside the {num_snapshots} behaviour snapshots")
  pairs = np.asarray([(k, int(j)) for k in snaps for j in source_rows], np.int32)
  if max_pairs is not None and 0 < max_pairs < len(pairs):
    pick = np.sort(np.random.RandomState(seed).choice(len(pairs), max_pairs, replace=False))
    pairs = pairs[pick]
  return pairs


@functools.lru_cache(maxsize=64)
def _context_returns_fn(learner: Learner, env: TaskEnv, code: str):
  episode = make_episode_return(env, learner.act, deterministic=True)
  encode = make_encode(learner, code)

  def one_seed(p, contexts, task_params, tasks, key):
    def one_task(ctx_t, tp, task, t):
      def one_pair(ctx, q):
        k_ep = pair_key(key, t, q)
        z = encode(p, ctx, tp, jax.random.fold_in(k_ep, 1))
        return episode(p, z, task, k_ep)

      return jax.vmap(one_pair)(ctx_t, jnp.arange(ctx_t.reward.shape[0]))

    return jax.vmap(one_task)(contexts, task_params, tasks, jnp.arange(task_params.shape[0]))

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None)))


def context_returns(learner: Learner, params, env: TaskEnv, contexts: Transition,
                    task_params: jnp.ndarray, tasks: Task, key: jax.Array, *,
                    code: str = "sample"):
  """One deterministic episode per given context: ``contexts [T, Q, K]`` -> returns ``[S, T, Q]``.

  ``task_params [T, P]`` are the true parameters of the tasks (used only by the oracle);
  ``code``: see ``make_encode``.
  """
  fn = _context_returns_fn(learner, env, check_code_mode(code))
  return fn(params, contexts, jnp.asarray(task_params), tasks, key)


# --------------------------------------------------------------------------------------------
# Online: the agent collects its own context
# --------------------------------------------------------------------------------------------


def make_collect_segment(env: TaskEnv, act: Callable):
  """``collect(params, z, task, key, first_step, explore_steps) -> Transition [H]``.

  One fixed-length segment of ``env.episode_length`` steps of ``act`` (stochastic; a memoryless
  ``act`` or a history-dependent ``Policy``, restarted after each reset), with an
  explicit reset after a true termination; the action of global collection step
  ``first_step + i`` is uniform in [-1, 1]^A instead while it is ``< explore_steps``.
  """

  policy = as_policy(act)

  def collect(params, z, task, key, first_step, explore_steps):
    def choose(state, i, k, ps):
      k_act, k_rand, k_reset = jax.random.split(k, 3)
      ps = fresh_policy_state(policy, params, z, state, ps)
      a_pol, ps = policy.step(params, ps, state.obs, state.reward, k_act, False)
      a_rand = jax.random.uniform(k_rand, (env.action_size,), minval=-1.0, maxval=1.0)
      return jnp.where(first_step + i < explore_steps, a_rand, a_pol), k_reset, ps

    return record_segment(env, choose, task, key, carry=policy.init(params, z))

  return collect


ONLINE_SCHEDULES = ("csro", "reinfer_each_round")


def csro_online_defaults(env: TaskEnv) -> tuple[int, int]:
  """``(rounds, exploration episodes before the first inference)`` of CSRO's configs.

  Rounds = ``num_steps_per_eval / max_path_length`` and the second value is
  ``num_exp_traj_eval``: point-robot 400 / 20 = 20 rounds and 1 (CSRO
  ``configs/point-robot.json:19,22,26``; sparse point-robot, which CSRO does not ship, follows
  it); MuJoCo 600 / 200 = 3 rounds and 2 (``configs/walker_rand_params.json:20,23,27``, the same
  in ``hopper_rand_params.json`` and ``cheetah-vel.json``); ant-dir, whose CSRO settings are
  ant-goal's (CSRO ships no ant-dir config; ``jcomrl.algos.presets``), 800 / 200 = 4 rounds and 2
  (``configs/ant-goal.json:19,22,26``).
  """
  if env.name in ("point_robot", "sparse_point_robot"):
    return 20, 1
  if env.name == "ant_dir":
    return 4, 2
  return 3, 2


def make_online_run(learner: Learner, env: TaskEnv, *, mode: str, schedule: str,
                    num_rounds: int, infer_after: int, code: str = "sample"):
  """``run(params, task, task_params, key, explore_steps) -> (returns [R], z_eval [R, Z],
  context [R * H])`` for one test task and one seed: the online protocol of ``online_returns``.

  ``z_eval[r]`` is the code of round ``r``'s evaluation episode and ``context`` the buffer the
  encoder reads (its first ``(r + 1) * H`` transitions after round ``r``), for checks.
  """
  if mode not in ONLINE_MODES:
    raise ValueError(f"unknown online mode {mode!r}; expected one of {ONLINE_MODES}")
  if schedule not in ONLINE_SCHEDULES:
    raise ValueError(f"unknown online schedule {schedule!r}; expected one of {ONLINE_SCHEDULES}")
  h, r_total = env.episode_length, int(num_rounds)
  collect = make_collect_segment(env, learner.act)
  episode = make_episode_return(env, learner.act, deterministic=True)
  recorded = make_recorded_episode(env, learner.act, deterministic=True)
  encode = make_encode(learner, code)
  z_size = learner.z_size
  csro = schedule == "csro"
  record_eval = csro and mode == "prior"

  def run(p, task, tp, key, explore_steps):
    template = jax.eval_shape(lambda: collect(p, jnp.zeros(z_size), task, key, 0, 0))
    buf0 = jax.tree.map(lambda s: jnp.zeros((r_total * h,) + s.shape[1:], s.dtype), template)
    branches = [
        (lambda b, k, n=(i + 1) * h: encode(p, jax.tree.map(lambda x: x[:n], b), tp, k)
         .astype(jnp.float32)) for i in range(r_total)]

    def one_round(carry, r):
      buf, z = carry
      k_col, k_eval, k_code = jax.random.split(jax.random.fold_in(key, r), 3)
      if record_eval:  # PEARL prior mode: the evaluation episode is the context
        ret, traj = recorded(p, z, task, k_eval)
      else:
        traj = collect(p, z, task, k_col, r * h, explore_steps)
      buf = jax.tree.map(lambda b, t: jax.lax.dynamic_update_slice_in_dim(b, t, r * h, 0),
                         buf, traj)
      z_new = jax.lax.switch(r, branches, buf, k_code)  # valid prefix = (r + 1) * H
      if not csro:  # re-infer after every collection episode, evaluate with the new code
        return (buf, z_new), (episode(p, z_new, task, k_eval), z_new)
      if not record_eval:
        ret = episode(p, z, task, k_eval)
      # CSRO infers only once num_exp_traj_eval * H evaluation steps have run, and after the
      # round's evaluation episode (rl_algorithm.py:513-514, 569-570).
      z_next = jnp.where(r + 1 >= infer_after, z_new, z)
      return (buf, z_next), (ret, z)

    (buf, _), (rets, zs) = jax.lax.scan(one_round, (buf0, jnp.zeros(z_size, jnp.float32)),
                                        jnp.arange(r_total))
    return rets, zs, buf

  return run


@functools.lru_cache(maxsize=64)
def _online_fn(learner: Learner, env: TaskEnv, num_episodes: int, mode: str, schedule: str,
               num_rounds: int, infer_after: int, code: str):
  run = make_online_run(learner, env, mode=mode, schedule=schedule, num_rounds=num_rounds,
                        infer_after=infer_after, code=code)

  def one_run(p, task, tp, key, explore_steps):
    return run(p, task, tp, key, explore_steps)[0]  # [R]

  def one_seed(p, tasks, tps, key, explore_steps):
    num_tasks = tps.shape[0]
    keys = jax.random.split(key, num_tasks * num_episodes).reshape(
        (num_tasks, num_episodes) + key.shape)
    over_eps = jax.vmap(one_run, in_axes=(None, None, None, 0, None))
    return jax.vmap(over_eps, in_axes=(None, 0, 0, 0, None))(p, tasks, tps, keys, explore_steps)

  return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None)))


def online_returns(learner: Learner, params, env: TaskEnv, tasks: Task, key: jax.Array, *,
                   mode: str, num_episodes: int, num_rounds: int | None = None,
                   random_fraction: float = 0.5, schedule: str = "csro",
                   infer_after: int | None = None, code: str = "sample"):
  """Online context collection; returns ``[S, T, E, R]`` (the reported value is ``[..., -1]``).

  Schedules (``H = env.episode_length``, ``R = num_rounds``, z starts at 0):

  * ``"csro"`` (default; CSRO ``rlkit/core/rl_algorithm.py``). ``mode="nonprior"``
    (``collect_np_online_paths``, lines 536-581): per round, one stochastic collection episode
    with the current z whose steps are uniform random actions while ``r * H + step <
    random_fraction * R * H`` (``epsilon_decay``, lines 528-534: below half of
    ``num_steps_per_eval``; ``samplers/util.py:346-354``), appended to the context; then one
    deterministic evaluation episode with the *same* z, not added to the context; only then, once
    ``infer_after * H`` evaluation steps have run (``num_exp_traj_eval``), z is re-inferred
    from all collected transitions. With R = 3, infer_after = 2: evaluation episodes 1-2 run
    with z = 0 and the last with z from collection episodes 1-2. ``mode="prior"``
    (``collect_online_paths``, lines 497-526, PEARL): the deterministic evaluation episodes are
    themselves the context (episode r uses z from episodes ``< r`` once ``infer_after``
    episodes exist). Exact when evaluation episodes last H steps; CSRO counts evaluation *steps*
    (``num_steps_per_eval``), so after early terminations it runs more, shorter rounds, which
    this fixed-R form does not.
  * ``"reinfer_each_round"`` (jcomrl's earlier schedule): per round one collection episode
    (random actions as above in ``"nonprior"``, stochastic policy actions in ``"prior"``), z
    re-inferred from all collected transitions, then one deterministic evaluation episode with
    that new z.

  Args:
    mode: ``"nonprior"`` (CSRO's headline) or ``"prior"``.
    num_rounds: ``None`` = CSRO's per env (``csro_online_defaults``: 20 on point-robot, 4 on
      ant-dir, else 3).
    random_fraction: CSRO's share of random-action collection steps (0.5).
    infer_after: ``num_exp_traj_eval``; ``None`` = CSRO's per env (1 point-robot, 2 MuJoCo).
    code: ``"sample"`` or ``"mean"`` code of a stochastic encoder (``make_encode``).
  """
  if mode not in ONLINE_MODES:
    raise ValueError(f"unknown online mode {mode!r}; expected one of {ONLINE_MODES}")
  rounds0, infer0 = csro_online_defaults(env)
  num_rounds = rounds0 if num_rounds is None else int(num_rounds)
  infer_after = infer0 if infer_after is None else int(infer_after)
  if num_rounds <= 0 or infer_after <= 0:
    raise ValueError(f"num_rounds and infer_after must be positive, got {num_rounds}, "
                     f"{infer_after}")
  if not 0.0 <= random_fraction <= 1.0:
    raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
  explore = 0 if mode == "prior" else round(random_fraction * num_rounds
                                            * env.episode_length)
  tps = jax.vmap(env.task_vector)(tasks)
  fn = _online_fn(learner, env, int(num_episodes), mode, schedule, num_rounds, infer_after,
                  check_code_mode(code))
  return fn(params, tasks, tps, key, jnp.asarray(explore, jnp.int32))


def task_vectors(env: TaskEnv, tasks: Task) -> jnp.ndarray:
  return jax.vmap(env.task_vector)(tasks)


__all__ = [
    "CODE_MODES", "OOD_SNAPSHOT_SETS", "ONLINE_MODES", "ONLINE_SCHEDULES", "accumulating_returns",
    "behaviour_contexts", "conditioned_make_policy", "context_returns", "csro_online_defaults",
    "iid_returns", "make_collect_segment", "make_encode", "make_online_run", "online_returns",
    "ood_pairs", "ood_snapshot_ids", "pair_key", "task_vectors",
]
