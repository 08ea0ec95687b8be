"""The run API: validate a training config, build its learner, train (resume, extend) a run in a
directory under its lock, evaluate protocols from a checkpoint, restore it, and say where it stands.

A run is a directory (``workdir``) holding ``config.json`` (the plain-dict training config it was
started with), ``provenance.jsonl`` (one line per start), ``metrics.jsonl`` (+ TensorBoard events),
orbax checkpoints under ``checkpoints/`` and ``eval/<protocol>_step<N>.json``. The command line
(``experiments.train``, ``experiments.evaluate``, ``experiments.sweep``) is a thin layer over this
module; from Python, with a dataset directory at ``data/point_robot`` (``experiments.collect``)::

  from jcomrl import run
  from jcomrl.algos import presets

  p = presets.preset("focal", "point_robot", tiny=True)  # learner, hparams, num_steps (20)
  cfg = dict(p, env="point_robot", dataset="data/point_robot", seed=0, num_seeds=1,
             checkpoint_every=10, eval_every=0, eval={"num_episodes": 1})
  run.train(cfg, "runs/focal_tiny", protocols=[], progress=print)  # checkpoints, metrics
  res = run.evaluate("runs/focal_tiny", ["iid", "z_shuffle"])     # eval/<protocol>_step20.json
  print({name: round(r["score"]["mean"], 2) for name, r in res.items()})

A config's keys: ``env``, ``dataset`` (a dataset directory), ``seed``, ``num_seeds`` (vmapped),
``learner`` (:class:`~jcomrl.algos.config.LearnerConfig` fields but the dataset's sizes, or
:class:`~jcomrl.algos.macaw.MacawConfig`'s with ``learner_type="macaw"``), ``hparams``
(:class:`~jcomrl.algos.config.HParams`), ``num_steps``, ``checkpoint_every``, ``eval_every``
(0: no periodic evaluation) and optionally ``eval`` (:class:`~jcomrl.eval.suite.EvalSettings`),
``algo``, ``env_overrides``, ``tasks``, ``preset_source``, ``profile``, ``learner_type``
(:func:`validate_config` lists them with their types).

Errors: :class:`~jcomrl.errors.ConfigError` (a bad config value or protocol),
:class:`~jcomrl.data.dataset.DatasetError`, :class:`~jcomrl.errors.RunDirError` (a run directory in
use or holding another run), :class:`~jcomrl.checkpoint.CheckpointError`,
:class:`~jcomrl.errors.RunFailed` and :class:`~jcomrl.algos.trainer.NonFiniteLossError` (a run that
failed while running). Nothing is written before the config, the dataset and the run directory are
checked. Nothing is printed: ``progress(line)`` and ``on_result(name, result)``, when given,
receive what a caller may show. In a multi-process run (:mod:`jcomrl.distributed`) every process
calls the same function; process 0 alone writes files and reports progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fcntl
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jcomrl import atomic, checkpoint, distributed, envs, names
from jcomrl.algos import compose
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys
from jcomrl.algos.macaw import LEARNER_TYPE as MACAW
from jcomrl.algos.macaw import MacawConfig, make_macaw
from jcomrl.algos.settings import HYPERS, SETTINGS, legacy_names
from jcomrl.algos.trainer import canonical_learner, checkpoint_dir, run_training
from jcomrl.data.dataset import DatasetError, OfflineDataset, check_normalisation, load_dataset
from jcomrl.errors import ConfigError, RunDirError, RunFailed
from jcomrl.eval import diagnostics, suite
from jcomrl.logging import Progress

__all__ = ["PROTOCOLS", "LEARNER_TYPES", "Built", "Restored", "RunLock", "validate_config",
           "check_protocols", "applicable_protocols", "build", "train", "resume", "evaluate",
           "restore", "status", "lock", "read_config", "eval_path", "ConfigError",
           "RunDirError", "RunFailed", "DatasetError"]

# What ``evaluate`` accepts: the suite's protocols plus the representation diagnostics.
PROTOCOLS = names.PROTOCOLS
# ``learner_type``: which learner a config builds (its config class and builder); "comrl" (the
# default) is the composable context-based learner, "macaw" MACAW's MAML learner.
LEARNER_TYPES = {"comrl": (LearnerConfig, make_learner), MACAW: (MacawConfig, make_macaw)}
# Protocols that need a vector task code (z = 0 before the first inference, a PCA of codes):
# MACAW's code is an adapted policy, so they do not apply to it.
_VECTOR_CODE_PROTOCOLS = ("online", "diagnostics")
# Top-level keys of a training config: type and whether it is required.
# ``tasks``: the preset's task setting (jcomrl.algos.presets.TASK_SETTINGS; absent: "unicorn");
# ``env_overrides``: env settings the dataset must have been collected with (its meta.json's
# env_overrides hold each of them with the same value), e.g. {"variant": "focal"} for FOCAL's
# 2-task setting.
_TOP_KEYS = {"algo": (str, False), "env": (str, True), "dataset": (str, True),
             "seed": (int, True), "num_seeds": (int, True), "learner": (dict, True),
             "hparams": (dict, True), "num_steps": (int, True), "checkpoint_every": (int, True),
             "eval_every": (int, True), "eval": (dict, False),
             "preset_source": (str, False), "profile": (str, False),
             "learner_type": (str, False), "tasks": (str, False),
             "env_overrides": (dict, False)}
# Learner fields taken from the dataset by ``build`` (not config keys).
_FROM_DATA = ("obs_size", "action_size", "task_param_size")
# Optional packages a protocol needs, and the extra that installs each.
_PLOTS = ("matplotlib", "plots")


class Built(NamedTuple):
  """What a training config builds: the env its dataset was collected in, the dataset (numpy
  leaves) and its ``meta.json``, the learner and the traced hyper-parameters."""
  env: Any
  data: OfflineDataset
  meta: dict
  learner: Any
  hparams: HParams


class Restored(NamedTuple):
  """A run restored from one of its checkpoints (``state``: every seed's train state)."""
  cfg: dict
  env: Any
  data: OfflineDataset
  meta: dict
  learner: Any
  state: Any
  step: int


# ---------------------------------------------------------------------------- config checks


def learner_type(cfg: Mapping):
  """``(config class, builder)`` of ``cfg["learner_type"]`` (default ``"comrl"``)."""
  kind = cfg.get("learner_type", "comrl")
  if kind not in LEARNER_TYPES:
    raise ConfigError(f"config key learner_type = {kind!r} must be one of "
                      f"{', '.join(LEARNER_TYPES)}")
  return LEARNER_TYPES[kind]


def _protocol_list(protocols) -> list[str]:
  """``protocols`` (names, or a comma string; ``"all"`` = every one) as a checked list."""
  return names.parse_protocols(protocols, ConfigError)


def applicable_protocols(cfg: Mapping, protocols) -> tuple[list[str], list[str]]:
  """``(kept, dropped)``: the protocols the config's learner can be evaluated with, and the rest
  (a sweep or table over mixed learners asks every preset for the same list)."""
  protocols = _protocol_list(protocols)
  dropped = ([p for p in protocols if p in _VECTOR_CODE_PROTOCOLS]
             if learner_type(cfg)[0] is MacawConfig else [])
  return [p for p in protocols if p not in dropped], dropped


def check_protocols(cfg: Mapping, protocols) -> None:
  """``ConfigError`` for an unknown protocol, one the config's learner cannot be evaluated
  with, or one whose optional package is not installed."""
  protocols = _protocol_list(protocols)
  if "diagnostics" in protocols and importlib.util.find_spec(_PLOTS[0]) is None:
    raise ConfigError(f"the diagnostics protocol (it plots the task codes) needs the optional "
                      f"package {_PLOTS[0]}: pip install 'jcomrl[{_PLOTS[1]}]'")
  _, bad = applicable_protocols(cfg, protocols)
  if bad:
    raise ConfigError(f"protocol(s) {', '.join(bad)} need a vector task code; MACAW adapts by "
                      "a gradient step on the context (its code is the adapted policy): use "
                      "iid, ood, task_ood (with behaviour snapshots) or z_shuffle")


def _unknown(kind: str, key: str, known) -> ConfigError:
  close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
  hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
  return ConfigError(f"unknown config key {kind}{key}; {hint}")


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_type(name: str, value, annotation: str) -> None:
  """Checks ``value`` against a dataclass field annotation (``int``, ``tuple[int, ...]``, ...)."""
  ann = annotation.replace(" ", "")
  optional = ann.endswith("|None")
  ann = ann.removesuffix("|None")
  if value is None and optional:
    return
  if ann == "bool":
    ok = isinstance(value, bool)
  elif ann == "int":
    ok = _is_int(value)
  elif ann == "float":
    ok = _is_number(value)
  elif ann == "str":
    ok = isinstance(value, str)
  elif ann.startswith("tuple[int"):
    ok = isinstance(value, (list, tuple)) and all(_is_int(x) and x >= 0 for x in value)
  else:
    return
  if not ok:
    want = {"tuple[int,...]": "a list of non-negative ints"}.get(ann, f"a {ann}")
    raise ConfigError(f"config key {name} = {value!r} must be {want}"
                      f"{' or None' if optional else ''}")


def validate_config(cfg: Mapping) -> None:
  """Checks every value of a training config before anything is built or written.

  Raises ``ConfigError`` (one line naming the key, the value and what is allowed) for an unknown
  key (with a did-you-mean), a wrong type, a value out of range, or a schedule that is not a
  multiple of ``learner.steps_per_chunk``. Learner structure checks are the learner config's own.
  """
  _validate(cfg)


def _validate(cfg: Mapping):
  """``validate_config``; returns the learner config parsed on the way (with placeholder sizes
  for the dataset's fields, which ``build`` sets)."""
  _check_top_level(cfg)
  lcfg = _check_learner(cfg)
  chunk = lcfg.steps_per_chunk
  for key in ("num_steps", "checkpoint_every", "eval_every"):
    if cfg[key] % chunk:
      raise ConfigError(f"config key {key} = {cfg[key]} must be a multiple of "
                        f"learner.steps_per_chunk = {chunk}")
  _check_hparams(cfg["hparams"])
  _check_eval(dict(cfg.get("eval") or {}))
  return lcfg


def _check_top_level(cfg: Mapping) -> None:
  if not isinstance(cfg, dict):
    raise ConfigError(f"a training config must be a dict, got {type(cfg).__name__}")
  for key in cfg:
    if key not in _TOP_KEYS:
      raise _unknown("", key, _TOP_KEYS)
  for key, (kind, required) in _TOP_KEYS.items():
    if key not in cfg:
      if required:
        raise ConfigError(f"config key {key} is missing")
      continue
    value = cfg[key]
    ok = _is_int(value) if kind is int else isinstance(value, kind)
    if not ok:
      raise ConfigError(f"config key {key} = {value!r} must be a {kind.__name__}")
  if cfg["env"] not in envs.registered():
    raise _unknown("env = ", cfg["env"], envs.registered())
  if not cfg["dataset"]:
    raise ConfigError("config key dataset is empty; set --config.dataset=<dataset directory>")
  for key, low in (("seed", 0), ("num_seeds", 1), ("num_steps", 1), ("checkpoint_every", 1),
                   ("eval_every", 0)):
    if cfg[key] < low:
      raise ConfigError(f"config key {key} = {cfg[key]} must be >= {low}")


def _check_learner(cfg: Mapping):
  """Learner keys and types (the shared ones, each plug-in's ``learner.<name>.*`` subtree, or
  the flat names of configs before plug-in subtrees), then the learner config's own structure
  checks; returns it parsed with placeholder sizes."""
  cls, _ = learner_type(cfg)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  learner = dict(cfg["learner"])
  comrl = cls is LearnerConfig
  if comrl:
    fields.pop("plugins")
  for key, value in learner.items():
    if key in _FROM_DATA:
      raise ConfigError(f"config key learner.{key} is set from the dataset; remove it")
    if key in fields:
      _check_type(f"learner.{key}", value, str(fields[key].type))
    elif comrl and key in SETTINGS:
      _check_plugin_settings(key, value)
    elif comrl and (owner := _legacy_owner(key)) is not None:
      field = legacy_names(owner)[key]
      _check_type(f"learner.{key}", value, str(_fields(owner)[field].type))
    else:
      known = set(fields) - set(_FROM_DATA) | (set(SETTINGS) if comrl else set())
      raise _unknown("learner.", key, known)
  probe = dict(learner, obs_size=1, action_size=1, task_param_size=1)
  if comrl and not probe.get("num_task_labels"):
    probe["num_task_labels"] = 2  # set from the dataset by build() (unicorn_sup's classes)
  try:
    lcfg = cls.from_dict(probe)
    if comrl:
      compose.check(lcfg)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"invalid learner config: {e} (config keys learner.*)") from e
  widths = ("encoder_hidden", "aux_hidden", "rl_hidden")
  for key in widths if comrl else ():
    if any(h <= 0 for h in getattr(lcfg, key)):
      raise ConfigError(f"config key learner.{key} = {list(getattr(lcfg, key))} must hold "
                        "positive layer widths")
  return lcfg


