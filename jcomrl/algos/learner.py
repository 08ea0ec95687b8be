"""The generic COMRL learner: ``make_learner(cfg)`` -> one compiled training program.

    learner = make_learner(cfg)
    state = learner.init(seed_keys)                       # leading seed axis [S]
    state, metrics = learner.train_chunk(state, dataset, hparams, task_pool)

``train_chunk`` is ``jit(vmap_seeds(scan(update, steps_per_chunk)))``: one dispatch runs
``steps_per_chunk`` updates for every seed. Inside ``update`` a meta-batch of tasks is sampled
on device, the representation objective trains the encoder, and the backbone losses are
``vmap``-ed over the tasks of the meta-batch with the task codes detached. The dataset, the
hyper-parameters (leading seed axis) and the task pool are arguments, never closures; the train
state is donated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jcomrl.algos import backbones
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.objectives import make_encode_fn, make_encoder, make_objective, z_spread
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_meta_batch
from jcomrl.nets.actor_critic import (DoubleCritic, StateActionCritic, TanhGaussianPolicy,
                                      tanh_gaussian_sample)
from jcomrl.nets.encoders import context_feature_size
from jcomrl.types import Transition

_OPT_GROUPS = ("encoder", "actor", "critic", "dual", "log_alpha")
_LR_OF = {"encoder": "encoder_lr", "actor": "actor_lr", "critic": "critic_lr", "dual": "dual_lr",
          "log_alpha": "alpha_lr"}


@struct.dataclass
class TrainState:
  """Everything a learner carries between steps (one seed; stacked on a leading seed axis).

  ``params`` has the groups ``encoder, actor, critic, critic_target, dual, log_alpha``; ``opt``
  an optax state per trained group; ``key`` is raw uint32 key data (checkpoint friendly).
  """

  params: dict
  opt: dict
  step: jnp.ndarray
  key: jnp.ndarray


def _adam():
  # The learning rate is overwritten from HParams at every update (a traced value), so sweeps
  # over it vmap instead of recompiling (optax issue #577).
  return optax.inject_hyperparams(optax.adam)(learning_rate=0.0)


def _with_lr(opt_state, lr):
  return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})


def _apply(opt, opt_state, grads, params, lr):
  updates, opt_state = opt.update(grads, _with_lr(opt_state, lr), params)
  return optax.apply_updates(params, updates), opt_state


@dataclasses.dataclass(frozen=True)
class Learner:
  """The compiled functions of one learner configuration.

  Attributes:
    cfg: the static configuration.
    init: ``init(keys [S]) -> TrainState`` with a leading seed axis.
    train_chunk: jitted ``(state, dataset, hparams [S], task_pool) -> (state, metrics [S])``.
    encode: ``encode(params, context, task_params) -> z`` for one seed (vmappable).
    act: ``act(params, obs, z, key, deterministic) -> action`` for one seed (vmappable).
    update: the un-jitted single-seed update ``(state, dataset, hparams, task_pool)``.
    trace_count: a callable returning how many times ``train_chunk`` was traced.
  """

  cfg: LearnerConfig
  init: Callable
  train_chunk: Callable
  encode: Callable
  act: Callable
  update: Callable
  per_task_losses: Callable
  trace_count: Callable


def make_learner(cfg: LearnerConfig) -> Learner:
  """Builds the networks, losses and compiled training program for ``cfg``."""
  policy = TanhGaussianPolicy(cfg.rl_hidden, cfg.action_size, log_std_max=cfg.log_std_max)
  critic = DoubleCritic(cfg.rl_hidden)
  dual = StateActionCritic(cfg.dual_hidden)
  encode = make_encode_fn(cfg)
  objective = make_objective(cfg)
  opt = _adam()
  target_entropy = -float(cfg.action_size)
  traces = {"train_chunk": 0}

  def init_one(key):
    ks = jax.random.split(key, 6)
    obs = jnp.zeros((1, cfg.obs_size))
    act = jnp.zeros((1, cfg.action_size))
    z = jnp.zeros((1, cfg.z_size))
    params = {
        "actor": policy.init(ks[0], obs, z),
        "critic": critic.init(ks[1], obs, z, act),
        "dual": dual.init(ks[2], obs, z, act),
        "log_alpha": jnp.zeros(()),
        "encoder": {},
    }
    if objective is not None:
      feat = context_feature_size(cfg.obs_size, cfg.action_size, cfg.use_next_obs)
      params["encoder"] = make_encoder(cfg).init(ks[3], jnp.zeros((1, cfg.context_size, feat)))
    params["critic_target"] = params["critic"]
    opt_states = {g: opt.init(params[g]) for g in _OPT_GROUPS}
    return TrainState(params=params, opt=opt_states, step=jnp.zeros((), jnp.int32),
                      key=jax.random.key_data(ks[5]))

  def alpha_of(params, hp):
    return jnp.exp(params["log_alpha"]) if cfg.learn_entropy else hp.entropy_alpha

  def per_task_losses(params, rl: Transition, z, key, hp):
    """Backbone losses of one task (used by ``update`` under vmap, and by tests)."""
    k1, k2, k3 = jax.random.split(key, 3)
    alpha = alpha_of(params, hp)
    c, _ = backbones.critic_loss(params["critic"], params["critic_target"], params["actor"],
                                 alpha, rl, z, k1, hp, policy=policy, critic=critic)
    a, _ = backbones.actor_loss(params["actor"], params["critic"], params["dual"], alpha, rl, z,
                                k2, hp, policy=policy, critic=critic, dual=dual,
                                use_brac=cfg.brac)
    d, _ = backbones.dual_loss(params["dual"], params["actor"], rl, z, k3, hp, policy=policy,
                               dual=dual)
    return {"critic": c, "actor": a, "dual": d}

  def update(state: TrainState, data: OfflineDataset, hp: HParams, task_pool):
    key = jax.random.wrap_key_data(state.key)
    key, k_mb, k_rep, k_dual, k_critic, k_actor = jax.random.split(key, 6)
    params, opt_state = dict(state.params), dict(state.opt)
    mb = sample_meta_batch(k_mb, data, task_pool, meta_batch_size=cfg.meta_batch_size,
                           context_size=cfg.context_size, context_mode=cfg.context_mode,
                           rl_batch_size=cfg.rl_batch_size, replace=cfg.task_replace)
    metrics = {}
    # 1. Representation objective -> encoder.
    if objective is not None:
      (rep_loss, aux), g = jax.value_and_grad(objective, has_aux=True)(params["encoder"], mb, hp,
                                                                      k_rep)
      params["encoder"], opt_state["encoder"] = _apply(opt, opt_state["encoder"], g,
                                                       params["encoder"], hp.encoder_lr)
      z = aux["z"]
      metrics.update(aux["metrics"])
      metrics["encoder/loss"] = rep_loss
    else:
      z = encode(params["encoder"], mb.context, mb.task_params)
    z = jax.lax.stop_gradient(z)
    metrics["encoder/z_spread"] = z_spread(z)
    task_keys = lambda k: jax.random.split(k, cfg.meta_batch_size)
    alpha = alpha_of(params, hp)

    def step_group(group, per_task_loss, key, lr):
      """One optimiser step of ``group`` on the task-mean of ``per_task_loss(p, rl, z, key)``,
      vmapped over the meta-batch; returns the task-mean aux."""

      def total(p):
        loss, aux = jax.vmap(lambda rl, zz, k: per_task_loss(p, rl, zz, k))(mb.rl, z,
                                                                           task_keys(key))
        return jnp.mean(loss), jax.tree.map(jnp.mean, aux)

      (_, aux), g = jax.value_and_grad(total, has_aux=True)(params[group])
      params[group], opt_state[group] = _apply(opt, opt_state[group], g, params[group], lr)
      return aux

    # 2. BRAC dual critic.
    if cfg.brac:
      metrics.update(step_group("dual", lambda p, rl, zz, k: backbones.dual_loss(
          p, params["actor"], rl, zz, k, hp, policy=policy, dual=dual), k_dual, hp.dual_lr))

    # 3. Critic.
    metrics.update(step_group("critic", lambda p, rl, zz, k: backbones.critic_loss(
        p, params["critic_target"], params["actor"], alpha, rl, zz, k, hp, policy=policy,
        critic=critic), k_critic, hp.critic_lr))

    # 4. Actor (and entropy temperature).
    m, logp = step_group("actor", lambda p, rl, zz, k: backbones.actor_loss(
        p, params["critic"], params["dual"], alpha, rl, zz, k, hp, policy=policy, critic=critic,
        dual=dual, use_brac=cfg.brac), k_actor, hp.actor_lr)
    metrics.update(m)
    if cfg.learn_entropy:
      g_alpha = -(jax.lax.stop_gradient(logp) + target_entropy) * jnp.exp(params["log_alpha"])
      params["log_alpha"], opt_state["log_alpha"] = _apply(
          opt, opt_state["log_alpha"], g_alpha, params["log_alpha"], hp.alpha_lr)
    metrics["actor/alpha"] = alpha_of(params, hp)

    # 5. Target critic.
    params["critic_target"] = optax.incremental_update(params["critic"], params["critic_target"],
                                                       hp.tau)
    new_state = TrainState(params=params, opt=opt_state, step=state.step + 1,
                           key=jax.random.key_data(key))
    return new_state, metrics

  def chunk(state, data, hp, task_pool):
    def body(s, _):
      return update(s, data, hp, task_pool)

    state, metrics = jax.lax.scan(body, state, None, length=cfg.steps_per_chunk)
    return state, jax.tree.map(jnp.mean, metrics)

  def traced_chunk(state, data, hp, task_pool):
    traces["train_chunk"] += 1  # runs only while tracing: a retrace detector
    return jax.vmap(chunk, in_axes=(0, None, 0, None))(state, data, hp, task_pool)

  train_chunk = jax.jit(traced_chunk, donate_argnums=(0,))

  def init(keys):
    return jax.jit(jax.vmap(init_one))(keys)

  def act(params, obs, z, key, deterministic: bool):
    mean, log_std = policy.apply(params["actor"], obs, z)
    if deterministic:
      return jnp.tanh(mean)
    return tanh_gaussian_sample(key, mean, log_std)[0]

  def encode_params(params, context, task_params):
    return encode(params["encoder"], context, task_params)

  return Learner(cfg=cfg, init=init, train_chunk=train_chunk, encode=encode_params, act=act,
                 update=update, per_task_losses=per_task_losses,
                 trace_count=lambda: traces["train_chunk"])


def broadcast_hparams(hp: HParams, num_seeds: int) -> HParams:
  """Gives every hyper-parameter a leading seed axis of size ``num_seeds``."""
  return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (num_seeds,)), hp)


def seed_keys(seed: int, num_seeds: int):
  """One independent key per seed, ``fold_in`` of the base seed."""
  base = jax.random.key(seed)
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


def unstack_seed(tree: Any, i: int) -> Any:
  return jax.tree.map(lambda x: x[i], tree)
