"""Dataset generation (issue 4): brax PPO/SAC behaviour snapshots, chunked and resumable
collection, data configs, the dataset report, and clear errors for bad settings.

The learning checks use real brax trainers on point-robot at tiny budgets (tens of seconds on
CPU); everything else reuses their snapshots or the scripted policies of ``conftest.py``.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.training import acting
from brax.training.agents.sac import train as sac_train
from conftest import scripted_policies

from experiments import collect as collect_cli
from experiments import inspect_data
from experiments.configs import data as data_config
from jcomrl import envs
from jcomrl.data.dataset import (DatasetError, dataset_summary, episode_ids, episode_returns,
                                 load_dataset)
from jcomrl.datagen import behaviour, collect, pipeline
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.point_robot import PointRobot
from jcomrl.rollout import first_episode_returns, make_rollout_fn, make_segment_rollout
from jcomrl.types import Transition


def _train_tasks(env):
  ids = np.asarray(env.benchmark_split()["train"])
  return jax.tree.map(lambda x: x[ids], env.all_benchmark_tasks())


def _tiny_kwargs(algo):
  c = data_config.get_config("tiny")
  c.behaviour.algo = algo
  kw = collect_cli.behaviour_kwargs(c)
  kw.pop("algo")
  return kw


@pytest.fixture
def no_brax_eval(monkeypatch):
  """Skips brax's own evaluation rollouts (progress display only): on a cold compilation cache
  they recompile per call and would dominate these tests' runtime."""
  monkeypatch.setattr(acting.Evaluator, "run_evaluation",
                      lambda self, params, training_metrics, **kw: dict(training_metrics))


def _first_last_returns(env, policies, episodes=16):
  """``[2, T]`` mean stochastic episode return of the first and last snapshot in all tasks."""
  sel = policies.select([0, policies.num_snapshots - 1])
  traj = collect.rollout_segments(env, sel, env.all_benchmark_tasks(), jax.random.key(3), episodes)
  return np.asarray(first_episode_returns(traj).mean(-1)).T


@pytest.fixture(scope="module")
def tiny_ppo(point_env):
  """Real brax PPO, the ``tiny`` data config's budget (20k env steps, 3 snapshots)."""
  return behaviour.train_behaviour("ppo", point_env, _train_tasks(point_env), seed=0,
                                   run_evals=False, **_tiny_kwargs("ppo"))


@pytest.mark.slow
def test_ppo_expert_snapshot_beats_random_in_every_task(point_env, tiny_ppo):
  assert tiny_ppo.algo == "ppo" and tiny_ppo.num_snapshots == 3
  assert tiny_ppo.steps[0] == 0 and tiny_ppo.steps[-1] >= 20_480
  r = _first_last_returns(point_env, tiny_ppo)
  gain = r[1] - r[0]
  assert gain.min() > 1.0, f"expert not better than random in task {int(gain.argmin())}: {r}"
  assert gain.mean() > 3.0


@pytest.mark.slow
def test_sac_snapshots_start_untrained_and_improve_in_every_task(point_env, monkeypatch,
                                                                no_brax_eval):
  """brax SAC via its per-epoch checkpoints; snapshot 0 must be the exact policy brax starts
  from (captured from brax's own initialiser), and the final one must beat it in every task."""
  captured = {}
  original = sac_train._init_training_state

  def spy(**kwargs):
    state = original(**kwargs)
    captured["policy"] = jax.tree.map(lambda x: np.asarray(x[0]), state.policy_params)
    return state

  monkeypatch.setattr(sac_train, "_init_training_state", spy)
  policies = behaviour.train_behaviour("sac", point_env, _train_tasks(point_env), seed=0,
                                       **_tiny_kwargs("sac"))
  assert policies.algo == "sac" and policies.num_snapshots == 3
  assert policies.steps.tolist() == [0, 12_800, 25_600]
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[0], policies.params[1]),
               captured["policy"])
  r = _first_last_returns(point_env, policies)
  gain = r[1] - r[0]
  assert gain.min() > 1.0, f"SAC expert not better than random in task {int(gain.argmin())}"


