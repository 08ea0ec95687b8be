"""Checkpoints and runs: restore equality, config mismatch errors, resume equality."""

import json
import os

import jax
import numpy as np
import pytest

from experiments import cli
from experiments.configs import focal as focal_config
from jcomrl import checkpoint
from jcomrl import run as run_api
from jcomrl.algos.config import LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys


def _cfg(dataset, **kw):
  cfg = cli.to_plain(focal_config.get_config("tiny"))
  cfg["dataset"] = dataset
  cfg.update(kw)
  return cfg


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, synthetic_dir):
  workdir = str(tmp_path_factory.mktemp("runs") / "focal")
  res = run_api.train(_cfg(synthetic_dir), workdir)["iid"]
  return workdir, res


def test_run_directory_layout(trained_run):
  workdir, res = trained_run
  assert set(os.listdir(workdir)) >= {"checkpoints", "config.json", "eval", "metrics.jsonl",
                                      ".lock"}
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [10, 20] and "eval/iid_return" in rows[-1]
  assert checkpoint.steps(os.path.join(workdir, "checkpoints")) == [10, 20]
  assert np.asarray(res["iid"]["returns"]).shape == (1, 10, 1)


def test_restore_and_evaluate_equals_in_memory(trained_run):
  workdir, res = trained_run
  # evaluate restores from disk and builds the run again; train's final evaluation used the
  # learner and dataset it trained with.
  with open(os.path.join(workdir, "eval", "iid_step20.json")) as f:
    in_memory = json.load(f)
  again = run_api.evaluate(workdir)["iid"]
  assert again["iid"]["returns"] == in_memory["iid"]["returns"] == res["iid"]["returns"]


def test_checkpoint_from_another_config_is_refused(trained_run):
  workdir, _ = trained_run
  other = LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, latent_size=3)
  state = make_learner(other).init(seed_keys(0, 1))
  with pytest.raises(checkpoint.CheckpointError, match="another learner: .*latent_size"):
    checkpoint.restore(os.path.join(workdir, "checkpoints"), state,
                       expect={"learner": other.structure_dict()})
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint for step 7"):
    checkpoint.restore(os.path.join(workdir, "checkpoints"), state, step=7)


def test_workdir_with_other_config_is_refused(trained_run, synthetic_dir):
  workdir, _ = trained_run
  with pytest.raises(ValueError, match="another config.*seed"):
    run_api.train(_cfg(synthetic_dir, seed=5), workdir)


@pytest.mark.slow
def test_resume_gives_the_same_final_params(trained_run, synthetic_dir, tmp_path):
  workdir, _ = trained_run
  part = str(tmp_path / "part")
  run_api.train(_cfg(synthetic_dir, num_steps=10), part)
  # Continue the same run to 20 steps (config identical apart from the schedule length).
  with open(os.path.join(part, "config.json")) as f:
    cfg = json.load(f)
  cfg["num_steps"] = 20
  os.remove(os.path.join(part, "config.json"))
  run_api.train(cfg, part)
  _, _, _, _, _, a, _ = run_api.restore(workdir)
  _, _, _, _, _, b, _ = run_api.restore(part)
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


# How configs were written before plug-ins owned their settings (jcomrl <= 3e9e662): BRAC's and
# FOCAL's keys flat beside the shared ones, under these names.
_FLAT_BRAC = {"dual_hidden": "dual_hidden", "penalty": "brac_penalty",
              "auto_weight": "brac_auto_weight", "gp": "brac_gp", "dual_steps": "dual_steps",
              "fresh_batches": "dual_fresh_batches", "div_before_dual": "brac_div_before_dual",
              "actor_div_grad": "brac_actor_div_grad",
              "weight_projected": "brac_weight_projected", "soft_target": "soft_target",
              "learn_entropy": "learn_entropy", "log_std_min": "log_std_min",
              "log_std_max": "log_std_max", "policy_log_std_affine": "policy_log_std_affine",
              "policy_mean_clip": "policy_mean_clip", "critic_activation": "critic_activation",
              "action_logp_clip": "action_logp_clip"}
_FLAT_BRAC_HP = {"dual_lr": "dual_lr", "weight": "brac_weight", "gp_weight": "gp_weight",
                 "weight_lr": "brac_weight_lr", "target_div": "brac_target_div",
                 "weight_max": "brac_weight_max"}


def _flat_learner(learner: dict, drop=()) -> dict:
  """A tiny FOCAL run's nested learner dict in the flat form, without the keys ``drop`` (fields
  added after the run was written) and without the subtrees of plug-ins it does not use."""
  out = {k: v for k, v in learner.items() if not isinstance(v, dict)}
  out.update({_FLAT_BRAC[k]: v for k, v in learner["brac"].items()})
  return {k: v for k, v in out.items() if k not in drop}


def test_runs_saved_before_plugin_subtrees_and_new_fields_still_evaluate_and_resume(
    trained_run, synthetic_dir, tmp_path):
  """A run written with the flat config of earlier versions, some of whose fields did not exist
  yet (its config.json and checkpoint metas lack them), compares equal to today's nested config
  with those fields at their defaults: it evaluates to the same returns and resumes."""
  import glob
  import shutil
  workdir = str(tmp_path / "old")
  shutil.copytree(trained_run[0], workdir, ignore=shutil.ignore_patterns(".lock"))
  added_later = ("critic_activation", "brac_weight_projected", "pretrain_tasks")
  paths = [os.path.join(workdir, "config.json"),
           *glob.glob(os.path.join(workdir, "checkpoints", "*", "meta", "metadata"))]
  rewritten = 0
  for path in filter(os.path.isfile, paths):
    with open(path) as f:
      saved = json.load(f)
    for holder in (saved, saved.get("config", {})):
      if isinstance(holder.get("learner"), dict):
        holder["learner"] = _flat_learner(holder["learner"], added_later)
        assert not any(isinstance(v, dict) for v in holder["learner"].values())
        rewritten += 1
      if isinstance(holder.get("hparams"), dict):
        hp = holder["hparams"]
        flat = {k: v for k, v in hp.items() if not isinstance(v, dict)}
        flat.update({_FLAT_BRAC_HP[k]: v for k, v in hp["brac"].items()})
        flat["focal_weight"] = hp["focal"]["weight"]
        holder["hparams"] = flat
    with open(path, "w") as f:
      json.dump(saved, f)
  assert rewritten >= 2  # the run's config and at least one checkpoint's meta
  again = run_api.evaluate(workdir)["iid"]
  assert again["iid"]["returns"] == trained_run[1]["iid"]["returns"]
  cfg = _cfg(synthetic_dir)
  cfg["num_steps"] += cfg["learner"]["steps_per_chunk"]
  run_api.train(cfg, workdir, protocols=())
  assert checkpoint.steps(os.path.join(workdir, "checkpoints"))[-1] == cfg["num_steps"]
