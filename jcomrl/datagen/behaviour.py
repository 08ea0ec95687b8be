"""Behaviour policies trained with ``brax.training`` on a task-conditioned wrapper of a TaskEnv.

Each episode of the wrapper draws one task from a fixed task table; the policy observes the env
observation with the task's ``task_vector`` appended, so one network serves every task (a
"multi-task expert"). K parameter snapshots are kept along training, the untrained one first;
rolling them out gives datasets that mix random -> expert behaviour (FOCAL/CSRO's checkpoint
recipe) and, kept with the dataset, the out-of-distribution context sources of UNICORN.

Two brax trainers are wrapped, selected by name through ``train_behaviour(algo, ...)``:
``"ppo"`` (``brax.training.agents.ppo``; snapshots from its ``policy_params_fn`` hook) and
``"sac"`` (``brax.training.agents.sac``; snapshots from its per-evaluation orbax checkpoints,
read back after training). Neither algorithm is re-implemented here.

This module is the registry of behaviour trainers (``ALGOS``, ``policy_template``,
``train_behaviour``): it imports ``per_task_sac`` and ``shared_sac``, which import only the
snapshot container (``jcomrl.datagen.policies``), never this module.
``"sac_per_task"`` (``jcomrl.datagen.per_task_sac``) is the papers' recipe instead: one independent
SAC agent per task (jcomrl's own SAC losses), all tasks trained in one program; its snapshot
policy reads the same ``obs + task_vector`` input and acts with that task's agent.
``"sac_shared"`` (``jcomrl.datagen.shared_sac``) is the fast recipe: one task-conditioned SAC agent
(jcomrl's own losses) stepping every task's envs, each task's stream kept apart.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs import base as brax_base
from brax.training.acme import running_statistics, specs
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo_train
from brax.training.agents.sac import checkpoint as sac_checkpoint
from brax.training.agents.sac import networks as sac_networks
from brax.training.agents.sac import train as sac_train

from jcomrl._compat import ensure_brax_training_compat
from jcomrl.datagen import per_task_sac, shared_sac
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.base import Task, TaskEnv

ALGOS = ("ppo", "sac", "sac_per_task", "sac_shared")
PER_TASK_ALGOS = ("sac_per_task",)  # one agent per task: snapshot params carry a task axis


class TaskConditionedBraxEnv(brax_base.Env):
  """Adapts a ``TaskEnv`` to ``brax.envs.Env``: a task drawn per reset, task vector in the obs.

  ``done`` reported to brax is the *true* termination only; brax's ``EpisodeWrapper`` adds the
  time limit. The task table is small and fixed for a behaviour-training run, so it is held by
  the wrapper (the brax trainer's env API has no slot for it).

  ``train_reward`` names an ``EnvState.info`` entry to train on instead of the env reward, e.g.
  ``"dense_reward"`` for sparse point-robot: like FOCAL, behaviour policies learn from the dense
  reward, while the collected dataset keeps the env's own (sparse) reward.
  """

  def __init__(self, env: TaskEnv, tasks: Task, train_reward: str | None = None):
    self._env = env
    self._tasks = tasks
    self._train_reward = train_reward
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
    reward = s.reward if self._train_reward is None else s.info[self._train_reward]
    return state.replace(pipeline_state=s, obs=self._obs(s.obs, task), reward=reward,
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


def _obs_size(env: TaskEnv) -> int:
  return env.observation_size + env.task_size


def _preprocess(normalize_observations: bool):
  """brax's observation preprocessing for ``normalize_observations`` (as its trainers pick it)."""
  return running_statistics.normalize if normalize_observations else (lambda x, y: x)


def _ppo_networks(env: TaskEnv, hidden_sizes: tuple[int, ...], normalize: bool = False):
  return ppo_networks.make_ppo_networks(
      _obs_size(env), env.action_size, preprocess_observations_fn=_preprocess(normalize),
      policy_hidden_layer_sizes=tuple(hidden_sizes), value_hidden_layer_sizes=tuple(hidden_sizes))


def _sac_networks(env: TaskEnv, hidden_sizes: tuple[int, ...], normalize: bool = False):
  return sac_networks.make_sac_networks(_obs_size(env), env.action_size,
                                        preprocess_observations_fn=_preprocess(normalize),
                                        hidden_layer_sizes=tuple(hidden_sizes))


def _initial_normalizer(env: TaskEnv):
  return running_statistics.init_state(specs.Array((_obs_size(env),), jnp.dtype("float32")))


def make_sac_policy_factory(env: TaskEnv, hidden_sizes: tuple[int, ...],
                            normalize_observations: bool = False):
  """Rebuilds ``make_policy`` for snapshots of a SAC behaviour policy (e.g. after a restore)."""
  return sac_networks.make_inference_fn(_sac_networks(env, hidden_sizes, normalize_observations))


def policy_template(env: TaskEnv, algo: str, hidden_sizes: tuple[int, ...],
                    normalize_observations: bool = False, num_tasks: int | None = None):
  """``(make_policy, params)`` of an untrained ``algo`` policy: the layout a restore must match.

  ``num_tasks``: the number of per-task agents of a ``"sac_per_task"`` snapshot (default: the
  env's number of benchmark tasks); ignored by the task-conditioned algos.

  Raises:
    ValueError: ``algo`` is not one of ``ALGOS``, or ``"sac_per_task"`` with an observation
      normaliser (it has none).
  """
  check_algo(algo)
  hidden = tuple(hidden_sizes)
  if algo == "sac_per_task":
    if normalize_observations:
      raise ValueError("behaviour algo 'sac_per_task' has no observation normaliser; use "
                       "normalize_observations=False")
    return per_task_sac.policy_template(env, hidden, num_tasks)
  if algo == "sac_shared":
    if normalize_observations:
      raise ValueError("behaviour algo 'sac_shared' has no observation normaliser; use "
                       "normalize_observations=False")
    return shared_sac.policy_template(env, hidden)
  norm = bool(normalize_observations)
  nets = _ppo_networks(env, hidden, norm) if algo == "ppo" else _sac_networks(env, hidden, norm)
  make = (ppo_networks if algo == "ppo" else sac_networks).make_inference_fn(nets)
  return make, (_initial_normalizer(env), nets.policy_network.init(jax.random.key(0)))


def check_algo(algo: str) -> str:
  """Returns ``algo`` if it names a supported behaviour trainer, else raises ``ValueError``."""
  if algo not in ALGOS:
    raise ValueError(f"unknown behaviour algo {algo!r}; expected one of {ALGOS}")
  return algo


def _stack_snapshots(snapshots: list[tuple[int, Any]], num_snapshots: int):
  """Keeps an even spread of ``num_snapshots`` (first and last included); stacks them on axis 0."""
  keep_ids = np.unique(np.linspace(0, len(snapshots) - 1, num_snapshots).round().astype(int))
  snapshots = [snapshots[i] for i in keep_ids]
  steps = np.asarray([s for s, _ in snapshots], np.int64)
  params = jax.tree.map(lambda *xs: np.stack(xs), *[p for _, p in snapshots])
  return steps, params


def train_ppo(env: TaskEnv, tasks: Task, *, num_timesteps: int, num_snapshots: int, seed: int,
              num_envs: int = 128, hidden_sizes: tuple[int, ...] = (64, 64),
              progress_fn: Callable[[int, dict], None] | None = None,
              train_reward: str | None = None, **ppo_kwargs) -> BehaviourPolicies:
  """Trains a task-conditioned behaviour policy with ``brax.training.agents.ppo``.

  Snapshots are taken at brax's ``num_evals`` evaluation points (``policy_params_fn``), the
  untrained policy first, so ``num_snapshots`` = ``num_evals``. ``train_reward``: see
  ``TaskConditionedBraxEnv``.
  """
  if num_snapshots < 2:
    raise ValueError(f"num_snapshots must be >= 2 (untrained + trained), got {num_snapshots}")
  ensure_brax_training_compat()
  wrapped = TaskConditionedBraxEnv(env, tasks, train_reward)
  snapshots: list[tuple[int, Any]] = []

  def keep(step, make_policy, params):
    del make_policy
    snapshots.append((int(step), jax.tree.map(np.asarray, (params[0], params[1]))))

  factory = functools.partial(ppo_networks.make_ppo_networks,
                              policy_hidden_layer_sizes=tuple(hidden_sizes),
                              value_hidden_layer_sizes=tuple(hidden_sizes))
  kwargs = {"num_envs": num_envs, "episode_length": env.episode_length,
            "num_evals": num_snapshots, "num_eval_envs": min(num_envs, 64), "seed": seed,
            "network_factory": factory}
  kwargs.update(ppo_kwargs)
  make_policy, final, _ = ppo_train.train(
      wrapped, num_timesteps=num_timesteps, policy_params_fn=keep,
      progress_fn=progress_fn or (lambda *a: None), **kwargs)
  del final  # identical to the last snapshot: brax calls the hook after its last evaluation
  if len(snapshots) < 2:
    raise RuntimeError(f"brax returned {len(snapshots)} policy snapshots; expected {num_snapshots}")
  # brax calls the hook at init and after every evaluation; keep an even spread of num_snapshots.
  steps, params = _stack_snapshots(snapshots, num_snapshots)
  return BehaviourPolicies(params=params, steps=steps, make_policy=make_policy,
                           hidden_sizes=tuple(hidden_sizes), algo="ppo",
                           normalize_observations=bool(kwargs.get("normalize_observations")))


def _sac_untrained_params(env: TaskEnv, networks, seed: int):
  """The policy ``brax.training.agents.sac.train`` starts from, rebuilt outside the trainer.

  brax 0.14.2 derives it as ``rng = PRNGKey(seed)``; ``rng, _ = split(rng)`` (the env-wrapping
  randomisation key); ``global_key, _ = split(rng)``; ``key_policy, _ = split(global_key)``;
  ``policy_network.init(key_policy)``, with a fresh observation normaliser. ``train_sac`` with a
  zero learning rate returns checkpoints equal to this (tested), which pins the derivation.
  """
  rng = jax.random.PRNGKey(seed)
  rng, _ = jax.random.split(rng)
  global_key, _ = jax.random.split(rng)
  key_policy, _ = jax.random.split(global_key)
  return _initial_normalizer(env), networks.policy_network.init(key_policy)


def train_sac(env: TaskEnv, tasks: Task, *, num_timesteps: int, num_snapshots: int, seed: int,
              num_envs: int = 64, hidden_sizes: tuple[int, ...] = (256, 256),
              progress_fn: Callable[[int, dict], None] | None = None,
              checkpoint_dir: str | None = None, train_reward: str | None = None,
              **sac_kwargs) -> BehaviourPolicies:
  """Trains a task-conditioned behaviour policy with ``brax.training.agents.sac``.

  brax 0.14.2's SAC trainer has no ``policy_params_fn`` hook. Its ``checkpoint_logdir`` option
  writes ``(normalizer_params, policy_params)`` as an orbax checkpoint after each of its
  ``num_evals - 1`` training epochs; those are read back with ``brax...sac.checkpoint.load``
  once training ends. The untrained snapshot (step 0), which brax never checkpoints, is
  rebuilt from the seed exactly as brax initialises it (``_sac_untrained_params``). So
  ``num_snapshots`` = ``num_evals``: the untrained policy plus one per epoch.

  Args:
    env: the multi-task env; tasks: the task table episodes draw from.
    num_timesteps: env steps of training in total.
    num_snapshots: K >= 2 snapshots to keep (untrained first, final last).
    seed: brax's seed.
    num_envs: parallel training envs.
    hidden_sizes: policy and Q network hidden sizes.
    progress_fn: brax's ``progress_fn(step, metrics)``.
    checkpoint_dir: where brax writes its per-epoch checkpoints; a temporary directory that
      is removed afterwards when ``None`` (a given directory is left in place).
    train_reward: an ``EnvState.info`` reward to train on (see ``TaskConditionedBraxEnv``).
    **sac_kwargs: further ``brax.training.agents.sac.train.train`` arguments.
  """
  if num_snapshots < 2:
    raise ValueError(f"num_snapshots must be >= 2 (untrained + trained), got {num_snapshots}")
  ensure_brax_training_compat()
  wrapped = TaskConditionedBraxEnv(env, tasks, train_reward)
  hidden = tuple(hidden_sizes)
  factory = functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=hidden)
  kwargs = {"num_envs": num_envs, "episode_length": env.episode_length,
            "num_evals": num_snapshots, "num_eval_envs": min(num_envs, 64), "seed": seed,
            "network_factory": factory}
  kwargs.update(sac_kwargs)
  own_dir = checkpoint_dir is None
  ckpt_dir = tempfile.mkdtemp(prefix="jcomrl-sac-") if own_dir else os.path.abspath(checkpoint_dir)
  try:
    make_policy, _, _ = sac_train.train(
        wrapped, num_timesteps=num_timesteps, checkpoint_logdir=ckpt_dir,
        progress_fn=progress_fn or (lambda *a: None), **kwargs)
    networks = _sac_networks(env, hidden, bool(kwargs.get("normalize_observations")))
    initial = jax.tree.map(np.asarray, _sac_untrained_params(env, networks, seed))
    treedef = jax.tree.structure(initial)
    snapshots: list[tuple[int, Any]] = [(0, initial)]
    names = sorted(n for n in os.listdir(ckpt_dir) if n.isdigit())
    for name in names:
      loaded = sac_checkpoint.load(os.path.join(ckpt_dir, name))
      params = (loaded[0], loaded[1])
      if jax.tree.structure(params) != treedef:
        raise RuntimeError(f"brax SAC checkpoint {name} has an unexpected layout: "
                           f"{jax.tree.structure(params)} != {treedef}")
      snapshots.append((int(name), jax.tree.map(np.asarray, params)))
  finally:
    if own_dir:
      shutil.rmtree(ckpt_dir, ignore_errors=True)
  if len(snapshots) < 2:
    raise RuntimeError(f"brax SAC wrote {len(snapshots) - 1} checkpoints; expected "
                       f"{num_snapshots - 1}")
  steps, params = _stack_snapshots(snapshots, num_snapshots)
  return BehaviourPolicies(params=params, steps=steps, make_policy=make_policy,
                           hidden_sizes=hidden, algo="sac",
                           normalize_observations=bool(kwargs.get("normalize_observations")))


def train_behaviour(algo: str, env: TaskEnv, tasks: Task, **kwargs) -> BehaviourPolicies:
  """Dispatches to ``train_ppo``, ``train_sac``, ``per_task_sac.train_sac_per_task`` or
  ``shared_sac.train_sac_shared`` by name (each looked up in its module at call time)."""
  check_algo(algo)
  if algo == "sac_per_task":
    return per_task_sac.train_sac_per_task(env, tasks, **kwargs)
  if algo == "sac_shared":
    return shared_sac.train_sac_shared(env, tasks, **kwargs)
  trainer = train_ppo if algo == "ppo" else train_sac
  return trainer(env, tasks, **kwargs)
