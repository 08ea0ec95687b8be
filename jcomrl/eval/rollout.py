"""Vmapped evaluation rollouts of a context-conditioned policy (tasks x episodes on device)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones.base import as_policy
from jcomrl.envs.base import Task, TaskEnv
from jcomrl.rollout import first_episode_returns, record_segment


def fresh_policy_state(policy, params, z, state, pstate):
  """The policy state ``init(params, z)`` where ``state`` was just reset (``step_count == 0``:
  the explicit reset after an early end in a recorded segment), else ``pstate``."""
  return jax.tree.map(lambda a, b: jnp.where(state.step_count == 0, a, b),
                      policy.init(params, z), pstate)


def make_episode_return(env: TaskEnv, act: Callable, deterministic: bool = True):
  """``episode_return(params, z, task, key) -> return`` for one episode of ``act(params, obs, z)``.

  ``act`` is a memoryless ``act(params, obs, z, key, deterministic)`` or a history-dependent
  :class:`~jcomrl.algos.backbones.base.Policy` (``init`` at the reset, then ``step`` with the
  previous reward at every step); a memoryless ``act`` sees the same calls and keys as before
  the ``Policy`` form existed.

  Always ``env.episode_length`` steps from one reset (never an auto-reset). What counts follows
  the env variant's ``end_convention`` (``jcomrl.envs.base``): ``"true_terminal"`` (FOCAL/CSRO:
  rlkit ``samplers/util.py:273`` ends the episode at ``done``) counts rewards up to and
  including the first ``done``; ``"no_terminal"`` (UNICORN ``train_offline_FOCAL.py:491-504``,
  CORRO ``learner.py:262-285``: a fixed 200-step loop, no stop at a fall) sums all rewards.
  """
  count_all = env.end_convention == "no_terminal"
  policy = as_policy(act)

  def episode_return(params, z, task, key):
    def choose(state, i, k, c):
      ps, ret, alive = c
      a, ps = policy.step(params, ps, state.obs, state.reward, k, deterministic)
      return a, None, (ps, ret, alive)

    def after(c, s):
      ps, ret, alive = c
      ret = ret + alive * s.reward
      if not count_all:
        alive = alive * (1.0 - s.done)
      return ps, ret, alive

    init = (policy.init(params, z), jnp.zeros(()), jnp.ones(()))
    (_, ret, _), _ = record_segment(env, choose, task, key, reset_after_done=False, carry=init,
                                    after=after, with_carry=True)
    return ret

  return episode_return


def make_recorded_episode(env: TaskEnv, act: Callable, deterministic: bool = True):
  """``episode(params, z, task, key) -> (return, Transition [episode_length])``.

  One evaluation episode that is also recorded as context (PEARL's prior-mode online protocol):
  the return is what ``make_episode_return`` counts; the record holds ``episode_length`` real
  transitions with the stored flags of the env's convention. ``"no_terminal"``: the episode as
  evaluated (no reset). ``"true_terminal"``: an explicit reset follows an early end (as in a
  collection segment), so the steps after it are a fresh episode with the same code.
  """
  count_all = env.end_convention == "no_terminal"
  policy = as_policy(act)

  def episode(params, z, task, key):
    def choose(state, i, k, ps):
      k_act, k_reset = jax.random.split(k)
      ps = fresh_policy_state(policy, params, z, state, ps)
      a, ps = policy.step(params, ps, state.obs, state.reward, k_act, deterministic)
      return a, k_reset, ps

    traj = record_segment(env, choose, task, key, reset_after_done=not count_all,
                          carry=policy.init(params, z))
    ret = jnp.sum(traj.reward) if count_all else first_episode_returns(traj)
    return ret, traj

  return episode


def evaluate_returns(env: TaskEnv, act: Callable, params, z: jnp.ndarray, tasks: Task,
                     key: jax.Array, num_episodes: int, deterministic: bool = True):
  """Returns ``[T, num_episodes]`` for task codes ``z [T, Z]`` (or a pytree with leading
  ``[T]``) in ``tasks [T]``."""
  ep = make_episode_return(env, act, deterministic)
  num_tasks = jax.tree.leaves(z)[0].shape[0]
  keys = jax.random.split(key, num_tasks * num_episodes)
  keys = keys.reshape((num_tasks, num_episodes) + keys.shape[1:])
  fn = jax.vmap(jax.vmap(ep, in_axes=(None, None, None, 0)), in_axes=(None, 0, 0, 0))
  return fn(params, z, tasks, keys)


def random_policy_returns(env: TaskEnv, tasks: Task, key: jax.Array, num_episodes: int):
  """Returns ``[T, num_episodes]`` of a uniform random policy (the normalisation floor)."""
  act = lambda params, obs, z, k, det: jax.random.uniform(k, (env.action_size,), minval=-1.0,
                                                          maxval=1.0)
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  return evaluate_returns(env, act, None, jnp.zeros((num_tasks, 1)), tasks, key, num_episodes,
                          deterministic=False)
