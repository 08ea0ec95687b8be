"""Learner and objectives: losses by hand, vmap invariants, seeds, presets, backbone options."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import mi
from jcomrl.algos import presets
from jcomrl.algos.compose import check
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import (
  broadcast_hparams,
  make_learner,
  seed_keys,
  unstack_seed,
)
from jcomrl.algos.objectives import corro as corro_mod
from jcomrl.algos.objectives import csro as csro_mod
from jcomrl.algos.objectives import (
  corro_infonce,
  csro_club,
  gaussian_nll_per_dim,
  make_representation,
)
from jcomrl.nets.decoders import TransitionDecoder
from jcomrl.nets.encoders import AttentionPoolEncoder, context_features
from jcomrl.nets.mlp import MLP

TINY = dict(obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
            aux_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,), meta_batch_size=4,
            context_size=8, context_mode="transitions", rl_batch_size=8, steps_per_chunk=5,
            num_task_labels=40)
POOL = jnp.arange(30, dtype=jnp.int32)


def _leaves_changed(before, after):
  return [not np.allclose(a, np.asarray(b)) for a, b in
          zip(jax.tree.leaves(before), jax.tree.leaves(after))]


# ----------------------------------------------------------------------------- objectives


def test_focal_loss_hand_computed():
  z = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
  labels = jnp.array([0, 1, 0])
  loss, m = mi.focal_metric_loss(z, labels)
  # pairs: (0,1) negative, d2 = 0.5 -> 1/0.6; (0,2) positive, d2 = 0 -> sqrt(1e-3);
  # (1,2) negative -> 1/0.6.  loss = pos/(1 + 1e-3) + 2/0.6/(2 + 1e-3).
  want = np.sqrt(1e-3) / 1.001 + (2 / 0.6) / 2.001
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  assert int(m["focal/num_pos_pairs"]) == 1 and int(m["focal/num_neg_pairs"]) == 2
  # Without positives only the repulsive term acts (FOCAL's default without replacement).
  loss2, m2 = mi.focal_metric_loss(z, jnp.array([0, 1, 2]))
  assert float(m2["focal/pos"]) == 0.0 and np.isfinite(float(loss2))


def test_csro_club_hand_computed():
  # K=2, D=1, q = N(mu_i, 1): log q[i, j] = -(z_j - mu_i)^2 / 2 = [[0, -1/2], [-1/2, 0]].
  # CLUB over all K^2 pairs (CSRO code): mean diag - mean all = 0 - (-1/4) = 1/4.
  z = jnp.array([[0.0], [1.0]])
  np.testing.assert_allclose(csro_club(z, z, jnp.zeros((2, 1))), 0.25, rtol=1e-6)
  # A q that ignores x (same mean for both) gives exactly 0: no information about z in (s, a).
  np.testing.assert_allclose(csro_club(z, jnp.full((2, 1), 0.5), jnp.zeros((2, 1))), 0.0,
                             atol=1e-7)


def test_corro_infonce_hand_computed():
  anchor = jnp.array([[1.0, 0.0]])
  pos = jnp.array([[1.0, 0.0]])
  neg = jnp.array([[[0.0, 1.0]]])
  want = np.log(2.0) + 1.0 - np.log(np.e + 1.0)
  np.testing.assert_allclose(corro_infonce(anchor, pos, neg, 1.0), want, rtol=1e-6)
  # Temperature 0.1 sharpens: the bound approaches its cap log(M + 1) = log 2.
  np.testing.assert_allclose(corro_infonce(anchor, pos, neg, 0.1), np.log(2.0), atol=1e-4)


def test_unicorn_sup_objective_is_classifier_cross_entropy(meta_batch):
  cfg = LearnerConfig.create(**dict(TINY, representation="unicorn_sup", encoder="stochastic"))
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(1))
  hp = HParams.create(sup_weight=2.0)
  key = jax.random.key(2)
  loss, aux = rep.loss(params, meta_batch, hp, key)
  z = rep.encode(params, meta_batch.context, None, key)  # same key -> same sampled codes
  np.testing.assert_allclose(aux["z"], z, rtol=1e-6)
  logits = np.asarray(MLP((16,), 40).apply(params["classifier"], z), np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = -np.mean(logp[np.arange(4), np.asarray(meta_batch.task_label)])
  np.testing.assert_allclose(loss, 2.0 * ce, rtol=1e-5)
  # The stochastic encoder's codes differ with the key, its mean code has no key.
  z2 = rep.encode(params, meta_batch.context, None, jax.random.key(3))
  assert not np.allclose(z, z2)
  np.testing.assert_allclose(rep.encode(params, meta_batch.context, None),
                             rep.encode(params, meta_batch.context, None))


def test_unicorn_ss_objective_is_nll_plus_weighted_focal(meta_batch):
  cfg = LearnerConfig.create(**dict(TINY, representation="unicorn_ss"))
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(1))
  hp = HParams.create(focal_weight=0.15, decoder_weight=1.0)
  loss, aux = rep.loss(params, meta_batch, hp, jax.random.key(2))
  ctx = meta_batch.context
  z = np.asarray(aux["z"])
  zt = jnp.broadcast_to(z[:, None], (4, 8, 4))
  heads = TransitionDecoder((16,), 2).apply(params["decoder"], zt, ctx.obs, ctx.action)
  total = 0.0
  for head, target in (("state", ctx.next_obs - ctx.obs), ("reward", ctx.reward[..., None])):
    mean, lv, pen = (np.asarray(x, np.float64) for x in heads[head])
    nll = np.mean((np.asarray(target) - mean) ** 2 * np.exp(-lv) + lv)  # mbrl-lib: no 1/2
    lo = params["decoder"]["params"][head]["min_log_var"]
    hi = params["decoder"]["params"][head]["max_log_var"]
    np.testing.assert_allclose(pen, 0.01 * (np.sum(hi) - np.sum(lo)), rtol=1e-6)
    total += nll + pen
  focal, _ = mi.focal_metric_loss(aux["z"], meta_batch.task_label)
  np.testing.assert_allclose(loss, total + 0.15 * float(focal), rtol=1e-5)
  np.testing.assert_allclose(float(gaussian_nll_per_dim(jnp.zeros((3, 2)), jnp.zeros((3, 2)),
                                                        jnp.ones((3, 2)))), 0.5, rtol=1e-6)


def test_csro_objective_gradients_are_routed(meta_batch):
  """CLUB's q_psi gets only its NLL gradient; the encoder gets focal + lambda * CLUB."""
  cfg = LearnerConfig.create(**dict(TINY, representation="csro"))
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(1))
  key = jax.random.key(2)
  g = jax.grad(lambda p: rep.loss(p, meta_batch, HParams.create(club_model_weight=0.0,
                                                                club_weight=1.0), key)[0])(params)
  # With the NLL weight at 0 the q network receives no gradient at all (it is frozen in CLUB).
  assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(g["club"]))
  g2 = jax.grad(lambda p: rep.loss(p, meta_batch, HParams.create(focal_weight=0.0,
                                                                 club_weight=0.0), key)[0])(params)
  # With focal and CLUB off only the NLL acts: it trains q and never the encoder (z detached).
  assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(g2["encoder"]))
  assert any(np.any(np.asarray(x) != 0) for x in jax.tree.leaves(g2["club"]))


