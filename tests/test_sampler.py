"""Sampler: shapes, task separation, contiguous trajectories."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.data import sampler


@pytest.fixture(scope="module")
def tagged(synthetic_data):
  """The synthetic dataset with every transition tagged by its task row and its position."""
  t, n = synthetic_data.transitions.reward.shape
  tag_task = jnp.broadcast_to(jnp.arange(t, dtype=jnp.float32)[:, None], (t, n))
  tag_pos = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[None, :], (t, n))
  obs = jnp.stack([tag_task, tag_pos], axis=-1)
  return synthetic_data.replace(transitions=synthetic_data.transitions.replace(obs=obs))


def test_meta_batch_shapes_and_task_separation(tagged):
  pool = jnp.asarray([0, 5, 7, 11], jnp.int32)
  fn = jax.jit(lambda k, d: sampler.sample_meta_batch(
      k, d, pool, meta_batch_size=16, context_size=20, context_mode="trajectory",
      rl_batch_size=32))
  for seed in range(3):
    mb = fn(jax.random.key(seed), tagged)
    chex.assert_shape([mb.context.obs, mb.rl.obs, mb.task_params], [(16, 20, 2), (16, 32, 2),
                                                                     (16, 2)])
    assert set(np.asarray(mb.task_index).tolist()) <= {0, 5, 7, 11}
    # Every context and RL row comes from its own task only.
    np.testing.assert_array_equal(mb.context.obs[..., 0], np.broadcast_to(mb.task_index[:, None], (16, 20)))
    np.testing.assert_array_equal(mb.rl.obs[..., 0], np.broadcast_to(mb.task_index[:, None], (16, 32)))
    # A trajectory context is one aligned, contiguous segment.
    pos = np.asarray(mb.context.obs[..., 1])
    assert np.all(np.diff(pos, axis=1) == 1) and np.all(pos[:, 0] % 20 == 0)


def test_transitions_context_and_bad_mode(tagged):
  idx = jnp.asarray([3, 3, 9], jnp.int32)
  ctx = sampler.sample_context(jax.random.key(0), tagged, idx, size=50, mode="transitions")
  np.testing.assert_array_equal(ctx.obs[..., 0], np.broadcast_to(idx[:, None], (3, 50)))
  with pytest.raises(ValueError, match="unknown context mode 'episodes'"):
    sampler.sample_context(jax.random.key(0), tagged, idx, size=5, mode="episodes")
  with pytest.raises(ValueError, match="exceeds segment_length"):
    sampler.sample_trajectory(jax.random.key(0), tagged, idx, size=21)


def test_without_replacement_draws_distinct_tasks(tagged):
  pool = jnp.arange(30, dtype=jnp.int32)
  mb = sampler.sample_meta_batch(jax.random.key(1), tagged, pool, meta_batch_size=16,
                                 context_size=4, context_mode="transitions", rl_batch_size=4,
                                 replace=False)
  assert len(set(np.asarray(mb.task_index).tolist())) == 16
