"""jcomrl's optimisers, all on optax: one Adam builder and the traced-rate steps of the learners.

Every optimiser of jcomrl is Adam (AdamW with a weight decay), and its learning rate is usually
a *traced* value (an ``HParams`` leaf: a sweep over it is a ``vmap`` and a new value compiles
nothing). Two forms give that, each bit for bit what the code that used it before computed:

* :func:`adam` with ``lr=None``: ``optax.adam`` (``optax.adamw``) under
  ``optax.inject_hyperparams``; the rate is a leaf of the optimiser state (0 until set), set
  before every update by :func:`step`. The behaviour trainers' SAC agents
  (``jcomrl.datagen.per_task_sac``, ``shared_sac``) step this way. With a number ``lr`` it is
  plain ``optax.adam(lr)`` (``optax.adamw``), as the diagnostics' probe classifier uses it.
* :func:`adam_init` / :func:`adam_step`: Adam's moment estimates alone (``optax.scale_by_adam``,
  whose state is all a checkpoint holds) with the rate multiplied in afterwards,
  ``params + (-lr * update)``: the learners' parameter groups
  (``jcomrl.algos.backbones.base.apply_gradient``, MACAW). :func:`clip_by_global_norm` and
  :func:`adamw_step` are the decision transformer's gradient clipping and decoupled weight
  decay (``jcomrl.algos.backbones.dt``) on the same state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

# Adam's moment estimates without a learning rate (``optax.scale_by_adam()``'s defaults: b1 0.9,
# b2 0.999, eps 1e-8): the state of every :func:`adam_step` / :func:`adamw_step` group.
ADAM_MOMENTS = optax.scale_by_adam()


def adam(lr: float | None = None, *, weight_decay: float | None = None,
         clip_norm: float | None = None) -> optax.GradientTransformation:
  """Adam as an optax ``GradientTransformation``; apply it with :func:`step`.

  Args:
    lr: a fixed learning rate, or ``None`` (default): a traced rate injected into the state
      (``optax.inject_hyperparams``, starting at 0) and set at every :func:`step`.
    weight_decay: ``None`` (default): ``optax.adam``; a number (0 included): ``optax.adamw``
      with that decoupled decay (optax's default mask: every parameter).
    clip_norm: first scale the gradient to at most this global norm
      (:func:`clip_by_global_norm_transform`); ``None``: no clipping.
  """
  if lr is None:
    if weight_decay is None:
      opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)
    else:
      opt = optax.inject_hyperparams(optax.adamw)(learning_rate=0.0, weight_decay=weight_decay)
  elif weight_decay is None:
    opt = optax.adam(lr)
  else:
    opt = optax.adamw(lr, weight_decay=weight_decay)
  if clip_norm is not None:
    opt = optax.chain(clip_by_global_norm_transform(clip_norm), opt)
  return opt


def set_learning_rate(opt_state, lr):
  """``opt_state`` of an :func:`adam` with ``lr=None`` with its injected rate set to ``lr``
  (the rest unchanged); ``ValueError`` when the state has no injected rate."""
  if hasattr(opt_state, "hyperparams"):
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
  if isinstance(opt_state, tuple) and not hasattr(opt_state, "_fields"):  # an optax.chain's
    found = [hasattr(s, "hyperparams") for s in opt_state]
    if any(found):
      return tuple(set_learning_rate(s, lr) if f else s for s, f in zip(opt_state, found))
  raise ValueError("this optimiser state has no injected learning rate (build it with "
                   "jcomrl.optim.adam(lr=None) to step at a traced rate)")


def step(opt: optax.GradientTransformation, opt_state, grads, params, lr=None):
  """One update of ``opt`` (an :func:`adam`); returns ``(params, opt_state)``.

  ``lr``: the (traced) learning rate of this step, for an ``adam(lr=None)`` (set with
  :func:`set_learning_rate` before the update); ``None`` for a fixed-rate one. The result is
  ``optax.apply_updates(params, updates)``."""
  if lr is not None:
    opt_state = set_learning_rate(opt_state, lr)
  updates, opt_state = opt.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def adam_init(params) -> Any:
  """The Adam moment state (``optax.scale_by_adam``'s ``count``, ``mu``, ``nu``) of one
  parameter group, for :func:`adam_step` and :func:`adamw_step`."""
  return ADAM_MOMENTS.init(params)


def adam_step(grads, params, opt_state, lr):
  """One Adam step at the traced rate ``lr`` on an :func:`adam_init` state; returns ``(params,
  opt_state)``. The arithmetic of ``jcomrl.algos.backbones.base.apply_gradient``:
  ``u = scale_by_adam(grads)``, then ``optax.apply_updates(params, -lr * u)``."""
  updates, opt_state = ADAM_MOMENTS.update(grads, opt_state, params)
  return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state


def clip_by_global_norm(grads, max_norm):
  """``(clipped grads, global norm)``: every gradient times ``min(1, max_norm / (norm +
  1e-6))``, ``norm = optax.tree.norm(grads)`` (the decision transformer's clipping, as torch's
  ``clip_grad_norm_``; not ``optax.clip_by_global_norm``, which divides by the norm)."""
  norm = optax.tree.norm(grads)
  return jax.tree.map(lambda g: g * jnp.minimum(1.0, max_norm / (norm + 1e-6)), grads), norm


def clip_by_global_norm_transform(max_norm) -> optax.GradientTransformation:
  """:func:`clip_by_global_norm` as a stateless optax ``GradientTransformation`` (what
  ``adam(clip_norm=...)`` chains first)."""

  def update(updates, state, params=None):
    del params
    return clip_by_global_norm(updates, max_norm)[0], state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def adamw_step(grads, params, opt_state, lr, weight_decay):
  """One AdamW step with torch's decoupled decay on an :func:`adam_init` state: ``p - lr * (u +
  weight_decay * p)`` with ``u = scale_by_adam(grads)``, every parameter decayed; returns
  ``(params, opt_state)``. The decision transformer's update (``jcomrl.algos.backbones.dt``:
  ``grads`` already :func:`clip_by_global_norm`-ed, ``lr`` the traced warm-up rate)."""
  updates, opt_state = ADAM_MOMENTS.update(grads, opt_state, params)
  new = jax.tree.map(lambda p, u: p - lr * (u + weight_decay * p), params, updates)
  return new, opt_state
