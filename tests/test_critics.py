"""Tests of jcomrl.nets.critics: shapes, all-pairs vs per-pair evaluation, normalisation."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jcomrl import mi
from jcomrl.nets.critics import ConcatCritic, CriticMLP, SeparableCritic

K, M, DX, DY = 5, 3, 4, 2
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _data():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((K, DX)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((K, DY)), jnp.float32)
  y_neg = jnp.asarray(rng.standard_normal((K, M, DY)), jnp.float32)
  return x, y, y_neg


@functools.cache
def _outputs(critic):
  """Init ``critic`` and evaluate everything the tests need in one jitted program."""
  x, y, y_neg = _data()

  def compute(x, y, y_neg):
    params = critic.init(jax.random.PRNGKey(0), x, y)
    scores = critic.apply(params, x, y)
    pairs = critic.apply(params, x, y, method="pair_scores")
    neg = critic.apply(params, x[:, None, :], y_neg, method="pair_scores")
    singles = jax.vmap(lambda xi: jax.vmap(
        lambda yj: critic.apply(params, xi, yj, method="pair_scores"))(y))(x)
    grads = jax.grad(lambda p: mi.infonce(critic.apply(p, x, y)))(params)
    embed = critic.apply(params, x, y, method="embed") if hasattr(critic, "embed") else None
    return params, scores, pairs, neg, singles, grads, embed
  compiled = jax.jit(compute).lower(x, y, y_neg).compile(compiler_options=_FAST_COMPILE)
  return jax.tree.map(np.asarray, compiled(x, y, y_neg))


def test_separable_critic_shapes_and_pairs():
  critic = SeparableCritic(hidden_sizes=(8,), embed_dim=6, temperature=0.5)
  _, scores, pairs, neg, singles, grads, (gx, hy) = _outputs(critic)
  chex.assert_shape(scores, (K, K))
  chex.assert_shape(pairs, (K,))
  chex.assert_shape(neg, (K, M))
  chex.assert_shape((gx, hy), (K, 6))
  np.testing.assert_allclose(pairs, np.diag(scores), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(singles, scores, rtol=1e-5, atol=1e-6)
  # scores are the dot products of the two embeddings divided by the temperature
  np.testing.assert_allclose(scores, (gx @ hy.T) / 0.5, rtol=1e-5, atol=1e-6)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert any(np.max(np.abs(g)) > 0 for g in leaves)


def test_separable_critic_normalised_and_learned_temperature():
  critic = SeparableCritic(hidden_sizes=(8,), embed_dim=6, temperature=0.1, normalize=True,
                           learn_temperature=True)
  params, scores, _, _, _, grads, (gx, hy) = _outputs(critic)
  np.testing.assert_allclose(np.linalg.norm(gx, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(hy, axis=-1), 1.0, rtol=1e-5)
  assert np.all(np.abs(scores) <= 10.0 + 1e-4)          # cosine / 0.1
  np.testing.assert_allclose(scores, 10.0 * gx @ hy.T, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(params["params"]["log_temperature"], np.log(0.1), rtol=1e-6)
  assert abs(grads["params"]["log_temperature"]) > 0


def test_concat_critic_matches_double_loop_and_manual_mlp():
  critic = ConcatCritic(hidden_sizes=(8, 8))
  params, scores, pairs, neg, singles, _, _ = _outputs(critic)
  chex.assert_shape(scores, (K, K))
  chex.assert_shape(pairs, (K,))
  chex.assert_shape(neg, (K, M))
  # an independent numpy MLP on the concatenation [x, y] (first layer kernel = [W_x; W_y]),
  # evaluated pair by pair in a Python double loop
  p = params["params"]
  w1 = p["first"]["kernel"]
  chex.assert_shape(w1, (DX + DY, 8))
  rest = p["rest"]

  def manual(xi, yj):
    h = np.maximum(np.concatenate([xi, yj]) @ w1 + p["first"]["bias"], 0)
    h = np.maximum(h @ rest["Dense_0"]["kernel"] + rest["Dense_0"]["bias"], 0)
    return (h @ rest["Dense_1"]["kernel"] + rest["Dense_1"]["bias"])[0]

  x, y, y_neg = (np.asarray(a) for a in _data())
  loop = np.array([[manual(x[i], y[j]) for j in range(K)] for i in range(K)])
  np.testing.assert_allclose(scores, loop, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(singles, loop, rtol=1e-5, atol=1e-6)   # per-pair module calls
  np.testing.assert_allclose(pairs, np.diag(loop), rtol=1e-5, atol=1e-6)
  neg_loop = np.array([[manual(x[i], y_neg[i, m]) for m in range(M)] for i in range(K)])
  np.testing.assert_allclose(neg, neg_loop, rtol=1e-5, atol=1e-6)


def test_fan_in_uniform_and_lecun_inits():
  x, y, _ = _data()
  sep = SeparableCritic(hidden_sizes=(8,), embed_dim=6)
  con = ConcatCritic(hidden_sizes=(8, 8))
  lec = CriticMLP((8,), 3, init_scheme="lecun_normal")

  def inits(key):
    return sep.init(key, x, y)["params"], con.init(key, x, y)["params"], lec.init(key, x)["params"]
  key = jax.random.PRNGKey(0)
  compiled = jax.jit(inits).lower(key).compile(compiler_options=_FAST_COMPILE)
  ps, pc, lecun = jax.tree.map(np.asarray, compiled(key))
  # default: every kernel and bias uniform in +-1/sqrt(fan_in) (fan-in of the whole layer)
  for layer, fan_in in [(ps["g"]["Dense_0"], DX), (ps["h"]["Dense_0"], DY),
                        (ps["g"]["Dense_1"], 8), (pc["first"], DX + DY),
                        (pc["rest"]["Dense_0"], 8), (pc["rest"]["Dense_1"], 8)]:
    for leaf in (layer["kernel"], layer["bias"]):
      assert np.all(np.abs(leaf) <= 1.0 / np.sqrt(fan_in)) and np.any(leaf != 0)
  np.testing.assert_array_equal(lecun["Dense_0"]["bias"], 0.0)
  with pytest.raises(ValueError, match="unknown init_scheme"):
    CriticMLP((8,), 3, init_scheme="orthogonal").init(jax.random.PRNGKey(0), x)


def _train_on_gaussians(critic, bound, steps=400, k=64, d=5, info=1.0, lr=3e-3):
  """Trains ``critic`` by maximising ``bound`` on fresh correlated-Gaussian batches (one jitted
  scan); returns the per-step estimates."""
  rho = np.sqrt(1.0 - np.exp(-2.0 * info / d))
  opt = optax.adam(lr)

  def run(key):
    k_init, k_steps = jax.random.split(key)
    params = critic.init(k_init, jnp.zeros((k, d)), jnp.zeros((k, d)))

    def step(carry, key):
      params, opt_state = carry
      kx, ke = jax.random.split(key)
      x = jax.random.normal(kx, (k, d))
      y = rho * x + np.sqrt(1.0 - rho ** 2) * jax.random.normal(ke, (k, d))
      value, grads = jax.value_and_grad(lambda p: bound(critic.apply(p, x, y)))(params)
      updates, opt_state = opt.update(jax.tree.map(jnp.negative, grads), opt_state)
      return (optax.apply_updates(params, updates), opt_state), value

    _, values = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(k_steps, steps))
    return values
  key = jax.random.PRNGKey(3)
  return np.asarray(jax.jit(run).lower(key).compile(compiler_options=_FAST_COMPILE)(key))


def test_critics_learn_the_gaussian_mi():
  # I = 1 nat << log 64: a trained critic's InfoNCE / NWJ estimate approaches I from below
  for critic, bound in [(SeparableCritic(hidden_sizes=(32,), embed_dim=16), mi.infonce),
                        (ConcatCritic(hidden_sizes=(32,)), mi.nwj)]:
    values = _train_on_gaussians(critic, bound)
    assert np.all(np.isfinite(values))
    assert values[:20].mean() < 0.5
    assert 0.75 < values[-100:].mean() < 1.1, (type(critic).__name__, values[-100:].mean())
