"""Tests of jcomrl.mi: analytic optimal critics on correlated Gaussians, identities, finiteness.

Correlated Gaussians: x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps, I = -(d/2) log(1 - rho^2).
The optimal critics are known in closed form: log r(x, y) = log p(y|x) - log p(y). Every batch
also gives the oracle Monte-Carlo value mean_i log r(x_i, y_i) (unbiased for I), so an estimator's
bias is measured on the paired difference (estimate - oracle), which is far less noisy than the
estimate itself.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import mi
from jcomrl.mi.lower import _loo_logmeanexp_rows

N_BATCHES = 64
# Test programs are small and run once: skip XLA's expensive CPU optimisations (compile ~2-3x
# faster, same results).
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _run_once(fn, *args):
  """jit-compile ``fn`` for ``args`` with the fast options and run it."""
  return jax.jit(fn).lower(*args).compile(compiler_options=_FAST_COMPILE)(*args)
LOW = (128, 5, 1.0)   # K, d, I: I << log K (4.85)
HIGH = (16, 5, 4.0)   # I > log K (2.77)


def _rho(d: int, info: float) -> float:
  return math.sqrt(1.0 - math.exp(-2.0 * info / d))


def _gaussian_batch(key, k: int, d: int, info: float):
  """Returns (log p(y_j | x_i) [K, K], log p(y_j) [K])."""
  rho = _rho(d, info)
  var = 1.0 - rho * rho
  kx, ke = jax.random.split(key)
  x = jax.random.normal(kx, (k, d))
  y = rho * x + math.sqrt(var) * jax.random.normal(ke, (k, d))
  diff = y[None, :, :] - rho * x[:, None, :]
  log_pyx = jnp.sum(-0.5 * jnp.log(2 * jnp.pi * var) - diff * diff / (2 * var), axis=-1)
  log_py = jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - y * y / 2, axis=-1)
  return log_pyx, log_py


def _all_estimates(key, k, d, info):
  log_pyx, log_py = _gaussian_batch(key, k, d, info)
  s = log_pyx - log_py[None, :]  # the optimal (log density ratio) critic
  out = {
      "oracle": jnp.mean(jnp.diagonal(s)),
      "infonce": mi.infonce(s),
      "nwj": mi.nwj(s + 1.0),          # NWJ's optimum is 1 + log r
      "nwj_raw": mi.nwj(s),            # the JS-critic mistake: reports I - 1/e
      "dv": mi.dv(s),
      "tuba": mi.tuba(s),
      "tuba_cond": mi.tuba(log_pyx, log_py),  # f = log p(y|x) with baseline log p(y)
      "js": mi.js(s),
      "smile_inf": mi.smile(s, None),
      "club": mi.club(log_pyx),
      "l1out": mi.l1out(log_pyx),
      "nce_explicit": mi.infonce_with_negatives(jnp.diagonal(s), _offdiag(s)),
  }
  for alpha in (0.0, 0.01, 0.5, 0.99, 1.0):
    out[f"alpha_{alpha}"] = mi.interpolated(s, alpha=alpha)
  pos, neg = jnp.diagonal(s), _offdiag(s)
  out["tuba_neg"] = mi.tuba_with_negatives(pos, neg)
  for alpha in (0.0, 0.5, 1.0):
    out[f"alpha_neg_{alpha}"] = mi.interpolated_with_negatives(pos, neg, alpha=alpha)
  return out


@functools.cache
def _stats(k: int, d: int, info: float) -> dict[str, np.ndarray]:
  """Per-batch estimates over N_BATCHES batches (one compilation per configuration)."""
  keys = jax.random.split(jax.random.PRNGKey(k * 100 + d), N_BATCHES)
  fn = jax.vmap(functools.partial(_all_estimates, k=k, d=d, info=info))
  return {name: np.asarray(v, np.float64) for name, v in _run_once(fn, keys).items()}


def _offdiag(s: jnp.ndarray) -> jnp.ndarray:
  """[K, K-1]: row i's entries without the diagonal (static gather)."""
  k = s.shape[0]
  j = jnp.arange(k - 1)[None, :]
  cols = j + (j >= jnp.arange(k)[:, None])
  return jnp.take_along_axis(s, cols, axis=1)


def _bias_and_se(st, name):
  diff = st[name] - st["oracle"]
  return diff.mean(), diff.std() / math.sqrt(len(diff))


# ------------------------------------------------------------------------------------------
# Behaviour with the analytic optimal critic
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [LOW, HIGH])
def test_infonce_never_exceeds_log_k(cfg):
  k, _, info = cfg
  st = _stats(*cfg)
  assert np.all(st["infonce"] <= math.log(k) + 1e-5)
  if info > math.log(k):
    assert st["infonce"].mean() < info - 1.0  # the log K ceiling binds


