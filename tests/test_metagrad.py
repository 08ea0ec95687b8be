"""jcomrl.metagrad: estimator derivatives against exact ones on tiny tabular MDPs.

Exact expectations come from enumerating every trajectory of a 2-state, 2-action, 3-step MDP
(64 trajectories with their probabilities); exact derivatives of the value from the linear algebra
of ``tabular.value``, itself checked against the enumerated expectation of the return and against
derivatives written out by hand (the softmax score ``e_a - pi(s)`` and its Jacobian). Sampled
checks use a tolerance computed from the estimator's own sample variance.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.metagrad import estimators as es
from jcomrl.metagrad import tabular as tb

jax.config.update("jax_enable_x64", False)

GAMMA, T = 0.8, 3


@pytest.fixture(scope="module")
def tiny():
  mdp = tb.random_mdp(jax.random.key(0), 2, 2, density=1.0)
  theta = jax.random.normal(jax.random.key(1), (2, 2))
  traj, prob = tb.enumerate_trajectories(theta, mdp, T)
  return mdp, theta, traj, prob


def _returns(traj):
  return np.sum(np.asarray(traj.rewards) * GAMMA ** np.arange(T), axis=-1)


def _expected(name, theta, mdp, traj, prob, order):
  """The enumerated expectation of estimator ``name``'s ``order``-th derivative at ``theta``."""
  pw = jax.lax.stop_gradient(prob)
  table = tb.state_values(theta, mdp, GAMMA, T)
  base = table[jnp.arange(T + 1), traj.states]

  def weighted(q):
    per = jax.vmap(lambda lp, r, v: es.ESTIMATORS[name](lp, r, GAMMA, v))(
        tb.log_probs(q, traj), traj.rewards, base)
    return jnp.sum(pw * per)
  return (jax.grad if order == 1 else jax.hessian)(weighted)(theta)


def test_magic_box_derivatives_by_hand():
  f = lambda x: es.magic_box(x ** 2)
  assert float(f(3.0)) == 1.0
  assert float(jax.grad(f)(3.0)) == pytest.approx(6.0)            # f' = 2x
  assert float(jax.grad(jax.grad(f))(3.0)) == pytest.approx(38.0)  # f'' + f'^2 = 2 + 36


def test_returns_to_go_by_hand():
  r = jnp.array([1.0, 2.0, 3.0])
  expect = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3]
  np.testing.assert_allclose(es.returns_to_go(r, 0.5), expect, rtol=1e-6)
  np.testing.assert_allclose(es.returns_to_go(r, 0.5, 4.0), [e + 0.5 ** (3 - t) * 4
                                                             for t, e in enumerate(expect)],
                             rtol=1e-6)


def test_exact_value_is_the_enumerated_expectation(tiny):
  mdp, theta, traj, prob = tiny
  assert float(jnp.sum(prob)) == pytest.approx(1.0, abs=1e-6)
  by_enum = lambda q: jnp.sum(tb.enumerate_trajectories(q, mdp, T)[1] * _returns(traj))
  assert float(tb.value(theta, mdp, GAMMA, T)) == pytest.approx(float(by_enum(theta)), rel=1e-5)
  np.testing.assert_allclose(jax.grad(tb.value)(theta, mdp, GAMMA, T), jax.grad(by_enum)(theta),
                             atol=1e-6)
  # the infinite-horizon value is the limit of the finite ones
  assert float(tb.value(theta, mdp, GAMMA, None)) == pytest.approx(
      float(tb.value(theta, mdp, GAMMA, 200)), rel=1e-5)


def _score(pi, s, a):
  """d log pi(a | s) / d theta for softmax logits theta [S, A]: row s is e_a - pi(s)."""
  g = np.zeros_like(pi)
  g[s] = np.eye(pi.shape[1])[a] - pi[s]
  return g.ravel()