def test_corro_negatives_share_state_action(meta_batch):
  cfg = LearnerConfig.create(**dict(TINY, representation="corro", encoder="attention",
                             corro_negative_source="reward_noise"))
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(1))
  loss, aux = rep.loss(params, meta_batch, HParams.create(), jax.random.key(2))
  bound = float(aux["metrics"]["rep/infonce"])
  assert np.isfinite(bound) and bound <= np.log(17) + 1e-5
  np.testing.assert_allclose(loss, -bound, rtol=1e-6)
  # Per-transition embeddings are unit vectors (CORRO's L2 normalisation).
  feats = context_features(meta_batch.context, True)
  emb = AttentionPoolEncoder((16,), 4).apply(params["encoder"], feats, method="embed")
  np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, rtol=1e-4)


def test_unknown_names_are_refused():
  with pytest.raises(ValueError, match="unknown representation objective 'pearl'"):
    check(LearnerConfig.create(**dict(TINY, representation="pearl")))
  with pytest.raises(ValueError, match="unknown backbone 'td4bc'"):
    check(LearnerConfig.create(**dict(TINY, backbone="td4bc")))
  with pytest.raises(ValueError, match="num_task_labels"):
    check(LearnerConfig.create(**dict(TINY, representation="unicorn_sup", num_task_labels=0)))
  with pytest.raises(ValueError, match="unknown preset 'pearl'"):
    presets.preset("pearl", "point_robot")
  with pytest.raises(ValueError, match="no focal settings for env 'humanoid'"):
    presets.preset("focal", "humanoid")


