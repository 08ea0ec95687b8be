"""The paper-table command (experiments.paper) and the cpu scale profile: the profile's sizes, its
variant grammar, and the table built from run directories (fake eval files; no training)."""

import json
import os

import numpy as np
import pytest

from experiments import paper
from experiments.configs import common
from experiments.configs import data as data_config
from jcomrl.algos import presets


@pytest.mark.parametrize("algo", presets.PRESETS)
def test_cpu_profile_shrinks_sizes_and_keeps_everything_else(algo):
  full = common.base_config(algo, "cheetah_vel")
  cpu = common.base_config(algo, "cheetah_vel@cpu")
  assert cpu.profile == "cpu" and full.profile == "paper"
  assert cpu.dataset == "data/cheetah_vel@cpu"
  lf, lc = full.learner.to_dict(), cpu.learner.to_dict()
  # BRAC's dual critic width is its own setting (learner.brac.dual_hidden): compared flat here
  lf.update({f"brac.{k}": v for k, v in lf.pop("brac").items()})
  lc.update({f"brac.{k}": v for k, v in lc.pop("brac").items()})
  for k in ("rl_hidden", "brac.dual_hidden", "encoder_hidden", "aux_hidden"):
    if k in lf:
      assert len(lc[k]) == len(lf[k]) and max(lc[k]) <= presets.CPU_WIDTH
  assert lc["rl_batch_size"] == presets.CPU_RL_BATCH
  assert lc["meta_batch_size"] == min(lf["meta_batch_size"], presets.CPU_META_BATCH)
  reduced = {"rl_hidden", "brac.dual_hidden", "encoder_hidden", "aux_hidden", "rl_batch_size",
             "meta_batch_size", "steps_per_chunk", "pretrain_steps"}
  assert {k: v for k, v in lf.items() if k not in reduced} == {
      k: v for k, v in lc.items() if k not in reduced}
  assert cpu.hparams.to_dict() == full.hparams.to_dict()
  assert cpu.num_steps < full.num_steps and cpu.num_steps % lc["steps_per_chunk"] == 0
  assert cpu.checkpoint_every % lc["steps_per_chunk"] == 0
  assert cpu.eval.ood_max_policies == common.CPU_OOD_MAX_POLICIES


def test_cpu_profile_corro_cvae_budget_follows_the_cpu_dataset():
  c = common.base_config("corro", "ant_dir@cpu")
  lrn = c.learner
  # 20 passes over all 40 tasks x 6k transitions (CORRO fits its CVAE on every task) at
  # 8 x 128 transitions per update: ceil(20 * 240000 / 1024) = 4688, rounded up to whole
  # 500-update chunks.
  assert (presets.CPU_CORRO_CVAE_EPOCHS, lrn.meta_batch_size, lrn.rl_batch_size,
          lrn.steps_per_chunk) == (20, 8, 128, 500)
  steps = 5000
  assert lrn.pretrain_steps == steps and c.num_steps == presets.CPU_NUM_STEPS_ENV["ant_dir"] + steps
  assert lrn.pretrain_tasks == "all"
  # the CPU dataset's per-task size is what the budget assumes
  assert data_config.get_config("ant_dir@cpu").transitions_per_task == 6_000


def test_variant_grammar_and_refusals():
  assert common.base_config("unicorn_ss", "walker_param+paper@cpu").learner.rl_batch_size == 128
  with pytest.raises(ValueError, match="@cpu profile is for the MuJoCo envs"):
    common.base_config("focal", "point_robot@cpu")
  with pytest.raises(ValueError, match="unknown variant suffix @gpu"):
    common.base_config("focal", "cheetah_vel@gpu")
  with pytest.raises(ValueError, match="unknown profile"):
    presets.preset("focal", "cheetah_vel", profile="laptop")
  d = data_config.get_config("cheetah_vel@cpu")
  assert d.behaviour.algo == "sac_per_task" and d.behaviour.num_snapshots == 10