def _fields(cls) -> dict:
  return {f.name: f for f in dataclasses.fields(cls)}


def _legacy_owner(key: str):
  """A registered ``Settings`` class that declares the flat learner key ``key``, or None."""
  return next((c for c in SETTINGS.values() if key in legacy_names(c)), None)


def _check_plugin_settings(name: str, value) -> None:
  if not isinstance(value, Mapping):
    raise ConfigError(f"config key learner.{name} = {value!r} must be a dict of plug-in "
                      f"{name!r}'s settings")
  fields = _fields(SETTINGS[name])
  for key, v in value.items():
    if key not in fields:
      raise _unknown(f"learner.{name}.", key, fields)
    _check_type(f"learner.{name}.{key}", v, str(fields[key].type))


def _check_hparams(hparams: Mapping) -> None:
  """Known names (shared, ``hparams.<plug-in>.*`` subtrees, or flat names from before plug-in
  subtrees), finite numbers, and each one's declared range."""
  core = set(_fields(HParams)) - {"plugins"}
  for key, value in hparams.items():
    if isinstance(value, Mapping):
      if key not in HYPERS:
        raise _unknown("hparams.", key, core | set(HYPERS))
      names = _fields(HYPERS[key])
      for k, v in value.items():
        if k not in names:
          raise _unknown(f"hparams.{key}.", k, names)
        if not _is_number(v):
          raise ConfigError(f"config key hparams.{key}.{k} = {v!r} must be a finite number")
      continue
    if key not in core and not any(key in legacy_names(c) for c in HYPERS.values()):
      raise _unknown("hparams.", key, core | set(HYPERS))
    if not _is_number(value):
      raise ConfigError(f"config key hparams.{key} = {value!r} must be a finite number")
  try:
    HParams.check_values(hparams)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _check_eval(ev: dict) -> None:
  """The evaluation settings (``EvalSettings`` fields)."""
  efields = {f.name: f for f in dataclasses.fields(suite.EvalSettings)}
  for key, value in ev.items():
    if key not in efields:
      raise _unknown("eval.", key, efields)
    ann = str(efields[key].type)
    if key == "ood_snapshots":
      ann = "tuple[int, ...] | None"
    _check_type(f"eval.{key}", value, ann)
    if _is_int(value) and key != "seed" and value < 1:
      raise ConfigError(f"config key eval.{key} = {value} must be >= 1")
  if ev.get("ood_sources", "all") not in ("all", "train", "other"):
    raise ConfigError(f"config key eval.ood_sources = {ev['ood_sources']!r} must be one of "
                      "'all', 'train', 'other'")
  if not 0 <= ev.get("online_random_fraction", 0.5) <= 1:
    raise ConfigError(f"config key eval.online_random_fraction = "
                      f"{ev['online_random_fraction']} must be in [0, 1]")


