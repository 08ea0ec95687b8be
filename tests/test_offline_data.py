"""Single-task D4RL-style dataset families (issue 18, ``jcomrl.datagen.offline``): five qualities
from one per-task SAC run, their sizes and provenance, the anchors, and the single-task envs.

One tiny family (``offline_data.py:tiny``: hopper, 100-step episodes, 1,800 env steps) is built
once per session; the trainer is wrapped so the test can compare with what it recorded.
"""

import concurrent.futures
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import collect as collect_cli
from experiments.configs import offline_data as offline_config
from jcomrl import envs
from jcomrl.datagen import collect, offline, per_task_sac, pipeline, resumable
from jcomrl.data.dataset import (DatasetError, OfflineDataset, check_normalisation, load_dataset,
                                 save_dataset)
from jcomrl.data.sampler import sample_meta_batch, sample_trajectory
from jcomrl.eval import suite
from jcomrl.types import Transition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "timeout")


@pytest.fixture(scope="session")
def family(tmp_path_factory):
  """The tiny family written by the command's code path, in two calls: ``medium_replay`` alone
  (trains; the work directory stays for the other qualities), then ``all`` (must resume from the
  work directory without training). Also what the trainer returned."""
  c = offline_config.get_config("tiny")
  c.out = str(tmp_path_factory.mktemp("offline"))
  recorded = {}
  original = offline.per_task_sac.train_sac_per_task

  def spy(env, *args, **kwargs):
    if "policies" in recorded:
      raise AssertionError("trained twice: the second call must reuse the work directory")
    recorded["env"] = env
    recorded["policies"], recorded["replay"] = out = original(env, *args, **kwargs)
    return out

  offline.per_task_sac.train_sac_per_task = spy
  first, lines = c.copy_and_resolve_references(), []
  first.qualities = "medium_replay"
  try:
    collect_cli.generate(first, progress=lines.append)
    work_kept = sorted(os.listdir(os.path.join(c.out, "tiny.partial")))
    out = collect_cli.generate(c, progress=lines.append)
  finally:
    offline.per_task_sac.train_sac_per_task = original
  return {"config": c, "data": out, "lines": lines, "work_kept": work_kept, **recorded}


def _arrays(ds):
  return {k: np.asarray(v) for k, v in ds.arrays().items()}


def test_five_datasets_with_their_sizes(family):
  c, data = family["config"], family["data"]
  assert sorted(data) == sorted(offline.QUALITIES)
  policies = family["policies"]
  meta = data["medium"][1]
  medium_step = int(policies.steps[meta["offline"]["medium_snapshot"]])
  want = {"random": 300, "medium": 300, "expert": 300, "medium_expert": 600,
          "medium_replay": medium_step}
  for q, (ds, m) in data.items():
    assert os.path.isdir(offline.dataset_dir(c.out, "tiny", q))
    assert (ds.num_tasks, ds.num_transitions, ds.segment_length) == (1, want[q], 100), q
    assert m["quality"] == q and m["split"] == {"train": [0], "test": [0]}
    assert m["env"] == "hopper_param" and m["env_overrides"]["episode_length"] == 100
    assert os.path.isdir(os.path.join(c.out, f"tiny-{q}", pipeline.BEHAVIOUR_DIR))
  # Every quality was written from one run: same run key, returns and medium choice.
  keys = {json.dumps(m["offline"]["run"], sort_keys=True) for _, m in data.values()}
  assert len(keys) == 1
  assert policies.steps.tolist() == [0, 600, 1200, 1800]
  # The rollout datasets come from the snapshots they are named after.
  expert = meta["normalisation"]["best_snapshot"]
  assert meta["offline"]["expert_snapshot"] == expert
  assert set(np.unique(data["random"][0].checkpoint_id)) == {0}
  assert set(np.unique(data["expert"][0].checkpoint_id)) == {expert}
  assert set(np.unique(data["medium"][0].checkpoint_id)) == {meta["offline"]["medium_snapshot"]}
  # The first call kept the behaviour run for the other qualities; the second reused it (the
  # spy refuses a second training), kept medium_replay, and removed the work directory.
  assert {"behaviour", "replay.npz", "returns.json", "work.json"} <= set(family["work_kept"])
  assert any(s.startswith("resuming: reusing 4 behaviour snapshots") for s in family["lines"])
  assert any("tiny-medium_replay: already written by this run" in s for s in family["lines"])
  assert not os.path.exists(os.path.join(c.out, "tiny.partial"))


