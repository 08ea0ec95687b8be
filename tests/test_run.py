"""The run API (``jcomrl.run``) from Python: its docstring example, one dataset load and one
learner build per training command, resume, status, the lock and typed errors, and a library
that imports nothing from ``experiments``."""

import ast
import collections
import json
import os
import textwrap
import types

import pytest

from experiments import cli
from experiments.configs import focal as focal_config
from jcomrl import checkpoint, errors
from jcomrl import run as run_api
from jcomrl.algos.config import LearnerConfig
from jcomrl.algos.trainer import checkpoint_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _docstring_example() -> str:
  """The code block of ``jcomrl.run``'s module docstring (the indented lines after ``::``)."""
  doc = run_api.__doc__
  lines = []
  for line in doc[doc.index("::\n") + 3:].splitlines():
    if line.strip() and not line.startswith("  "):
      break
    lines.append(line)
  return textwrap.dedent("\n".join(lines)).strip() + "\n"


@pytest.fixture(scope="module")
def example_run(synthetic_dir, tmp_path_factory):
  """Runs the docstring example as written, in a directory whose ``data/point_robot`` is the
  synthetic point-robot dataset; returns ``(workdir, printed lines)``."""
  cwd = tmp_path_factory.mktemp("example")
  os.makedirs(cwd / "data")
  os.symlink(synthetic_dir, cwd / "data" / "point_robot")
  code = _docstring_example()
  printed = []
  old = os.getcwd()
  os.chdir(cwd)
  try:
    exec(compile(code, "jcomrl.run example", "exec"),
         {"print": lambda *a, **kw: printed.append(" ".join(map(str, a)))})
  finally:
    os.chdir(old)
  return str(cwd / "runs" / "focal_tiny"), printed


def test_the_docstring_example_trains_and_evaluates(example_run):
  assert "run.train(cfg" in _docstring_example()
  assert sum(1 for line in _docstring_example().splitlines() if line.strip()) <= 8
  workdir, printed = example_run
  assert any(line.startswith("compiling the training step") for line in printed)
  result = eval(printed[-1])  # {protocol: mean return}
  assert sorted(result) == ["iid", "z_shuffle"]
  assert sorted(os.listdir(os.path.join(workdir, "eval"))) == ["iid_step20.json",
                                                               "z_shuffle_step20.json"]
  assert checkpoint.steps(checkpoint_dir(workdir)) == [10, 20]
  # The config is saved as JSON holds it (the preset's tuples as lists).
  assert run_api.read_config(workdir)["learner"]["encoder_hidden"] == [16]
  assert run_api.status(workdir, ["iid", "z_shuffle", "ood"]) == {
      "trained": True, "step": 20, "num_steps": 20, "missing": ["ood"]}


def test_resume_extends_the_run_and_prints_nothing(example_run, tmp_path, capsys, monkeypatch):
  import shutil
  monkeypatch.chdir(os.path.dirname(os.path.dirname(example_run[0])))  # the config's dataset path
  workdir = str(tmp_path / "run")
  shutil.copytree(example_run[0], workdir, ignore=shutil.ignore_patterns(".lock"))
  # Same config (the tuples of the example's preset included): nothing to do but evaluate.
  capsys.readouterr()
  assert run_api.resume(workdir, protocols=()) == {}
  lines = []
  res = run_api.resume(workdir, num_steps=30, protocols=["iid"], progress=lines.append)
  assert capsys.readouterr().out == ""  # the library prints nothing itself
  assert any("num_steps 20 -> 30: extending the run" in s for s in lines), lines
  assert any(s.startswith("resumed from step 20") for s in lines), lines
  assert res["iid"]["step"] == 30 and run_api.status(workdir)["step"] == 30
  with open(os.path.join(workdir, "provenance.jsonl")) as f:
    starts = [json.loads(line) for line in f]
  assert [s["resumed"] for s in starts] == [False, True, True]


def test_errors_are_typed_and_nothing_is_written(example_run, synthetic_dir, tmp_path):
  assert cli.ConfigError is errors.ConfigError and cli.RunDirError is errors.RunDirError
  cfg = run_api.read_config(example_run[0])
  new = str(tmp_path / "never")
  with pytest.raises(errors.ConfigError, match="hparams.discount = 1.5"):
    run_api.train(dict(cfg, hparams=dict(cfg["hparams"], discount=1.5)), new)
  with pytest.raises(errors.ConfigError, match=r"unknown protocol\(s\) \['odd'\]"):
    run_api.train(cfg, new, protocols=["iid", "odd"])
  with pytest.raises(run_api.DatasetError, match="no dataset directory"):
    run_api.train(dict(cfg, dataset=str(tmp_path / "nope")), new)
  assert not os.path.exists(new)
  with pytest.raises(errors.RunDirError, match="holds a run with another config"):
    run_api.train(dict(cfg, seed=3), example_run[0])
  with pytest.raises(errors.RunDirError, match="is not a run directory"):
    run_api.evaluate(str(tmp_path))
  held = str(tmp_path / "held")
  lock = run_api.RunLock(held).acquire()
  try:
    # Re-entrant in this process; another process is refused (tests/test_cli_errors.py).
    with run_api.lock(held):
      pass
  finally:
    lock.release()
  assert os.listdir(held) == [".lock"]