def test_infonce_close_to_true_mi_when_mi_small():
  st = _stats(*LOW)
  assert abs(st["infonce"].mean() - LOW[2]) < 0.08
  bias, se = _bias_and_se(st, "infonce")
  assert -0.1 < bias <= 3 * se   # a lower bound: biased low, slightly, at I << log K


@pytest.mark.parametrize("name", ["nwj", "dv", "tuba", "tuba_cond", "js", "smile_inf", "alpha_0.0",
                                  "tuba_neg", "alpha_neg_0.0"])
def test_unbiased_bounds_at_low_mi(name):
  st = _stats(*LOW)
  assert abs(st[name].mean() - LOW[2]) < 0.06
  bias, se = _bias_and_se(st, name)
  assert abs(bias) < max(4 * se, 0.01), (bias, se)


def test_nwj_on_unshifted_log_ratio_reports_i_minus_one_over_e():
  st = _stats(*LOW)
  bias, se = _bias_and_se(st, "nwj_raw")
  assert abs(bias + 1.0 / math.e) < max(4 * se, 0.01), (bias, se)


def test_club_is_upper_bound_with_true_conditional():
  _, d, info = LOW
  st = _stats(*LOW)
  rho2 = _rho(d, info) ** 2
  club_analytic = d * rho2 / (1.0 - rho2)   # I_CLUB for the Gaussian, > I
  assert np.mean(st["club"]) > info + 1.0
  se = st["club"].std() / math.sqrt(N_BATCHES)
  assert abs(st["club"].mean() - club_analytic) < 4 * se
  # L1Out: an upper bound in expectation, nearly tight at I << log K
  bias, se = _bias_and_se(st, "l1out")
  assert bias > -3 * se and bias < 0.05


def test_interpolated_between_tuba_and_infonce():
  k, _, _ = HIGH
  st = _stats(*HIGH)
  means = {a: st[f"alpha_{a}"].mean() for a in (0.0, 0.01, 0.5, 0.99, 1.0)}
  assert st["infonce"].mean() + 0.1 < means[0.5] < st["tuba"].mean() - 0.3
  assert means[1.0] <= means[0.99] < means[0.5] < means[0.01] <= means[0.0] + 1e-6
  np.testing.assert_allclose(st["alpha_0.0"], st["tuba"], rtol=1e-5, atol=1e-5)
  assert np.all(st["alpha_1.0"] <= math.log(k - 1) + 1e-5)


# ------------------------------------------------------------------------------------------
# Exact identities and hand computations. Everything that needs JAX is evaluated in ONE jitted
# program (op-by-op dispatch would compile hundreds of tiny kernels); tests compare its outputs
# with float64 numpy computations written out by hand.
# ------------------------------------------------------------------------------------------

_DV_MOMENTUM = 0.9
_ALPHA = 0.3


def _exact_inputs() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  f32 = lambda a: np.asarray(a, np.float32)
  inp = {
      "s9": f32(3.0 * rng.standard_normal((9, 9))),
      "s7": f32(2.0 * rng.standard_normal((7, 7))),
      "s6": f32(3.0 * rng.standard_normal((6, 6))),
      "s5": f32(2.0 * rng.standard_normal((5, 5))),
      "b5": f32(rng.standard_normal(5)),
      "b6": f32(rng.standard_normal(6)),
      "e1": f32(rng.standard_normal((5, 5))),
      "e2": f32(2.0 * rng.standard_normal((5, 5))),
      "q8": f32(rng.standard_normal((8, 8))),
      "big16": f32(1e3 * rng.standard_normal((16, 16))),
  }
  for k in (2, 3, 7):  # LOO inputs: ties in every column and a dominating entry
    a = 5.0 * rng.standard_normal((k, k))
    a[0, :] = a[1, :]
    a[:, -1] = [300.0] + [-300.0] * (k - 1)
    inp[f"loo{k}"] = f32(a)
  return inp


