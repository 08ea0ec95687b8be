"""Plug-ins from outside the library, trained from the command line with their own keys.

``tests/plugin_config.py`` registers a backbone (``toy_mlp_bc``: 3 static settings, 2 traced
hyper-parameters) and an objective (``toy_task_regression``: 1 of each) and is the training
config; no jcomrl file knows them. The command line sets their keys with ``--config.``, and a
misspelt or invalid one of them ends in one error line.
"""

import importlib
import json
import os
import subprocess
import sys

import jax
import pytest

from jcomrl.algos import backbones, objectives
from jcomrl.algos.settings import HYPERS, SETTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "--config=tests/plugin_config.py:tiny"
BB, OBJ = "toy_mlp_bc", "toy_task_regression"


def _train(*args):
  env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
  return subprocess.run([sys.executable, "-m", "experiments.train", CONFIG, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, check=False, timeout=600)


@pytest.fixture
def plugins():
  """The two plug-ins registered in this process too (to restore the run), then removed."""
  module = importlib.import_module("plugin_config")
  yield module
  sys.modules.pop("plugin_config", None)
  backbones.BACKBONES.pop(BB, None)
  objectives.OBJECTIVES.pop(OBJ, None)
  for table in (SETTINGS, HYPERS):
    table.pop(BB, None)
    table.pop(OBJ, None)


@pytest.mark.slow
def test_plugins_from_a_test_file_train_from_the_cli_with_their_own_keys(synthetic_dir, tmp_path,
                                                                          plugins):
  from jcomrl import run as run_api

  workdir = str(tmp_path / "run")
  proc = _train(f"--config.dataset={synthetic_dir}", "--config.num_steps=20",
                "--config.checkpoint_every=10", "--config.eval_every=0", "--eval_protocols=",
                f"--config.learner.{BB}.width=8", f"--config.learner.{BB}.depth=2",
                f"--config.learner.{BB}.squash=clip", f"--config.hparams.{BB}.lr=0.01",
                f"--config.hparams.{BB}.l2=0.001", f"--config.learner.{OBJ}.head_width=4",
                f"--config.hparams.{OBJ}.weight=2.0", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["learner"][BB] == {"width": 8, "depth": 2, "squash": "clip"}
  assert saved["hparams"][BB] == {"lr": 0.01, "l2": 0.001}
  assert saved["learner"][OBJ] == {"head_width": 4}
  # The settings shaped the networks, the rest of the run is the usual one.
  restored = run_api.restore(workdir)
  learner, state = restored[4], restored[5]
  assert learner.cfg.settings(BB) == plugins.MLPBCSettings(width=8, depth=2, squash="clip")
  actor = jax.tree.map(lambda x: x.shape, state.params["actor"])["params"]
  assert [actor[f"Dense_{i}"]["kernel"][-1] for i in range(3)] == [8, 8, 2]
  head = state.params["encoder"]["toy_head"]["params"]["Dense_0"]["kernel"]
  assert head.shape[-1] == 4 and restored[6] == 20


@pytest.mark.parametrize("arg,message", [
    (f"--config.learner.{BB}.widht=8", f"did you mean --config.learner.{BB}.width?"),
    (f"--config.hparams.{BB}.l_2=0.1", f"did you mean --config.hparams.{BB}.l2?"),
    (f"--config.learner.{OBJ}.head_widht=4", f"did you mean --config.learner.{OBJ}.head_width?"),
    (f"--config.learner.{BB}.squash=cube", f"learner.{BB}.squash 'cube'; expected one of"),
    (f"--config.learner.{BB}.width=0", f"learner.{BB}.width must be positive"),
    (f"--config.hparams.{BB}.lr=-1.0", f"hparams.{BB}.lr = -1.0 must be > 0"),
])
def test_a_bad_plugin_key_is_one_line(synthetic_dir, tmp_path, arg, message):
  workdir = str(tmp_path / "never")
  proc = _train(f"--config.dataset={synthetic_dir}", arg, f"--workdir={workdir}")
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-2000:]
  assert message in lines[0], lines[0]
  assert not os.path.exists(workdir)