def _score_jacobian(pi, s):
  """d^2 log pi(a | s) / d theta^2: -(diag(pi_s) - pi_s pi_s^T) in block s (any a)."""
  n = pi.size
  h = np.zeros((n, n))
  blk = slice(s * pi.shape[1], (s + 1) * pi.shape[1])
  h[blk, blk] = -(np.diag(pi[s]) - np.outer(pi[s], pi[s]))
  return h


def test_dice_derivatives_equal_the_written_out_expressions(tiny):
  """Per trajectory: grad DiCE = sum_t g^t r_t sum_{k<=t} score_k, Hessian = sum_t g^t r_t
  [(sum_k score_k)(sum_k score_k)^T + sum_k d score_k] (Foerster et al. 2018, Sec. 4)."""
  mdp, theta, traj, _ = tiny
  pi = np.asarray(jax.nn.softmax(theta, -1), np.float64)
  for i in (0, 17, 63):
    s, a, r = (np.asarray(x[i]) for x in traj)
    one = jax.tree.map(lambda x, i=i: x[i], traj)
    fn = lambda q, one=one: es.dice(tb.log_probs(q, one), one.rewards, GAMMA)
    g_expect, h_expect = np.zeros(pi.size), np.zeros((pi.size, pi.size))
    for t in range(T):
      cum = sum(_score(pi, s[k], a[k]) for k in range(t + 1))
      cum_jac = sum(_score_jacobian(pi, s[k]) for k in range(t + 1))
      g_expect += GAMMA ** t * r[t] * cum
      h_expect += GAMMA ** t * r[t] * (np.outer(cum, cum) + cum_jac)
    np.testing.assert_allclose(np.ravel(jax.grad(fn)(theta)), g_expect, atol=1e-5)
    np.testing.assert_allclose(np.reshape(jax.hessian(fn)(theta), h_expect.shape), h_expect,
                               atol=1e-5)


# estimator -> (unbiased gradient, unbiased Hessian), the table of estimators.py's docstring
UNBIASED = {"maml": (True, False), "dice": (True, True), "loaded_dice": (True, True),
            "lvc": (True, False), "second_order": (True, True)}


@pytest.mark.parametrize("name", sorted(UNBIASED))
def test_expected_derivatives_against_exact(tiny, name):
  mdp, theta, traj, prob = tiny
  exact_g = jax.grad(tb.value)(theta, mdp, GAMMA, T)
  exact_h = jax.hessian(tb.value)(theta, mdp, GAMMA, T)
  scale = float(jnp.max(jnp.abs(exact_h)))
  g = _expected(name, theta, mdp, traj, prob, 1)
  h = _expected(name, theta, mdp, traj, prob, 2)
  np.testing.assert_allclose(g, exact_g, atol=1e-6)
  err = float(jnp.max(jnp.abs(h - exact_h)))
  if UNBIASED[name][1]:
    assert err < 1e-4 * scale + 1e-7, (name, err, scale)
  else:  # biased: the error is of the Hessian's own size
    assert err > 0.1 * scale, (name, err, scale)


def test_vtrace_untruncated_without_values_is_dice(tiny):
  mdp, theta, traj, _ = tiny
  for i in (3, 40):
    one = jax.tree.map(lambda x, i=i: x[i], traj)
    f_v = lambda q, one=one: es.vtrace(tb.log_probs(q, one), one.rewards, GAMMA,
                                       jnp.zeros(T + 1), rho_bar=jnp.inf, c_bar=jnp.inf)
    f_d = lambda q, one=one: es.dice(tb.log_probs(q, one), one.rewards, GAMMA)
    assert float(f_v(theta)) == pytest.approx(float(f_d(theta)), rel=1e-6)
    np.testing.assert_allclose(jax.hessian(f_v)(theta), jax.hessian(f_d)(theta), atol=1e-6)