def eval_settings(cfg: Mapping) -> suite.EvalSettings:
  """Protocol settings from ``cfg["eval"]`` (defaults otherwise; the context size defaults to
  the learner's)."""
  ev = dict(cfg.get("eval") or {})
  ev.setdefault("context_size", cfg["learner"].get("context_size", 64))
  return suite.EvalSettings.from_dict(ev)


# ---------------------------------------------------------------------------- build


def build(cfg: Mapping) -> Built:
  """Validates a training config, loads (and checks) its dataset and builds its learner."""
  return _build(cfg, _validate(cfg))


def _build(cfg: Mapping, lcfg=None) -> Built:
  """``build`` of a config, ``lcfg`` its learner config as ``_validate`` parsed it (``None``:
  parsed here; a run's saved config is not validated again)."""
  data, meta = load_dataset(cfg["dataset"], expect_env=cfg["env"])
  check_normalisation(cfg["dataset"], meta)  # the scores of every evaluation need it
  have = dict(meta.get("env_overrides") or {})
  for key, want in dict(cfg.get("env_overrides") or {}).items():
    if have.get(key) != want:
      raise DatasetError(f"{cfg['dataset']} was collected with env_overrides {have}; the config "
                         f"needs {key}={want!r} (config key env_overrides; the data of a task "
                         "setting is built by experiments/configs/data.py:<env>@<setting>, e.g. "
                         "<env>@focal2, <env>@multi)")
  # The env the data were collected in (its overrides are part of the dataset's meta).
  try:
    env = envs.make(cfg["env"], **have)
  except ValueError as e:
    raise DatasetError(f"{cfg['dataset']}: meta.json env_overrides do not fit: {e}") from e
  _, make = learner_type(cfg)
  learner = make(_learner_config(cfg, lcfg, data))
  return Built(env, data, meta, learner, HParams.create(**cfg["hparams"]))


