"""The decision-transformer backbone (issue 19): its causal mask, the return-to-go bookkeeping of
the segment sampler, the prompt and the evaluation state, the memoryless policies' unchanged
rollouts, and short learning runs of ``prompt_dt`` and ``focal_dt`` on point-robot."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos import presets
from jcomrl.algos.backbones.base import memoryless_policy
from jcomrl.algos.compose import check
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import episode_bookkeeping, prompt_segment, sample_segments
from jcomrl.eval import protocols as P
from jcomrl.eval import rollout
from jcomrl.nets.transformer import DecisionTransformer
from jcomrl.rollout import first_episode_returns, record_segment
from jcomrl.types import Segment, Transition, segment_to_vector, vector_to_segment

K = 6


def _net(prefix="code", prompt_length=0):
  return DecisionTransformer(obs_size=3, action_size=2, embed=16, layers=1, heads=1, dropout=0.0,
                             max_timestep=50, prefix=prefix, prompt_length=prompt_length)


def _segment(key, k=K, mask=None):
  ko, ka, kr = jax.random.split(key, 3)
  return Segment(obs=jax.random.normal(ko, (k, 3)), action=jax.random.uniform(ka, (k, 2)),
                 rtg=jax.random.normal(kr, (k,)), timestep=jnp.arange(k, dtype=jnp.int32) + 3,
                 mask=jnp.ones((k,)) if mask is None else mask)


def _perturb(seg, steps, fields=("obs", "action", "rtg", "timestep")):
  """``seg`` with the inputs of ``steps`` changed (numpy: no compile per call)."""
  sel = np.zeros((seg.rtg.shape[0],), bool)
  sel[list(steps)] = True
  out = {}
  for f in fields:
    x = np.asarray(getattr(seg, f))
    s = sel.reshape(sel.shape + (1,) * (x.ndim - 1))
    out[f] = np.where(s, x + (7 if f == "timestep" else 1.5), x).astype(x.dtype)
  return seg.replace(**out)


def test_causal_mask_no_position_sees_the_future():
  net, seg, z = _net("code"), _segment(jax.random.key(0)), jnp.ones((4,))
  params = jax.jit(net.init)(jax.random.key(1), seg, z)
  apply = jax.jit(net.apply)
  base = apply(params, seg, z)
  for t in range(K - 1):
    later = apply(params, _perturb(seg, list(range(t + 1, K))), z)
    np.testing.assert_array_equal(np.asarray(later[:t + 1]), np.asarray(base[:t + 1]))
    # a_t comes after s_t in the sequence, so it does not inform the prediction of a_t either.
    own_action = apply(params, _perturb(seg, [t], ("action",)), z)
    np.testing.assert_array_equal(np.asarray(own_action[:t + 1]), np.asarray(base[:t + 1]))
    assert not np.allclose(own_action[t + 1], base[t + 1])
    for s in range(t + 1):  # every earlier (or the same) step informs the prediction at t
      earlier = apply(params, _perturb(seg, [s], ("obs",)), z)
      assert not np.allclose(earlier[t], base[t]), (s, t)


def test_padding_and_the_task_tokens():
  net = _net("prompt", prompt_length=3)
  mask = jnp.asarray([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
  seg = _segment(jax.random.key(0), mask=mask)
  prompt = _segment(jax.random.key(2), k=3)
  z = segment_to_vector(prompt)
  assert z.shape == (3 * (3 + 3 + 2),)
  back = vector_to_segment(z, 3, 3)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(prompt)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b))
  params = jax.jit(net.init)(jax.random.key(1), seg, z)
  apply = jax.jit(net.apply)
  base = apply(params, seg, z)
  padded = apply(params, _perturb(seg, [0, 1]), z)  # padded steps are never attended to
  np.testing.assert_array_equal(np.asarray(padded[2:]), np.asarray(base[2:]))
  other = apply(params, seg, segment_to_vector(_perturb(prompt, [1], ("obs",))))
  assert not np.allclose(other[2], base[2])  # the prompt conditions every step
  drop = DecisionTransformer(obs_size=3, action_size=2, embed=16, layers=1, heads=1, dropout=0.5,
                             max_timestep=50, prefix="prompt", prompt_length=3)
  train = jax.jit(lambda k: drop.apply(params, seg, z, True, rngs={"dropout": k}))
  assert not np.allclose(train(jax.random.key(0)), train(jax.random.key(1)))  # training only


def _tiny_dataset():
  """One task, two stored segments of 6 steps; obs = [row, 0, 0] names each row.

  Segment 0 holds two episodes: steps 0-2 end with a termination (terminal at step 2, reset),
  steps 3-5 end at the time limit; segment 1 is one episode ending at the time limit.
  """
  n, length = 12, 6
  reward = jnp.asarray([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
  terminal = jnp.zeros((n,)).at[2].set(1.0)
  timeout = jnp.zeros((n,)).at[5].set(1.0).at[11].set(1.0)
  obs = jnp.stack([jnp.arange(n, dtype=jnp.float32), jnp.zeros(n), jnp.zeros(n)], -1)
  tr = Transition(obs=obs[None], action=jnp.stack([reward, -reward], -1)[None] / 100,
                  reward=reward[None], next_obs=obs[None], terminal=terminal[None],
                  timeout=timeout[None])
  return OfflineDataset(transitions=tr, checkpoint_id=jnp.zeros((1, n), jnp.int32),
                        episode_id=jnp.zeros((1, n), jnp.int32), task_params=jnp.zeros((1, 1)),
                        segment_length=length)


def test_episode_bookkeeping_by_hand():
  data = _tiny_dataset()
  tr = data.transitions
  rtg, timestep, end = episode_bookkeeping(tr.reward.reshape(2, 6), tr.terminal.reshape(2, 6),
                                           tr.timeout.reshape(2, 6))
  np.testing.assert_allclose(rtg, [[6, 5, 3, 15, 11, 6], [75, 65, 54, 42, 29, 15]])
  np.testing.assert_array_equal(timestep, [[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5]])
  np.testing.assert_array_equal(end, [[2, 2, 2, 5, 5, 5], [5, 5, 5, 5, 5, 5]])
  # "no_terminal": the fall is stored as a timeout, the episode boundary is the same.
  alt = episode_bookkeeping(tr.reward.reshape(2, 6), jnp.zeros((2, 6)),
                            jnp.maximum(tr.terminal, tr.timeout).reshape(2, 6))
  np.testing.assert_allclose(alt[0], rtg)
  np.testing.assert_array_equal(alt[1], timestep)


def test_segment_sampler_returns_to_go_and_padding_by_hand():
  data = _tiny_dataset()
  draw = jax.jit(sample_segments, static_argnums=(3, 4, 5))
  seg = draw(jax.random.key(0), data, jnp.zeros((1,), jnp.int32), 400, 4, 2.0)
  seg = jax.tree.map(lambda x: np.asarray(x[0]), seg)
  first = np.argmax(seg.mask > 0, axis=1)
  starts = seg.obs[np.arange(400), first, 0].astype(int)
  assert set(starts) == set(range(12))  # every stored step can start a window
  expected = {  # start row -> (mask, rtg * 2, timestep, rows)
      1: ([0, 0, 1, 1], [0, 0, 5, 3], [0, 0, 1, 2], [1, 2]),
      2: ([0, 0, 0, 1], [0, 0, 0, 3], [0, 0, 0, 2], [2]),
      3: ([1, 1, 1, 0][::-1], [0, 15, 11, 6], [0, 0, 1, 2], [3, 4, 5]),
      7: ([1, 1, 1, 1], [65, 54, 42, 29], [1, 2, 3, 4], [7, 8, 9, 10]),
      10: ([0, 0, 1, 1], [0, 0, 29, 15], [0, 0, 4, 5], [10, 11]),
  }
  for start, (mask, rtg2, ts, rows) in expected.items():
    i = int(np.flatnonzero(starts == start)[0])
    np.testing.assert_array_equal(seg.mask[i], mask)
    np.testing.assert_allclose(seg.rtg[i] * 2.0, rtg2)
    np.testing.assert_array_equal(seg.timestep[i], ts)
    real = seg.mask[i] > 0
    np.testing.assert_array_equal(seg.obs[i][real, 0], rows)
    np.testing.assert_allclose(seg.action[i][real, 0], data.transitions.reward[0, rows] / 100)
    assert np.all(seg.obs[i][~real] == 0) and np.all(seg.action[i][~real] == 0)


def test_prompt_is_the_window_before_the_context_end():
  data = _tiny_dataset()
  ctx = jax.tree.map(lambda x: x[0, :6], data.transitions)  # segment 0: two episodes
  p = prompt_segment(ctx, 3, 1.0)  # si = max(0, 6 - 3 - 1) = 2: steps 2, 3, 4
  np.testing.assert_array_equal(p.obs[:, 0], [2, 3, 4])
  np.testing.assert_allclose(p.rtg, [3, 15, 11])
  np.testing.assert_array_equal(p.timestep, [2, 0, 1])
  np.testing.assert_array_equal(p.mask, [1, 1, 1])
  short = prompt_segment(jax.tree.map(lambda x: x[:2], ctx), 3, 1.0)  # left-padded
  np.testing.assert_array_equal(short.mask, [0, 1, 1])
  np.testing.assert_allclose(short.rtg, [0, 3, 2])  # the rest of the episode is not in the context


# ------------------------------------------------------------------------------------------
# Evaluation: the history-dependent policy and the unchanged memoryless ones
# ------------------------------------------------------------------------------------------


# A test-sized DT (embed 16, 1 layer, K = 5, no dropout, 300 updates at lr 1e-3 after a
# 100-update warm-up) with each preset's conditioning, return scale / target and objective
# settings; trained once per module.
_STEPS = 300


@pytest.fixture(scope="module")
def trained(synthetic_data, point_env):
  cache = {}

  def get(name):
    if name not in cache:
      p = presets.preset(name, "point_robot")
      kw = dict(p["learner"], obs_size=2, action_size=2, task_param_size=2, num_task_labels=40,
                dt_embed=16, dt_layers=1, dt_context_length=5, dt_warmup_steps=100,
                dt_dropout=0.0, meta_batch_size=8, rl_batch_size=8, steps_per_chunk=_STEPS)
      lrn = make_learner(LearnerConfig.create(**kw))
      hp = broadcast_hparams(HParams.create(**dict(p["hparams"], actor_lr=1e-3)), 1)
      pool = jnp.asarray(point_env.benchmark_split()["train"], jnp.int32)
      state, metrics = lrn.train_chunk(lrn.init(seed_keys(0, 1)), synthetic_data.to_device(), hp,
                                       pool)
      assert all(np.all(np.isfinite(v)) for v in metrics.values())
      cache[name] = (lrn, state)
    return cache[name]

  return get


@pytest.mark.slow
def test_evaluation_state_keeps_the_last_k_steps_and_lowers_the_return_to_go(trained):
  lrn, state = trained("prompt_dt")
  s = lrn.cfg.settings("dt")
  assert (s.context_length, s.return_scale, s.target_return) == (5, 10.0, 0.0)
  params = jax.tree.map(lambda x: x[0], state.params)
  policy = lrn.act
  z = jnp.linspace(-1.0, 1.0, lrn.z_size)
  with pytest.raises(TypeError, match="history"):
    policy(params, jnp.zeros(2), z, jax.random.key(0), True)
  st = policy.init(params, z)
  rewards = [0.0, -1.0, -2.0, -0.5, -3.0, -1.5, -1.0]  # the previous step's (0 at the reset)
  actions = []
  step = jax.jit(policy.step, static_argnums=5)
  for t, r in enumerate(rewards):
    a, st = step(params, st, jnp.full((2,), float(t)), jnp.float32(r), jax.random.key(t), True)
    actions.append(np.asarray(a))
    if t == 2:  # three real steps, left-padded to K = 5; R = (0 - rewards so far) / 10
      np.testing.assert_array_equal(st["seg"].mask, [0, 0, 1, 1, 1])
      np.testing.assert_allclose(st["seg"].rtg, [0, 0, 0.0, 0.1, 0.3], atol=1e-6)
      np.testing.assert_array_equal(st["seg"].timestep, [0, 0, 0, 1, 2])
      np.testing.assert_array_equal(st["seg"].obs[:, 0], [0, 0, 0, 1, 2])
  seg = st["seg"]  # after 7 steps: the last 5 of them
  np.testing.assert_array_equal(seg.mask, [1, 1, 1, 1, 1])
  np.testing.assert_allclose(seg.rtg * 10, [3.0, 3.5, 6.5, 8.0, 9.0], atol=1e-5)
  np.testing.assert_array_equal(seg.timestep, [2, 3, 4, 5, 6])
  np.testing.assert_array_equal(seg.obs[:, 0], [2, 3, 4, 5, 6])
  np.testing.assert_allclose(seg.action, np.stack(actions[2:]))
  np.testing.assert_array_equal(st["z"], z)
  # The action is the network's prediction at the last position of that window.
  again = jax.jit(lrn.backbone.predict)(params["actor"], seg, z)[-1]
  np.testing.assert_allclose(again, actions[-1], rtol=1e-5, atol=1e-6)


def _old_episode_return(env, act, deterministic=True):
  """make_episode_return before the Policy form (jcomrl @aca25c9), for the identity check."""
  count_all = env.end_convention == "no_terminal"

  def episode_return(params, z, task, key):
    k_reset, k_steps = jax.random.split(key)
    state = env.reset(k_reset, task)

    def step(carry, k):
      s, ret, alive = carry
      s = env.step(s, act(params, s.obs, z, k, deterministic), task)
      ret = ret + alive * s.reward
      if not count_all:
        alive = alive * (1.0 - s.done)
      return (s, ret, alive), None

    (_, ret, _), _ = jax.lax.scan(step, (state, jnp.zeros(()), jnp.ones(())),
                                  jax.random.split(k_steps, env.episode_length))
    return ret

  return episode_return


def _old_recorded(env, act, deterministic=True):
  def episode(params, z, task, key):
    def choose(state, i, k):
      k_act, k_reset = jax.random.split(k)
      return act(params, state.obs, z, k_act, deterministic), k_reset

    traj = record_segment(env, choose, task, key)
    return first_episode_returns(traj), traj

  return episode


def _old_collect(env, act):
  def collect(params, z, task, key, first_step, explore_steps):
    def choose(state, i, k):
      k_act, k_rand, k_reset = jax.random.split(k, 3)
      a_pol = act(params, state.obs, z, k_act, False)
      a_rand = jax.random.uniform(k_rand, (env.action_size,), minval=-1.0, maxval=1.0)
      return jnp.where(first_step + i < explore_steps, a_rand, a_pol), k_reset

    return record_segment(env, choose, task, key)

  return collect


def test_memoryless_policies_give_bit_identical_rollouts(tiny_learner, point_env):
  params = jax.tree.map(lambda x: x[0], tiny_learner.init(seed_keys(3, 1)).params)
  task = jax.tree.map(lambda x: x[5], point_env.all_benchmark_tasks())
  z, key = jnp.linspace(-1.0, 1.0, 4), jax.random.key(11)
  act = tiny_learner.act
  # Stochastic actions: every step's key reaches act as before.
  old = jax.jit(_old_episode_return(point_env, act, False))(params, z, task, key)
  new = jax.jit(rollout.make_episode_return(point_env, memoryless_policy(act), False))(
      params, z, task, key)
  assert np.asarray(new).tobytes() == np.asarray(old).tobytes()
  old_ret, old_traj = jax.jit(_old_recorded(point_env, act))(params, z, task, key)
  new_ret, new_traj = jax.jit(rollout.make_recorded_episode(point_env, act))(params, z, task, key)
  assert np.asarray(new_ret).tobytes() == np.asarray(old_ret).tobytes()
  for a, b in zip(jax.tree.leaves(new_traj), jax.tree.leaves(old_traj)):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
  old_c = jax.jit(_old_collect(point_env, act))(params, z, task, key, 0, 7)
  new_c = jax.jit(P.make_collect_segment(point_env, act))(params, z, task, key, 0, 7)
  for a, b in zip(jax.tree.leaves(new_c), jax.tree.leaves(old_c)):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


# ------------------------------------------------------------------------------------------
# Short learning runs on point-robot
# ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", presets.DT_PRESETS)
def test_dt_presets_beat_the_random_policy_on_held_out_tasks(name, trained, synthetic_data,
                                                             point_env):
  lrn, state = trained(name)
  split = point_env.benchmark_split()
  rows = jnp.asarray(split["test"], jnp.int32)
  tasks = jax.tree.map(lambda x: x[rows], point_env.all_benchmark_tasks())
  cfg = lrn.cfg
  ret = P.iid_returns(lrn, state.params, point_env, synthetic_data.to_device(), rows, tasks,
                      jax.random.key(1), num_episodes=2, context_mode=cfg.context_mode,
                      context_size=cfg.context_size)
  rand = float(jnp.mean(rollout.random_policy_returns(point_env, tasks, jax.random.key(2), 2)))
  assert float(jnp.mean(ret)) > rand + 2.0, (name, float(jnp.mean(ret)), rand)


def test_dt_presets_follow_prompt_dt_and_refuse_what_they_cannot_run():
  p = presets.preset("prompt_dt", "cheetah_vel")
  lrn = p["learner"]
  dt = lrn["dt"]
  assert (lrn["backbone"], lrn["representation"], dt["context_length"], dt["embed"],
          dt["layers"], dt["heads"], lrn["prompt"]["length"], lrn["rl_batch_size"]) == (
              "dt", "prompt", 20, 128, 3, 1, 5, 16)
  assert (dt["return_scale"], dt["target_return"], dt["warmup_steps"]) == (500.0, 0.0, 10_000)
  assert p["hparams"]["actor_lr"] == 1e-4 and p["num_steps"] == 50_000
  assert "critic_lr" not in p["hparams"] and "rl_hidden" not in lrn
  ss = presets.preset("unicorn_ss_dt", "cheetah_vel")
  assert ss["learner"]["representation"] == "unicorn_ss"
  assert ss["learner"]["encoder"] == presets.preset("unicorn_ss", "cheetah_vel")["learner"][
      "encoder"]
  cpu = presets.preset("focal_dt", "ant_dir", profile="cpu")["learner"]
  assert (cpu["rl_batch_size"], cpu["dt"]["embed"], cpu["dt"]["return_scale"]) == (
      presets.CPU_DT_SEGMENTS, presets.CPU_WIDTH, 500.0)
  with pytest.raises(ValueError, match="DT presets have"):
    presets.preset("prompt_dt", "hopper_param")
  sizes = dict(obs_size=2, action_size=2, task_param_size=2)
  with pytest.raises(ValueError, match="reads prompts"):
    check(LearnerConfig.create(**sizes, representation="prompt", backbone="sac"))
  with pytest.raises(ValueError, match="context_mode='trajectory'"):
    check(LearnerConfig.create(**sizes, representation="prompt", backbone="dt",
                        context_mode="transitions"))
  with pytest.raises(ValueError, match="critic"):
    check(LearnerConfig.create(**sizes, representation="supervised", backbone="dt"))
