"""Network initialisation schemes (jcomrl.nets.mlp): rlkit's torchkit init vs flax's default.

Expected values are the official code's constants written out here (UNICORN
torchkit/networks.py:24-27,47-52,60-62; pytorch_utils.py:40-49; models/policy.py:37-59):
hidden kernels U(+-1/sqrt(out width)), hidden biases 0.1, Q / encoder / dual heads U(+-3e-3),
policy heads U(+-1e-3), kernel and bias alike.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos.backbones import make_backbone
from jcomrl.algos.config import LearnerConfig
from jcomrl.nets.actor_critic import DoubleCritic, StateActionCritic, TanhGaussianPolicy
from jcomrl.nets.encoders import make_encoder
from jcomrl.nets.mlp import MLP


def _layers(params):
  return [params[k] for k in sorted(params, key=lambda k: int(k.split("_")[-1]))]


def test_rlkit_mlp_bounds_and_biases():
  net = MLP((256, 64), 7, final_scale=3e-3, init_scheme="rlkit")
  p = net.init(jax.random.key(0), jnp.zeros((1, 31)))["params"]
  h0, h1, out = _layers(p)
  # hidden kernels U(+-1/sqrt(out width)); a 31x256 uniform sample fills its range
  for layer, width in ((h0, 256), (h1, 64)):
    k = np.asarray(layer["kernel"])
    bound = 1.0 / np.sqrt(width)
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.95 * bound
    assert np.std(k) == pytest.approx(bound / np.sqrt(3.0), rel=0.05)
    np.testing.assert_array_equal(np.asarray(layer["bias"]), np.float32(0.1))
  for leaf in (out["kernel"], out["bias"]):
    a = np.asarray(leaf)
    assert np.abs(a).max() <= 3e-3 and np.abs(a).max() > 1e-3  # bias too, not zeros
  # the old default is untouched: lecun-normal hidden kernels (std 1/sqrt(fan_in)), zero biases
  q = MLP((256,), 7).init(jax.random.key(0), jnp.zeros((1, 31)))["params"]
  (h,), = [_layers(q)[:1]]
  assert np.std(np.asarray(h["kernel"])) == pytest.approx(1.0 / np.sqrt(31), rel=0.1)
  np.testing.assert_array_equal(np.asarray(h["bias"]), 0.0)


def test_rlkit_without_head_scale_is_torch_linear_default():
  p = MLP((64,), 5, init_scheme="rlkit").init(jax.random.key(1), jnp.zeros((1, 10)))["params"]
  out = _layers(p)[-1]
  bound = 1.0 / np.sqrt(64)  # nn.Linear(64, 5): U(+-1/sqrt(in)) for kernel and bias
  assert np.abs(np.asarray(out["kernel"])).max() <= bound
  assert np.abs(np.asarray(out["bias"])).max() <= bound
  assert np.abs(np.asarray(out["bias"])).max() > 0


def test_networks_take_the_scheme():
  obs, z, a = jnp.zeros((2, 20)), jnp.zeros((2, 5)), jnp.zeros((2, 6))
  pol = TanhGaussianPolicy((64, 64), 6, init_scheme="rlkit").init(jax.random.key(0), obs, z)["params"]
  head = _layers(pol["MLP_0"])[-1]
  assert np.abs(np.asarray(head["kernel"])).max() <= 1e-3
  assert np.abs(np.asarray(head["bias"])).max() > 0
  q = DoubleCritic((64, 64), init_scheme="rlkit").init(jax.random.key(0), obs, z, a)["params"]
  q_hidden = jax.tree.leaves(q)
  assert any(np.all(np.asarray(x) == np.float32(0.1)) for x in q_hidden)
  c = StateActionCritic((64,), init_scheme="rlkit").init(jax.random.key(0), obs, z, a)["params"]
  assert np.abs(np.asarray(_layers(c["MLP_0"])[-1]["kernel"])).max() <= 3e-3
  enc = make_encoder("stochastic", (64, 64), 5, "rlkit")
  e = enc.init(jax.random.key(0), jnp.zeros((3, 10, 47)))["params"]
  assert np.abs(np.asarray(_layers(e["net"])[-1]["kernel"])).max() <= 3e-3
  np.testing.assert_array_equal(np.asarray(_layers(e["net"])[0]["bias"]), np.float32(0.1))


def test_learner_config_net_init():
  with pytest.raises(ValueError, match="net_init"):
    LearnerConfig.create(obs_size=3, action_size=2, task_param_size=1, net_init="xavier")
  cfg = LearnerConfig.create(obs_size=3, action_size=2, task_param_size=1, rl_hidden=(16,),
                      net_init="rlkit")
  params = make_backbone(cfg).init(jax.random.split(jax.random.key(0), 3))
  biases = [np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(params["critic"])
            if "bias" in jax.tree_util.keystr(path) and np.asarray(x).shape[-1] == 16]
  assert biases and all(np.all(b == np.float32(0.1)) for b in biases)


@pytest.mark.parametrize("name", ["focal", "csro", "corro", "unicorn_ss", "unicorn_sup",
                                  "supervised", "oracle"])
def test_torch_lineage_presets_use_the_rlkit_init(name):
  from jcomrl.algos import presets
  for env in ("point_robot", "cheetah_vel"):
    assert presets.preset(name, env)["learner"]["net_init"] == "rlkit"


def test_other_presets_keep_flax_init():
  from jcomrl.algos import presets
  assert "net_init" not in presets.preset("borel", "point_robot")["learner"]
  assert "net_init" not in presets.preset("prompt_dt", "point_robot")["learner"]


def test_mbrl_init_is_a_two_sd_truncated_normal_of_fan_in():
  p = MLP((512,), 400, init_scheme="mbrl").init(jax.random.key(3), jnp.zeros((1, 64)))["params"]
  h, out = _layers(p)
  for layer, fan_in in ((h, 64), (out, 512)):
    k = np.asarray(layer["kernel"], np.float64)
    sd = 1.0 / (2.0 * np.sqrt(fan_in))
    assert np.abs(k).max() <= 2 * sd * (1 + 1e-6) and np.abs(k).max() > 1.9 * sd
    # a N(0, sd^2) truncated at +-2 sd has standard deviation 0.8796 sd
    assert np.std(k) == pytest.approx(0.8796 * sd, rel=0.03)
    np.testing.assert_array_equal(np.asarray(layer["bias"]), 0.0)


def test_unicorn_ss_decoder_takes_mbrl_init_under_rlkit():
  from jcomrl.algos.objectives import make_representation
  cfg = LearnerConfig.create(obs_size=3, action_size=2, task_param_size=1, representation="unicorn_ss",
                      encoder="stochastic", aux_hidden=(64,), net_init="rlkit")
  rep = make_representation(cfg)
  params = rep.init(jax.random.key(0))
  dec = [np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(params)
         if "decoder" in jax.tree_util.keystr(path) and "kernel" in jax.tree_util.keystr(path)]
  assert dec and all(np.all(np.asarray(
      [jnp.abs(d).max() <= 2 / (2 * np.sqrt(d.shape[0])) + 1e-6])) for d in dec)