def test_one_train_command_loads_the_dataset_and_builds_the_learner_once(
    synthetic_dir, tmp_path, monkeypatch, capsys):
  """``experiments.train`` trains and then evaluates from the final checkpoint: both use the
  one dataset load (checksums included) and the one learner of the run."""
  import jcomrl.data.dataset as dataset_module
  from experiments import train

  counts = collections.Counter()

  def counting(name, fn):
    def wrapped(*a, **kw):
      counts[name] += 1
      return fn(*a, **kw)
    return wrapped

  monkeypatch.setattr(run_api, "load_dataset", counting("load", run_api.load_dataset))
  # The checksum of one array file (every load_dataset verifies each array's).
  sha = "sha256_file" if hasattr(dataset_module, "sha256_file") else "_sha256"
  monkeypatch.setattr(dataset_module, sha, counting("sha256", getattr(dataset_module, sha)))
  cls, make = run_api.LEARNER_TYPES["comrl"]
  monkeypatch.setitem(run_api.LEARNER_TYPES, "comrl", (cls, counting("build", make)))
  monkeypatch.setattr(LearnerConfig, "from_dict",
                      classmethod(counting("parse", LearnerConfig.from_dict.__func__)))
  c = focal_config.get_config("tiny")
  c.dataset, c.num_steps, c.checkpoint_every, c.eval_every = synthetic_dir, 10, 10, 0
  workdir = str(tmp_path / "run")
  monkeypatch.setattr(train, "FLAGS", types.SimpleNamespace(config=c, workdir=workdir,
                                                            eval_protocols="iid"))
  train.main([])
  assert counts == {"load": 1, "sha256": len(dataset_module.ARRAY_FIELDS), "build": 1,
                    "parse": 1}
  out = capsys.readouterr().out
  assert "evaluating iid (1/1) at step 10" in out and "iid: mean return" in out
  assert os.path.exists(run_api.eval_path(workdir, "iid", 10))
  with open(os.path.join(workdir, "provenance.jsonl")) as f:
    line = json.loads(f.readline())
  assert list(line) == ["time", "jcomrl_commit", "cpu", "load_avg", "resumed", "num_steps"]


def test_the_library_imports_nothing_from_experiments():
  """``jcomrl/`` sits below ``experiments/``: no import of it, not even inside a function."""
  bad = []
  for root, _, files in os.walk(os.path.join(ROOT, "jcomrl")):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(root, name)
      with open(path) as f:
        tree = ast.parse(f.read(), path)
      for node in ast.walk(tree):
        mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        bad += [f"{os.path.relpath(path, ROOT)}:{node.lineno} {m}" for m in mods
                if m == "experiments" or m.startswith("experiments.")]
  assert not bad, bad


def test_periodic_z_shuffle_logs_the_control_curve_and_old_runs_resume(example_run, tmp_path,
                                                                        monkeypatch):
  """eval.periodic_z_shuffle: every eval_every the z-shuffle control runs beside iid, and its
  logged mean equals the z_shuffle protocol's at the same step (same key, same contexts). A run
  saved before the setting existed resumes with it at its default (how it ran)."""
  import shutil

  import numpy as np
  monkeypatch.chdir(os.path.dirname(os.path.dirname(example_run[0])))
  cfg = run_api.read_config(example_run[0])
  assert "periodic_z_shuffle" not in cfg["eval"]  # saved without the setting
  old = str(tmp_path / "old")
  shutil.copytree(example_run[0], old, ignore=shutil.ignore_patterns(".lock"))
  assert run_api.train(dict(cfg, eval=dict(cfg["eval"], periodic_z_shuffle=False)), old,
                       protocols=()) == {}
  with pytest.raises(errors.RunDirError, match="eval.periodic_z_shuffle: saved False vs now True"):
    run_api.train(dict(cfg, eval=dict(cfg["eval"], periodic_z_shuffle=True)), old, protocols=())

  curve = str(tmp_path / "curve")
  res = run_api.train(dict(cfg, eval_every=10, eval=dict(cfg["eval"], periodic_z_shuffle=True)),
                      curve, protocols=["z_shuffle"])
  with open(os.path.join(curve, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if "eval/z_shuffle_return" in line]
  assert [r["step"] for r in rows] == [10, 20]
  assert all("eval/iid_return" in r for r in rows)
  np.testing.assert_allclose(rows[-1]["eval/z_shuffle_return"],
                             res["z_shuffle"]["z_shuffle"]["seed_means"], rtol=1e-6)
