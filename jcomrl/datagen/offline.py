"""Single-task, D4RL-style dataset families: five qualities from ONE behaviour run.

A *family* is the D4RL quality ladder of one env task (Fu et al. 2020, D4RL §5 gym locomotion),
made from a single per-task SAC run (:mod:`jcomrl.datagen.per_task_sac` with one task) and written
as five one-task ``OfflineDataset`` directories (a single-task dataset is a one-task dataset):

``random``
    rollouts of the untrained snapshot: the randomly initialised SAC actor, stochastic actions
    (D4RL's "random" is a randomly initialised policy).
``medium``
    rollouts of the snapshot whose evaluated return is closest to ``medium_fraction`` (1/3) of
    the expert snapshot's (D4RL: a policy early-stopped at about a third of the expert).
    Candidates are every snapshot but the untrained one and the expert one; the first wins a tie.
``medium_replay``
    every transition the SAC run stored in its replay buffer until the medium snapshot was
    taken (uniform warm-up steps included), in the order stored (see ``replay_dataset``).
``expert``
    rollouts of the BEST snapshot (the highest evaluated return; the 100 anchor). D4RL's expert
    is its fully trained policy, i.e. our final snapshot; we take the best one instead so that
    the expert data come from the very policy that scores 100, and a late collapse of the run
    cannot make a weak "expert" (at the CPU profile the final snapshot was not always the best).
    The final snapshot's return is kept beside it (``meta["normalisation"]["last"]``).
``medium_expert``
    ``medium`` followed by ``expert`` (concatenated along the transition axis).

Rollouts are the collection code's (``collect.collect_segments``: fixed ``episode_length``
segments, explicit resets after a fall, stochastic actions). Every snapshot is evaluated over
``return_episodes`` episodes (``collect.snapshot_returns``, counted as evaluation counts) twice,
acting deterministically (the mean action) and stochastically. The normalisation anchors
(``pipeline.anchors``, as the meta-RL datasets define them) are 0 = the untrained snapshot and
100 = the best snapshot, both with the snapshots acting as ``anchor_policy`` says: by default
``"deterministic"``, as the single-task evaluation protocol acts (``jcomrl.eval.suite``'s ``iid``
runs deterministic episodes of the learner), so an anchor and the score it normalises are
measured the same way; the mode is recorded in ``meta["normalisation"]["policy"]``. The expert
(best) and medium snapshots are chosen from the same returns; the other mode's returns are kept
in the meta. Families written before this (no ``policy`` in their ``normalisation``) anchored on
the mean STOCHASTIC return of the untrained and FINAL snapshots and took ``expert`` from the
final snapshot; they still load, and a rerun no longer counts them as its own (their run key
lacks the anchor settings: ``overwrite=True`` replaces them, reusing a kept work directory's
behaviour run). Every dataset of a family carries the same anchors in ``meta["normalisation"]``
(read by ``dataset.check_normalisation``), the behaviour snapshots (``behaviour/``) and, in
``meta["offline"]``, the run key, every snapshot's return and the medium and expert choice.

The env must leave exactly one benchmark task (``num_tasks=1`` / a zero-width parameter range
through its overrides), so the dataset's task row 0 is the env's task row 0, as evaluation
assumes; the split is then ``{"train": [0], "test": [0]}`` (the "same" split).

Resumable: the work directory ``<root>/<name>.partial/`` keeps the behaviour run's checkpoint
while it trains (``behaviour_ckpt/``, ``jcomrl.datagen.resumable``: a killed run resumes from its
last checkpoint to the agents an uninterrupted run trains, bit for bit), then the behaviour
snapshots, the replay buffer, the snapshot returns and the finished collection chunks
(``pipeline.WorkDir`` semantics: other behaviour settings are refused). A family dataset that
already exists with the same run key is kept; the work directory is removed once all five exist.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jcomrl import atomic, envs
from jcomrl.data.dataset import (DatasetError, OfflineDataset, episode_ids, load_dataset, read_meta,
                                 save_dataset)
from jcomrl.datagen import collect, per_task_sac, pipeline, resumable
from jcomrl.envs.base import TaskEnv
from jcomrl import logging as jlogging
from jcomrl.types import Transition

QUALITIES = ("random", "medium", "medium_replay", "expert", "medium_expert")
ROLLOUT_QUALITIES = ("random", "medium", "expert", "medium_expert")  # need collection rollouts
ConfigError = pipeline.ConfigError
Progress = Callable[[str], None]


def parse_qualities(spec: str | Sequence[str]) -> list[str]:
  """``"all"``, ``"medium,expert"`` or a list -> validated quality names in ``QUALITIES`` order
  (``ConfigError`` naming the bad one). D4RL's hyphenated spellings are accepted."""
  names = [q.strip().replace("-", "_") for q in
           (spec.split(",") if isinstance(spec, str) else spec) if q.strip()]
  if names == ["all"]:
    return list(QUALITIES)
  bad = [q for q in names if q not in QUALITIES]
  if bad or not names:
    raise ConfigError(f"unknown dataset qualities {bad or spec!r} (config key qualities); "
                      f"expected 'all' or a comma list of {', '.join(QUALITIES)}")
  return [q for q in QUALITIES if q in names]


