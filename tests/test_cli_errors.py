"""The command line as a user meets it: bad inputs end in one line, nothing is lost.

Every bad input runs the real entry point (``python -m experiments.<name>``) in a subprocess and
must exit non-zero with exactly one ``<prog>: error: ...`` line on stderr (no traceback) naming
the offending key, file or value, and leave the run directory and the dataset as they were.
The cases run concurrently, fail before anything is compiled (config, dataset and run-directory
checks come first), and share the session's synthetic point-robot dataset. Two runs that train
(the run-directory lock; an evaluation that crashes mid-run) are the only ones that compile.
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from experiments import cli
from experiments.configs import focal as focal_config
from jcomrl import checkpoint
from jcomrl import run as run_api
from jcomrl.algos.trainer import checkpoint_dir
from jcomrl.eval import suite
from jcomrl.logging import read_metrics
from sync_child import SyncChild

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "--config=experiments/configs/focal.py:tiny"


def _env():
  return dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")


def _run(module, *args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=cwd,
                        env=_env(), capture_output=True, text=True, check=False, timeout=600)


def _snapshot(path):
  """``{relative file: sha1}`` of a directory tree (``None`` if it does not exist)."""
  if not os.path.exists(path):
    return None
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      if name == ".lock":  # holds the pid of the last process that took the lock
        continue
      full = os.path.join(root, name)
      with open(full, "rb") as f:
        out[os.path.relpath(full, path)] = hashlib.sha1(f.read()).hexdigest()
  return out


def _rewrite_array(path, name, fn):
  """Changes ``<name>.npy`` of a dataset copy and fixes its checksum in meta.json (so that only
  the value checks can catch it)."""
  file = os.path.join(path, f"{name}.npy")
  arr = np.load(file)
  arr = fn(arr.copy())
  np.save(file, arr)
  with open(os.path.join(path, "meta.json")) as f:
    meta = json.load(f)
  with open(file, "rb") as f:
    meta["arrays"][name]["sha256"] = hashlib.sha256(f.read()).hexdigest()
  with open(os.path.join(path, "meta.json"), "w") as f:
    json.dump(meta, f)


def _edit_meta(path, fn):
  with open(os.path.join(path, "meta.json")) as f:
    meta = json.load(f)
  fn(meta)
  with open(os.path.join(path, "meta.json"), "w") as f:
    json.dump(meta, f)


def _nan_first(a):
  a[0, 5] = np.nan
  return a


def _flag_two(a):
  a[1, 3] = 2.0
  return a


@pytest.fixture(scope="session")
def bad_datasets(synthetic_dir, tmp_path_factory):
  """Broken copies of the synthetic dataset, one per defect."""
  root = tmp_path_factory.mktemp("bad_data")

  def copy(name):
    path = os.path.join(root, name)
    shutil.copytree(synthetic_dir, path)
    return path

  out = {}
  out["truncated"] = p = copy("truncated")
  with open(os.path.join(p, "reward.npy"), "r+b") as f:
    f.truncate(os.path.getsize(os.path.join(p, "reward.npy")) // 2)
  out["nan_reward"] = p = copy("nan_reward")
  _rewrite_array(p, "reward", _nan_first)
  out["bad_flag"] = p = copy("bad_flag")
  _rewrite_array(p, "terminal", _flag_two)
  out["no_norm"] = p = copy("no_norm")
  _edit_meta(p, lambda m: m.pop("normalisation"))
  out["text_norm"] = p = copy("text_norm")
  _edit_meta(p, lambda m: m["normalisation"].update(expert="high"))
  out["seg_type"] = p = copy("seg_type")
  _edit_meta(p, lambda m: m.update(segment_length="50"))
  out["bad_json"] = p = copy("bad_json")
  with open(os.path.join(p, "meta.json"), "w") as f:
    f.write('{"schema_version": 1, ')
  out["not_a_dataset"] = p = os.path.join(root, "empty")
  os.makedirs(p)
  return out


def _tiny_train(dataset, workdir, *extra):
  return ("train", TINY, f"--config.dataset={dataset}", "--config.num_steps=20",
          "--config.checkpoint_every=10", "--config.eval_every=0", f"--workdir={workdir}",
          "--eval_protocols=", *extra)


@pytest.fixture(scope="session")
def shared_run(synthetic_dir, tmp_path_factory):
  """Two trainings started into one workdir: the second is refused while the first holds the
  lock; the first finishes. Returns ``(workdir, first, second)`` (completed processes)."""
  workdir = str(tmp_path_factory.mktemp("shared") / "run")
  args = list(_tiny_train(synthetic_dir, workdir)[1:])
  cmd = [sys.executable, "-m", "experiments.train", *args]
  # The first run stops right after taking the lock (it reports that on a pipe and waits), so
  # the second starts while the lock is certainly held; then the first is let go.
  child = SyncChild("lock", "experiments.train", args, cwd=ROOT, env=_env())
  first = child.proc
  try:
    event = child.wait_event()
    assert event is not None, first.communicate()[1][-3000:]
    assert event[0] == first.pid
    with open(os.path.join(workdir, ".lock")) as f:
      assert f.read().strip() == str(first.pid)
    second = _run(*_tiny_train(synthetic_dir, workdir))
  finally:
    child.release()
  out, err = first.communicate(timeout=600)
  child.close()
  pid, first = first.pid, subprocess.CompletedProcess(cmd, first.returncode, out, err)
  return workdir, first, second, pid


@pytest.fixture(scope="session")
def held_workdir(tmp_path_factory):
  """A run directory locked by this (the test) process."""
  workdir = str(tmp_path_factory.mktemp("held") / "run")
  lock = run_api.RunLock(workdir).acquire()
  yield workdir
  lock.release()


def _cases(data, bad, run, held, tmp):
  """``(id, argv, expected text in the error line, paths that must not change)``."""
  new = os.path.join(tmp, "never_created")
  return (_config_cases(data, new) + _dataset_cases(data, bad, new)
          + _run_dir_cases(data, bad, run, held, new) + _other_cases(data, bad, tmp, new))


def _config_cases(data, new):
  """Bad config files, keys and values, and bad flags of experiments.train."""
  t = lambda *a: ("train", TINY, f"--config.dataset={data}", *a, f"--workdir={new}")
  return [
      ("config-file-missing", ("train", "--config=experiments/configs/focl.py:tiny",
                               f"--workdir={new}"),
       "config file experiments/configs/focl.py not found; did you mean focal.py?", [new]),
      ("config-variant", ("train", "--config=experiments/configs/focal.py:tiny_robot",
                          f"--workdir={new}"), "no variant 'tiny_robot'", [new]),
      ("misspelled-key", t("--config.lerning_rate=0.1"), "--config.lerning_rate", [new]),
      ("misspelled-nested-key", t("--config.hparams.actor_lrr=0.1"),
       "did you mean --config.hparams.actor_lr?", [new]),
      ("wrong-type", t("--config.num_seeds=two"), "--config.num_seeds=two", [new]),
      ("num-seeds-zero", t("--config.num_seeds=0"), "num_seeds = 0 must be >= 1", [new]),
      ("negative-lr", t("--config.hparams.critic_lr=-0.001"),
       "hparams.critic_lr = -0.001 must be > 0", [new]),
      ("discount-range", t("--config.hparams.discount=1.5"), "hparams.discount = 1.5", [new]),
      ("num-steps-multiple", t("--config.num_steps=25"),
       "num_steps = 25 must be a multiple of learner.steps_per_chunk = 10", [new]),
      ("eval-every-multiple", t("--config.eval_every=15"), "eval_every = 15", [new]),
      ("learner-size-zero", t("--config.learner.meta_batch_size=0"), "meta_batch_size", [new]),
      ("learner-choice", t("--config.learner.context_mode=episodes"), "context_mode", [new]),
      ("eval-episodes-zero", t("--config.eval.num_episodes=0"), "eval.num_episodes = 0",
       [new]),
      ("unknown-flag", t("--eval_protocol=iid"), "eval_protocol", [new]),
      ("bad-protocol", t("--eval_protocols=iid,odd"), "unknown protocol(s) ['odd']", [new]),
  ]


def _dataset_cases(data, bad, new):
  """Missing, broken and mismatched datasets."""
  bd = lambda name, *a: ("train", TINY, f"--config.dataset={bad[name]}", *a,
                         f"--workdir={new}")
  return [
      ("dataset-missing", ("train", TINY, f"--config.dataset={data}_nope", f"--workdir={new}"),
       f"no dataset directory at {data}_nope", [new]),
      ("dataset-not-a-dataset", bd("not_a_dataset"), "has no meta.json", [new]),
      ("dataset-other-env", ("train", "--config=experiments/configs/focal.py:cheetah_vel",
                             f"--config.dataset={data}", f"--workdir={new}"),
       "holds data of env 'point_robot', expected 'cheetah_vel'", [new, data]),
      ("dataset-truncated", bd("truncated"), "reward.npy is truncated",
       [new, bad["truncated"]]),
      ("dataset-nan-reward", bd("nan_reward"), "reward.npy holds 1 non-finite values",
       [new, bad["nan_reward"]]),
      ("dataset-bad-flag", bd("bad_flag"), "terminal.npy holds 1 values other than 0 and 1",
       [new, bad["bad_flag"]]),
      ("dataset-no-normalisation", bd("no_norm"), "no normalisation block",
       [new, bad["no_norm"]]),
      ("dataset-text-normalisation", bd("text_norm"),
       "normalisation.expert = 'high' is not a finite number", [new, bad["text_norm"]]),
      ("dataset-meta-type", bd("seg_type"), "segment_length = '50' must be a positive int",
       [new, bad["seg_type"]]),
      ("dataset-bad-json", bd("bad_json"), "meta.json is not valid JSON", [new, bad["bad_json"]]),
  ]


def _run_dir_cases(data, bad, run, held, new):
  """Run directories that hold another run, are in use or are no run; the multi-process flags;
  experiments.evaluate's flags."""
  t = lambda *a: ("train", TINY, f"--config.dataset={data}", *a, f"--workdir={new}")
  return [
      ("run-other-config", ("train", TINY, f"--config.dataset={data}", "--config.num_steps=20",
                            "--config.checkpoint_every=10", "--config.eval_every=0",
                            "--config.seed=5", f"--workdir={run}"),
       "holds a run with another config (seed: saved 0 vs now 5)", [run]),
      ("run-fewer-steps", ("train", TINY, f"--config.dataset={data}", "--config.num_steps=10",
                           "--config.checkpoint_every=10", "--config.eval_every=0",
                           f"--workdir={run}"),
       "already trained to step 20; num_steps = 10 must be >= 20", [run]),
      ("run-locked", ("train", TINY, f"--config.dataset={data}", f"--workdir={held}"),
       f"in use by another jcomrl process (pid {os.getpid()})", [held]),
      ("distributed-incomplete", t("--coordinator_address=localhost:1"),
       "a multi-process run needs --num_processes, --process_id too", [new]),
      ("distributed-process-id", t("--coordinator_address=localhost:1", "--num_processes=2",
                                   "--process_id=2"),
       "--process_id=2 must be below --num_processes=2", [new]),
      ("evaluate-distributed-incomplete", ("evaluate", f"--workdir={run}", "--process_id=1"),
       "needs --coordinator_address, --num_processes too", [run]),
      ("evaluate-not-a-run", ("evaluate", f"--workdir={bad['not_a_dataset']}"),
       "is not a run directory (no config.json)", [bad["not_a_dataset"]]),
      ("evaluate-missing-step", ("evaluate", f"--workdir={run}", "--step=999"),
       "no checkpoint for step 999", [run]),
      ("evaluate-bad-protocol", ("evaluate", f"--workdir={run}", "--protocols=iid,ood2"),
       "unknown protocol(s) ['ood2'] (did you mean 'ood'?)", [run]),
      ("evaluate-no-workdir", ("evaluate",), "--workdir", []),
  ]


