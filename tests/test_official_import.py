"""Import of the official COMRL codes' offline data (``jcomrl.data.official_import``,
``experiments.convert --from=unicorn|corro|focal|csro|macaw``).

The writers here follow the official collectors and loaders line by line (cited) and never call
the importer's helpers; each import is checked against every array, goal and split they wrote.
Round trips through ``official_layout``'s exports are bit-exact, and bad input ends in one line.
"""

import concurrent.futures
import hashlib
import json
import os
import pickle
import subprocess
import sys

import h5py
import jax
import numpy as np
import pytest

from experiments import cli
from jcomrl import envs
from jcomrl.data.dataset import DatasetError, OfflineDataset, episode_ids, load_dataset
from jcomrl.data.official_import import OFFICIAL_ENVS, import_official
from jcomrl.data.official_layout import export_focal, export_unicorn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNICORN_KEYS = ("obs", "actions", "rewards", "next_obs", "terminals")


# ---------------------------------------------------------------------------- writers


def _unicorn_name(seed, goal):
  """CORRO/UNICORN learner.py:52-53 'seed_{}_'.format(seed) + offline_utils.py:50-62
  create_goal_path_ext_from_goal: 'goal' + '_' + str(part.round(3)) for every part."""
  goal = np.asarray(goal, np.float64)
  parts = [goal] if goal.ndim == 0 else list(goal)
  return "seed_{}_".format(seed) + "goal" + "".join("_" + str(p.round(3)) for p in parts)


def _write_unicorn_task(data_dir, seed, goal, rng, *, traj_len, n_traj, obs_dim, act_dim,
                        three_d=False):
  """CORRO learner.py:521-531 save_buffer: float64 buffers [N, d], rewards and terminals
  [N, 1], np.save without the .npy suffix; config_utils.py:7-14 writes online_config.json.
  ``three_d``: [trajectory_len, num_trajs, d] files (offline_utils.py:191-202)."""
  n = traj_len * n_traj
  a = {"obs": rng.normal(size=(n, obs_dim)), "actions": rng.uniform(-1, 1, (n, act_dim)),
       "rewards": rng.normal(size=(n, 1)), "next_obs": rng.normal(size=(n, obs_dim)),
       "terminals": np.zeros((n, 1))}
  d = os.path.join(data_dir, _unicorn_name(seed, goal))
  os.makedirs(d)
  for key in UNICORN_KEYS:
    v = a[key]
    if three_d:
      v = v.reshape(n_traj, traj_len, v.shape[-1]).transpose(1, 0, 2)
    np.save(os.path.join(d, key), v)
  with open(os.path.join(d, "online_config.json"), "w") as f:
    json.dump({"seed": seed}, f)
  return a


