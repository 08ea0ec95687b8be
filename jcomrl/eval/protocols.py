"""Adaptation protocols on held-out tasks.

``iid``: the context of each test task comes from that task's own offline data: one whole
stored trajectory (UNICORN/CORRO) or ``context_size`` random transitions (FOCAL's offline
protocol, without accumulation). The policy then acts deterministically; returns are
``[seeds, tasks, episodes]``, vmapped over all three on device, with fixed keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jcomrl.algos.learner import Learner
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_context
from jcomrl.envs.base import Task, TaskEnv
from jcomrl.eval.rollout import evaluate_returns


def iid_returns(learner: Learner, params, env: TaskEnv, data: OfflineDataset, test_rows,
                test_tasks: Task, key: jax.Array, *, num_episodes: int, context_mode: str,
                context_size: int):
  """Returns ``[S, T, E]`` for params with a leading seed axis ``[S]``.

  Episode ``e`` of test task ``t`` uses its own context draw from task ``t``'s offline data.
  """
  rows = jnp.asarray(test_rows, jnp.int32)
  k_ctx, k_roll = jax.random.split(key)

  def one_seed(p, data):
    def one_episode(kc, kr):
      ctx = sample_context(kc, data, rows, size=context_size, mode=context_mode)
      z = learner.encode(p, ctx, data.task_params[rows])
      return evaluate_returns(env, learner.act, p, z, test_tasks, kr, 1)[:, 0]

    kcs = jax.random.split(k_ctx, num_episodes)
    krs = jax.random.split(k_roll, num_episodes)
    return jax.vmap(one_episode, out_axes=1)(kcs, krs)

  # The dataset is an argument of the jitted function, never a closed-over constant.
  return jax.jit(jax.vmap(one_seed, in_axes=(0, None)))(params, data)
