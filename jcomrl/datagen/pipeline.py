"""Dataset generation end to end: behaviour policies -> rollouts -> validated dataset on disk.

The behaviour snapshots are saved inside the dataset directory (``behaviour/``) so that
evaluation can roll *other* tasks' behaviour policies in a test task (UNICORN's OOD context).

``generate_and_save`` is resumable. While it runs, its state lives in a work directory
``<path>.partial/``::

    work.json        the behaviour and collection settings this work dir belongs to
    behaviour_ckpt/  while ``sac_per_task`` / ``sac_shared`` train: their last checkpoint
                     (``jcomrl.datagen.resumable``), deleted once the snapshots are saved
    behaviour/       the trained snapshots (written atomically as soon as training ends)
    replay.npz       quality="replay": the behaviour run's replay buffer (before behaviour/)
    chunks/*.npz     finished collection chunks (each written atomically)

A killed run started again with the same settings resumes an unfinished ``sac_per_task`` /
``sac_shared`` training from its last checkpoint (to the agents an uninterrupted run trains),
loads finished snapshots instead of retraining, and skips the chunks already collected; with
different behaviour settings it refuses (naming the differing keys) rather than mixing two
configs. Changed collection settings only discard the saved chunks. The work directory is
removed once the dataset has been written and validated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jcomrl import atomic, envs, errors
from jcomrl.data.dataset import (DatasetError, OfflineDataset, episode_ids, load_dataset,
                                 save_dataset)
from jcomrl.datagen import behaviour, collect, resumable
from jcomrl.datagen.per_task_sac import Replay
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.base import TaskEnv
from jcomrl.types import Transition

BEHAVIOUR_DIR = "behaviour"
BEHAVIOUR_CHECKPOINT_DIR = "behaviour_ckpt"
WORK_SUFFIX = ".partial"
WORK_VERSION = 1
# Which tasks the behaviour policy trains on (see ``generate``).
BEHAVIOUR_TASKS = ("all", "train")
# quality="replay": the dataset is the behaviour run's whole replay buffer, every transition each
# task's agent (or the shared agent, in that task) stored, in the order stored: the papers'
# recipe (CORRO learner.py save_buffer, UNICORN learner.py:521-529; UNICORN Table 7's sizes are
# the buffers'), not rollouts of snapshots. Only trainers that keep a per-task buffer make one.
REPLAY = "replay"
REPLAY_ALGOS = ("sac_per_task", "sac_shared")
REPLAY_FILE = "replay.npz"  # the replay buffer in a work directory (``save_replay``)
# Trainers that checkpoint their whole state (``jcomrl.datagen.resumable``): in a work directory a
# killed behaviour run resumes where its last checkpoint left it. (brax's "sac" keeps only its
# snapshots and retrains from the start.)
RESUMABLE_ALGOS = ("sac_per_task", "sac_shared")
# How the behaviour snapshots act when the normalisation anchors are measured (``generate``).
ANCHOR_POLICIES = ("deterministic", "stochastic")

Progress = Callable[[str], None]


# A data-generation setting is invalid (names the setting and the accepted values): the one
# ConfigError of jcomrl (``jcomrl.errors``), importable from here as before.
ConfigError = errors.ConfigError


def _path_key(path) -> str:
  return jax.tree_util.keystr(path)


def save_behaviour(directory: str, policies: BehaviourPolicies,
                   algo: str | None = None) -> None:
  """Writes ``snapshots.npz`` + ``behaviour.json`` into ``directory`` (created if needed).

  Args:
    directory: target directory (normally ``<dataset>/behaviour``).
    policies: the snapshots.
    algo: the trainer that made them; defaults to ``policies.algo``.
  """
  algo = behaviour.check_algo(algo or policies.algo)
  os.makedirs(directory, exist_ok=True)
  flat = {_path_key(p): np.asarray(x) for p, x in
          jax.tree_util.tree_flatten_with_path(policies.params)[0]}
  np.savez(os.path.join(directory, "snapshots.npz"), **flat)
  with open(os.path.join(directory, "behaviour.json"), "w") as f:
    json.dump({"algo": algo, "hidden_sizes": list(policies.hidden_sizes),
               "normalize_observations": bool(policies.normalize_observations),
               "steps": np.asarray(policies.steps).tolist()}, f, indent=1)


def load_behaviour(dataset_dir: str, env: TaskEnv) -> BehaviourPolicies:
  """Restores the behaviour snapshots saved with a dataset (``DatasetError`` if absent/bad)."""
  directory = os.path.join(dataset_dir, BEHAVIOUR_DIR)
  try:
    with open(os.path.join(directory, "behaviour.json")) as f:
      info = json.load(f)
    arrays = dict(np.load(os.path.join(directory, "snapshots.npz")))
  except (OSError, ValueError) as e:
    raise DatasetError(f"{dataset_dir}: behaviour snapshots missing or unreadable ({e})") from e
  algo = info.get("algo")
  if algo not in behaviour.ALGOS:
    raise DatasetError(f"{dataset_dir}: unsupported behaviour algo {algo!r} in behaviour.json "
                       f"(this jcomrl restores {behaviour.ALGOS})")
  hidden = tuple(info["hidden_sizes"])
  normalize = bool(info.get("normalize_observations", False))
  kwargs = {}
  if algo in behaviour.PER_TASK_ALGOS:  # one agent per behaviour task: the saved task axis
    vectors = arrays.get(_path_key((jax.tree_util.DictKey("task_vectors"),)))
    if vectors is None or vectors.ndim != 3:
      raise DatasetError(f"{dataset_dir}: per-task behaviour snapshots lack task_vectors [K, T, d]")
    kwargs["num_tasks"] = int(vectors.shape[1])
  make_policy, template = behaviour.policy_template(env, algo, hidden, normalize, **kwargs)
  paths, treedef = jax.tree_util.tree_flatten_with_path(template)
  leaves = []
  for path, leaf in paths:
    key = _path_key(path)
    if key not in arrays or arrays[key].shape[1:] != np.shape(leaf):
      raise DatasetError(f"{dataset_dir}: behaviour snapshot leaf {key} missing or of the wrong "
                         f"shape for env {env.name!r} ({algo}, hidden sizes {hidden})")
    leaves.append(arrays[key])
  params = jax.tree_util.tree_unflatten(treedef, leaves)
  return BehaviourPolicies(params=params, steps=np.asarray(info["steps"]),
                           make_policy=make_policy, hidden_sizes=hidden, algo=algo,
                           normalize_observations=normalize)


def split_behaviour_kwargs(behaviour_kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
  """``(algo, trainer kwargs)`` from a behaviour config; ``algo`` defaults to ``"ppo"``.

  Raises:
    ConfigError: unknown algo.
  """
  kw = dict(behaviour_kwargs)
  algo = kw.pop("algo", "ppo")
  if algo not in behaviour.ALGOS:
    raise ConfigError(f"unknown behaviour algo {algo!r} (config key behaviour.algo); "
                      f"expected one of {behaviour.ALGOS}")
  if "hidden_sizes" in kw:
    kw["hidden_sizes"] = tuple(kw["hidden_sizes"])
  return algo, kw


def episodes_for(env: TaskEnv, quality: str, num_snapshots: int, *,
                 episodes_per_snapshot: int = 0, transitions_per_task: int = 0) -> int:
  """Episodes per (task, snapshot) for a size given either way.

  ``transitions_per_task > 0`` wins: the quality's snapshots share that many transitions
  (rounded up to whole segments), so e.g. ``random`` and ``mixed`` datasets have the same size
  (UNICORN Table 3). Otherwise ``episodes_per_snapshot`` is used as given.
  """
  try:
    used = len(collect.snapshot_ids(quality, num_snapshots))
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if transitions_per_task > 0:
    return max(1, math.ceil(transitions_per_task / (used * env.episode_length)))
  if episodes_per_snapshot > 0:
    return int(episodes_per_snapshot)
  raise ConfigError("set transitions_per_task > 0 or episodes_per_snapshot > 0 "
                    f"(got {transitions_per_task} and {episodes_per_snapshot})")


def replay_dataset(env: TaskEnv, replay, task_params: np.ndarray,
                   steps_per_interval: int | None = None, *,
                   snapshot_steps=None) -> OfflineDataset:
  """The ``OfflineDataset`` of a behaviour run's whole replay buffer (``per_task_sac.Replay``).

  Each env's stream (``Replay.env_streams``: consecutive episodes, an explicit reset after each
  end) is cut into segments of ``env.episode_length`` steps, a trailing partial segment dropped;
  where a cut falls inside an episode (only after an early termination shifted the episodes) the
  segment's last step is marked ``timeout`` so that no segment runs into the next. Segments keep
  their env's time order, envs follow each other. ``checkpoint_id`` is the training interval
  that produced a transition: ``k`` for steps taken between snapshots ``k`` and ``k + 1``
  (warm-up steps fall in interval 0), from the snapshots' env steps per task
  (``snapshot_steps``, ``BehaviourPolicies.steps``: any spacing) or, for equal intervals, from
  ``steps_per_interval``; ``episode_id`` numbers a task's episodes.
  """
  h = int(env.episode_length)
  e = int(replay.num_envs)
  steps = replay.num_steps
  streams = replay.env_streams(steps)  # [T, E, L]
  length = (steps // e) // h * h
  if length == 0:
    raise ConfigError(f"the behaviour run stored {steps // e} steps per env, fewer than one "
                      f"{h}-step segment; raise num_timesteps")
  # the training interval of stream position j of env e: iteration j, env steps (j + 1) * E
  if snapshot_steps is not None:
    bounds = np.asarray(snapshot_steps, np.int64)
    done = (np.arange(length, dtype=np.int64) + 1) * e  # steps[k] < done <= steps[k + 1]
    interval = np.clip(np.searchsorted(bounds, done, side="left") - 1, 0,
                       max(0, len(bounds) - 2)).astype(np.int32)
  elif steps_per_interval is not None:
    interval = np.minimum(np.arange(length) // max(1, steps_per_interval // e),
                          np.iinfo(np.int32).max).astype(np.int32)
  else:
    raise ValueError("replay_dataset needs snapshot_steps or steps_per_interval")

  def cut(x):
    x = np.asarray(x)[:, :, :length]
    return x.reshape((x.shape[0], e * length) + x.shape[3:])

  flat = jax.tree.map(cut, streams)
  timeout = np.asarray(flat.timeout).copy()
  ends = np.maximum(np.asarray(flat.terminal), timeout) > 0
  last = np.zeros(ends.shape[1], bool)
  last[h - 1::h] = True
  timeout = np.where(last[None] & ~ends, 1.0, timeout).astype(np.float32)
  flat = flat.replace(timeout=timeout)
  t = int(flat.reward.shape[0])
  ckpt = np.broadcast_to(np.tile(interval, e)[None], (t, e * length)).astype(np.int32).copy()
  return OfflineDataset(transitions=flat, checkpoint_id=ckpt,
                        episode_id=episode_ids(np.asarray(flat.terminal), timeout),
                        task_params=np.asarray(task_params, np.float32), segment_length=h)


def jsonable(x):
  """``x`` as it reads back from JSON (tuples as lists, anything else not JSON-native as its
  ``str``): the form settings are compared and stored in."""
  return json.loads(json.dumps(x, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


class WorkDir:
  """The ``<path>.partial`` directory of one resumable ``generate_and_save`` (or
  ``offline.generate_family``) call.

  Created with the behaviour and collection settings it belongs to (``work.json``): other
  behaviour settings are refused (``DatasetError`` naming the differing keys), other collection
  settings discard the saved chunks. It is the ``collect.ChunkCache`` of the collection
  (``get`` / ``put`` of finished chunks) and holds the behaviour snapshots once trained.
  """

  def __init__(self, path: str, behaviour_cfg: dict, collection_cfg: dict, progress: Progress):
    self.path = path
    self.progress = progress
    info_file = os.path.join(path, "work.json")
    want = {"version": WORK_VERSION, "behaviour": jsonable(behaviour_cfg),
            "collection": jsonable(collection_cfg)}
    if os.path.exists(info_file):
      try:
        with open(info_file) as f:
          have = json.load(f)
      except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable work.json of an interrupted collection ({e}); "
                           "delete the directory to start afresh") from e
      if have.get("version") != WORK_VERSION or have.get("behaviour") != want["behaviour"]:
        diff = _diff(have.get("behaviour", {}), want["behaviour"])
        raise DatasetError(
            f"{path} holds an interrupted collection with different behaviour settings "
            f"({diff}); rerun with the same config to resume it, or delete that directory "
            "to start afresh")
      if have.get("collection") != want["collection"]:
        progress(f"collection settings changed ({_diff(have['collection'], want['collection'])});"
                 " discarding the saved chunks, keeping the behaviour snapshots")
        shutil.rmtree(os.path.join(path, "chunks"), ignore_errors=True)
    os.makedirs(os.path.join(path, "chunks"), exist_ok=True)
    _atomic_write_json(info_file, want)

  @property
  def behaviour_path(self) -> str:
    return os.path.join(self.path, BEHAVIOUR_DIR)

  @property
  def behaviour_checkpoint_path(self) -> str:
    return os.path.join(self.path, BEHAVIOUR_CHECKPOINT_DIR)

  def save_behaviour(self, policies: BehaviourPolicies) -> None:
    """Writes the snapshots to ``behaviour/`` atomically (their presence marks training done)."""
    with atomic.atomic_dir(self.behaviour_path) as tmp:
      save_behaviour(tmp, policies)

  def _chunk_file(self, index: int) -> str:
    return os.path.join(self.path, "chunks", f"{index:05d}.npz")

  def get(self, index: int) -> dict[str, np.ndarray] | None:
    file = self._chunk_file(index)
    if not os.path.exists(file):
      return None
    try:
      with np.load(file) as z:
        return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
      self.progress(f"chunk file {file} is unreadable; collecting that chunk again")
      return None

  def put(self, index: int, arrays: dict[str, np.ndarray]) -> None:
    file = self._chunk_file(index)
    with atomic.atomic_file(file, "wb", suffix=".npz") as f:
      np.savez(f, **arrays)


def _diff(a: dict, b: dict) -> str:
  keys = sorted(set(a) | set(b))
  parts = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
  return "; ".join(parts) or "format version"


def _atomic_write_json(file: str, obj) -> None:
  atomic.write_json(file, obj, sort_keys=True)


def generate(env_name: str, env_overrides: dict[str, Any], *, quality: str, seed: int,
             behaviour_kwargs: dict[str, Any], episodes_per_snapshot: int = 0,
             transitions_per_task: int = 0, chunk_episodes: int = 0, return_episodes: int = 4,
             progress=None, message: Progress | None = None, work_dir: str | None = None,
             behaviour_tasks: str = "all", physics: str = "auto",
             anchor_policy: str = "deterministic", provenance: dict | None = None,
             ) -> tuple[OfflineDataset, BehaviourPolicies, dict]:
  """Trains behaviour policies and collects every benchmark task.

  Args:
    env_name, env_overrides: the env (``jcomrl.envs.make``).
    quality: dataset quality preset (``collect.QUALITIES``).
    seed: behaviour-training and collection seed.
    behaviour_kwargs: ``{"algo": "ppo" | "sac", "num_snapshots": K, ...trainer kwargs}``.
    episodes_per_snapshot, transitions_per_task: dataset size (see ``episodes_for``).
    chunk_episodes: episodes per (task, snapshot) per jitted collection call (0 = one call).
    return_episodes: episodes per (task, snapshot) for the normalisation anchors.
    progress: brax ``progress_fn(step, metrics)`` during behaviour training.
    message: ``message(str)`` for progress lines (resume notices, collection chunks).
    work_dir: resumable work directory (see the module docstring); ``None`` = keep nothing.
    behaviour_tasks: the tasks the behaviour episodes draw from. ``"all"`` (default): all
      benchmark tasks, train and test, as in the papers, where every task's data (test tasks'
      too: their IID contexts) comes from a behaviour policy trained in that task (FOCAL, CSRO,
      CORRO, UNICORN: one SAC agent per task). ``"train"``: the training tasks only, so the
      test tasks' data come from a policy that never saw them.
    physics: physics backend of the MuJoCo envs (``jcomrl.envs.make``: ``"auto"``, ``"c"``,
      ``"mjx"``); the one used is recorded in ``meta["creation"]["physics"]``. It is not part of
      the resume key: both backends simulate the same MDPs.
    anchor_policy: how the snapshots act when their returns are measured for the normalisation
      anchors: ``"deterministic"`` (default; the mean action, as every evaluation protocol of
      ``jcomrl.eval.protocols`` acts) or ``"stochastic"`` (jcomrl's earlier anchors: sampled
      actions, so an anchor and the score it normalises were measured differently). The other
      mode's per-snapshot means are kept in the meta too.
    provenance: extra entries for ``meta["creation"]`` (e.g. the source commit).
  Returns:
    ``(dataset, behaviour policies, meta)``.
  Raises:
    ConfigError: invalid algo, quality or size.
    DatasetError: ``work_dir`` belongs to a run with other behaviour settings.
  """
  say = message or (lambda s: None)
  algo, kw = split_behaviour_kwargs(behaviour_kwargs)
  replay_mode = _check_quality(quality, algo, behaviour_tasks)
  env = envs.make(env_name, physics=physics, **env_overrides)
  num_snapshots = int(kw.get("num_snapshots", 0))
  if num_snapshots < 2:
    raise ConfigError(f"behaviour.num_snapshots must be >= 2, got {num_snapshots}")
  episodes = 0 if replay_mode else episodes_for(
      env, quality, num_snapshots, episodes_per_snapshot=episodes_per_snapshot,
      transitions_per_task=transitions_per_task)
  all_tasks, split, beh_tasks = _behaviour_task_table(env, behaviour_tasks)
  behaviour_cfg = {"env": env_name, "env_overrides": env_overrides, "seed": seed, "algo": algo,
                   "behaviour_tasks": behaviour_tasks, **kw}
  # The stored terminal flags depend on the env variant's episode-end convention: part of the
  # resume key, so chunks collected under another convention are never reused.
  collection_cfg = {"quality": quality, "episodes_per_snapshot": episodes,
                    "chunk_episodes": chunk_episodes, "end_convention": env.end_convention}
  work = WorkDir(work_dir, behaviour_cfg, collection_cfg, say) if work_dir else None

  policies, replay, behaviour_seconds = _behaviour_policies(
      env, algo, kw, beh_tasks, seed=seed, replay_mode=replay_mode, work=work,
      progress=progress, behaviour_tasks=behaviour_tasks, say=say)
  data = _dataset_of(env, policies, replay, all_tasks, seed=seed, quality=quality,
                     episodes=episodes, chunk_episodes=chunk_episodes,
                     transitions_per_task=transitions_per_task, work=work, say=say)
  if anchor_policy not in ANCHOR_POLICIES:
    raise ConfigError(f"anchor_policy={anchor_policy!r}; expected one of {ANCHOR_POLICIES}")
  by_mode = _returns_by_mode(env, policies, all_tasks, seed, return_episodes)
  creation = {"seed": seed, "episodes_per_snapshot": episodes,
              "transitions_per_task": transitions_per_task, "chunk_episodes": chunk_episodes,
              "return_episodes": return_episodes, "behaviour": jsonable({"algo": algo, **kw}),
              "behaviour_tasks": behaviour_tasks, "physics": getattr(env, "physics", None),
              "behaviour_seconds": (None if behaviour_seconds is None
                                    else round(behaviour_seconds, 1))}
  meta = _dataset_meta(env, env_name, env_overrides, split, data, quality, creation, policies,
                       by_mode, anchor_policy)
  if provenance:
    meta["creation"].update(jsonable(provenance))
  return data, policies, meta


def _check_quality(quality: str, algo: str, behaviour_tasks: str) -> bool:
  """Whether ``quality`` is ``"replay"`` (the behaviour run's replay buffer as the dataset);
  ``ConfigError`` for an unknown quality or a replay the settings cannot make."""
  if quality not in collect.QUALITIES + (REPLAY,):
    raise ConfigError(f"unknown dataset quality {quality!r} (config key quality); "
                      f"expected one of {collect.QUALITIES + (REPLAY,)}")
  replay_mode = quality == REPLAY
  if replay_mode and algo not in REPLAY_ALGOS:
    raise ConfigError(f"quality='replay' keeps the behaviour run's replay buffer, which only "
                      f"{REPLAY_ALGOS} have; set behaviour.algo to one of them (got {algo!r})")
  if replay_mode and behaviour_tasks != "all":
    raise ConfigError("quality='replay' needs behaviour_tasks='all': every task's data is its "
                      "own stream of the behaviour run")
  return replay_mode


def _behaviour_task_table(env: TaskEnv, behaviour_tasks: str):
  """``(all benchmark tasks, the benchmark split, the tasks the behaviour policies train on)``
  (``ConfigError`` for an unknown ``behaviour_tasks``)."""
  all_tasks = env.all_benchmark_tasks()
  split = env.benchmark_split()
  if behaviour_tasks not in BEHAVIOUR_TASKS:
    raise ConfigError(f"unknown behaviour_tasks {behaviour_tasks!r} (config key "
                      f"behaviour_tasks); expected one of {BEHAVIOUR_TASKS}")
  beh_tasks = (all_tasks if behaviour_tasks == "all"
               else jax.tree.map(lambda x: x[np.asarray(split["train"])], all_tasks))
  return all_tasks, split, beh_tasks


def _behaviour_policies(env: TaskEnv, algo: str, kw: dict[str, Any], beh_tasks, *, seed: int,
                        replay_mode: bool, work: WorkDir | None, progress, behaviour_tasks: str,
                        say: Progress):
  """``(policies, replay or None, behaviour seconds or None)``: the snapshots (and replay
  buffer) a work directory kept, else a training run's (resuming the work directory's
  checkpoint), saved there."""
  replay_file = os.path.join(work.path, REPLAY_FILE) if work is not None else None
  if work is not None and os.path.isdir(work.behaviour_path) and (
      not replay_mode or os.path.exists(replay_file)):
    policies = load_behaviour(work.path, env)
    replay = load_replay(replay_file) if replay_mode else None
    say(f"resuming: reusing {policies.num_snapshots} {policies.algo} behaviour snapshots "
        f"(steps {policies.steps.tolist()}) from {work.behaviour_path}")
    # what the processes that trained them took
    behaviour_seconds = read_behaviour_seconds(work.path)
    # a run killed between saving its snapshots and deleting its checkpoint
    shutil.rmtree(work.behaviour_checkpoint_path, ignore_errors=True)
    return policies, replay, behaviour_seconds
  extra, prior_s = _behaviour_checkpoint(algo, work, say)
  num_beh = int(jax.tree.leaves(beh_tasks)[0].shape[0])
  say(f"training {algo} behaviour policies on {num_beh} tasks ({behaviour_tasks}) ...")
  if replay_mode:
    extra["keep_replay"] = True
  t_beh = time.time()
  beh_progress = progress
  if work is not None:
    def beh_progress(step, metrics):  # the wall time so far survives a kill (at interval ends)
      write_behaviour_seconds(work.path, prior_s + time.time() - t_beh)
      if progress is not None:
        progress(step, metrics)
  out = behaviour.train_behaviour(algo, env, beh_tasks, seed=seed, progress_fn=beh_progress,
                                  **kw, **extra)
  policies, replay = out if replay_mode else (out, None)
  behaviour_seconds = prior_s + time.time() - t_beh
  if work is not None:
    write_behaviour_seconds(work.path, behaviour_seconds)
    if replay_mode:  # first the buffer, then the snapshots that mark the phase as done
      save_replay(replay_file, replay)
    work.save_behaviour(policies)
    if "checkpoint_dir" in extra:
      shutil.rmtree(extra["checkpoint_dir"], ignore_errors=True)
    say(f"saved behaviour snapshots to {work.behaviour_path}")
  return policies, replay, behaviour_seconds


def _behaviour_checkpoint(algo: str, work: WorkDir | None, say: Progress) -> tuple[dict, float]:
  """``(extra trainer kwargs, training seconds before)``: where the behaviour trainer keeps its
  checkpoints in the work directory (brax's ``sac``: its snapshots, started afresh; the
  ``RESUMABLE_ALGOS``: their whole state, resumed) and how long the killed processes a resumed
  run continues had trained."""
  extra = {}
  if algo == "sac" and work is not None:
    extra["checkpoint_dir"] = os.path.join(work.path, "sac_checkpoints")
    shutil.rmtree(extra["checkpoint_dir"], ignore_errors=True)
  prior_s = 0.0  # training seconds of the killed processes this run resumes
  if algo in RESUMABLE_ALGOS and work is not None:
    extra["checkpoint_dir"] = work.behaviour_checkpoint_path
    step = resumable.resume_step(extra["checkpoint_dir"])
    if step is not None:
      prior_s = read_behaviour_seconds(work.path) or 0.0
      say(f"resuming {algo} behaviour training from env step {step:,} per task "
          f"({extra['checkpoint_dir']}; {prior_s / 60:.1f} min of training before)")
  return extra, prior_s


def _dataset_of(env: TaskEnv, policies: BehaviourPolicies, replay, all_tasks, *, seed: int,
                quality: str, episodes: int, chunk_episodes: int, transitions_per_task: int,
                work: WorkDir | None, say: Progress) -> OfflineDataset:
  """The dataset: the replay buffer (``quality="replay"``) or rollouts of the snapshots in every
  benchmark task (``collect.build_dataset``, its chunks cached in the work directory)."""
  key = jax.random.fold_in(jax.random.key(seed), 1)
  if quality == REPLAY:
    data = replay_dataset(env, replay, np.asarray(jax.vmap(env.task_vector)(all_tasks)),
                          snapshot_steps=policies.steps)
    if transitions_per_task > 0 and transitions_per_task < data.num_transitions:
      say(f"quality='replay' keeps the whole buffer ({data.num_transitions} transitions per "
          f"task); transitions_per_task={transitions_per_task} is ignored")
    return data
  return collect.build_dataset(env, policies, all_tasks, key, quality=quality,
                               episodes_per_snapshot=episodes, chunk_episodes=chunk_episodes,
                               cache=work, progress=say)


def _returns_by_mode(env: TaskEnv, policies: BehaviourPolicies, all_tasks, seed: int,
                    return_episodes: int) -> dict[str, np.ndarray]:
  """``{anchor policy: [K, T]}``: each snapshot's mean return in each task over
  ``return_episodes`` episodes, acting as each of ``ANCHOR_POLICIES`` says (one key for both)."""
  k_ret = jax.random.fold_in(jax.random.key(seed), 2)
  return {m: collect.snapshot_returns(env, policies, all_tasks, k_ret, return_episodes,
                                      deterministic=m == "deterministic")  # [K, T]
          for m in ANCHOR_POLICIES}


def _dataset_meta(env: TaskEnv, env_name: str, env_overrides: dict[str, Any], split: dict,
                  data: OfflineDataset, quality: str, creation: dict,
                  policies: BehaviourPolicies, by_mode: dict[str, np.ndarray],
                  anchor_policy: str) -> dict:
  """The dataset's meta: its env, quality, ``creation`` record, the behaviour snapshots' returns
  (``by_mode``: ``[K, T]`` per anchor policy) and the normalisation anchors."""
  replay_mode = quality == REPLAY
  returns = by_mode[anchor_policy]
  other = [m for m in ANCHOR_POLICIES if m != anchor_policy][0]
  if replay_mode:
    creation = {**creation, "source": "the behaviour run's whole replay buffer (checkpoint_id = "
                                      "training interval)"}
  return {
      "env": env_name, "env_overrides": env_overrides, "split": split,
      "task_params": np.asarray(data.task_params).tolist(), "quality": quality,
      "end_convention": env.end_convention, "creation": creation,
      "behaviour_snapshots": {"algo": policies.algo, "steps": policies.steps.tolist(),
                              "mean_return": returns.mean(axis=1).tolist(),
                              # [K, T]: each snapshot's mean return in each task
                              "task_returns": np.round(returns, 3).tolist(),
                              "used": (list(range(policies.num_snapshots)) if replay_mode
                                       else collect.snapshot_ids(quality,
                                                                 policies.num_snapshots)),
                              "policy": anchor_policy,
                              f"mean_return_{other}": by_mode[other].mean(axis=1).tolist()},
      # Normalisation anchors: 0 = the random (first, untrained) snapshot, 100 = the
      # best snapshot (highest mean over all tasks; not blindly the last, which a late collapse
      # would make a weak anchor); mean episode return over all tasks with the snapshots acting
      # as ``anchor_policy`` says, counted as evaluation counts (rewards up to the first done,
      # or all steps under the env's "no_terminal" end convention).
      "normalisation": anchors(returns, anchor_policy),
  }


def anchors(returns: np.ndarray, policy: str) -> dict:
  """``meta["normalisation"]`` from the ``[K, T]`` snapshot returns: random = snapshot 0, expert
  = the best snapshot's mean (``best_snapshot``), with the last snapshot's mean beside it."""
  means = np.asarray(returns, np.float64).mean(axis=1)
  best = int(np.argmax(means))
  return {"random": float(means[0]), "expert": float(means[best]), "best_snapshot": best,
          "last": float(means[-1]), "policy": policy}


BEHAVIOUR_SECONDS_FILE = "behaviour_seconds.json"


def read_behaviour_seconds(work_path: str) -> float | None:
  """Behaviour-training wall seconds recorded in a work directory (summed over the processes a
  killed run was resumed in, up to the last snapshot interval each finished), or None."""
  try:
    with open(os.path.join(work_path, BEHAVIOUR_SECONDS_FILE)) as f:
      return float(json.load(f)["seconds"])
  except (OSError, ValueError, KeyError, TypeError):
    return None


def write_behaviour_seconds(work_path: str, seconds: float) -> None:
  """Records the behaviour-training wall seconds so far in a work directory (atomically)."""
  _atomic_write_json(os.path.join(work_path, BEHAVIOUR_SECONDS_FILE),
                     {"seconds": round(float(seconds), 1)})


def save_replay(path: str, replay) -> None:
  """Writes a behaviour run's ``per_task_sac.Replay`` to ``path`` (``.npz``, atomically): the
  ``Transition`` fields and ``num_envs``."""
  t = replay.transitions
  arrays = {f.name: np.asarray(getattr(t, f.name)) for f in dataclasses.fields(t)}
  with atomic.atomic_file(path, "wb", suffix=".npz") as f:
    np.savez(f, num_envs=np.asarray(replay.num_envs), **arrays)


def load_replay(path: str):
  """The ``per_task_sac.Replay`` that ``save_replay`` wrote to ``path`` (``DatasetError`` if it is
  unreadable)."""
  try:
    with np.load(path) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError) as e:
    raise DatasetError(f"{path}: unreadable replay buffer of an interrupted collection ({e}); "
                       "delete the work directory to start afresh") from e
  num_envs = int(arrays.pop("num_envs"))
  return Replay(transitions=Transition(**arrays), num_envs=num_envs)


def work_dir_for(path: str) -> str:
  """The resumable work directory of a dataset written to ``path``."""
  return os.path.abspath(path).rstrip(os.sep) + WORK_SUFFIX


def generate_and_save(path: str, env_name: str, env_overrides: dict[str, Any], *,
                      overwrite: bool = False, resume: bool = True,
                      **kwargs) -> tuple[OfflineDataset, dict]:
  """``generate`` into ``<path>.partial`` (resumable), then an atomic, validated save to ``path``.

  Args:
    path: dataset directory to write.
    env_name, env_overrides: the env.
    overwrite: replace an existing dataset at ``path`` (checked before any training).
    resume: use (and keep, while unfinished) the work directory ``<path>.partial``.
    **kwargs: ``generate`` arguments.
  Returns:
    ``load_dataset(path)``: the dataset as read back and validated, and its meta.
  """
  if os.path.exists(path) and not overwrite:
    raise DatasetError(f"{path} already exists; pass overwrite=True (--config.overwrite=True) "
                       "to replace it")
  work = work_dir_for(path) if resume else None
  data, policies, meta = generate(env_name, env_overrides, work_dir=work, **kwargs)
  writer = lambda tmp: save_behaviour(os.path.join(tmp, BEHAVIOUR_DIR), policies)
  save_dataset(path, data, meta, overwrite=overwrite, extra_writer=writer)
  loaded = load_dataset(path)
  if work is not None:
    shutil.rmtree(work, ignore_errors=True)
  return loaded
