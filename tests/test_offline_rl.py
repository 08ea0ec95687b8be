"""Single-task offline-RL backbones: MISA's bounds against exact computations, HMC against a
known target, CQL and IQL losses on hand examples, BC learning, and every backbone (MISA inside
COMRL too) through the learner."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos.backbones import cql, iql, make_backbone, misa, optimiser_init
from jcomrl.algos.compose import check
from jcomrl.algos.objectives import code_size
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.data.dataset import OfflineDataset
from jcomrl.types import Transition

# ------------------------------------------------------------------ MISA's bounds, exactly


def _discrete_case(seed=0, num_states=3, num_actions=4):
  """p(s) uniform, p(a|s) the data's conditional, pi(a|s) a policy, Q(s, a) a critic."""
  rng = np.random.default_rng(seed)
  p_a_s = rng.dirichlet(np.ones(num_actions), size=num_states)
  pi = rng.dirichlet(np.ones(num_actions), size=num_states)
  q = rng.normal(size=(num_states, num_actions))
  return p_a_s, pi, q


def _exact_bounds(p_a_s, pi, q):
  """The three bounds of MISA's paper by hand, float64, exact expectations."""
  n = p_a_s.shape[0]
  data_term = np.sum(p_a_s * (np.log(pi) + q)) / n
  z = np.sum(pi * np.exp(q), axis=1)  # Z(s) = E_pi e^Q
  return {"misa": data_term - np.mean(np.log(z)),
          "dv": data_term - np.log(np.mean(z)),
          "f": data_term - np.mean(np.sum(pi * np.exp(q - 1.0), axis=1))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_misa_bounds_match_the_exact_discrete_computation_and_are_ordered(seed):
  p_a_s, pi, q = _discrete_case(seed)
  want = _exact_bounds(p_a_s, pi, q)
  n = p_a_s.shape[0]
  data_term = float(np.sum(p_a_s * (np.log(pi) + q)) / n)
  for bound in ("misa", "dv", "f"):
    got = data_term - float(misa.log_partition(jnp.asarray(q), jnp.log(jnp.asarray(pi)), bound))
    np.testing.assert_allclose(got, want[bound], rtol=1e-5, err_msg=bound)
  assert want["misa"] >= want["dv"] >= want["f"]


def test_misa_bound_is_tight_at_the_optimal_critic():
  """With pi(a|s) = p(a) and Q = log p(a|s) / p(a), Z(s) = 1 and the MISA bound plus H(A) is
  exactly I(S; A); DV and f stay below it."""
  p_a_s, _, _ = _discrete_case(3)
  p_a = p_a_s.mean(axis=0)
  pi = np.broadcast_to(p_a, p_a_s.shape)
  q = np.log(p_a_s / p_a)
  n = p_a_s.shape[0]
  mi = np.sum(p_a_s * np.log(p_a_s / p_a)) / n
  h_a = -np.sum(p_a * np.log(p_a))
  data_term = np.sum(p_a_s * (np.log(pi) + q)) / n
  got = {b: data_term - float(misa.log_partition(jnp.asarray(q), jnp.log(jnp.asarray(pi)), b))
         for b in ("misa", "dv", "f")}
  np.testing.assert_allclose(got["misa"] + h_a, mi, rtol=1e-5)
  assert got["dv"] + h_a <= mi + 1e-6 and got["f"] + h_a < mi


def test_bounds_are_ordered_on_a_critic_network_with_monte_carlo_samples():
  cfg = LearnerConfig.create(obs_size=3, action_size=2, task_param_size=0, representation="none",
                      backbone="misa", rl_hidden=(16, 16), partition_samples=8,
                      misa_partition_grad="importance", critic_activation="elu")
  bb = make_backbone(cfg)
  params = bb.init(jax.random.split(jax.random.key(0), 3))
  obs = jax.random.normal(jax.random.key(1), (32, 3))
  z = jnp.zeros((32, 0))
  a_k, _, logp_k = cql.policy_samples(bb.policy, params["actor"], obs, z, jax.random.key(2), 8)
  for scale in (1.0, 30.0):  # an untrained critic and a steep one
    q_k = scale * bb.min_q(params["critic"], cql.repeat_states(obs, 8), cql.repeat_states(z, 8),
                           a_k)
    log_w = jnp.full(q_k.shape, -math.log(8))
    parts = [float(misa.log_partition(q_k, log_w, b)) for b in ("misa", "dv", "f")]
    assert parts[0] <= parts[1] <= parts[2], parts
  # The importance weights estimate E_mu: per state they sum to 1 / N (misa), over the batch
  # to 1 (dv).
  w = misa.partition_weights(q_k, "misa")
  np.testing.assert_allclose(np.sum(np.asarray(w), axis=1), 1.0 / 32, rtol=1e-5)
  np.testing.assert_allclose(float(jnp.sum(misa.partition_weights(q_k, "dv"))), 1.0, rtol=1e-5)
  del logp_k


# ------------------------------------------------------------------ HMC


def test_hmc_samples_a_known_one_dimensional_target():
  """Chains of BlackJAX HMC (as MISA runs it, from fixed starts, inside the box) reproduce the
  mean and variance of a Gaussian N(0.3, 0.2^2) (truncation at +-0.999 is 3.5 sd away)."""
  mu, sd = 0.3, 0.2
  target = misa.box_logdensity(lambda x: jnp.sum(-0.5 * ((x - mu) / sd) ** 2), 0.999)
  chain = lambda init, key: misa.hmc_chain(target, init, key, num_samples=200, burnin=20,
                                           leapfrog=3, step_size=0.15)
  inits = jnp.linspace(-0.9, 0.9, 256)[:, None]
  samples, accept = jax.jit(jax.vmap(chain))(inits, jax.random.split(jax.random.key(0), 256))
  x = np.asarray(samples).ravel()
  assert 0.5 < float(jnp.mean(accept)) <= 1.0
  assert abs(x.mean() - mu) < 0.01, x.mean()
  assert abs(x.var() / sd ** 2 - 1.0) < 0.06, x.var()
  assert np.all(np.abs(x) <= 0.999)


def test_hmc_rejects_every_move_out_of_the_box():
  """A target with all its mass beyond the box: chains never leave it."""
  target = misa.box_logdensity(lambda x: jnp.sum(5.0 * x), 0.5)
  samples, _ = misa.hmc_chain(target, jnp.zeros(2), jax.random.key(0), num_samples=50, burnin=5,
                              leapfrog=2, step_size=1.0)
  assert np.all(np.abs(np.asarray(samples)) <= 0.5)


# ------------------------------------------------------------------ CQL and IQL by hand


def test_cql_regulariser_on_a_hand_example():
  """Two heads, two states, K = 1 proposal of each kind, A = 1, Q_i(s, a) = (i + 1) s a."""
  q_fn = lambda o, a: jnp.stack([(i + 1.0) * o[..., 0] * a[..., 0] for i in range(2)])
  obs = jnp.array([[1.0], [2.0]])
  rand_a, cur_a, next_a = jnp.array([[[0.5]], [[-0.5]]]), jnp.array([[[0.2]], [[0.4]]]), \
      jnp.array([[[-0.1]], [[0.3]]])
  cur_logp, next_logp = jnp.array([[0.1], [0.2]]), jnp.array([[-0.3], [0.4]])
  data_a = jnp.array([[0.9], [-0.2]])
  q_data = q_fn(obs, data_a)
  got = cql.cql_regulariser(q_fn, q_data, obs, rand_a, cur_a, cur_logp, next_a, next_logp,
                            temperature=2.0)
  want = []
  for i in range(2):
    gaps = []
    for s in range(2):
      def q(a, i=i, o=float(obs[s, 0])):
        return (i + 1.0) * o * a
      cat = np.array([q(float(rand_a[s, 0, 0])) - math.log(0.5),
                      q(float(next_a[s, 0, 0])) - float(next_logp[s, 0]),
                      q(float(cur_a[s, 0, 0])) - float(cur_logp[s, 0])])
      gaps.append(2.0 * np.log(np.sum(np.exp(cat / 2.0))) - q(float(data_a[s, 0])))
    want.append(np.mean(gaps))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
  plain = cql.cql_regulariser(q_fn, q_data, obs, rand_a, cur_a, cur_logp, next_a, next_logp,
                              temperature=1.0, importance_sample=False)
  s0 = np.log(np.exp(0.5) + np.exp(0.9) + np.exp(-0.1) + np.exp(0.2)) - 0.9  # head 0, state 0
  s1 = np.log(np.exp(-1.0) + np.exp(-0.4) + np.exp(0.6) + np.exp(0.8)) + 0.4
  np.testing.assert_allclose(float(plain[0]), (s0 + s1) / 2, rtol=1e-5)


def test_iql_expectile_and_advantage_weights_on_hand_examples():
  np.testing.assert_allclose(float(iql.expectile_loss(jnp.array([-1.0, 2.0]), 0.7)),
                             (0.3 * 1 + 0.7 * 4) / 2, rtol=1e-6)
  np.testing.assert_allclose(float(iql.expectile_loss(jnp.array([-1.0, 2.0]), 0.5)),
                             0.5 * (1 + 4) / 2, rtol=1e-6)  # tau = 0.5 is half the MSE
  w = iql.awr_weights(jnp.array([1.0, 2.0, 5.0]), jnp.array([1.0, 1.0, 1.0]), 3.0, 100.0)
  np.testing.assert_allclose(np.asarray(w), [1.0, math.exp(3.0), 100.0], rtol=1e-5)


def test_iql_value_is_the_expectile_of_q_over_data_actions():
  """With Q fixed (the critic's target frozen: only V trains), V(s) converges to the tau-expectile
  of min Q(s, a) over the data's actions at s, found by bisection."""
  cfg = LearnerConfig.create(obs_size=1, action_size=1, task_param_size=0, representation="none",
                      backbone="iql", rl_hidden=(32, 32), rl_batch_size=64)
  bb = make_backbone(cfg)
  params = bb.init(jax.random.split(jax.random.key(0), 3))
  n = 64
  act = jnp.linspace(-1, 1, n)[:, None]
  rl = Transition(obs=jnp.zeros((n, 1)), action=act, reward=jnp.zeros(n), next_obs=jnp.zeros((n, 1)),
                  terminal=jnp.ones(n), timeout=jnp.zeros(n))
  hp = HParams.create(iql_expectile=0.9, value_lr=1e-2)
  q = np.asarray(jnp.min(bb.critic.apply(params["critic_target"], rl.obs, jnp.zeros((n, 0)), act),
                         axis=0))
  loss = bb.value_loss_fn(params, hp)
  opt = {"value": optimiser_init(params["value"])}

  @jax.jit
  def train(p, o):
    def step(c, _):
      p, o = c
      p, o, _ = bb.group_step("value", loss, p, o, jax.tree.map(lambda x: x[None], rl),
                              jnp.zeros((1, 0)), jax.random.key(0), hp.value_lr)
      return (p, o), None
    return jax.lax.scan(step, (p, o), None, length=2000)[0][0]

  v = float(bb.value.apply(train(params, opt)["value"], jnp.zeros((1, 1)), jnp.zeros((1, 0)))[0])
  lo, hi = q.min(), q.max()
  for _ in range(60):  # the expectile solves sum |tau - 1(q < v)| (q - v) = 0
    mid = (lo + hi) / 2
    g = np.sum(np.where(q > mid, 0.9, 0.1) * (q - mid))
    lo, hi = (mid, hi) if g > 0 else (lo, mid)
  assert abs(v - lo) < 0.02 * (q.max() - q.min()) + 1e-4, (v, lo, q.min(), q.max())


# ------------------------------------------------------------------ through the learner

SINGLE = dict(obs_size=2, action_size=2, task_param_size=2, representation="none",
              rl_hidden=(32, 32), meta_batch_size=1, context_size=4, context_mode="transitions",
              rl_batch_size=64, steps_per_chunk=100)


def _single_task_data(n=2000, seed=0):
  """One task: a = tanh(W s) + noise; reward prefers the behaviour's action."""
  rng = np.random.default_rng(seed)
  s = rng.normal(size=(1, n, 2)).astype(np.float32)
  w = np.array([[0.8, -0.5], [0.3, 0.9]], np.float32)
  a = np.tanh(s @ w + 0.1 * rng.normal(size=(1, n, 2))).astype(np.float32)
  r = -np.sum((a - np.tanh(s @ w)) ** 2, axis=-1).astype(np.float32)
  t = Transition(obs=jnp.asarray(s), action=jnp.asarray(a), reward=jnp.asarray(r),
                 next_obs=jnp.asarray(np.roll(s, -1, axis=1)), terminal=jnp.zeros((1, n)),
                 timeout=jnp.zeros((1, n)))
  ids = jnp.zeros((1, n), jnp.int32)
  data = OfflineDataset(transitions=t, checkpoint_id=ids, episode_id=ids,
                        task_params=jnp.zeros((1, 2)), segment_length=100)
  return data, w


def test_bc_recovers_the_behaviour_policy_and_beats_its_untrained_self():
  data, w = _single_task_data()
  lrn = make_learner(LearnerConfig.create(**dict(SINGLE, backbone="bc")))
  state = lrn.init(seed_keys(0, 1))
  hp = broadcast_hparams(HParams.create(actor_lr=3e-3), 1)
  obs = jnp.asarray(np.random.default_rng(1).normal(size=(256, 2)), jnp.float32)
  want = np.tanh(np.asarray(obs) @ w)
  err = lambda st: float(np.mean((np.asarray(lrn.act(
      jax.tree.map(lambda x: x[0], st.params), obs, jnp.zeros((256, 0)), jax.random.key(0),
      True)) - want) ** 2))
  before = err(state)
  for _ in range(6):
    state, m = lrn.train_chunk(state, data, hp, jnp.zeros((1,), jnp.int32))
  assert m["encoder/z_spread"][0] == 0.0 and np.isfinite(m["actor/loss"]).all()
  assert err(state) < 0.1 * before and err(state) < 0.01, (before, err(state))


@pytest.mark.parametrize("extra", [
    dict(backbone="cql", partition_samples=2),
    dict(backbone="iql"),
    dict(backbone="misa", partition_samples=2, hmc_burnin=1, critic_activation="elu",
         policy_log_std_affine=True, policy_mean_clip=9.0, log_std_min=-5.0, soft_target=False,
         learn_entropy=True),
    dict(backbone="misa", partition_samples=2, misa_bound="dv", misa_partition_grad="importance"),
])
@pytest.mark.slow
def test_every_offline_backbone_trains_finitely_through_the_learner(extra):
  data, _ = _single_task_data()
  lrn = make_learner(LearnerConfig.create(**dict(SINGLE, rl_hidden=(8,), rl_batch_size=16,
                                          steps_per_chunk=10, **extra)))
  state = lrn.init(seed_keys(0, 1))
  state, m = lrn.train_chunk(state, data, broadcast_hparams(HParams.create(), 1),
                             jnp.zeros((1,), jnp.int32))
  assert (np.asarray(m["health/first_nonfinite_update"]) == -1).all(), m
  if extra.get("misa_partition_grad", "hmc") == "hmc" and extra["backbone"] == "misa":
    # MISA's step size 1 in the box |a| <= 0.999 rejects most moves (often all of a short run)
    assert 0.0 <= float(np.mean(m["actor/hmc_accept"])) <= 1.0


@pytest.mark.slow
def test_misa_inside_comrl_composes_with_an_encoder_objective(synthetic_data):
  """``unicorn_ss x misa``: the I(S; A) backbone under an I(Z; M) objective (point robot)."""
  lrn = make_learner(LearnerConfig.create(
      obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
      aux_hidden=(16,), rl_hidden=(16,), meta_batch_size=4, context_size=8,
      context_mode="transitions", rl_batch_size=8, steps_per_chunk=2, representation="unicorn_ss",
      backbone="misa", partition_samples=2, hmc_burnin=1))
  state = lrn.init(seed_keys(0, 1))
  state, m = lrn.train_chunk(state, synthetic_data.to_device(),
                             broadcast_hparams(HParams.create(), 1), jnp.arange(30, dtype=jnp.int32))
  assert int(m["health/first_nonfinite_update"][0]) == -1
  assert "critic/misa_gap" in m and "actor/hmc_accept" in m and "encoder/loss" in m


def test_offline_backbone_settings_that_cannot_work_are_refused():
  with pytest.raises(ValueError, match="needs partition_grad='importance'"):
    check(LearnerConfig.create(**dict(SINGLE, backbone="misa", misa_bound="dv")))
  with pytest.raises(ValueError, match="has none"):
    check(LearnerConfig.create(**dict(SINGLE, backbone="bc", representation="supervised",
                               task_param_size=2)))
  with pytest.raises(ValueError, match="unknown learner.misa.bound"):
    LearnerConfig.create(**dict(SINGLE, backbone="misa", misa_bound="nwj"))
  assert code_size(check(LearnerConfig.create(**dict(SINGLE, backbone="bc")))) == 0


@pytest.mark.slow
def test_single_task_config_trains_and_evaluates_a_one_task_dataset(synthetic_data, tmp_path):
  """``offline.py:misa@tiny`` end to end (train, checkpoint, IID evaluation) on a one-task
  dataset (split train = test = [0]) cut from the point-robot data."""
  import os

  from experiments.cli import to_plain
  from experiments.configs import offline
  from jcomrl import run as run_api
  from jcomrl.data.dataset import save_dataset
  one = jax.tree.map(lambda x: x[:1], synthetic_data)
  path = os.path.join(tmp_path, "one_task")
  save_dataset(path, one, {"env": "point_robot", "env_overrides": {},
                           "split": {"train": [0], "test": [0]},
                           "normalisation": {"random": -20.0, "expert": -5.0}})
  cfg = to_plain(offline.get_config("misa@tiny"))
  cfg.update(env="point_robot", dataset=path)
  res = run_api.train(cfg, str(tmp_path / "run"))["iid"]
  assert np.isfinite(np.asarray(res["iid"]["returns"])).all()
  assert cfg["learner"]["representation"] == "none" and cfg["learner"]["backbone"] == "misa"
  with pytest.raises(ValueError, match="no offline variant"):
    offline.get_config("misa@gpu")


def test_offline_table_names_overrides_and_markdown(synthetic_dir):
  from experiments import offline_table as ot
  assert ot.d4rl_name("data/offline/halfcheetah-medium_replay/") == "halfcheetah-medium-replay"
  assert ot.parse_override("learner.misa.partition_samples=4") == (
      "learner.misa.partition_samples", 4)
  assert ot.parse_override("learner.misa.bound=dv") == ("learner.misa.bound", "dv")
  cfg = ot.run_config("misa", "tiny", synthetic_dir, 2, [("learner.misa.bound", "dv"),
                                                         ("learner.misa.partition_grad",
                                                          "importance")])
  assert (cfg["env"], cfg["num_seeds"], cfg["learner"]["misa"]["bound"]) == (
      "point_robot", 2, "dv")
  cells = {("hopper-medium", "bc"): {"seeds": [50.0, 54.0], "wall_s": 10.0},
           ("hopper-medium", "misa"): {"seeds": None, "wall_s": None}}
  md = ot.build_markdown(["data/offline/hopper-medium"], ["bc", "misa"], cells, "cpu", 2)
  assert "| hopper-medium | 52.0 ± 2.0 | – |" in md
  assert "| hopper-medium | 52.9 | 67.1 |" in md  # MISA's paper row for the same dataset