def _learner_config(cfg: Mapping, lcfg, data: OfflineDataset):
  """The learner config with the dataset's sizes (and, for task-id classifiers, its number of
  task rows) set: ``lcfg`` completed, or ``cfg["learner"]`` parsed when ``lcfg`` is None."""
  cls, _ = learner_type(cfg)
  sizes = dict(obs_size=data.observation_size, action_size=data.action_size,
               task_param_size=int(data.task_params.shape[-1]))
  if cls is LearnerConfig:
    # Task-id classifiers (unicorn_sup): one class per task row of the dataset. Labels are the
    # rows 0..num_tasks-1, so an explicit value below the dataset's task count is out of range.
    labels = cfg["learner"].get("num_task_labels")
    if not labels:
      sizes["num_task_labels"] = data.num_tasks
    elif labels < data.num_tasks:
      raise ConfigError(f"learner.num_task_labels = {labels} but {cfg['dataset']} has "
                        f"{data.num_tasks} tasks (labels 0..{data.num_tasks - 1}); remove the "
                        "key (it is taken from the dataset) or set it >= the number of tasks")
  try:
    if lcfg is not None:
      out = dataclasses.replace(lcfg, **sizes)
    else:
      out = cls.from_dict(dict(cfg["learner"], **sizes))
    return compose.check(out) if cls is LearnerConfig else out
  except ValueError as e:
    raise ConfigError(f"invalid learner config for {cfg['dataset']}: {e}") from e