def test_off_policy_dice_is_importance_sampling(tiny):
  """With a behaviour policy mu, E_mu[DiCE value] = V^pi (step-wise IS is unbiased) and its
  gradient expectation is grad V^pi; V-trace truncated at 1 is biased off-policy."""
  mdp, theta, traj, _ = tiny
  mu_params = jnp.zeros_like(theta)
  _, prob_mu = tb.enumerate_trajectories(mu_params, mdp, T)
  blp = tb.log_probs(mu_params, traj)

  def expect(fn):
    return lambda q: jnp.sum(prob_mu * jax.vmap(fn)(tb.log_probs(q, traj), traj.rewards, blp))
  dice_off = expect(lambda lp, r, b: es.dice(lp, r, GAMMA, behaviour_logp=b))
  assert float(dice_off(theta)) == pytest.approx(float(tb.value(theta, mdp, GAMMA, T)), rel=1e-5)
  np.testing.assert_allclose(jax.grad(dice_off)(theta), jax.grad(tb.value)(theta, mdp, GAMMA, T),
                             atol=1e-6)
  # Loaded DiCE's value estimates V^pi - V^mu whatever the baseline (E_mu[rho_t - 1 | s_t] = 0),
  # and is exactly 0 on-policy (its weights are differences of magic boxes); the bootstrap row
  # T is 0, the horizon's end
  noise = jax.random.normal(jax.random.key(2), (T + 1, 2)).at[T].set(0.0)
  base = noise[jnp.arange(T + 1), traj.states]
  loaded = lambda q: jnp.sum(prob_mu * jax.vmap(lambda lp, r, b, v: es.dice(
      lp, r, GAMMA, v, behaviour_logp=b))(tb.log_probs(q, traj), traj.rewards, blp, base))
  v_pi, v_mu = tb.value(theta, mdp, GAMMA, T), tb.value(mu_params, mdp, GAMMA, T)
  assert float(loaded(theta)) == pytest.approx(float(v_pi - v_mu), abs=1e-5)
  on = jax.vmap(lambda lp, r, v: es.dice(lp, r, GAMMA, v))(tb.log_probs(theta, traj),
                                                            traj.rewards, base)
  assert float(jnp.max(jnp.abs(on))) < 1e-6
  vt = expect(lambda lp, r, b: es.vtrace(lp, r, GAMMA, jnp.zeros(T + 1), behaviour_logp=b))
  assert abs(float(vt(theta)) - float(tb.value(theta, mdp, GAMMA, T))) > 1e-3


def test_emaml_term_vanishes_without_adaptation_and_completes_maml(tiny):
  """E-MAML (Stadie et al. 2018): with an inner step of size 0 the term's expectation is 0; with
  a real step, MAML + the term is the exact gradient of E_tau[V(theta'(tau))] and MAML alone is
  not (one inner trajectory, exact outer value, every trajectory enumerated)."""
  mdp, theta, traj, prob = tiny
  pw = jax.lax.stop_gradient(prob)
  table = tb.state_values(theta, mdp, GAMMA, T)
  base = table[jnp.arange(T + 1), traj.states]

  def per_traj(q, one, b, lr, emaml):
    sur = lambda p: es.ESTIMATORS["dice"](tb.log_probs(p, one), one.rewards, GAMMA, b)
    adapted = tb.value(es.maml_inner_step(q, sur, lr), mdp, GAMMA, T)
    extra = es.emaml_surrogate(tb.log_probs(q, one), adapted) if emaml else 0.0
    return adapted + extra

  def expected_grad(lr, emaml):
    grads = jax.vmap(jax.grad(per_traj), in_axes=(None, 0, 0, None, None))(
        theta, traj, base, lr, emaml)
    return jnp.einsum("n,nij->ij", pw, grads)

  term_at_0 = expected_grad(0.0, True) - expected_grad(0.0, False)
  assert float(jnp.max(jnp.abs(term_at_0))) < 1e-6
  lr = 2.0
  exact = jax.grad(tb.expected_adapted_value)(theta, mdp, GAMMA, lr, "dice", T)
  with_term, maml = expected_grad(lr, True), expected_grad(lr, False)
  np.testing.assert_allclose(with_term, exact, atol=1e-5)
  assert float(jnp.max(jnp.abs(maml - exact))) > 100 * float(jnp.max(jnp.abs(with_term - exact)))