def test_behaviour_round_trip_both_algos(tmp_path, point_env):
  hidden = (8,)
  for algo in ("ppo", "sac"):  # brax layouts; sac_per_task: tests/test_per_task_sac.py
    make, template = behaviour.policy_template(point_env, algo, hidden, True)
    params = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 2), template)
    pol = BehaviourPolicies(params=params, steps=np.array([0, 5]), make_policy=make,
                            hidden_sizes=hidden, algo=algo, normalize_observations=True)
    pipeline.save_behaviour(str(tmp_path / algo / pipeline.BEHAVIOUR_DIR), pol)
    back = pipeline.load_behaviour(str(tmp_path / algo), point_env)
    assert back.algo == algo and back.steps.tolist() == [0, 5] and back.normalize_observations
    jax.tree.map(np.testing.assert_array_equal, back.params, pol.params)
  # The restored policy applies the observation normaliser, as brax's trained one does:
  # with mean m (std 1), acting on obs equals an unnormalised policy acting on obs - m.
  norm, policy = jax.tree.map(lambda x: x[0], back.params)
  shifted = (norm.replace(mean=norm.mean + 3.0), policy)
  plain = behaviour.make_sac_policy_factory(point_env, hidden, False)
  act = lambda make, p, obs: np.asarray(make(p, True)(obs, jax.random.key(0))[0])
  np.testing.assert_allclose(act(back.make_policy, shifted, jnp.ones(4)),
                             act(plain, shifted, jnp.ones(4) - 3.0), rtol=1e-5, atol=1e-6)
  assert not np.allclose(act(back.make_policy, shifted, jnp.ones(4)),
                         act(plain, shifted, jnp.ones(4)))


def test_sparse_behaviour_trains_on_dense_reward():
  env = envs.make("sparse_point_robot")
  tasks = env.all_benchmark_tasks()
  action = jnp.array([0.5, 0.5])
  for train_reward in (None, "dense_reward"):
    w = behaviour.TaskConditionedBraxEnv(env, tasks, train_reward)
    s = w.step(w.reset(jax.random.key(0)), action)
    want = s.pipeline_state.reward if train_reward is None else s.pipeline_state.info[train_reward]
    assert float(s.reward) == float(want)
  assert float(s.reward) < 0 and float(s.pipeline_state.reward) == 0  # dense vs sparse
  assert data_config.get_config("sparse_point_robot").behaviour.ppo.train_reward == "dense_reward"


def test_unknown_behaviour_algo_is_a_clear_error(tmp_path, point_env):
  c = data_config.get_config("tiny")
  c.behaviour.algo = "td3"
  with pytest.raises(pipeline.ConfigError, match="unknown behaviour algo 'td3'.*behaviour.algo"):
    collect_cli.behaviour_kwargs(c)
  out = str(tmp_path / "d")
  with pytest.raises(pipeline.ConfigError, match="unknown behaviour algo 'td3'"):
    pipeline.generate_and_save(out, "point_robot", {}, quality="mixed", seed=0,
                               episodes_per_snapshot=1, behaviour_kwargs={"algo": "td3",
                                                                          "num_snapshots": 3})
  assert not os.path.exists(out) and not os.path.exists(pipeline.work_dir_for(out))
  with pytest.raises(pipeline.ConfigError, match="unknown behaviour_tasks 'test'"):
    pipeline.generate_and_save(out, "point_robot", {}, quality="mixed", seed=0,
                               episodes_per_snapshot=1, behaviour_tasks="test",
                               behaviour_kwargs={"algo": "ppo", "num_snapshots": 3})
  with pytest.raises(ValueError, match="unknown behaviour algo"):
    behaviour.train_behaviour("td3", point_env, _train_tasks(point_env), seed=0)
  # A stored dataset whose behaviour.json names an unknown algo.
  d = tmp_path / "stored" / pipeline.BEHAVIOUR_DIR
  d.mkdir(parents=True)
  (d / "behaviour.json").write_text(json.dumps({"algo": "td3", "hidden_sizes": [8],
                                                "steps": [0, 1]}))
  np.savez(d / "snapshots.npz", x=np.zeros(2))
  with pytest.raises(DatasetError, match="unsupported behaviour algo 'td3'"):
    pipeline.load_behaviour(str(tmp_path / "stored"), point_env)