def test_medium_expert_is_medium_followed_by_expert(family):
  med, exp, me = (_arrays(family["data"][q][0]) for q in ("medium", "expert", "medium_expert"))
  for name in FIELDS + ("checkpoint_id",):
    np.testing.assert_array_equal(me[name], np.concatenate([med[name], exp[name]], axis=1),
                                  err_msg=name)
  n_med = int(med["episode_id"][0, -1]) + 1
  np.testing.assert_array_equal(me["episode_id"],
                                np.concatenate([med["episode_id"], exp["episode_id"] + n_med], 1))


def test_medium_replay_is_the_trainers_buffer_up_to_the_medium_snapshot(family):
  ds, meta = family["data"]["medium_replay"]
  replay, policies = family["replay"], family["policies"]
  m = meta["offline"]["medium_snapshot"]
  steps = int(policies.steps[m])
  assert replay.num_envs == 1 and replay.num_steps == int(policies.steps[-1])
  got = _arrays(ds)
  for name in FIELDS[:-1]:
    np.testing.assert_array_equal(got[name][0], np.asarray(getattr(replay.transitions,
                                                                   name))[0, :steps], err_msg=name)
  # Timeouts too, except that the last step (the episode running at the snapshot) ends the data.
  want = np.asarray(replay.transitions.timeout)[0, :steps].copy()
  want[-1] = max(want[-1], 1.0 - float(got["terminal"][0, -1]))
  np.testing.assert_array_equal(got["timeout"][0], want)
  # The warm-up's uniform actions come first; the buffer is a time-ordered run of episodes:
  # each next_obs is the following obs unless the episode ended there.
  ends = np.maximum(got["terminal"][0], got["timeout"][0])[:-1] > 0
  np.testing.assert_array_equal(got["next_obs"][0, :-1][~ends], got["obs"][0, 1:][~ends])
  assert ends.any()  # hopper falls and times out (100 steps)
  # checkpoint_id = the last snapshot taken before each step.
  np.testing.assert_array_equal(got["checkpoint_id"][0],
                                np.searchsorted(policies.steps, np.arange(steps), "right") - 1)


def test_medium_is_the_snapshot_closest_to_a_third_of_the_expert(family):
  metas = [m for _, m in family["data"].values()]
  off = metas[0]["offline"]
  returns = np.asarray(off["snapshot_returns"])
  assert all(m["offline"]["snapshot_returns"] == off["snapshot_returns"] for m in metas)
  best = off["expert_snapshot"]
  target = returns[best] / 3.0
  assert off["medium_target"] == pytest.approx(target)
  others = np.asarray([k for k in range(1, len(returns)) if k != best])
  assert off["medium_snapshot"] == int(others[np.argmin(np.abs(returns[others] - target))])
  assert off["medium_return"] == returns[off["medium_snapshot"]]
  # The rule itself, on made-up returns: the target is a fraction of the best snapshot's
  # return; candidates are all but the untrained and the best snapshot; ties: the first.
  assert offline.medium_snapshot(np.array([0.0, 10.0, 31.0, 40.0, 90.0])) == (2, 30.0)
  assert offline.medium_snapshot(np.array([0.0, 10.0, 31.0, 31.0, 90.0])) == (2, 30.0)
  # best in the middle (90 at 2): target 30; 20 (off by 10) loses to the final 33 (off by 3)
  assert offline.medium_snapshot(np.array([0.0, 20.0, 90.0, 33.0])) == (3, 30.0)
  # best = untrained (50): target 50/3; of 1, 1, 3 the last is nearest
  assert offline.medium_snapshot(np.array([50.0, 1.0, 1.0, 3.0]))[0] == 3
  assert offline.medium_snapshot(np.array([0.0, 0.0, 99.0]), 0.5) == (1, 49.5)
  # an explicit expert (the anchor's choice) wins over the argmax
  assert offline.medium_snapshot(np.array([0.0, 30.0, 60.0, 90.0]), expert=2) == (1, 20.0)


