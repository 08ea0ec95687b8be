"""Per-task SAC behaviour agents (jcomrl.datagen.per_task_sac, issue 17): vmapped training equals a
per-task loop, every agent learns its own task and only its own, and the snapshots feed the
existing collection, evaluation and save/load code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos.config import HParams
from jcomrl.datagen import behaviour, collect, per_task_sac, pipeline
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.eval import protocols
from jcomrl.rollout import first_episode_returns

# Four goals spread over the half circle (angles 0, pi/3, 2 pi/3, pi of the 40 benchmark tasks).
TASK_IDS = np.array([0, 13, 26, 39])
# CORRO's point-robot collection settings (data_collection_config/args_point_robot_v1.py:13-26:
# 2 x 32, gamma 0.9, fixed entropy 0.01, 10 random rollouts = 200 steps), with a smaller batch,
# a higher lr and more updates per env step so that 4000 steps per task suffice.
POINT_SAC = {"hidden_sizes": (32, 32), "num_envs": 4, "batch_size": 64, "warmup_steps": 200,
             "updates_per_iteration": 2, "discount": 0.9, "entropy_alpha": 0.01,
             "actor_lr": 1e-3, "critic_lr": 1e-3}


def _take(tasks, ids):
  return jax.tree.map(lambda x: x[np.asarray(ids)], tasks)


@pytest.fixture(scope="module")
def tasks(point_env):
  return _take(point_env.all_benchmark_tasks(), TASK_IDS)


@pytest.fixture(scope="module")
def trained_and_replay(point_env, tasks):
  return behaviour.train_behaviour("sac_per_task", point_env, tasks, seed=0, num_timesteps=4000,
                                   num_snapshots=3, keep_replay=True, **POINT_SAC)


@pytest.fixture(scope="module")
def trained(trained_and_replay):
  return trained_and_replay[0]


@pytest.mark.slow
def test_vmapped_training_equals_a_per_task_loop(point_env):
  """Two tasks trained together == each trained alone with its own key (warm-up + updates)."""
  cfg = per_task_sac.PerTaskSACConfig(hidden_sizes=(8,), num_envs=2, batch_size=16,
                                      buffer_size=10, updates_per_iteration=2,
                                      learn_entropy=True)
  hp = HParams.create(discount=0.9)
  init, run = per_task_sac.make_trainer(point_env, cfg)
  both = _take(point_env.all_benchmark_tasks(), [3, 30])
  keys = jax.random.split(jax.random.key(7), 2)
  warm = jnp.asarray(6, jnp.int32)  # 3 warm-up iterations, then 5 with 2 updates each

  fresh = jax.tree.map(np.asarray, init(keys, both, 0.1))  # host copies: run donates its input
  together, _ = run(fresh, both, hp, warm, 8)
  together = jax.tree.map(np.asarray, together)
  # 16 transitions per task through a ring of 10: it wrapped, the write position is 6.
  assert (int(together.steps), int(together.size), int(together.ptr)) == (16, 10, 6)
  for t in range(2):
    # Task t alone: its slice of the initial state (envs are flat, task-major: rows 2t, 2t+1).
    rows = lambda tree, lo, hi: jax.tree.map(lambda x: x[lo:hi], tree)
    alone0 = fresh.replace(agents=rows(fresh.agents, t, t + 1), buffer=rows(fresh.buffer, t, t + 1),
                           env=rows(fresh.env, 2 * t, 2 * t + 2),
                           episode_return=fresh.episode_return[2 * t:2 * t + 2],
                           key=fresh.key[t:t + 1])
    alone, _ = run(alone0, _take(both, [t]), hp, warm, 8)
    alone = jax.tree.map(np.asarray, alone)
    for name in ("agents", "buffer"):
      want = rows(getattr(together, name), t, t + 1)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                   getattr(alone, name), want)
  # The updates ran: the agents moved away from their initialisation, differently per task.
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), together.agents.actor,
                       fresh.agents.actor)
  assert max(jax.tree.leaves(moved)) > 1e-3
  assert float(together.agents.log_alpha[0]) != float(together.agents.log_alpha[1])


@pytest.mark.slow
def test_every_agent_beats_its_untrained_snapshot_and_specialises(point_env, tasks, trained):
  assert trained.algo == "sac_per_task" and trained.steps.tolist() == [0, 2000, 4000]
  assert trained.params["task_vectors"].shape == (3, 4, 2)
  # Deterministic returns [T, K] through the collection rollout (agent picked by task vector).
  traj = collect.rollout_segments(point_env, trained, tasks, jax.random.key(1), 1,
                                  deterministic=True)
  r = np.asarray(first_episode_returns(traj)[:, :, 0])
  gain = r[:, -1] - r[:, 0]
  assert gain.min() > 5.0, f"final snapshot not better than untrained: {r}"
  # Control: task t rolled with the final agent of the task at the other end of the list
  # (OOD-protocol code: snapshot conditioned on another task's vector) does much worse.
  vecs = np.asarray(jax.vmap(point_env.task_vector)(tasks))
  other = protocols.behaviour_contexts(point_env, trained, tasks, vecs[::-1][:, None], [2],
                                       jax.random.key(2), deterministic=True)
  r_other = np.asarray(first_episode_returns(other)[:, 0])
  drop = r[:, -1] - r_other
  assert drop.min() > 5.0, f"own agent {r[:, -1]} vs another task's agent {r_other}"


@pytest.mark.slow
def test_snapshots_build_a_dataset_and_round_trip(point_env, tasks, trained, tmp_path):
  data = collect.build_dataset(point_env, trained, tasks, jax.random.key(3), quality="mixed",
                               episodes_per_snapshot=2)
  assert data.transitions.reward.shape == (4, 3 * 2 * 20)
  assert data.checkpoint_id[0].tolist() == [0] * 40 + [1] * 40 + [2] * 40
  returns = data.transitions.reward.reshape(4, 3, 2, 20).sum(-1).mean(-1)  # [T, K]
  assert np.all(returns[:, -1] > returns[:, 0])
  # The template of a 4-agent snapshot (num_tasks given) has the trained layout.
  make, template = behaviour.policy_template(point_env, "sac_per_task", (32, 32), num_tasks=4)
  assert jax.tree.structure(template) == jax.tree.structure(
      jax.tree.map(lambda x: x[0], trained.params))
  with pytest.raises(ValueError, match="no observation normaliser"):
    behaviour.policy_template(point_env, "sac_per_task", (32, 32), True)
  # A 40-agent snapshot (the default layout: every benchmark task) restores through pipeline.
  _, full = behaviour.policy_template(point_env, "sac_per_task", (8,))
  full["task_vectors"] = np.asarray(jax.vmap(point_env.task_vector)(
      point_env.all_benchmark_tasks()))
  stacked = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 2), full)
  pol = BehaviourPolicies(params=stacked, steps=np.array([0, 9]), make_policy=make,
                          hidden_sizes=(8,), algo="sac_per_task")
  pipeline.save_behaviour(str(tmp_path / "full" / pipeline.BEHAVIOUR_DIR), pol)
  back = pipeline.load_behaviour(str(tmp_path / "full"), point_env)
  assert back.algo == "sac_per_task" and back.steps.tolist() == [0, 9]
  jax.tree.map(np.testing.assert_array_equal, back.params, pol.params)
  # Agents of fewer tasks than the benchmark table (behaviour_tasks="train") restore too: the
  # task axis comes from the saved task vectors.
  pipeline.save_behaviour(str(tmp_path / "four" / pipeline.BEHAVIOUR_DIR), trained)
  four = pipeline.load_behaviour(str(tmp_path / "four"), point_env)
  jax.tree.map(np.testing.assert_array_equal, four.params, jax.tree.map(np.asarray, trained.params))


def test_policy_acts_with_the_agent_of_the_appended_task_vector(point_env):
  """Snapshot policy = the agent whose task vector is nearest to the observation's tail."""
  make, params = behaviour.policy_template(point_env, "sac_per_task", (8,), num_tasks=3)
  params["task_vectors"] = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  policy = make(params, True)
  net = per_task_sac.networks(point_env, per_task_sac.PerTaskSACConfig(hidden_sizes=(8,)))[0]
  obs = jnp.asarray([0.3, -0.2])
  for row, tail in ((0, [0.9, 0.1]), (1, [0.1, 0.8]), (2, [-1.0, 0.0])):
    got = policy(jnp.concatenate([obs, jnp.asarray(tail)]), jax.random.key(0))[0]
    agent = jax.tree.map(lambda x, r=row: x[r], params["actor"])
    want = jnp.tanh(net.apply(agent, obs, jnp.zeros((0,)))[0])
    np.testing.assert_allclose(got, want, rtol=1e-6)
  a0 = policy(jnp.asarray([0.3, -0.2, 1.0, 0.0]), jax.random.key(0))[0]
  a2 = policy(jnp.asarray([0.3, -0.2, -1.0, 0.0]), jax.random.key(0))[0]
  assert not np.allclose(a0, a2)


