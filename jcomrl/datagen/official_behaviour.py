"""The official per-task behaviour agents (CORRO / UNICORN ``agent<i>.pt``) as a dataset's
behaviour snapshots, so that the OOD protocol rolls *their* agents.

``jcomrl.data.official_checkpoints`` converts one ``.pt`` file to jcomrl actor params; here the
``T`` tasks' files at ``K`` checkpoint iterations become one ``BehaviourPolicies`` of algo
``"sac_per_task"`` (params ``{"actor": [K, T] actors, "task_vectors": [K, T, task_size]}``, the
layout ``per_task_sac`` trains), stored in ``<dataset>/behaviour/`` exactly as
``pipeline.save_behaviour`` stores jcomrl's own, where ``pipeline.load_behaviour`` (the restore
the OOD protocol uses, ``jcomrl.run``) reads them back unchanged.

Snapshot ``k`` of task row ``t`` is that task's ``agent<i_k>.pt``; a snapshot acts with the agent
whose task vector is nearest to the one the rollout appends (``per_task_sac.make_policy_factory``),
so the task vectors are the dataset's ``task_params`` of the rows, and every row of the dataset
needs its agents (a missing one would silently be replaced by its nearest neighbour's).

Steps. ``BehaviourPolicies.steps`` are env steps per task. The official collection
(``learner.py:181-193``) first rolls ``--num-init-rollouts-pool`` random episodes, then per
iteration ``--num-rollouts-per-iter`` policy episodes and the updates, so after ``i`` iterations
a task's agent has taken ``pool x H + i x rollouts x H`` env steps when every episode lasts its
``H`` steps: :data:`OFFICIAL_SCHEDULE`. Where episodes end early (walker: falls), or for an env
without an official collection config, the steps are the iteration numbers themselves and
``behaviour/official_source.json`` says so (``steps_unit``).

Unlike jcomrl's trainers the official runs keep no untrained snapshot (the first file is
``agent<save_interval>.pt``), so snapshot 0 here is a *trained* agent. Every stored step is
> 0, and the OOD protocol's default ``ood_snapshots="trained"`` takes the snapshots with a step
> 0 (``eval.protocols.ood_snapshot_ids``), so it rolls every stored agent, as UNICORN's lists do
(``ood_test_config/AntDir-v0.txt``: agent20 ... agent200 of all 40 tasks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jcomrl import atomic
from jcomrl.data import official_checkpoints as oc
from jcomrl.data.dataset import DatasetError, read_meta, sha256_file
from jcomrl.datagen import pipeline
from jcomrl.datagen.per_task_sac import ALGO, make_policy_factory
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.datagen.recipes import OFFICIAL_WARMUP_STEPS
from jcomrl.envs.base import TaskEnv
from jcomrl.errors import ConfigError

SOURCE_FILE = "official_source.json"  # provenance beside snapshots.npz / behaviour.json
# {env: (random warm-up env steps, env steps per iteration)} where CORRO's collection config
# fixes them: 50 random rollouts, then 2 policy rollouts per iteration
# (data_collection_config/args_<env>.py:24-25, ant_dir 23-24), episodes of 200 steps
# (environments/__init__.py:12-26) that end only at the time limit (half_cheetah_vel.py:42,
# ant_dir.py:34, hopper_rand_params.py:37,41-42). Not walker_param: its episodes end at falls
# (walker2d_rand_params.py:31), so the steps are data-dependent; not cheetah_dir (no CORRO
# collection config); not point_robot (CORRO's PointRobot-v1 has 10-step episodes,
# environments/__init__.py:79-82, jcomrl's point robot 20).
OFFICIAL_SCHEDULE = {env: (OFFICIAL_WARMUP_STEPS, 2 * 200)
                     for env in ("cheetah_vel", "ant_dir", "hopper_param")}


def checkpoint_steps(iterations, env_name: str | None = None, *, warmup_steps: int | None = None,
                     steps_per_iteration: int | None = None) -> tuple[np.ndarray, str]:
  """``(steps [K], unit)`` of checkpoints saved after ``iterations``: env steps per task
  (``unit="env_steps"``) from ``warmup_steps`` and ``steps_per_iteration`` (default: the env's
  :data:`OFFICIAL_SCHEDULE` row), else the iteration numbers (``unit="iterations"``)."""
  its = np.asarray(iterations, np.int64)
  if steps_per_iteration is None and warmup_steps is None and env_name in OFFICIAL_SCHEDULE:
    warmup_steps, steps_per_iteration = OFFICIAL_SCHEDULE[env_name]
  if steps_per_iteration is None:
    if warmup_steps is not None:
      raise ConfigError("warmup_steps needs steps_per_iteration (env steps per iteration)")
    return its, "iterations"
  return int(warmup_steps or 0) + its * int(steps_per_iteration), "env_steps"


def _iterations(checkpoints: Sequence[Mapping[int, Any]], iterations, names) -> list[int]:
  """The checkpoint iterations every task has (``iterations`` or all of them; ``DatasetError``
  naming a task that lacks one, or tasks with different sets)."""
  have = [sorted(int(i) for i in c) for c in checkpoints]
  if iterations is None:
    for name, its in zip(names, have):
      if its != have[0]:
        raise DatasetError(f"task {name} has checkpoint iterations {its}, task {names[0]} "
                           f"{have[0]}; pass iterations=[...] that every task has")
    iterations = have[0]
  iterations = sorted(int(i) for i in iterations)
  for name, its in zip(names, have):
    missing = sorted(set(iterations) - set(its))
    if missing:
      raise DatasetError(f"task {name} has no checkpoint of iteration(s) {missing} (it has "
                         f"{its}); pass iterations=[...] that every task has")
  if not iterations:
    raise DatasetError("no checkpoint iterations to convert")
  return iterations


def official_behaviour_policies(env: TaskEnv, checkpoints: Sequence[Mapping[int, Any]],
                                task_vectors, *, iterations=None, task_names=None,
                                warmup_steps: int | None = None,
                                steps_per_iteration: int | None = None) -> BehaviourPolicies:
  """The ``BehaviourPolicies`` (algo ``"sac_per_task"``) of the official per-task agents.

  Args:
    env: the jcomrl env the agents act in (its observation size, without the task vector, and
      action size must be the actors').
    checkpoints: per task ``t``, ``{iteration: agent<i>.pt path or state dict}``
      (``official_checkpoints.find_agent_checkpoints``).
    task_vectors: ``[T, task_size]``: task ``t``'s ``env.task_vector`` (the dataset's
      ``task_params`` row of that task).
    iterations: the checkpoint iterations to keep (default: all; every task must have the same).
    task_names: names for the messages (default: ``0 .. T-1``).
    warmup_steps, steps_per_iteration: see :func:`checkpoint_steps`.

  Raises:
    DatasetError: one line for a file that is not the expected actor, of other sizes than the
      env's or another task's, or a missing iteration.
  """
  vectors = np.asarray(task_vectors, np.float32)
  names = list(task_names) if task_names is not None else list(range(len(checkpoints)))
  if vectors.shape != (len(checkpoints), env.task_size):
    raise DatasetError(f"task_vectors has shape {vectors.shape}; expected "
                       f"[{len(checkpoints)}, {env.task_size}] (one per task)")
  its = _iterations(checkpoints, iterations, names)
  hidden = None
  rows = []
  for it in its:
    actors = []
    for name, per_task in zip(names, checkpoints):
      try:
        actor = oc.load_rlkit_actor(per_task[it], obs_size=env.observation_size,
                                    action_size=env.action_size, hidden_sizes=hidden)
      except DatasetError as e:
        if isinstance(per_task[it], (str, os.PathLike)):
          raise  # the message names the file
        raise DatasetError(f"task {name}, iteration {it}: {e}") from e
      hidden = oc.actor_sizes(actor)[1] if hidden is None else hidden
      actors.append(actor)
    rows.append(jax.tree.map(lambda *xs: np.stack(xs), *actors))
  params = {"actor": jax.tree.map(lambda *xs: np.stack(xs), *rows),
            "task_vectors": np.broadcast_to(vectors, (len(its),) + vectors.shape).copy()}
  steps, _ = checkpoint_steps(its, env.name, warmup_steps=warmup_steps,
                              steps_per_iteration=steps_per_iteration)
  return BehaviourPolicies(params=params, steps=steps,
                           make_policy=make_policy_factory(env, hidden), hidden_sizes=hidden,
                           algo=ALGO, normalize_observations=False)


def _task_params(dataset_dir: str, env: TaskEnv) -> np.ndarray:
  """The dataset's ``task_params [T, P]`` (``DatasetError`` if it is not a dataset of ``env``)."""
  meta = read_meta(dataset_dir)
  if meta.get("env") != env.name:
    raise DatasetError(f"{dataset_dir} holds data of env {meta.get('env')!r}, not {env.name!r}; "
                       "pass the env the dataset was made in")
  try:
    params = np.load(os.path.join(dataset_dir, "task_params.npy"), allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DatasetError(f"{dataset_dir}: task_params.npy missing or unreadable ({e})") from e
  if params.ndim != 2 or params.shape[1] != env.task_size:
    raise DatasetError(f"{dataset_dir}: task_params has shape {params.shape}; expected "
                       f"[num_tasks, {env.task_size}] for env {env.name!r}")
  return params


def _source_record(checkpoints: Mapping[int, Mapping[int, Any]], policies: BehaviourPolicies,
                   iterations: list[int], unit: str) -> dict:
  def file(x):
    if isinstance(x, (str, os.PathLike)):
      return {"path": os.path.abspath(os.fspath(x)), "sha256": sha256_file(os.fspath(x))}
    return {"path": None}

  return {"format": "rlkit TanhGaussianPolicy in the SAC agent's state dict (CORRO/UNICORN "
                    "learner.py:302, models/agent<i>.pt)",
          "algo": policies.algo, "hidden_sizes": list(policies.hidden_sizes),
          "iterations": iterations, "steps": policies.steps.tolist(), "steps_unit": unit,
          "first_snapshot_trained": True,
          "ood_snapshots": "every snapshot is trained (steps > 0): the default 'trained' takes all",
          "files": {str(row): {str(it): file(per[it]) for it in iterations}
                    for row, per in sorted(checkpoints.items())}}


def store_official_behaviour(dataset_dir: str, env: TaskEnv,
                             checkpoints: Mapping[int, Mapping[int, Any]], *, iterations=None,
                             warmup_steps: int | None = None,
                             steps_per_iteration: int | None = None,
                             overwrite: bool = False) -> BehaviourPolicies:
  """Converts the official agents and stores them as ``dataset_dir``'s behaviour snapshots.

  Args:
    dataset_dir: a jcomrl dataset of ``env``.
    env: the jcomrl env.
    checkpoints: ``{task row of the dataset: {iteration: agent<i>.pt path or state dict}}``, one
      entry for every row (``official_checkpoints.find_task_checkpoints`` + ``rows_by_goal``).
    iterations, warmup_steps, steps_per_iteration: see :func:`official_behaviour_policies`.
    overwrite: replace an existing ``behaviour/`` (else refused).

  ``behaviour/`` (``snapshots.npz``, ``behaviour.json`` as ``pipeline.save_behaviour`` writes
  them, and ``official_source.json``: the files, their sha256, iterations and the steps' unit)
  is written in a temporary sibling and swapped into place once complete: an interruption or a
  refused file leaves the dataset and any previous ``behaviour/`` as they were; nothing else in
  the dataset is touched. Returns the stored policies.
  """
  params = _task_params(dataset_dir, env)
  target = os.path.join(dataset_dir, pipeline.BEHAVIOUR_DIR)
  if os.path.exists(target) and not overwrite:
    raise DatasetError(f"{target} exists (the dataset's behaviour snapshots); pass "
                       "overwrite=True to replace it (the old one stays until the new is complete)")
  rows = sorted(int(r) for r in checkpoints)
  missing = sorted(set(range(len(params))) - set(rows))
  extra = [r for r in rows if not 0 <= r < len(params)]
  if missing or extra:
    raise DatasetError(f"{dataset_dir}: the agents must cover every task row 0..{len(params) - 1} "
                       f"exactly once (missing rows {missing[:10]}, unknown rows {extra[:10]}); "
                       "the OOD protocol rolls the agent of any row")
  per_task = [checkpoints[r] for r in rows]
  its = _iterations(per_task, iterations, rows)
  policies = official_behaviour_policies(env, per_task, params[rows], iterations=its,
                                         task_names=rows, warmup_steps=warmup_steps,
                                         steps_per_iteration=steps_per_iteration)
  _, unit = checkpoint_steps(its, env.name, warmup_steps=warmup_steps,
                             steps_per_iteration=steps_per_iteration)
  record = _source_record(dict(zip(rows, per_task)), policies, its, unit)
  with atomic.atomic_dir(target) as tmp:
    pipeline.save_behaviour(tmp, policies)
    atomic.write_json(os.path.join(tmp, SOURCE_FILE), record)
  return policies