def dataset_dir(root: str, name: str, quality: str) -> str:
  """``<root>/<name>-<quality>``, e.g. ``data/offline/hopper-medium_replay``."""
  return os.path.join(root, f"{name}-{quality}")


def medium_snapshot(returns: np.ndarray, fraction: float = 1.0 / 3.0,
                    expert: int | None = None) -> tuple[int, float]:
  """``(snapshot index, target)``: the snapshot whose return is closest to ``target = fraction *
  returns[expert]`` (first on ties), among all but the untrained one (0) and the expert one.
  ``expert`` defaults to the best snapshot (``argmax``, the first of equals: as
  ``pipeline.anchors`` picks it)."""
  r = np.asarray(returns, np.float64)
  if r.ndim != 1 or r.shape[0] < 3:
    raise ValueError(f"need the returns of K >= 3 snapshots, got shape {r.shape}")
  expert = int(np.argmax(r)) if expert is None else int(expert)
  if not 0 <= expert < r.shape[0]:
    raise ValueError(f"expert snapshot {expert} is not one of the {r.shape[0]} snapshots")
  target = float(fraction) * float(r[expert])
  candidates = np.asarray([k for k in range(1, r.shape[0]) if k != expert])
  return int(candidates[np.argmin(np.abs(r[candidates] - target))]), target


def replay_dataset(replay: per_task_sac.Replay, steps: int, snapshot_steps: Sequence[int],
                   task_params: np.ndarray, segment_length: int) -> OfflineDataset:
  """The first ``steps`` env steps of a (one- or more-task) replay as an ``OfflineDataset``.

  Layout: each env's time-ordered stream (``Replay.env_streams``) in turn, env 0 first, so an
  episode that crosses a segment boundary stays contiguous and no episode is cut inside a
  stream. Each stream must be a whole number of ``segment_length`` segments. The transitions
  are the buffer's, unchanged, except that the last step of each stream (an episode still
  running when the snapshot was taken, unless it ended exactly there) is marked ``timeout``.
  ``checkpoint_id``: the index of the last snapshot taken before the step (``snapshot_steps``
  are the snapshots' env-step counts; 0 throughout the first interval, warm-up included).
  """
  streams = replay.env_streams(steps)  # [T, E, L]
  t, e, length = streams.reward.shape
  if length % segment_length:
    raise ValueError(f"each env's stream of {length} steps is not a whole number of "
                     f"{segment_length}-step segments")
  flat = jax.tree.map(lambda x: np.ascontiguousarray(x).reshape((t, e * length) + x.shape[3:]),
                      streams)
  ends = np.zeros((t, e, length), np.float32)
  ends[:, :, -1] = 1.0
  ends = ends.reshape(t, e * length)
  flat = flat.replace(timeout=np.maximum(flat.timeout, ends * (1.0 - flat.terminal)))
  # The env step (per task) at which each stored transition was taken: stream e, step j.
  step_of = np.tile(np.arange(length) * e, e) + np.repeat(np.arange(e), length)
  ckpt = np.searchsorted(np.asarray(snapshot_steps), step_of, side="right") - 1
  ckpt = np.broadcast_to(ckpt.astype(np.int32), (t, e * length)).copy()
  return OfflineDataset(transitions=flat, checkpoint_id=ckpt,
                        episode_id=episode_ids(flat.terminal, flat.timeout),
                        task_params=np.asarray(task_params, np.float32),
                        segment_length=int(segment_length))


