"""Glue shared by the entry points: build a learner from a config, train a run, evaluate it."""

from __future__ import annotations

import json
import os
import tempfile

import jax
import numpy as np

from jcomrl import checkpoint, envs
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys
from jcomrl.algos.trainer import checkpoint_dir, run_training
from jcomrl.data.dataset import load_dataset
from jcomrl.eval.protocols import iid_returns

EVAL_MODES = {"iid": "trajectory", "iid_transitions": "transitions"}


def write_json_atomic(path: str, obj) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def to_plain(cfg) -> dict:
  return json.loads(cfg.to_json()) if hasattr(cfg, "to_json") else dict(cfg)


def build(cfg: dict):
  """(env, dataset, meta, learner, hparams) for a plain-dict training config."""
  env = envs.make(cfg["env"])
  data, meta = load_dataset(cfg["dataset"], expect_env=cfg["env"])
  lcfg = LearnerConfig.from_dict(dict(cfg["learner"], obs_size=data.observation_size,
                                      action_size=data.action_size,
                                      task_param_size=int(data.task_params.shape[-1])))
  return env, data, meta, make_learner(lcfg), HParams.create(**cfg["hparams"])


def evaluate_state(env, data, meta, learner, params, cfg: dict, step: int) -> dict:
  """IID returns (trajectory and random-transition contexts) of every seed on the test tasks."""
  split = meta["split"]
  test_rows = np.asarray(split["test"])
  all_tasks = env.all_benchmark_tasks()
  test_tasks = jax.tree.map(lambda x: x[test_rows], all_tasks)
  key = jax.random.key(cfg["eval"]["seed"])
  norm = meta.get("normalisation", {})
  out = {"step": int(step), "test_task_ids": test_rows.tolist()}
  for name, mode in EVAL_MODES.items():
    size = data.segment_length if mode == "trajectory" else cfg["learner"]["context_size"]
    r = np.asarray(iid_returns(learner, params, env, data.to_device(), test_rows, test_tasks,
                               key, num_episodes=cfg["eval"]["num_episodes"], context_mode=mode,
                               context_size=size))
    res = {"returns": r.tolist(), "mean": float(r.mean()),
           "seed_means": r.mean(axis=(1, 2)).tolist(), "context_mode": mode,
           "context_size": int(size)}
    if "random" in norm and "expert" in norm:
      res["normalised"] = float(100 * (r.mean() - norm["random"]) /
                                (norm["expert"] - norm["random"]))
    out[name] = res
  return out


def train_run(cfg: dict, workdir: str, progress=print):
  """Trains (or resumes) the run in ``workdir``; returns the final evaluation dict."""
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
  return evaluate_run(workdir)


def restore_run(workdir: str, step: int | None = None):
  with open(os.path.join(workdir, "config.json")) as f:
    cfg = json.load(f)
  env, data, meta, learner, _ = build(cfg)
  abstract = learner.init(seed_keys(cfg["seed"], cfg["num_seeds"]))
  state, ck = checkpoint.restore(checkpoint_dir(workdir), abstract, step,
                                 expect={"learner": learner.cfg.structure_dict()})
  return cfg, env, data, meta, learner, state, int(ck["step"])


def evaluate_run(workdir: str, step: int | None = None) -> dict:
  """Restores a checkpoint of ``workdir`` and writes ``eval/iid_step<N>.json``."""
  cfg, env, data, meta, learner, state, step = restore_run(workdir, step)
  res = evaluate_state(env, data, meta, learner, state.params, cfg, step)
  write_json_atomic(os.path.join(workdir, "eval", f"iid_step{step}.json"), res)
  return res