def test_bad_budgets_are_clear_errors(point_env, tasks):
  with pytest.raises(ValueError, match="num_snapshots must be >= 2"):
    per_task_sac.train_sac_per_task(point_env, tasks, num_timesteps=100, num_snapshots=1, seed=0)
  with pytest.raises(ValueError, match="not more than warmup_steps=200; raise num_timesteps"):
    per_task_sac.train_sac_per_task(point_env, tasks, num_timesteps=200, num_snapshots=3, seed=0,
                                    warmup_steps=200)



def test_keep_replay_returns_every_stored_transition_in_order(point_env, tasks,
                                                              trained_and_replay):
  """The replay of a run (issue 18's medium_replay): ``[T, steps]`` in stored order, each env's
  stream a time-ordered run of whole episodes; a buffer that would wrap is refused."""
  policies, replay = trained_and_replay
  assert policies.steps.tolist() == [0, 2000, 4000] and replay.num_envs == 4
  assert replay.transitions.obs.shape == (4, 4000, 2) and replay.num_steps == 4000
  streams = replay.env_streams(4000)  # [T, E, 1000]
  assert streams.reward.shape == (4, 4, 1000)
  np.testing.assert_array_equal(streams.reward[:, 1], replay.transitions.reward[:, 1::4])
  # 20-step episodes from a reset at step 0: a time limit every 20 stream steps, nothing else.
  ends = np.maximum(streams.terminal, streams.timeout)
  assert np.all(ends[..., 19::20] == 1) and ends.sum() == 4 * 4 * 50
  # Within an episode each next_obs is the following obs (the true successor).
  cont = np.setdiff1d(np.arange(999), np.arange(19, 1000, 20))
  np.testing.assert_array_equal(streams.next_obs[:, :, cont], streams.obs[:, :, cont + 1])
  # Each task's agent only saw its own task: rewards differ between the goals.
  assert not np.allclose(replay.transitions.reward[0], replay.transitions.reward[3])
  np.testing.assert_array_equal(replay.upto(40).reward, replay.transitions.reward[:, :40])
  with pytest.raises(ValueError, match="multiple of num_envs=4"):
    replay.upto(42)
  with pytest.raises(ValueError, match="keep_replay needs a buffer that holds the whole run"):
    per_task_sac.train_sac_per_task(point_env, tasks, num_timesteps=4000, num_snapshots=3,
                                    seed=0, buffer_size=3000, keep_replay=True, **POINT_SAC)