def _rollout_dataset(traj: Transition, index: int, snapshot_id: int,
                     task_params: np.ndarray) -> OfflineDataset:
  """Snapshot ``index`` of collected segments ``[T, K, E, H]`` as an ``OfflineDataset``."""
  one = jax.tree.map(lambda x: np.asarray(x)[:, index], traj)  # [T, E, H, ...]
  t, e, h = one.reward.shape
  flat = jax.tree.map(lambda x: x.reshape((t, e * h) + x.shape[3:]), one)
  return OfflineDataset(transitions=flat, checkpoint_id=np.full((t, e * h), snapshot_id, np.int32),
                        episode_id=episode_ids(flat.terminal, flat.timeout),
                        task_params=np.asarray(task_params, np.float32), segment_length=h)


def concatenate(first: OfflineDataset, second: OfflineDataset) -> OfflineDataset:
  """``first`` followed by ``second`` along the transition axis (same tasks and segment length);
  episode ids are renumbered over the result."""
  if first.segment_length != second.segment_length or first.num_tasks != second.num_tasks:
    raise ValueError("datasets to concatenate need the same tasks and segment_length")
  cat = lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)], axis=1)
  tr = jax.tree.map(cat, first.transitions, second.transitions)
  return OfflineDataset(transitions=tr,
                        checkpoint_id=cat(first.checkpoint_id, second.checkpoint_id),
                        episode_id=episode_ids(np.asarray(tr.terminal), np.asarray(tr.timeout)),
                        task_params=np.asarray(first.task_params),
                        segment_length=first.segment_length)


def single_task_env(env_name: str, env_overrides: dict[str, Any], physics: str = "auto"):
  """``(env, tasks [1])`` of a single-task env; ``ConfigError`` if the overrides leave more
  than one benchmark task (or do not build)."""
  if env_name not in envs.registered():
    raise ConfigError(f"unknown env {env_name!r} (config key env); expected one of "
                      f"{', '.join(envs.registered())}")
  try:
    env = envs.make(env_name, physics=physics, **env_overrides)
  except ValueError as e:
    raise ConfigError(f"env {env_name!r} with overrides {env_overrides}: {e}") from e
  tasks = env.all_benchmark_tasks()
  n = int(jax.tree.leaves(tasks)[0].shape[0])
  if n != 1:
    raise ConfigError(f"single-task datasets need env overrides that leave one benchmark task; "
                      f"{env_name} with {env_overrides} has {n} (e.g. num_tasks=1 with "
                      "split='same', see experiments/configs/offline_data.py)")
  return env, tasks


def check_schedule(env: TaskEnv, sac: dict[str, Any], num_snapshots: int) -> int:
  """Env steps per task between snapshots; ``ConfigError`` unless every snapshot interval is a
  whole number of ``episode_length`` segments per env (so the replay up to any snapshot is).
  With ``intervals_after_warmup`` the intervals split the budget left after the warm-up, as
  ``per_task_sac.schedule`` splits it for training."""
  if num_snapshots < 3:
    raise ConfigError(f"behaviour.num_snapshots must be >= 3 (random, medium candidates, expert),"
                      f" got {num_snapshots}")
  num_envs = int(sac.get("num_envs", 2))
  warmup = int(sac.get("warmup_steps", 10_000))
  after = bool(sac.get("intervals_after_warmup", False))
  try:
    seg = per_task_sac.schedule(int(sac["num_timesteps"]), num_snapshots, num_envs, warmup,
                                after_warmup=after)
  except (ValueError, KeyError) as e:
    raise ConfigError(f"behaviour.sac_per_task: {e}") from e
  h = env.episode_length
  if seg % h:
    step = h * num_envs * (num_snapshots - 1)
    good = math.ceil(seg / h) * step + (warmup if after else 0)
    raise ConfigError(
        f"behaviour.sac_per_task.num_timesteps={sac['num_timesteps']} gives {seg} iterations "
        f"per snapshot interval, not a multiple of episode_length={h}: the replay up to a "
        f"snapshot would end inside a segment; use num_timesteps={good} (a multiple of "
        f"episode_length x num_envs x (num_snapshots - 1) = {step}"
        + (f", plus warmup_steps={warmup})" if after else ")"))
  return seg * num_envs