# ---------------------------------------------------------------------------- run directory


class RunLock:
  """An exclusive ``fcntl`` lock on ``<workdir>/.lock`` (holds the owner's pid).

  The kernel releases the lock when the process dies, SIGKILL included, so a killed run never
  leaves a stale lock behind. Re-entrant within a process (training then evaluating).
  """

  _held: dict[str, int] = {}  # real path of the lock file -> nesting depth in this process

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, ".lock")
    self._fd = None
    self._nested = False

  def acquire(self) -> RunLock:
    os.makedirs(self.workdir, exist_ok=True)
    key = os.path.realpath(self.path)
    if RunLock._held.get(key):
      RunLock._held[key] += 1
      self._nested = True
      return self
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      try:
        holder = os.pread(fd, 64, 0).decode().strip() or "?"
      finally:
        os.close(fd)
      raise RunDirError(f"{self.workdir} is in use by another jcomrl process (pid {holder}); "
                        "wait for it to finish or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    self._fd = fd
    RunLock._held[key] = 1
    return self

  def release(self) -> None:
    key = os.path.realpath(self.path)
    if self._nested:
      RunLock._held[key] -= 1
      self._nested = False
    elif self._fd is not None:
      RunLock._held.pop(key, None)
      os.close(self._fd)  # closing the descriptor drops the flock
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


@contextlib.contextmanager
def lock(workdir: str):
  """``RunLock(workdir)``; in a multi-process run, taken by process 0 alone and every process
  stops with the same ``RunDirError`` when it is held elsewhere (none waits in a collective)."""
  if not distributed.is_multiprocess():
    with RunLock(workdir):
      yield
    return
  held, error = None, None
  if distributed.is_main():
    try:
      held = RunLock(workdir).acquire()
    except RunDirError as e:
      error = e
  if not distributed.all_ok(error is None):
    raise error or RunDirError(f"{workdir} is in use by another jcomrl process (process 0 of "
                               "this run could not lock it); wait for it or use another "
                               "--workdir")
  try:
    yield
  finally:
    if held is not None:
      held.release()


def _saved_config(workdir: str) -> dict | None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise RunDirError(f"{path} is unreadable ({e}); use a new --workdir") from e


def read_config(workdir: str) -> dict:
  """The config a run was started with (its ``config.json``); ``RunDirError`` if none."""
  cfg = _saved_config(workdir)
  if cfg is None:
    raise RunDirError(f"{workdir} is not a run directory (no config.json); pass the --workdir "
                      "of a run started with experiments.train")
  return cfg


def _canonical(cfg: dict) -> dict:
  """``cfg`` with its learner and hparams in their canonical forms (unchanged when invalid)."""
  out = dict(cfg)
  try:
    out["learner"] = LearnerConfig.canonical_dict(cfg["learner"])
  except (ValueError, TypeError):
    pass
  if isinstance(cfg.get("hparams"), dict):
    try:
      out["hparams"] = HParams.create(**cfg["hparams"]).to_dict()
    except (ValueError, TypeError):
      pass
  return out


def _canonical_eval(ev) -> dict | None:
  """An ``eval`` section as the settings it stands for (settings added since a run was saved
  at their defaults, which is how it ran); unchanged when invalid."""
  try:
    return dataclasses.asdict(suite.EvalSettings.from_dict(dict(ev or {})))
  except (ValueError, TypeError):
    return ev


def _check_resumable(saved: dict, cfg: dict, workdir: str) -> None:
  """``RunDirError`` unless ``cfg`` continues the run saved in ``workdir`` (only ``num_steps``
  may differ, and not below the latest checkpoint)."""
  if (isinstance(saved.get("learner"), dict) and isinstance(cfg.get("learner"), dict)
      and learner_type(cfg)[0] is LearnerConfig):
    # Compared as the configs they stand for: flat (before plug-in subtrees) or nested, fields
    # added since the run was saved at their defaults (the old behaviour), unused plug-ins'
    # subtrees left out.
    if saved != cfg:
      saved, cfg = _canonical(saved), _canonical(cfg)
  if saved.get("eval") != cfg.get("eval"):
    saved = {**saved, "eval": _canonical_eval(saved.get("eval"))}
    cfg = {**cfg, "eval": _canonical_eval(cfg.get("eval"))}
  diff = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
  if diff and diff != ["num_steps"]:
    detail = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {cfg.get(k)!r}"
                       for k in diff if k not in ("learner", "hparams", "eval"))
    nested = [k for k in diff if k in ("learner", "hparams", "eval")]
    for k in nested:
      a, b = saved.get(k) or {}, cfg.get(k) or {}
      detail += "".join(f"{', ' if detail else ''}{k}.{n}: saved {a.get(n)!r} vs now {b.get(n)!r}"
                        for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n))
    raise RunDirError(f"{workdir} holds a run with another config ({detail}); use a new "
                      "--workdir, or the saved config (only num_steps may be raised)")
  done = checkpoint.latest_step(checkpoint_dir(workdir))
  if done is not None and cfg["num_steps"] < done:
    raise RunDirError(f"{workdir} is already trained to step {done}; num_steps = "
                      f"{cfg['num_steps']} must be >= {done} (or use a new --workdir)")