def test_anchors_are_the_untrained_and_best_snapshots_in_the_recorded_mode(family):
  """0 = the untrained snapshot, 100 = the best one (the last one's return beside it), measured
  in the config's ``anchor_policy``, recorded in ``normalisation.policy``; the other mode's
  returns are kept. The tiny family anchors stochastically (see ``offline_data.get_config``);
  every other variant as the single-task evaluation acts, deterministically
  (``suite.iid_results``' episodes)."""
  c = family["config"]
  assert c.anchor_policy == "stochastic"
  assert {offline_config.get_config(v).anchor_policy for v in offline_config.variants()
          if not v.startswith("tiny")} == {"deterministic"}
  metas = {q: m for q, (_, m) in family["data"].items()}
  # The snapshots saved with every dataset are the trained ones ...
  env, trained = family["env"], family["policies"]
  for q in offline.QUALITIES:
    saved = pipeline.load_behaviour(offline.dataset_dir(c.out, "tiny", q), env)
    assert saved.steps.tolist() == trained.steps.tolist()
    jax.tree.map(np.testing.assert_array_equal, saved.params,
                 jax.tree.map(np.asarray, trained.params))
  # ... evaluated here again, both ways, with the family's evaluation key (the trainer's env
  # and policy: the compiled evaluation rollout is reused).
  key = jax.random.fold_in(jax.random.key(c.seed), 2)
  tasks = env.all_benchmark_tasks()
  det, sto = (np.asarray(collect.snapshot_returns(env, trained, tasks, key, c.return_episodes,
                                                  deterministic=d)[:, 0], np.float64)
              for d in (True, False))
  best = int(np.argmax(sto))
  want = {"random": sto[0], "expert": sto[best], "best_snapshot": best, "last": sto[-1],
          "policy": "stochastic"}
  for q, m in metas.items():
    check_normalisation(q, m)
    assert m["normalisation"].keys() == want.keys(), q
    for k, v in want.items():
      assert m["normalisation"][k] == (v if isinstance(v, str) else
                                       pytest.approx(v, rel=1e-6, abs=1e-6)), (q, k)
    np.testing.assert_allclose(m["offline"]["snapshot_returns"], sto, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m["offline"]["snapshot_returns_deterministic"], det, rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(m["behaviour_snapshots"]["mean_return_deterministic"], det,
                               rtol=1e-6, atol=1e-6)
    assert m["offline"]["policy"] == m["behaviour_snapshots"]["policy"] == "stochastic"
    assert m["offline"]["expert_snapshot"] == best
  assert not np.allclose(det, sto)  # the two modes differ: which one is used matters
  # Scored as the anchors were measured, the untrained and the best snapshot are 0 and 100.
  scores = suite.normalise(sto[[0, best]], metas["expert"]["normalisation"])
  np.testing.assert_allclose(scores, [0.0, 100.0], atol=1e-3)
  assert sto[best] != sto[0]


def test_anchors_and_the_expert_data_follow_the_best_snapshot_of_the_anchor_mode(
    family, tmp_path, monkeypatch):
  """Made-up snapshot returns (the trainer replaced by the fixture's run): deterministic 5, 40,
  90, 60 and stochastic 1, 20, 50, 70. Deterministic anchors: 5 / 90 (snapshot 2, not the last),
  medium = snapshot 1 (40 nearest 90 / 3 = 30; 60 is off by 30); the expert dataset rolls
  snapshot 2. Stochastic anchors: 1 / 70 (snapshot 3), medium 1 (20 nearest 70 / 3)."""
  c = family["config"]
  fake = {True: [5.0, 40.0, 90.0, 60.0], False: [1.0, 20.0, 50.0, 70.0]}
  monkeypatch.setattr(offline.collect, "snapshot_returns",
                      lambda env, pol, tasks, key, episodes, deterministic=False:
                      np.asarray(fake[bool(deterministic)])[:, None])
  monkeypatch.setattr(offline.per_task_sac, "train_sac_per_task",
                      lambda *a, **k: (family["policies"], family["replay"]))
  kw = dict(behaviour_kwargs=collect_cli.behaviour_kwargs(c), transitions=c.transitions,
            return_episodes=c.return_episodes)
  out = offline.generate_family(str(tmp_path / "det"), "t", c.env, c.env_overrides.to_dict(),
                                qualities="expert", **kw)
  ds, meta = out["expert"]
  assert meta["normalisation"] == {"random": 5.0, "expert": 90.0, "best_snapshot": 2,
                                   "last": 60.0, "policy": "deterministic"}
  assert (meta["offline"]["expert_snapshot"], meta["offline"]["medium_snapshot"]) == (2, 1)
  assert meta["offline"]["medium_target"] == pytest.approx(30.0)
  assert meta["offline"]["snapshot_returns_stochastic"] == fake[False]
  assert set(np.unique(ds.checkpoint_id)) == {2}
  assert meta["offline"]["run"]["collection"]["anchor_policy"] == "deterministic"
  out = offline.generate_family(str(tmp_path / "sto"), "t", c.env, c.env_overrides.to_dict(),
                                qualities="medium_replay", anchor_policy="stochastic", **kw)
  meta = out["medium_replay"][1]
  assert meta["normalisation"] == {"random": 1.0, "expert": 70.0, "best_snapshot": 3,
                                   "last": 70.0, "policy": "stochastic"}
  assert (meta["offline"]["expert_snapshot"], meta["offline"]["medium_snapshot"]) == (3, 1)
  assert meta["offline"]["snapshot_returns_deterministic"] == fake[True]
  assert out["medium_replay"][0].num_transitions == int(family["policies"].steps[1])
  with pytest.raises(offline.ConfigError, match="anchor_policy='mean'"):
    offline.generate_family(str(tmp_path / "bad"), "t", c.env, c.env_overrides.to_dict(),
                            anchor_policy="mean", **kw)
  # The untrained snapshot the best (a hopper standing on its near-constant mean action): no
  # expert anchor, refused before any collection, the behaviour run kept for another try.
  fake[True] = [98.0, 74.0, 42.0, 98.0]
  with pytest.raises(DatasetError, match=r"no trained snapshot of family 't' beats the untrained "
                                         r"one with anchor_policy='deterministic' \(snapshot "
                                         r"returns \[98.0, 74.0, 42.0, 98.0\]\)"):
    offline.generate_family(str(tmp_path / "none"), "t", c.env, c.env_overrides.to_dict(),
                            **kw)
  assert sorted(os.listdir(tmp_path / "none")) == ["t.partial"]
  assert "chunks" not in os.listdir(tmp_path / "none" / "t.partial") or not os.listdir(
      tmp_path / "none" / "t.partial" / "chunks")


class Killed(Exception):
  pass


def test_the_family_trains_resumably_in_its_work_directory(family, tmp_path, monkeypatch):
  """The behaviour trainer gets ``<root>/<name>.partial/behaviour_ckpt`` as its checkpoint dir;
  a committed checkpoint there (env step 600) is announced as resumed, and the dir is deleted
  once the snapshots are saved. (The trainer's resume itself: test_behaviour_resume.py; the
  real thing end to end: test_a_killed_family_resumes_its_behaviour_training.)"""
  c = family["config"]
  ckpt = os.path.join(str(tmp_path), "t.partial", pipeline.BEHAVIOUR_CHECKPOINT_DIR)
  os.makedirs(ckpt)
  np.savez(os.path.join(ckpt, resumable.STATE_FILE), **{"state.steps": np.asarray(600)})
  calls = []

  def trainer(env, tasks, **kw):
    calls.append(kw.get("checkpoint_dir"))
    return family["policies"], family["replay"]

  monkeypatch.setattr(offline.per_task_sac, "train_sac_per_task", trainer)
  monkeypatch.setattr(offline.collect, "snapshot_returns",
                      lambda *a, **k: np.asarray([1.0, 20.0, 50.0, 70.0])[:, None])
  lines = []
  offline.generate_family(str(tmp_path), "t", c.env, c.env_overrides.to_dict(),
                          qualities="medium_replay", transitions=c.transitions,
                          behaviour_kwargs=collect_cli.behaviour_kwargs(c), message=lines.append)
  assert calls == [os.path.abspath(ckpt)]
  assert f"resuming sac_per_task behaviour training from env step 600 per task ({calls[0]})" \
      in lines
  assert not os.path.exists(ckpt)
  assert sorted(os.listdir(os.path.dirname(ckpt))) == ["behaviour", "chunks", "replay.npz",
                                                       "returns.json", "work.json"]


@pytest.mark.slow  # trains the tiny family again: two compilations of its C-physics trainer (~60 s)
def test_a_killed_family_resumes_its_behaviour_training(family, tmp_path):
  """Killed after the first snapshot interval's checkpoint (its progress line), the family's
  training resumes from env step 600 in ``<out>/tiny.partial/behaviour_ckpt`` and ends with the
  uninterrupted run's snapshots and replay: its ``medium_replay`` is the session family's."""
  c = family["config"].copy_and_resolve_references()
  c.out, c.qualities = str(tmp_path), "medium_replay"
  ckpt = os.path.join(c.out, "tiny.partial", pipeline.BEHAVIOUR_CHECKPOINT_DIR)

  def die(line):
    if line.startswith("behaviour step 600/"):
      raise Killed

  with pytest.raises(Killed):
    collect_cli.generate(c, progress=die)
  assert resumable.resume_step(ckpt) == 600
  lines = []
  out = collect_cli.generate(c, progress=lines.append)
  assert any(s.startswith(f"resuming sac_per_task behaviour training from env step 600 per task "
                          f"({os.path.abspath(ckpt)})") for s in lines), lines
  assert not any(s.startswith("behaviour step 600/") for s in lines)  # not trained again
  assert any(s.startswith("behaviour step 1,800/") for s in lines)
  # the checkpoint is gone once the snapshots are saved (the work dir stays for the others)
  assert not os.path.exists(ckpt)
  assert os.path.isdir(os.path.join(c.out, "tiny.partial", pipeline.BEHAVIOUR_DIR))
  ds, meta = out["medium_replay"]
  ref, ref_meta = family["data"]["medium_replay"]
  assert meta["offline"]["snapshot_returns"] == ref_meta["offline"]["snapshot_returns"]
  assert meta["normalisation"] == ref_meta["normalisation"]
  for name, x in _arrays(ref).items():
    np.testing.assert_array_equal(_arrays(ds)[name], x, err_msg=name)
  saved = pipeline.load_behaviour(offline.dataset_dir(c.out, "tiny", "medium_replay"),
                                  family["env"])
  jax.tree.map(np.testing.assert_array_equal, saved.params,
               jax.tree.map(np.asarray, family["policies"].params))


def test_one_task_datasets_load_and_sample(family):
  c = family["config"]
  for q in offline.QUALITIES:
    ds, meta = load_dataset(offline.dataset_dir(c.out, "tiny", q), expect_env="hopper_param")
    assert ds.observation_size == 11 and ds.action_size == 3  # gym Hopper-v2's spaces
    if q not in ("medium_replay", "medium_expert"):  # same shapes as medium_expert's halves
      continue
    dev = ds.to_device()
    pool = jnp.asarray(meta["split"]["train"], jnp.int32)
    mb = sample_meta_batch(jax.random.key(0), dev, pool, meta_batch_size=2, context_size=8,
                           context_mode="trajectory", rl_batch_size=16)
    assert mb.rl.obs.shape == (2, 16, ds.observation_size) and int(mb.task_index.max()) == 0
    traj = sample_trajectory(jax.random.key(1), dev, jnp.zeros((1,), jnp.int32))
    assert traj.reward.shape == (1, 100)


def test_rerun_keeps_the_family_and_other_runs_are_refused(family, monkeypatch):
  c = family["config"]
  monkeypatch.setattr(offline.per_task_sac, "train_sac_per_task",
                      lambda *a, **k: pytest.fail("a finished family must not retrain"))
  lines = []
  out = collect_cli.generate(c, progress=lines.append)
  assert sorted(out) == sorted(offline.QUALITIES)
  assert sum("already written by this run" in s for s in lines) == 5
  other = c.copy_and_resolve_references()
  other.seed = 1
  other.qualities = "expert"
  with pytest.raises(DatasetError, match="tiny-expert already exists"):
    collect_cli.generate(other, progress=lines.append)


def test_replay_layout_with_several_envs():
  """Two envs' interleaved buffer -> each env's stream in turn, whole segments, ends marked."""
  e, length = 2, 6
  idx = np.arange(e * length, dtype=np.float32)[None]  # stored index i * e + env
  zeros = np.zeros_like(idx)
  terminal = zeros.copy()
  terminal[0, 2 * e + 1] = 1.0  # env 1 terminates at its step 2
  tr = Transition(obs=idx[..., None], action=idx[..., None], reward=idx, next_obs=idx[..., None],
                  terminal=terminal, timeout=zeros)
  replay = per_task_sac.Replay(transitions=tr, num_envs=e)
  ds = offline.replay_dataset(replay, 8, [0, 4, 8, 12], np.zeros((1, 1)), segment_length=2)
  np.testing.assert_array_equal(ds.transitions.reward[0], [0, 2, 4, 6, 1, 3, 5, 7])
  np.testing.assert_array_equal(ds.transitions.timeout[0], [0, 0, 0, 1, 0, 0, 0, 1])
  np.testing.assert_array_equal(ds.checkpoint_id[0], [0, 0, 1, 1, 0, 0, 1, 1])
  np.testing.assert_array_equal(ds.episode_id[0], [0, 0, 0, 0, 1, 1, 1, 2])
  with pytest.raises(ValueError, match="whole number of 3-step segments"):
    offline.replay_dataset(replay, 8, [0, 4, 8, 12], np.zeros((1, 1)), segment_length=3)


def test_single_task_envs_match_the_gym_tasks():
  """Each family's overrides leave one task with gym's observation size and the stated task."""
  want_obs = {"halfcheetah": 17, "hopper": 11, "walker2d": 17, "ant": 27}
  for name, (env_name, overrides) in offline_config.ENVS.items():
    env, tasks = offline.single_task_env(env_name, dict(overrides, episode_length=1000))
    assert env.observation_size == want_obs[name] and env.episode_length == 1000, name
    assert env.benchmark_split() == {"train": [0], "test": [0]}, name
  cheetah, tasks = offline.single_task_env("cheetah_dir", offline_config.ENVS["halfcheetah"][1])
  assert float(tasks["direction"][0]) == 1.0 and cheetah.ctrl_cost_weight == 0.1
  hopper, tasks = offline.single_task_env("hopper_param", offline_config.ENVS["hopper"][1])
  assert all(np.all(np.asarray(v) == 1.0) for v in tasks.values())  # the unscaled model
  assert hopper.end_convention == "true_terminal" and hopper.alive_bonus == 1.0
  walker, _ = offline.single_task_env("walker_param", offline_config.ENVS["walker2d"][1])
  assert walker.frame_skip == 4 and walker.termination == "rand_param"
  ant, tasks = offline.single_task_env("ant_dir", offline_config.ENVS["ant"][1])
  assert float(tasks["angle"][0]) == 0.0 and ant.terminate and ant.survive_reward == 1.0
  # The gym observation of the cheetah is the PEARL one without the torso position.
  pearl = envs.make("cheetah_dir", variant="focal")
  key, task = jax.random.key(0), {"direction": jnp.float32(1.0)}
  s_gym = cheetah.step(cheetah.reset(key, task), jnp.full((6,), 0.3), task)
  s_pearl = pearl.step(pearl.reset(key, task), jnp.full((6,), 0.3), task)
  np.testing.assert_allclose(s_gym.obs, s_pearl.obs[:17], rtol=1e-6)
  # Reward v_x - 0.1 |a|^2 (gym HalfCheetah-v2), against v_x - 0.05 |a|^2 of the default.
  np.testing.assert_allclose(s_gym.reward, s_pearl.reward - 0.05 * 6 * 0.09, rtol=1e-5)
  with pytest.raises(offline.ConfigError, match="leave one benchmark task"):
    offline.single_task_env("cheetah_dir", {})
  with pytest.raises(ValueError, match="obs_mode"):
    envs.make("cheetah_dir", obs_mode="pixels")


def test_same_split_is_allowed_other_overlaps_are_not(tmp_path):
  one = OfflineDataset(
      transitions=Transition(obs=np.zeros((1, 4, 2)), action=np.zeros((1, 4, 1)),
                             reward=np.zeros((1, 4)), next_obs=np.zeros((1, 4, 2)),
                             terminal=np.zeros((1, 4)), timeout=np.zeros((1, 4))),
      checkpoint_id=np.zeros((1, 4), np.int32), episode_id=np.zeros((1, 4), np.int32),
      task_params=np.zeros((1, 1)), segment_length=4)
  save_dataset(str(tmp_path / "same"), one, {"env": "x", "split": {"train": [0], "test": [0]}})
  two = jax.tree.map(lambda x: np.concatenate([x, x]), one)
  with pytest.raises(DatasetError, match="overlap"):
    save_dataset(str(tmp_path / "bad"), two, {"env": "x", "split": {"train": [0, 1],
                                                                    "test": [1]}})


def test_bad_settings_are_config_errors(tmp_path):
  c = offline_config.get_config("tiny")
  kw = collect_cli.behaviour_kwargs(c)
  common = dict(behaviour_kwargs=kw, transitions=300)
  overrides = c.env_overrides.to_dict()
  with pytest.raises(offline.ConfigError, match="unknown dataset qualities"):
    offline.generate_family(str(tmp_path), "t", c.env, overrides, qualities="medium,good",
                            **common)
  with pytest.raises(offline.ConfigError, match="use num_timesteps=1800"):
    offline.generate_family(str(tmp_path), "t", c.env, overrides,
                            **dict(common, behaviour_kwargs=dict(kw, num_timesteps=1650)))
  with pytest.raises(offline.ConfigError, match="need 'sac_per_task'"):
    offline.generate_family(str(tmp_path), "t", c.env, overrides,
                            **dict(common, behaviour_kwargs=dict(kw, algo="ppo")))
  with pytest.raises(offline.ConfigError, match="num_snapshots must be >= 3"):
    offline.generate_family(str(tmp_path), "t", c.env, overrides,
                            **dict(common, behaviour_kwargs=dict(kw, num_snapshots=2)))
  assert os.listdir(tmp_path) == []
  with pytest.raises(ValueError, match="no offline data variant"):
    offline_config.get_config("hopper-mediocre")
  assert offline_config.get_config("walker2d-medium-replay@cpu").qualities == "medium_replay"
  assert len(offline_config.variants()) == 6 + 4 * 2 * 6


@pytest.mark.slow
def test_command_line_errors_are_one_line_exit_2(tmp_path):
  spec = "--config=experiments/configs/offline_data.py:tiny"
  # (The other ConfigErrors take the same path: test_bad_settings_are_config_errors.)
  cases = [(spec, "--config.qualities=best", "unknown dataset qualities"),
           ("--config=experiments/configs/offline_data.py:tiny@cpu", "--config.seed=0",
            "no offline data variant")]

  def run(case):
    return subprocess.run([sys.executable, "-m", "experiments.collect", case[0], case[1],
                           f"--config.out={tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))

  with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
    results = list(pool.map(run, cases))
  for case, r in zip(cases, results):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (case, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("experiments.collect: error:"), lines
    assert case[2] in lines[0], lines[0]
  assert os.listdir(tmp_path) == []


def test_the_snapshot_schedule_check_splits_the_budget_as_training_does():
  """check_schedule with intervals_after_warmup: the intervals are (T - W) / E / (K - 1)
  iterations (per_task_sac.schedule's split), worked out here by hand for h = 10, E = 2, K = 3,
  W = 20."""
  class Env:
    episode_length = 10

  base = {"num_envs": 2, "warmup_steps": 20}
  after = {**base, "intervals_after_warmup": True}
  # T = 100: (100 - 20) / 2 / 2 = 20 iterations per interval, two segments: accepted.
  assert offline.check_schedule(Env(), {**after, "num_timesteps": 100}, 3) == 20 * 2
  # Counted from step 0 the same budget is 100 / 2 / 2 = 25 iterations: refused.
  with pytest.raises(offline.ConfigError, match="gives 25 iterations"):
    offline.check_schedule(Env(), {**base, "num_timesteps": 100}, 3)
  # T = 120 after the warm-up: 25 iterations, refused; the fix offered is 3 segments a
  # interval, 20 + 30 * 2 * 2 = 140 env steps, which passes.
  with pytest.raises(offline.ConfigError, match=r"num_timesteps=140 .*plus warmup_steps=20"):
    offline.check_schedule(Env(), {**after, "num_timesteps": 120}, 3)
  assert offline.check_schedule(Env(), {**after, "num_timesteps": 140}, 3) == 30 * 2


def test_snapshot_returns_are_measured_again_for_another_episode_count(tmp_path, monkeypatch):
  """returns.json in the work dir is reused only for the episode count and seed it was measured
  with (a rerun with more return_episodes used to read the old figures)."""
  calls = []

  def fake(env, policies, tasks, key, episodes, deterministic):
    calls.append((episodes, deterministic))
    return np.full((3, 1), float(episodes) + (0.5 if deterministic else 0.0))

  monkeypatch.setattr(collect, "snapshot_returns", fake)

  class Work:
    path = str(tmp_path)

  class Policies:
    num_snapshots = 3

  def measure(episodes, seed=0):
    return offline._snapshot_returns(None, Policies(), None, seed, episodes, Work(),
                                     lambda m: None)

  first = measure(4)
  assert first["deterministic"].tolist() == [4.5] * 3 and len(calls) == 2
  assert measure(4)["stochastic"].tolist() == [4.0] * 3 and len(calls) == 2  # reused
  assert measure(10)["stochastic"].tolist() == [10.0] * 3 and len(calls) == 4  # measured again
  measure(10, seed=1)
  assert len(calls) == 6
  # a file of an older jcomrl (no record of how it was measured) is measured again
  with open(tmp_path / "returns.json", "w") as f:
    json.dump({"deterministic": [1, 1, 1], "stochastic": [1, 1, 1]}, f)
  assert measure(10, seed=1)["stochastic"].tolist() == [10.0] * 3 and len(calls) == 8