def test_reference_rows_name_runnable_algos_with_a_display_name():
  from experiments import table

  runnable = set(presets.ALL_PRESETS + paper.EXTRA_ALGOS)
  for env, rows in paper.UNICORN_TABLE2.items():
    assert env in presets.MUJOCO_ENVS
    assert set(rows) <= runnable, (env, set(rows) - runnable)
  assert runnable <= set(table.ALGO_NAMES)
  for algo in paper.EXTRA_ALGOS:  # the sweep finds its config file
    assert os.path.exists(os.path.join("experiments", "configs", f"{algo}.py"))


def _fake_run(root, env, algo, iid, ood, shuf, norm=(-300.0, -50.0)):
  wd = os.path.join(root, env, algo)
  os.makedirs(os.path.join(wd, "eval"))
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump({"algo": algo, "env": env}, f)
  for proto, vals in (("iid", iid), ("ood", ood), ("z_shuffle", shuf)):
    vals = np.asarray(vals, float)
    res = {"protocol": proto, "score": {
        "seed_means": vals.tolist(),
        "seed_normalised": (100 * (vals - norm[0]) / (norm[1] - norm[0])).tolist()}}
    with open(os.path.join(wd, "eval", f"{proto}_step100.json"), "w") as f:
      json.dump(res, f)
  with open(os.path.join(root, "sweep_log.jsonl"), "a") as f:
    f.write(json.dumps({"algo": algo, "env": env, "returncode": 0, "wall_s": 60.0}) + "\n")


def test_table_reports_both_metrics_the_drop_and_per_task_behaviour(tmp_path, monkeypatch):
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  _fake_run(root, "cheetah_vel", "focal", [-30, -40], [-90, -100], [-80, -70])
  _fake_run(root, "cheetah_vel", "csro", [-20, -24], [-95, -99], [-22, -26])
  meta = {"normalisation": {"random": -300.0, "expert": -50.0},
          "behaviour_snapshots": {"algo": "sac_per_task", "mean_return": [-300.0, -50.0],
                                  "task_returns": [[-300.0, -10.0, -290.0],
                                                   [-40.0, -20.0, -60.0]]}}
  monkeypatch.setattr("jcomrl.data.dataset.read_meta", lambda path: meta)
  res = paper.make_table("cheetah_vel", "cpu", root, out, ["focal", "csro"], 2)
  rows = res["rows"]
  np.testing.assert_allclose(rows["focal"]["drop"], [50.0, 30.0])
  np.testing.assert_allclose(rows["csro"]["drop"], [2.0, 2.0])
  beh = res["behaviour"]
  assert beh["tasks_expert_better"] == 2 and beh["worse_tasks"] == [1]
  md = open(os.path.join(out, "table.md")).read()
  assert "| FOCAL | -35.0 ± 5.0 | **-95.0 ± 5.0** | 106 ± 2 | 82.0 ± 2.0 |" in md
  assert "| – | – | -22 / -97 |" in md  # no diagnostics in the fake runs
  assert "**-22.0 ± 2.0**" in md  # best IID (CSRO)
  assert "40.0 ± 10.0" in md  # FOCAL's drop
  assert "-22 / -94" not in md and "-22 / -97" in md and "-28 / -102" in md  # UNICORN Table 2
  assert "2/3 tasks (not in tasks [1])" in md
  assert json.load(open(os.path.join(out, "table.json")))["presets_wall_s"] == 120.0


def test_num_task_labels_come_from_the_dataset_and_are_checked(synthetic_dir):
  """unicorn_sup's classifier classes = the dataset's task rows; an explicit value below the
  number of tasks (labels out of range) is refused with one line naming the fix."""
  from experiments.cli import to_plain
  from jcomrl import run as run_api
  from jcomrl.errors import ConfigError

  cfg = to_plain(common.base_config("unicorn_sup", "tiny"))
  assert "num_task_labels" not in cfg["learner"]
  cfg["dataset"] = synthetic_dir
  _, data, _, learner, _ = run_api.build(cfg)
  assert learner.cfg.num_task_labels == data.num_tasks
  cfg["learner"]["num_task_labels"] = data.num_tasks - 1
  with pytest.raises(ConfigError, match="remove the key"):
    run_api.build(cfg)


