"""Behaviour policies trained with ``brax.training`` on a task-conditioned wrapper of a TaskEnv.

Each episode of the wrapper draws one task from a fixed task table; the policy observes the env
observation with the task's ``task_vector`` appended, so one network serves every task (a
"multi-task expert"). K parameter snapshots are kept along training, the untrained one first;
rolling them out gives datasets that mix random -> expert behaviour (FOCAL/CSRO's checkpoint
recipe) and, kept with the dataset, the out-of-distribution context sources of UNICORN.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs import base as brax_base
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo_train

from jcomrl._compat import ensure_brax_training_compat
from jcomrl.envs.base import Task, TaskEnv


class TaskConditionedBraxEnv(brax_base.Env):
  """Adapts a ``TaskEnv`` to ``brax.envs.Env``: a task drawn per reset, task vector in the obs.

  ``done`` reported to brax is the *true* termination only; brax's ``EpisodeWrapper`` adds the
  time limit. The task table is small and fixed for a behaviour-training run, so it is held by
  the wrapper (the brax trainer's env API has no slot for it).
  """

  def __init__(self, env: TaskEnv, tasks: Task):
    self._env = env
    self._tasks = tasks
    self._num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])

  def _task(self, index):
    return jax.tree.map(lambda x: x[index], self._tasks)

  def _obs(self, obs, task):
    return jnp.concatenate([obs, self._env.task_vector(task)], axis=-1)

  def reset(self, rng):
    k_task, k_reset = jax.random.split(rng)
    index = jax.random.randint(k_task, (), 0, self._num_tasks)
    task = self._task(index)
    s = self._env.reset(k_reset, task)
    return brax_base.State(pipeline_state=s, obs=self._obs(s.obs, task), reward=s.reward,
                           done=jnp.zeros(()), metrics={}, info={"task_index": index})

  def step(self, state, action):
    task = self._task(state.info["task_index"])
    s = self._env.step(state.pipeline_state, action, task)
    return state.replace(pipeline_state=s, obs=self._obs(s.obs, task), reward=s.reward,
                         done=s.terminal)

  @property
  def observation_size(self):
    return self._env.observation_size + self._env.task_size

  @property
  def action_size(self):
    return self._env.action_size

  @property
  def backend(self):
    return "jax"


@dataclasses.dataclass(frozen=True)
class BehaviourPolicies:
  """K snapshots of one task-conditioned policy.

  Attributes:
    params: brax ``(normalizer_params, policy_params)`` with a leading snapshot axis ``[K]``.
    steps: env steps at which each snapshot was taken (first = 0, the untrained policy).
    make_policy: ``make_policy(params, deterministic) -> policy(obs, key) -> (action, extras)``
      for *one* snapshot's params (vmap it over the snapshot axis).
    hidden_sizes: the policy network's hidden layer sizes (to rebuild it after a restore).
  """

  params: Any
  steps: np.ndarray
  make_policy: Callable
  hidden_sizes: tuple[int, ...]

  @property
  def num_snapshots(self) -> int:
    return int(self.steps.shape[0])

  def select(self, ids) -> "BehaviourPolicies":
    ids = np.asarray(ids)
    return dataclasses.replace(self, params=jax.tree.map(lambda x: x[ids], self.params),
                               steps=self.steps[ids])


def make_ppo_policy_factory(env: TaskEnv, hidden_sizes: tuple[int, ...]):
  """Rebuilds ``make_policy`` for snapshots of a PPO behaviour policy (e.g. after a restore)."""
  networks = ppo_networks.make_ppo_networks(
      env.observation_size + env.task_size, env.action_size,
      policy_hidden_layer_sizes=tuple(hidden_sizes), value_hidden_layer_sizes=tuple(hidden_sizes))
  return ppo_networks.make_inference_fn(networks)


def train_ppo(env: TaskEnv, tasks: Task, *, num_timesteps: int, num_snapshots: int, seed: int,
              num_envs: int = 128, hidden_sizes: tuple[int, ...] = (64, 64),
              progress_fn: Callable[[int, dict], None] | None = None,
              **ppo_kwargs) -> BehaviourPolicies:
  """Trains a task-conditioned behaviour policy with ``brax.training.agents.ppo``.

  Snapshots are taken at brax's ``num_evals`` evaluation points (``policy_params_fn``), the
  untrained policy first, so ``num_snapshots`` = ``num_evals``.
  """
  if num_snapshots < 2:
    raise ValueError(f"num_snapshots must be >= 2 (untrained + trained), got {num_snapshots}")
  ensure_brax_training_compat()
  wrapped = TaskConditionedBraxEnv(env, tasks)
  snapshots: list[tuple[int, Any]] = []

  def keep(step, make_policy, params):
    del make_policy
    snapshots.append((int(step), jax.tree.map(np.asarray, (params[0], params[1]))))

  factory = functools.partial(ppo_networks.make_ppo_networks,
                              policy_hidden_layer_sizes=tuple(hidden_sizes),
                              value_hidden_layer_sizes=tuple(hidden_sizes))
  kwargs = dict(num_envs=num_envs, episode_length=env.episode_length, num_evals=num_snapshots,
                num_eval_envs=min(num_envs, 64), seed=seed, network_factory=factory)
  kwargs.update(ppo_kwargs)
  make_policy, final, _ = ppo_train.train(
      wrapped, num_timesteps=num_timesteps, policy_params_fn=keep,
      progress_fn=progress_fn or (lambda *a: None), **kwargs)
  del final  # identical to the last snapshot: brax calls the hook after its last evaluation
  if len(snapshots) < 2:
    raise RuntimeError(f"brax returned {len(snapshots)} policy snapshots; expected {num_snapshots}")
  # brax calls the hook at init and after every evaluation; keep an even spread of num_snapshots.
  keep_ids = np.unique(np.linspace(0, len(snapshots) - 1, num_snapshots).round().astype(int))
  snapshots = [snapshots[i] for i in keep_ids]
  steps = np.asarray([s for s, _ in snapshots], np.int64)
  params = jax.tree.map(lambda *xs: np.stack(xs), *[p for _, p in snapshots])
  return BehaviourPolicies(params=params, steps=steps, make_policy=make_policy,
                           hidden_sizes=tuple(hidden_sizes))
