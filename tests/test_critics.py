"""Tests of jcomrl.nets.critics: shapes, all-pairs vs per-pair evaluation, normalisation."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jcomrl import mi
from jcomrl.nets.critics import ConcatCritic, SeparableCritic

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
  w1 = np.concatenate([p["first_x"]["kernel"], p["first_y"]["kernel"]], axis=0)
  rest = p["rest"]

  def manual(xi, yj):
    h = np.maximum(np.concatenate([xi, yj]) @ w1 + p["first_x"]["bias"], 0)
    h = np.maximum(h @ rest["Dense_0"]["kernel"] + rest["Dense_0"]["bias"], 0)
    return (h @ rest["Dense_1"]["kernel"] + rest["Dense_1"]["bias"])[0]

  x, y, y_neg = (np.asarray(a) for a in _data())
  loop = np.array([[manual(x[i], y[j]) for j in range(K)] for i in range(K)])
  np.testing.assert_allclose(scores, loop, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(singles, loop, rtol=1e-5, atol=1e-6)   # per-pair module calls
  np.testing.assert_allclose(pairs, np.diag(loop), rtol=1e-5, atol=1e-6)
  neg_loop = np.array([[manual(x[i], y_neg[i, m]) for m in range(M)] for i in range(K)])
  np.testing.assert_allclose(neg, neg_loop, rtol=1e-5, atol=1e-6)
