"""Experiment workflow: SIGKILL-and-resume equality, the non-finite-loss stop, the sweep plan and
the results table built from synthetic run directories."""

import json
import math
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import cli, sweep, table
from experiments.configs import focal as focal_config
from jcomrl import checkpoint
from jcomrl import run as run_api
from jcomrl.algos.config import HParams
from jcomrl.algos.trainer import NonFiniteLossError, checkpoint_dir, run_training
from sync_child import SyncChild

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_cfg(dataset, **kw):
  cfg = cli.to_plain(focal_config.get_config("tiny"))
  cfg["dataset"] = dataset
  cfg.update(kw)
  return cfg


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_same_parameters(synthetic_dir, tmp_path):
  steps = 80
  killed = str(tmp_path / "killed")
  cmd = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/focal.py:tiny",
         f"--config.dataset={synthetic_dir}", f"--config.num_steps={steps}",
         "--config.checkpoint_every=10", "--config.eval_every=0", f"--workdir={killed}",
         "--eval_protocols="]
  env = dict(os.environ, PYTHONPATH=ROOT)
  # The child reports its first saved checkpoint on a pipe and waits there: it is killed
  # mid-run, after a complete checkpoint, whatever the machine's load.
  child = SyncChild("checkpoint", "experiments.train", cmd[3:], cwd=ROOT, env=env,
                    stdout=subprocess.DEVNULL)
  proc = child.proc
  try:
    event = child.wait_event()
    assert event is not None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)
  finally:
    proc.communicate()
    child.close()
  assert proc.returncode == -signal.SIGKILL
  first = checkpoint.latest_step(checkpoint_dir(killed))
  assert first == event[1] < steps  # killed right after its first checkpoint, mid-run
  status = run_api.status(killed, ["iid"])
  assert not status["trained"] and status["step"] == first
  # The same command resumes from the last checkpoint and finishes.
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "resumed from step" in done.stdout
  # An uninterrupted run of the same config (in this process, same device).
  ref = str(tmp_path / "ref")
  run_api.train(run_api.read_config(killed), ref, protocols=())
  _, _, _, _, _, a, step_a = run_api.restore(killed)
  _, _, _, _, _, b, step_b = run_api.restore(ref)
  assert step_a == step_b == steps
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.opt, b.opt)
  # Rows logged after the last checkpoint by the killed process were dropped on resume.
  with open(os.path.join(killed, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == list(range(10, steps + 1, 10))
  # Each start of the run (the first and the resume) logged the code that ran it.
  with open(os.path.join(killed, "provenance.jsonl")) as f:
    starts = [json.loads(line) for line in f]
  assert [s["resumed"] for s in starts] == [False, True]
  assert all(s["num_steps"] == steps and "jcomrl_commit" in s for s in starts)
  # The sweep sees a trained run whose protocol files are missing: evaluate, not retrain.
  status = run_api.status(killed, ["iid"])
  assert status["trained"] and status["missing"] == ["iid"]


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(synthetic_dir, tmp_path):
  cfg = _tiny_cfg(synthetic_dir)
  _, data, meta, learner, hp = run_api.build(cfg)
  workdir = str(tmp_path / "nan")
  kw = {"workdir": workdir, "seed": 0, "num_seeds": 1, "checkpoint_every": 10, "progress": None}
  good = run_training(learner, data, hp, meta["split"]["train"], num_steps=10, **kw)
  # reward_scale = inf makes every Bellman target infinite: the critic loss is inf/NaN at once.
  bad_hp = HParams.create(**dict(cfg["hparams"], reward_scale=math.inf))
  # The chunk is steps 11-20; the error names its first update, where the loss went bad.
  with pytest.raises(NonFiniteLossError, match=r"non-finite .*critic/loss.* at step 11 \(seed "
                                               r"index 0\); the last good "
                                               r"checkpoint is kept in .* \(step 10\)"):
    run_training(learner, data, bad_hp, meta["split"]["train"], num_steps=40, **kw)
  # An infinite actor step size (the last group stepped in an update) leaves update 11's losses
  # finite but breaks the policy: the first bad loss is update 12's critic target, mid-chunk
  # (hparams are traced: no recompile).
  lr_hp = HParams.create(**dict(cfg["hparams"], actor_lr=math.inf))
  with pytest.raises(NonFiniteLossError, match=r"critic/loss.* at step 12 \(seed index 0\)"):
    run_training(learner, data, lr_hp, meta["split"]["train"], num_steps=40, **kw)
  assert checkpoint.steps(checkpoint_dir(workdir)) == [10]
  abstract = learner.init(jax.random.split(jax.random.key(0), 1))
  restored, _ = checkpoint.restore(checkpoint_dir(workdir), abstract)
  jax.tree.map(np.testing.assert_array_equal, restored.params, good.params)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.params))


def _dump(obj, path):
  with open(path, "w") as f:
    json.dump(obj, f)


