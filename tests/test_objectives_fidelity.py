"""Objectives and presets against the official codes (issue 13, items 2, 5 and 7).

Each test pins one official behaviour on a tiny hand-made input: UNICORN-SS's mbrl-lib NLL,
FOCAL/CSRO's context inputs and CSRO's BRAC caps, CORRO's CVAE loss and positive pairs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos import presets
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.objectives import gaussian_nll_per_dim, make_representation, mbrl_gaussian_nll
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_meta_batch, task_positives
from jcomrl.nets.decoders import TransitionCVAE
from jcomrl.types import Transition

TINY = dict(obs_size=2, action_size=1, task_param_size=1, latent_size=4, encoder_hidden=(8,),
            aux_hidden=(8,), rl_hidden=(8,), dual_hidden=(8,), meta_batch_size=6,
            context_size=5, context_mode="trajectory", rl_batch_size=16, steps_per_chunk=5)
NUM_TASKS, NUM_SEGMENTS, SEGMENT = 3, 4, 5


@pytest.fixture(scope="module")
def labelled_data():
  """3 tasks x 4 stored trajectories x 5 steps; obs = (task, trajectory), reward = task."""
  task = np.repeat(np.arange(NUM_TASKS), NUM_SEGMENTS * SEGMENT).reshape(NUM_TASKS, -1)
  seg = np.tile(np.repeat(np.arange(NUM_SEGMENTS), SEGMENT), (NUM_TASKS, 1))
  obs = np.stack([task, seg], -1).astype(np.float32)
  step = np.tile(np.arange(SEGMENT, dtype=np.float32), (NUM_TASKS, NUM_SEGMENTS))
  zeros = np.zeros_like(step)
  return OfflineDataset(
      transitions=Transition(obs=jnp.asarray(obs), action=jnp.asarray(step[..., None] / 5.0),
                             reward=jnp.asarray(task, jnp.float32), next_obs=jnp.asarray(obs),
                             terminal=jnp.asarray(zeros), timeout=jnp.asarray(zeros)),
      checkpoint_id=jnp.zeros(task.shape, jnp.int32), episode_id=jnp.asarray(seg, jnp.int32),
      task_params=jnp.arange(NUM_TASKS, dtype=jnp.float32)[:, None], segment_length=SEGMENT)


@pytest.fixture(scope="module")
def traj_batch(labelled_data):
  return sample_meta_batch(jax.random.key(0), labelled_data, jnp.arange(NUM_TASKS),
                           meta_batch_size=6, context_size=SEGMENT, context_mode="trajectory",
                           rl_batch_size=16)


# ------------------------------------------------------------- item 2: UNICORN-SS's NLL


def test_reconstruction_nll_is_mbrl_libs_formula():
  # mbrl-lib gaussian_nll: (t - mu)^2 exp(-lv) + lv, mean over samples and dims, no 1/2.
  # dim 0: (1 - 0)^2 * 1 + 0 = 1; dim 1: (3 - 1)^2 / 4 + log 4 = 1 + log 4 -> mean 1 + log 2.
  mean = jnp.array([[0.0, 1.0]])
  log_var = jnp.array([[0.0, np.log(4.0)]])
  target = jnp.array([[1.0, 3.0]])
  np.testing.assert_allclose(mbrl_gaussian_nll(mean, log_var, target), 1.0 + np.log(2.0),
                             rtol=1e-6)
  # CSRO's q_psi convention (and decoder_nll="half") keeps the 1/2.
  np.testing.assert_allclose(gaussian_nll_per_dim(mean, log_var, target),
                             (1.0 + np.log(2.0)) / 2, rtol=1e-6)


def test_unicorn_ss_defaults_to_mbrl_nll_and_half_is_an_option(traj_batch):
  assert LearnerConfig.create(**TINY).settings("unicorn_ss").decoder_nll == "mbrl"
  out = {}
  for form in ("mbrl", "half"):
    rep = make_representation(LearnerConfig.create(**dict(TINY, representation="unicorn_ss",
                                                   encoder="stochastic", decoder_nll=form)))
    params = jax.jit(rep.init)(jax.random.key(1))  # same networks for both forms
    _, aux = jax.jit(rep.loss)(params, traj_batch, HParams.create(), jax.random.key(2))
    out[form] = aux["metrics"]
  for k in ("rep/nll_state", "rep/nll_reward"):
    np.testing.assert_allclose(out["mbrl"][k], 2.0 * out["half"][k], rtol=1e-5)


# ---------------------------------------------------- item 5: FOCAL / CSRO settings


@pytest.mark.parametrize("env,next_obs", [("cheetah_vel", False), ("cheetah_dir", False),
                                          ("ant_dir", False), ("hopper_param", True),
                                          ("walker_param", True)])
def test_focal_csro_context_has_next_obs_only_on_hopper_walker(env, next_obs):
  for name in ("focal", "csro"):
    assert presets.preset(name, env)["learner"]["use_next_obs"] is next_obs, (name, env)
  # UNICORN / CORRO encode (s, a, r, s') everywhere.
  for name in ("unicorn_ss", "corro"):
    assert presets.preset(name, env)["learner"]["use_next_obs"] is True


@pytest.mark.parametrize("env,alpha_max,mb", [("cheetah_vel", 2e3, 16), ("cheetah_dir", 2e3, 16),
                                              ("ant_dir", 2e3, 10), ("hopper_param", 1e4, 16),
                                              ("walker_param", 1e4, 16)])
def test_csro_brac_cap_and_meta_batch(env, alpha_max, mb):
  p = presets.preset("csro", env)
  assert p["hparams"]["brac"]["weight_max"] == alpha_max
  assert p["learner"]["meta_batch_size"] == mb


# ------------------------------------------------------------------------- item 7: CORRO


def test_corro_cvae_loss_is_mean_mse_plus_kl():
  cfg = LearnerConfig.create(**dict(TINY, obs_size=3, representation="corro", encoder="attention"))
  rep = make_representation(cfg)
  params = jax.jit(rep.pretrain_init)(jax.random.key(0))
  ks = jax.random.split(jax.random.key(1), 4)
  rl = Transition(obs=jax.random.normal(ks[0], (7, 3)), action=jax.random.normal(ks[1], (7, 1)),
                  reward=jax.random.normal(ks[2], (7,)), next_obs=jax.random.normal(ks[3], (7, 3)),
                  terminal=jnp.zeros(7), timeout=jnp.zeros(7))
  key = jax.random.key(2)
  loss, metrics = jax.jit(rep.pretrain_loss)(params, rl, HParams.create(), key)
  cvae = TransitionCVAE((8,), cfg.settings("corro").cvae_latent, 3)
  nh, rh, mu, lv = (np.asarray(x, np.float64) for x in
                    jax.jit(cvae.apply)(params, rl.obs, rl.action, rl.reward, rl.next_obs, key))
  mse_s = np.mean((nh - np.asarray(rl.next_obs)) ** 2)  # F.mse_loss: over all 7 x 3 elements
  mse_r = np.mean((rh - np.asarray(rl.reward)) ** 2)
  kl = np.mean(0.5 * np.sum(np.exp(lv) + mu ** 2 - 1.0 - lv, axis=-1))
  np.testing.assert_allclose(loss, mse_s + mse_r + 0.2 * kl, rtol=1e-5)
  np.testing.assert_allclose(metrics["cvae/mse_next_obs"], mse_s, rtol=1e-5)


def test_corro_positives_come_from_the_task_not_only_the_trajectory(traj_batch):
  ctx, task = traj_batch.context, np.asarray(traj_batch.task_index)
  pos = task_positives(traj_batch.rl, SEGMENT)
  assert pos.obs.shape == ctx.obs.shape
  # Never another task ...
  np.testing.assert_array_equal(np.asarray(pos.obs[..., 0]),
                                np.broadcast_to(task[:, None], (6, SEGMENT)))
  # ... and also other trajectories of it (the context is one trajectory per task).
  anchor_traj = np.asarray(ctx.obs[..., 1])
  assert np.all(anchor_traj == anchor_traj[:, :1])
  assert np.any(np.asarray(pos.obs[..., 1]) != anchor_traj)


def test_corro_objective_pairs_with_task_data_by_default(traj_batch):
  """"task" positives read the task's RL draw; "context" ones read only the context."""
  other_rl = jax.tree.map(lambda x: jnp.roll(x, 3, axis=1), traj_batch.rl)  # same tasks
  moved = traj_batch.replace(rl=other_rl)
  losses = {}
  for mode in ("task", "context"):
    cfg = LearnerConfig.create(**dict(TINY, representation="corro", encoder="attention",
                               corro_negative_source="reward_noise", corro_positives=mode))
    rep = make_representation(cfg)
    params = jax.jit(rep.init)(jax.random.key(1))
    loss = jax.jit(lambda b, p=params, r=rep: r.loss(p, b, HParams.create(), jax.random.key(2))[0])
    losses[mode] = [float(loss(b)) for b in (traj_batch, moved)]
  assert LearnerConfig.create(**TINY).settings("corro").positives == "task"
  assert presets.preset("corro", "cheetah_vel")["learner"]["corro"]["positives"] == "task"
  assert losses["task"][0] != losses["task"][1]
  assert losses["context"][0] == losses["context"][1]


def test_corro_cvae_budget_is_100_epochs_of_the_training_data():
  # 20 tasks x 2e5 transitions, 100 epochs, 16 x 256 per update -> 97657 -> 98 chunks of 1000.
  assert presets.corro_cvae_pretrain_steps(4_000_000, meta_batch_size=16, rl_batch_size=256,
                                           steps_per_chunk=1000) == 98_000
  assert presets.corro_cvae_pretrain_steps(4096, meta_batch_size=16, rl_batch_size=256,
                                           steps_per_chunk=10, epochs=1) == 10
  # The preset's budget passes over every task's data, train and held-out (CORRO
  # train_generative_model.py:89-92): 40 x 2e5 transitions -> 195313 -> 196 chunks of 1000.
  p = presets.preset("corro", "cheetah_vel")
  assert p["learner"]["pretrain_steps"] == 196_000 and p["learner"]["pretrain_tasks"] == "all"
  assert p["num_steps"] == 200_000 + 196_000
  with pytest.raises(ValueError, match="num_train_transitions"):
    presets.corro_cvae_pretrain_steps(0, meta_batch_size=16, rl_batch_size=256,
                                      steps_per_chunk=1000)
