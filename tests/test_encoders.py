"""Context encoders: set encoders ignore the order of the context, sequence encoders read it as a
trajectory (a step's embedding sees only the steps before it), and every encoder trains under
an objective and composes with the learner."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos.compose import check
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import make_learner, seed_keys, unstack_seed
from jcomrl.nets.encoders import ENCODERS, SEQUENCE_ENCODERS, make_encoder

SET_ENCODERS = tuple(e for e in ENCODERS if e not in SEQUENCE_ENCODERS)
K, F = 9, 7


@pytest.fixture(scope="module")
def context():
  return jax.random.normal(jax.random.key(0), (3, K, F))


def _encoder(kind, x):
  m = make_encoder(kind, (24, 24), 5)
  p = m.init(jax.random.key(1), x)
  # Random (not zero) biases everywhere, so no symmetry of the initialisation hides an order
  # dependence.
  leaves, tree = jax.tree.flatten(p)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  p = jax.tree.unflatten(tree, [v + 0.3 * jax.random.normal(k, v.shape)
                                for v, k in zip(leaves, keys)])
  return m, p


def test_every_encoder_is_a_set_or_a_sequence_encoder():
  assert set(SEQUENCE_ENCODERS) <= set(ENCODERS) and {"gru", "transformer"} <= set(ENCODERS)
  assert SET_ENCODERS, "no set encoder left"


@pytest.mark.parametrize("kind", ENCODERS)
def test_order_sensitivity(kind, context):
  m, p = _encoder(kind, context)
  perm = np.asarray(jax.random.permutation(jax.random.key(3), K))
  assert not np.array_equal(perm, np.arange(K))
  z = m.apply(p, context)
  z_perm = m.apply(p, context[:, perm])
  e = m.apply(p, context, method="embed")
  assert z.shape == (3, 5) and e.shape == (3, K, 5)
  # Any batch shape: a leading axis gives the same codes.
  np.testing.assert_allclose(m.apply(p, jnp.stack([context, context]))[1], z, atol=1e-6)
  if kind in SEQUENCE_ENCODERS:
    assert float(jnp.max(jnp.abs(z_perm - z))) > 1e-2, "a sequence encoder ignored the order"
  else:
    np.testing.assert_allclose(z_perm, z, atol=1e-5)
    # and the per-transition embeddings are permuted with the transitions
    np.testing.assert_allclose(m.apply(p, context[:, perm], method="embed"), e[:, perm], atol=1e-5)


@pytest.mark.parametrize("kind", SEQUENCE_ENCODERS)
def test_sequence_embeddings_see_only_the_past(kind, context):
  m, p = _encoder(kind, context)
  t = 4
  future = context.at[:, t + 1:].add(1.0)
  e, e_future = (m.apply(p, c, method="embed") for c in (context, future))
  np.testing.assert_allclose(e_future[:, :t + 1], e[:, :t + 1], atol=1e-6)
  assert float(jnp.max(jnp.abs(e_future[:, t + 1:] - e[:, t + 1:]))) > 1e-3
  past = context.at[:, t].add(1.0)
  assert float(jnp.max(jnp.abs(m.apply(p, past, method="embed")[:, t] - e[:, t]))) > 1e-3
  # A prefix encodes as the prefix's embeddings (no hidden dependence on the context length).
  np.testing.assert_allclose(m.apply(p, context[:, :t + 1], method="embed"), e[:, :t + 1],
                             atol=1e-5)
  # The code is what pool_embeddings makes of the embeddings.
  np.testing.assert_allclose(m.apply(p, e, method="pool_embeddings"), m.apply(p, context),
                             atol=1e-6)


@pytest.fixture(scope="module")
def first_step_task():
  """Contexts whose target is a feature of the *first* transition: only an encoder that knows
  the order can find it (a set encoder sees the same multiset for every position)."""
  x = jax.random.normal(jax.random.key(7), (2, 512, K, F))
  return x, x[..., 0, :2]  # (fit, test) contexts and targets


def _fit_r2(kind, x, y, steps=300):
  import optax
  m = make_encoder(kind, (32, 32), 8)
  head = lambda w, z: z @ w["w"] + w["b"]
  params = {"enc": m.init(jax.random.key(1), x[0, :2]),
            "head": {"w": jnp.zeros((8, 2)), "b": jnp.zeros(2)}}
  opt = optax.adam(3e-3)

  def loss(p, xb, yb):
    return jnp.mean((head(p["head"], m.apply(p["enc"], xb)) - yb) ** 2)

  @jax.jit
  def train(p):
    def step(carry, _):
      p, s = carry
      g = jax.grad(loss)(p, x[0], y[0])
      u, s = opt.update(g, s, p)
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(step, (p, opt.init(p)), None, length=steps)[0][0]

  p = train(params)
  err = float(loss(p, x[1], y[1]))
  return 1.0 - err / float(jnp.var(y[1]) )


@pytest.mark.slow
def test_only_sequence_encoders_learn_what_the_order_carries(first_step_task):
  """Learning beats a control: GRU/transformer codes predict the first transition's features
  on held-out contexts; the set encoder (the control) cannot beat chance level by much."""
  x, y = first_step_task
  r2 = {kind: _fit_r2(kind, x, y) for kind in (*SEQUENCE_ENCODERS, "mean_tanh")}
  for kind in SEQUENCE_ENCODERS:
    assert r2[kind] > 0.5, r2
  assert r2["mean_tanh"] < 0.25, r2  # the mean holds 1/K of the first step's signal


@pytest.mark.parametrize("kind", [k if k == "gru" else pytest.param(k, marks=pytest.mark.slow)
                                  for k in SEQUENCE_ENCODERS])
def test_sequence_encoders_train_inside_the_learner(kind, synthetic_data):
  """Every objective takes a sequence encoder: UNICORN-SUP on point-robot trajectories trains
  every encoder leaf, with finite losses."""
  data = synthetic_data.to_device()
  cfg = LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, latent_size=4,
                      encoder=kind, encoder_hidden=(16, 16), aux_hidden=(16,), rl_hidden=(16,),
                      dual_hidden=(16,), representation="unicorn_sup", meta_batch_size=4,
                      context_mode="trajectory", context_size=16, rl_batch_size=8,
                      steps_per_chunk=5, num_task_labels=40)
  lrn = make_learner(cfg)
  state = unstack_seed(lrn.init(seed_keys(0, 1)), 0)
  new, m = jax.jit(lrn.update)(state, data, HParams.create(), jnp.arange(30, dtype=jnp.int32))
  assert all(np.isfinite(np.asarray(v)).all() for v in m.values())
  before, after = (jax.tree.leaves(s.params["encoder"]) for s in (state, new))
  assert all(not np.allclose(a, b) for a, b in zip(before, after))


# ----------------------------------------------------------------------------- KL and BOReL


def test_gaussian_kl_analytic_and_the_previous_belief_prior():
  from jcomrl.algos.objectives.kl import gaussian_kl, kl_to_prior
  # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - log s^2) / 2 per dim.
  m, lv = jnp.array([1.0, -0.5]), jnp.array([0.0, np.log(4.0)])
  want = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (4 + 0.25 - 1 - np.log(4.0))
  np.testing.assert_allclose(gaussian_kl(m, lv, jnp.zeros(2), jnp.zeros(2)), want, rtol=1e-6)
  # KL(N(0, 1) || N(1, 4)) = (log 4 - 0 - 1 + 1/4 + 1/4) / 2.
  np.testing.assert_allclose(gaussian_kl(jnp.zeros(1), jnp.zeros(1), jnp.ones(1),
                                         jnp.full(1, np.log(4.0))),
                             0.5 * (np.log(4.0) - 1 + 0.25 + 0.25), rtol=1e-6)
  # "previous": step t against step t - 1, N(0, I) before the first step.
  means = jnp.array([[1.0], [1.0], [3.0]])
  lvs = jnp.zeros((3, 1))
  np.testing.assert_allclose(kl_to_prior(means, lvs, "previous"), [0.5, 0.0, 2.0], rtol=1e-6)
  np.testing.assert_allclose(kl_to_prior(means, lvs, "gauss"), [0.5, 0.5, 4.5], rtol=1e-6)


@pytest.mark.parametrize("kw,match", [
    (dict(representation="borel", encoder="gru"), "Gaussian encoder"),
    (dict(representation="unicorn_ss", encoder="mean_tanh", extra_objectives="kl"),
     "Gaussian encoder"),
    (dict(representation="unicorn_ss", encoder="stochastic", extra_objectives="kl",
          kl={"kl_prior": "previous"}), "sequence encoder"),
    (dict(representation="kl", encoder="stochastic", kl_prior="prior"), "kl.kl_prior")])
def test_kl_terms_refuse_encoders_without_a_belief(kw, match):
  with pytest.raises(ValueError, match=match):
    check(LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, **kw))


def test_kl_term_adds_its_weighted_kl(synthetic_data):
  """UNICORN-SS-0 + KL (UNICORN Table 6): the extra term's loss is kl_weight x the mean KL of
  the stochastic encoder's per-transition Gaussians to N(0, I)."""
  from jcomrl.algos.objectives import make_representation
  from jcomrl.algos.objectives.kl import kl_to_prior
  from jcomrl.data.sampler import sample_meta_batch
  cfg = LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, latent_size=3,
                      encoder="stochastic", encoder_hidden=(8,), aux_hidden=(8,),
                      representation="unicorn_ss", extra_objectives="kl:2.0",
                      context_mode="transitions", context_size=6)
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(0))
  mb = sample_meta_batch(jax.random.key(1), synthetic_data.to_device(), jnp.arange(30),
                         meta_batch_size=4, context_size=6, context_mode="transitions",
                         rl_batch_size=4)
  hp = HParams.create(kl_weight=0.5)
  loss = jax.jit(rep.loss)
  with_kl, out = loss(params, mb, hp, jax.random.key(2))
  enc = make_encoder("stochastic", (8,), 3)
  from jcomrl.nets.encoders import context_features
  mean, lv = jax.jit(lambda p, x: enc.apply(p, x, method="posterior"))(
      params["encoder"], context_features(mb.context, True))
  want = float(jnp.mean(kl_to_prior(mean, lv, "gauss")))
  np.testing.assert_allclose(out["metrics"]["kl/rep/kl"], want, rtol=1e-5)
  no_kl = make_representation(LearnerConfig.create(**{**cfg.__dict__, "extra_objectives": ""}))
  base, _ = jax.jit(no_kl.loss)(params, mb, hp, jax.random.key(2))
  np.testing.assert_allclose(with_kl - base, 2.0 * 0.5 * want, rtol=1e-4)


