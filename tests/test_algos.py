"""Learner: FOCAL loss by hand, vmap-over-tasks invariant, no retrace, learning beats random."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import mi
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys, unstack_seed
from jcomrl.data.sampler import sample_meta_batch
from jcomrl.eval.protocols import iid_returns
from jcomrl.eval.rollout import random_policy_returns

TINY = dict(obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
            rl_hidden=(16,), dual_hidden=(16,), meta_batch_size=4, context_size=8,
            context_mode="transitions", rl_batch_size=8, steps_per_chunk=5)


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


def test_unknown_objective_is_refused():
  with pytest.raises(ValueError, match="unknown representation objective 'pearl'"):
    LearnerConfig(**dict(TINY, representation="pearl"))


@pytest.fixture(scope="module")
def tiny_learner():
  return make_learner(LearnerConfig(**TINY))


def test_vmapped_task_losses_equal_per_task_loop(tiny_learner, synthetic_data):
  state = unstack_seed(tiny_learner.init(seed_keys(0, 1)), 0)
  hp = HParams.create()
  mb = sample_meta_batch(jax.random.key(0), synthetic_data.to_device(), jnp.arange(30),
                         meta_batch_size=4, context_size=8, context_mode="transitions",
                         rl_batch_size=8)
  z = jax.random.normal(jax.random.key(1), (4, 4))
  keys = jax.random.split(jax.random.key(2), 4)
  batched = jax.vmap(tiny_learner.per_task_losses, in_axes=(None, 0, 0, 0, None))(
      state.params, mb.rl, z, keys, hp)
  for i in range(4):
    one = tiny_learner.per_task_losses(state.params, jax.tree.map(lambda x: x[i], mb.rl), z[i],
                                       keys[i], hp)
    for k in one:
      np.testing.assert_allclose(batched[k][i], one[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_train_chunk_does_not_retrace_and_changes_params(tiny_learner, synthetic_data):
  data = synthetic_data.to_device()
  hp = broadcast_hparams(HParams.create(), 2)
  pool = jnp.arange(30, dtype=jnp.int32)
  state = tiny_learner.init(seed_keys(0, 2))
  before = jax.tree.map(np.asarray, state.params)
  state, m = tiny_learner.train_chunk(state, data, hp, pool)
  n = tiny_learner.trace_count()
  # A new hyper-parameter value is a traced leaf: no recompile either.
  hp2 = broadcast_hparams(HParams.create(actor_lr=1e-3, brac_weight=0.5), 2)
  state, m = tiny_learner.train_chunk(state, data, hp2, pool)
  assert tiny_learner.trace_count() == n
  assert int(state.step[0]) == 10 and m["critic/loss"].shape == (2,)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), before, state.params)
  assert changed["actor"] and changed["encoder"]
  # Seeds are independent: the two seeds' parameters differ.
  leaf = jax.tree.leaves(state.params["actor"])[0]
  assert not np.allclose(leaf[0], leaf[1])


def test_short_training_beats_random_policy(point_env, synthetic_data):
  """The oracle and FOCAL both learn from mixed scripted data on held-out tasks."""
  data = synthetic_data.to_device()
  split = point_env.benchmark_split()
  test_rows = np.asarray(split["test"])
  tasks = jax.tree.map(lambda x: x[test_rows], point_env.all_benchmark_tasks())
  rand = float(np.mean(random_policy_returns(point_env, tasks, jax.random.key(0), 8)))
  hp = broadcast_hparams(HParams.create(actor_lr=1e-3, critic_lr=1e-3, encoder_lr=1e-3,
                                        tau=0.02, discount=0.9), 1)
  for rep in ("oracle", "focal"):
    cfg = LearnerConfig(obs_size=2, action_size=2, task_param_size=2, representation=rep,
                        rl_hidden=(32, 32), encoder_hidden=(32, 32), dual_hidden=(32,),
                        context_mode="transitions", context_size=32, rl_batch_size=32,
                        steps_per_chunk=400)
    lrn = make_learner(cfg)
    state = lrn.init(seed_keys(0, 1))
    for _ in range(3):
      state, _ = lrn.train_chunk(state, data, hp, jnp.asarray(split["train"]))
    ret = float(np.mean(iid_returns(lrn, state.params, point_env, data, test_rows, tasks,
                                    jax.random.key(1), num_episodes=2,
                                    context_mode="transitions", context_size=32)))
    print(f"{rep}: held-out return {ret:.2f} vs random {rand:.2f}")
    assert ret > rand + 6.0, (rep, ret, rand)