class _Killed(Exception):
  pass


@pytest.mark.slow
def test_killed_collection_resumes_without_retraining(tmp_path, monkeypatch, tiny_ppo,
                                                      point_env):
  calls = []

  def fake_train(env, tasks, **kw):
    calls.append(np.asarray(tasks["goal"]))
    return tiny_ppo

  monkeypatch.setattr(behaviour, "train_ppo", fake_train)
  out = str(tmp_path / "pr")
  work = pipeline.work_dir_for(out)
  # return_episodes = chunk_episodes: the anchors reuse the collection's compiled program.
  kwargs = {"quality": "mixed", "seed": 0, "episodes_per_snapshot": 3, "chunk_episodes": 1,
            "return_episodes": 1, "behaviour_kwargs": dict(_tiny_kwargs("ppo"), algo="ppo")}

  def kill_after_first_chunk(msg):
    if msg.startswith("collect chunk 1/3"):
      raise _Killed(msg)

  with pytest.raises(_Killed):
    pipeline.generate_and_save(out, "point_robot", {}, message=kill_after_first_chunk, **kwargs)
  # The behaviour trains in every benchmark task (train and test), as the papers' per-task agents.
  assert len(calls) == 1
  np.testing.assert_array_equal(calls[0], point_env.all_benchmark_tasks()["goal"])
  assert not os.path.exists(out)
  assert os.path.exists(os.path.join(work, "behaviour", "snapshots.npz"))
  assert sorted(os.listdir(os.path.join(work, "chunks"))) == ["00000.npz"]

  # Other behaviour settings: refused, naming the differing key; the work dir is kept.
  other = dict(kwargs, seed=1)
  with pytest.raises(DatasetError, match=r"different behaviour settings \(seed: 0 -> 1"):
    pipeline.generate_and_save(out, "point_robot", {}, **other)
  with pytest.raises(DatasetError, match=r"behaviour_tasks: 'all' -> 'train'"):
    pipeline.generate_and_save(out, "point_robot", {}, behaviour_tasks="train", **kwargs)
  assert os.path.isdir(work)

  def no_training(*a, **k):
    raise AssertionError("behaviour policies were retrained on resume")

  monkeypatch.setattr(behaviour, "train_ppo", no_training)
  messages = []
  data, meta = pipeline.generate_and_save(out, "point_robot", {}, message=messages.append,
                                          **kwargs)
  assert any(m.startswith("resuming: reusing 3 ppo behaviour snapshots") for m in messages)
  assert any("chunk 1/3" in m and "reused" in m for m in messages)
  assert not os.path.exists(work)
  assert data.num_transitions == 3 * 3 * point_env_length()
  np.testing.assert_array_equal(pipeline.load_behaviour(out, envs.make("point_robot")).steps,
                                tiny_ppo.steps)
  assert meta["creation"]["behaviour"]["algo"] == "ppo"

  # The resumed dataset equals an uninterrupted collection with the same snapshots and key.
  env = envs.make("point_robot")
  ref = collect.build_dataset(env, tiny_ppo, env.all_benchmark_tasks(),
                              jax.random.fold_in(jax.random.key(0), 1), quality="mixed",
                              episodes_per_snapshot=3, chunk_episodes=1)
  np.testing.assert_array_equal(np.asarray(data.transitions.obs), ref.transitions.obs)
  np.testing.assert_array_equal(np.asarray(data.checkpoint_id), ref.checkpoint_id)

  # An existing dataset is refused before any training.
  with pytest.raises(DatasetError, match="already exists"):
    pipeline.generate_and_save(out, "point_robot", {}, **kwargs)


def point_env_length():
  return envs.make("point_robot").episode_length


