"""The one recorded env-step loop: policies rolled in tasks with explicit resets.

``record_segment`` steps one ``env.episode_length`` segment from one reset of a task; within it an
episode that terminates early is followed by an *explicit* reset (never brax's cached-state
auto-reset), so ``next_obs`` is always the true successor and ``terminal``/``timeout`` are exact.
The stored ``(terminal, timeout)`` follow the env variant's ``end_convention``
(``TaskEnv.stored_flags``): under ``"no_terminal"`` (UNICORN/CORRO lineage, CORRO
``learner.py:474,484``) an early end is stored as a ``timeout`` with terminal 0.
``make_segment_rollout`` is that loop for one task-conditioned policy snapshot and
``make_batched_rollout`` / ``make_rollout_fn`` its whole-batch form over ``[tasks x snapshots x
episodes]``, vmapped on device. Data collection (``jcomrl.datagen.collect``) and the evaluation
protocols (``jcomrl.eval``) both roll through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jcomrl.envs.base import TaskEnv
from jcomrl.types import Transition


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
