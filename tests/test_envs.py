"""Point-robot env and the TaskEnv API."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import envs


def test_unknown_env_and_override_names_the_problem():
  with pytest.raises(ValueError, match="unknown environment 'nope'.*point_robot"):
    envs.make("nope")
  with pytest.raises(ValueError, match="bad overrides"):
    envs.make("point_robot", no_such_option=1)


def test_benchmark_split_is_csro_evenly_spaced(point_env):
  split = point_env.benchmark_split()
  assert split["test"] == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]
  assert sorted(split["train"] + split["test"]) == list(range(40))
  train, test = point_env.benchmark_tasks()
  chex.assert_shape([train["goal"], test["goal"]], [(30, 2), (10, 2)])
  angles = np.arctan2(test["goal"][:, 1], test["goal"][:, 0])
  np.testing.assert_allclose(angles, np.linspace(0, np.pi, 40)[split["test"]], atol=1e-5)


def test_sample_tasks_on_unit_half_circle(point_env):
  g = point_env.sample_tasks(jax.random.key(0), 64)["goal"]
  np.testing.assert_allclose(np.linalg.norm(g, axis=-1), 1.0, atol=1e-5)
  assert np.all(g[:, 1] >= -1e-6)


def test_reward_formula_shapes_and_time_limit(point_env):
  _, tasks = point_env.benchmark_tasks()
  keys = jax.random.split(jax.random.key(1), 10)
  s = jax.vmap(point_env.reset)(keys, tasks)
  chex.assert_shape([s.obs, s.reward, s.done], [(10, 2), (10,), (10,)])
  actions = jax.random.uniform(jax.random.key(2), (20, 10, 2), minval=-2, maxval=2)
  step = jax.jit(jax.vmap(point_env.step))
  pos = np.zeros((10, 2))
  for t in range(20):
    s = step(s, actions[t], tasks)
    pos = pos + 0.1 * np.clip(actions[t], -1, 1)
    np.testing.assert_allclose(s.obs, pos, atol=1e-5)
    np.testing.assert_allclose(s.reward, -np.linalg.norm(pos - tasks["goal"], axis=-1), atol=1e-5)
    want_done = float(t == 19)
    np.testing.assert_array_equal(s.done, want_done)
    np.testing.assert_array_equal(s.truncation, want_done)
    np.testing.assert_array_equal(s.terminal, 0.0)


def test_vmap_over_tasks_equals_loop(point_env):
  _, tasks = point_env.benchmark_tasks()
  a = jnp.tile(jnp.array([[0.3, -0.7]]), (10, 1))
  keys = jax.random.split(jax.random.key(3), 10)
  batched = jax.vmap(point_env.step)(jax.vmap(point_env.reset)(keys, tasks), a, tasks)
  for i in range(10):
    task = jax.tree.map(lambda x, i=i: x[i], tasks)
    one = point_env.step(point_env.reset(keys[i], task), a[i], task)
    np.testing.assert_allclose(batched.reward[i], one.reward, rtol=1e-6)
    np.testing.assert_allclose(batched.obs[i], one.obs, rtol=1e-6)


def test_sparse_reward_only_near_goal():
  env = envs.make("sparse_point_robot")
  task = {"goal": jnp.array([1.0, 0.0])}
  s = env.reset(jax.random.key(0), task)
  s = env.step(s, jnp.array([1.0, 0.0]), task)  # 0.9 from the goal: outside radius 0.2
  assert float(s.reward) == 0.0
  np.testing.assert_allclose(s.info["dense_reward"], -0.9, atol=1e-6)
  for _ in range(8):
    s = env.step(s, jnp.array([1.0, 0.0]), task)  # now 0.1 from the goal
  np.testing.assert_allclose(s.reward, 1.0 - 0.1, atol=1e-5)