def generate_family(root: str, name: str, env_name: str, env_overrides: dict[str, Any], *,
                    qualities: Sequence[str] = QUALITIES, seed: int = 0,
                    behaviour_kwargs: dict[str, Any], transitions: int,
                    chunk_episodes: int = 0, return_episodes: int = 10,
                    medium_fraction: float = 1.0 / 3.0, physics: str = "auto",
                    anchor_policy: str = "deterministic",
                    overwrite: bool = False, resume: bool = True,
                    message: Progress | None = None) -> dict[str, tuple[OfflineDataset, dict]]:
  """Writes the requested qualities of family ``name`` to ``<root>/<name>-<quality>``.

  Args:
    root, name: output directory and family name (``dataset_dir``).
    env_name, env_overrides: a single-task env (``single_task_env``).
    qualities: subset of ``QUALITIES``.
    seed: behaviour-training seed; collection and evaluation keys are folded from it.
    behaviour_kwargs: ``{"algo": "sac_per_task", "num_snapshots": K, **train_sac_per_task
      kwargs}``.
    transitions: size of ``random``, ``medium`` and ``expert`` (rounded up to whole
      ``episode_length`` episodes; ``medium_expert`` has twice this, ``medium_replay`` what the
      run stored up to the medium snapshot).
    chunk_episodes: episodes per jitted collection call (0 = one call).
    return_episodes: evaluation episodes per snapshot and mode (anchors, the expert and
      medium choice).
    medium_fraction: the medium target as a fraction of the expert's return.
    physics: MuJoCo backend (``envs.make``).
    anchor_policy: how the snapshots act when the returns that make the anchors and pick the
      expert and medium snapshots are measured: ``"deterministic"`` (default; the mean action,
      as the single-task evaluation protocol acts) or ``"stochastic"`` (sampled actions, as
      the dataset rollouts act). Part of the run key.
    overwrite: replace family datasets of another run (same-run ones are kept either way).
    resume: keep the work directory ``<root>/<name>.partial`` while unfinished; a killed
      behaviour training resumes from its last checkpoint there.
    message: progress lines.
  Returns:
    ``{quality: load_dataset(dir)}`` for the requested qualities.
  Raises:
    ConfigError: a bad setting (before anything is trained or written).
    DatasetError: a target exists from another run without ``overwrite``, or the work directory
      holds another behaviour run.
  """
  say = message or (lambda s: None)
  qualities = parse_qualities(qualities)
  plan = _family_plan(env_name, env_overrides, seed=seed, behaviour_kwargs=behaviour_kwargs,
                      transitions=transitions, chunk_episodes=chunk_episodes,
                      return_episodes=return_episodes, medium_fraction=medium_fraction,
                      physics=physics, anchor_policy=anchor_policy)
  # Which targets need writing (decided before any work, so a refusal costs nothing).
  todo = _family_todo(root, name, qualities, plan.run_key, overwrite, say)
  work_path = os.path.abspath(os.path.join(root, f"{name}.partial"))
  if not todo:
    _cleanup(root, name, plan.run_key, work_path, say)
    return {q: load_dataset(dataset_dir(root, name, q)) for q in qualities}

  work = (pipeline.WorkDir(work_path, plan.behaviour_cfg, plan.collection_cfg, say) if resume
          else None)
  policies, replay = _family_behaviour(plan, env_name, seed, work, work_path, say)
  by_mode = _snapshot_returns(plan.env, policies, plan.tasks, seed, return_episodes, work, say)
  returns = by_mode[anchor_policy]
  norm, expert, medium, target = _family_snapshots(name, policies, returns, anchor_policy,
                                                   medium_fraction, work, say)
  task_params = np.asarray(jax.vmap(plan.env.task_vector)(plan.tasks), np.float32)
  built = _build_family(plan, policies, replay, todo, [0, medium, expert], seed, chunk_episodes,
                        task_params, work, say)
  common = _family_common_meta(plan, env_name, env_overrides, name, seed, transitions,
                               chunk_episodes, return_episodes, task_params, norm)
  offline = _family_offline_meta(plan.run_key, policies, by_mode, anchor_policy, expert, medium,
                                 target, medium_fraction)
  _write_family(root, name, todo, built, common, offline, policies, by_mode, anchor_policy, say)
  if work is not None:
    _cleanup(root, name, plan.run_key, work_path, say)
  return {q: load_dataset(dataset_dir(root, name, q)) for q in qualities}


