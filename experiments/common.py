"""Glue shared by the entry points: build a learner from a config, train a run, evaluate it."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import os
import time

import jax
import numpy as np

from experiments import cli
from experiments.cli import ConfigError, RunDirError, RunFailed, RunLock
from jcomrl import atomic, checkpoint, distributed, envs
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys
from jcomrl.algos.macaw import LEARNER_TYPE as MACAW
from jcomrl.algos.macaw import MacawConfig, make_macaw
from jcomrl.algos.trainer import checkpoint_dir, run_training
from jcomrl.data.dataset import DatasetError, check_normalisation, load_dataset
from jcomrl.eval import diagnostics, suite

# What ``evaluate_protocols`` accepts: the suite's protocols plus the representation diagnostics.
ALL_PROTOCOLS = suite.PROTOCOLS + ("diagnostics",)
parse_protocols = cli.parse_protocols


write_json_atomic = atomic.write_json


def to_plain(cfg) -> dict:
  return json.loads(cfg.to_json()) if hasattr(cfg, "to_json") else dict(cfg)


# Top-level keys of a training config: type and whether it is required.
_TOP_KEYS = {"algo": (str, False), "env": (str, True), "dataset": (str, True),
             "seed": (int, True), "num_seeds": (int, True), "learner": (dict, True),
             "hparams": (dict, True), "num_steps": (int, True), "checkpoint_every": (int, True),
             "eval_every": (int, True), "eval": (dict, False),
             "preset_source": (str, False), "profile": (str, False),
             "learner_type": (str, False), "tasks": (str, False),
             "env_overrides": (dict, False)}
# ``tasks``: the preset's task setting (jcomrl.algos.presets.TASK_SETTINGS; absent: "unicorn");
# ``env_overrides``: env settings the dataset must have been collected with (its meta.json's
# env_overrides hold each of them with the same value), e.g. {"variant": "focal"} for FOCAL's
# 2-task setting.
# ``learner_type``: which learner a config builds (its config class and builder); "comrl" (the
# default) is the composable context-based learner, "macaw" MACAW's MAML learner.
LEARNER_TYPES = {"comrl": (LearnerConfig, make_learner), MACAW: (MacawConfig, make_macaw)}
# Learner fields taken from the dataset by ``build`` (not config keys).
_FROM_DATA = ("obs_size", "action_size", "task_param_size")


def learner_type(cfg: dict):
  """``(config class, builder)`` of ``cfg["learner_type"]`` (default ``"comrl"``)."""
  kind = cfg.get("learner_type", "comrl")
  if kind not in LEARNER_TYPES:
    raise ConfigError(f"config key learner_type = {kind!r} must be one of "
                      f"{', '.join(LEARNER_TYPES)}")
  return LEARNER_TYPES[kind]


# Protocols that need a vector task code (z = 0 before the first inference, a PCA of codes):
# MACAW's code is an adapted policy, so they do not apply to it.
_VECTOR_CODE_PROTOCOLS = ("online", "diagnostics")


def check_protocols(cfg: dict, protocols) -> None:
  """``ConfigError`` for a protocol the config's learner cannot be evaluated with."""
  _, bad = applicable_protocols(cfg, protocols or ())
  if bad:
    raise ConfigError(f"protocol(s) {', '.join(bad)} need a vector task code; MACAW adapts by "
                      "a gradient step on the context (its code is the adapted policy): use "
                      "iid, ood, task_ood (with behaviour snapshots) or z_shuffle")


def applicable_protocols(cfg, protocols) -> tuple[list[str], list[str]]:
  """``(kept, dropped)``: the protocols the config's learner can be evaluated with, and the rest
  (a sweep or table over mixed learners asks every preset for the same list)."""
  dropped = ([p for p in protocols if p in _VECTOR_CODE_PROTOCOLS]
             if learner_type(cfg)[0] is MacawConfig else [])
  return [p for p in protocols if p not in dropped], dropped


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


