"""Glue shared by the entry points: build a learner from a config, train a run, evaluate it."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

import jax
import numpy as np

from jcomrl import checkpoint, envs
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys
from jcomrl.algos.trainer import checkpoint_dir, run_training
from jcomrl.data.dataset import DatasetError, load_dataset
from jcomrl.eval import diagnostics, suite

EVAL_MODES = {"iid": "trajectory", "iid_transitions": "transitions"}
# What ``evaluate_protocols`` accepts: the suite's protocols plus the representation diagnostics.
ALL_PROTOCOLS = suite.PROTOCOLS + ("diagnostics",)


def write_json_atomic(path: str, obj) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(obj, f, indent=1)
  os.chmod(tmp, 0o644)  # mkstemp creates 0600
  os.replace(tmp, path)


def to_plain(cfg) -> dict:
  return json.loads(cfg.to_json()) if hasattr(cfg, "to_json") else dict(cfg)


def build(cfg: dict):
  """(env, dataset, meta, learner, hparams) for a plain-dict training config."""
  data, meta = load_dataset(cfg["dataset"], expect_env=cfg["env"])
  # The env the data were collected in (its overrides are part of the dataset's meta).
  env = envs.make(cfg["env"], **dict(meta.get("env_overrides") or {}))
  learner = dict(cfg["learner"], obs_size=data.observation_size, action_size=data.action_size,
                 task_param_size=int(data.task_params.shape[-1]))
  fields = {f.name for f in dataclasses.fields(LearnerConfig)}
  if "num_task_labels" in fields and not learner.get("num_task_labels"):
    learner["num_task_labels"] = data.num_tasks  # task-id classifiers: one class per task row
  lcfg = LearnerConfig.from_dict(learner)
  return env, data, meta, make_learner(lcfg), HParams.create(**cfg["hparams"])


def eval_settings(cfg: dict) -> suite.EvalSettings:
  """Protocol settings from ``cfg["eval"]`` (unknown keys ignored, defaults otherwise)."""
  ev = dict(cfg.get("eval") or {})
  ev.setdefault("context_size", cfg["learner"].get("context_size", 64))
  return suite.EvalSettings.from_dict(ev)


def evaluate_state(env, data, meta, learner, params, cfg: dict, step: int) -> dict:
  """IID returns (trajectory and random-transition contexts) of every seed on the test tasks."""
  res = suite.iid_results(learner, params, env, data.to_device(), meta, eval_settings(cfg),
                          accumulate=False)
  res.pop("score")
  return {"step": int(step), "test_task_ids": list(map(int, meta["split"]["test"])), **res}


def train_run(cfg: dict, workdir: str, progress=print, evaluate: bool = True):
  """Trains (or resumes) the run in ``workdir``.

  Returns the final ``iid`` protocol result (``evaluate_run``), or ``None`` with
  ``evaluate=False``.
  """
  os.makedirs(workdir, exist_ok=True)
  cfg_path = os.path.join(workdir, "config.json")
  if os.path.exists(cfg_path):
    with open(cfg_path) as f:
      saved = json.load(f)
    if saved != cfg:
      diff = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
      raise ValueError(f"{workdir} holds a run with another config (differs in {diff}); "
                       "use a new --workdir")
  write_json_atomic(cfg_path, cfg)
  env, data, meta, learner, hp = build(cfg)

  def eval_fn(state, step):
    res = evaluate_state(env, data, meta, learner, state.params, cfg, step)
    write_json_atomic(os.path.join(workdir, "eval", f"iid_step{step}.json"), res)
    return {f"eval/{k}_return": np.asarray(v["seed_means"]) for k, v in res.items()
            if isinstance(v, dict)}

  run_training(learner, data, hp, meta["split"]["train"], workdir=workdir, seed=cfg["seed"],
               num_seeds=cfg["num_seeds"], num_steps=cfg["num_steps"],
               checkpoint_every=cfg["checkpoint_every"], eval_fn=eval_fn,
               eval_every=cfg["eval_every"], meta={"config": cfg}, progress=progress)
  return evaluate_run(workdir) if evaluate else None


def read_config(workdir: str) -> dict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{workdir} is not a run directory: it has no config.json")
  with open(path) as f:
    return json.load(f)


def restore_run(workdir: str, step: int | None = None):
  cfg = read_config(workdir)
  env, data, meta, learner, _ = build(cfg)
  abstract = learner.init(seed_keys(cfg["seed"], cfg["num_seeds"]))
  state, ck = checkpoint.restore(checkpoint_dir(workdir), abstract, step,
                                 expect={"learner": learner.cfg.structure_dict()})
  return cfg, env, data, meta, learner, state, int(ck["step"])


def eval_path(workdir: str, protocol: str, step: int) -> str:
  return os.path.join(workdir, "eval", f"{protocol}_step{step}.json")


def parse_protocols(spec) -> list[str]:
  """``"iid,ood"`` or a list -> validated protocol names (``all`` = every one)."""
  names = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
  if names == ["all"]:
    return list(ALL_PROTOCOLS)
  bad = [p for p in names if p not in ALL_PROTOCOLS]
  if bad:
    raise ValueError(f"unknown protocol(s) {bad}; expected a comma list of {ALL_PROTOCOLS}")
  return names


def evaluate_protocols(workdir: str, protocols, step: int | None = None,
                       progress=None) -> dict:
  """Restores checkpoint ``step`` (latest by default) of ``workdir`` once and writes
  ``eval/<protocol>_step<N>.json`` for every protocol; returns ``{protocol: result}``.

  ``diagnostics`` also writes ``eval/codes_step<N>.png`` (PCA of held-out task codes).
  """
  protocols = parse_protocols(protocols)
  cfg, env, data, meta, learner, state, step = restore_run(workdir, step)
  settings = eval_settings(cfg)
  device_data = data.to_device()
  behaviour = None
  if {"ood", "task_ood"} & set(protocols):
    from jcomrl.data.pipeline import load_behaviour

    try:
      behaviour = load_behaviour(cfg["dataset"], env)
    except DatasetError as e:
      if "ood" in protocols:
        raise DatasetError(f"the ood protocol needs behaviour snapshots: {e}") from e
  out = {}
  for name in protocols:
    if progress:
      progress(f"evaluating {name} at step {step}")
    if name == "diagnostics":
      res = diagnostics_of(workdir, cfg, learner, state.params, device_data, meta, step)
    else:
      res = suite.run_protocol(name, learner, state.params, env, device_data, meta, settings,
                               step=step, behaviour=behaviour)
    write_json_atomic(eval_path(workdir, name, step), res)
    out[name] = res
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
  summary["plots"] = diagnostics.plot_embedding(z[0], np.asarray(data.task_params)[rows], png,
                                                title)
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
