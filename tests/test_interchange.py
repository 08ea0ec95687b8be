"""D4RL / Minari interchange: round trips are bit-exact, next observations are rebuilt as
d4rl.qlearning_dataset does, and the converter's bad inputs end in one line.

Every source file is written here with h5py in the exact layout (D4RL: flat datasets per file;
Minari 0.5.x: data/metadata.json + data/main_data.hdf5 with episode_<i> groups), so the tests
need neither the d4rl nor the minari package.
"""

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from jcomrl.data import interchange
from jcomrl.data.dataset import DatasetError, OfflineDataset, load_dataset, save_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "timeout", "checkpoint_id",
          "episode_id", "task_params")


def _write_h5(path, arrays, attrs=None):
  """``arrays``: ``{"name" or "group/name": array}``."""
  with h5py.File(path, "w") as f:
    for key, arr in arrays.items():
      f.create_dataset(key, data=arr)
    f.attrs.update(attrs or {})
  return str(path)


def _d4rl_arrays(rng, lengths, obs_dim=3, act_dim=2, ends=None, next_obs=False,
                 dtype=np.float32):
  """Episodes of the given lengths; ``ends[i]`` = "terminal" | "timeout" ends episode i."""
  n = sum(lengths)
  ends = ends or ["timeout"] * len(lengths)
  term, tout = np.zeros(n, bool), np.zeros(n, bool)
  last = np.cumsum(lengths) - 1
  for i, how in zip(last, ends):
    (term if how == "terminal" else tout)[i] = True
  obs = rng.normal(size=(n, obs_dim)).astype(dtype)
  out = {"observations": obs, "actions": rng.uniform(-1, 1, (n, act_dim)).astype(dtype),
         "rewards": rng.normal(size=n).astype(dtype), "terminals": term, "timeouts": tout}
  if next_obs:
    out["next_observations"] = rng.normal(size=(n, obs_dim)).astype(dtype)
  return out


def _assert_same(a: OfflineDataset, b: OfflineDataset):
  assert a.segment_length == b.segment_length
  for name in FIELDS:
    x, y = np.asarray(a.arrays()[name]), np.asarray(b.arrays()[name])
    assert x.dtype == y.dtype and x.shape == y.shape, name
    np.testing.assert_array_equal(x, y, err_msg=name)


def _native(num_tasks=3, segments=4, seg=10, seed=0) -> OfflineDataset:
  """A jcomrl dataset as collection writes it: a timeout at every segment end, some early
  terminations followed by a new episode in the same segment, several checkpoints."""
  rng = np.random.default_rng(seed)
  n = segments * seg
  term = np.zeros((num_tasks, n), np.float32)
  tout = np.zeros((num_tasks, n), np.float32)
  tout[:, seg - 1::seg] = 1.0
  term[0, 3] = term[1, 17] = term[2, 25] = 1.0
  ends = (term + tout) > 0
  ep = np.zeros((num_tasks, n), np.int32)
  ep[:, 1:] = np.cumsum(ends[:, :-1], axis=1)
  obs = rng.normal(size=(num_tasks, n, 4)).astype(np.float32)
  nxt = np.roll(obs, -1, axis=1)
  nxt[ends] = rng.normal(size=(int(ends.sum()), 4)).astype(np.float32)
  return OfflineDataset.from_arrays({
      "obs": obs, "action": rng.uniform(-1, 1, (num_tasks, n, 2)).astype(np.float32),
      "reward": rng.normal(size=(num_tasks, n)).astype(np.float32), "next_obs": nxt,
      "terminal": term, "timeout": tout,
      "checkpoint_id": np.repeat(np.arange(segments, dtype=np.int32), seg)[None].repeat(
          num_tasks, 0),
      "episode_id": ep, "task_params": rng.uniform(size=(num_tasks, 2)).astype(np.float32)},
      seg)


NATIVE_META = {"env": "point_robot", "env_overrides": {}, "quality": "mixed",
               "split": {"train": [0, 1], "test": [2]},
               "normalisation": {"random": -20.0, "expert": -5.0}}


# ---------------------------------------------------------------------------- D4RL


