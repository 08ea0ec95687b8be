"""Evaluation protocols (iid, accumulating, ood, online, task_ood) and representation diagnostics
on point-robot: shapes, determinism given a key, where the OOD contexts come from, env OOD tasks.

Compiled protocol functions are cached per (learner, env, settings), so the module-scoped
learners below compile each protocol once for the whole file.
"""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import collect as collect_cli
from experiments.configs import data as data_config
from jcomrl.algos.config import LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys
from jcomrl.data.dataset import load_dataset
from jcomrl.datagen.pipeline import load_behaviour
from jcomrl.eval import diagnostics, suite
from jcomrl.eval import protocols as P
from jcomrl.rollout import make_segment_rollout

TINY = {"obs_size": 2, "action_size": 2, "task_param_size": 2, "latent_size": 4,
        "encoder_hidden": (16,), "rl_hidden": (16,), "dual_hidden": (16,), "meta_batch_size": 4,
        "context_size": 8, "context_mode": "transitions", "rl_batch_size": 8,
        "steps_per_chunk": 5}
SEEDS = 2


@pytest.fixture(scope="module")
def focal():
  learner = make_learner(LearnerConfig.create(**TINY))
  return learner, learner.init(seed_keys(0, SEEDS)).params


@pytest.fixture(scope="module")
def oracle():
  learner = make_learner(LearnerConfig.create(**dict(TINY, representation="oracle")))
  return learner, learner.init(seed_keys(0, 1)).params


@pytest.fixture(scope="module")
def test_split(point_env):
  rows = np.asarray(point_env.benchmark_split()["test"])
  return rows, jax.tree.map(lambda x: x[rows], point_env.all_benchmark_tasks())


@pytest.fixture(scope="module")
def behaviour_data(tmp_path_factory, point_env):
  """A tiny real dataset: brax PPO behaviour snapshots (data.py:tiny) saved with the data."""
  c = data_config.get_config("tiny")
  c.out = os.path.join(str(tmp_path_factory.mktemp("behaviour")), "point_robot_tiny")
  c.overwrite = True
  collect_cli.generate(c, progress=lambda s: None)
  data, meta = load_dataset(c.out)
  return c.out, data.to_device(), meta, load_behaviour(c.out, point_env)


