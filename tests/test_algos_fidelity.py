"""Backbone fidelity to the official codes (issue 13, items 1, 9, 10): tiny hand-computed checks.

Sources: UNICORN ``algorithms/focalsac.py``, ``train_offline_FOCAL.py``,
``torchkit/brac/divergences.py``; FOCAL and CSRO ``rlkit/torch/sac/sac.py``; TD3_BC.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos import backbones, presets
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys, unstack_seed
from jcomrl.data.sampler import sample_meta_batch
from jcomrl.nets.actor_critic import (
  DoubleCritic,
  StateActionCritic,
  TanhGaussianPolicy,
)
from jcomrl.types import Transition

N, OBS, ACT, ZD = 5, 3, 2, 2
POOL = jnp.arange(30, dtype=jnp.int32)
TINY = dict(obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
            aux_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,), meta_batch_size=4,
            context_size=8, context_mode="transitions", rl_batch_size=8, steps_per_chunk=5)
# The backbone settings a preset sets (the rest of TINY stays test-sized).
BACKBONE_KEYS = ("penalty", "auto_weight", "gp", "fresh_batches", "div_before_dual",
                 "actor_div_grad", "weight_projected", "soft_target")


def _softplus(x):
  return np.logaddexp(0.0, np.asarray(x, np.float64))


def _kl_by_hand(dual, dual_params, obs, z, data_action, policy_action):
  """BRAC's dual KL estimate written out (float64): ``log(softplus(c(s, a_pi)) + 1e-8) + 1 -
  softplus(c(s, a_data))`` (UNICORN divergences.py:64-73)."""
  c_pi = dual.apply(dual_params, obs, z, policy_action)
  c_data = dual.apply(dual_params, obs, z, data_action)
  return np.log(_softplus(c_pi) + 1e-8) + 1.0 - _softplus(c_data)


def _sample_by_hand(policy, params, obs, z, key):
  """``a = tanh(mu + sigma eps)`` and ``log pi(a) = sum[log N(u; mu, sigma) - log(1 -
  tanh(u)^2)]`` (float64), eps the key's standard normal draw."""
  mean, log_std = (np.asarray(x, np.float64) for x in policy.apply(params, obs, z))
  eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
  u = mean + np.exp(log_std) * eps
  logp = np.sum(-0.5 * eps ** 2 - log_std - 0.5 * np.log(2 * np.pi)
                - np.log(1.0 - np.tanh(u) ** 2), axis=-1)
  return np.tanh(u), logp


