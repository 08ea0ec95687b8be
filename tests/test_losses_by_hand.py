"""The backbones' losses against their formulas written out here in float64 numpy (issue 30).

Every expected value below is computed from the formula in this file: the networks are small
closed-form stubs (linear policy mean, state-independent log-std, linear dual critic, twin
quadratic critics) evaluated by the numpy mirror of each stub, and the tanh-Gaussian log-density
is written out as ``log N(u; mu, sigma) - sum log(1 - tanh(u)^2)``. Nothing of jcomrl computes
an expected value; only the Gaussian draws come from the same ``jax.random`` calls the loss makes
(the key-splitting convention of each loss is stated where it is used).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos import backbones
from jcomrl.algos.backbones import cql, iql, misa
from jcomrl.algos.config import HParams
from jcomrl.types import Transition

N, OBS, ACT, ZD = 6, 3, 2, 2
RTOL, ATOL = 2e-5, 2e-5


# ------------------------------------------------------------------ stub networks (jnp + numpy)


class LinearPolicy:
  """``mean = obs W + z V + b``, ``log_std = ls`` (state independent)."""

  @staticmethod
  def apply(p, obs, z):
    mean = obs @ p["W"] + z @ p["V"] + p["b"]
    return mean, jnp.broadcast_to(p["ls"], mean.shape)


def np_policy(p, obs, z):
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  mean = np.asarray(obs, np.float64) @ p["W"] + np.asarray(z, np.float64) @ p["V"] + p["b"]
  return mean, np.broadcast_to(p["ls"], mean.shape)


class TwinCritic:
  """Two heads ``q_i = s.ws_i + z.wz_i + a.wa_i - k_i |a|^2`` -> ``[2, ...]``."""

  @staticmethod
  def apply(p, obs, z, a):
    return jnp.stack([jnp.sum(obs * p["ws"][i], -1) + jnp.sum(z * p["wz"][i], -1)
                      + jnp.sum(a * p["wa"][i], -1) - p["k"][i] * jnp.sum(a * a, -1)
                      for i in range(2)])


def np_critic(p, obs, z, a):
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  obs, z, a = (np.asarray(x, np.float64) for x in (obs, z, a))
  return np.stack([np.sum(obs * p["ws"][i], -1) + np.sum(z * p["wz"][i], -1)
                   + np.sum(a * p["wa"][i], -1) - p["k"][i] * np.sum(a * a, -1)
                   for i in range(2)])


class LinearDual:
  """``c(s, z, a) = s.u + z.v + a.w + b``."""

  @staticmethod
  def apply(p, obs, z, a):
    return (jnp.sum(obs * p["u"], -1) + jnp.sum(z * p["v"], -1) + jnp.sum(a * p["w"], -1)
            + p["b"])


def np_dual(p, obs, z, a):
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  obs, z, a = (np.asarray(x, np.float64) for x in (obs, z, a))
  return np.sum(obs * p["u"], -1) + np.sum(z * p["v"], -1) + np.sum(a * p["w"], -1) + p["b"]


def softplus(x):
  return np.logaddexp(0.0, x)


def np_kl_dual(dual_p, obs, z, a_data, a_pi):
  """BRAC's dual KL estimate ``log(softplus(c(s, a_pi)) + 1e-8) + 1 - softplus(c(s, a_data))``."""
  return (np.log(softplus(np_dual(dual_p, obs, z, a_pi)) + 1e-8) + 1.0
          - softplus(np_dual(dual_p, obs, z, a_data)))