def test_intervals_after_warmup_and_rlkit_init(point_env, tasks):
  """``intervals_after_warmup`` (CORRO saves agent<i>.pt every 20 iterations counted after its
  random rollouts): the warm-up runs first, then K - 1 equal intervals of the rest; and
  ``init_scheme`` (CORRO's rlkit init) reaches the agents."""
  # The official cheetah-vel numbers: 10k warm-up + 25 intervals of 4,000 iterations x 2 envs.
  assert per_task_sac.schedule(210_000, 26, 2, 10_000, after_warmup=True) == 4_000
  assert per_task_sac.schedule(210_000, 26, 2, 10_000) == 4_200  # equal split, warm-up inside
  with pytest.raises(ValueError, match="multiple of num_envs=4"):
    per_task_sac.schedule(200, 3, 4, 42, after_warmup=True)
  with pytest.raises(ValueError, match="fewer than 2 iterations"):
    per_task_sac.schedule(44, 3, 4, 40, after_warmup=True)
  kw = dict(num_timesteps=200, num_snapshots=3, seed=0, num_envs=4, batch_size=16,
            warmup_steps=40, updates_per_iteration=1, hidden_sizes=(16, 16))
  policies, replay = per_task_sac.train_sac_per_task(point_env, tasks, keep_replay=True,
                                                     intervals_after_warmup=True,
                                                     init_scheme="rlkit", **kw)
  assert policies.steps.tolist() == [0, 120, 200] and replay.num_steps == 200
  # init_scheme="rlkit" reaches the agents: the untrained actors' hidden biases are rlkit's 0.1
  hidden = policies.params["actor"]["params"]["MLP_0"]
  for layer in ("Dense_0", "Dense_1"):
    np.testing.assert_array_equal(hidden[layer]["bias"][0], np.float32(0.1))
  with pytest.raises(ValueError, match="unknown network init"):
    per_task_sac.train_sac_per_task(point_env, tasks, init_scheme="torch", **kw)
  # the first trained snapshot has been updated (80 env steps = 20 updates after the warm-up)
  first, second = (jax.tree.map(lambda x, i=i: x[i], policies.params["actor"]) for i in (0, 1))
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(first),
                                                   jax.tree.leaves(second)))
  # the replay's training intervals follow the unequal snapshot steps: stream position j of an
  # env is iteration j (4 envs: steps (j + 1) * 4), interval 0 up to step 120, then 1; 50 steps
  # per env make two whole 20-step segments
  data = pipeline.replay_dataset(point_env, replay, np.asarray(tasks["goal"]),
                                 snapshot_steps=policies.steps)
  one_env = [0] * 30 + [1] * 10
  assert data.checkpoint_id[0].tolist() == one_env * 4