def validate_config(cfg: dict) -> None:
  """Checks every value of a training config before anything is built or written.

  Raises ``ConfigError`` (one line naming the key, the value and what is allowed) for an unknown
  key (with a did-you-mean), a wrong type, a value out of range, or a schedule that is not a
  multiple of ``learner.steps_per_chunk``. Learner structure checks are ``LearnerConfig``'s own.
  """
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
  # Learner: keys, types, then the learner config's own structure checks.
  cls, _ = learner_type(cfg)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  learner = dict(cfg["learner"])
  for key, value in learner.items():
    if key in _FROM_DATA:
      raise ConfigError(f"config key learner.{key} is set from the dataset; remove it")
    if key not in fields:
      raise _unknown("learner.", key, set(fields) - set(_FROM_DATA))
    _check_type(f"learner.{key}", value, str(fields[key].type))
  probe = dict(learner, obs_size=1, action_size=1, task_param_size=1)
  if cls is LearnerConfig and not probe.get("num_task_labels"):
    probe["num_task_labels"] = 2  # filled from the dataset by build() (unicorn_sup's classes)
  try:
    lcfg = cls.from_dict(probe)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"invalid learner config: {e} (config keys learner.*)") from e
  widths = ("encoder_hidden", "aux_hidden", "rl_hidden", "dual_hidden")
  for key in widths if cls is LearnerConfig else ():
    if any(h <= 0 for h in getattr(lcfg, key)):
      raise ConfigError(f"config key learner.{key} = {list(getattr(lcfg, key))} must hold "
                        "positive layer widths")
  chunk = lcfg.steps_per_chunk
  for key in ("num_steps", "checkpoint_every", "eval_every"):
    if cfg[key] % chunk:
      raise ConfigError(f"config key {key} = {cfg[key]} must be a multiple of "
                        f"learner.steps_per_chunk = {chunk}")
  # Hyper-parameters: known names, finite numbers, signs and ranges.
  hfields = {f.name for f in dataclasses.fields(HParams)}
  for key, value in cfg["hparams"].items():
    if key not in hfields:
      raise _unknown("hparams.", key, hfields)
    if not _is_number(value):
      raise ConfigError(f"config key hparams.{key} = {value!r} must be a finite number")
    if key.endswith("_lr") or key in ("corro_temperature", "td3_alpha", "cql_temperature",
                                      "iql_temperature", "hmc_step_size"):
      if value <= 0:
        raise ConfigError(f"config key hparams.{key} = {value} must be > 0")
    elif key == "iql_expectile":
      if not 0 < value < 1:
        raise ConfigError(f"config key hparams.{key} = {value} must be in (0, 1)")
    elif key in ("discount", "tau"):
      if not 0 < value <= 1:
        raise ConfigError(f"config key hparams.{key} = {value} must be in (0, 1]")
    elif value < 0:
      raise ConfigError(f"config key hparams.{key} = {value} must be >= 0")
  # Evaluation settings.
  efields = {f.name: f for f in dataclasses.fields(suite.EvalSettings)}
  for key, value in dict(cfg.get("eval") or {}).items():
    if key not in efields:
      raise _unknown("eval.", key, efields)
    ann = str(efields[key].type)
    if key == "ood_snapshots":
      ann = "tuple[int, ...] | None"
    _check_type(f"eval.{key}", value, ann)
    if _is_int(value) and key != "seed" and value < 1:
      raise ConfigError(f"config key eval.{key} = {value} must be >= 1")
  ev = dict(cfg.get("eval") or {})
  if ev.get("ood_sources", "all") not in ("all", "train", "other"):
    raise ConfigError(f"config key eval.ood_sources = {ev['ood_sources']!r} must be one of "
                      "'all', 'train', 'other'")
  if not 0 <= ev.get("online_random_fraction", 0.5) <= 1:
    raise ConfigError(f"config key eval.online_random_fraction = "
                      f"{ev['online_random_fraction']} must be in [0, 1]")


