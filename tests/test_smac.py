"""SMAC's offline phase as plug-ins: the ``smac`` objective against its formula written out in
numpy (the ``pearl`` posterior, the sampled code, the reward decoder, the KL), the preset's
settings and configs, a tiny ``smac`` training run, and ``awac`` under other objectives.

The AWAC losses by hand are in ``test_losses_by_hand.py``, the PEARL posterior's in
``test_encoders.py``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos import presets
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.algos.objectives import make_representation
from jcomrl.data.sampler import sample_meta_batch

POOL = jnp.arange(30, dtype=jnp.int32)


def np_mlp(params, x):
  """A flax ReLU MLP (``Dense_0`` ... ``Dense_L``, linear last layer) in float64."""
  h = np.asarray(x, np.float64)
  n = len(params)
  for i in range(n):
    d = params[f"Dense_{i}"]
    h = h @ np.asarray(d["kernel"], np.float64) + np.asarray(d["bias"], np.float64)
    if i < n - 1:
      h = np.maximum(h, 0.0)
  return h


def test_smac_objective_by_hand(synthetic_data):
  """SMAC's encoder loss (rlkit smac.py:400-407): ``w_dec mean_{b,n} (r_hat(s, a, z_b) - r)^2
  + w_kl mean_b KL(N(m_b, v_b) || N(0, I))`` on the RL batch, ``z_b = m_b + sqrt(v_b) eps_b``
  the reparameterised sample of the pearl posterior of task b's context ((s, a, r) features)
  with ``eps = normal(key, (B, Z))``, the loss's own key."""
  z_dim = 3
  cfg = LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, latent_size=z_dim,
                             encoder="pearl", encoder_hidden=(8,), aux_hidden=(8,),
                             representation="smac", use_next_obs=False, net_init="rlkit",
                             meta_batch_size=4, context_mode="transitions", context_size=6,
                             rl_batch_size=5)
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(0))
  mb = sample_meta_batch(jax.random.key(1), synthetic_data.to_device(), POOL, meta_batch_size=4,
                         context_size=6, context_mode="transitions", rl_batch_size=5)
  hp = HParams.create(smac={"kl_weight": 0.3, "decoder_weight": 2.0})
  key = jax.random.key(2)
  loss, out = jax.jit(rep.loss)(params, mb, hp, key)
  f64 = lambda x: np.asarray(x, np.float64)
  ctx, rl = mb.context, mb.rl
  feats = np.concatenate([f64(ctx.obs), f64(ctx.action), f64(ctx.reward)[..., None]], -1)
  raw = np_mlp(params["encoder"]["params"]["net"], feats)
  mu_k, var_k = raw[..., :z_dim], np.maximum(np.logaddexp(0.0, raw[..., z_dim:]), 1e-7)
  var = 1.0 / np.sum(1.0 / var_k, axis=1)
  mean = var * np.sum(mu_k / var_k, axis=1)
  z = mean + np.sqrt(var) * f64(jax.random.normal(key, (4, z_dim)))
  zt = np.broadcast_to(z[:, None, :], (4, 5, z_dim))
  pred = np_mlp(params["reward_decoder"]["params"],
                np.concatenate([f64(rl.obs), f64(rl.action), zt], -1))[..., 0]
  mse = np.mean((pred - f64(rl.reward)) ** 2)
  kl = np.mean(np.sum(0.5 * (var + mean ** 2 - 1.0 - np.log(var)), axis=-1))
  np.testing.assert_allclose(out["z"], z, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["metrics"]["rep/reward_mse"], mse, rtol=1e-4)
  np.testing.assert_allclose(out["metrics"]["rep/kl"], kl, rtol=1e-4)
  np.testing.assert_allclose(loss, 2.0 * mse + 0.3 * kl, rtol=1e-4)


def test_smac_refuses_an_encoder_without_a_posterior():
  from jcomrl.algos.compose import check
  with pytest.raises(ValueError, match="Gaussian encoder"):
    check(LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2,
                               representation="smac", encoder="mean_tanh", backbone="awac"))