def eval_path(workdir: str, protocol: str, step: int) -> str:
  return os.path.join(workdir, "eval", f"{protocol}_step{step}.json")


def status(workdir: str, protocols=("iid",)) -> dict:
  """Where a run stands: ``{"trained", "step", "num_steps", "missing": [protocols]}`` (the
  protocols without a result of the final checkpoint; all of them until it is trained)."""
  protocols = _protocol_list(protocols)
  out = {"trained": False, "step": None, "num_steps": None, "missing": list(protocols)}
  if not os.path.exists(os.path.join(workdir, "config.json")):
    return out
  cfg = read_config(workdir)
  step = checkpoint.latest_step(checkpoint_dir(workdir))
  out.update(step=step, num_steps=cfg["num_steps"], trained=step == cfg["num_steps"])
  if out["trained"]:
    missing = []
    for p in protocols:
      try:
        with open(eval_path(workdir, p, step)) as f:
          ok = json.load(f).get("protocol") == p
      except (OSError, ValueError):
        ok = False
      if not ok:
        missing.append(p)
    out["missing"] = missing
  return out


# ---------------------------------------------------------------------------- train


def train(cfg: Mapping, workdir: str, *, protocols=("iid",), progress: Callable | None = None,
          on_result: Callable | None = None, provenance: Mapping | None = None) -> dict:
  """Trains (or resumes, or extends to a larger ``num_steps``) the run in ``workdir``, then
  evaluates ``protocols`` from its final checkpoint (``evaluate``), under one lock.

  The config, the protocols, the run directory (a saved run may only differ in ``num_steps``)
  and the dataset are checked before anything is written; the dataset is loaded and the learner
  built once, for the training and the evaluation. ``config.json`` is written once the run can
  start, and a line (the time, ``provenance``'s fields, e.g. the code's commit, the load, whether
  it resumed) is appended to ``provenance.jsonl``.

  Args:
    protocols: names (or a comma string, ``"all"``) to evaluate after training; ``()`` none.
    progress: ``progress(line)`` gets the training's and the evaluation's progress lines.
    on_result: ``on_result(name, result)`` gets each protocol's result once it is written.
  Returns:
    ``{protocol: result}`` (``{}`` without protocols).
  """
  lcfg = _validate(cfg)
  cfg = json.loads(json.dumps(cfg))  # as config.json holds it (tuples as lists)
  protocols = _protocol_list(protocols)
  check_protocols(cfg, protocols)
  if not distributed.is_main():  # process 0 prints and writes a multi-process run's files
    progress = on_result = None
  saved = _saved_config(workdir)
  if saved is not None:
    _check_resumable(saved, cfg, workdir)
  built = _build(cfg, lcfg)
  with lock(workdir):
    _start(cfg, workdir, saved, progress, provenance)
    run_training(built.learner, built.data, built.hparams, built.meta["split"]["train"],
                 workdir=workdir, seed=cfg["seed"], num_seeds=cfg["num_seeds"],
                 num_steps=cfg["num_steps"], checkpoint_every=cfg["checkpoint_every"],
                 eval_fn=_periodic_eval(cfg, workdir, built), eval_every=cfg["eval_every"],
                 meta={"config": cfg}, progress=progress)
    if not protocols:
      return {}
    return _evaluate(workdir, protocols, None, progress, on_result, cfg, built)