def build(cfg: dict):
  """(env, dataset, meta, learner, hparams) for a plain-dict training config."""
  data, meta = load_dataset(cfg["dataset"], expect_env=cfg["env"])
  check_normalisation(cfg["dataset"], meta)  # the scores of every evaluation need it
  have = dict(meta.get("env_overrides") or {})
  for key, want in dict(cfg.get("env_overrides") or {}).items():
    if have.get(key) != want:
      raise DatasetError(f"{cfg['dataset']} was collected with env_overrides {have}; the config "
                         f"needs {key}={want!r} (config key env_overrides; the 2-task data of "
                         "FOCAL's setting is built by experiments/configs/data.py:<env>@focal2)")
  # The env the data were collected in (its overrides are part of the dataset's meta).
  try:
    env = envs.make(cfg["env"], **dict(meta.get("env_overrides") or {}))
  except ValueError as e:
    raise DatasetError(f"{cfg['dataset']}: meta.json env_overrides do not fit: {e}") from e
  cls, make = learner_type(cfg)
  learner = dict(cfg["learner"], obs_size=data.observation_size, action_size=data.action_size,
                 task_param_size=int(data.task_params.shape[-1]))
  if cls is not LearnerConfig:
    try:
      lcfg = cls.from_dict(learner)
    except ValueError as e:
      raise ConfigError(f"invalid learner config for {cfg['dataset']}: {e}") from e
    return env, data, meta, make(lcfg), HParams.create(**cfg["hparams"])
  # Task-id classifiers (unicorn_sup): one class per task row of the dataset. Labels are the rows
  # 0..num_tasks-1, so an explicit value below the dataset's task count would be out of range.
  labels = learner.get("num_task_labels")
  if not labels:
    learner["num_task_labels"] = data.num_tasks
  elif labels < data.num_tasks:
    raise ConfigError(f"learner.num_task_labels = {labels} but {cfg['dataset']} has "
                      f"{data.num_tasks} tasks (labels 0..{data.num_tasks - 1}); remove the key "
                      "(it is taken from the dataset) or set it >= the number of tasks")
  try:
    lcfg = LearnerConfig.from_dict(learner)
  except ValueError as e:
    raise ConfigError(f"invalid learner config for {cfg['dataset']}: {e}") from e
  return env, data, meta, make_learner(lcfg), HParams.create(**cfg["hparams"])


def eval_settings(cfg: dict) -> suite.EvalSettings:
  """Protocol settings from ``cfg["eval"]`` (validated by ``check_config``; defaults otherwise)."""
  ev = dict(cfg.get("eval") or {})
  ev.setdefault("context_size", cfg["learner"].get("context_size", 64))
  return suite.EvalSettings.from_dict(ev)


def evaluate_state(env, data, meta, learner, params, cfg: dict, step: int) -> dict:
  """IID returns (trajectory and random-transition contexts) of every seed on the test tasks."""
  res = suite.iid_results(learner, params, env, data.to_device(), meta, eval_settings(cfg),
                          accumulate=False)
  res.pop("score")
  return {"step": int(step), "test_task_ids": list(map(int, meta["split"]["test"])), **res}


@contextlib.contextmanager
def run_lock(workdir: str):
  """``RunLock(workdir)``; in a multi-process run, taken by process 0 alone and every process
  stops with the same ``RunDirError`` when it is held elsewhere (none waits in a collective)."""
  if not distributed.is_multiprocess():
    with RunLock(workdir):
      yield
    return
  lock, error = None, None
  if distributed.is_main():
    try:
      lock = RunLock(workdir).acquire()
    except RunDirError as e:
      error = e
  if not distributed.all_ok(error is None):
    raise error or RunDirError(f"{workdir} is in use by another jcomrl process (process 0 of "
                               "this run could not lock it); wait for it or use another "
                               "--workdir")
  try:
    yield
  finally:
    if lock is not None:
      lock.release()


def host_params(params):
  """``params`` for the evaluation: as they are in one process; in a multi-process run,
  gathered whole on every process (numpy), which then evaluates every seed itself, so that
  all processes hold the same results (process 0 writes them)."""
  return distributed.to_host(params) if distributed.is_multiprocess() else params