def test_paired_drop_uses_the_per_episode_returns(tmp_path):
  wd = str(tmp_path / "run")
  os.makedirs(os.path.join(wd, "eval"))
  iid = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # [S=1, T=2, E=2]
  with open(os.path.join(wd, "eval", "iid_step5.json"), "w") as f:
    json.dump({"protocol": "iid", "iid": {"returns": iid.tolist()}}, f)
  with open(os.path.join(wd, "eval", "z_shuffle_step5.json"), "w") as f:
    json.dump({"protocol": "z_shuffle", "z_shuffle": {"returns": (iid - [[[1, 1], [1, 3]]]
                                                                  ).tolist()}}, f)
  pd = paper.paired_drop(wd)
  d = np.array([1.0, 1.0, 1.0, 3.0])
  assert pd["n"] == 4 and pd["mean"] == 1.5
  np.testing.assert_allclose(pd["se"], d.std(ddof=1) / 2)
  assert pd["significant"] is (1.5 > 2 * pd["se"])


def test_expert_anchor_rows_are_the_best_snapshot_with_the_last_beside_it():
  # Three snapshots; snapshot 1 has the best mean (-30 vs the last's -100).
  meta = {"normalisation": {"random": -300.0, "expert": -30.0, "best_snapshot": 1,
                            "last": -100.0, "policy": "deterministic"},
          "quality": "replay", "transitions_per_task": 5,
          "behaviour_snapshots": {"algo": "sac_shared", "mean_return": [-300.0, -30.0, -100.0],
                                  "task_returns": [[-310.0, -290.0], [-20.0, -40.0],
                                                   [-150.0, -50.0]],
                                  "policy": "deterministic",
                                  "mean_return_stochastic": [-305.0, -60.0, -120.0]}}
  beh = paper.behaviour_report(meta)
  assert beh["best_snapshot"] == 1 and beh["anchor_policy"] == "deterministic"
  assert beh["expert"] == [-20.0, -40.0] and beh["last"] == [-150.0, -50.0]
  assert beh["snapshot_means_other"] == [-305.0, -60.0, -120.0]
  md = paper.build_markdown("cheetah_vel", "cpu", {}, beh, {}, 3)
  assert "| expert (best) | -20 | -40 |" in md and "| last | -150 | -50 |" in md
  assert "expert (best, snapshot 1)" in md


def test_recipes_pick_their_dataset_runs_and_table_directories():
  assert paper.dataset_for("cheetah_vel", "cpu") == ("data/cheetah_vel@cpu", "cheetah_vel@cpu")
  assert paper.dataset_for("cheetah_vel", "cpu", "fast") == ("data/cheetah_vel@fast",
                                                             "cheetah_vel@fast")
  assert paper.default_paths("ant_dir", "cpu", "per_task") == (
      "runs/paper_cpu", os.path.join("benchmarks", "results", "paper_cpu", "ant_dir"))
  assert paper.default_paths("ant_dir", "cpu", "fast") == (
      "runs/paper_cpu_fast", os.path.join("benchmarks", "results", "paper_cpu", "ant_dir_fast"))
  assert paper.dataset_for("ant_dir", "paper", "official") == ("data/ant_dir@official",
                                                                 "ant_dir@official")
  assert paper.data_overrides("paper", "fast") == paper.data_overrides("cpu", "official") == []
  assert paper.data_overrides("paper") == ["--config.behaviour.algo=sac_per_task"]
  for recipe in paper.RECIPES:
    _, variant = paper.dataset_for("hopper_param", "cpu", recipe)
    assert variant in data_config.variants()


def test_source_commit_names_the_checkout_or_nothing(tmp_path, monkeypatch):
  import subprocess

  from experiments import cli

  head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__))))
  got = cli.source_commit()
  if head.returncode:  # not a git checkout (an installed copy)
    assert got is None
  else:
    assert got.split("+")[0] == head.stdout.strip() and got in (head.stdout.strip(),
                                                                head.stdout.strip() + "+dirty")
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no git")))
  assert cli.source_commit() is None
