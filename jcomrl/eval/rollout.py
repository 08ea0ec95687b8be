"""Vmapped evaluation rollouts of a context-conditioned policy (tasks x episodes on device)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jcomrl.envs.base import Task, TaskEnv


def make_episode_return(env: TaskEnv, act: Callable, deterministic: bool = True):
  """``episode_return(params, z, task, key) -> return`` for one episode of ``act(params, obs, z)``.

  Rewards after the first ``done`` are not counted (no auto-reset).
  """

  def episode_return(params, z, task, key):
    k_reset, k_steps = jax.random.split(key)
    state = env.reset(k_reset, task)

    def step(carry, k):
      s, ret, alive = carry
      a = act(params, s.obs, z, k, deterministic)
      s = env.step(s, a, task)
      ret = ret + alive * s.reward
      alive = alive * (1.0 - s.done)
      return (s, ret, alive), None

    (_, ret, _), _ = jax.lax.scan(step, (state, jnp.zeros(()), jnp.ones(())),
                                  jax.random.split(k_steps, env.episode_length))
    return ret

  return episode_return


def evaluate_returns(env: TaskEnv, act: Callable, params, z: jnp.ndarray, tasks: Task,
                     key: jax.Array, num_episodes: int, deterministic: bool = True):
  """Returns ``[T, num_episodes]`` for task codes ``z [T, Z]`` in ``tasks [T]``."""
  ep = make_episode_return(env, act, deterministic)
  num_tasks = z.shape[0]
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