def _other_cases(data, bad, tmp, new):
  """The other commands: collect, inspect_data, table, sweep."""
  return [
      ("collect-quality", ("collect", "--config=experiments/configs/data.py:tiny",
                           "--config.quality=best", f"--config.out={new}"),
       "unknown dataset quality 'best' (config key quality)", [new]),
      ("collect-key", ("collect", "--config=experiments/configs/data.py:tiny",
                       "--config.qualty=expert", f"--config.out={new}"),
       "did you mean --config.quality?", [new]),
      ("inspect-missing", ("inspect_data", f"{data}_nope"), f"no dataset directory at {data}_nope",
       []),
      ("inspect-nan", ("inspect_data", bad["nan_reward"]), "reward.npy holds 1 non-finite",
       [bad["nan_reward"]]),
      ("table-no-root", ("table", f"--runs_root={new}"), f"no runs root directory {new}", [new]),
      ("table-protocol", ("table", f"--runs_root={tmp}", "--protocols=iid,bogus"),
       "unknown protocol column(s) ['bogus']", [new]),
      ("sweep-preset", ("sweep", "--algos=focal,focall", f"--runs_root={new}"),
       "no config file for preset(s) ['focall']", [new]),
      ("sweep-set-key", ("sweep", "--algos=focal", "--variant=tiny", f"--runs_root={new}",
                         "--set=num_step=20"), "did you mean --config.num_steps?", [new]),
      ("sweep-set-form", ("sweep", "--algos=focal", f"--runs_root={new}", "--set=num_steps"),
       "--set expects key=value, got 'num_steps'", [new]),
      ("sweep-seeds", ("sweep", "--seeds=0", f"--runs_root={new}"), "--seeds=0", [new]),
      ("sweep-distributed-auto", ("sweep", "--algos=focal", f"--runs_root={new}",
                                  "--distributed_auto"),
       "experiments.sweep takes explicit --coordinator_address", [new]),
  ]