def _same(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_iid_and_accumulating_shapes_and_determinism(focal, point_env, synthetic_data,
                                                     test_split):
  learner, params = focal
  rows, tasks = test_split
  data = synthetic_data.to_device()
  key = jax.random.key(3)
  r = P.iid_returns(learner, params, point_env, data, rows, tasks, key, num_episodes=2,
                    context_mode="trajectory", context_size=data.segment_length)
  assert r.shape == (SEEDS, len(rows), 2)
  acc = lambda k: P.accumulating_returns(learner, params, point_env, data, rows, tasks, k,
                                         num_episodes=2, num_rounds=3, per_round=16)
  a = acc(key)
  assert a.shape == (SEEDS, len(rows), 2, 3) and np.all(np.isfinite(a))
  _same(a, acc(key))
  assert not np.array_equal(a, acc(jax.random.key(4)))
  # Each round adds context, so z (and with it the episode) changes between rounds.
  assert not np.array_equal(a[..., 0], a[..., -1])


def test_collection_segment_explores_then_acts(focal, point_env, test_split):
  learner, params = focal
  p = jax.tree.map(lambda x: x[0], params)
  task = jax.tree.map(lambda x: x[0], test_split[1])
  collect_seg = jax.jit(P.make_collect_segment(point_env, learner.act))
  z = jnp.zeros(learner.z_size)
  key = jax.random.key(0)
  h = point_env.episode_length
  all_random = collect_seg(p, z, task, key, 0, h)
  half = collect_seg(p, z, task, key, 0, h // 2)
  policy = collect_seg(p, z, task, key, 0, 0)
  # Same keys: the first half are the same uniform draws, the rest are policy actions.
  np.testing.assert_array_equal(half.action[:h // 2], all_random.action[:h // 2])
  assert not np.allclose(half.action[h // 2:], all_random.action[h // 2:])
  assert not np.allclose(policy.action[:h // 2], all_random.action[:h // 2])
  # Transitions are real: next_obs of step i is obs of step i + 1 (no termination here).
  np.testing.assert_array_equal(half.next_obs[:-1], half.obs[1:])


def test_online_protocols_shapes_and_determinism(focal, oracle, point_env, test_split):
  learner, params = focal
  _, tasks = test_split
  run = lambda mode, k: P.online_returns(learner, params, point_env, tasks, k, mode=mode,
                                         num_episodes=2, num_rounds=3)
  key = jax.random.key(5)
  prior, nonprior = run("prior", key), run("nonprior", key)
  assert prior.shape == nonprior.shape == (SEEDS, 10, 2, 3)
  _same(nonprior, run("nonprior", key))
  assert not np.array_equal(prior, nonprior)  # different exploration -> different contexts
  assert not np.array_equal(nonprior, run("nonprior", jax.random.key(6)))
  with pytest.raises(ValueError, match="unknown online mode 'thompson'"):
    run("thompson", key)
  # The oracle ignores the context: every round after the first inference (CSRO's schedule:
  # round 1 on point-robot, whose first evaluation episode runs with z = 0) is the same.
  o_learner, o_params = oracle
  o = P.online_returns(o_learner, o_params, point_env, tasks, key, mode="nonprior",
                       num_episodes=1, num_rounds=3)
  np.testing.assert_allclose(o[..., 1], o[..., -1])


@pytest.mark.slow
def test_ood_contexts_come_from_other_tasks_behaviour_policies(behaviour_data, point_env,
                                                               test_split):
  _, data, _, beh = behaviour_data
  rows, tasks = test_split
  vecs = np.asarray(data.task_params)
  pairs = P.ood_pairs(beh.num_snapshots, range(len(vecs)), "all")  # every (snapshot, task)
  assert pairs.shape == (beh.num_snapshots * 40, 2)
  key = jax.random.key(7)
  ctx = P.behaviour_contexts(point_env, beh, tasks, vecs[pairs[:, 1]], pairs[:, 0], key,
                             deterministic=True)
  h = point_env.episode_length
  assert ctx.reward.shape == (len(rows), len(pairs), h)
  # Rolled in the *test* task: rewards are the test task's (-distance to its goal) ...
  goals = np.asarray(tasks["goal"])[:, None, None, :]
  np.testing.assert_allclose(ctx.reward, -np.linalg.norm(np.asarray(ctx.next_obs) - goals,
                                                         axis=-1), rtol=1e-5, atol=1e-6)
  # ... with the actions of snapshot k conditioned on task j (the claimed pair).
  def mode_action(k, cond, obs):
    policy = beh.make_policy(jax.tree.map(lambda x: jnp.asarray(x)[k], beh.params), True)
    return policy(jnp.concatenate([obs, cond]), jax.random.key(0))[0]

  per_step = jax.vmap(mode_action, in_axes=(None, None, 0))
  per_pair = jax.vmap(per_step, in_axes=(0, 0, 0))
  want = jax.jit(jax.vmap(per_pair, in_axes=(None, None, 0)))(
      jnp.asarray(pairs[:, 0]), jnp.asarray(vecs[pairs[:, 1]]), ctx.obs)
  np.testing.assert_allclose(ctx.action, want, rtol=1e-5, atol=1e-6)
  # The pair conditioned on the test task itself is exactly that task's own behaviour rollout
  # (the conditioning wrapper is transparent), and other tasks' pairs differ from it.
  own_rollout = jax.jit(make_segment_rollout(point_env, beh.make_policy, True))
  k_exp = beh.num_snapshots - 1
  snap = jax.tree.map(lambda x: x[k_exp], beh.params)
  for t, row in enumerate(rows[:3]):
    q_own = int(np.nonzero((pairs[:, 0] == k_exp) & (pairs[:, 1] == row))[0][0])
    task = jax.tree.map(lambda x, t=t: x[t], tasks)
    own = own_rollout(snap, task, P.pair_key(key, t, q_own))
    np.testing.assert_allclose(ctx.obs[t, q_own], own.obs, rtol=1e-6)
    q_far = int(np.nonzero((pairs[:, 0] == k_exp) & (pairs[:, 1] == 39 - row))[0][0])
    assert not np.allclose(ctx.obs[t, q_far], own.obs)
  # Stochastic contexts (the protocol's default) are deterministic given the key.
  sto = lambda k: P.behaviour_contexts(point_env, beh, tasks, vecs[pairs[:8, 1]], pairs[:8, 0],
                                       k)
  _same(sto(key), sto(key))
  assert not np.array_equal(sto(key).action, sto(jax.random.key(8)).action)


@pytest.mark.slow
def test_ood_and_task_ood_protocol_results(behaviour_data, focal, point_env):
  _, data, meta, beh = behaviour_data
  learner, params = focal
  settings = suite.EvalSettings(num_episodes=1, context_size=8, task_ood_num_tasks=6)
  ood = suite.run_protocol("ood", learner, params, point_env, data, meta, settings, step=0,
                           behaviour=beh)
  r = np.asarray(ood["ood"]["returns"])
  assert r.shape == (SEEDS, 10, (beh.num_snapshots - 1) * 40)  # trained snapshots only
  assert ood["ood"]["snapshots"] == list(range(1, beh.num_snapshots))
  # Score = mean over policies of the mean over test tasks (per seed, then over seeds).
  np.testing.assert_allclose(ood["score"]["seed_means"], r.mean(axis=1).mean(axis=1))
  norm = meta["normalisation"]
  np.testing.assert_allclose(ood["score"]["normalised"], 100 * (r.mean() - norm["random"])
                             / (norm["expert"] - norm["random"]))
  again = suite.run_protocol("ood", learner, params, point_env, data, meta, settings, step=0,
                             behaviour=beh)
  assert again["ood"]["returns"] == ood["ood"]["returns"]
  t_ood = suite.run_protocol("task_ood", learner, params, point_env, data, meta, settings,
                             step=0, behaviour=beh)
  assert np.asarray(t_ood["task_ood"]["returns"]).shape == (SEEDS, 6, beh.num_snapshots)
  angles = np.arctan2(*np.asarray(t_ood["task_ood"]["task_vectors"]).T[::-1]) % (2 * np.pi)
  assert np.all(angles > np.pi)  # lower half circle: outside the training goals
  assert set(t_ood["task_ood"]["normalisation"]) >= {"random", "expert"}
  with pytest.raises(ValueError, match="behaviour snapshots"):
    suite.run_protocol("ood", learner, params, point_env, data, meta, settings, step=0)


def test_env_ood_tasks(point_env):
  g = np.asarray(point_env.ood_tasks(8)["goal"])
  angle = np.arctan2(g[:, 1], g[:, 0]) % (2 * np.pi)
  assert g.shape == (8, 2) and np.all((angle > np.pi) & (angle < 2 * np.pi))
  np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-6)
  from jcomrl import envs

  v = np.asarray(envs.make("cheetah_vel").ood_tasks(5)["velocity"])
  assert np.all((v > 3.0) & (v <= 4.0)) and len(np.unique(v)) == 5
  with pytest.raises(NotImplementedError, match="'cheetah_dir'.*no out-of-distribution"):
    envs.make("cheetah_dir").ood_tasks(3)


def test_diagnostics_oracle_codes_are_perfect(oracle, focal, synthetic_data, tmp_path):
  learner, params = oracle
  rows = np.asarray(range(2, 40, 4))
  data = synthetic_data.to_device()
  res, z = diagnostics.representation_diagnostics(learner, params, data, rows,
                                                  jax.random.key(0), num_contexts=8,
                                                  context_size=8)
  assert z.shape == (1, 10, 8, 2)
  assert res["probe_r2"] > 0.999
  assert res["mi_max"] == pytest.approx(math.log(10))
  assert 0.8 * math.log(10) < res["mi_lower_bound"] <= math.log(10) + 1e-6
  assert res["heldout_accuracy"] == 1.0
  f_learner, f_params = focal
  res_f, z_f = diagnostics.representation_diagnostics(f_learner, f_params, data, rows,
                                                      jax.random.key(0), num_contexts=8,
                                                      context_size=8)
  assert z_f.shape == (SEEDS, 10, 8, 4) and len(res_f["seed_probe_r2"]) == SEEDS
  # The summary is the mean over seeds, and seed 0's probe R^2 is the held-out R^2 of a
  # least-squares fit on the first half of each task's contexts, recomputed here (lstsq; the
  # probe's 1e-3 ridge moves it by far less than the tolerance).
  assert res_f["probe_r2"] == pytest.approx(np.mean(res_f["seed_probe_r2"]))
  zs = np.asarray(z_f[0], np.float64)
  tp = np.broadcast_to(np.asarray(data.task_params, np.float64)[rows][:, None], (10, 8, 2))
  design = lambda a: np.concatenate([a.reshape(-1, a.shape[-1]), np.ones((a[..., 0].size, 1))], 1)
  w = np.linalg.lstsq(design(zs[:, :4]), tp[:, :4].reshape(-1, 2), rcond=None)[0]
  y = tp[:, 4:].reshape(-1, 2)
  r2 = 1.0 - np.sum((design(zs[:, 4:]) @ w - y) ** 2) / np.sum((y - y.mean(0)) ** 2)
  assert res_f["seed_probe_r2"][0] == pytest.approx(r2, abs=2e-2)
  # An untrained encoder's codes classify the held-out tasks worse than the oracle's.
  assert res_f["mi_lower_bound"] < res["mi_lower_bound"] - 0.1
  written = diagnostics.plot_embedding(z[0], np.asarray(data.task_params)[rows],
                                       str(tmp_path / "codes.png"), "oracle")
  assert os.path.getsize(written[0]) > 1000


def test_derangement_has_no_fixed_point_and_is_a_permutation():
  for n in (2, 3, 10, 20):
    for s in range(5):
      perm = P.derangement(n, jax.random.key(s))
      assert sorted(perm.tolist()) == list(range(n))
      assert np.all(perm != np.arange(n))
  with pytest.raises(ValueError, match="at least 2"):
    P.derangement(1, jax.random.key(0))


def test_z_shuffle_control_hurts_a_code_following_policy_and_only_the_code_differs(
    oracle, point_env, synthetic_data, test_split):
  """A scripted agent whose code is the true goal and which walks to its code: the z-shuffle
  control (another test task's code) must cost return; with the identity permutation the
  control's episodes are exactly the iid headline's (same contexts, same keys)."""
  import dataclasses

  learner, params = oracle
  goal_seeker = dataclasses.replace(
      learner, encode=lambda p, ctx, tp, key=None: tp,
      act=lambda p, obs, z, k, det: jnp.clip(4.0 * (z - obs[:2]), -1.0, 1.0))
  rows, _ = test_split
  meta = {"split": {"test": rows.tolist()}}
  data = synthetic_data.to_device()
  settings = suite.EvalSettings(num_episodes=2)
  iid = suite.iid_results(goal_seeker, params, point_env, data, meta, settings,
                          accumulate=False)["iid"]
  shuf = suite.run_protocol("z_shuffle", goal_seeker, params, point_env, data, meta, settings,
                            step=0)
  perm = np.asarray(shuf["z_shuffle"]["permutation"])
  assert np.all(perm != np.arange(len(rows)))
  # the protocol's random pairs (the ones the official drivers reuse), not a rotation of the
  # split's order (neighbours on a split sorted by the task parameter)
  np.testing.assert_array_equal(perm, suite.z_shuffle_permutation(len(rows), settings))
  assert len({int(d) for d in (perm - np.arange(len(rows))) % len(rows)}) > 1
  assert shuf["score"]["variant"] == "z_shuffle"
  drop = iid["mean"] - shuf["z_shuffle"]["mean"]
  assert drop > 2.0, (iid["mean"], shuf["z_shuffle"]["mean"])
  # identity permutation: bit-identical to the iid headline
  tasks = jax.tree.map(lambda x: x[rows], point_env.all_benchmark_tasks())
  same = P.iid_returns(goal_seeker, params, point_env, data, rows, tasks,
                       jax.random.key(settings.seed), num_episodes=2, context_mode="trajectory",
                       context_size=data.segment_length, z_permutation=np.arange(len(rows)))
  np.testing.assert_array_equal(np.asarray(same), np.asarray(iid["returns"]))


def test_z_shuffle_of_a_code_blind_agent_is_bit_identical_to_iid(oracle, point_env,
                                                                 synthetic_data, test_split):
  """Through the protocols themselves: an agent whose actions ignore z (random actions drawn
  from the rollout key only) must get exactly the iid headline's returns under the z-shuffle
  control: same episodes, same keys; only the code differs, and it is unused. A z-shuffle whose
  rollouts are not paired with the iid episodes (another key) fails here."""
  import dataclasses

  learner, params = oracle
  blind = dataclasses.replace(
      learner, encode=lambda p, ctx, tp, key=None: tp,
      act=lambda p, obs, z, k, det: jax.random.uniform(k, (2,), minval=-1.0, maxval=1.0))
  rows, _ = test_split
  meta = {"split": {"test": rows.tolist()}}
  data = synthetic_data.to_device()
  settings = suite.EvalSettings(num_episodes=2, seed=3)
  iid = suite.iid_results(blind, params, point_env, data, meta, settings, accumulate=False)
  shuf = suite.run_protocol("z_shuffle", blind, params, point_env, data, meta, settings,
                            step=0)
  a = np.asarray(iid["iid"]["returns"])  # the iid protocol's headline variant
  b = np.asarray(shuf["z_shuffle"]["returns"])
  assert a.shape == b.shape == (1, len(rows), 2)
  assert len(np.unique(a)) == a.size  # random actions: every episode's return differs
  np.testing.assert_array_equal(b, a)
  other = suite.run_protocol("z_shuffle", blind, params, point_env, data, meta,
                             dataclasses.replace(settings, seed=4), step=0)
  assert not np.array_equal(np.asarray(other["z_shuffle"]["returns"]), a)  # keys matter


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_online_random_fraction_outside_0_1_is_refused(point_env, test_split, fraction):
  """Found by the blind mutation ``online_random_fraction`` of tools/mutants.py: nothing
  checked the bound. Refused before anything is compiled (no learner needed)."""
  with pytest.raises(ValueError, match="random_fraction must be in"):
    P.online_returns(None, None, point_env, test_split[1], jax.random.key(0), mode="nonprior",
                     num_episodes=1, random_fraction=fraction)


def test_normalised_scores_by_hand():
  """``100 (R - random) / (expert - random)``, per seed and overall (D4RL's normalisation)."""
  norm = {"random": -20.0, "expert": -5.0}
  assert suite.normalise(-10.0, norm) == pytest.approx(100.0 * 10.0 / 15.0)
  assert suite.normalise(-20.0, norm) == pytest.approx(0.0)
  assert suite.normalise(-5.0, norm) == pytest.approx(100.0)
  assert suite.normalise(-10.0, None) is None
  assert suite.normalise(-10.0, {"random": -5.0, "expert": -5.0}) is None
  r = np.array([[[-8.0, -12.0]], [[-17.0, -17.0]]])  # [S=2, T=1, E=2]
  out = suite.summarise(r, norm)
  assert out["mean"] == pytest.approx(-13.5)
  assert out["normalised"] == pytest.approx(100.0 * 6.5 / 15.0)
  np.testing.assert_allclose(out["seed_normalised"], [100.0 * 10.0 / 15.0, 100.0 * 3.0 / 15.0])


def test_protocol_keys_are_fixed_ids():
  """Each protocol's stream depends on its own fixed id, never on its place in PROTOCOLS."""
  assert set(suite.PROTOCOL_IDS) == set(suite.PROTOCOLS)
  assert len(set(suite.PROTOCOL_IDS.values())) == len(suite.PROTOCOL_IDS)
  assert suite.PROTOCOL_IDS["iid"] == 0 and suite.PROTOCOL_IDS["task_ood"] == 3


def test_the_z_shuffle_pairs_tasks_at_random_not_neighbours_in_split_order():
  """The control's pairs are a random derangement: never a task's own code, and not a rotation
  of the split's order (the split lists cheetah_vel's test tasks by velocity, so a rotation by
  one gives every task its neighbour's code and hides the drop: the official FOCAL driver's first
  control). The same pairs for the same seed, other pairs for another."""
  for n in (2, 5, 20):
    perm = np.asarray(suite.z_shuffle_permutation(n))
    assert sorted(perm.tolist()) == list(range(n)) and not np.any(perm == np.arange(n))
  perm = np.asarray(suite.z_shuffle_permutation(20))
  shifts = {int(d) for d in (perm - np.arange(20)) % 20}
  assert len(shifts) > 1, "a rotation of the split's order"
  np.testing.assert_array_equal(perm, suite.z_shuffle_permutation(20))
  other = suite.z_shuffle_permutation(20, suite.EvalSettings(seed=7))
  assert not np.array_equal(perm, np.asarray(other))