def _check_unicorn_task(data, row, a, traj_len):
  """Row ``row`` holds the written arrays, cast to float32 as load_transitions does."""
  tr = data.transitions
  np.testing.assert_array_equal(tr.obs[row], a["obs"].astype(np.float32))
  np.testing.assert_array_equal(tr.action[row], a["actions"].astype(np.float32))
  np.testing.assert_array_equal(tr.reward[row], a["rewards"][:, 0].astype(np.float32))
  np.testing.assert_array_equal(tr.next_obs[row], a["next_obs"].astype(np.float32))
  np.testing.assert_array_equal(tr.terminal[row], a["terminals"][:, 0])
  n = a["obs"].shape[0]
  assert np.flatnonzero(tr.timeout[row]).tolist() == list(range(traj_len - 1, n, traj_len))
  assert data.episode_id[row].tolist() == [i // traj_len for i in range(n)]


def _focal_trajectory(rng, t, obs_dim, act_dim):
  """CSRO/FOCAL rlkit/torch/sac/pytorch_sac/train.py:116-128: trj.append([obs, action, reward,
  new_obs]) per step of an episode, saved as an object array [T, 4] (float64 observations from
  the MuJoCo env, float32 actions from the agent, Python float rewards)."""
  obs = rng.normal(size=(t + 1, obs_dim))
  trj = np.empty((t, 4), dtype=object)
  for i in range(t):
    trj[i, 0], trj[i, 1] = obs[i], rng.uniform(-1, 1, act_dim).astype(np.float32)
    trj[i, 2], trj[i, 3] = float(rng.normal()), obs[i + 1]
  return trj


def _write_focal(data_dir, goals, files, rng, *, t=3, obs_dim=20, act_dim=6, sample=True):
  """``data_dir/goal_idx<k>/trj_evalsample<n>_step<s>.npy`` (FOCAL rl_algorithm.py:108-114)
  for k in ``goals`` and (n, s) in ``files``; returns {(k, n, s): trajectory}."""
  out = {}
  for k in goals:
    d = os.path.join(data_dir, f"goal_idx{k}")
    os.makedirs(d, exist_ok=True)
    for n, s in files:
      out[k, n, s] = _focal_trajectory(rng, t, obs_dim, act_dim)
      name = f"trj_evalsample{n}_step{s}.npy" if sample else f"trj_eval{n}_step{s}.npy"
      np.save(os.path.join(d, name), out[k, n, s], allow_pickle=True)
  return out


def _check_focal_rows(data, row, trajectories):
  """Row ``row`` is the concatenation of ``trajectories`` with each one's last step ending its
  episode (their loader's terminal[-1] = 1, FOCAL rl_algorithm.py:153-154)."""
  tr = data.transitions
  obs = np.concatenate([np.stack(list(trj[:, 0])) for trj in trajectories])
  act = np.concatenate([np.stack(list(trj[:, 1])) for trj in trajectories])
  rew = np.concatenate([np.asarray(list(trj[:, 2])) for trj in trajectories])
  nxt = np.concatenate([np.stack(list(trj[:, 3])) for trj in trajectories])
  np.testing.assert_array_equal(tr.obs[row], obs.astype(np.float32))
  np.testing.assert_array_equal(tr.action[row], act)
  np.testing.assert_array_equal(tr.reward[row], rew.astype(np.float32))
  np.testing.assert_array_equal(tr.next_obs[row], nxt.astype(np.float32))
  ends = np.cumsum([trj.shape[0] for trj in trajectories]) - 1
  assert np.flatnonzero(tr.timeout[row]).tolist() == ends.tolist()
  assert not np.asarray(tr.terminal[row]).any()


def _sha(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------- UNICORN / CORRO


def test_unicorn_cheetah_vel_every_array_goal_and_the_official_split(tmp_path):
  data_dir = tmp_path / "batch_data" / "HalfCheetahVel-v0" / "data"
  rng = np.random.default_rng(0)
  seeds = rng.permutation(40)  # written in a shuffled order; seed 10 sorts after seed 9
  goals = {int(s): rng.uniform(0, 3) for s in seeds}
  written = {int(s): _write_unicorn_task(data_dir, int(s), goals[int(s)], rng, traj_len=4,
                                         n_traj=2, obs_dim=20, act_dim=6) for s in seeds}
  data, meta = import_official("unicorn", str(data_dir), segment_length=4)
  assert data.num_tasks == 40 and data.segment_length == 4
  for s in range(40):  # the order: by seed number
    _check_unicorn_task(data, s, written[s], 4)
    np.testing.assert_array_equal(data.task_params[s], np.float32([np.float64(goals[s])
                                                                   .round(3)]))
  # UNICORN offline_rl_config/args_cheetah_vel.py:13-14: the first 20 train, the other 20 eval
  assert meta["split"] == {"train": list(range(20)), "test": list(range(20, 40))}
  assert meta["env"] == "unicorn:HalfCheetahVel-v0" and not meta["task_table"][
      "rows_are_env_tasks"]
  task = meta["source"]["files"][3]
  assert task["name"] == _unicorn_name(3, goals[3])
  assert task["ignored"] == ["online_config.json"]
  assert task["cast_to_float32"] == {k: "float64" for k in ("obs", "actions", "rewards",
                                                            "next_obs")}
  f = task["files"][2]
  assert f["name"].endswith("rewards.npy") and f["sha256"] == _sha(
      data_dir / _unicorn_name(3, goals[3]) / "rewards.npy")
  assert "seed" in meta["source"]["order_rule"]


def test_corro_walker_split_and_absolute_param_goals_are_kept_with_the_loss_recorded(tmp_path):
  data_dir = tmp_path / "WalkerRandParams-v0" / "data"
  rng = np.random.default_rng(1)
  goals = {s: np.round(rng.uniform(0, 5, 7), 3) for s in range(24)}
  goals[0][0] = 0.0  # the world body's mass (rand_param_envs base.py:94-97)
  for s in range(24):
    _write_unicorn_task(data_dir, s, goals[s], rng, traj_len=200, n_traj=1, obs_dim=3,
                        act_dim=2)
  data, meta = import_official("corro", str(data_dir))
  # CORRO offline_rl_config/args_walker_param.py:13-14: 16 train, 8 eval; 200-step trajectories
  assert meta["split"] == {"train": list(range(16)), "test": list(range(16, 24))}
  assert data.segment_length == 200
  np.testing.assert_array_equal(data.task_params, np.stack([goals[s] for s in range(24)])
                                .astype(np.float32))
  assert "absolute" in meta["task_params_lost"]


def test_unicorn_ant_dir_angles_in_3d_files_become_the_env_tasks(tmp_path):
  ant = envs.make("ant_dir", physics="c")
  table = np.asarray(jax.vmap(ant.task_vector)(ant.all_benchmark_tasks()), np.float32)
  theta = np.mod(np.arctan2(table[:, 1], table[:, 0]), 2 * np.pi)  # UNICORN ant_dir.py:45-52
  data_dir = tmp_path / "AntDir-v0" / "data"
  rng = np.random.default_rng(2)
  env_task = rng.permutation(40)  # seed s collected env task env_task[s]
  written = {s: _write_unicorn_task(data_dir, s, theta[env_task[s]], rng, traj_len=5, n_traj=2,
                                    obs_dim=27, act_dim=8, three_d=True) for s in range(40)}
  data, meta = import_official("unicorn", str(data_dir), env="ant_dir")
  assert data.segment_length == 5 and meta["task_table"]["rows_are_env_tasks"]
  np.testing.assert_array_equal(data.task_params, table)  # the env's exact task vectors
  for s in range(40):
    _check_unicorn_task(data, int(env_task[s]), written[s], 5)
  assert meta["split"] == {"train": sorted(env_task[:20].tolist()),
                           "test": sorted(env_task[20:].tolist())}
  assert meta["env"] == "ant_dir" and meta["env_overrides"] == {}


def test_goals_outside_the_env_table_keep_the_source_order_and_say_so(tmp_path):
  data_dir = tmp_path / "HalfCheetahVel-v0" / "data"
  rng = np.random.default_rng(3)
  for s, v in enumerate((0.1234, 2.5, 1.0)):
    _write_unicorn_task(data_dir, s, v, rng, traj_len=200, n_traj=1, obs_dim=20, act_dim=6)
  data, meta = import_official("unicorn", str(data_dir), env="cheetah_vel", test_tasks=[1])
  table = meta["task_table"]
  assert not table["rows_are_env_tasks"] and table["env_rows"] == [None, None, None]
  np.testing.assert_array_equal(data.task_params, np.float32([[0.123], [2.5], [1.0]]))
  assert meta["split"] == {"train": [0, 2], "test": [1]}


def _dataset(env, seg=20, per_task=3, seed=0):
  """A native-looking dataset of ``env``'s benchmark tasks: whole episodes of ``seg`` steps, the
  time-limit end as timeout, task_params = the env's task vectors."""
  tp = np.asarray(jax.vmap(env.task_vector)(env.all_benchmark_tasks()), np.float32)
  t, n = tp.shape[0], seg * per_task
  rng = np.random.default_rng(seed)
  timeout = np.zeros((t, n), np.float32)
  timeout[:, seg - 1::seg] = 1
  terminal = np.zeros((t, n), np.float32)
  o, a = env.observation_size, env.action_size
  arrays = {"obs": rng.normal(size=(t, n, o)).astype(np.float32),
            "action": rng.uniform(-1, 1, (t, n, a)).astype(np.float32),
            "reward": rng.normal(size=(t, n)).astype(np.float32),
            "next_obs": rng.normal(size=(t, n, o)).astype(np.float32), "terminal": terminal,
            "timeout": timeout, "checkpoint_id": np.zeros((t, n), np.int32),
            "episode_id": episode_ids(terminal, timeout), "task_params": tp}
  return OfflineDataset.from_arrays(arrays, seg)


def _assert_same(a, b):
  for key, v in a.arrays().items():
    w = b.arrays()[key]
    assert np.asarray(v).dtype == np.asarray(w).dtype, key
    np.testing.assert_array_equal(np.asarray(v), np.asarray(w), err_msg=key)
  assert a.segment_length == b.segment_length


@pytest.mark.parametrize("layout", ["unicorn", "focal"])
def test_export_then_import_is_bit_exact(layout, point_env, tmp_path):
  data = _dataset(point_env)
  meta = {"env": "point_robot", "env_overrides": {}, "split": point_env.benchmark_split()}
  out = str(tmp_path / "export")
  (export_unicorn if layout == "unicorn" else export_focal)(data, out, meta=meta)
  back, bmeta = import_official(layout, out)
  _assert_same(data, back)
  assert bmeta["split"] == meta["split"] and bmeta["env"] == "point_robot"
  assert bmeta["task_table"]["rows_are_env_tasks"]
  if layout == "unicorn":  # the directory names hold the parameters to 3 decimals
    for part in ("train", "test"):
      for name in os.listdir(os.path.join(out, part)):
        k = int(name.split("_")[1])
        goal = [float(g) for g in name.split("goal_")[-1].split("_")]
        np.testing.assert_allclose(goal, np.round(np.asarray(back.task_params[k], np.float64),
                                                  3), atol=1e-9)
  # without the export's record: the env's task table gives the same exact rows
  os.remove(os.path.join(out, "jcomrl_export.json"))
  test = {"test_tasks": meta["split"]["test"]} if layout == "focal" else {}
  back, bmeta = import_official(layout, out, env="point_robot", **test)
  _assert_same(data, back)
  assert bmeta["split"] == meta["split"] and bmeta["task_table"]["rows_are_env_tasks"]


def test_a_focal_export_keeps_its_own_task_table_not_focals(tmp_path):
  """cheetah_vel's default (unicorn) table exported to FOCAL's layout comes back with that table,
  not the focal variant FOCAL's goal indices would otherwise refer to."""
  cv = envs.make("cheetah_vel", physics="c")
  data = _dataset(cv, seg=4, per_task=2)
  meta = {"env": "cheetah_vel", "env_overrides": {}, "split": cv.benchmark_split()}
  export_focal(data, str(tmp_path / "f"), meta=meta)
  back, bmeta = import_official("focal", str(tmp_path / "f"))
  _assert_same(data, back)
  assert bmeta["env_overrides"] == {} and bmeta["task_table"]["rows_are_env_tasks"]


# ---------------------------------------------------------------------------- FOCAL / CSRO


def test_focal_cheetah_dir_files_steps_normaliser_split_and_goals(tmp_path):
  data_dir = tmp_path / "cheetah-dir"
  rng = np.random.default_rng(4)
  files = [(n, s) for n in range(3) for s in (100, 200)]
  trj = _write_focal(data_dir, [0, 1], files, rng)
  absmax = rng.uniform(1, 5, 20)
  np.savez(data_dir / "normalizer.npz", abs_max=absmax)  # launch_experiment.py:34-36
  data, meta = import_official("focal", str(data_dir), env="cheetah_dir")
  # FOCAL globs n, then step (rl_algorithm.py:106-114)
  order = [(n, s) for n in range(3) for s in (100, 200)]
  for k in (0, 1):
    _check_focal_rows(data, k, [trj[k, n, s] for n, s in order])
    assert data.checkpoint_id[k, ::3].tolist() == [[100, 200].index(s) for _, s in order]
    assert data.episode_id[k, ::3].tolist() == list(range(6))
  assert data.segment_length == 3 and meta["source"]["checkpoint_steps"] == [100, 200]
  # configs/cheetah-dir.json:3-4: 2 train and 2 eval tasks, the same two
  assert meta["split"] == {"train": [0, 1], "test": [0, 1]}
  # FOCAL rlkit/envs/half_cheetah_dir.py:27-28: the two tasks are directions -1 and +1
  np.testing.assert_array_equal(data.task_params, np.float32([[-1], [1]]))
  assert meta["env_overrides"] == {"variant": "focal"}
  assert meta["task_table"]["rows_are_env_tasks"]
  norm = meta["observation_normaliser"]
  assert norm["kind"] == "abs_max" and norm["obs_absmax"] == absmax.tolist()
  assert "step()" in norm["applies_to"] and not norm["applied_to_stored_data"]
  assert norm["source"]["sha256"] == _sha(data_dir / "normalizer.npz")


def test_focal_goal_index_is_the_row_of_their_seeded_task_table(tmp_path):
  data_dir = tmp_path / "data"
  rng = np.random.default_rng(5)
  trj = _write_focal(data_dir, [0, 1, 2], [(0, 600000), (1, 600000), (0, 100)], rng)
  data, meta = import_official("focal", str(data_dir), env="cheetah_vel", test_tasks=[2])
  # FOCAL rlkit/envs/half_cheetah_vel.py:55-56: np.random.seed(1337); uniform(0, 3, n_tasks)
  np.random.seed(1337)
  velocities = np.random.uniform(0.0, 3.0, size=(100,))
  np.testing.assert_allclose(data.task_params[:, 0], velocities[:3], rtol=1e-6)
  # configs/cheetah-vel.json:28: train_epoch 6e5, so the step-100 file is not read
  for k in range(3):
    _check_focal_rows(data, k, [trj[k, 0, 600000], trj[k, 1, 600000]])
  assert "goal_idx0/trj_evalsample0_step100.npy" in meta["source"]["ignored_files"]
  assert meta["split"] == {"train": [0, 1], "test": [2]}
  assert meta["task_table"]["rows_are_env_tasks"]


def test_focal_rand_param_log_txt_gives_the_goals(tmp_path):
  data_dir = tmp_path / "walker"
  rng = np.random.default_rng(6)
  _write_focal(data_dir, [0, 1], [(0, 5)], rng, obs_dim=3, act_dim=2)
  params = {}
  for k in (0, 1):  # a printed dict of arrays, as read by walker_rand_params_wrapper.py:6-33
    params[k] = {"body_mass": rng.uniform(0, 5, (3, 1)), "geom_friction": rng.uniform(0, 2, (2, 3))}
    (data_dir / f"goal_idx{k}" / "log.txt").write_text(repr(params[k]))
  data, meta = import_official("focal", str(data_dir), test_tasks=[1])
  for k in (0, 1):
    want = np.concatenate([v.ravel() for v in params[k].values()])
    np.testing.assert_allclose(data.task_params[k], want.astype(np.float32), rtol=1e-6)
  assert "absolute" in meta["task_params_lost"]


def test_csro_reads_step_major_and_a_missing_listed_file_is_an_error(tmp_path):
  data_dir = tmp_path / "my-csro"
  rng = np.random.default_rng(7)
  files = [(n, s) for s in (10, 20) for n in range(2)]
  trj = _write_focal(data_dir, [0, 1, 2], files, rng, t=2, obs_dim=2, act_dim=2)
  data, meta = import_official("csro", str(data_dir), test_tasks=[2])
  for k in range(3):  # CSRO rl_algorithm.py:105-108: for step j, for trajectory k
    _check_focal_rows(data, k, [trj[k, n, s] for s in (10, 20) for n in range(2)])
  assert meta["split"] == {"train": [0, 1], "test": [2]}
  np.testing.assert_array_equal(data.task_params, np.float32([[0], [1], [2]]))
  os.remove(data_dir / "goal_idx1" / "trj_evalsample1_step20.npy")
  with pytest.raises(DatasetError, match="missing trj_evalsample1_step20.npy"):
    import_official("csro", str(data_dir), test_tasks=[2])


def test_csro_interpolation_split_is_theirs():
  # CSRO launch_experiment.py:120-122 with configs/cheetah-vel.json:3-4 (30 train, 10 eval)
  gap = int(30 / 10) + 1
  eval_tasks = np.arange(0, 30 + 10, gap) + int(gap / 2)
  _, train, test = OFFICIAL_ENVS["csro"]["cheetah-vel"].split
  assert list(test) == eval_tasks.tolist()
  assert sorted(train) == sorted(set(range(40)) - set(eval_tasks.tolist()))
  assert {"train": list(train), "test": list(test)} == envs.evenly_spaced_split(40, 10)


# ---------------------------------------------------------------------------- MACAW


def _macaw_buffer(path, trajectories, discount=0.99):
  """MACAW src/utils.py ReplayBuffer.add_trajectory (239-267) for each trajectory, then save
  (226-237): every trajectory is written last step first, with MC returns and the bootstrap
  terms; terminals = the step's done."""
  cols = {k: [] for k in ("obs", "actions", "rewards", "mc_rewards", "terminals",
                          "terminal_obs", "terminal_discounts", "next_obs")}
  for trj in trajectories:
    mc, factor, terminal_obs = 0.0, 1.0, None
    for s, a, s2, r, done in trj[::-1]:
      terminal_obs = s2 if terminal_obs is None else terminal_obs
      factor *= discount
      mc = r + discount * mc
      for key, v in (("obs", s), ("actions", a), ("rewards", [r]), ("mc_rewards", [mc]),
                     ("terminals", [done]), ("terminal_obs", terminal_obs),
                     ("terminal_discounts", [factor]), ("next_obs", s2)):
        cols[key].append(v)
  with h5py.File(path, "w") as f:
    for key, v in cols.items():
      f.create_dataset(key, data=np.asarray(v, bool if key == "terminals" else np.float32))
    f.create_dataset("discount_factor", data=discount)


def _macaw_trajectories(rng, count, t, obs_dim, act_dim):
  out = []
  for _ in range(count):
    obs = rng.normal(size=(t + 1, obs_dim)).astype(np.float32)
    out.append([(obs[i], rng.uniform(-1, 1, act_dim).astype(np.float32), obs[i + 1],
                 float(np.float32(rng.normal())), i == t - 1) for i in range(t)])
  return out


def test_macaw_tasks_buffers_reversed_rows_and_split(tmp_path):
  data_dir = tmp_path / "cheetah_dir"
  os.makedirs(data_dir)
  rng = np.random.default_rng(8)
  trajectories = {}
  for i, direction in enumerate((-1, 1)):
    with open(data_dir / f"env_cheetah_dir_train_task{i}.pkl", "wb") as f:
      pickle.dump([{"direction": direction}], f)  # run.py:54-57 reads task_info[0]
    trajectories[i] = _macaw_trajectories(rng, 2, 4, 20, 6)
    _macaw_buffer(data_dir / f"buffers_cheetah_dir_train_{i}_sub_task_0.hdf5", trajectories[i])
  data, meta = import_official("macaw", str(data_dir))
  tr = data.transitions
  for i in (0, 1):  # the file reversed: the last trajectory first, each in time order
    steps = [step for trj in trajectories[i][::-1] for step in trj]
    np.testing.assert_array_equal(tr.obs[i], np.stack([s[0] for s in steps]))
    np.testing.assert_array_equal(tr.action[i], np.stack([s[1] for s in steps]))
    np.testing.assert_array_equal(tr.next_obs[i], np.stack([s[2] for s in steps]))
    np.testing.assert_array_equal(tr.reward[i], np.float32([s[3] for s in steps]))
    assert np.flatnonzero(tr.timeout[i]).tolist() == [3, 7] and not np.asarray(
        tr.terminal[i]).any()
  assert data.segment_length == 4
  # config/cheetah_dir/2tasks_offline.json:4-6: train and test tasks are both [0, 1]
  assert meta["split"] == {"train": [0, 1], "test": [0, 1]}
  np.testing.assert_array_equal(data.task_params, np.float32([[-1], [1]]))
  buf = meta["source"]["files"][0]["files"][1]
  assert buf["reversed"] and buf["dropped"] == ["discount_factor", "mc_rewards",
                                                "terminal_discounts", "terminal_obs"]


# ---------------------------------------------------------------------------- errors


def _unicorn_one(tmp_path, name="seed_0_goal_1.5", obs_dim=20, drop=None):
  d = tmp_path / "HalfCheetahVel-v0" / "data" / name
  os.makedirs(d)
  for key in UNICORN_KEYS:
    if key != drop:
      dim = {"obs": obs_dim, "next_obs": obs_dim, "actions": 6}.get(key, 1)
      np.save(d / key, np.zeros((200, dim)))
  return str(d.parent)


@pytest.fixture
def bad_inputs(tmp_path):
  """``{case: (argv, expected part of the one error line)}``."""
  macaw = tmp_path / "macaw"
  os.makedirs(macaw)
  with open(macaw / "env_cheetah_vel_train_task0.pkl", "wb") as f:
    pickle.dump([{"velocity": 1.0}], f)
  focal = tmp_path / "focal"
  os.makedirs(focal / "goal_idxA")
  out = f"--out={tmp_path / 'out'}"
  return {
      "no layout": (["--from=focal", f"--path={_unicorn_one(tmp_path / 'a')}", out],
                    "matches no focal layout (expected goal_idx<k>/trj_evalsample<n>_step<t>.npy "
                    "files); it looks like the unicorn/corro layout"),
      "missing file": (["--from=unicorn", f"--path={_unicorn_one(tmp_path / 'b', drop='rewards')}",
                        out], "missing rewards.npy"),
      "shape vs env": (["--from=unicorn", f"--path={_unicorn_one(tmp_path / 'c', obs_dim=5)}",
                        "--env=cheetah_vel", out],
                       "observations have 5 dims and actions 6, but env 'cheetah_vel'"),
      "goal name": (["--from=corro", f"--path={_unicorn_one(tmp_path / 'd', 'seed_0_goal_fast')}",
                     out], "'fast' is not a number"),
      "goal_idx name": (["--from=focal", f"--path={focal}", out],
                        "does not parse as goal_idx<k>"),
      "macaw buffer": (["--from=macaw", f"--path={macaw}", out], "missing file " + str(
          macaw / "buffers_cheetah_vel_train_0_sub_task_0.hdf5")),
      "overrides": (["--from=unicorn", f"--path={tmp_path}", "--env_overrides=[1]", out],
                    "must be a JSON object"),
      "steps on d4rl": (["--from=d4rl", f"--path={tmp_path}", "--steps=5", out],
                        "--steps applies to an import of an official layout"),
  }


def _convert_in_process(argv):
  from experiments import convert
  kw = dict(a[2:].split("=", 1) for a in argv)
  return convert.convert(kw.get("from"), kw.get("to"), [kw["path"]], kw["out"], env=kw.get("env"),
                         env_overrides=convert._env_overrides(kw.get("env_overrides")),
                         steps=convert._ints("steps", kw["steps"].split(","))
                         if "steps" in kw else None)


def test_bad_input_names_the_problem(bad_inputs, tmp_path):
  for name, (argv, pattern) in bad_inputs.items():
    with pytest.raises((DatasetError, cli.UsageError)) as err:
      _convert_in_process(argv)
    assert pattern in str(err.value), (name, str(err.value))
    assert "\n" not in str(err.value), name
  assert not os.path.exists(tmp_path / "out")


def test_cli_bad_input_is_one_line_exit_2_and_good_input_converts(bad_inputs, tmp_path):
  data_dir = tmp_path / "good" / "AntDir-v0" / "data"
  rng = np.random.default_rng(9)
  for s in range(3):
    _write_unicorn_task(data_dir, s, rng.uniform(0, 2 * np.pi), rng, traj_len=200, n_traj=1,
                        obs_dim=27, act_dim=8)
  out = tmp_path / "imported"
  runs = {name: bad_inputs[name][0] for name in ("missing file", "goal name")}
  runs["good"] = ["--from=corro", f"--path={data_dir}", f"--out={out}", "--test_tasks=2"]
  env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")

  def run(argv):
    return subprocess.run([sys.executable, "-m", "experiments.convert", *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False, timeout=300)

  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    results = dict(zip(runs, pool.map(run, runs.values())))
  for name in ("missing file", "goal name"):
    lines = results[name].stderr.strip().splitlines()
    assert results[name].returncode == 2, (name, results[name].stderr)
    assert len(lines) == 1 and lines[0].startswith("experiments.convert: error: "), lines
    assert bad_inputs[name][1] in lines[0]
  good = results["good"]
  assert good.returncode == 0, good.stderr
  assert "3 task(s) x 200 transitions from the corro layout" in good.stdout
  data, meta = load_dataset(str(out))
  assert meta["split"] == {"train": [0, 1], "test": [2]} and data.task_params.shape == (3, 2)


class _NotData:
  """An object whose unpickling would run code: the importer refuses it."""

  def __reduce__(self):
    return (os.getcwd, ())


def test_a_trajectory_file_that_is_not_plain_arrays_is_refused(tmp_path):
  d = tmp_path / "data" / "goal_idx0"
  os.makedirs(d)
  trj = np.empty((2, 4), dtype=object)
  trj[:] = 0.0
  trj[0, 0] = _NotData()
  np.save(d / "trj_evalsample0_step1.npy", trj, allow_pickle=True)
  with pytest.raises(DatasetError, match="does not unpickle as plain arrays.*posix.getcwd"):
    import_official("focal", str(tmp_path / "data"))