# ----------------------------------------------------------------------------- learner


def test_vmapped_task_losses_equal_per_task_loop(tiny_learner, meta_batch):
  state = unstack_seed(tiny_learner.init(seed_keys(0, 1)), 0)
  hp = HParams.create()
  z = jax.random.normal(jax.random.key(1), (4, 4))
  keys = jax.random.split(jax.random.key(2), 4)
  batched = jax.vmap(tiny_learner.per_task_losses, in_axes=(None, 0, 0, 0, None))(
      state.params, meta_batch.rl, z, keys, hp)
  for i in range(4):
    rl_i = jax.tree.map(lambda x, i=i: x[i], meta_batch.rl)
    one = tiny_learner.per_task_losses(state.params, rl_i, z[i], keys[i], hp)
    for k in one:
      np.testing.assert_allclose(batched[k][i], one[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_timeout_as_terminal_stops_the_target_exactly_where_a_terminal_would(
    tiny_learner, synthetic_data):
  """FOCAL / CSRO's loaders mark every stored trajectory's last transition terminal
  (``timeout_as_terminal``): training with it equals training the default learner on data whose
  timeouts are stored as terminals (same keys, same programs otherwise), and differs from the
  default on the data as stored."""
  tr = synthetic_data.transitions
  assert float(np.asarray(tr.timeout).sum()) > 0 and float(np.asarray(tr.terminal).sum()) == 0
  as_terminal = synthetic_data.replace(transitions=tr.replace(terminal=tr.timeout)).to_device()
  data = synthetic_data.to_device()
  hp = broadcast_hparams(HParams.create(), 1)
  flagged = make_learner(LearnerConfig.create(**{**TINY, "timeout_as_terminal": True}))
  a, ma = flagged.train_chunk(flagged.init(seed_keys(0, 1)), data, hp, POOL)
  b, mb = tiny_learner.train_chunk(tiny_learner.init(seed_keys(0, 1)), as_terminal, hp, POOL)
  c, _ = tiny_learner.train_chunk(tiny_learner.init(seed_keys(0, 1)), data, hp, POOL)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ma["critic/loss"], mb["critic/loss"], rtol=1e-5)
  assert any(_leaves_changed(jax.tree.map(np.asarray, a.params["critic"]), c.params["critic"]))


def test_train_chunk_does_not_retrace_and_changes_params(tiny_learner, synthetic_data):
  data = synthetic_data.to_device()
  hp = broadcast_hparams(HParams.create(), 2)
  state = tiny_learner.init(seed_keys(0, 2))
  before = jax.tree.map(np.asarray, state.params)
  state, m = tiny_learner.train_chunk(state, data, hp, POOL)
  n = tiny_learner.trace_count()
  # A new hyper-parameter value is a traced leaf: no recompile either.
  hp2 = broadcast_hparams(HParams.create(actor_lr=1e-3, brac_weight=0.5), 2)
  state, m = tiny_learner.train_chunk(state, data, hp2, POOL)
  assert tiny_learner.trace_count() == n
  assert int(state.step[0]) == 10 and m["critic/loss"].shape == (2,)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), before, state.params)
  assert changed["actor"] and changed["encoder"]
  # Seeds are independent: the two seeds' parameters differ.
  leaf = jax.tree.leaves(state.params["actor"])[0]
  assert not np.allclose(leaf[0], leaf[1])