def np_tanh_gauss(mean, log_std, eps):
  """``a = tanh(mean + exp(log_std) eps)`` and ``log pi(a)`` summed over the action dims."""
  u = mean + np.exp(log_std) * eps
  gauss = -0.5 * eps ** 2 - log_std - 0.5 * np.log(2.0 * np.pi)
  return np.tanh(u), np.sum(gauss - np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def normal(key, shape):
  return np.asarray(jax.random.normal(key, shape), np.float64)


@pytest.fixture(scope="module")
def setup():
  rng = np.random.default_rng(0)
  f = lambda *s, scale=1.0: jnp.asarray(scale * rng.normal(size=s), jnp.float32)
  pol = {"W": f(OBS, ACT, scale=0.4), "V": f(ZD, ACT, scale=0.4), "b": f(ACT, scale=0.1),
         "ls": jnp.asarray([-0.7, -1.1], jnp.float32)}
  crit = {"ws": f(2, OBS), "wz": f(2, ZD), "wa": f(2, ACT), "k": jnp.asarray([0.5, 1.5])}
  targ = {"ws": f(2, OBS), "wz": f(2, ZD), "wa": f(2, ACT), "k": jnp.asarray([0.3, 0.8])}
  dual = {"u": f(OBS, scale=0.5), "v": f(ZD, scale=0.5), "w": jnp.asarray([1.5, -2.0]),
          "b": jnp.asarray(0.2)}
  batch = Transition(obs=f(N, OBS), action=jnp.asarray(rng.uniform(-0.9, 0.9, (N, ACT)),
                                                       jnp.float32),
                     reward=f(N), next_obs=f(N, OBS),
                     terminal=jnp.asarray([0, 0, 1, 0, 0, 1], jnp.float32),
                     timeout=jnp.zeros((N,), jnp.float32))
  z = f(ZD)
  return pol, crit, targ, dual, batch, z


def _np(batch):
  return {k: np.asarray(getattr(batch, k), np.float64)
          for k in ("obs", "action", "reward", "next_obs", "terminal")}


def _zt(z):
  return np.broadcast_to(np.asarray(z, np.float64), (N, ZD))


# ------------------------------------------------------------------ BRAC


def test_kl_dual_estimate_by_hand(setup):
  pol, _, _, dual, batch, z = setup
  a_pi = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (N, ACT)), jnp.float32)
  zt = jnp.broadcast_to(z, (N, ZD))
  got = backbones.kl_dual_estimate(LinearDual, dual, batch.obs, zt, batch.action, a_pi)
  b = _np(batch)
  want = np_kl_dual(dual, b["obs"], _zt(z), b["action"], a_pi)
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
  swapped = np_kl_dual(dual, b["obs"], _zt(z), a_pi, b["action"])
  assert np.abs(want - swapped).min() > 1e-2  # the test tells c_pi from c_data