def test_chunked_collection_matches_layout(point_env):
  tasks = point_env.all_benchmark_tasks()
  pol = scripted_policies(3)
  key = jax.random.key(5)
  one = collect.collect_segments(point_env, pol, tasks, key, episodes_per_snapshot=2)
  ref = collect.rollout_segments(point_env, pol, tasks, key, 2)
  np.testing.assert_array_equal(one.obs, np.asarray(ref.obs))  # one chunk = the old path
  lines = []
  chunked = collect.collect_segments(point_env, pol, tasks, key, episodes_per_snapshot=3,
                                     chunk_episodes=2, progress=lines.append)
  assert chunked.reward.shape == (40, 3, 3, point_env.episode_length)
  assert len(lines) == 2 and lines[-1].startswith("collect chunk 2/2 (100%")
  # Each chunk has its own key; the trimmed last chunk is fully real data.
  assert not np.array_equal(chunked.obs[:, :, 2], chunked.obs[:, :, 0])
  assert collect.chunk_layout(10, 4) == (4, 3) and collect.chunk_layout(10, 0) == (10, 1)


class _TerminatingPointRobot(PointRobot):
  """Point robot whose episodes end early once x > 0.25 (exercises the in-segment resets)."""

  def step(self, state, action, task):
    nxt = super().step(state, action, task)
    done, truncation = self._time_limit(nxt.step_count, (nxt.physics[0] > 0.25))
    return nxt.replace(done=done, truncation=truncation)


def test_batched_rollout_equals_per_episode_reference():
  """The batch-level time loop (resets only when some episode ended, env stepped over one flat
  batch axis) reproduces the vmapped per-episode reference, early terminations included: the
  same states, actions and flags bit for bit, rewards up to float32 rounding (XLA may fuse the
  reward's reduction differently for a flat batch)."""
  env = _TerminatingPointRobot()
  pol = scripted_policies(3)
  tasks = env.all_benchmark_tasks()
  keys = collect.segment_keys(jax.random.key(1), 40, 3, 2)
  one = make_segment_rollout(env, pol.make_policy)
  ref = jax.jit(jax.vmap(jax.vmap(jax.vmap(one, (None, None, 0)), (0, None, 0)),
                         (None, 0, 0)))(pol.params, tasks, keys)
  new = make_rollout_fn(env, pol.make_policy)(pol.params, tasks, keys)
  for field in ("obs", "action", "next_obs", "terminal", "timeout"):
    np.testing.assert_array_equal(getattr(new, field), getattr(ref, field), err_msg=field)
  np.testing.assert_allclose(new.reward, ref.reward, rtol=1e-6, atol=1e-6)
  assert float(new.terminal.sum()) > 100  # many early terminations (and resets) happened


def test_batched_rollout_episode_does_not_depend_on_batch_layout():
  """An episode's transitions depend on its key, task and snapshot, not on how many episodes
  share the batch (E = 1, a size-1 axis, vs E = 2)."""
  env = _TerminatingPointRobot()
  pol = scripted_policies(3)
  tasks = env.all_benchmark_tasks()
  k1 = collect.segment_keys(jax.random.key(1), 40, 3, 1)
  k2 = jnp.concatenate([k1, collect.segment_keys(jax.random.key(2), 40, 3, 1)], axis=2)
  fn = make_rollout_fn(env, pol.make_policy)
  one, two = fn(pol.params, tasks, k1), fn(pol.params, tasks, k2)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b[:, :, :1]), one, two)


def test_first_episode_returns_stop_at_termination():
  r = jnp.ones((2, 5))
  term = jnp.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], jnp.float32)
  tout = jnp.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]], jnp.float32)
  traj = Transition(obs=jnp.zeros((2, 5, 1)), action=jnp.zeros((2, 5, 1)), reward=r,
                    next_obs=jnp.zeros((2, 5, 1)), terminal=term, timeout=tout)
  np.testing.assert_allclose(first_episode_returns(traj), [2.0, 5.0])
  eps = episode_returns(np.asarray(r), np.asarray(term), np.asarray(tout),
                        episode_ids(np.asarray(term), np.asarray(tout)),
                        np.zeros((2, 5), np.int32), segment_length=5)
  # Row 0: a 2-step terminated episode is complete; the 3-step remainder cut by the segment
  # end is partial and dropped. Row 1: one full-length episode.
  np.testing.assert_allclose(eps[0][1], [2.0])
  np.testing.assert_allclose(eps[1][1], [5.0])