def _exact_compute(inp):
  out = {}
  s9 = inp["s9"]
  pos, neg = jnp.diagonal(s9), _offdiag(s9)
  for name, a, b in [
      ("infonce", mi.infonce(s9), mi.infonce_with_negatives(pos, neg)),
      ("nwj", mi.nwj(s9), mi.nwj_with_negatives(pos, neg)),
      ("dv", mi.dv(s9), mi.dv_with_negatives(pos, neg)),
      ("js", mi.js(s9), mi.js_with_negatives(pos, neg)),
      ("js_fgan", mi.js_fgan(s9), mi.js_fgan_with_negatives(pos, neg)),
      ("smile", mi.smile(s9, 1.0), mi.smile_with_negatives(pos, neg, 1.0))]:
    out[f"neg/{name}/matrix"], out[f"neg/{name}/explicit"] = a, b
  out["big16/infonce"] = mi.infonce(inp["big16"])
  out["perfect16/infonce"] = mi.infonce(jnp.where(jnp.eye(16, dtype=bool), 1e3, -1e3))
  s7 = inp["s7"]
  out["js/value"], out["js/nwj_shifted"] = mi.js(s7), mi.nwj(s7 + 1.0)
  out["js/fgan"] = mi.js_fgan(s7)
  out["js/grad"], out["js/grad_fgan"] = jax.grad(mi.js)(s7), jax.grad(mi.js_fgan)(s7)
  out["js/grad_nwj"] = jax.grad(lambda x: mi.nwj(x + 1.0))(s7)
  s6 = inp["s6"]
  out["smile/1"], out["smile/none"] = mi.smile(s6, 1.0), mi.smile(s6, None)
  out["smile/1e4"], out["smile/dv"] = mi.smile(s6, 1e4), mi.dv(s6)
  out["smile/grad"], out["smile/grad_fgan"] = jax.grad(mi.smile)(s6, 1.0), jax.grad(mi.js_fgan)(s6)
  s5, b5 = inp["s5"], inp["b5"]
  out["hand/dv"], out["hand/nwj"] = mi.dv(s5), mi.nwj(s5)
  out["hand/tuba"], out["hand/tuba_ones"] = mi.tuba(s5, b5), mi.tuba(s5, jnp.ones(5))
  out["hand/alpha0"] = mi.interpolated(s5, b5, alpha=0.0)
  for name, fn in [("nwj", mi.nwj), ("dv", mi.dv), ("infonce", mi.infonce)]:
    out[f"grad/{name}"] = jax.grad(fn)(s5)
  out["grad/tuba_s"], out["grad/tuba_b"] = jax.grad(mi.tuba, argnums=(0, 1))(s5, b5)
  out["hand/alpha"] = mi.interpolated(s6, inp["b6"], alpha=_ALPHA)
  for k in (2, 3, 7):
    out[f"loo{k}"] = _loo_logmeanexp_rows(inp[f"loo{k}"])
  ema = jax.value_and_grad(mi.dv_ema, has_aux=True)
  (out["ema/v1"], st1), out["ema/g1"] = ema(inp["e1"], mi.dv_ema_init(), _DV_MOMENTUM)
  (out["ema/v2"], st2), out["ema/g2"] = ema(inp["e2"], st1, _DV_MOMENTUM)
  out["ema/dv1"], out["ema/dv2"] = mi.dv(inp["e1"]), mi.dv(inp["e2"])
  out["ema/grad_dv1"] = jax.grad(mi.dv)(inp["e1"])
  out["ema/log_ema2"], out["ema/step2"] = st2.log_ema, st2.step
  q8 = inp["q8"]
  out["club"], out["club_diag"] = mi.club(q8), mi.club(q8, include_diagonal=True)
  out["l1out"] = mi.l1out(q8)
  keys = jax.random.split(jax.random.PRNGKey(12), 512)
  fixed = jnp.where(jnp.eye(8, dtype=bool), 0.0, -1.0)
  out["club_s/fixed"] = jax.vmap(lambda kk: mi.club_sampled(fixed, kk))(keys)
  out["club_s/draws"] = jax.vmap(lambda kk: mi.club_sampled(q8, kk))(keys)
  return out


@functools.cache
def _exact() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  inp = _exact_inputs()
  out = _run_once(_exact_compute, inp)
  return inp, {k: np.asarray(v, np.float64) for k, v in out.items()}


def _f64(a):
  return np.asarray(a, np.float64)


def test_infonce_bounded_by_log_k_for_arbitrary_scores():
  _, out = _exact()
  assert out["big16/infonce"] <= math.log(16) + 1e-5
  np.testing.assert_allclose(out["perfect16/infonce"], math.log(16), rtol=1e-6)


def test_explicit_negatives_equal_matrix_forms():
  st = _stats(*LOW)
  np.testing.assert_allclose(st["nce_explicit"], st["infonce"], rtol=1e-5, atol=1e-5)
  _, out = _exact()
  for name in ("infonce", "nwj", "dv", "js", "js_fgan", "smile"):
    np.testing.assert_allclose(out[f"neg/{name}/explicit"], out[f"neg/{name}/matrix"],
                               rtol=1e-5, atol=1e-5, err_msg=name)