def resume(workdir: str, *, num_steps: int | None = None, protocols=("iid",),
           progress: Callable | None = None, on_result: Callable | None = None,
           provenance: Mapping | None = None) -> dict:
  """``train`` of the run saved in ``workdir`` with its own config: finishes a run that was
  stopped, or, with a larger ``num_steps``, extends it (the other arguments: ``train``'s)."""
  cfg = read_config(workdir)
  if num_steps is not None:
    cfg["num_steps"] = num_steps
  return train(cfg, workdir, protocols=protocols, progress=progress, on_result=on_result,
               provenance=provenance)


def _start(cfg: dict, workdir: str, saved: dict | None, progress, provenance) -> None:
  """Under the lock: checks the saved run again, writes ``config.json`` and the provenance
  line."""
  # Again, now that no other process can write it. The processes of a multi-process run keep
  # what they read before the lock: the check makes orbax calls, which every process must make
  # alike, and they all read the same file (process 0 writes it only once every process has
  # reached the lock).
  if not distributed.is_multiprocess():
    saved = _saved_config(workdir)
    if saved is not None:
      _check_resumable(saved, cfg, workdir)
  if saved is not None and saved["num_steps"] != cfg["num_steps"] and progress:
    progress(f"num_steps {saved['num_steps']} -> {cfg['num_steps']}: extending the run")
  if not distributed.is_main():
    return
  if saved != cfg:
    atomic.write_json(os.path.join(workdir, "config.json"), cfg)
  with open(os.path.join(workdir, "provenance.jsonl"), "a") as f:  # one line per start
    f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), **(provenance or {}),
                        "load_avg": [round(x, 2) for x in os.getloadavg()],
                        "resumed": saved is not None, "num_steps": cfg["num_steps"]}) + "\n")


def _periodic_eval(cfg: dict, workdir: str, built: Built):
  """The training's ``eval_fn``: IID returns at a step, written to ``eval/iid_step<N>.json``."""
  def eval_fn(state, step):
    try:
      res = evaluate_state(built.env, built.data, built.meta, built.learner,
                           host_params(state.params), cfg, step)
    except Exception as e:
      raise RunFailed(f"the evaluation at step {step} failed ({type(e).__name__}: {e}); the "
                      f"checkpoint of step {step} is saved in {checkpoint_dir(workdir)} and its "
                      "training metrics are logged: fix the cause and rerun the same command "
                      "to resume") from e
    if distributed.is_main():
      atomic.write_json(eval_path(workdir, "iid", step), res)
    return {f"eval/{k}_return": np.asarray(v["seed_means"]) for k, v in res.items()
            if isinstance(v, dict)}

  return eval_fn


def evaluate_state(env, data, meta, learner, params, cfg: Mapping, step: int) -> dict:
  """IID returns (trajectory and random-transition contexts) of every seed on the test tasks,
  and the z-shuffle control's with ``eval.periodic_z_shuffle``."""
  settings = eval_settings(cfg)
  device_data = data.to_device()
  res = suite.iid_results(learner, params, env, device_data, meta, settings, accumulate=False)
  res.pop("score")
  if settings.periodic_z_shuffle:
    res["z_shuffle"] = suite.z_shuffle_results(learner, params, env, device_data, meta,
                                               settings)["z_shuffle"]
  return {"step": int(step), "test_task_ids": list(map(int, meta["split"]["test"])), **res}


def host_params(params):
  """``params`` for the evaluation: as they are in one process; in a multi-process run,
  gathered whole on every process (numpy), which then evaluates every seed itself, so that
  all processes hold the same results (process 0 writes them)."""
  return distributed.to_host(params) if distributed.is_multiprocess() else params


# ---------------------------------------------------------------------------- evaluate