def _write_run(root, env, algo, name, iid, ood, *, steps=(50, 100)):
  """A synthetic run directory: config, two eval steps per protocol, a learning curve."""
  d = os.path.join(root, env, name)
  os.makedirs(os.path.join(d, "eval"))
  _dump({"algo": algo, "env": env, "num_steps": steps[-1]}, os.path.join(d, "config.json"))
  for step in steps:
    scale = 1.0 if step == steps[-1] else 0.0  # only the latest step should be read
    for proto, vals in (("iid", iid), ("ood", ood)):
      if vals is None:
        continue
      v = [scale * x for x in vals]
      _dump({"protocol": proto, "step": step,
             "score": {"seed_means": v, "seed_normalised": [10 * x for x in v]}},
            os.path.join(d, "eval", f"{proto}_step{step}.json"))
  # A legacy periodic-eval file at a later step without a "protocol" key is ignored.
  _dump({"iid": {"mean": 0.0}}, os.path.join(d, "eval", "iid_step999.json"))
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    for step in steps:
      f.write(json.dumps({"step": step, "eval/iid_return": [x * step / steps[-1]
                                                            for x in iid]}) + "\n")
  return d


def test_table_from_synthetic_run_directories(tmp_path):
  root = str(tmp_path / "runs")
  _write_run(root, "point_robot", "focal", "focal", [-10.0, -12.0, -14.0], [-20.0, -22.0, -24.0])
  _write_run(root, "point_robot", "csro", "csro_a", [-8.0], [-30.0])
  _write_run(root, "point_robot", "csro", "csro_b", [-9.0, -10.0], [-31.0, -32.0])  # pooled
  _write_run(root, "cheetah_vel", "focal", "focal", [-150.0, -160.0], None)
  tables = table.make_table(root, str(tmp_path / "out"), ["iid", "ood"])
  md = tables["markdown"].splitlines()
  assert md[2] == ("| Algorithm | Point-Robot IID | Point-Robot OOD | HC-Vel IID | HC-Vel OOD |")
  rows = {line.split(" | ")[0][2:]: line for line in md[4:] if line.startswith("| ")}
  # CSRO: seeds pooled over its two run dirs: iid [-8, -9, -10] -> -9.00 ± 0.82 (best: bold).
  assert "**-9.00 ± 0.82**" in rows["CSRO"] and "-31.0 ± 0.8" in rows["CSRO"]
  assert "-12.0 ± 1.6" in rows["FOCAL"] and "**-22.0 ± 1.6**" in rows["FOCAL"]
  assert "-155 ± 5" in rows["FOCAL"] and rows["FOCAL"].endswith("| – |")
  assert list(rows) == ["CSRO", "FOCAL"]  # UNICORN Table 2 order
  tex = (tmp_path / "out" / "table.tex").read_text()
  assert "\\multicolumn{2}{c}{HC-Vel}" in tex and "\\textbf{-9.00 $\\pm$ 0.82}" in tex
  numbers = json.loads((tmp_path / "out" / "table.json").read_text())
  cell = next(c for c in numbers["cells"] if c["algo"] == "csro" and c["protocol"] == "iid")
  assert cell["num_seeds"] == 3 and cell["values"] == [-8.0, -9.0, -10.0]
  for env in ("point_robot", "cheetah_vel"):
    assert os.path.getsize(tmp_path / "out" / f"curves_{env}.png") > 1000
  norm = table.make_table(root, str(tmp_path / "norm"), ["iid"], metric="normalised")
  assert "-90.0 ± 8.2" in norm["markdown"]
  with pytest.raises(FileNotFoundError, match="no run directories"):
    table.make_table(str(tmp_path / "out"), str(tmp_path / "x"), ["iid"])


def test_sweep_plan_and_command(tmp_path):
  root = str(tmp_path)
  entries = sweep.plan(["focal", "oracle"], ["point_robot"], root, ["iid", "ood"])
  assert [(e["algo"], e["todo"]) for e in entries] == [("focal", "train"), ("oracle", "train")]
  assert entries[0]["workdir"] == os.path.join(root, "point_robot", "focal")
  # One protocol list for a mixed sweep: MACAW (no vector task code) keeps the ones it can run.
  mixed = sweep.plan(["focal", "macaw"], ["point_robot"], root,
                     ["iid", "online", "z_shuffle", "diagnostics"], variant="tiny")
  assert [(e["protocols"], e["dropped"]) for e in mixed] == [
      (["iid", "online", "z_shuffle", "diagnostics"], []),
      (["iid", "z_shuffle"], ["online", "diagnostics"])]
  assert mixed[1]["missing"] == ["iid", "z_shuffle"]
  cmd = sweep.train_command("focal", "point_robot", variant="tiny", seeds=3, dataset="d",
                            workdir="w", protocols=["iid", "ood"], overrides=["num_steps=20"])
  assert cmd[1:] == ["-m", "experiments.train", "--config=experiments/configs/focal.py:tiny",
                     "--config.num_seeds=3", "--config.dataset=d", "--workdir=w",
                     "--eval_protocols=iid,ood", "--config.num_steps=20"]
  # A multi-process sweep passes its settings on to every pair's training.
  dist = {"coordinator_address": "h:1234", "num_processes": 2, "process_id": 1, "auto": False}
  cmd = sweep.train_command("focal", "point_robot", variant="tiny", seeds=3, dataset="d",
                            workdir="w", protocols=["iid"], overrides=[], distributed=dist)
  assert cmd[-3:] == ["--coordinator_address=h:1234", "--num_processes=2", "--process_id=1"]
  with pytest.raises(ValueError, match="key=value"):
    sweep.train_command("focal", "e", variant=None, seeds=1, dataset="d", workdir="w",
                        protocols=[], overrides=["oops"])
  with pytest.raises(ValueError, match="unknown protocol"):
    cli.parse_protocols("iid,bogus")