@pytest.mark.parametrize("seed_mode", ["vmap", "loop"])
def test_two_seeds_equal_two_single_seed_runs(seed_mode, tiny_learner, synthetic_data):
  """Both ways of running several seeds (one vmapped program; one single-seed program per
  seed, the CPU default) give each seed the run it would have alone."""
  from jcomrl.algos.learner import resolve_seed_mode
  data = synthetic_data.to_device()
  keys = seed_keys(3, 2)
  lrn = make_learner(tiny_learner.cfg, seed_mode=seed_mode)
  both = lrn.init(keys)
  for _ in range(2):
    both, m = lrn.train_chunk(both, data, broadcast_hparams(HParams.create(), 2), POOL)
  assert m["critic/loss"].shape == (2,) and both.step.shape == (2,)
  for i in range(2):
    one = lrn.init(keys[i:i + 1])
    for _ in range(2):
      one, _ = lrn.train_chunk(one, data, broadcast_hparams(HParams.create(), 1), POOL)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(both.params)):
      if seed_mode == "loop":  # the same single-seed program: bit for bit
        np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[i])
      else:
        np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[i], rtol=2e-5, atol=1e-6)
  assert resolve_seed_mode("auto") == ("loop" if jax.default_backend() == "cpu"
                                       and len(jax.devices()) == 1 else "vmap")
  with pytest.raises(ValueError, match="seed_mode"):
    make_learner(tiny_learner.cfg, seed_mode="scan")


# The default tier trains FOCAL, CSRO and the oracle; make test-all every preset.
@pytest.mark.parametrize("name", [n if n in ("focal", "csro", "oracle")
                                  else pytest.param(n, marks=pytest.mark.slow)
                                  for n in presets.PRESETS])
