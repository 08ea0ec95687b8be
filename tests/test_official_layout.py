"""Export to the FOCAL layout and to the UNICORN / CORRO per-task npy layout (jcomrl.data.official_layout): read back the
way their loader reads it (utils/offline_utils.py load_dataset / load_transitions /
extract_goal_from_path, rewritten here in numpy), every row lands in its task's directory."""

import os

import numpy as np
import pytest

from jcomrl.data.dataset import DatasetError, load_dataset
from jcomrl.data.official_layout import export_focal, export_unicorn


def _their_read(task_dir, traj_len):
  """offline_utils.load_transitions + load_dataset's reshape for 2-D files:
  (-1, trajectory_len, dim) then transpose(0, 1) -> [traj_len, num_trajs, dim]."""
  out = []
  for name in ("obs", "actions", "rewards", "next_obs", "terminals"):
    a = np.load(os.path.join(task_dir, name + ".npy"))
    assert a.ndim == 2 and a.dtype == np.float32
    out.append(a.reshape(-1, traj_len, a.shape[-1]).transpose(1, 0, 2))
  return out


def _goal(dirname):  # offline_utils.extract_goal_from_path
  return [float(g) for g in dirname.split("goal_")[-1].split("_")]


def test_export_reads_back_as_their_loader_reads_it(synthetic_dir, tmp_path):
  data, meta = load_dataset(synthetic_dir)
  out = str(tmp_path / "PointRobot-v0")
  dirs = export_unicorn(synthetic_dir, out)
  split = meta["split"]
  assert sorted(os.listdir(os.path.join(out, "train"))) == sorted(dirs["train"])
  assert len(dirs["train"]) == len(split["train"]) and len(dirs["test"]) == len(split["test"])
  h = data.segment_length
  tr = data.transitions
  for part in ("train", "test"):
    for name in os.listdir(os.path.join(out, part)):
      k = int(name.split("_")[1])  # seed_<k>_goal_...
      assert k in split[part]
      np.testing.assert_allclose(_goal(name), np.round(np.asarray(data.task_params[k]), 3),
                                 atol=1e-9)
      obs, act, rew, nxt, term = _their_read(os.path.join(out, part, name), h)
      # their trajectory j, step t is our row j * h + t of task k
      j, t = 2, 5
      np.testing.assert_array_equal(obs[t, j], np.asarray(tr.obs[k, j * h + t]))
      np.testing.assert_array_equal(act[t, j], np.asarray(tr.action[k, j * h + t]))
      np.testing.assert_array_equal(rew[t, j, 0], np.asarray(tr.reward[k, j * h + t]))
      np.testing.assert_array_equal(nxt[t, j], np.asarray(tr.next_obs[k, j * h + t]))
      assert rew.shape == (h, data.num_transitions // h, 1) and not term.any()
  record = open(os.path.join(out, "jcomrl_export.json")).read()
  assert '"layout": "unicorn"' in record


def test_existing_output_is_refused_and_kept(synthetic_dir, tmp_path):
  out = tmp_path / "X"
  out.mkdir()
  (out / "keep.txt").write_text("mine")
  with pytest.raises(DatasetError, match="already exists"):
    export_unicorn(synthetic_dir, str(out))
  assert (out / "keep.txt").read_text() == "mine"
  export_unicorn(synthetic_dir, str(out), overwrite=True)
  assert not (out / "keep.txt").exists() and (out / "train").is_dir()


def test_episode_ends_inside_segments_are_refused(synthetic_data, point_env, tmp_path):
  data = synthetic_data
  term = np.asarray(data.transitions.terminal).copy()
  term[0, 3] = 1.0  # an early termination the 20-row cut of their loader would not see
  bad = data.replace(transitions=data.transitions.replace(terminal=term))
  meta = {"env": "point_robot", "env_overrides": {}, "split": point_env.benchmark_split()}
  with pytest.raises(DatasetError, match="whole episodes"):
    export_unicorn(bad, str(tmp_path / "out"), meta=meta)
  assert not os.path.exists(tmp_path / "out")
  assert [p for p in os.listdir(tmp_path) if p.startswith(".unicorn-export")] == []



def _focal_read(data_dir, n_trj, epoch, tasks):
  """FOCAL-ICLR rl_algorithm.py init_buffer (sample=1), rewritten here: glob
  goal_idx*/trj_evalsample<n>_step<epoch>.npy for n < n_trj, keep the files of ``tasks``, read
  each as rows [obs, action, reward, next_obs], the last row of every file terminal."""
  import glob
  rows = {}
  for n in range(n_trj):
    for path in glob.glob(os.path.join(data_dir, "goal_idx*", f"trj_evalsample{n}_step{epoch}.npy")):
      k = int(path.split("/")[-2].split("goal_idx")[-1])
      if k not in tasks:
        continue
      trj = np.load(path, allow_pickle=True)
      term = [0] * trj.shape[0]
      term[-1] = 1
      rows.setdefault(k, {})[n] = (trj, term)
  return rows


def test_focal_export_reads_back_as_their_loader_reads_it(synthetic_dir, tmp_path):
  data, meta = load_dataset(synthetic_dir)
  out = str(tmp_path / "focal")
  written = export_focal(synthetic_dir, out)
  split = meta["split"]
  assert written == {"train": list(split["train"]), "test": list(split["test"])}
  h, n = data.segment_length, data.num_transitions
  tr = data.transitions
  rows = _focal_read(out, n // h, 600000, set(split["train"]) | set(split["test"]))
  assert sorted(rows) == sorted(set(split["train"]) | set(split["test"]))
  k = split["test"][1]
  assert sorted(rows[k]) == list(range(n // h))
  trj, term = rows[k][3]  # their file 3 of task k is our segment 3: rows 3h .. 4h-1
  assert trj.shape == (h, 4) and term[-1] == 1 and sum(term) == 1
  for t in (0, h - 1):
    np.testing.assert_array_equal(trj[t, 0], np.asarray(tr.obs[k, 3 * h + t], np.float32))
    np.testing.assert_array_equal(trj[t, 1], np.asarray(tr.action[k, 3 * h + t], np.float32))
    assert trj[t, 2] == pytest.approx(float(tr.reward[k, 3 * h + t]))
    np.testing.assert_array_equal(trj[t, 3], np.asarray(tr.next_obs[k, 3 * h + t], np.float32))
  record = open(os.path.join(out, "jcomrl_export.json")).read()
  assert '"layout": "focal"' in record and f'"n_trj": {n // h}' in record


def test_focal_export_refuses_early_ends_and_keeps_existing(synthetic_data, point_env, tmp_path):
  meta = {"env": "point_robot", "env_overrides": {}, "split": point_env.benchmark_split()}
  term = np.asarray(synthetic_data.transitions.terminal).copy()
  term[1, 2] = 1.0
  bad = synthetic_data.replace(transitions=synthetic_data.transitions.replace(terminal=term))
  with pytest.raises(DatasetError, match="whole episodes"):
    export_focal(bad, str(tmp_path / "out"), meta=meta)
  assert not os.path.exists(tmp_path / "out")
  keep = tmp_path / "mine"
  keep.mkdir()
  with pytest.raises(DatasetError, match="already exists"):
    export_focal(synthetic_data, str(keep), meta=meta)
  assert keep.is_dir() and not os.listdir(keep)


def test_the_converter_exports_focal_layout_and_says_how_to_point_focal_at_it(synthetic_dir,
                                                                               tmp_path):
  from experiments import convert
  from jcomrl.data.official_layout import read_export_record
  data, meta = load_dataset(synthetic_dir)
  out = str(tmp_path / "focal")
  msg = convert.convert(None, "focal", [synthetic_dir], out, segment_length=None)
  n_trj = data.num_transitions // data.segment_length
  assert f"n_trj={n_trj}" in msg and "train_epoch=eval_epoch=600000" in msg
  record = read_export_record(out)
  assert record["split"] == {"train": list(meta["split"]["train"]),
                             "test": list(meta["split"]["test"])}
  assert len(os.listdir(os.path.join(out, f"goal_idx{meta['split']['test'][0]}"))) == n_trj