def _within_own_tolerance(samples, exact, z=5.0):
  """Every component of the sample mean within z standard errors (its own sample SD / sqrt(n));
  z = 5 keeps the family-wise false-alarm rate below 1e-4 for up to ~100 components."""
  samples = np.asarray(samples, np.float64).reshape(samples.shape[0], -1)
  mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
  return np.abs(mean - np.ravel(exact)) <= z * se + 1e-7, mean, se


def test_sampled_hessians_within_their_own_tolerance():
  """Sampled DiCE Hessians average to the exact Hessian within 5 of their own SE; sampled MAML
  Hessians do not (its bias is many SE at this sample size)."""
  mdp = tb.random_mdp(jax.random.key(3), 2, 2, density=1.0)
  theta = jax.random.normal(jax.random.key(4), (2, 2))
  exact_h = jax.hessian(tb.value)(theta, mdp, GAMMA, T)
  traj = tb.sample(jax.random.key(5), theta, mdp, 20000, T)
  base = tb.state_values(theta, mdp, GAMMA, T)[jnp.arange(T + 1), traj.states]

  def hessians(name):
    one = lambda lp_traj, r, v: jax.hessian(
        lambda q: es.ESTIMATORS[name](tb.log_probs(q, lp_traj), r, GAMMA, v))(theta)
    return jax.vmap(one)(traj, traj.rewards, base)
  ok, _, _ = _within_own_tolerance(hessians("dice"), exact_h)
  assert ok.all()
  ok, _, _ = _within_own_tolerance(hessians("maml"), exact_h)
  assert not ok.all()


def test_sampled_emaml_meta_gradient_within_its_own_tolerance():
  """DiCE inner step + E-MAML term + exact outer value, sampled: unbiased for the gradient of
  E_tau[V(theta'(tau))] within its own SE."""
  mdp = tb.random_mdp(jax.random.key(6), 2, 2, density=1.0)
  theta = jax.random.normal(jax.random.key(7), (2, 2))
  lr = 2.0
  exact = jax.grad(tb.expected_adapted_value)(theta, mdp, GAMMA, lr, "dice", T)
  grad_fn = jax.grad(lambda q, k: tb.sampled_meta_objective(
      q, k, mdp, GAMMA, lr, "dice", "exact", 1, 1, steps=1, horizon=T, emaml=True)[0])
  grads = jax.vmap(lambda k: grad_fn(theta, k))(jax.random.split(jax.random.key(8), 20000))
  ok, mean, se = _within_own_tolerance(grads, exact)
  assert ok.all(), (mean, np.ravel(exact), se)


def test_exact_meta_gradient_matches_finite_differences():
  mdp = tb.random_mdp(jax.random.key(9), 3, 2, density=1.0)
  theta = jax.random.normal(jax.random.key(10), (3, 2)).astype(jnp.float32)
  f = lambda q: tb.meta_value(q, mdp, GAMMA, 1.5, steps=2, horizon=5)
  g = np.asarray(jax.grad(f)(theta))
  eps = 1e-2
  for idx in [(0, 0), (1, 1), (2, 0)]:
    d = np.zeros(theta.shape, np.float32)
    d[idx] = eps
    fd = (float(f(theta + d)) - float(f(theta - d))) / (2 * eps)
    assert g[idx] == pytest.approx(fd, rel=2e-2, abs=2e-4)


def test_random_mdp_rows_are_distributions():
  mdp = tb.random_mdp(jax.random.key(11))  # Tang et al.'s 20 x 5, density 0.001
  p = np.asarray(mdp.P)
  assert p.shape == (20, 5, 20) and np.all(p >= 0)
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
  assert np.mean(p.max(-1)) > 0.9  # density 0.001: almost deterministic transitions
  assert np.all((np.asarray(mdp.R) >= 0) & (np.asarray(mdp.R) < 1))


def test_taylor_rejects_other_orders():
  with pytest.raises(ValueError, match="order must be 1 or 2"):
    es.taylor(jnp.zeros(3), jnp.zeros(3), 0.9, order=3)