def test_data_configs_sizes_and_variants():
  have = set(data_config.variants())
  assert {"point_robot", "sparse_point_robot", "cheetah_vel", "cheetah_dir", "ant_dir",
          "hopper_param", "walker_param", "tiny", "tiny_cheetah_vel",
          "tiny_hopper_param"} <= have
  table7 = {"cheetah_vel": 200_000, "cheetah_dir": 200_000, "ant_dir": 100_000,
            "hopper_param": 300_000, "walker_param": 450_000}
  for name, size in table7.items():
    c = data_config.get_config(name)
    assert c.transitions_per_task == size
    for quality in ("mixed", "random"):
      k = len(collect.snapshot_ids(quality, c.behaviour.num_snapshots))
      eps = pipeline.episodes_for(_FakeEnv(200), quality, c.behaviour.num_snapshots,
                                  transitions_per_task=c.transitions_per_task)
      assert eps * k * 200 == size  # random and mixed datasets of the same size
  pr = data_config.get_config("point_robot")
  assert pr.env == "point_robot" and pr.behaviour.algo == "ppo"
  assert pr.behaviour.num_snapshots == 6 and pr.episodes_per_snapshot == 10
  assert pr.behaviour.ppo.num_timesteps == 200_000
  assert data_config.get_config("tiny").behaviour.ppo.num_timesteps == 20_480
  with pytest.raises(ValueError, match="no data config variant"):
    data_config.get_config("nope")
  with pytest.raises(pipeline.ConfigError, match="transitions_per_task"):
    pipeline.episodes_for(_FakeEnv(20), "mixed", 3)


class _FakeEnv:
  def __init__(self, length):
    self.episode_length = length


def test_inspect_data_reports_and_plots(synthetic_dir, tmp_path):
  lines = []
  out = str(tmp_path / "plots" / "r.png")
  table = inspect_data.inspect(synthetic_dir, out=out, printer=lines.append)
  assert os.path.getsize(out) > 1000 and table["plot"] == os.path.abspath(out)
  assert table["checkpoints"] == [0, 1, 2] and table["mean"].shape == (40, 3)
  assert (table["count"] == 4).all()  # 4 episodes per (task, snapshot), none terminated
  # The scripted snapshots grow in skill: return increases with the checkpoint in every task.
  assert (np.diff(table["mean"], axis=1) > 0).all()
  text = "\n".join(lines)
  assert "ckpt" in text and "normalisation anchors: random -20.00" in text
  assert " 2* " in text  # test task 2 is marked
  data, _ = load_dataset(synthetic_dir)
  seg = dataset_summary(data)  # no termination: segment return = episode return
  np.testing.assert_allclose(np.nanmean(table["mean"], axis=0), [seg[k] for k in (0, 1, 2)],
                             rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hopper_param", "cheetah_vel"])
def test_tiny_mjx_dataset_generates_from_its_config(tmp_path, no_brax_eval, name):
  """The ``tiny_<env>`` data config builds a real MuJoCo dataset end to end on a CPU (brax PPO
  behaviour snapshots, collection in all 40 tasks, anchors), and it loads and validates. The
  config's physics is "auto": C MuJoCo on a CPU (MJX would spend minutes compiling)."""
  c = data_config.get_config(f"tiny_{name}")
  c.out = str(tmp_path / name)
  lines = []
  data, meta = collect_cli.generate(c, progress=lines.append)
  assert lines[-1].startswith(f"wrote {c.out}: 40 tasks x 600 transitions")
  loaded, meta2 = load_dataset(c.out, expect_env=name)
  assert meta2 == meta and loaded.num_tasks == 40 and loaded.num_transitions == 600
  # physics "auto": C MuJoCo on a CPU (brax PPO and collection through the host callback)
  assert meta["creation"]["physics"] == ("c" if jax.default_backend() == "cpu" else "mjx")
  env = envs.make(name)
  assert loaded.transitions.obs.shape == (40, 600, env.observation_size)
  assert loaded.transitions.action.shape == (40, 600, env.action_size)
  np.testing.assert_array_equal(np.unique(loaded.checkpoint_id), [0, 1, 2])
  for leaf in jax.tree.leaves(loaded.transitions):
    assert np.isfinite(leaf).all()
  # UNICORN's hopper and cheetah never terminate: each 200-step segment ends in a timeout.
  tr = loaded.transitions
  assert tr.terminal.sum() == 0
  np.testing.assert_array_equal(np.flatnonzero(tr.timeout[0]), [199, 399, 599])
  assert tr.timeout.sum() == 40 * 3
  assert np.all(np.abs(loaded.transitions.action) <= 1.0)
  norm = meta["normalisation"]
  assert np.isfinite([norm["random"], norm["expert"]]).all()
  # The behaviour snapshots are saved with the dataset (UNICORN's OOD context source).
  pol = pipeline.load_behaviour(c.out, env)
  assert pol.algo == "ppo" and pol.num_snapshots == 3 and pol.steps[0] == 0


def _speed_policies(speeds):
  """Snapshot k acts ``speeds[k] * goal`` when deterministic (the goal is the obs's appended
  task vector, a unit vector) and uniform noise when stochastic."""

  def make_policy(params, deterministic):
    def policy(obs, key):
      if deterministic:
        return params["v"] * obs[2:], {}
      return jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0), {}
    return policy

  return BehaviourPolicies(params={"v": jnp.asarray(speeds, jnp.float32)},
                           steps=np.arange(len(speeds)), make_policy=make_policy,
                           hidden_sizes=())