def test_js_reports_shifted_nwj_and_trains_with_js_gradient():
  inp, out = _exact()
  sn = _f64(inp["s7"])
  off = ~np.eye(7, dtype=bool)
  np.testing.assert_allclose(out["js/value"], out["js/nwj_shifted"], rtol=1e-6)
  np.testing.assert_allclose(out["js/value"], 1.0 + np.mean(np.diag(sn)) - np.mean(np.exp(sn[off])),
                             rtol=1e-5)
  np.testing.assert_allclose(out["js/grad"], out["js/grad_fgan"], rtol=1e-6, atol=1e-7)
  assert not np.allclose(out["js/grad"], out["js/grad_nwj"], atol=1e-3)
  # the JS surrogate by hand: mean(log sigmoid(diag)) - mean_{i != j} softplus(s_ij)
  softplus = lambda v: np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)
  np.testing.assert_allclose(out["js/fgan"], np.mean(-softplus(-np.diag(sn)))
                             - np.mean(softplus(sn[off])), rtol=1e-5)


def test_smile_value_and_gradient():
  inp, out = _exact()
  sn = _f64(inp["s6"])
  off = ~np.eye(6, dtype=bool)
  expected = np.mean(np.diag(sn)) - np.log(np.mean(np.exp(np.clip(sn[off], -1.0, 1.0))))
  np.testing.assert_allclose(out["smile/1"], expected, rtol=1e-5)
  np.testing.assert_allclose(out["smile/none"], out["smile/dv"], rtol=1e-6)
  np.testing.assert_allclose(out["smile/1e4"], out["smile/dv"], rtol=1e-6)
  np.testing.assert_allclose(out["smile/grad"], out["smile/grad_fgan"], rtol=1e-6, atol=1e-7)


def test_dv_and_nwj_and_tuba_by_hand():
  inp, out = _exact()
  sn, bn = _f64(inp["s5"]), _f64(inp["b5"])
  off = ~np.eye(5, dtype=bool)
  diag = np.mean(np.diag(sn))
  np.testing.assert_allclose(out["hand/dv"], diag - np.log(np.mean(np.exp(sn[off]))), rtol=1e-5)
  np.testing.assert_allclose(out["hand/nwj"], diag - np.mean(np.exp(sn[off] - 1)), rtol=1e-5)
  tuba = 1 + np.mean(np.diag(sn) - bn) - np.mean(np.exp((sn - bn[None, :])[off]))
  np.testing.assert_allclose(out["hand/tuba"], tuba, rtol=1e-5)
  np.testing.assert_allclose(out["hand/tuba_ones"], out["hand/nwj"], rtol=1e-5)
  # interpolated(alpha=0) is TUBA with the same baseline, exactly
  np.testing.assert_allclose(out["hand/alpha0"], tuba, rtol=1e-5)


def test_gradients_by_hand():
  # the gradients that train the critic (d bound / d scores), written out for each bound
  inp, out = _exact()
  sn, bn = _f64(inp["s5"]), _f64(inp["b5"])
  k = 5
  eye, off = np.eye(k), ~np.eye(k, dtype=bool)
  np.testing.assert_allclose(out["grad/nwj"], eye / k - off * np.exp(sn - 1) / (k * (k - 1)),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["grad/dv"], eye / k - off * np.exp(sn) / np.sum(np.exp(sn)[off]),
                             rtol=1e-5, atol=1e-7)
  softmax = np.exp(sn) / np.sum(np.exp(sn), axis=1, keepdims=True)
  np.testing.assert_allclose(out["grad/infonce"], (eye - softmax) / k, rtol=1e-5, atol=1e-7)
  ratio = off * np.exp(sn - bn[None, :]) / (k * (k - 1))
  np.testing.assert_allclose(out["grad/tuba_s"], eye / k - ratio, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["grad/tuba_b"], -1.0 / k + ratio.sum(axis=0), rtol=1e-5,
                             atol=1e-7)