_DEVICES_SCRIPT = """
import jax, numpy as np
jax.config.update("jax_num_cpu_devices", 2)
from jcomrl import envs
from jcomrl.datagen import per_task_sac
env = envs.make("point_robot")
tasks = jax.tree.map(lambda x: x[np.array([0, 13, 26, 39])], env.all_benchmark_tasks())
kw = dict(num_timesteps=400, num_snapshots=2, seed=0, num_envs=4, batch_size=32,
          warmup_steps=100, updates_per_iteration=2, hidden_sizes=(16, 16))
assert per_task_sac.task_sharding(4).mesh.size == 2 and per_task_sac.task_sharding(3) is None
one = per_task_sac.train_sac_per_task(env, tasks, devices=1, **kw)
two = per_task_sac.train_sac_per_task(env, tasks, devices=2, **kw)
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(two.params)))
print("MAXDIFF", diff)
"""


@pytest.mark.slow
def test_agents_sharded_over_two_cpu_devices_equal_one_device():
  """The task axis split over 2 XLA CPU devices (experiments.collect's default on a 2-core
  host) trains the same agents as one device, up to float rounding."""
  import subprocess
  import sys
  out = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], capture_output=True, text=True,
                       timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  diff = float(out.stdout.split("MAXDIFF")[1])
  assert diff < 1e-4, diff


def test_record_step_by_hand():
  """Both SAC trainers' post-step bookkeeping, on 2 tasks x 2 envs worked out by hand."""
  import types
  t, e, cap = 2, 2, 3
  state = types.SimpleNamespace(
      episode_return=jnp.array([1.0, 2.0, 3.0, 4.0]), ptr=jnp.int32(2), size=jnp.int32(2),
      buffer={"x": jnp.zeros((t, cap))})
  # env (task, env) order: (0,0) (0,1) (1,0) (1,1); envs (0,1) and (1,0) end their episodes
  nxt = types.SimpleNamespace(reward=jnp.array([0.5, 1.0, 1.5, 2.0]),
                              done=jnp.array([0.0, 1.0, 1.0, 0.0]))
  tr = {"x": jnp.array([10.0, 11.0, 12.0, 13.0])}
  ep_ret, stats, buffer, size = per_task_sac.record_step(state, nxt, tr, t, e, cap)
  np.testing.assert_allclose(ep_ret, [1.5, 0.0, 0.0, 6.0])  # reset where an episode ended
  np.testing.assert_allclose(stats["return_sum"], [3.0, 4.5])  # task 0: 2+1, task 1: 3+1.5
  np.testing.assert_allclose(stats["episodes"], [1.0, 1.0])
  # ring buffer of 3: the 2 new rows go to positions 2 and 0 (wrapped)
  np.testing.assert_allclose(buffer["x"], [[11.0, 0.0, 10.0], [13.0, 0.0, 12.0]])
  assert int(size) == 3  # min(2 + 2, 3)