def _straight_line_return(v, steps=20, max_step=0.1):
  # From the origin towards a unit-distance goal at v * max_step per step, never passing it
  # (v * max_step * steps <= 1 here): reward -(1 - v * max_step * n) at step n.
  return -sum(1.0 - v * max_step * n for n in range(1, steps + 1))


def test_anchors_are_the_best_snapshot_acting_as_the_protocols_act(monkeypatch, point_env):
  # Snapshot 1 is the best, the last one is worse: the expert anchor is snapshot 1, not the last.
  speeds = [0.0, 0.5, 0.25]
  expected = [_straight_line_return(v) for v in speeds]  # -20, -9.5, -14.75
  np.testing.assert_allclose(expected, [-20.0, -9.5, -14.75])
  monkeypatch.setattr(behaviour, "train_ppo", lambda env, tasks, **kw: _speed_policies(speeds))
  kwargs = {"quality": "mixed", "seed": 0, "episodes_per_snapshot": 1, "return_episodes": 2,
            "behaviour_kwargs": {"algo": "ppo", "num_snapshots": 3}}
  _, _, meta = pipeline.generate("point_robot", {}, **kwargs)
  norm = meta["normalisation"]
  assert norm["policy"] == "deterministic" and norm["best_snapshot"] == 1
  np.testing.assert_allclose([norm["random"], norm["expert"], norm["last"]], expected,
                             rtol=1e-5)
  snaps = meta["behaviour_snapshots"]
  np.testing.assert_allclose(snaps["task_returns"], np.repeat(np.asarray(expected)[:, None],
                                                               40, axis=1), rtol=1e-4)
  # The stochastic means are kept beside them (noise actions: not the straight-line returns).
  assert len(snaps["mean_return_stochastic"]) == 3
  assert not np.allclose(snaps["mean_return_stochastic"], expected, atol=0.5)
  # anchor_policy="stochastic" (jcomrl's earlier anchor) anchors on the noisy episodes.
  _, _, meta_s = pipeline.generate("point_robot", {}, anchor_policy="stochastic", **kwargs)
  np.testing.assert_allclose(meta_s["normalisation"]["random"],
                             snaps["mean_return_stochastic"][0], rtol=1e-6)
  with pytest.raises(pipeline.ConfigError, match="anchor_policy='greedy'"):
    pipeline.generate("point_robot", {}, anchor_policy="greedy", **kwargs)


def test_fast_recipe_variants_are_the_shared_agents_replay_buffer():
  for env in ("cheetah_vel", "cheetah_dir", "ant_dir", "hopper_param", "walker_param"):
    c = data_config.get_config(f"{env}@fast")
    assert (c.env, c.quality, c.behaviour.algo) == (env, "replay", "sac_shared")
    assert c.anchor_policy == "deterministic"
  assert data_config.get_config("cheetah_vel@cpu").quality == "mixed"