@pytest.mark.parametrize("soft", [True, False])
def test_brac_value_penalised_soft_target_by_hand(setup, soft):
  """``y = s r + gamma (1 - d)(min_i Q'_i(s', a') - alpha log pi(a'|s') - w D(s))``, keys
  ``k_next, k_pen = split(key)`` (a' from k_next at s', the penalty's policy action from k_pen
  at s); loss ``mean_n sum_i (Q_i(s, a) - y)^2``."""
  pol, crit, targ, dual, batch, z = setup
  hp = HParams.create(discount=0.9, reward_scale=2.0)
  key, alpha, w = jax.random.key(7), 0.7, 0.3
  loss, m = backbones.critic_loss(crit, targ, pol, alpha, batch, z, key, hp, policy=LinearPolicy,
                                  critic=TwinCritic, value_penalty=(LinearDual, dual, w),
                                  soft_target=soft)
  b, zt = _np(batch), _zt(z)
  k_next, k_pen = jax.random.split(key)
  mean_n, ls_n = np_policy(pol, b["next_obs"], zt)
  a_next, logp_next = np_tanh_gauss(mean_n, ls_n, normal(k_next, (N, ACT)))
  mean, ls = np_policy(pol, b["obs"], zt)
  a_pi, _ = np_tanh_gauss(mean, ls, normal(k_pen, (N, ACT)))
  d = np_kl_dual(dual, b["obs"], zt, b["action"], a_pi)
  v_next = np.min(np_critic(targ, b["next_obs"], zt, a_next), axis=0)
  if soft:
    v_next = v_next - alpha * logp_next
  y = 2.0 * b["reward"] + 0.9 * (1.0 - b["terminal"]) * (v_next - w * d)
  q = np_critic(crit, b["obs"], zt, b["action"])
  np.testing.assert_allclose(m["critic/target"], np.mean(y), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(m["critic/value_penalty"], np.mean(w * d), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(loss, np.mean(np.sum((q - y) ** 2, axis=0)), rtol=RTOL, atol=ATOL)
  assert np.abs(alpha * logp_next).mean() > 0.1  # the entropy term is large enough to matter


def test_sac_soft_target_without_penalty_by_hand(setup):
  pol, crit, targ, _, batch, z = setup
  hp = HParams.create(discount=0.95, reward_scale=1.0)
  key, alpha = jax.random.key(8), 0.5
  loss, m = backbones.critic_loss(crit, targ, pol, alpha, batch, z, key, hp, policy=LinearPolicy,
                                  critic=TwinCritic)
  b, zt = _np(batch), _zt(z)
  k_next, _ = jax.random.split(key)
  mean_n, ls_n = np_policy(pol, b["next_obs"], zt)
  a_next, logp_next = np_tanh_gauss(mean_n, ls_n, normal(k_next, (N, ACT)))
  y = b["reward"] + 0.95 * (1.0 - b["terminal"]) * (
      np.min(np_critic(targ, b["next_obs"], zt, a_next), axis=0) - alpha * logp_next)
  q = np_critic(crit, b["obs"], zt, b["action"])
  np.testing.assert_allclose(loss, np.mean(np.sum((q - y) ** 2, axis=0)), rtol=RTOL, atol=ATOL)
  assert "critic/value_penalty" not in m


@pytest.mark.parametrize("weight", [None, 0.25])
def test_actor_loss_by_hand(setup, weight):
  """``mean(alpha log pi(a|s) - min_i Q_i(s, a)) + w mean D(s, a) + mean_reg mean(mu^2) +
  std_reg mean(log_sigma^2)``, a drawn with the key itself."""
  pol, crit, _, dual, batch, z = setup
  hp = HParams.create(policy_mean_reg=0.01, policy_std_reg=0.02)
  key, alpha = jax.random.key(9), 0.4
  loss, (m, mean_logp, d_out) = backbones.actor_loss(
      pol, crit, dual, alpha, batch, z, key, hp, policy=LinearPolicy, critic=TwinCritic,
      dual=LinearDual, brac_weight=weight)
  b, zt = _np(batch), _zt(z)
  mean, ls = np_policy(pol, b["obs"], zt)
  a, logp = np_tanh_gauss(mean, ls, normal(key, (N, ACT)))
  q = np.min(np_critic(crit, b["obs"], zt, a), axis=0)
  d = np.mean(np_kl_dual(dual, b["obs"], zt, b["action"], a))
  reg = 0.01 * np.mean(mean ** 2) + 0.02 * np.mean(ls ** 2)
  want = np.mean(alpha * logp - q) + reg + (0.0 if weight is None else weight * d)
  np.testing.assert_allclose(loss, want, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(m["actor/reg"], reg, rtol=RTOL, atol=1e-7)
  np.testing.assert_allclose(mean_logp, np.mean(logp), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(d_out, d, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(m["actor/entropy"], -np.mean(logp), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("gp", ["grad", "output"])
def test_dual_loss_by_hand(setup, gp):
  """``-mean D + gp_weight mean(max(||g|| - 1, 0)^2)`` at ``a_pi + u (a_data - a_pi)``; for the
  linear dual ``d c / d a = w`` (``||w|| = 2.5``), ``gp="output"``: ``||g|| = sqrt(1e-8 + c^2)``.
  Keys ``k_pi, k_u = split(key)``."""
  pol, _, _, dual, batch, z = setup
  hp = HParams.create(gp_weight=3.0)
  key = jax.random.key(10)
  loss, m = backbones.dual_loss(dual, pol, batch, z, key, hp, policy=LinearPolicy,
                                dual=LinearDual, gp=gp)
  b, zt = _np(batch), _zt(z)
  k_pi, k_u = jax.random.split(key)
  mean, ls = np_policy(pol, b["obs"], zt)
  a_pi, _ = np_tanh_gauss(mean, ls, normal(k_pi, (N, ACT)))
  d = np_kl_dual(dual, b["obs"], zt, b["action"], a_pi)
  if gp == "grad":
    norm = np.full(N, np.linalg.norm(np.asarray(dual["w"], np.float64)))
  else:
    u = np.asarray(jax.random.uniform(k_u, (N, 1)), np.float64)
    norm = np.sqrt(1e-8 + np_dual(dual, b["obs"], zt, a_pi + u * (b["action"] - a_pi)) ** 2)
  pen = np.mean(np.maximum(norm - 1.0, 0.0) ** 2)
  assert pen > 0.01
  np.testing.assert_allclose(m["dual/gp"], pen, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(m["dual/kl"], np.mean(d), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(loss, -np.mean(d) + 3.0 * pen, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ TD3+BC


def test_td3_target_with_policy_smoothing_by_hand(setup):
  """``a' = clip(tanh(mu'(s')) + clip(sigma eps, -c, c), -1, 1)``, ``y = s r + gamma (1 - d)
  min_i Q'_i(s', a')``."""
  pol, crit, targ, _, batch, z = setup
  hp = HParams.create(discount=0.8, reward_scale=1.5, td3_policy_noise=0.6, td3_noise_clip=0.3)
  key = jax.random.key(11)
  loss, m = backbones.td3_critic_loss(crit, targ, pol, batch, z, key, hp, policy=LinearPolicy,
                                      critic=TwinCritic)
  b, zt = _np(batch), _zt(z)
  noise = np.clip(0.6 * normal(key, (N, ACT)), -0.3, 0.3)
  assert np.any(np.abs(noise) == 0.3)  # the noise clip is exercised
  a_next = np.clip(np.tanh(np_policy(pol, b["next_obs"], zt)[0]) + noise, -1.0, 1.0)
  y = 1.5 * b["reward"] + 0.8 * (1.0 - b["terminal"]) * np.min(
      np_critic(targ, b["next_obs"], zt, a_next), axis=0)
  q = np_critic(crit, b["obs"], zt, b["action"])
  np.testing.assert_allclose(m["critic/target"], np.mean(y), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(loss, np.mean(np.sum((q - y) ** 2, axis=0)), rtol=RTOL, atol=ATOL)


def test_td3bc_actor_loss_by_hand(setup):
  pol, crit, _, _, batch, z = setup
  hp = HParams.create(td3_alpha=2.5)
  loss, m = backbones.td3bc_actor_loss(pol, crit, batch, z, None, hp, policy=LinearPolicy,
                                       critic=TwinCritic)
  b, zt = _np(batch), _zt(z)
  a = np.tanh(np_policy(pol, b["obs"], zt)[0])
  q1 = np_critic(crit, b["obs"], zt, a)[0]  # the first head only (TD3_BC.py:140)
  lam = 2.5 / (np.mean(np.abs(q1)) + 1e-6)
  bc = np.mean((a - b["action"]) ** 2)
  np.testing.assert_allclose(loss, -lam * np.mean(q1) + bc, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ CQL / IQL / MISA


@pytest.mark.parametrize("importance", [True, False])
def test_cql_regulariser_by_hand(setup, importance):
  """Per head ``mean_s[T logsumexp_j(c_j / T) - Q(s, a_data)]``; importance sampled:
  ``c = [Q(s, a_unif) - A log 0.5, Q(s, a'_next) - log pi, Q(s, a'_cur) - log pi]``, else
  ``[Q(s, a_unif), Q(s, a_data), Q(s, a_next), Q(s, a_cur)]``."""
  _, crit, _, _, batch, z = setup
  rng = np.random.default_rng(3)
  k, temp = 4, 0.7
  rand_a, cur_a, next_a = (rng.uniform(-1, 1, (N, k, ACT)) for _ in range(3))
  cur_logp, next_logp = rng.normal(size=(N, k)), rng.normal(size=(N, k))
  zk = jnp.broadcast_to(z, (N, k, ZD))
  q_fn = lambda o, a: TwinCritic.apply(crit, o, zk, a)
  zt = jnp.broadcast_to(z, (N, ZD))
  q_data = TwinCritic.apply(crit, batch.obs, zt, batch.action)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  got = cql.cql_regulariser(q_fn, q_data, batch.obs, f32(rand_a), f32(cur_a), f32(cur_logp),
                            f32(next_a), f32(next_logp), temperature=temp,
                            importance_sample=importance)
  b = _np(batch)
  obs_k = np.broadcast_to(b["obs"][:, None], (N, k, OBS))
  zkn = np.broadcast_to(np.asarray(z, np.float64), (N, k, ZD))
  q = lambda a: np_critic(crit, obs_k, zkn, np.asarray(f32(a), np.float64))  # [2, N, K]
  qd = np_critic(crit, b["obs"], _zt(z), b["action"])  # [2, N]
  cl = lambda x: np.asarray(f32(x), np.float64)
  if importance:
    cat = np.concatenate([q(rand_a) - ACT * np.log(0.5), q(next_a) - cl(next_logp),
                          q(cur_a) - cl(cur_logp)], axis=-1)
  else:
    cat = np.concatenate([q(rand_a), qd[..., None], q(next_a), q(cur_a)], axis=-1)
  lse = temp * np.log(np.sum(np.exp(cat / temp), axis=-1))
  want = np.mean(lse - qd, axis=-1)
  assert got.shape == (2,)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_iql_expectile_and_awr_weights_by_hand():
  rng = np.random.default_rng(4)
  diff = rng.normal(size=50)
  got = iql.expectile_loss(jnp.asarray(diff, jnp.float32), 0.8)
  d = np.asarray(jnp.asarray(diff, jnp.float32), np.float64)
  want = np.mean(np.where(d < 0, 0.2, 0.8) * d ** 2)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  q, v = rng.normal(size=50), rng.normal(size=50)
  got_w = iql.awr_weights(jnp.asarray(q, jnp.float32), jnp.asarray(v, jnp.float32), 3.0, 4.0)
  want_w = np.minimum(np.exp(3.0 * (q - v)), 4.0)
  assert np.any(want_w == 4.0) and np.any(want_w < 1.0)  # the cap and the exp both matter
  np.testing.assert_allclose(got_w, want_w, rtol=1e-5)


@pytest.mark.parametrize("bound", ["misa", "dv", "f"])
def test_misa_partition_and_bound_by_hand(bound):
  rng = np.random.default_rng(5)
  n, k = 5, 7
  q, log_w = rng.normal(size=(n, k)), np.full((n, k), -np.log(k))
  logp_data, q_data = rng.normal(size=n), rng.normal(size=n)
  e = np.exp(q + log_w)
  want = {"misa": np.mean(np.log(e.sum(-1))), "dv": np.log(np.mean(e.sum(-1))),
          "f": np.mean(np.sum(np.exp(q + log_w - 1.0), -1))}[bound]
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  np.testing.assert_allclose(misa.log_partition(f32(q), f32(log_w), bound), want, rtol=1e-5)
  np.testing.assert_allclose(
      misa.bound_value(f32(logp_data), f32(q_data), f32(q), f32(log_w), bound),
      np.mean(logp_data + q_data) - want, rtol=1e-5, atol=1e-6)
  w = {"misa": np.exp(q) / np.exp(q).sum(-1, keepdims=True) / n,
       "dv": np.exp(q) / np.exp(q).sum(), "f": np.exp(q - 1.0) / (n * k)}[bound]
  np.testing.assert_allclose(misa.partition_weights(f32(q), bound), w, rtol=1e-5)


# ------------------------------------------------------------------ AWAC (SMAC's trainer)


def _awac(weights="meta_batch"):
  """An ``awac`` backbone whose policy and critic are this file's stubs."""
  from jcomrl.algos.config import LearnerConfig
  bb = backbones.make_backbone(LearnerConfig.create(
      obs_size=OBS, action_size=ACT, task_param_size=1, latent_size=ZD, backbone="awac",
      rl_hidden=(4,), awac={"weights": weights}))
  bb.policy, bb.critic = LinearPolicy, TwinCritic
  return bb


def _two_tasks(batch, z):
  """A meta-batch of two tasks: ``batch`` and a shifted copy, codes ``z`` and ``-z``."""
  other = batch.replace(obs=batch.obs[::-1] + 0.3, action=batch.action[::-1] * 0.8,
                        reward=batch.reward[::-1] - 1.0)
  return jax.tree.map(lambda a, b: jnp.stack([a, b]), batch, other), jnp.stack([z, -z])


@pytest.mark.parametrize("weights", ["meta_batch", "task", "exp"])
def test_awac_actor_loss_by_hand(setup, weights):
  """SMAC's actor loss (rlkit smac.py:415-501): ``alpha mean log pi(a_pi|s) + w_awr
  mean(-log pi(a_data|s) W) + w_rep mean(-min Q(s, a_pi))`` with the score
  ``A = min Q(s, a_data) - min Q(s, a_pi)`` and ``W = M softmax(A / beta)`` over all M = B x N
  transitions of the meta-batch (``"task"``: N softmax within a task; ``"exp"``: exp(A / beta));
  the policy draws of task b use ``split(key, B)[b]``."""
  pol, crit, targ, _, batch, z = setup
  rl, zs = _two_tasks(batch, z)
  bb = _awac(weights)
  hp = HParams.create(entropy_alpha=0.3, awac={"beta": 0.5, "awr_weight": 1.5,
                                               "reparam_weight": 0.2})
  params = {"actor": pol, "critic": crit, "critic_target": targ}
  key = jax.random.key(11)
  loss, (m, mean_logp, _) = bb.meta_actor_loss(pol, params, rl, zs, hp, key)
  keys = jax.random.split(key, 2)
  logp_data, logp_pi, q_pi, q_data = [], [], [], []
  for t in range(2):
    b = _np(jax.tree.map(lambda x, t=t: x[t], rl))
    zt = _zt(zs[t])
    mean, ls = np_policy(pol, b["obs"], zt)
    a_pi, lp = np_tanh_gauss(mean, ls, normal(keys[t], (N, ACT)))
    u = np.arctanh(b["action"])  # |a| <= 0.9: rlkit's clip at 0.999999 does not bind
    lpd = np.sum(-0.5 * ((u - mean) / np.exp(ls)) ** 2 - ls - 0.5 * np.log(2 * np.pi)
                 - np.log(1.0 - b["action"] ** 2), axis=-1)
    logp_data.append(lpd)
    logp_pi.append(lp)
    q_pi.append(np.min(np_critic(crit, b["obs"], zt, a_pi), axis=0))
    q_data.append(np.min(np_critic(crit, b["obs"], zt, b["action"]), axis=0))
  logp_data, logp_pi, q_pi, q_data = map(np.stack, (logp_data, logp_pi, q_pi, q_data))
  s = (q_data - q_pi) / 0.5
  if weights == "meta_batch":
    w = np.exp(s - s.max()) / np.sum(np.exp(s - s.max())) * s.size
  elif weights == "task":
    w = np.exp(s) / np.sum(np.exp(s), axis=1, keepdims=True) * N
  else:
    w = np.exp(s)
  want = 0.3 * np.mean(logp_pi) + 1.5 * np.mean(-logp_data * w) + 0.2 * np.mean(-q_pi)
  np.testing.assert_allclose(loss, want, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(mean_logp, np.mean(logp_pi), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(m["actor/weight_max"], w.max(), rtol=1e-4)
  per_task = np.exp(s) / np.sum(np.exp(s), axis=1, keepdims=True) * N
  if weights == "meta_batch":  # normalised over the meta-batch, not within each task
    assert abs(w.sum() - 2 * N) < 1e-9 and np.abs(w - per_task).max() > 0.1
  assert w.max() / w.min() > 3.0  # the weights are far from uniform at this beta


def test_awac_critic_loss_by_hand(setup):
  """AWAC's critic (smac.py:381-392): ``y = s r + gamma (1 - d)(min_i Q'_i(s', a') - alpha log
  pi(a'|s'))``, ``a'`` from ``split(key)[0]``; loss ``mean_n sum_i (Q_i(s, a) - y)^2`` (the two
  ``nn.MSELoss`` summed); the actor reads the critic before this update's step."""
  pol, crit, targ, _, batch, z = setup
  bb = _awac()
  assert not bb.actor_uses_updated_critic
  hp = HParams.create(discount=0.99, reward_scale=5.0, entropy_alpha=0.25)
  params = {"actor": pol, "critic": crit, "critic_target": targ}
  key = jax.random.key(12)
  loss, m = bb.critic_loss_fn(params, hp, None)(crit, batch, z, key)
  b, zt = _np(batch), _zt(z)
  mean_n, ls_n = np_policy(pol, b["next_obs"], zt)
  a_next, logp_next = np_tanh_gauss(mean_n, ls_n, normal(jax.random.split(key)[0], (N, ACT)))
  y = 5.0 * b["reward"] + 0.99 * (1.0 - b["terminal"]) * (
      np.min(np_critic(targ, b["next_obs"], zt, a_next), axis=0) - 0.25 * logp_next)
  q = np_critic(crit, b["obs"], zt, b["action"])
  np.testing.assert_allclose(m["critic/target"], np.mean(y), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(loss, np.mean(np.sum((q - y) ** 2, axis=0)), rtol=RTOL, atol=1e-4)
