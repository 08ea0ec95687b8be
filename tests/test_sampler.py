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


def test_every_segment_is_eventually_drawn(tagged):
  """Trajectory contexts start at every stored segment of a task (the last one included)."""
  seg = tagged.segment_length
  idx = jnp.asarray([4, 17], jnp.int32)
  fn = jax.jit(lambda k, d: sampler.sample_trajectory(k, d, idx))
  starts = np.concatenate([np.asarray(fn(jax.random.key(s), tagged).obs[:, 0, 1])
                           for s in range(60)])
  assert set((starts // seg).astype(int).tolist()) == set(range(tagged.num_segments))


@pytest.mark.parametrize("resample_every", [1, 3])
def test_learner_sampling_with_the_train_split(tagged, point_env, resample_every):
  """The learner's meta-batches on the real train split (not ``arange``), UNICORN's
  ``task_resample_every`` included: every task drawn is in the pool, every context and RL row
  belongs to its slot's task across resamples (rows carry their task id), tasks are held for
  ``resample_every`` updates, the pool is covered and every segment is eventually a context."""
  from jcomrl.algos.config import LearnerConfig
  from jcomrl.algos.learner import TrainState, _Program

  train = np.asarray(point_env.benchmark_split()["train"])
  assert not np.array_equal(train, np.arange(len(train)))  # a realistic, non-identity pool
  pool = jnp.asarray(train, jnp.int32)
  lrn = _Program(LearnerConfig.create(  # the learner's single-seed program (its meta_batch)
      obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
      rl_hidden=(16,), dual_hidden=(16,), meta_batch_size=4, context_size=tagged.segment_length,
      context_mode="trajectory", rl_batch_size=8, task_resample_every=resample_every))
  draw = jax.jit(lambda key, st, d: lrn.meta_batch(key, key, st, d, pool)[0])
  state = TrainState(params={}, opt={}, step=jnp.zeros((), jnp.int32), key=None,
                     tasks=jnp.zeros((4,), jnp.int32))
  seen_tasks, seen_segments, history = set(), set(), []
  for i in range(60):
    mb = draw(jax.random.key(i), state, tagged)
    tasks = np.asarray(mb.task_index)
    assert set(tasks.tolist()) <= set(train.tolist()), tasks
    np.testing.assert_array_equal(np.asarray(mb.task_params), np.asarray(tagged.task_params)[tasks])
    np.testing.assert_array_equal(np.asarray(mb.context.obs[..., 0]),
                                  np.broadcast_to(tasks[:, None], mb.context.obs.shape[:2]))
    np.testing.assert_array_equal(np.asarray(mb.rl.obs[..., 0]),
                                  np.broadcast_to(tasks[:, None], mb.rl.obs.shape[:2]))
    seen_tasks |= set(tasks.tolist())
    seen_segments |= set((np.asarray(mb.context.obs[:, 0, 1]) // tagged.segment_length)
                         .astype(int).tolist())
    history.append(tuple(tasks))
    # what ``Learner.update`` carries to the next update
    state = state.replace(step=state.step + 1, tasks=mb.task_index)
  for i in range(60):
    same = history[i] == history[i - i % resample_every]
    assert same, (i, history[i - i % resample_every], history[i])
  if resample_every > 1:
    assert len(set(history)) > 60 // resample_every // 2  # it does resample
  assert len(seen_tasks) > 0.8 * len(train)
  assert seen_segments == set(range(tagged.num_segments))
