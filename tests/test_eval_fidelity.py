"""Evaluation protocols follow the official codes (issue 13 items 3, 4, 6, 8), on tiny inputs.

* CSRO's online schedule encodes exactly the transitions CSRO would (the encoder is replaced by
  a fingerprint of its context, the policy by a known deterministic action);
* the OOD behaviour sources exclude the untrained snapshot by default;
* episode ends per env variant: stored terminal 0 and evaluation summing every step past a fall
  ("no_terminal", UNICORN/CORRO) vs true terminals and a stop at the first done (FOCAL/CSRO), on
  a hand-made env that "falls" at step 3;
* sampled vs mean codes at evaluation differ only for the stochastic encoder.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos.config import LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys
from jcomrl.data.dataset import episode_ids, episode_returns
from jcomrl.datagen import collect
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.base import EnvState, TaskEnv
from jcomrl.eval import protocols as P
from jcomrl.eval import rollout, suite
from jcomrl.rollout import make_segment_rollout

TINY = {"obs_size": 2, "action_size": 2, "task_param_size": 2, "latent_size": 4,
        "encoder_hidden": (8,), "rl_hidden": (8,), "dual_hidden": (8,), "meta_batch_size": 2,
        "context_size": 8, "context_mode": "transitions", "rl_batch_size": 4,
        "steps_per_chunk": 1}


def fingerprint(ctx):
  """The fake encoder's code: context size, reward sum, first obs coordinate sum, action sum."""
  return jnp.stack([ctx.reward.shape[0] / 100.0, jnp.sum(ctx.reward), jnp.sum(ctx.obs[:, 0]),
                    jnp.sum(ctx.action[:, 0])])


def policy_action(z):
  """The fake policy: one known action per code, the same whether stochastic or not."""
  return jnp.stack([0.5 * jnp.tanh(z[1]) + 0.1, -0.2 + 0.0 * z[0]])


@pytest.fixture(scope="module")
def fake_learner():
  learner = make_learner(LearnerConfig.create(**TINY))
  return dataclasses.replace(
      learner, encode=lambda p, ctx, tp, key=None: fingerprint(ctx),
      act=lambda p, obs, z, key, det: policy_action(z))


def _run(learner, env, mode, schedule, rounds, infer_after):
  run = jax.jit(P.make_online_run(learner, env, mode=mode, schedule=schedule, num_rounds=rounds,
                                  infer_after=infer_after))
  task = jax.tree.map(lambda x: x[2], env.all_benchmark_tasks())
  explore = round(0.5 * rounds * env.episode_length) if mode == "nonprior" else 0
  rets, zs, buf = run({}, task, env.task_vector(task), jax.random.key(0), explore)
  return np.asarray(rets), np.asarray(zs), jax.tree.map(np.asarray, buf), task


def _prefix(buf, n):
  return jax.tree.map(lambda x: jnp.asarray(x[:n]), buf)


@pytest.mark.parametrize("rounds,infer_after",  # CSRO MuJoCo, point-robot (20 rounds: slow)
                         [(3, 2), pytest.param(20, 1, marks=pytest.mark.slow)])
