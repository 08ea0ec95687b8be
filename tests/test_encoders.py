"""Context encoders: set encoders ignore the order of the context, sequence encoders read it as a
trajectory (a step's embedding sees only the steps before it), and every encoder trains under
an objective and composes with the learner."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_only_sequence_encoders_learn_what_the_order_carries(first_step_task):
  """Learning beats a control: GRU/transformer codes predict the first transition's features
  on held-out contexts; the set encoder (the control) cannot beat chance level by much."""
  x, y = first_step_task
  r2 = {kind: _fit_r2(kind, x, y) for kind in (*SEQUENCE_ENCODERS, "mean_tanh")}
  for kind in SEQUENCE_ENCODERS:
    assert r2[kind] > 0.5, r2
  assert r2["mean_tanh"] < 0.25, r2  # the mean holds 1/K of the first step's signal


@pytest.mark.parametrize("kind", SEQUENCE_ENCODERS)
def test_sequence_encoders_train_inside_the_learner(kind, synthetic_data):
  """Every objective takes a sequence encoder: UNICORN-SUP on point-robot trajectories trains
  every encoder leaf, with finite losses."""
  data = synthetic_data.to_device()
  cfg = LearnerConfig(obs_size=2, action_size=2, task_param_size=2, latent_size=4,
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