def test_interpolated_by_brute_force():
  inp, out = _exact()
  sn, bn = _f64(inp["s6"]), _f64(inp["b6"])
  k, alpha = 6, _ALPHA

  def a(j, i):  # baseline a_j(y_i), leaving x_j out
    m = np.mean([np.exp(sn[l, i]) for l in range(k) if l != j])
    return alpha * m + (1 - alpha) * np.exp(bn[i])

  joint = np.mean([sn[i, i] - np.log(a(j, i)) for i in range(k) for j in range(k) if j != i])
  marg = np.mean([np.exp(sn[l, i]) / a(i, i) for i in range(k) for l in range(k) if l != i])
  np.testing.assert_allclose(out["hand/alpha"], 1 + joint - marg, rtol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_loo_logmeanexp_matches_brute_force(k):
  inp, out = _exact()
  s = _f64(inp[f"loo{k}"])
  want = np.empty((k, k))
  for j in range(k):
    for i in range(k):
      rest = np.array([s[l, i] for l in range(k) if l != j])
      want[j, i] = np.max(rest) + np.log(np.mean(np.exp(rest - np.max(rest))))
  np.testing.assert_allclose(out[f"loo{k}"], want, rtol=1e-5, atol=1e-4)


def test_dv_ema_first_step_is_dv_and_later_steps_use_debiased_average():
  inp, out = _exact()
  m = _DV_MOMENTUM
  off = ~np.eye(5, dtype=bool)
  np.testing.assert_allclose(out["ema/v1"], out["ema/dv1"], rtol=1e-6)
  np.testing.assert_allclose(out["ema/g1"], out["ema/grad_dv1"], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["ema/v2"], out["ema/dv2"], rtol=1e-6)
  z1 = np.mean(np.exp(_f64(inp["e1"])[off]))
  e2 = np.exp(_f64(inp["e2"]))
  z2 = np.mean(e2[off])
  z_ema = (m * z1 + z2) / (1 + m)          # Adam-style debiased average after two steps
  np.testing.assert_allclose(out["ema/log_ema2"] - math.log(1 - m ** 2), math.log(z_ema),
                             rtol=1e-5)
  assert int(out["ema/step2"]) == 2
  want = np.eye(5) / 5 - np.where(off, e2, 0.0) / (20 * z_ema)   # MINE's corrected gradient
  np.testing.assert_allclose(out["ema/g2"], want, rtol=1e-4, atol=1e-6)
  assert not np.allclose(want, np.eye(5) / 5 - np.where(off, e2, 0.0) / (20 * z2), atol=1e-4)


def test_club_sampled_draws_every_offset():
  """CLUB-S's negative of anchor i is ``(i + o_i) mod K``, ``o_i`` uniform on ``1..K-1``. With
  ``log_q[i, (i + o) mod K] = -o K^i`` the value is ``sum_i o_i K^i / K``: its base-K digits are
  the offsets. Over 400 keys every anchor draws every offset 1..K-1, and never 0 (the positive)."""
  k = 5
  rows = np.arange(k)[:, None]
  offset = (np.arange(k)[None, :] - rows) % k
  log_q = jnp.asarray(-offset * float(k) ** rows, jnp.float32)
  keys = jax.random.split(jax.random.PRNGKey(3), 400)
  vals = np.asarray(jax.vmap(lambda kk: mi.club_sampled(log_q, kk))(keys), np.float64) * k
  code = np.rint(vals).astype(np.int64)
  np.testing.assert_allclose(vals, code, atol=1e-3)
  digits = np.stack([(code // k ** i) % k for i in range(k)], axis=1)  # [draws, K]
  for i in range(k):
    counts = np.bincount(digits[:, i], minlength=k)
    assert counts[0] == 0 and np.all(counts[1:] > 50), (i, counts)


def test_club_variants():
  inp, out = _exact()
  lq = _f64(inp["q8"])
  off = ~np.eye(8, dtype=bool)
  club = np.mean(np.diag(lq)) - np.mean(lq[off])
  np.testing.assert_allclose(out["club"], club, rtol=1e-5)
  np.testing.assert_allclose(out["club_diag"], club * 7 / 8, rtol=1e-5)
  # CLUB-S never picks the positive: with diag 0 and off-diagonal -1 every draw is exactly 1
  np.testing.assert_allclose(out["club_s/fixed"], 1.0)
  # and is unbiased for CLUB
  draws = out["club_s/draws"]
  assert abs(draws.mean() - club) < 4 * draws.std() / math.sqrt(len(draws))
  # L1Out by hand: log_q[j, i] = log q(y_i | x_j), leave the diagonal out of column i
  l1o = np.mean([lq[i, i] - np.log(np.mean(np.exp([lq[j, i] for j in range(8) if j != i])))
                 for i in range(8)])
  np.testing.assert_allclose(out["l1out"], l1o, rtol=1e-5)


@functools.cache
def _small_outputs():
  """The remaining small hand-checked functions, in one jitted program."""
  def compute():
    pos = jnp.array([1.0, -0.5, 2.0])
    neg = jnp.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    x = jnp.array([[1.0, 2.0, 3.0], [-1e3, 0.0, 1e3]])
    w = jnp.array([[True, False, True], [True, True, False]])
    mean = jnp.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    log_var = jnp.array([[0.0, 0.5], [-1.0, 0.0], [0.3, -0.2]])
    y = jnp.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 2.0]])
    logits = jnp.array([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [-3.0, 1.0, 4.0, 0.0]])
    labels5 = jnp.arange(5) % 4
    m2 = jnp.array([[0.0, 1.0], [1.0, -2.0]])
    lv2 = jnp.array([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    t2 = jnp.array([[1.0, 3.0], [1.0, 0.0]])
    lo, hi = jnp.full((3,), -5.0), jnp.full((3,), 0.5)
    z = jnp.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    return {
        "dv_row": mi.dv_with_negatives(pos, neg, per_row=True),
        "dv_glob": mi.dv_with_negatives(pos, neg),
        "lme_all": mi.logmeanexp(x[0]), "lme_where": mi.logmeanexp(x, axis=1, where=w),
        "logq": mi.gaussian_log_q(mean, log_var, y),
        "logq_nc": mi.gaussian_log_q(mean, log_var, y, include_constant=False),
        "nll_3": mi.gaussian_nll(mean, log_var, y),
        "cls": mi.classification_bound(logits, jnp.array([0, 2, 1])),
        "cls_uniform": mi.classification_bound(jnp.zeros((5, 4)), labels5),
        "cls_perfect": mi.classification_bound(100.0 * jax.nn.one_hot(labels5, 4), labels5),
        "nll_nc": mi.gaussian_nll(m2, lv2, t2, include_constant=False),
        "nll": mi.gaussian_nll(m2, lv2, t2),
        "gen": mi.generative_bound(m2, lv2, t2, entropy=1.5),
        "clamp": mi.soft_clamp_log_var(jnp.array([-1e3, -2.0, 1e3]), lo, hi),
        "clamp_grad": jax.grad(lambda v: jnp.sum(mi.soft_clamp_log_var(v, lo, hi)))(
            jnp.array([-4.9, -2.0, 0.4])),
        "penalty": mi.log_var_bounds_penalty(lo, hi),
        "focal": mi.focal_metric_loss(z, jnp.array([0, 0, 1])),
        "focal_distinct": mi.focal_metric_loss(z, jnp.array([0, 1, 2])),
    }
  return jax.tree.map(lambda v: np.asarray(v, np.float64), _run_once(compute))


def test_dv_per_row_by_hand():
  out = _small_outputs()
  pn = np.array([1.0, -0.5, 2.0])
  nn_ = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
  want = np.mean(pn - np.log(np.mean(np.exp(nn_), axis=1)))
  np.testing.assert_allclose(out["dv_row"], want, atol=1e-6)
  np.testing.assert_allclose(out["dv_glob"], np.mean(pn) - np.log(np.mean(np.exp(nn_))), atol=1e-6)


def test_logmeanexp():
  out = _small_outputs()
  np.testing.assert_allclose(out["lme_all"], np.log(np.mean(np.exp([1, 2, 3.]))), rtol=1e-6)
  np.testing.assert_allclose(out["lme_where"], [np.log((np.e + np.e ** 3) / 2), np.log(0.5)],
                             rtol=1e-6)


def test_gaussian_log_q_by_hand():
  out = _small_outputs()
  mn = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
  lv = np.array([[0.0, 0.5], [-1.0, 0.0], [0.3, -0.2]])
  yn = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 2.0]])
  want = np.zeros((3, 3))
  for i in range(3):
    for j in range(3):
      for dd in range(2):
        var = math.exp(lv[i, dd])
        want[i, j] += -0.5 * math.log(2 * math.pi * var) - (yn[j, dd] - mn[i, dd]) ** 2 / (2 * var)
  np.testing.assert_allclose(out["logq"], want, rtol=1e-5)
  np.testing.assert_allclose(out["logq_nc"] - out["logq"], math.log(2 * math.pi), rtol=1e-5)
  # diagonal = per-sample likelihood = -NLL of the positives
  np.testing.assert_allclose(-np.mean(np.diag(out["logq"])), out["nll_3"], rtol=1e-5)