def test_smac_preset_follows_the_official_settings():
  p = presets.preset("smac", "cheetah_vel")
  lrn, hp = p["learner"], p["hparams"]
  assert (lrn["representation"], lrn["encoder"], lrn["backbone"]) == ("smac", "pearl", "awac")
  assert (lrn["latent_size"], lrn["encoder_hidden"], lrn["aux_hidden"], lrn["rl_hidden"]) == (
      5, [200, 200, 200], [64, 64], [300, 300, 300])
  assert (lrn["context_size"], lrn["meta_batch_size"], lrn["rl_batch_size"], p["num_steps"]) == (
      64, 4, 128, 50_000)
  assert lrn["use_next_obs"] is False and lrn["context_mode"] == "transitions"
  assert hp["awac"] == {"beta": 100.0, "awr_weight": 1.0, "reparam_weight": 0.0}
  assert hp["smac"] == {"kl_weight": 0.1, "decoder_weight": 1.0}
  assert (hp["reward_scale"], hp["entropy_alpha"], hp["discount"], hp["tau"]) == (
      5.0, 0.0, 0.99, 0.005)
  assert presets.preset("smac", "ant_dir") == p  # env-independent settings
  assert any(row[0] == "smac online phase" for row in presets.PROVENANCE)


@pytest.mark.parametrize("variant", ["tiny", "point_robot", "cheetah_vel", "ant_dir@cpu"])
def test_smac_configs_validate(variant):
  from experiments import cli
  from experiments.configs import smac
  from jcomrl import run as run_api
  run_api.validate_config(cli.to_plain(smac.get_config(variant)))


def _train(cfg, hp, data, chunks=1):
  lrn = make_learner(cfg)
  state = lrn.init(seed_keys(0, 1))
  before = jax.tree.map(np.asarray, state.params)
  hp = broadcast_hparams(hp, 1)
  for _ in range(chunks):
    state, m = lrn.train_chunk(state, data, hp, POOL)
  for k, v in m.items():
    assert np.all(np.isfinite(np.asarray(v))), k
  return before, jax.tree.map(np.asarray, state.params), m


def test_tiny_smac_run_trains_every_part(synthetic_data):
  p = presets.preset("smac", "point_robot", tiny=True)
  cfg = LearnerConfig.create(**dict(p["learner"], obs_size=2, action_size=2, task_param_size=2))
  before, after, m = _train(cfg, HParams.create(**p["hparams"]), synthetic_data.to_device(),
                            chunks=p["num_steps"] // cfg.steps_per_chunk)
  for group in ("actor", "critic"):
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(before[group]),
                                                     jax.tree.leaves(after[group]))), group
  for part in ("encoder", "reward_decoder"):
    b, a = (jax.tree.leaves(x["encoder"][part]) for x in (before, after))
    assert all(not np.allclose(u, v) for u, v in zip(b, a)), part
  assert {"rep/kl", "rep/reward_mse", "actor/awr", "critic/loss"} <= set(m)


@pytest.mark.parametrize("representation,encoder", [("focal", "mean_tanh"), ("csro", "pearl")])
def test_awac_composes_with_other_objectives(representation, encoder, synthetic_data):
  """``awac`` under FOCAL's metric loss, and the pearl encoder under CSRO (whose CLUB term reads
  per-transition embeddings: pearl's code is not a pooling of them, so it is encoded apart)."""
  cfg = LearnerConfig.create(obs_size=2, action_size=2, task_param_size=2, latent_size=4,
                             encoder=encoder, encoder_hidden=(16,), aux_hidden=(16,),
                             rl_hidden=(16,), representation=representation, backbone="awac",
                             meta_batch_size=4, context_mode="transitions", context_size=8,
                             rl_batch_size=8, steps_per_chunk=5)
  _, _, m = _train(cfg, HParams.create(entropy_alpha=0.0), synthetic_data.to_device())
  assert "actor/awr" in m and "encoder/loss" in m
