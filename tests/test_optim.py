"""jcomrl.optim, the one optimiser builder: each form is, bit for bit, the arithmetic of the code
it stands for (the learners' traced-rate Adam, the decision transformer's clipped AdamW, the
behaviour trainers' injected-rate Adam, optax's fixed-rate Adam / AdamW)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jcomrl import optim
from jcomrl.algos.backbones import base


def _tree(key, scale=1.0):
  k1, k2 = jax.random.split(key)
  return {"w": scale * jax.random.normal(k1, (3, 4)), "b": scale * jax.random.normal(k2, (4,))}


def _grads(n):
  return [_tree(jax.random.key(10 + i), 3.0) for i in range(n)]


def _equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_adam_step_is_the_learners_former_update_and_adam_by_hand():
  """``adam_step`` against the lines ``backbones.base.apply_gradient`` had before it called
  ``jcomrl.optim`` (bit for bit), and against Adam written out in float64."""
  adam = optax.scale_by_adam()

  def former(grads, params, opt, lr):
    updates, opt = adam.update(grads, opt, params)
    return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt

  params = _tree(jax.random.key(0))
  p_new, s_new = params, optim.adam_init(params)
  p_old, s_old = params, adam.init(params)
  _equal(s_new, s_old)
  ref = {k: np.asarray(v, np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in ref.items()}
  v2 = {k: np.zeros_like(v) for k, v in ref.items()}
  for i, g in enumerate(_grads(4)):
    lr = jnp.float32(1e-3 * (i + 1))  # traced: one program for every rate
    p_new, s_new = jax.jit(optim.adam_step)(g, p_new, s_new, lr)
    p_old, s_old = jax.jit(former)(g, p_old, s_old, lr)
    t = i + 1
    for k in ref:  # b1 0.9, b2 0.999, eps 1e-8, bias-corrected moments
      gk = np.asarray(g[k], np.float64)
      m[k] = 0.9 * m[k] + 0.1 * gk
      v2[k] = 0.999 * v2[k] + 0.001 * gk ** 2
      mhat, vhat = m[k] / (1 - 0.9 ** t), v2[k] / (1 - 0.999 ** t)
      ref[k] = ref[k] - float(lr) * mhat / (np.sqrt(vhat) + 1e-8)
  _equal((p_new, s_new), (p_old, s_old))
  for k in ref:
    np.testing.assert_allclose(np.asarray(p_new[k], np.float64), ref[k], rtol=1e-5, atol=1e-6)
  # the learners' groups step through it
  _equal(jax.jit(base.apply_gradient)(_grads(1)[0], params, base.optimiser_init(params), 1e-3),
         jax.jit(optim.adam_step)(_grads(1)[0], params, optim.adam_init(params), 1e-3))


def test_clipped_adamw_step_is_the_decision_transformers_update():
  """The lines of ``jcomrl.algos.backbones.dt.DT.update`` after the gradient, against
  ``clip_by_global_norm`` + ``adamw_step``."""
  clip, wd = 0.25, 1e-4
  adam = optax.scale_by_adam()

  def dt_update(grads, params, opt, lr):
    norm = optax.tree.norm(grads)
    grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, clip / (norm + 1e-6)), grads)
    updates, opt = adam.update(grads, opt, params)
    return jax.tree.map(lambda p, u: p - lr * (u + wd * p), params, updates), opt, norm

  def new_update(grads, params, opt, lr):
    grads, norm = optim.clip_by_global_norm(grads, clip)
    params, opt = optim.adamw_step(grads, params, opt, lr, wd)
    return params, opt, norm

  params = _tree(jax.random.key(1))
  old = new = (params, optim.adam_init(params))
  for i, g in enumerate(_grads(4)):
    lr = jnp.float32(1e-4) * jnp.minimum((i + 1.0) / 3, 1.0)
    p, s, n_old = jax.jit(dt_update)(g, *old, lr)
    old = (p, s)
    p, s, n_new = jax.jit(new_update)(g, *new, lr)
    new = (p, s)
    assert float(n_old) == float(n_new) > clip  # the clipping is active
  _equal(new, old)


def test_injected_adam_is_the_behaviour_trainers_optimiser():
  """``adam()`` + ``step(lr=...)`` against what ``per_task_sac`` built before: optax's Adam under
  ``inject_hyperparams``, its rate replaced in the state before every update."""
  old_opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

  def old_step(opt_state, grads, params, lr):
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
    updates, opt_state = old_opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt = optim.adam()
  params = _tree(jax.random.key(2))
  new, old = (params, opt.init(params)), (params, old_opt.init(params))
  _equal(new[1], old[1])
  for i, g in enumerate(_grads(3)):
    lr = jnp.float32(3e-4 * (i + 1))
    p, s = jax.jit(lambda s, g, p, lr: optim.step(opt, s, g, p, lr))(new[1], g, new[0], lr)
    new = (p, s)
    p, s = jax.jit(old_step)(old[1], g, old[0], lr)
    old = (p, s)
  _equal(new, old)


@pytest.mark.parametrize("weight_decay", [None, 0.0, 1e-2])
def test_fixed_rate_adam_is_optax(weight_decay):
  ref = optax.adam(0.05) if weight_decay is None else optax.adamw(0.05, weight_decay=weight_decay)
  opt = optim.adam(0.05, weight_decay=weight_decay)
  params = _tree(jax.random.key(3))
  new, old = (params, opt.init(params)), (params, ref.init(params))
  for g in _grads(3):
    new = optim.step(opt, new[1], g, new[0])
    u, s = ref.update(g, old[1], old[0])
    old = (optax.apply_updates(old[0], u), s)
  _equal(new, old)


def test_clip_norm_and_injected_decay_compose():
  opt = optim.adam(weight_decay=1e-2, clip_norm=0.5)
  params = _tree(jax.random.key(4))
  g = _grads(1)[0]
  p, s = optim.step(opt, opt.init(params), g, params, jnp.float32(0.1))
  clipped, norm = optim.clip_by_global_norm(g, 0.5)
  assert float(norm) > 0.5
  ref = optax.inject_hyperparams(optax.adamw)(learning_rate=0.1, weight_decay=1e-2)
  u, _ = ref.update(clipped, ref.init(params), params)
  _equal(p, optax.apply_updates(params, u))
  assert float(s[1].hyperparams["learning_rate"]) == pytest.approx(0.1)


def test_a_traced_rate_needs_an_injected_one():
  params = _tree(jax.random.key(5))
  opt = optim.adam(1e-3)
  with pytest.raises(ValueError, match="no injected learning rate"):
    optim.step(opt, opt.init(params), params, params, jnp.float32(0.1))
  with pytest.raises(ValueError, match="no injected learning rate"):
    optim.set_learning_rate(optim.adam_init(params), 0.1)