@pytest.fixture(scope="session")
def case_results(synthetic_dir, bad_datasets, shared_run, held_workdir, tmp_path_factory):
  tmp = str(tmp_path_factory.mktemp("cases"))
  cases = _cases(synthetic_dir, bad_datasets, shared_run[0], held_workdir, tmp)
  before = {c[0]: [_snapshot(p) for p in c[3]] for c in cases}
  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    procs = dict(zip([c[0] for c in cases], pool.map(lambda c: _run(*c[1]), cases)))
  return {c[0]: (c, procs[c[0]], before[c[0]], [_snapshot(p) for p in c[3]]) for c in cases}


CASE_IDS = [c[0] for c in _cases("D", {k: k for k in (
    "truncated", "nan_reward", "bad_flag", "no_norm", "text_norm", "seg_type", "bad_json",
    "not_a_dataset")}, "R", "H", "T")]


def test_enough_bad_inputs():
  assert len(CASE_IDS) >= 25 and len(set(CASE_IDS)) == len(CASE_IDS)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_input_is_one_line_and_changes_nothing(case_results, case_id):
  (_, argv, expected, paths), proc, before, after = case_results[case_id]
  err = proc.stderr
  assert proc.returncode != 0, f"{argv} exited 0: {proc.stdout[-500:]}"
  assert "Traceback" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.strip()]
  prog = f"experiments.{argv[0]}: error: "
  assert len(lines) == 1 and lines[0].startswith(prog), err[-3000:]
  assert expected in lines[0], lines[0]
  assert proc.returncode == 2, (proc.returncode, lines[0])
  print(f"{case_id}: {lines[0]}")  # the message, for `pytest -rP` listings
  for path, a, b in zip(paths, before, after):
    assert a == b, f"{path} changed"


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "experiments.train", TINY,
                         f"--config.dataset={tmp_path}/nope", f"--workdir={tmp_path}/run"],
                        cwd=ROOT, env=dict(_env(), JCOMRL_DEBUG="1"), capture_output=True,
                        text=True, check=False)
  assert proc.returncode != 0 and "Traceback" in proc.stderr and "DatasetError" in proc.stderr