def _close(a, b):
  return all(np.allclose(x, y, rtol=1e-6, atol=1e-7)
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def nets():
  policy, critic, dual = TanhGaussianPolicy((8,), ACT), DoubleCritic((8,)), StateActionCritic((8,))
  k = jax.random.split(jax.random.key(0), 10)
  o, a, z1 = jnp.zeros((1, OBS)), jnp.zeros((1, ACT)), jnp.zeros((1, ZD))
  params = dict(actor=policy.init(k[0], o, z1), critic=critic.init(k[1], o, z1, a),
                target=critic.init(k[2], o, z1, a), dual=dual.init(k[3], o, z1, a),
                dual2=dual.init(k[4], o, z1, a))
  batch = Transition(obs=jax.random.normal(k[5], (N, OBS)),
                     action=jax.random.uniform(k[6], (N, ACT), minval=-0.9, maxval=0.9),
                     reward=jax.random.normal(k[7], (N,)),
                     next_obs=jax.random.normal(k[8], (N, OBS)),
                     terminal=jnp.array([0.0, 0.0, 1.0, 0.0, 0.0]), timeout=jnp.zeros((N,)))
  z = jax.random.normal(k[9], (ZD,))
  return policy, critic, dual, params, batch, z


def _preset_learner(name, env, **extra):
  lrn = presets.preset(name, env)["learner"]
  own = {k: v for k, v in lrn.get(lrn["backbone"], {}).items() if k in BACKBONE_KEYS}
  return make_learner(LearnerConfig.create(**TINY, **extra, backbone=lrn["backbone"],
                                           **{lrn["backbone"]: {**own, "dual_steps": 2}
                                              if lrn["backbone"] == "brac" else own}))


@pytest.fixture(scope="module")
def learners():
  """One compiled update per official backbone form: FOCAL, CSRO, UNICORN's Ant-Dir FOCALSAC."""
  out = {}
  for name, env in (("focal", "cheetah_dir"), ("csro", "cheetah_dir"), ("unicorn_ss", "ant_dir")):
    lrn = _preset_learner(name, env, task_resample_every=3 if name == "unicorn_ss" else 1)
    out[name] = (lrn, jax.jit(lrn.update))
  return out


# ----------------------------------------------------------------- 1. UNICORN Ant-Dir FOCALSAC


def test_presets_carry_the_official_backbones():
  for name in ("unicorn_ss", "unicorn_sup", "supervised", "oracle"):
    p = presets.preset(name, "ant_dir")
    lrn, hp = p["learner"], p["hparams"]
    brac = lrn["brac"]
    assert lrn["backbone"] == "brac" and brac["penalty"] == "both" and brac["dual_steps"] == 3
    assert (brac["gp"], brac["div_before_dual"]) == ("output", True)
    assert not brac["actor_div_grad"] and not brac["soft_target"]
    assert (hp["brac"]["weight"], hp["entropy_alpha"]) == (0.2, 1.0)  # focalsac.py:135, 196
    assert presets.preset(name, "cheetah_dir")["learner"]["backbone"] == "sac"
  assert presets.preset("corro", "ant_dir")["learner"]["backbone"] == "sac"
  for name in ("focal", "csro"):
    p = presets.preset(name, "walker_param")
    assert p["learner"]["brac"]["gp"] == "output"
    assert p["learner"]["brac"]["div_before_dual"] == (name == "focal")  # CSRO: D after c steps
    assert (p["hparams"]["policy_mean_reg"], p["hparams"]["policy_std_reg"]) == (1e-3, 1e-3)
    assert p["learner"]["brac"].get("weight_projected", False) is False
  for name in ("unicorn_ss", "unicorn_sup", "supervised", "oracle", "corro"):
    assert presets.preset(name, "hopper_param")["learner"]["task_resample_every"] == 200
  assert presets.preset("focal", "ant_dir")["learner"].get("task_resample_every", 1) == 1


def test_focalsac_actor_gradient_ignores_the_dual_critic(nets):
  policy, critic, dual, params, batch, z = nets
  hp, key = HParams.create(), jax.random.key(1)

  def loss(p, dual_params, div_grad):
    return backbones.actor_loss(p, params["critic"], dual_params, 1.0, batch, z, key, hp,
                                policy=policy, critic=critic, dual=dual, brac_weight=0.2,
                                div_grad=div_grad)[0]

  g = lambda d, flag: jax.grad(loss)(params["actor"], d, flag)
  assert _close(g(params["dual"], False), g(params["dual2"], False))  # D under torch.no_grad
  assert not _close(g(params["dual"], True), g(params["dual2"], True))  # BRAC / FOCAL: through D
  # The value is log pi - min Q + 0.2 D with log-prob coefficient 1 (focalsac.py:196).
  zt = jnp.broadcast_to(z, (N, ZD))
  a, logp = _sample_by_hand(policy, params["actor"], batch.obs, zt, key)
  a32 = jnp.asarray(a, jnp.float32)
  q = np.min(critic.apply(params["critic"], batch.obs, zt, a32), axis=0)
  d = _kl_by_hand(dual, params["dual"], batch.obs, zt, batch.action, a32)
  np.testing.assert_allclose(loss(params["actor"], params["dual"], False),
                             np.mean(logp - q) + 0.2 * np.mean(d), rtol=1e-4)


def test_focalsac_target_is_min_q_minus_weighted_div(nets):
  policy, critic, dual, params, batch, z = nets
  hp, key = HParams.create(discount=0.9, reward_scale=1.0), jax.random.key(2)

  def run(alpha, soft):
    return backbones.critic_loss(params["critic"], params["target"], params["actor"], alpha,
                                 batch, z, key, hp, policy=policy, critic=critic,
                                 value_penalty=(dual, params["dual"], 0.2), soft_target=soft)

  zt = jnp.broadcast_to(z, (N, ZD))
  k_next, k_pen = jax.random.split(key)
  a_next, logp_next = _sample_by_hand(policy, params["actor"], batch.next_obs, zt, k_next)
  q_next = np.min(critic.apply(params["target"], batch.next_obs, zt,
                               jnp.asarray(a_next, jnp.float32)), axis=0)
  a_pi, _ = _sample_by_hand(policy, params["actor"], batch.obs, zt, k_pen)
  d = _kl_by_hand(dual, params["dual"], batch.obs, zt, batch.action,
                  jnp.asarray(a_pi, jnp.float32))
  r, term = np.asarray(batch.reward, np.float64), np.asarray(batch.terminal, np.float64)
  y = r + 0.9 * (1.0 - term) * (q_next - 0.2 * d)  # focalsac.py:135
  q = np.asarray(critic.apply(params["critic"], batch.obs, zt, batch.action), np.float64)
  loss, m = run(0.7, False)
  np.testing.assert_allclose(m["critic/target"], np.mean(y), rtol=1e-4)
  np.testing.assert_allclose(loss, np.mean(np.sum((q - y[None]) ** 2, axis=0)), rtol=1e-4)
  np.testing.assert_allclose(run(0.0, False)[0], loss, rtol=1e-6)  # no entropy term
  # jcomrl's soft target: y = r + gamma (1 - d)(min Q' - alpha log pi' - 0.2 D)
  y_soft = r + 0.9 * (1.0 - term) * (q_next - 0.7 * logp_next - 0.2 * d)
  soft_loss, soft_m = run(0.7, True)
  np.testing.assert_allclose(soft_m["critic/target"], np.mean(y_soft), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(soft_loss, np.mean(np.sum((q - y_soft[None]) ** 2, axis=0)),
                             rtol=1e-4)


def test_gradient_penalty_on_dual_output(nets):
  policy, _, dual, params, batch, z = nets
  hp, key = HParams.create(gp_weight=5.0), jax.random.key(3)
  big = jax.tree.map(lambda x: 10.0 * x, params["dual"])  # |c| > 1 somewhere: a live penalty
  loss, m = backbones.dual_loss(big, params["actor"], batch, z, key, hp, policy=policy,
                                dual=dual, gp="output")
  zt = jnp.broadcast_to(z, (N, ZD))
  k_pi, k_u = jax.random.split(key)
  a_pi, _ = _sample_by_hand(policy, params["actor"], batch.obs, zt, k_pi)
  a_pi = jnp.asarray(a_pi, jnp.float32)
  d = _kl_by_hand(dual, big, batch.obs, zt, batch.action, a_pi)
  u = jax.random.uniform(k_u, (N, 1))
  c = np.asarray(dual.apply(big, batch.obs, zt, a_pi + u * (batch.action - a_pi)), np.float64)
  gp = np.mean(np.maximum(np.sqrt(1e-8 + c ** 2) - 1.0, 0.0) ** 2)  # divergences.py:34-43
  assert gp > 0
  np.testing.assert_allclose(m["dual/gp"], gp, rtol=1e-5)
  np.testing.assert_allclose(loss, -np.mean(d) + 5.0 * gp, rtol=1e-5)


# ----------------------------------------------------------------- 9. FOCAL / CSRO BRAC weight


@pytest.mark.parametrize("name", ["focal", "csro", "unicorn_ss"])
def test_div_is_taken_before_the_dual_steps(learners, synthetic_data, name):
  """FOCAL sac.py:278-286 and UNICORN train_offline_FOCAL.py:356-364 take D before the dual
  steps: the critic, actor and weight do not see this update's dual steps. CSRO (sac.py:286)
  takes D after them, so its actor does."""
  lrn, update = learners[name]
  data = synthetic_data.to_device()
  s0 = unstack_seed(lrn.init(seed_keys(0, 1)), 0)
  hp = dict(brac_weight=5.0, brac_weight_max=50.0)
  s_frozen, _ = update(s0, data, HParams.create(dual_lr=0.0, **hp), POOL)
  s_moved, _ = update(s0, data, HParams.create(dual_lr=0.1, **hp), POOL)
  assert not _close(s_frozen.params["dual"], s_moved.params["dual"])
  # (UNICORN's FOCALSAC has a fixed weight: no brac_offset group.)
  same = _close((s_frozen.params["actor"], s_frozen.params["critic"],
                 s_frozen.params.get("brac_offset", 0.0)),
                (s_moved.params["actor"], s_moved.params["critic"],
                 s_moved.params.get("brac_offset", 0.0)))
  assert same == lrn.cfg.settings("brac").div_before_dual


def test_raw_brac_weight_is_stored_unclipped(learners, synthetic_data):
  """FOCAL sac.py:95-97, 377-382: alpha moves unclipped; only its uses are clipped."""
  lrn, update = learners["focal"]
  data = synthetic_data.to_device()
  s0 = unstack_seed(lrn.init(seed_keys(0, 1)), 0)
  hp = dict(brac_weight=9.9, brac_weight_max=10.0, brac_weight_lr=1.0)
  s1, m1 = update(s0, data, HParams.create(brac_target_div=-5.0, **hp), POOL)
  raw1 = 9.9 + float(s1.params["brac_offset"])
  np.testing.assert_allclose(raw1, 9.9 + float(m1["actor/kl"]) + 5.0, rtol=1e-5)
  assert raw1 > 10.0 and float(m1["actor/brac_weight"]) == 10.0
  s2, m2 = update(s1, data, HParams.create(brac_target_div=50.0, **hp), POOL)
  raw2 = 9.9 + float(s2.params["brac_offset"])
  np.testing.assert_allclose(raw2, raw1 + float(m2["actor/kl"]) - 50.0, rtol=1e-5)  # from raw
  assert raw2 < 0.0 and float(m2["actor/brac_weight"]) == 0.0


def test_policy_regularisers_by_hand(nets):
  policy, critic, dual, params, batch, z = nets
  key = jax.random.key(4)
  actor = jax.tree.map(lambda x: 30.0 * x, params["actor"])  # mu, log sigma of order 1

  def run(reg):
    hp = HParams.create(policy_mean_reg=reg, policy_std_reg=reg)
    return backbones.actor_loss(actor, params["critic"], params["dual"], 1.0, batch, z, key, hp,
                                policy=policy, critic=critic, dual=dual, brac_weight=3.0)

  mean, log_std = policy.apply(actor, batch.obs, jnp.broadcast_to(z, (N, ZD)))
  want = 1e-3 * np.mean(mean ** 2) + 1e-3 * np.mean(log_std ** 2)  # FOCAL sac.py:361-362
  assert want > 1e-4
  (with_reg, (m, _, _)), (without, _) = run(1e-3), run(0.0)
  np.testing.assert_allclose(m["actor/reg"], want, rtol=1e-5)
  np.testing.assert_allclose(with_reg - without, want, rtol=1e-3)


# ----------------------------------------------------------------- 10. smaller options


def test_unicorn_keeps_the_tasks_for_an_iteration(learners, synthetic_data):
  """train_offline_FOCAL.py:284-289: one draw of tasks serves ``rl_updates_per_iter`` updates."""
  data = synthetic_data.to_device()
  seen = {}
  for name in ("unicorn_ss", "focal"):
    lrn, update = learners[name]
    s = unstack_seed(lrn.init(seed_keys(0, 1)), 0)
    seen[name] = []
    for _ in range(6):
      s, _ = update(s, data, HParams.create(), POOL)
      seen[name].append(tuple(np.asarray(s.tasks)))
  u = seen["unicorn_ss"]
  assert u[0] == u[1] == u[2] and u[3] == u[4] == u[5] and u[0] != u[3]  # K = 3 here
  assert len(set(seen["focal"])) == 6  # FOCAL/CSRO: fresh tasks every update


def test_dual_steps_draw_fresh_batches(synthetic_data):
  """FOCAL sac.py:201-203: each further dual step samples its own RL batch of the same tasks."""
  data = synthetic_data.to_device()
  mb = sample_meta_batch(jax.random.key(0), data, POOL, meta_batch_size=4, context_size=8,
                         context_mode="transitions", rl_batch_size=8)
  fresh = make_learner(LearnerConfig.create(**TINY, dual_steps=3)).rl_batches(
      jax.random.key(1), data, mb)
  same = make_learner(LearnerConfig.create(**TINY, dual_steps=3, dual_fresh_batches=False)).rl_batches(
      jax.random.key(1), data, mb)
  obs = [np.asarray(b.obs) for b in fresh]
  assert len(obs) == 3 and np.array_equal(obs[0], np.asarray(mb.rl.obs))
  assert not np.array_equal(obs[1], obs[0]) and not np.array_equal(obs[2], obs[1])
  rows = np.asarray(data.transitions.obs)
  for b in obs[1:]:  # every row of task slot i comes from task mb.task_index[i]
    for i, t in enumerate(np.asarray(mb.task_index)):
      assert all((rows[t] == o).all(-1).any() for o in b[i])
  assert len(same) == 1  # without fresh batches every dual step reuses the update's batch


def test_td3bc_bc_term_is_a_mean_over_action_dims(nets):
  policy, critic, _, params, batch, z = nets
  hp = HParams.create(td3_alpha=2.5)

  def run(bc):
    return backbones.td3bc_actor_loss(params["actor"], params["critic"], batch, z, None, hp,
                                      policy=policy, critic=critic, bc=bc)

  zt = jnp.broadcast_to(z, (N, ZD))
  a = np.tanh(policy.apply(params["actor"], batch.obs, zt)[0])
  q = critic.apply(params["critic"], batch.obs, zt, a)[0]
  lam = 2.5 / (np.mean(np.abs(q)) + 1e-6)
  mse = np.mean((a - batch.action) ** 2)  # F.mse_loss(pi, action), TD3_BC.py:143
  loss, m = run("mean")
  np.testing.assert_allclose(m["actor/bc_mse"], mse, rtol=1e-5)
  np.testing.assert_allclose(loss, -lam * np.mean(q) + mse, rtol=1e-5)
  np.testing.assert_allclose(run("sum")[1]["actor/bc_mse"], ACT * mse, rtol=1e-5)
  assert LearnerConfig.create(**TINY).settings("td3bc").bc == "mean"


# ----------------------------------------------------------------- brac_penalty="none" (issue 14)


def test_unused_dual_critic_trains_but_touches_nothing_else(synthetic_data):
  """brac_penalty='none' (UNICORN's own code trains c 3x per step with the plain SAC backbone and
  never uses it): the dual critic moves, the actor and critic do not depend on it, and the
  actor computes no D (no KL metric)."""
  data = synthetic_data.to_device()
  none = make_learner(LearnerConfig.create(**TINY, backbone="brac", brac_penalty="none", dual_steps=2))
  s_none = unstack_seed(none.init(seed_keys(0, 1)), 0)
  hp = HParams.create(brac_weight=3.0)
  n1, m = jax.jit(none.update)(s_none, data, hp, POOL)
  assert "actor/kl" not in m
  assert not _close(n1.params["dual"], s_none.params["dual"])
  n_frozen, _ = jax.jit(none.update)(s_none, data, HParams.create(brac_weight=3.0, dual_lr=0.0),
                                     POOL)
  assert _close((n1.params["actor"], n1.params["critic"]),
                (n_frozen.params["actor"], n_frozen.params["critic"]))
  with pytest.raises(ValueError, match="brac.auto_weight needs a BRAC penalty"):
    LearnerConfig.create(**TINY, backbone="brac", brac_penalty="none", brac_auto_weight=True)