@dataclasses.dataclass(frozen=True)
class _FamilyPlan:
  """A family's checked settings (``_family_plan``): its single-task env, the behaviour run and
  the run key its datasets record."""

  env: TaskEnv
  tasks: Any  # the env's one benchmark task, [1]
  algo: str
  kw: dict[str, Any]  # train_sac_per_task kwargs (num_snapshots taken out, buffer_size set)
  num_snapshots: int
  episodes: int  # rollout episodes per snapshot: ``transitions`` in whole episodes
  behaviour_cfg: dict[str, Any]
  collection_cfg: dict[str, Any]
  run_key: dict[str, Any]


def _family_plan(env_name: str, env_overrides: dict[str, Any], *, seed: int,
                behaviour_kwargs: dict[str, Any], transitions: int, chunk_episodes: int,
                return_episodes: int, medium_fraction: float, physics: str,
                anchor_policy: str) -> _FamilyPlan:
  """Checks ``generate_family``'s settings (``ConfigError``), builds the env and the run key."""
  algo, kw = pipeline.split_behaviour_kwargs(behaviour_kwargs)
  if algo != per_task_sac.ALGO:
    raise ConfigError(f"behaviour.algo={algo!r}: single-task families need "
                      f"'{per_task_sac.ALGO}' (its replay buffer is the medium_replay dataset)")
  if int(transitions) < 1:
    raise ConfigError(f"transitions must be >= 1, got {transitions}")
  if int(return_episodes) < 1:
    raise ConfigError(f"return_episodes must be >= 1, got {return_episodes}")
  if not 0.0 < float(medium_fraction) <= 1.0:
    raise ConfigError(f"medium_fraction must be in (0, 1], got {medium_fraction}")
  if anchor_policy not in pipeline.ANCHOR_POLICIES:
    raise ConfigError(f"anchor_policy={anchor_policy!r} (config key anchor_policy); expected "
                      f"one of {pipeline.ANCHOR_POLICIES}")
  env, tasks = single_task_env(env_name, dict(env_overrides), physics)
  num_snapshots = int(kw.pop("num_snapshots", 0))
  check_schedule(env, kw, num_snapshots)
  kw.setdefault("buffer_size", int(kw["num_timesteps"]))  # the whole run, nothing overwritten
  episodes = math.ceil(int(transitions) / env.episode_length)
  behaviour_cfg = {"env": env_name, "env_overrides": dict(env_overrides), "seed": int(seed),
                   "algo": algo, "num_snapshots": num_snapshots, **kw}
  collection_cfg = {"episodes_per_snapshot": episodes, "chunk_episodes": int(chunk_episodes),
                    "return_episodes": int(return_episodes),
                    "medium_fraction": float(medium_fraction),
                    "end_convention": env.end_convention,
                    # the anchor definition (absent from families written before it): 100 =
                    # the best snapshot, which also makes the expert data
                    "anchor_policy": anchor_policy, "expert_snapshot": "best"}
  run_key = pipeline.jsonable({"behaviour": behaviour_cfg, "collection": collection_cfg})
  return _FamilyPlan(env=env, tasks=tasks, algo=algo, kw=kw, num_snapshots=num_snapshots,
                    episodes=episodes, behaviour_cfg=behaviour_cfg,
                    collection_cfg=collection_cfg, run_key=run_key)