def restore(workdir: str, step: int | None = None) -> Restored:
  """Builds the run saved in ``workdir`` from its config and restores checkpoint ``step``
  (latest by default)."""
  cfg = read_config(workdir)
  return _restore(workdir, step, cfg, _build(cfg))


def _restore(workdir: str, step: int | None, cfg: dict, built: Built) -> Restored:
  learner = built.learner
  abstract = learner.init(seed_keys(cfg["seed"], cfg["num_seeds"]))
  state, ck = checkpoint.restore(checkpoint_dir(workdir), abstract, step,
                                 expect={"learner": learner.cfg.structure_dict()},
                                 canonical=canonical_learner(learner.cfg))
  return Restored(cfg, built.env, built.data, built.meta, learner, state, int(ck["step"]))


def evaluate(workdir: str, protocols=("iid",), step: int | None = None, *,
             progress: Callable | None = None, on_result: Callable | None = None) -> dict:
  """Restores checkpoint ``step`` (latest by default) of ``workdir`` once and writes
  ``eval/<protocol>_step<N>.json`` for every protocol; returns ``{protocol: result}``.

  ``diagnostics`` also writes ``eval/codes_step<N>.png`` (PCA of held-out task codes).
  ``progress(line)`` gets a line before and after each protocol, ``on_result(name, result)``
  each result as soon as it is written. The run directory is locked meanwhile.
  """
  protocols = _protocol_list(protocols)
  check_protocols(read_config(workdir), protocols)
  if not distributed.is_main():
    progress = on_result = None
  with lock(workdir):
    cfg = read_config(workdir)
    return _evaluate(workdir, protocols, step, progress, on_result, cfg, _build(cfg))


def _evaluate(workdir, protocols, step, progress, on_result, cfg, built) -> dict:
  """``evaluate`` under the lock, with the run's config built."""
  cfg, env, data, meta, learner, state, step = _restore(workdir, step, cfg, built)
  params = host_params(state.params)
  settings = eval_settings(cfg)
  device_data = data.to_device()
  behaviour = _behaviour(cfg, env, protocols)
  out = {}
  shown = Progress(len(protocols), "protocols", progress=progress, waiting="")
  for i, name in enumerate(protocols):
    t0 = time.time()
    if progress:
      progress(f"evaluating {name} ({i + 1}/{len(protocols)}) at step {step} ...")
    if name == "diagnostics":
      res = diagnostics_of(workdir, cfg, learner, params, device_data, meta, step)
    else:
      res = suite.run_protocol(name, learner, params, env, device_data, meta, settings,
                               step=step, behaviour=behaviour)
    if distributed.is_main():
      atomic.write_json(eval_path(workdir, name, step), res)
    out[name] = res
    shown.advance()
    shown.report(f"{name} done in {time.time() - t0:.1f}s")
    if on_result:
      on_result(name, res)
  return out


def _behaviour(cfg: Mapping, env, protocols):
  """The dataset's behaviour snapshots when a protocol uses them (``ood`` needs them;
  ``task_ood`` falls back without), else ``None``."""
  if not {"ood", "task_ood"} & set(protocols):
    return None
  from jcomrl.datagen.pipeline import load_behaviour

  try:
    return load_behaviour(cfg["dataset"], env)
  except DatasetError as e:
    if "ood" in protocols:
      raise DatasetError(f"the ood protocol needs behaviour snapshots: {e}") from e
  return None


def diagnostics_of(workdir: str, cfg: Mapping, learner, params, data, meta: dict,
                   step: int) -> dict:
  """Representation diagnostics of the held-out tasks (+ the PCA plot in ``eval/``)."""
  rows = np.asarray(meta["split"]["test"])
  size = int(cfg["learner"].get("context_size", 64))
  mode = cfg["learner"].get("context_mode", "transitions")
  if mode == "trajectory":
    size = min(size, data.segment_length)
  key = jax.random.fold_in(jax.random.key(eval_settings(cfg).seed), 99)
  summary, z = diagnostics.representation_diagnostics(
      learner, params, data, rows, key, num_contexts=16, context_mode=mode, context_size=size)
  png = os.path.join(workdir, "eval", f"codes_step{step}.png")
  title = f"{cfg.get('algo', '?')} on {cfg['env']}: held-out task codes, seed 0"
  summary["plots"] = (diagnostics.plot_embedding(z[0], np.asarray(data.task_params)[rows], png,
                                                 title) if distributed.is_main() else [])
  return {"protocol": "diagnostics", "step": int(step), "test_task_ids": rows.tolist(),
          **summary}
