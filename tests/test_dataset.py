"""Dataset store: round trip, validation errors, atomic writes."""

import json
import os
import shutil

import numpy as np
import pytest

from jcomrl.data.dataset import DatasetError, load_dataset, save_dataset


def _copy(src, tmp_path):
  dst = os.path.join(tmp_path, "copy")
  shutil.copytree(src, dst)
  return dst


def test_round_trip(synthetic_dir, synthetic_data):
  ds, meta = load_dataset(synthetic_dir)
  for name, arr in synthetic_data.arrays().items():
    np.testing.assert_array_equal(ds.arrays()[name], np.asarray(arr), err_msg=name)
  assert ds.segment_length == 20 and meta["env"] == "point_robot"
  assert meta["split"]["test"][0] == 2


def test_episode_and_checkpoint_ids(synthetic_data):
  ep = np.asarray(synthetic_data.episode_id[0])
  # 3 snapshots x 4 episodes of 20 steps, no early termination: 12 episodes in order.
  np.testing.assert_array_equal(ep, np.repeat(np.arange(12), 20))
  np.testing.assert_array_equal(np.asarray(synthetic_data.checkpoint_id[0])[::80], [0, 1, 2])
  assert float(synthetic_data.transitions.timeout[0, 19]) == 1.0


@pytest.mark.parametrize("case, pattern", [
    ("missing_file", "missing array file reward.npy"),
    ("truncated", "obs.npy is truncated or corrupt"),
    ("checksum", "checksum mismatch for action.npy"),
    ("shape", "reward.npy has shape"),
    ("schema", "unknown dataset schema version 99"),
    ("no_meta", "has no meta.json"),
    ("bad_json", "is not valid JSON"),
])
def test_corruption_is_reported_by_name(synthetic_dir, tmp_path, case, pattern):
  d = _copy(synthetic_dir, tmp_path)
  meta_file = os.path.join(d, "meta.json")
  meta = json.load(open(meta_file))
  if case == "missing_file":
    os.remove(os.path.join(d, "reward.npy"))
  elif case == "truncated":
    f = os.path.join(d, "obs.npy")
    data = open(f, "rb").read()
    open(f, "wb").write(data[: len(data) // 2])
  elif case == "checksum":
    arr = np.load(os.path.join(d, "action.npy"))
    arr[0, 0, 0] += 1.0
    np.save(os.path.join(d, "action.npy"), arr)
  elif case == "shape":
    np.save(os.path.join(d, "reward.npy"), np.zeros((3, 5), np.float32))
  elif case == "schema":
    meta["schema_version"] = 99
    json.dump(meta, open(meta_file, "w"))
  elif case == "no_meta":
    os.remove(meta_file)
  elif case == "bad_json":
    open(meta_file, "w").write("{not json")
  with pytest.raises(DatasetError, match=pattern):
    load_dataset(d)


def test_wrong_env_is_refused(synthetic_dir):
  with pytest.raises(DatasetError, match="holds data of env 'point_robot', expected 'cheetah_vel'"):
    load_dataset(synthetic_dir, expect_env="cheetah_vel")


def test_save_is_atomic_and_never_loses_the_old_dataset(synthetic_dir, synthetic_data, tmp_path):
  d = _copy(synthetic_dir, tmp_path)
  meta = {"env": "point_robot", "split": {"train": [0, 1], "test": [2]}}
  with pytest.raises(DatasetError, match="already exists"):
    save_dataset(d, synthetic_data, meta)

  def crash(tmp):
    raise RuntimeError("killed mid-write")

  with pytest.raises(RuntimeError):
    save_dataset(d, synthetic_data, meta, overwrite=True, extra_writer=crash)
  load_dataset(d)  # the previous dataset is intact
  assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]  # no temp dir left behind


def test_bad_split_is_refused(synthetic_data, tmp_path):
  with pytest.raises(DatasetError, match="outside the 40 tasks"):
    save_dataset(os.path.join(tmp_path, "x"), synthetic_data,
                 {"env": "point_robot", "split": {"train": [0, 99], "test": [1]}})


@pytest.mark.parametrize("bad", [40, -1])
def test_split_boundary_rows_are_refused(synthetic_dir, synthetic_data, tmp_path, bad):
  """Row ``num_tasks`` (40) and -1 are outside the tasks, on save and on load (a gather at row 40
  would clamp to task 39 on device instead of failing); rows 0 and 39 are inside."""
  meta = {"env": "point_robot", "split": {"train": [0, 1], "test": [39, bad]}}
  with pytest.raises(DatasetError, match="outside the 40 tasks"):
    save_dataset(os.path.join(tmp_path, "x"), synthetic_data, meta)
  d = _copy(synthetic_dir, tmp_path)
  with open(os.path.join(d, "meta.json")) as f:
    m = json.load(f)
  m["split"] = {"train": [0, 1], "test": [39]}
  with open(os.path.join(d, "meta.json"), "w") as f:
    json.dump(m, f)
  assert load_dataset(d)[1]["split"]["test"] == [39]
  m["split"] = {"train": [bad, 1], "test": [39]}
  with open(os.path.join(d, "meta.json"), "w") as f:
    json.dump(m, f)
  with pytest.raises(DatasetError, match="outside the 40 tasks"):
    load_dataset(d)