@pytest.mark.slow
def test_borel_learns_on_point_robot_and_uses_its_belief(point_env, synthetic_data):
  """The BOReL preset (GRU belief over the 20-step context trajectory) beats the random policy
  on the held-out tasks, and loses return when each task acts on another task's belief (the
  z-shuffle control)."""
  from jcomrl.algos import presets
  from jcomrl.algos.learner import broadcast_hparams
  from jcomrl.eval.protocols import derangement, iid_returns
  from jcomrl.eval.rollout import random_policy_returns
  data = synthetic_data.to_device()
  split = point_env.benchmark_split()
  rows = np.asarray(split["test"])
  tasks = jax.tree.map(lambda x: x[rows], point_env.all_benchmark_tasks())
  rand = float(np.mean(random_policy_returns(point_env, tasks, jax.random.key(0), 8)))
  p = presets.preset("borel", "point_robot")
  lr = dict(p["learner"], rl_hidden=(32, 32), encoder_hidden=(32,), dual_hidden=(32,),
            aux_hidden=(32,), rl_batch_size=32, steps_per_chunk=400, obs_size=2, action_size=2,
            task_param_size=2, num_task_labels=40)
  lrn = make_learner(LearnerConfig.create(**lr))
  state = lrn.init(seed_keys(0, 1))
  hp = broadcast_hparams(HParams.create(**p["hparams"]), 1)
  for _ in range(3):
    state, m = lrn.train_chunk(state, data, hp, jnp.asarray(split["train"]))
  assert np.isfinite(float(m["rep/kl"][0]))
  kw = dict(num_episodes=2, context_mode="trajectory", context_size=20)
  ret = float(np.mean(iid_returns(lrn, state.params, point_env, data, rows, tasks,
                                  jax.random.key(1), **kw)))
  shuffled = float(np.mean(iid_returns(lrn, state.params, point_env, data, rows, tasks,
                                       jax.random.key(1), z_permutation=derangement(
                                           len(rows), jax.random.key(3)), **kw)))
  # Measured: -9.9 vs random -19.9, shuffled -16.6.
  assert ret > rand + 6.0, (ret, rand)
  assert ret > shuffled + 3.0, (ret, shuffled)