def _check_resumable(saved: dict, cfg: dict, workdir: str) -> None:
  """``RunDirError`` unless ``cfg`` continues the run saved in ``workdir`` (only ``num_steps``
  may differ, and not below the latest checkpoint)."""
  if (isinstance(saved.get("learner"), dict) and isinstance(cfg.get("learner"), dict)
      and learner_type(cfg)[0] is LearnerConfig):
    # learner fields added since the run was saved take their defaults (the old behaviour)
    learner = LearnerConfig.fill_defaults(saved["learner"])
    saved = dict(saved, learner={k: v for k, v in learner.items()
                                 if k in cfg["learner"] or k in saved["learner"]})
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


def _saved_config(workdir: str) -> dict | None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise RunDirError(f"{path} is unreadable ({e}); use a new --workdir") from e


def train_run(cfg: dict, workdir: str, progress=print, evaluate: bool = True,
              protocols=None, on_result=None):
  """Trains (or resumes, or extends to a larger ``num_steps``) the run in ``workdir``.

  Nothing is written before the config, the dataset and the run directory are checked:
  ``config.json`` is written once the run can start, under the run-directory lock (held until
  the final evaluation is written).
  Returns the final ``iid`` protocol result (``evaluate_run``), or ``None`` with
  ``evaluate=False``; with ``protocols`` (a list), ``evaluate_protocols``' dict of them.
  """
  validate_config(cfg)
  if not distributed.is_main():  # process 0 prints and writes a multi-process run's files
    progress = on_result = None
  check_protocols(cfg, protocols)
  saved = _saved_config(workdir)
  if saved is not None:
    _check_resumable(saved, cfg, workdir)
  env, data, meta, learner, hp = build(cfg)
  ckpt = checkpoint_dir(workdir)
  with run_lock(workdir):
    # Again, now that no other process can write it. The processes of a multi-process run
    # keep what they read before the lock: the check makes orbax calls, which every process
    # must make alike, and they all read the same file (process 0 writes it only once every
    # process has reached the lock).
    if not distributed.is_multiprocess():
      saved = _saved_config(workdir)
      if saved is not None:
        _check_resumable(saved, cfg, workdir)
    if saved is not None and saved["num_steps"] != cfg["num_steps"] and progress:
      progress(f"num_steps {saved['num_steps']} -> {cfg['num_steps']}: extending the run")
    if saved != cfg and distributed.is_main():
      write_json_atomic(os.path.join(workdir, "config.json"), cfg)
    if distributed.is_main():  # which code trained (or resumed) this run, one line per start
      with open(os.path.join(workdir, "provenance.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "jcomrl_commit": cli.source_commit(), "cpu": cli.cpu_model(),
                            "load_avg": [round(x, 2) for x in os.getloadavg()],
                            "resumed": saved is not None, "num_steps": cfg["num_steps"]})
                + "\n")

    def eval_fn(state, step):
      try:
        res = evaluate_state(env, data, meta, learner, host_params(state.params), cfg, step)
      except Exception as e:
        raise RunFailed(f"the evaluation at step {step} failed ({type(e).__name__}: {e}); the "
                        f"checkpoint of step {step} is saved in {ckpt} and its training metrics "
                        "are logged: fix the cause and rerun the same command to resume") from e
      if distributed.is_main():
        write_json_atomic(os.path.join(workdir, "eval", f"iid_step{step}.json"), res)
      return {f"eval/{k}_return": np.asarray(v["seed_means"]) for k, v in res.items()
              if isinstance(v, dict)}

    run_training(learner, data, hp, meta["split"]["train"], workdir=workdir, seed=cfg["seed"],
                 num_seeds=cfg["num_seeds"], num_steps=cfg["num_steps"],
                 checkpoint_every=cfg["checkpoint_every"], eval_fn=eval_fn,
                 eval_every=cfg["eval_every"], meta={"config": cfg}, progress=progress)
    if protocols is not None:
      return (evaluate_protocols(workdir, protocols, progress=progress, on_result=on_result)
              if protocols else {})
    return evaluate_run(workdir) if evaluate else None


def read_config(workdir: str) -> dict:
  cfg = _saved_config(workdir)
  if cfg is None:
    raise RunDirError(f"{workdir} is not a run directory (no config.json); pass the --workdir "
                      "of a run started with experiments.train")
  return cfg


