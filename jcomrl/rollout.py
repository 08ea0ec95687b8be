"""The one env-step loop: policies rolled in tasks with explicit resets.

``env_step`` is the one env step (pure, jittable, vmappable): it steps the env, records the
``Transition`` and, where an episode ended, carries an *explicit* reset (never brax's
cached-state auto-reset), so ``next_obs`` is always the true successor and
``terminal``/``timeout`` are exact. The stored ``(terminal, timeout)`` follow the env variant's
``end_convention`` (``TaskEnv.stored_flags``): under ``"no_terminal"`` (UNICORN/CORRO lineage,
CORRO ``learner.py:474,484``) an early end is stored as a ``timeout`` with terminal 0.
``record_segment`` is the one scan over it: one ``env.episode_length`` segment from one reset
of a task (or of a flat batch of tasks). ``make_segment_rollout`` is that loop for one
task-conditioned policy snapshot and ``make_batched_rollout`` / ``make_rollout_fn`` its
whole-batch form over ``[tasks x snapshots x episodes]``, vmapped on device. Data collection
(``jcomrl.datagen.collect``), the evaluation episodes and protocols (``jcomrl.eval``) roll
through ``record_segment``; the behaviour trainers (``jcomrl.datagen.per_task_sac``,
``shared_sac``), whose loop interleaves env steps with SAC updates, step through ``env_step``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jcomrl.envs.base import TaskEnv
from jcomrl.types import Transition


def where_done(done, fresh, old):
  """``fresh`` where ``done`` (broadcast over each leaf's trailing axes), else ``old``: the
  explicit reset of the envs whose episode ended."""
  def pick(a, b):
    mask = done.reshape(done.shape + (1,) * (b.ndim - done.ndim))
    return jnp.where(mask > 0, a, b).astype(b.dtype)

  return jax.tree.map(pick, fresh, old)


def env_step(env: TaskEnv, state, action, task, reset_key=None, *, batched: bool = False,
             reset_if=None):
  """The one env step: ``(carried state, successor, Transition)``; pure, jittable, vmappable.

  Steps ``state`` with ``action`` in ``task`` and records the step as a ``Transition`` with the
  true ``s'`` and the flags the env variant's ``end_convention`` stores
  (``TaskEnv.stored_flags``). The carried state is the successor, except where its episode
  ended and ``reset_key`` is given: there it is an *explicit* reset (never a cached
  auto-reset), so a stored ``next_obs`` is always the true successor. ``reset_key=None`` never
  resets (an episode that ended early is stepped on: the ``"no_terminal"`` evaluation episode).

  ``batched``: ``state``, ``action``, ``task`` and ``reset_key`` carry one leading batch axis
  ``[B]``; the env is stepped and reset under one ``vmap`` over it, and the reset is computed
  (``lax.cond``) only when some episode of the batch ended (and ``reset_if``, a traced bool,
  holds), not at every step as a per-episode select would.
  """
  nxt = (jax.vmap(env.step) if batched else env.step)(state, action, task)
  terminal, timeout = env.stored_flags(nxt)
  tr = Transition(obs=state.obs, action=action, reward=nxt.reward, next_obs=nxt.obs,
                  terminal=terminal, timeout=timeout)
  if reset_key is None:
    return nxt, nxt, tr
  if not batched:
    return where_done(nxt.done, env.reset(reset_key, task), nxt), nxt, tr
  need = jnp.any(nxt.done > 0)
  if reset_if is not None:
    need = jnp.logical_and(need, reset_if)
  carried = jax.lax.cond(need, lambda: where_done(nxt.done, jax.vmap(env.reset)(reset_key, task),
                                                  nxt), lambda: nxt)
  return carried, nxt, tr


def record_segment(env: TaskEnv, choose: Callable, task, key: jax.Array, *,
                   reset_after_done: bool = True, carry=None, after: Callable | None = None,
                   batched: bool = False, with_carry: bool = False):
  """The one env-step loop: ``env.episode_length`` steps (``env_step``) from one reset of ``task``.

  ``choose(state, i, k) -> (action, reset_key)`` picks step ``i``'s action from the current
  ``EnvState`` and that step's key (``k`` is the ``i``-th of ``split(k_steps, length)`` after
  ``k_reset, k_steps = split(key)``), and returns the key of the explicit reset that follows a
  true end (``env_step``). ``reset_after_done=False`` never resets: an episode that ended
  early is stepped on to the end (the ``"no_terminal"`` evaluation episode). Returns
  ``Transition [episode_length]`` with the env's stored flags. Collection segments, evaluation
  episodes, recorded evaluation episodes and the online protocol's collection segments are this
  loop with their own ``choose`` (``make_batched_rollout`` is its whole-batch form).

  ``carry`` (a pytree, e.g. a history-dependent policy's state): when given, ``choose(state, i,
  k, carry) -> (action, reset_key, carry)`` threads it through the steps, and ``after(carry,
  successor) -> carry`` (optional) updates it from each step's successor ``EnvState`` (e.g. an
  episode return). ``with_carry``: return ``(final carry, trajectory)``.

  ``batched``: ``key`` is ``[B]`` keys and ``task`` ``[B]`` tasks, one segment each, stepped as
  one batch (``env_step(batched=True)``: a reset is computed only at steps where some episode
  ended, and never after the last step, whose successor is not used); the random streams are
  those of ``vmap``-ing the unbatched loop; the trajectory is ``[episode_length, B]``.
  """
  length = env.episode_length
  if batched:
    k0 = jax.vmap(jax.random.split)(key)
    k_reset, k_steps = k0[:, 0], k0[:, 1]
    state0 = jax.vmap(env.reset)(k_reset, task)
    step_keys = jnp.moveaxis(jax.vmap(lambda k: jax.random.split(k, length))(k_steps), 1, 0)
  else:
    k_reset, k_steps = jax.random.split(key)
    state0 = env.reset(k_reset, task)
    step_keys = jax.random.split(k_steps, length)

  def step(sc, inp):
    state, c = sc
    i, k = inp
    if carry is None:
      action, k_next_reset = choose(state, i, k)
    else:
      action, k_next_reset, c = choose(state, i, k, c)
    nxt, succ, tr = env_step(env, state, action, task,
                             k_next_reset if reset_after_done else None, batched=batched,
                             reset_if=i < length - 1 if batched else None)
    if after is not None:
      c = after(c, succ)
    return (nxt, c), tr

  (_, c), traj = jax.lax.scan(step, (state0, carry), (jnp.arange(length), step_keys))
  return (c, traj) if with_carry else traj


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

  def rollout(params, tasks, keys):
    lead = keys.shape[:3]
    n = math.prod(lead)
    flat_tasks = jax.tree.map(lambda x: jnp.repeat(x, n // lead[0], axis=0), tasks)

    def choose(state, i, key):
      ks = v_split(key)
      k_act, k_reset = ks[:, 0], ks[:, 1]
      nested = (state.obs.reshape(lead + state.obs.shape[1:]),
                k_act.reshape(lead + k_act.shape[1:]))
      action = v_act(params, tasks, nested)
      return action.reshape((n,) + action.shape[3:]), k_reset

    traj = record_segment(env, choose, flat_tasks, keys.reshape((n,) + keys.shape[3:]),
                          reset_after_done=reset_after_done, batched=True)  # [length, B, ...]
    traj = jax.tree.map(lambda x: jnp.moveaxis(x.reshape((length,) + lead + x.shape[2:]), 0, 3),
                        traj)  # [T, K, E, length, ...]
    last_open = 1.0 - traj.terminal[..., -1]
    return traj.replace(timeout=traj.timeout.at[..., -1].max(last_open))

  return rollout


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
