"""The fast data recipe (jcomrl.datagen.shared_sac) and replay-buffer datasets (quality='replay',
jcomrl.datagen.pipeline.replay_dataset): one shared agent learns every task, each task's stream
holds only its own task's transitions, the dataset is the buffer in stored order, and a killed
collection resumes from its saved buffer without retraining."""

import dataclasses

import jax
import numpy as np
import pytest

from jcomrl.datagen import behaviour, collect, pipeline, shared_sac
from jcomrl.datagen.per_task_sac import Replay
from jcomrl.types import Transition

TASK_IDS = np.array([0, 13, 26, 39])  # goals at angles 0, pi/3, 2 pi/3, pi
SHARED = {"hidden_sizes": (64, 64), "num_envs": 2, "batch_size": 128, "warmup_steps": 200,
          "updates_per_iteration": 2, "discount": 0.9, "learn_entropy": True,
          "actor_lr": 1e-3, "critic_lr": 1e-3}


@pytest.fixture(scope="module")
def tasks(point_env):
  return jax.tree.map(lambda x: x[TASK_IDS], point_env.all_benchmark_tasks())


@pytest.fixture(scope="module")
def run(point_env, tasks):
  """One shared agent trained on 4 tasks (~10 s with a warm compilation cache): the default
  tier's only check of the stream order and of the task vector in the agent's batch."""
  return behaviour.train_behaviour("sac_shared", point_env, tasks, seed=0, num_timesteps=3000,
                                   num_snapshots=3, keep_replay=True, **SHARED)


def test_each_stream_holds_only_its_own_task(point_env, tasks, run):
  _, replay = run
  tr = replay.transitions
  assert tr.obs.shape == (4, 3000, 2) and replay.num_envs == 2
  goals = np.asarray(tasks["goal"])  # [4, 2]
  # point robot: r = -||s' - goal|| (written out here, float64)
  for t in range(4):
    want = -np.linalg.norm(np.asarray(tr.next_obs[t], np.float64) - goals[t], axis=-1)
    np.testing.assert_allclose(np.asarray(tr.reward[t]), want, rtol=1e-5, atol=1e-6)
    other = -np.linalg.norm(np.asarray(tr.next_obs[t], np.float64) - goals[(t + 2) % 4], axis=-1)
    assert not np.allclose(np.asarray(tr.reward[t]), other, atol=1e-3)
  # warm-up: uniform actions in [-1, 1] for the first 200 steps per task (100 iterations x 2)
  warm = np.asarray(tr.action[:, :200])
  assert np.abs(warm).max() <= 1 and warm.std() > 0.5


def test_one_shared_agent_learns_every_task(point_env, tasks, run):
  policies, _ = run
  assert policies.algo == "sac_shared" and policies.steps.tolist() == [0, 1500, 3000]
  rets = np.asarray(collect.snapshot_returns(point_env, policies, tasks, jax.random.key(1), 4))
  assert np.all(rets[-1] > rets[0] + 3.0), rets  # every task, by a margin