def restore_run(workdir: str, step: int | None = None):
  cfg = read_config(workdir)
  env, data, meta, learner, _ = build(cfg)
  abstract = learner.init(seed_keys(cfg["seed"], cfg["num_seeds"]))
  state, ck = checkpoint.restore(checkpoint_dir(workdir), abstract, step,
                                 expect={"learner": learner.cfg.structure_dict()})
  return cfg, env, data, meta, learner, state, int(ck["step"])


def eval_path(workdir: str, protocol: str, step: int) -> str:
  return os.path.join(workdir, "eval", f"{protocol}_step{step}.json")


def evaluate_protocols(workdir: str, protocols, step: int | None = None,
                       progress=None, on_result=None) -> dict:
  """Restores checkpoint ``step`` (latest by default) of ``workdir`` once and writes
  ``eval/<protocol>_step<N>.json`` for every protocol; returns ``{protocol: result}``.

  ``diagnostics`` also writes ``eval/codes_step<N>.png`` (PCA of held-out task codes).
  ``progress(str)`` gets a line before and after each protocol, ``on_result(name, result)``
  each result as soon as it is written. The run directory is locked meanwhile.
  """
  protocols = parse_protocols(protocols)
  if "diagnostics" in protocols:
    cli.require_optional("matplotlib", "the diagnostics protocol (it plots the task codes)")
  check_protocols(read_config(workdir), protocols)
  if not distributed.is_main():
    progress = on_result = None
  with run_lock(workdir):
    return _evaluate_protocols(workdir, protocols, step, progress, on_result)


def _evaluate_protocols(workdir, protocols, step, progress, on_result) -> dict:
  cfg, env, data, meta, learner, state, step = restore_run(workdir, step)
  params = host_params(state.params)
  settings = eval_settings(cfg)
  device_data = data.to_device()
  behaviour = None
  if {"ood", "task_ood"} & set(protocols):
    from jcomrl.datagen.pipeline import load_behaviour

    try:
      behaviour = load_behaviour(cfg["dataset"], env)
    except DatasetError as e:
      if "ood" in protocols:
        raise DatasetError(f"the ood protocol needs behaviour snapshots: {e}") from e
  out = {}
  t_all = time.time()
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
      write_json_atomic(eval_path(workdir, name, step), res)
    out[name] = res
    if progress:
      left = (time.time() - t_all) / (i + 1) * (len(protocols) - i - 1)
      progress(f"{name} done in {time.time() - t0:.1f}s"
               + (f"; ~{left:.0f}s left for {len(protocols) - i - 1} more" if i + 1 <
                  len(protocols) else ""))
    if on_result:
      on_result(name, res)
  return out


def diagnostics_of(workdir: str, cfg: dict, learner, params, data, meta: dict,
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


def evaluate_run(workdir: str, step: int | None = None) -> dict:
  """Restores a checkpoint of ``workdir`` and writes ``eval/iid_step<N>.json`` (the ``iid``
  protocol: trajectory, random-transition and accumulating contexts); returns it."""
  return evaluate_protocols(workdir, ["iid"], step)["iid"]


def run_status(workdir: str, protocols) -> dict:
  """Where a run stands: ``{"trained", "step", "num_steps", "missing": [protocols]}``."""
  protocols = parse_protocols(protocols)
  status = {"trained": False, "step": None, "num_steps": None, "missing": list(protocols)}
  if not os.path.exists(os.path.join(workdir, "config.json")):
    return status
  cfg = read_config(workdir)
  step = checkpoint.latest_step(checkpoint_dir(workdir))
  status.update(step=step, num_steps=cfg["num_steps"], trained=step == cfg["num_steps"])
  if status["trained"]:
    missing = []
    for p in protocols:
      try:
        with open(eval_path(workdir, p, step)) as f:
          ok = json.load(f).get("protocol") == p
      except (OSError, ValueError):
        ok = False
      if not ok:
        missing.append(p)
    status["missing"] = missing
  return status