def test_classification_bound():
  out = _small_outputs()
  ln = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [-3.0, 1.0, 4.0, 0.0]])
  logp = ln - np.log(np.sum(np.exp(ln), axis=1, keepdims=True))
  ce = -np.mean([logp[0, 0], logp[1, 2], logp[2, 1]])
  np.testing.assert_allclose(out["cls"], math.log(4) - ce, rtol=1e-6)
  np.testing.assert_allclose(out["cls_uniform"], 0.0, atol=1e-6)
  np.testing.assert_allclose(out["cls_perfect"], math.log(4), rtol=1e-6)


def test_gaussian_nll_by_hand():
  out = _small_outputs()
  # sample 0: 0.5*[(1)^2/1 + 0 + (2)^2/4 + log 4] ; sample 1: 0.5*[0 + log .25 + 4/1 + 0]
  s0 = 0.5 * (1.0 + 0.0 + 1.0 + math.log(4.0))
  s1 = 0.5 * (0.0 + math.log(0.25) + 4.0 + 0.0)
  no_const = (s0 + s1) / 2
  np.testing.assert_allclose(out["nll_nc"], no_const, rtol=1e-6)
  np.testing.assert_allclose(out["nll"], no_const + math.log(2 * math.pi), rtol=1e-6)  # D = 2
  np.testing.assert_allclose(out["gen"], 1.5 - no_const - math.log(2 * math.pi), rtol=1e-6)