def _family_todo(root: str, name: str, qualities: list[str], run_key, overwrite: bool,
                 say: Progress) -> list[str]:
  """The qualities to write: those not already written by this run (``DatasetError`` for one
  written by another run, unless ``overwrite``)."""
  todo = []
  for q in qualities:
    path = dataset_dir(root, name, q)
    if os.path.exists(path):
      try:
        same = read_meta(path).get("offline", {}).get("run") == run_key
      except DatasetError:
        same = False
      if same:
        say(f"{path}: already written by this run; kept")
        continue
      if not overwrite:
        raise DatasetError(f"{path} already exists (another run or config); pass "
                           "overwrite=True (--config.overwrite=True) to replace it")
    todo.append(q)
  return todo


def _family_behaviour(plan: _FamilyPlan, env_name: str, seed: int, work, work_path: str,
                      say: Progress):
  """``(policies, replay)`` of the behaviour run: those a work directory kept, else trained
  (resuming the work directory's checkpoint) and, with a work directory, saved there."""
  replay_file = os.path.join(work_path, pipeline.REPLAY_FILE)
  if (work is not None and os.path.isdir(work.behaviour_path)
      and os.path.exists(replay_file)):
    replay = pipeline.load_replay(replay_file)
    policies = pipeline.load_behaviour(work.path, plan.env)
    say(f"resuming: reusing {policies.num_snapshots} behaviour snapshots (steps "
        f"{policies.steps.tolist()}) and the replay buffer from {work.path}")
    # a run killed between saving its snapshots and deleting its checkpoint
    shutil.rmtree(work.behaviour_checkpoint_path, ignore_errors=True)
    return policies, replay
  policies, replay = _train_family_behaviour(plan, env_name, seed, work, say)
  if work is not None:
    # before the snapshots: their presence marks a finished run
    pipeline.save_replay(replay_file, replay)
    shutil.rmtree(work.behaviour_path, ignore_errors=True)  # snapshots without a replay
    work.save_behaviour(policies)
    shutil.rmtree(work.behaviour_checkpoint_path, ignore_errors=True)
  return policies, replay


def _train_family_behaviour(plan: _FamilyPlan, env_name: str, seed: int, work, say: Progress):
  """Trains the family's per-task SAC run (resumable in the work directory); returns
  ``(policies, replay)``."""
  algo, kw = plan.algo, plan.kw
  extra, step = {}, None
  if work is not None:  # resumable training: a killed run continues from its last checkpoint
    extra["checkpoint_dir"] = work.behaviour_checkpoint_path
    step = resumable.resume_step(extra["checkpoint_dir"])
    if step is not None:
      say(f"resuming {algo} behaviour training from env step {step:,} per task "
          f"({extra['checkpoint_dir']})")
  say(f"training {algo} on the single task of {env_name} ({kw['num_timesteps']:,} env steps, "
      f"{plan.num_snapshots} snapshots) ...")

  shown = jlogging.Progress(kw["num_timesteps"], "behaviour step", progress=say, done=step or 0)

  def show(step, metrics):
    r = float(np.asarray(metrics["train/return"]).mean())
    shown.update(step)
    shown.report(f"train return {r:.1f} ({metrics['train/seconds']:.0f}s)")

  return per_task_sac.train_sac_per_task(
      plan.env, plan.tasks, seed=int(seed), num_snapshots=plan.num_snapshots, progress_fn=show,
      keep_replay=True, **kw, **extra)