def test_next_observations_rebuilt_like_qlearning_dataset(tmp_path):
  # Episode 0: rows 0-2, ends by termination; episode 1: rows 3-5, ends by the time limit.
  path = _write_h5(tmp_path / "two.hdf5", {
      "observations": np.array([[0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [5, 15]],
                               np.float32),
      "actions": np.array([[0.0], [0.1], [0.2], [0.3], [0.4], [0.5]], np.float32),
      "rewards": np.array([0, 1, 2, 3, 4, 5], np.float32),
      "terminals": np.array([0, 0, 1, 0, 0, 0], bool),
      "timeouts": np.array([0, 0, 0, 0, 0, 1], bool),
      "infos/qpos": np.zeros((6, 3), np.float32)})
  with pytest.raises(DatasetError, match="episode lengths vary from 2 to 3 steps"):
    interchange.import_d4rl(path)
  data, meta = interchange.import_d4rl(path, segment_length=1)
  t = data.transitions
  # Row 5 (the timeout) has no successor in the file: dropped; row 4 now ends episode 1 by a
  # timeout. The terminal row 2 keeps its own observation as next_obs.
  np.testing.assert_array_equal(t.obs[0], [[0, 10], [1, 11], [2, 12], [3, 13], [4, 14]])
  np.testing.assert_array_equal(t.next_obs[0], [[1, 11], [2, 12], [2, 12], [4, 14], [5, 15]])
  np.testing.assert_array_equal(t.action[0], np.float32([[0.0], [0.1], [0.2], [0.3], [0.4]]))
  np.testing.assert_array_equal(t.reward[0], [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(t.terminal[0], [0, 0, 1, 0, 0])
  np.testing.assert_array_equal(t.timeout[0], [0, 0, 0, 0, 1])
  np.testing.assert_array_equal(data.episode_id[0], [0, 0, 0, 1, 1])
  np.testing.assert_array_equal(data.checkpoint_id[0], [0, 0, 0, 0, 0])
  np.testing.assert_array_equal(data.task_params, [[0.0]])
  src = meta["source"]["files"][0]
  assert src["dropped_no_successor"] == 1 and src["next_observations"] == "rebuilt"
  assert src["dropped_infos"] == ["infos/qpos"] and len(src["sha256"]) == 64
  assert meta["split"] == {"train": [0], "test": [0]}  # one task: trained and tested on
  saved = save_dataset(str(tmp_path / "one_task"), data, meta)
  _assert_same(data, load_dataset(saved)[0])


def test_a_file_cut_mid_episode_drops_its_last_row(tmp_path):
  path = _write_h5(tmp_path / "cut.hdf5", {
      "observations": np.arange(4, dtype=np.float32)[:, None],
      "actions": np.zeros((4, 1), np.float32), "rewards": np.zeros(4, np.float32),
      "terminals": np.zeros(4, bool), "timeouts": np.zeros(4, bool)})
  data, meta = interchange.import_d4rl(path)
  np.testing.assert_array_equal(data.transitions.next_obs[0, :, 0], [1, 2, 3])
  np.testing.assert_array_equal(data.transitions.timeout[0], [0, 0, 1])
  assert data.segment_length == 3 and meta["source"]["files"][0]["dropped_no_successor"] == 1


@pytest.mark.parametrize("with_next", [True, False])
def test_d4rl_import_export_import_is_bit_exact(tmp_path, with_next):
  rng = np.random.default_rng(1)
  src = _d4rl_arrays(rng, [7, 5, 9, 3], ends=["terminal", "timeout", "timeout", "terminal"],
                     next_obs=with_next)
  src["infos/goal"] = np.zeros((24, 2), np.float32)
  path = _write_h5(tmp_path / "hopper.hdf5", src)
  first, meta = interchange.import_d4rl(path, segment_length=4)
  out = tmp_path / "export"
  files = interchange.export_d4rl(first, str(out), meta=meta)
  assert [os.path.basename(f) for f in files] == ["task_000.hdf5"]
  second, meta2 = interchange.import_d4rl(files)
  _assert_same(first, second)
  assert meta2["env"] == meta["env"] == "d4rl:hopper" and meta2["split"] == meta["split"]
  assert meta2["source"]["segment_length_rule"] == "recorded by the jcomrl export"
  with h5py.File(files[0], "r") as f:
    for key in ("observations", "actions", "rewards", "next_observations"):
      assert f[key].dtype == np.float32
    assert f["terminals"].dtype == bool and f["timeouts"].dtype == bool
    if with_next:  # nothing dropped or trimmed (24 = 6 x 4): the file's own arrays come back
      for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                  "timeouts"):
        np.testing.assert_array_equal(f[key][()], src[key], err_msg=key)
  if not with_next:
    assert meta["source"]["files"][0]["dropped_no_successor"] == 2
    assert meta["source"]["trimmed_per_task"] == [2]  # 22 kept -> 20 = 5 segments of 4


def test_float64_sources_are_cast_to_float32_and_recorded(tmp_path):
  rng = np.random.default_rng(2)
  src = _d4rl_arrays(rng, [5, 5], next_obs=True, dtype=np.float64)
  path = _write_h5(tmp_path / "f64.hdf5", src)
  data, meta = interchange.import_d4rl(path)
  assert data.transitions.obs.dtype == np.float32
  np.testing.assert_array_equal(data.transitions.obs[0], src["observations"].astype(np.float32))
  assert meta["source"]["files"][0]["cast_to_float32"] == {
      "observations": "float64", "actions": "float64", "rewards": "float64",
      "next_observations": "float64"}
  huge = dict(src, rewards=np.full(10, 1e300))
  with pytest.raises(DatasetError, match="rewards holds 10 non-finite values"):
    interchange.import_d4rl(_write_h5(tmp_path / "huge.hdf5", huge))


def test_native_dataset_d4rl_round_trip_is_bit_exact(tmp_path):
  native = _native()
  ddir = save_dataset(str(tmp_path / "native"), native, NATIVE_META)
  out = tmp_path / "d4rl"
  files = interchange.export_d4rl(ddir, str(out))
  assert len(files) == 3
  back, meta = interchange.import_d4rl(str(out))  # the directory: its files in name order
  _assert_same(load_dataset(ddir)[0], back)
  for key in ("env", "env_overrides", "quality", "split", "normalisation"):
    assert meta[key] == NATIVE_META[key], key
  assert meta["task_params_source"] == "infos/task_params"
  # The saved round trip too, and the export refuses to overwrite.
  save_dataset(str(tmp_path / "again"), back, meta)
  _assert_same(native, load_dataset(str(tmp_path / "again"))[0])
  before = {f: hashlib.sha1(open(f, "rb").read()).hexdigest() for f in files}
  with pytest.raises(DatasetError, match="task_000.hdf5 already exists"):
    interchange.export_d4rl(ddir, str(out))
  assert before == {f: hashlib.sha1(open(f, "rb").read()).hexdigest() for f in files}
  assert sorted(os.listdir(out)) == ["task_000.hdf5", "task_001.hdf5", "task_002.hdf5"]


def test_several_files_make_a_multi_task_dataset(tmp_path):
  rng = np.random.default_rng(3)
  paths = [_write_h5(tmp_path / f"t{i}.hdf5", _d4rl_arrays(rng, [5] * k, next_obs=True))
           for i, k in enumerate((6, 5, 8))]
  data, meta = interchange.import_d4rl(paths)
  assert data.num_tasks == 3 and data.num_transitions == 25 and data.segment_length == 5
  assert meta["source"]["trimmed_per_task"] == [5, 0, 15]
  assert meta["split"] == {"train": [0, 1], "test": [2]}
  np.testing.assert_array_equal(data.task_params, [[0.0], [1.0], [2.0]])
  with h5py.File(paths[2], "r") as f:
    np.testing.assert_array_equal(data.transitions.obs[2], f["observations"][:25])
  data, meta = interchange.import_d4rl(paths, test_tasks=[0])
  assert meta["split"] == {"train": [1, 2], "test": [0]}
  other = _write_h5(tmp_path / "other.hdf5", _d4rl_arrays(rng, [5], obs_dim=7, next_obs=True))
  with pytest.raises(DatasetError, match="disagree on observation/action size"):
    interchange.import_d4rl([paths[0], other])


# ---------------------------------------------------------------------------- Minari


def _write_minari(root, episodes, *, extra_infos=True, dataset_id="test/pointmaze-v0"):
  """A Minari 0.5.x hdf5 dataset directory ``root`` (``root/data/...``)."""
  data = os.path.join(root, "data")
  os.makedirs(data)
  with h5py.File(os.path.join(data, "main_data.hdf5"), "w", track_order=True) as f:
    for i, ep in enumerate(episodes):
      g = f.create_group(f"episode_{i}")
      g.attrs.update(id=i, total_steps=len(ep["rewards"]), seed=i)
      for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        g.create_dataset(key, data=ep[key])
      if extra_infos:
        g.create_dataset("infos/success", data=np.zeros(len(ep["rewards"]) + 1, bool))
  obs_dim, act_dim = episodes[0]["observations"].shape[1], episodes[0]["actions"].shape[1]
  box = lambda n, lo, hi: json.dumps({"type": "Box", "dtype": "float32", "shape": [n],
                                      "low": [lo] * n, "high": [hi] * n})
  meta = {"dataset_id": dataset_id, "total_episodes": len(episodes),
          "total_steps": sum(len(e["rewards"]) for e in episodes), "data_format": "hdf5",
          "observation_space": box(obs_dim, -np.inf, np.inf),
          "action_space": box(act_dim, -1.0, 1.0), "minari_version": "0.5.3"}
  with open(os.path.join(data, "metadata.json"), "w") as fh:
    json.dump(meta, fh)
  return str(root)


def _minari_episodes(rng, lengths, obs_dim=3, act_dim=2):
  eps = []
  for k, t in enumerate(lengths):
    term = np.zeros(t, bool)
    trunc = np.zeros(t, bool)
    (term if k % 2 == 0 else trunc)[-1] = True
    eps.append({"observations": rng.normal(size=(t + 1, obs_dim)).astype(np.float32),
                "actions": rng.uniform(-1, 1, (t, act_dim)).astype(np.float32),
                "rewards": rng.normal(size=t).astype(np.float32),
                "terminations": term, "truncations": trunc})
  return eps


def test_minari_round_trip_is_bit_exact(tmp_path):
  rng = np.random.default_rng(4)
  episodes = _minari_episodes(rng, [4, 6, 2])
  src = _write_minari(tmp_path / "src", episodes)
  first, meta = interchange.import_minari(src, segment_length=4)
  assert first.num_transitions == 12 and meta["env"] == "minari:test/pointmaze-v0"
  assert meta["source"]["files"][0]["dropped_infos"] == ["infos/success"]
  np.testing.assert_array_equal(first.episode_id[0], [0] * 4 + [1] * 6 + [2] * 2)
  np.testing.assert_array_equal(first.transitions.next_obs[0, :4], episodes[0]["observations"][1:])
  out = interchange.export_minari(first, str(tmp_path / "out"), meta=meta)
  assert [os.path.basename(p) for p in out] == ["task_000"]
  with h5py.File(os.path.join(out[0], "data", "main_data.hdf5"), "r") as f:
    assert sorted(f.keys()) == ["episode_0", "episode_1", "episode_2"]
    for i, ep in enumerate(episodes):
      g = f[f"episode_{i}"]
      assert g.attrs["total_steps"] == len(ep["rewards"])
      for key, arr in ep.items():
        assert g[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(g[key][()], arr, err_msg=f"episode_{i}/{key}")
      assert g["infos/episode_id"].shape == (len(ep["rewards"]) + 1,)
  with open(os.path.join(out[0], "data", "metadata.json")) as fh:
    mmeta = json.load(fh)
  assert mmeta["total_episodes"] == 3 and mmeta["total_steps"] == 12
  assert mmeta["data_format"] == "hdf5" and mmeta["minari_version"] == "0.5.3"
  assert json.loads(mmeta["observation_space"])["shape"] == [3]
  second, _ = interchange.import_minari(out[0])
  _assert_same(first, second)


def test_native_dataset_minari_round_trip_is_bit_exact(tmp_path, monkeypatch):
  native = _native(seed=5)
  out = str(tmp_path / "minari")
  dirs = interchange.export_minari(native, out, meta=NATIVE_META)
  back, meta = interchange.import_minari(out)  # the export directory: task_000/, ...
  _assert_same(native, back)
  assert meta["split"] == NATIVE_META["split"] and meta["env"] == "point_robot"
  with pytest.raises(DatasetError, match="task_000 already exists"):
    interchange.export_minari(native, out, meta=NATIVE_META)
  assert sorted(os.listdir(out)) == ["task_000", "task_001", "task_002"]  # no temp left over
  minari = pytest.importorskip("minari")
  ds = minari.MinariDataset(os.path.join(dirs[1], "data"))
  assert ds.total_episodes == int(np.unique(native.episode_id[1]).size)
  assert ds.total_steps == native.num_transitions
  steps = np.concatenate([ep.rewards for ep in ds.iterate_episodes()])
  np.testing.assert_array_equal(steps, native.transitions.reward[1])
  ep0 = next(iter(ds.iterate_episodes()))
  np.testing.assert_array_equal(ep0.observations[:-1], native.transitions.obs[1, :len(ep0)])
  # minari.load_dataset by id, from a datasets root laid out as <namespace>/<name>-v<N>/data.
  monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
  os.makedirs(tmp_path / "root" / "jcomrl")
  os.symlink(dirs[1], tmp_path / "root" / "jcomrl" / "point_robot_task001-v0")
  loaded = minari.load_dataset("jcomrl/point_robot_task001-v0")
  assert loaded.spec.dataset_id == "jcomrl/point_robot_task001-v0"
  assert loaded.total_steps == native.num_transitions


def test_minari_layout_errors(tmp_path):
  rng = np.random.default_rng(6)
  eps = _minari_episodes(rng, [3, 3])
  eps[1]["observations"] = eps[1]["observations"][:3]  # T rows instead of T + 1
  bad = _write_minari(tmp_path / "bad", eps)
  with pytest.raises(DatasetError, match="episode_1: observations has 3 rows"):
    interchange.import_minari(bad)
  with pytest.raises(DatasetError, match="no Minari dataset directory"):
    interchange.import_minari(str(tmp_path / "missing"))


# ---------------------------------------------------------------------------- command line


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
  return subprocess.run([sys.executable, "-m", "experiments.convert", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, check=False, timeout=300)


def _snapshot(path):
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      with open(os.path.join(root, name), "rb") as f:
        out[os.path.relpath(os.path.join(root, name), path)] = hashlib.sha1(f.read()).hexdigest()
  return out


@pytest.fixture
def bad_inputs(tmp_path):
  """``(cases, protected dirs, fresh out)``: each case is ``(argv, expected message part)``."""
  rng = np.random.default_rng(7)
  good = _write_h5(tmp_path / "good.hdf5", _d4rl_arrays(rng, [5, 5], next_obs=True))
  no_timeouts = {k: v for k, v in _d4rl_arrays(rng, [5]).items() if k != "timeouts"}
  no_timeouts = _write_h5(tmp_path / "old.hdf5", no_timeouts)
  flat = _write_h5(tmp_path / "flat.hdf5", dict(_d4rl_arrays(rng, [5]),
                                                actions=np.zeros(5, np.float32)))
  nan = _d4rl_arrays(rng, [5])
  nan["observations"][2, 1] = np.nan
  nan = _write_h5(tmp_path / "nan.hdf5", nan)
  existing = save_dataset(str(tmp_path / "existing"), _native(), NATIVE_META)
  exported = tmp_path / "exported"
  interchange.export_d4rl(existing, str(exported))
  stranger = tmp_path / "stranger"
  os.makedirs(stranger)
  (stranger / "notes.txt").write_text("keep me")
  fresh = str(tmp_path / "fresh")
  cases = {
      "missing file": (["--from=d4rl", f"--path={tmp_path}/nope.hdf5", f"--out={fresh}"],
                       "no D4RL file at"),
      "missing key": (["--from=d4rl", f"--path={no_timeouts}", f"--out={fresh}"],
                      "missing dataset 'timeouts'"),
      "wrong shape": (["--from=d4rl", f"--path={flat}", f"--out={fresh}"],
                      "actions has shape [5]; expected [N, dim]"),
      "nan": (["--from=d4rl", f"--path={nan}", f"--out={fresh}"],
              "observations holds 1 non-finite values (NaN or inf, or beyond float32), the "
              "first in row 2"),
      "existing dataset": (["--from=d4rl", f"--path={good}", f"--out={existing}"],
                           "already exists; choose another --out or pass --overwrite"),
      "not a dataset": (["--from=d4rl", f"--path={good}", f"--out={stranger}", "--overwrite"],
                        "is not a jcomrl dataset"),
      "existing export": (["--to=d4rl", f"--path={existing}", f"--out={exported}"],
                          "task_000.hdf5 already exists"),
      "both directions": (["--from=d4rl", "--to=minari", f"--path={good}", f"--out={fresh}"],
                          "pass exactly one of --from"),
      "segment on export": (["--to=minari", f"--path={existing}", f"--out={fresh}",
                             "--segment_length=5"], "--segment_length applies to an import"),
  }
  return cases, (existing, str(exported), str(stranger)), fresh


def _convert_in_process(argv):
  """``experiments.convert.convert`` with the flags of ``argv`` (the checks the CLI runs)."""
  from experiments import convert
  kw = dict(a[2:].split("=", 1) if "=" in a else (a[2:], True) for a in argv)
  paths = [a.split("=", 1)[1] for a in argv if a.startswith("--path=")]
  return convert.convert(kw.get("from"), kw.get("to"), paths, kw["out"],
                         segment_length=int(kw["segment_length"]) if "segment_length" in kw
                         else None, overwrite=bool(kw.get("overwrite", False)))


def test_converter_errors_name_the_problem_and_keep_output(bad_inputs):
  from experiments import cli
  cases, protected, fresh = bad_inputs
  before = {p: _snapshot(p) for p in protected}
  for name, (argv, pattern) in cases.items():
    with pytest.raises((DatasetError, cli.UsageError)) as err:
      _convert_in_process(argv)
    assert pattern in str(err.value), (name, str(err.value))
  assert before == {p: _snapshot(p) for p in protected}
  assert not os.path.exists(fresh)


@pytest.mark.slow
def test_cli_bad_input_is_one_line_exit_2_and_good_input_converts(bad_inputs, tmp_path):
  cases, protected, fresh = bad_inputs
  rng = np.random.default_rng(8)
  paths = [_write_h5(tmp_path / f"task{i}.hdf5", _d4rl_arrays(rng, [4, 4, 4], next_obs=True))
           for i in range(2)]
  data_dir = str(tmp_path / "ds")
  runs = {name: cases[name][0] for name in ("missing key", "nan", "existing export")}
  runs["good"] = ["--from=d4rl", f"--path={paths[0]}", f"--path={paths[1]}",
                  f"--out={data_dir}", "--env=point_robot", "--normalisation=-20,-5"]
  before = {p: _snapshot(p) for p in protected}
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = dict(zip(runs, pool.map(lambda argv: _cli(*argv), runs.values())))
  for name, r in results.items():
    if name == "good":
      continue
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (name, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("experiments.convert: error: "), (name, lines)
    assert cases[name][1] in lines[0], (name, lines[0])
  assert before == {p: _snapshot(p) for p in protected}
  assert not os.path.exists(fresh)
  good = results["good"]
  assert good.returncode == 0, good.stderr
  assert "2 task(s) x 12 transitions, segment_length 4" in good.stdout
  data, meta = load_dataset(data_dir)
  assert meta["normalisation"] == {"random": -20.0, "expert": -5.0}
  assert meta["env"] == "point_robot" and meta["split"] == {"train": [0], "test": [1]}
  mdir = str(tmp_path / "minari")
  assert "wrote 2 minari task file(s)" in _convert_in_process(
      ["--to=minari", f"--path={data_dir}", f"--out={mdir}"])
  back, _ = interchange.import_minari(mdir)
  _assert_same(data, back)