def test_every_preset_trains_without_nan(name, synthetic_data):
  p = presets.preset(name, "point_robot", tiny=True)
  cfg = LearnerConfig.create(**dict(p["learner"], obs_size=2, action_size=2, task_param_size=2,
                             num_task_labels=40))
  lrn = make_learner(cfg)
  state = lrn.init(seed_keys(0, 1))
  before = jax.tree.map(np.asarray, state.params)
  hp = broadcast_hparams(HParams.create(**p["hparams"]), 1)
  for _ in range(p["num_steps"] // cfg.steps_per_chunk):
    state, m = lrn.train_chunk(state, synthetic_data.to_device(), hp, POOL)
    bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
    assert not bad, (name, bad)
  assert int(state.step[0]) == p["num_steps"]
  assert any(_leaves_changed(before["actor"], state.params["actor"]))
  if name != "oracle":
    assert any(_leaves_changed(before["encoder"], state.params["encoder"]))
  if name == "corro":  # the CVAE stage ran first
    assert any(_leaves_changed(before["pretrain"], state.params["pretrain"]))


@pytest.mark.parametrize("rep,trained", [("supervised", "all"), ("corro", "pool")])
def test_which_encoder_leaves_each_objective_trains(rep, trained, synthetic_data):
  kw = dict(TINY, representation=rep, encoder="attention" if rep == "corro" else "mean_tanh",
            corro_negative_source="reward_noise")
  lrn = make_learner(LearnerConfig.create(**kw))
  state = unstack_seed(lrn.init(seed_keys(0, 1)), 0)
  hp = HParams.create(corro_weight=0.0) if rep == "corro" else HParams.create()
  new, _ = jax.jit(lrn.update)(state, synthetic_data.to_device(), hp, POOL)
  enc_before, enc_after = state.params["encoder"], new.params["encoder"]
  if trained == "all":
    assert all(_leaves_changed(enc_before, enc_after))
  else:  # CORRO with its InfoNCE weight at 0: only the critic-trained attention pool moves
    p0, p1 = enc_before["encoder"]["params"], enc_after["encoder"]["params"]
    assert all(_leaves_changed(p0["pool"], p1["pool"]))
    assert not any(_leaves_changed(p0["transition"], p1["transition"]))


def test_backbone_options(synthetic_data):
  """TD3+BC delays its actor; BRAC's auto weight follows w += lr (D - target)."""
  data = synthetic_data.to_device()
  td3 = make_learner(LearnerConfig.create(**dict(TINY, backbone="td3bc", policy_delay=2)))
  s0 = unstack_seed(td3.init(seed_keys(0, 1)), 0)
  s1, m = jax.jit(td3.update)(s0, data, HParams.create(), POOL)  # step 0: actor updated
  s2, _ = jax.jit(td3.update)(s1, data, HParams.create(), POOL)  # step 1: actor held
  assert any(_leaves_changed(s0.params["actor"], s1.params["actor"]))
  assert not any(_leaves_changed(s1.params["actor"], s2.params["actor"]))
  assert any(_leaves_changed(s1.params["critic"], s2.params["critic"]))
  assert "actor/bc_mse" in m
  # Deterministic actions regardless of the flag.
  obs, z = jnp.zeros((3, 2)), jnp.zeros((3, 4))
  np.testing.assert_allclose(td3.act(s0.params, obs, z, jax.random.key(0), False),
                             td3.act(s0.params, obs, z, jax.random.key(1), True))

  auto = make_learner(LearnerConfig.create(**dict(TINY, brac_auto_weight=True, brac_penalty="both",
                                           brac_gp="output", dual_steps=2)))
  st = unstack_seed(auto.init(seed_keys(0, 1)), 0)
  hp = HParams.create(brac_weight=5.0, brac_weight_lr=1.0, brac_target_div=0.05)
  _, m = jax.jit(auto.update)(st, data, hp, POOL)
  want = np.clip(5.0 + (float(m["actor/kl"]) - 0.05), 0.0, 2000.0)
  np.testing.assert_allclose(m["actor/brac_weight"], want, rtol=1e-5)
  assert "critic/value_penalty" in m and np.isfinite(float(m["dual/gp"]))


_SHARD_SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import scripted_policies
    from jcomrl import envs
    from jcomrl.datagen import collect
    from jcomrl.algos.config import HParams, LearnerConfig
    from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
    assert len(jax.devices()) == 4, jax.devices()
    env = envs.make("point_robot")
    data = collect.build_dataset(env, scripted_policies(), env.all_benchmark_tasks(),
                                 jax.random.key(0), quality="mixed",
                                 episodes_per_snapshot=2).to_device()
    lrn = make_learner(LearnerConfig.create(**{tiny!r}))
    hp = broadcast_hparams(HParams.create(), 4)
    pool = jnp.arange(30, dtype=jnp.int32)
    sharded = lrn.init(seed_keys(0, 4))
    leaf = jax.tree.leaves(sharded.params)[0]
    assert len(leaf.sharding.device_set) == 4, leaf.sharding
    single = jax.device_put(lrn.init(seed_keys(0, 4)), jax.devices()[0])
    assert len(jax.tree.leaves(single.params)[0].sharding.device_set) == 1
    for _ in range(2):
      sharded, _ = lrn.train_chunk(sharded, data, hp, pool)
      single, _ = lrn.train_chunk(single, data, hp, pool)
    assert len(jax.tree.leaves(sharded.params)[0].sharding.device_set) == 4
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    print("SHARDED_OK")
""")


@pytest.mark.slow
def test_seed_sharded_run_equals_single_device_run(tmp_path):
  script = tmp_path / "shard.py"
  script.write_text(_SHARD_SCRIPT.format(tests=os.path.dirname(__file__), tiny=TINY))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                       timeout=600, cwd=root, check=False)
  assert out.returncode == 0 and "SHARDED_OK" in out.stdout, out.stderr[-3000:]


# ----------------------------------------------------------------------------- learning


def _ridge_r2(x_fit, y_fit, x_eval, y_eval, reg=1e-3):
  """R^2 of a ridge regression (with bias) fitted on one set of codes, scored on another."""
  add1 = lambda x: np.concatenate([x, np.ones((len(x), 1))], axis=1)
  a = add1(x_fit)
  w = np.linalg.solve(a.T @ a + reg * np.eye(a.shape[1]), a.T @ y_fit)
  resid = y_eval - add1(x_eval) @ w
  return 1.0 - resid.var(axis=0).sum() / y_eval.var(axis=0).sum()


CONTEXT_PRESETS = ("focal", "csro", "unicorn_ss", "unicorn_sup", "supervised", "corro")


@pytest.fixture(scope="module")
def held_out(point_env, synthetic_data):
  from jcomrl.eval.rollout import random_policy_returns
  split = point_env.benchmark_split()
  rows = np.asarray(split["test"])
  tasks = jax.tree.map(lambda x: x[rows], point_env.all_benchmark_tasks())
  rand = float(np.mean(random_policy_returns(point_env, tasks, jax.random.key(0), 8)))
  return split, rows, tasks, rand


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTEXT_PRESETS)
def test_context_preset_learns_and_separates_tasks(name, point_env, synthetic_data, held_out):
  """Short point-robot training: beats a random policy on the 10 held-out tasks, and a linear
  probe from z to the goal position (fitted and scored on different contexts) explains it."""
  from jcomrl.data.sampler import sample_context
  from jcomrl.eval.protocols import iid_returns
  split, rows, tasks, rand = held_out
  data = synthetic_data.to_device()
  p = presets.preset(name, "point_robot")
  lr = dict(p["learner"], rl_hidden=(32, 32), encoder_hidden=(32, 32), dual_hidden=(32,),
            aux_hidden=(32,), context_size=32, rl_batch_size=32, steps_per_chunk=400,
            pretrain_steps=0, obs_size=2, action_size=2, task_param_size=2,
            num_task_labels=40)
  if name == "corro":  # point-robot dynamics are shared: perturb rewards (CORRO's option)
    lr["corro_negative_source"] = "reward_noise"
  lrn = make_learner(LearnerConfig.create(**lr))
  state = lrn.init(seed_keys(0, 1))
  ctx = jax.vmap(lambda k: sample_context(k, data, jnp.asarray(rows), size=32,
                                          mode="transitions"))(
      jax.random.split(jax.random.key(7), 8))
  goals = np.asarray(data.task_params)[rows]

  def probe_r2(state):
    params = unstack_seed(state.params, 0)
    z = np.asarray(jax.vmap(lambda c: lrn.encode(params, c, None))(ctx))  # [8, T, Z]
    return _ridge_r2(z[:4].reshape(-1, z.shape[-1]), np.tile(goals, (4, 1)),
                     z[4:].reshape(-1, z.shape[-1]), np.tile(goals, (4, 1)))

  r2_init = probe_r2(state)
  hp = broadcast_hparams(HParams.create(**p["hparams"]), 1)
  for _ in range(3):
    state, _ = lrn.train_chunk(state, data, hp, jnp.asarray(split["train"]))
  ret = float(np.mean(iid_returns(lrn, state.params, point_env, data, rows, tasks,
                                  jax.random.key(1), num_episodes=2,
                                  context_mode="transitions", context_size=32)))
  r2 = probe_r2(state)
  print(f"{name}: held-out return {ret:.2f} vs random {rand:.2f}; probe R^2 {r2:.3f} "
        f"(untrained encoder {r2_init:.3f})")
  # CORRO's pooled codes of unit-norm embeddings vary little across tasks (spread ~0.02 here),
  # so its short-run policy gains less: measured -17.0 vs random -19.9 (others about -8.5).
  margin = 2.0 if name == "corro" else 6.0
  assert ret > rand + margin, (name, ret, rand)
  # On point-robot an untrained encoder's codes already carry the goal (R^2 0.94-0.96: rewards
  # are -distance to it), so an absolute probe bar cannot tell a trained encoder from an
  # untrained one: the learning evidence is the return above. The probe checks that training
  # kept the task information (a collapsed or scrambled encoder drops to R^2 ~ 0): measured
  # 0.88-0.97 for the presets (unicorn_ss with mbrl-lib's NLL 0.76). CORRO's InfoNCE training
  # lowers it (0.48-0.79 over seeds 0/1 and 1-5 chunks; a 1-ulp change of the rewards moved it
  # from 0.55 to 0.48), so its bar is lower.
  from jcomrl.nets.encoders import INIT_ENCODERS
  if lrn.cfg.net_init == "rlkit" and lrn.cfg.encoder in INIT_ENCODERS:
    # rlkit's encoder head is U(+-3e-3) (UNICORN/FOCAL torchkit): untrained codes are nearly
    # constant (R^2 ~0.01 measured), so here the probe is learning evidence on its own
    assert r2_init < 0.5 and r2 > r2_init + 0.4, (name, r2, r2_init)
  else:
    assert r2_init > 0.8, r2_init  # the premise above
  assert r2 > (0.3 if name == "corro" else 0.65), (name, r2, r2_init)


def test_oracle_learns(point_env, synthetic_data, held_out):
  from jcomrl.eval.protocols import iid_returns
  split, rows, tasks, rand = held_out
  data = synthetic_data.to_device()
  cfg = LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, representation="oracle",
                      rl_hidden=(32, 32), dual_hidden=(32,), context_mode="transitions",
                      context_size=32, rl_batch_size=32, steps_per_chunk=400)
  lrn = make_learner(cfg)
  state = lrn.init(seed_keys(0, 1))
  hp = broadcast_hparams(HParams.create(actor_lr=1e-3, critic_lr=1e-3, tau=0.02,
                                        discount=0.9), 1)
  for _ in range(3):
    state, _ = lrn.train_chunk(state, data, hp, jnp.asarray(split["train"]))
  ret = float(np.mean(iid_returns(lrn, state.params, point_env, data, rows, tasks,
                                  jax.random.key(1), num_episodes=2,
                                  context_mode="transitions", context_size=32)))
  assert ret > rand + 6.0, (ret, rand)


@pytest.mark.parametrize("rep,field,bounds", [("corro", "contrastive_bound",
                                               corro_mod.CONTRASTIVE_BOUNDS),
                                              ("csro", "upper_bound", csro_mod.UPPER_BOUNDS)])
@pytest.mark.slow
def test_every_mi_bound_is_selectable_and_trains(rep, field, bounds, meta_batch):
  """Each named bound changes the objective (value or gradient), has finite loss and gradients,
  and the default is the official one (CORRO: InfoNCE, CSRO: CLUB over all K^2 pairs)."""
  extra = {"encoder": "attention", "corro_negative_source": "reward_noise"} if rep == "corro" else {}
  assert getattr(LearnerConfig.create(**TINY, representation=rep).settings(rep), field) == bounds[0]
  values = {}
  for b in bounds:
    rep_b = make_representation(LearnerConfig.create(**dict(TINY, representation=rep, **extra,
                                                     **{field: b})))
    params = rep_b.init(jax.random.key(1))
    (loss, aux), g = jax.value_and_grad(rep_b.loss, has_aux=True)(
        params, meta_batch, HParams.create(), jax.random.key(2))
    assert np.isfinite(float(loss)), b
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g)), b
    assert any(np.any(np.asarray(x) != 0) for x in jax.tree.leaves(g["encoder"])), b
    gnorm = float(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(g["encoder"])))
    values[b] = (round(float(loss), 4), round(gnorm, 4))
  # every bound is a different objective: its value or its gradient differs (js reports the
  # shifted NWJ value, = TUBA with b = 0, but trains with the JS gradient)
  assert len(set(values.values())) == len(bounds), values
  with pytest.raises(ValueError, match=field):
    LearnerConfig.create(**dict(TINY, representation=rep, **{field: "mine_v2"}))


@pytest.mark.parametrize("tasks", ["all", "train"])
def test_corro_cvae_stage_draws_from_every_task_only_with_pretrain_tasks_all(tasks, tmp_path,
                                                                             synthetic_data):
  import dataclasses

  from jcomrl.algos.trainer import run_training

  p = presets.preset("corro", "point_robot", tiny=True)
  cfg = LearnerConfig.create(**dict(p["learner"], obs_size=2, action_size=2, task_param_size=2,
                             pretrain_steps=20, steps_per_chunk=10, pretrain_tasks=tasks))
  lrn = make_learner(cfg)
  pools = []

  def spy(state, data, hp, pool):
    pools.append((int(state.step[0]), np.asarray(pool).tolist()))
    return lrn.train_chunk(state, data, hp, pool)

  train_rows = list(range(0, 40, 2))  # 20 of the dataset's 40 task rows
  run_training(dataclasses.replace(lrn, train_chunk=spy), synthetic_data,
               HParams.create(**p["hparams"]), train_rows, workdir=str(tmp_path), seed=0,
               num_seeds=1, num_steps=40, checkpoint_every=40, progress=None)
  first = list(range(40)) if tasks == "all" else train_rows
  assert pools == [(0, first), (10, first), (20, train_rows), (30, train_rows)]