def _family_snapshots(name: str, policies, returns: np.ndarray, anchor_policy: str,
                      medium_fraction: float, work,
                      say: Progress) -> tuple[dict, int, int, float]:
  """``(normalisation, expert, medium, medium target)``: the anchors (``pipeline.anchors``),
  the best snapshot (``DatasetError`` if that is the untrained one) and the medium one
  (:func:`medium_snapshot`)."""
  # 0 = the untrained snapshot, 100 = the best one (the last one's return beside it)
  norm = pipeline.anchors(returns[:, None], anchor_policy)
  expert = norm["best_snapshot"]
  if expert == 0:  # the anchors would coincide (a zero span): no score can be normalised
    kept = f"; the behaviour run in {work.path} is reused" if work is not None else ""
    raise DatasetError(
        f"no trained snapshot of family {name!r} beats the untrained one with "
        f"anchor_policy={anchor_policy!r} (snapshot returns {np.round(returns, 2).tolist()}), "
        f"so there is no expert anchor: train longer (behaviour num_timesteps) or use the "
        f"other anchor_policy{kept}")
  medium, target = medium_snapshot(returns, medium_fraction, expert)
  say(f"snapshot returns ({anchor_policy}) {np.round(returns, 2).tolist()}; expert = snapshot "
      f"{expert} (step {int(policies.steps[expert]):,}, return {returns[expert]:.2f}); medium = "
      f"snapshot {medium} (step {int(policies.steps[medium]):,}, return {returns[medium]:.2f}, "
      f"target {target:.2f})")
  return norm, expert, medium, target


def _build_family(plan: _FamilyPlan, policies, replay, todo: list[str], ids: list[int], seed: int,
                  chunk_episodes: int, task_params: np.ndarray, work,
                  say: Progress) -> dict[str, OfflineDataset]:
  """The datasets of the ``todo`` qualities: rollouts of the snapshots ``ids`` (random, medium,
  expert) and ``medium_replay``, the replay up to the medium snapshot."""
  built: dict[str, OfflineDataset] = {}
  if any(q in ROLLOUT_QUALITIES for q in todo):
    key = jax.random.fold_in(jax.random.key(int(seed)), 1)
    traj = collect.collect_segments(plan.env, policies.select(ids), plan.tasks, key,
                                    episodes_per_snapshot=plan.episodes,
                                    chunk_episodes=int(chunk_episodes), cache=work, progress=say)
    for i, q in enumerate(("random", "medium", "expert")):
      built[q] = _rollout_dataset(traj, i, ids[i], task_params)
    built["medium_expert"] = concatenate(built["medium"], built["expert"])
  if "medium_replay" in todo:
    built["medium_replay"] = replay_dataset(replay, int(policies.steps[ids[1]]),
                                            policies.steps.tolist(), task_params,
                                            plan.env.episode_length)
  return built


def _family_common_meta(plan: _FamilyPlan, env_name: str, env_overrides: dict[str, Any],
                        name: str, seed: int, transitions: int, chunk_episodes: int,
                        return_episodes: int, task_params: np.ndarray,
                        norm: dict) -> dict[str, Any]:
  """The meta every dataset of the family shares."""
  env = plan.env
  return {
      "env": env_name, "env_overrides": pipeline.jsonable(dict(env_overrides)),
      "split": env.benchmark_split(), "task_params": task_params.tolist(),
      "end_convention": env.end_convention, "family": name,
      "creation": {"seed": int(seed), "transitions": int(transitions),
                   "episodes_per_snapshot": plan.episodes, "chunk_episodes": int(chunk_episodes),
                   "return_episodes": int(return_episodes),
                   "behaviour": pipeline.jsonable({"algo": plan.algo,
                                                    "num_snapshots": plan.num_snapshots,
                                                    **plan.kw}),
                   "behaviour_tasks": "all", "physics": getattr(env, "physics", None)},
      # 0 = the untrained snapshot, 100 = the best one (``last``: the final one's), each the
      # mean return over return_episodes episodes with the snapshots acting as anchor_policy
      # says (``policy``), counted as evaluation counts (collect.snapshot_returns).
      "normalisation": norm,
  }


def _family_offline_meta(run_key, policies, by_mode: dict[str, np.ndarray], anchor_policy: str,
                         expert: int, medium: int, target: float,
                         medium_fraction: float) -> dict[str, Any]:
  """``meta["offline"]`` of the family (its ``quality`` added per dataset): the run key, every
  snapshot's return and the expert and medium choice."""
  returns = by_mode[anchor_policy]
  other = _other_policy(anchor_policy)
  return {"run": run_key, "snapshot_steps": policies.steps.tolist(),
          "snapshot_returns": [float(r) for r in returns], "policy": anchor_policy,
          f"snapshot_returns_{other}": [float(r) for r in by_mode[other]],
          "expert_snapshot": expert, "expert_step": int(policies.steps[expert]),
          "expert_return": float(returns[expert]),
          "medium_snapshot": medium, "medium_step": int(policies.steps[medium]),
          "medium_return": float(returns[medium]), "medium_target": target,
          "medium_fraction": float(medium_fraction),
          "random_policy": "untrained snapshot: randomly initialised SAC actor, stochastic",
          "replay_steps": int(policies.steps[medium])}