def test_replay_dataset_is_the_buffer_in_stored_order(point_env, tasks, run):
  _, replay = run
  vec = np.asarray(tasks["goal"])
  data = pipeline.replay_dataset(point_env, replay, vec, steps_per_interval=1500)
  h = point_env.episode_length  # 20
  assert data.segment_length == h and data.num_transitions == 3000
  tr = replay.transitions
  # env e's stream is every e-th stored transition; the dataset is env 0's stream, then env 1's
  r = np.asarray(tr.reward)
  np.testing.assert_array_equal(np.asarray(data.transitions.reward),
                                np.concatenate([r[:, 0::2], r[:, 1::2]], axis=1))
  o = np.asarray(tr.obs)
  np.testing.assert_array_equal(np.asarray(data.transitions.obs),
                                np.concatenate([o[:, 0::2], o[:, 1::2]], axis=1))
  # 20-step episodes from a reset: each segment ends with a timeout, none inside
  timeout = np.asarray(data.transitions.timeout)
  assert np.all(timeout[:, h - 1::h] == 1) and timeout.sum() == 4 * 3000 / h
  # training interval of each step: stream position j is iteration j (2 envs per iteration),
  # interval = (2 j) // 1500
  j = np.arange(1500)
  np.testing.assert_array_equal(data.checkpoint_id[0], np.concatenate([j * 2 // 1500] * 2))
  np.testing.assert_array_equal(data.task_params, vec)
  assert data.episode_id[0, -1] == 3000 // h - 1


class _FiveStepEnv:
  episode_length = 5


def test_a_cut_inside_an_episode_is_marked():
  # one task, one env, 12 steps: an early termination at step 2 shifts the episodes, so the
  # cut after step 4 falls inside the episode that started at step 3
  n = 12
  term = np.zeros((1, n), np.float32)
  term[0, 2] = 1.0
  tout = np.zeros((1, n), np.float32)
  tout[0, 7] = 1.0  # 5-step episode 3..7
  tr = Transition(obs=np.arange(n, dtype=np.float32)[None, :, None],
                  action=np.zeros((1, n, 1), np.float32), reward=np.zeros((1, n), np.float32),
                  next_obs=np.arange(1, n + 1, dtype=np.float32)[None, :, None],
                  terminal=term, timeout=tout)
  data = pipeline.replay_dataset(_FiveStepEnv(), Replay(transitions=tr, num_envs=1),
                                 np.zeros((1, 1), np.float32), steps_per_interval=n)
  assert data.num_transitions == 10  # the trailing 2 steps make no whole segment
  np.testing.assert_array_equal(np.asarray(data.transitions.timeout[0]),
                                [0, 0, 0, 0, 1, 0, 0, 1, 0, 1])
  np.testing.assert_array_equal(np.asarray(data.transitions.terminal[0]),
                                [0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(data.episode_id[0], [0, 0, 0, 1, 1, 2, 2, 2, 3, 3])


@pytest.mark.slow  # trains a behaviour agent (make test-all)
def test_replay_collection_resumes_without_retraining(point_env, tmp_path, monkeypatch):
  kw = dict(quality="replay", seed=0, behaviour_kwargs={
      "algo": "sac_shared", "num_snapshots": 2, "num_timesteps": 400,
      **{k: v for k, v in SHARED.items() if k != "warmup_steps"}, "warmup_steps": 100},
      return_episodes=1)
  work = str(tmp_path / "work")
  first, _, meta = pipeline.generate("point_robot", {}, work_dir=work, **kw)
  assert meta["creation"]["behaviour_seconds"] > 0
  assert meta["quality"] == "replay" and "replay buffer" in meta["creation"]["source"]

  def no_training(*a, **k):
    raise AssertionError("retrained instead of resuming")

  monkeypatch.setattr(behaviour, "train_behaviour", no_training)
  second, _, _ = pipeline.generate("point_robot", {}, work_dir=work, **kw)
  for f in dataclasses.fields(first.transitions):
    np.testing.assert_array_equal(np.asarray(getattr(first.transitions, f.name)),
                                  np.asarray(getattr(second.transitions, f.name)))
  assert first.num_tasks == 40 and first.num_transitions == 400


def test_replay_needs_a_buffer_keeping_trainer(point_env):
  with pytest.raises(pipeline.ConfigError, match="replay buffer"):
    pipeline.generate("point_robot", {}, quality="replay", seed=0,
                      behaviour_kwargs={"algo": "ppo", "num_snapshots": 2})
  with pytest.raises(pipeline.ConfigError, match="behaviour_tasks='all'"):
    pipeline.generate("point_robot", {}, quality="replay", seed=0, behaviour_tasks="train",
                      behaviour_kwargs={"algo": "sac_shared", "num_snapshots": 2})


def test_snapshot_policy_reads_the_appended_task_vector(point_env):
  make_policy, params = shared_sac.policy_template(point_env, (16,))
  pol = make_policy(params, True)
  obs = np.zeros((point_env.observation_size + point_env.task_size,), np.float32)
  a, _ = pol(obs, jax.random.key(0))
  assert a.shape == (point_env.action_size,)