def test_soft_clamp_log_var():
  out = _small_outputs()
  clamp = out["clamp"]
  slack = math.log1p(math.exp(-5.5))   # the PETS form can overshoot max by softplus(min - max)
  assert np.all(clamp >= -5.0 - 1e-6) and np.all(clamp <= 0.5 + slack + 1e-6)
  assert clamp[2] > 0.5 + slack / 2
  assert abs(clamp[1] - (-2.0)) < 0.1            # near identity inside the bounds
  assert clamp[0] < clamp[1] < clamp[2]
  assert np.all(out["clamp_grad"] > 0)
  np.testing.assert_allclose(out["penalty"], 0.01 * (0.5 * 3 + 5.0 * 3), rtol=1e-6)


def test_focal_metric_loss_three_codes_by_hand():
  out = _small_outputs()
  # mean-over-dims squared distances: d01 = 1, d02 = 2, d12 = 1; one positive pair (0, 1)
  pos = math.sqrt(1.0 + 1e-3)
  neg = 1.0 / (2.0 + 0.1) + 1.0 / (1.0 + 0.1)
  loss, metrics = out["focal"]
  np.testing.assert_allclose(loss, pos / (1 + 1e-3) + neg / (2 + 1e-3), rtol=1e-6)
  assert metrics["focal/num_pos_pairs"] == 1 and metrics["focal/num_neg_pairs"] == 2
  # all tasks distinct (sampling without replacement): only the repulsive term acts
  loss, metrics = out["focal_distinct"]
  np.testing.assert_allclose(loss, (1 / 1.1 + 1 / 2.1 + 1 / 1.1) / (3 + 1e-3), rtol=1e-6)
  assert metrics["focal/pos"] == 0.0


# ------------------------------------------------------------------------------------------
# Finiteness for K in {2, 3, 1024}, scores up to +-1e3, float32
# ------------------------------------------------------------------------------------------


def _pos(s):
  return jnp.diagonal(s)


_BOUNDS = {
    "infonce": lambda s, b, key: mi.infonce(s),
    "nwj": lambda s, b, key: mi.nwj(s),
    "dv": lambda s, b, key: mi.dv(s),
    "tuba": lambda s, b, key: mi.tuba(s, b),
    "js": lambda s, b, key: mi.js(s),
    "js_fgan": lambda s, b, key: mi.js_fgan(s),
    "smile5": lambda s, b, key: mi.smile(s, 5.0),
    "smile_inf": lambda s, b, key: mi.smile(s, None),
    "dv_ema": lambda s, b, key: mi.dv_ema(s, mi.dv_ema_init())[0],
    "alpha0": lambda s, b, key: mi.interpolated(s, b, 0.0),
    "alpha.01": lambda s, b, key: mi.interpolated(s, b, 0.01),
    "alpha.5": lambda s, b, key: mi.interpolated(s, b, 0.5),
    "alpha1": lambda s, b, key: mi.interpolated(s, b, 1.0),
    "nce_neg": lambda s, b, key: mi.infonce_with_negatives(_pos(s), _offdiag(s)),
    "nwj_neg": lambda s, b, key: mi.nwj_with_negatives(_pos(s), _offdiag(s)),
    "dv_neg": lambda s, b, key: mi.dv_with_negatives(_pos(s), _offdiag(s)),
    "dv_row": lambda s, b, key: mi.dv_with_negatives(_pos(s), _offdiag(s), per_row=True),
    "js_neg": lambda s, b, key: mi.js_with_negatives(_pos(s), _offdiag(s)),
    "smile_neg": lambda s, b, key: mi.smile_with_negatives(_pos(s), _offdiag(s)),
    "club": lambda s, b, key: mi.club(s),
    "club_s": lambda s, b, key: mi.club_sampled(s, key),
    "l1out": lambda s, b, key: mi.l1out(s),
}


def _values_and_grad(patterns, baselines, keys):
  """Every bound's value, and the gradient of their sum (non-finite if any one gradient is)."""
  def values(s, b, key):
    return {n: f(s, b, key) for n, f in _BOUNDS.items()}

  def one(s, b, key):
    total = lambda ss, bb: sum(values(ss, bb, key).values())
    return values(s, b, key), jax.grad(total, argnums=(0, 1))(s, b)
  return _run_once(jax.vmap(one), patterns, baselines, keys)