def test_csro_nonprior_schedule_encodes_what_csro_encodes(fake_learner, point_env, rounds,
                                                          infer_after):
  h = point_env.episode_length
  rets, zs, buf, task = _run(fake_learner, point_env, "nonprior", "csro", rounds, infer_after)
  # Evaluation episodes run with the reported codes (point-robot and the fake policy are
  # deterministic, so the return depends on z only).
  episode = jax.jit(rollout.make_episode_return(point_env, fake_learner.act))
  want = [episode({}, jnp.asarray(z), task, jax.random.key(9)) for z in zs]
  np.testing.assert_allclose(rets, want, rtol=1e-5)
  assert rets.shape == (rounds,) and buf.reward.shape == (rounds * h,)
  is_policy = np.zeros((rounds, h), bool)
  for r in range(rounds):
    # Evaluation episode r runs with z = 0 until infer_after evaluation episodes have run, then
    # with the code of collection episodes 0..r-1 (inference after each evaluation episode).
    want = np.zeros(4) if r < infer_after else fingerprint(_prefix(buf, r * h))
    np.testing.assert_allclose(zs[r], want, rtol=1e-5, atol=1e-6)
    # Collection episode r acts with that same z: random actions for the first half of all
    # collection steps (CSRO's epsilon_decay), policy actions after.
    seg = buf.action[r * h:(r + 1) * h]
    policy = np.broadcast_to(np.asarray(policy_action(jnp.asarray(zs[r]))), seg.shape)
    is_policy[r] = np.all(np.isclose(seg, policy, rtol=1e-6), axis=-1)
  np.testing.assert_array_equal(is_policy.reshape(-1), np.arange(rounds * h) >= rounds * h // 2)
  if rounds == 20:  # CSRO point-robot: 10 random collection episodes, then 10 policy ones
    assert np.sum(~is_policy.any(axis=1)) == 10 and np.sum(is_policy.all(axis=1)) == 10
  # The old schedule evaluates round r with the code of collection episodes 0..r.
  _, zs_old, buf_old, _ = _run(fake_learner, point_env, "nonprior", "reinfer_each_round", rounds,
                            infer_after)
  for r in range(rounds):
    np.testing.assert_allclose(zs_old[r], fingerprint(_prefix(buf_old, (r + 1) * h)), rtol=1e-5)


def test_csro_prior_mode_evaluation_episodes_are_the_context(fake_learner, point_env):
  h, rounds, infer_after = point_env.episode_length, 3, 2
  rets, zs, buf, _ = _run(fake_learner, point_env, "prior", "csro", rounds, infer_after)
  for r in range(rounds):
    want = np.zeros(4) if r < infer_after else fingerprint(_prefix(buf, r * h))
    np.testing.assert_allclose(zs[r], want, rtol=1e-5, atol=1e-6)
    seg = jax.tree.map(lambda x, r=r: x[r * h:(r + 1) * h], buf)
    # The context of round r is its deterministic evaluation episode itself.
    np.testing.assert_allclose(seg.action, np.broadcast_to(policy_action(jnp.asarray(zs[r])),
                                                           seg.action.shape), rtol=1e-6)
    np.testing.assert_allclose(rets[r], seg.reward.sum(), rtol=1e-5)


def test_online_defaults_follow_csro_configs(point_env):
  assert P.csro_online_defaults(point_env) == (20, 1)
  # num_steps_per_eval / max_path_length and num_exp_traj_eval: ant-goal.json (ant-dir takes
  # CSRO's ant-goal settings) 800 / 200 = 4 and 2; walker_rand_params.json 600 / 200 = 3 and 2.
  fake = lambda name: type("E", (), {"name": name})()
  assert P.csro_online_defaults(fake("ant_dir")) == (4, 2)
  for name in ("cheetah_vel", "cheetah_dir", "hopper_param", "walker_param"):
    assert P.csro_online_defaults(fake(name)) == (3, 2)
  settings = suite.EvalSettings()
  assert settings.online_schedule == "csro" and settings.online_rounds is None
  with pytest.raises(ValueError, match="unknown online schedule 'pearl'"):
    P.make_online_run(None, point_env, mode="prior", schedule="pearl", num_rounds=3,
                      infer_after=1)


def test_ood_sources_exclude_the_untrained_snapshot():
  pairs = P.ood_pairs(5, range(3))
  assert sorted(set(pairs[:, 0])) == [1, 2, 3, 4] and len(pairs) == 4 * 3
  assert 0 in P.ood_pairs(5, range(3), "all")[:, 0]
  assert P.ood_snapshot_ids(4, (0, 2)) == [0, 2]
  assert suite.EvalSettings().ood_snapshots == "trained"
  assert suite.EvalSettings.from_dict({"ood_snapshots": None}).ood_snapshots == "trained"
  assert suite.EvalSettings.from_dict({"ood_snapshots": [0, 3]}).ood_snapshots == (0, 3)
  # with the snapshots' steps, "trained" is every snapshot after a step > 0: jcomrl's untrained
  # snapshot 0 stays out, the official agents (agent20 first, all trained) are all in
  assert P.ood_snapshot_ids(3, "trained", steps=[0, 4000, 8000]) == [1, 2]
  assert P.ood_snapshot_ids(3, "trained", steps=[18000, 26000, 34000]) == [0, 1, 2]
  assert sorted(set(P.ood_pairs(3, range(2), steps=[18000, 26000, 34000])[:, 0])) == [0, 1, 2]
  with pytest.raises(ValueError, match="unknown ood snapshot set 'untrained'"):
    P.ood_pairs(5, range(3), "untrained")


class Faller(TaskEnv):
  """1-d toy: reward 1 every step; the body "falls" (true termination) from step 3 on and stays
  down, like a fallen walker that keeps its alive bonus."""

  name = "faller"
  observation_size = 1
  action_size = 1
  episode_length = 6
  task_size = 1

  def __init__(self, end_convention):
    self.end_convention = end_convention

  def sample_tasks(self, key, n):
    return {"g": jnp.zeros((n,))}

  def all_benchmark_tasks(self):
    return {"g": jnp.zeros((2,))}

  def benchmark_split(self):
    return {"train": [0], "test": [1]}

  def task_vector(self, task):
    return task["g"][None]

  def reset(self, key, task):
    zero = jnp.zeros((), jnp.float32)
    return EnvState(physics=zero, obs=zero[None], reward=zero, done=zero, truncation=zero,
                    step_count=jnp.zeros((), jnp.int32))

  def step(self, state, action, task):
    t = state.step_count + 1
    done, truncation = self._time_limit(t, t >= 3)
    return state.replace(physics=t.astype(jnp.float32), obs=t.astype(jnp.float32)[None],
                         reward=jnp.ones((), jnp.float32), done=done, truncation=truncation,
                         step_count=t)


@pytest.mark.parametrize("convention,stored_terminal,stored_timeout,eval_return", [
    ("true_terminal", [0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0], 3.0),
    ("no_terminal", [0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1], 6.0)])
def test_episode_end_conventions(convention, stored_terminal, stored_timeout, eval_return):
  env = Faller(convention)
  task = {"g": jnp.zeros(())}
  make_policy = lambda params, det: (lambda obs, key: (jnp.zeros(1), {}))
  seg = make_segment_rollout(env, make_policy)({}, task, jax.random.key(0))
  # The collection segment resets after the fall (a 2nd episode falls at its step 3 again).
  np.testing.assert_array_equal(seg.obs[:, 0], [0, 1, 2, 0, 1, 2])
  np.testing.assert_array_equal(seg.terminal, stored_terminal)
  np.testing.assert_array_equal(seg.timeout, stored_timeout)
  act = lambda p, obs, z, key, det: jnp.zeros(1)
  ret = rollout.make_episode_return(env, act)(None, jnp.zeros(1), task, jax.random.key(0))
  assert float(ret) == eval_return  # 3: stop at the first done; 6: every step past the fall
  # The recorded evaluation episode (PEARL prior mode) counts the same.
  ret_rec, _ = rollout.make_recorded_episode(env, act)(None, jnp.zeros(1), task,
                                                       jax.random.key(0))
  assert float(ret_rec) == eval_return
  # Normalisation anchors count as evaluation does.
  policies = BehaviourPolicies(params={"w": jnp.zeros((2,))}, steps=np.arange(2),
                                       make_policy=make_policy, hidden_sizes=())
  anchors = collect.snapshot_returns(env, policies, env.all_benchmark_tasks(),
                                     jax.random.key(1), episodes=1)
  np.testing.assert_array_equal(anchors, np.full((2, 2), eval_return))
  # A stored episode ending in a fall inside its segment is complete under both conventions
  # (under "no_terminal" a fall at the segment's last step cannot be told from the cut).
  flat = lambda x: np.asarray(x)[None]
  ids = episode_ids(flat(seg.terminal), flat(seg.timeout))
  eps = episode_returns(flat(seg.reward), flat(seg.terminal), flat(seg.timeout), ids,
                        np.zeros((1, 6), np.int32), segment_length=6)
  np.testing.assert_array_equal(eps[0][1], [3.0, 3.0] if convention == "true_terminal"
                                else [3.0])


def test_hopper_walker_variants_declare_their_convention():
  from jcomrl.envs.hopper import HopperParam
  from jcomrl.envs.walker import WalkerParam

  for cls in (HopperParam, WalkerParam):
    assert cls.VARIANTS["unicorn"]["end_convention"] == "no_terminal"
    assert cls.VARIANTS["focal"]["end_convention"] == "true_terminal"
    assert cls.VARIANTS["csro"]["end_convention"] == "true_terminal"
  assert WalkerParam().end_convention == "no_terminal"
  assert WalkerParam(variant="csro").end_convention == "true_terminal"
  assert WalkerParam(end_convention="true_terminal").end_convention == "true_terminal"
  with pytest.raises(ValueError, match="end_convention must be one of"):
    WalkerParam(end_convention="never")


def test_sampled_code_differs_only_for_the_stochastic_encoder(synthetic_data):
  data = synthetic_data.to_device()
  ctx = jax.tree.map(lambda x: x[0, :16], data.transitions)
  tp = data.task_params[0]
  key = jax.random.key(3)
  for encoder, differs in (("stochastic", True), ("mean_tanh", False)):
    learner = make_learner(LearnerConfig.create(**dict(TINY, encoder=encoder)))
    params = jax.tree.map(lambda x: x[0], learner.init(seed_keys(0, 1)).params)
    sample = jax.jit(P.make_encode(learner, "sample"))(params, ctx, tp, key)
    mean = jax.jit(P.make_encode(learner, "mean"))(params, ctx, tp, key)
    again = jax.jit(P.make_encode(learner, "sample"))(params, ctx, tp, key)
    np.testing.assert_array_equal(sample, again)  # deterministic given the key
    assert (not np.allclose(sample, mean)) == differs, encoder
  assert suite.EvalSettings().encoder_code == "sample"
  with pytest.raises(ValueError, match="unknown encoder code mode 'mode'"):
    P.make_encode(learner, "mode")


def test_eval_settings_refuse_unknown_keys():
  with pytest.raises(ValueError, match=r"unknown evaluation setting\(s\) \['num_episode'\]"):
    suite.EvalSettings.from_dict({"num_episode": 3})