def _other_policy(anchor_policy: str) -> str:
  """The anchor policy that is not ``anchor_policy``."""
  return [m for m in pipeline.ANCHOR_POLICIES if m != anchor_policy][0]


def _write_family(root: str, name: str, todo: list[str], built: dict[str, OfflineDataset],
                  common: dict, offline: dict, policies, by_mode: dict[str, np.ndarray],
                  anchor_policy: str, say: Progress) -> None:
  """Saves each ``todo`` quality's dataset with its meta and the behaviour snapshots."""
  returns, other = by_mode[anchor_policy], _other_policy(anchor_policy)
  writer = lambda tmp: pipeline.save_behaviour(os.path.join(tmp, pipeline.BEHAVIOUR_DIR),
                                               policies)
  for q in todo:
    data = built[q]
    used = sorted(int(c) for c in np.unique(np.asarray(data.checkpoint_id)))
    meta = dict(common, quality=q, offline=dict(offline, quality=q),
                behaviour_snapshots={"algo": policies.algo, "steps": policies.steps.tolist(),
                                     "mean_return": [float(r) for r in returns],
                                     "task_returns": [[round(float(r), 3)] for r in returns],
                                     "used": used, "policy": anchor_policy,
                                     f"mean_return_{other}": [float(r) for r in by_mode[other]]})
    path = dataset_dir(root, name, q)
    save_dataset(path, data, meta, overwrite=True, extra_writer=writer)
    say(f"wrote {path}: {data.num_transitions:,} transitions ({q})")


def _snapshot_returns(env, policies, tasks, seed, episodes, work, say) -> dict[str, np.ndarray]:
  """``{mode: [K]}``: every snapshot's mean return acting ``"deterministic"``-ally and
  ``"stochastic"``-ally (``pipeline.ANCHOR_POLICIES``; one key for both, as
  ``pipeline.generate`` evaluates), kept in the work dir once computed with the episode count
  and seed that measured them: a rerun with other ``return_episodes`` or another seed measures
  again, as does a work dir of an older jcomrl (which did not record them)."""
  file = os.path.join(work.path, "returns.json") if work is not None else None
  measured_with = {"episodes": int(episodes), "seed": int(seed)}
  if file and os.path.exists(file):
    with open(file) as f:
      saved = json.load(f)
    if (isinstance(saved, dict) and saved.get("measured_with") == measured_with
        and all(m in saved for m in pipeline.ANCHOR_POLICIES)):
      return {m: np.asarray(saved[m], np.float64) for m in pipeline.ANCHOR_POLICIES}
  say(f"evaluating {policies.num_snapshots} snapshots x {episodes} episodes, deterministic and "
      "stochastic ...")
  key = jax.random.fold_in(jax.random.key(int(seed)), 2)
  returns = {m: np.asarray(collect.snapshot_returns(env, policies, tasks, key, int(episodes),
                                                    deterministic=m == "deterministic")[:, 0],
                           np.float64)
             for m in pipeline.ANCHOR_POLICIES}
  if file:
    atomic.write_json(file, {"measured_with": measured_with,
                             **{m: r.tolist() for m, r in returns.items()}})
  return returns


def _cleanup(root, name, run_key, work_path, say) -> None:
  """Removes the work directory once every quality of the family exists from this run."""
  for q in QUALITIES:
    try:
      if read_meta(dataset_dir(root, name, q)).get("offline", {}).get("run") != run_key:
        if os.path.isdir(work_path):
          say(f"kept {work_path} (behaviour run, replay, chunks) for the family's other "
              "qualities")
        return
    except DatasetError:
      if os.path.isdir(work_path):
        say(f"kept {work_path} (behaviour run, replay, chunks) for the family's other qualities")
      return
  shutil.rmtree(work_path, ignore_errors=True)