# ----------------------------------------------------------------------------- PEARL (SMAC)


def np_pearl_factors(params, x, latent):
  """The ``pearl`` encoder's per-transition factors by hand: a ReLU MLP (float64) whose last
  layer gives ``(mu, softplus(raw))`` halves."""
  layers = params["params"]["net"]
  h = np.asarray(x, np.float64)
  for i in range(len(layers)):
    d = layers[f"Dense_{i}"]
    h = h @ np.asarray(d["kernel"], np.float64) + np.asarray(d["bias"], np.float64)
    if i < len(layers) - 1:
      h = np.maximum(h, 0.0)
  return h[..., :latent], np.logaddexp(0.0, h[..., latent:])


def test_pearl_posterior_is_the_product_of_its_factors(context):
  """q(z | c) = prod_k N(mu_k, s_k^2), normalised: 1 / s^2 = sum_k 1 / s_k^2 and
  mu = s^2 sum_k mu_k / s_k^2 (rlkit agent.py:18-25); one transition gives its own factor; the
  order of the transitions does not matter; a key draws mu + s eps (eps from that key)."""
  m, p = _encoder("pearl", context)
  mu_k, var_k = np_pearl_factors(p, context, 5)
  var = 1.0 / np.sum(1.0 / var_k, axis=-2)
  mean = var * np.sum(mu_k / var_k, axis=-2)
  got_mean, got_lv = m.apply(p, context, method="posterior")
  assert got_mean.shape == (3, 1, 5) and got_lv.shape == (3, 1, 5)
  np.testing.assert_allclose(got_mean[:, 0], mean, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.exp(got_lv[:, 0]), var, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(m.apply(p, context), mean, rtol=1e-4, atol=1e-5)  # the mean code
  # the precision weighting matters: the product's mean is not the factors' plain mean
  assert np.abs(mean - mu_k.mean(axis=-2)).max() > 1e-2
  # one transition: the posterior is that transition's factor
  one_mean, one_lv = m.apply(p, context[:, :1], method="posterior")
  np.testing.assert_allclose(one_mean[:, 0], mu_k[:, 0], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.exp(one_lv[:, 0]), var_k[:, 0], rtol=1e-4, atol=1e-7)
  # order invariance
  perm = np.asarray(jax.random.permutation(jax.random.key(4), K))
  pm, plv = m.apply(p, context[:, perm], method="posterior")
  np.testing.assert_allclose(pm, got_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(plv, got_lv, rtol=1e-5, atol=1e-6)
  # the information bottleneck: a reparameterised sample of the product
  key = jax.random.key(5)
  eps = np.asarray(jax.random.normal(key, (3, 5)), np.float64)
  np.testing.assert_allclose(m.apply(p, context, key), mean + np.sqrt(var) * eps, rtol=1e-4,
                             atol=1e-5)