@pytest.mark.parametrize("k", [2, 3, pytest.param(1024, marks=pytest.mark.slow)])
def test_all_bounds_finite_for_extreme_scores(k):
  eye = jnp.eye(k, dtype=bool)
  patterns = jnp.stack([
      jax.random.uniform(jax.random.PRNGKey(13), (k, k), minval=-1e3, maxval=1e3),
      jnp.full((k, k), 1e3), jnp.full((k, k), -1e3),
      jnp.where(eye, 1e3, -1e3), jnp.where(eye, -1e3, 1e3),
  ]).astype(jnp.float32)
  baselines = jnp.stack([jnp.zeros(k), jnp.full((k,), 1e3), jnp.full((k,), -1e3),
                         jax.random.uniform(jax.random.PRNGKey(14), (k,), minval=-1e3,
                                            maxval=1e3), jnp.zeros(k)]).astype(jnp.float32)
  keys = jax.random.split(jax.random.PRNGKey(15), 5)
  vals, grads = _values_and_grad(patterns, baselines, keys)
  for name, v in vals.items():
    assert v.dtype == jnp.float32, name
    assert np.all(np.isfinite(np.asarray(v))), (name, np.asarray(v))
  for g in grads:
    assert g.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(g)))


def test_bad_shapes_raise():
  with pytest.raises(ValueError):
    mi.infonce(jnp.zeros((1, 1)))
  with pytest.raises(ValueError):
    mi.nwj(jnp.zeros((3, 4)))
  with pytest.raises(ValueError):
    mi.club(jnp.zeros((3, 2)))
  with pytest.raises(ValueError):
    mi.infonce_with_negatives(jnp.zeros(3), jnp.zeros((2, 4)))


def test_explicit_negative_tuba_and_interpolated():
  """The explicit-negatives TUBA / I_alpha (what corro's contrastive_bound selects): identities,
  a float64 brute force, and the interpolation between TUBA and the NCE-capped value."""
  rng = np.random.default_rng(3)
  pos = np.asarray(2.0 * rng.standard_normal(6), np.float32)
  neg = np.asarray(2.0 * rng.standard_normal((6, 5)), np.float32)
  b = np.asarray(rng.standard_normal(6), np.float32)
  alpha = 0.3

  def compute(pos, neg, b):
    return {"tuba0": mi.tuba_with_negatives(pos, neg),
            "nwj_shift": mi.nwj_with_negatives(pos + 1.0, neg + 1.0),
            "tuba_b": mi.tuba_with_negatives(pos, neg, b),
            "a0": mi.interpolated_with_negatives(pos, neg, b, alpha=0.0),
            "a": mi.interpolated_with_negatives(pos, neg, b, alpha=alpha)}

  out = {k: float(v) for k, v in _run_once(compute, pos, neg, b).items()}
  p, n, bb = (np.asarray(x, np.float64) for x in (pos, neg, b))
  np.testing.assert_allclose(out["tuba0"], out["nwj_shift"], rtol=1e-5)
  tuba = 1.0 + np.mean(p - bb) - np.mean(np.exp(n - bb[:, None]))
  np.testing.assert_allclose(out["tuba_b"], tuba, rtol=1e-5)
  np.testing.assert_allclose(out["a0"], tuba, rtol=1e-5)
  m = n.shape[1]
  a = alpha * np.exp(n).mean(1) + (1 - alpha) * np.exp(bb)
  joint = np.mean(p - np.log(a))
  marg = np.mean([[np.exp(n[i, j]) / (alpha * np.mean(np.exp(np.delete(n[i], j)))
                                      + (1 - alpha) * np.exp(bb[i])) for j in range(m)]
                  for i in range(len(p))])
  np.testing.assert_allclose(out["a"], 1.0 + joint - marg, rtol=1e-5)
  with pytest.raises(ValueError, match="at least 2 negatives"):
    mi.interpolated_with_negatives(jnp.zeros(3), jnp.zeros((3, 1)))
  st = _stats(*HIGH)
  means = {x: st[f"alpha_neg_{x}"].mean() for x in (0.0, 0.5, 1.0)}
  assert means[1.0] < means[0.5] < means[0.0] + 1e-6


def test_the_config_offers_every_bound_of_the_registries():
  """The config's allowed names are read from the registries; the issue's bounds are there."""
  from jcomrl.algos.objectives import corro, csro

  assert {"infonce", "nwj", "js", "dv", "smile", "tuba", "interpolated"} <= set(
      corro.CONTRASTIVE_BOUNDS)
  assert set(csro.UPPER_BOUNDS) == {"club", "club_sampled", "l1out"}