@pytest.mark.slow
def test_second_training_into_one_workdir_is_refused(shared_run):
  workdir, first, second, pid = shared_run
  assert first.returncode == 0, first.stderr[-3000:]
  assert second.returncode == 2 and "Traceback" not in second.stderr
  assert second.stderr == (f"experiments.train: error: {workdir} is in use by another jcomrl "
                           f"process (pid {pid}); wait for it to finish or use another "
                           "--workdir\n"), second.stderr
  # The first run's logs are clean: one metrics row per chunk, both checkpoints, its config.
  assert [r["step"] for r in read_metrics(workdir)] == [10, 20]
  assert checkpoint.steps(checkpoint_dir(workdir))[-1] == 20
  assert run_api.read_config(workdir)["num_steps"] == 20
  assert "compiling the training step" in first.stdout and "updates/s" in first.stdout
  assert "Failed to import warp" not in first.stdout + first.stderr


@pytest.mark.slow
def test_failed_evaluation_keeps_the_checkpoint_and_the_run_extends(synthetic_dir, tmp_path,
                                                                    monkeypatch):
  cfg = cli.to_plain(focal_config.get_config("tiny"))
  cfg.update(dataset=synthetic_dir, num_steps=30, checkpoint_every=30, eval_every=20)
  workdir = str(tmp_path / "run")

  def crash(*a, **kw):
    raise RuntimeError("simulated evaluation crash")

  monkeypatch.setattr(run_api, "evaluate_state", crash)
  with pytest.raises(run_api.RunFailed, match=r"evaluation at step 20 failed \(RuntimeError: "
                                          r"simulated evaluation crash\); the checkpoint of step "
                                          r"20 is saved"):
    run_api.train(cfg, workdir, protocols=())
  # checkpoint_every is 30, but the step about to be evaluated was saved first, and the step's
  # training metrics were logged.
  assert checkpoint.steps(checkpoint_dir(workdir)) == [20]
  assert [r["step"] for r in read_metrics(workdir)] == [10, 20]
  # Fixed (a stand-in evaluation: the real one is not under test), the same config with a
  # larger num_steps resumes from step 20 and extends the run past its old end.
  monkeypatch.setattr(run_api, "evaluate_state",
                      lambda env, data, meta, learner, params, cfg, step: {"step": step})
  lines = []
  run_api.train(dict(cfg, num_steps=40), workdir, protocols=(), progress=lines.append)
  assert any("num_steps 30 -> 40" in s for s in lines), lines
  assert any(s.startswith("resumed from step 20") for s in lines), lines
  assert checkpoint.latest_step(checkpoint_dir(workdir)) == 40
  assert run_api.read_config(workdir)["num_steps"] == 40
  assert [r["step"] for r in read_metrics(workdir)] == [10, 20, 30, 40]
  assert os.path.exists(os.path.join(workdir, "eval", "iid_step40.json"))
  # Resuming started a new TensorBoard events file that purges the old one after step 20.
  tb = os.path.join(workdir, "tb")
  if os.path.isdir(tb):  # tensorboardX installed
    assert len(os.listdir(tb)) == 2


def test_protocol_names_agree_with_the_suite():
  assert cli.ALL_PROTOCOLS == suite.PROTOCOLS + ("diagnostics",) == run_api.PROTOCOLS


def test_every_shipped_config_validates():
  from experiments.configs import common as config_common

  for preset in ("focal", "csro", "corro", "unicorn_ss", "unicorn_sup", "supervised", "oracle"):
    for variant in config_common.VARIANTS:
      run_api.validate_config(cli.to_plain(config_common.base_config(preset, variant)))
