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
import functools
import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jcomrl.algos import backbones
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.objectives import make_representation, z_spread
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import sample_context, sample_meta_batch, sample_transitions
from jcomrl.nets.actor_critic import (
  DoubleCritic,
  StateActionCritic,
  TanhGaussianPolicy,
  tanh_gaussian_sample,
)
from jcomrl.types import MetaBatch, Transition

# Metric key of ``train_chunk``: per seed, the index in the chunk of the first update with a
# non-finite metric, or -1 (the other metrics are chunk means).
FIRST_NONFINITE = "health/first_nonfinite_update"

_OPT_GROUPS = ("encoder", "actor", "critic", "dual", "log_alpha", "pretrain")


@struct.dataclass
class TrainState:
  """Everything a learner carries between steps (one seed; stacked on a leading seed axis).

  ``params`` has the groups ``encoder`` (encoder + the objective's networks), ``pretrain``
  (CORRO's CVAE), ``actor``, ``critic``, ``critic_target``, ``actor_target`` (TD3+BC), ``dual``,
  ``log_alpha`` and ``brac_offset`` (the raw auto-tuned BRAC weight minus ``hp.brac_weight``;
  clipped to ``[0, hp.brac_weight_max]`` where used); ``opt`` an optax state per trained group;
  ``key`` is raw uint32 key data (checkpoint friendly); ``tasks`` the task indices of the last
  meta-batch, kept for ``cfg.task_resample_every`` updates.
  """

  params: dict
  opt: dict
  step: jnp.ndarray
  key: jnp.ndarray
  tasks: jnp.ndarray


def _adam():
  # The learning rate is overwritten from HParams at every update (a traced value), so sweeps
  # over it vmap instead of recompiling (optax issue #577).
  return optax.inject_hyperparams(optax.adam)(learning_rate=0.0)


def _with_lr(opt_state, lr):
  return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})


def _apply(opt, opt_state, grads, params, lr):
  updates, opt_state = opt.update(grads, _with_lr(opt_state, lr), params)
  return optax.apply_updates(params, updates), opt_state


def _select(flag, new, old):
  return jax.tree.map(lambda n, o: jnp.where(flag, n, o), new, old)


def seed_sharding(num_seeds: int) -> NamedSharding | None:
  """Shards a leading seed axis over ``gcd(num_seeds, #devices)`` devices (None on one)."""
  n = math.gcd(num_seeds, len(jax.devices()))
  if n <= 1:
    return None
  mesh = Mesh(np.asarray(jax.devices()[:n]), ("seed",))
  return NamedSharding(mesh, PartitionSpec("seed"))


@dataclasses.dataclass(frozen=True)
class Learner:
  """The compiled functions of one learner configuration.

  Attributes:
    cfg: the static configuration.
    init: ``init(keys [S]) -> TrainState`` with a leading seed axis, sharded over the devices
      when there are several (``seed_sharding``); ``train_chunk`` keeps that placement.
    train_chunk: ``(state, dataset, hparams [S], task_pool) -> (state, metrics [S])``, metrics
      being chunk means plus ``FIRST_NONFINITE``; the first
      ``cfg.pretrain_steps`` updates of a run (CORRO's CVAE) use a separate compiled stage.
    encode: ``encode(params, context, task_params, key=None) -> z`` for one seed (vmappable;
      stochastic encoders give their mean code without a key, a sampled code with one).
    act: ``act(params, obs, z, key, deterministic) -> action`` for one seed (vmappable).
    update: the un-jitted single-seed update ``(state, dataset, hparams, task_pool)``.
    per_task_losses: the backbone losses of one task (tests).
    dual_batches: ``(key, dataset, meta_batch) -> [Transition] * dual_steps``, the RL batches
      the dual steps of an update train on (used by ``update``; tests).
    trace_count: a callable returning how many times the main ``train_chunk`` was traced.
  """

  cfg: LearnerConfig
  init: Callable
  train_chunk: Callable
  encode: Callable
  act: Callable
  update: Callable
  per_task_losses: Callable
  dual_batches: Callable
  trace_count: Callable


def make_learner(cfg: LearnerConfig) -> Learner:
  """Builds the networks, losses and compiled training program for ``cfg``."""
  policy = TanhGaussianPolicy(cfg.rl_hidden, cfg.action_size, log_std_max=cfg.log_std_max)
  critic = DoubleCritic(cfg.rl_hidden)
  dual = StateActionCritic(cfg.dual_hidden)
  rep = make_representation(cfg)
  brac = cfg.backbone == "brac"
  td3 = cfg.backbone == "td3bc"
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
        "dual": dual.init(ks[2], obs, z, act) if brac else {},
        "log_alpha": jnp.zeros(()),
        "brac_offset": jnp.zeros(()),
        "encoder": rep.init(ks[3]),
        "pretrain": rep.pretrain_init(ks[4]) if rep.pretrain_init else {},
    }
    params["critic_target"] = params["critic"]
    params["actor_target"] = params["actor"] if td3 else {}
    opt_states = {g: opt.init(params[g]) for g in _OPT_GROUPS}
    return TrainState(params=params, opt=opt_states, step=jnp.zeros((), jnp.int32),
                      key=jax.random.key_data(ks[5]),
                      tasks=jnp.zeros((cfg.meta_batch_size,), jnp.int32))

  def alpha_of(params, hp):
    return jnp.exp(params["log_alpha"]) if cfg.learn_entropy else hp.entropy_alpha

  def brac_weight_of(params, hp):
    """The BRAC weight as used: the auto-tuned raw weight clipped to ``[0, max]`` (FOCAL
    sac.py:95-97 ``get_alpha``; CSRO sac.py:100-102)."""
    if not cfg.brac_auto_weight:
      return hp.brac_weight
    return jnp.clip(hp.brac_weight + params["brac_offset"], 0.0, hp.brac_weight_max)

  def critic_fn(params, hp, dual_params=None):
    """The per-task critic loss ``(critic_params, rl, z, key) -> (loss, metrics)``; D(s) of the
    value penalty from ``dual_params`` (default: the current dual critic)."""
    if td3:
      return lambda p, rl, zz, k: backbones.td3_critic_loss(
          p, params["critic_target"], params["actor_target"], rl, zz, k, hp, policy=policy,
          critic=critic)
    penalty = None
    if brac and cfg.brac_penalty in ("value", "both"):
      d_params = params["dual"] if dual_params is None else dual_params
      penalty = (dual, d_params, brac_weight_of(params, hp))
    alpha = alpha_of(params, hp)
    return lambda p, rl, zz, k: backbones.critic_loss(
        p, params["critic_target"], params["actor"], alpha, rl, zz, k, hp, policy=policy,
        critic=critic, value_penalty=penalty, soft_target=cfg.soft_target)

  def actor_fn(params, hp, dual_params=None):
    if td3:
      return lambda p, rl, zz, k: backbones.td3bc_actor_loss(p, params["critic"], rl, zz, k, hp,
                                                             policy=policy, critic=critic,
                                                             bc=cfg.td3bc_bc)
    w = brac_weight_of(params, hp) if brac and cfg.brac_penalty in ("policy", "both") else None
    d_params = params["dual"] if dual_params is None else dual_params
    # brac_penalty="none": the dual critic is trained but D is never evaluated in the actor (no
    # KL metric either), so its two forward passes and their gradient are not compiled at all.
    uses_d = brac and cfg.brac_penalty != "none"
    return lambda p, rl, zz, k: backbones.actor_loss(
        p, params["critic"], d_params, alpha_of(params, hp), rl, zz, k, hp, policy=policy,
        critic=critic, dual=dual if uses_d else None, brac_weight=w,
        div_grad=cfg.brac_actor_div_grad)

  def dual_fn(params, hp):
    return lambda p, rl, zz, k: backbones.dual_loss(p, params["actor"], rl, zz, k, hp,
                                                    policy=policy, dual=dual, gp=cfg.brac_gp)

  def per_task_losses(params, rl: Transition, z, key, hp):
    """Backbone losses of one task (used by ``update`` under vmap, and by tests)."""
    k1, k2, k3 = jax.random.split(key, 3)
    out = {"critic": critic_fn(params, hp)(params["critic"], rl, z, k1)[0],
           "actor": actor_fn(params, hp)(params["actor"], rl, z, k2)[0]}
    if brac:
      out["dual"] = dual_fn(params, hp)(params["dual"], rl, z, k3)[0]
    return out

  def checked(mb: MetaBatch) -> MetaBatch:
    """Trace-time shape checks (chex; no runtime cost): a dataset whose arrays disagree with
    the learner's sizes fails here, naming the shapes, instead of deep inside a loss."""
    b = cfg.meta_batch_size
    for part in (mb.context, mb.rl):
      part.check()
      chex.assert_shape(part.obs, (b, None, cfg.obs_size))
      chex.assert_shape(part.action, (b, None, cfg.action_size))
    chex.assert_shape(mb.rl.reward, (b, cfg.rl_batch_size))
    chex.assert_shape(mb.task_params, (b, cfg.task_param_size))
    return mb

  def sample(key, data, task_pool):
    return checked(sample_meta_batch(
        key, data, task_pool, meta_batch_size=cfg.meta_batch_size,
        context_size=cfg.context_size, context_mode=cfg.context_mode,
        rl_batch_size=cfg.rl_batch_size, replace=cfg.task_replace))

  def sample_for_tasks(key, data, tasks):
    """A fresh context and RL batch for given task indices (tasks kept across updates)."""
    k_ctx, k_rl = jax.random.split(key)
    return checked(MetaBatch(
        task_index=tasks, task_label=tasks, task_params=data.task_params[tasks],
        context=sample_context(k_ctx, data, tasks, size=cfg.context_size, mode=cfg.context_mode),
        rl=sample_transitions(k_rl, data, tasks, cfg.rl_batch_size)))

  def dual_batches(key, data, mb):
    """The dual steps' RL batches: the update's own, then with ``dual_fresh_batches`` a fresh
    draw of the same tasks for each further step (FOCAL sac.py:201-203 ``_optimize_c``)."""
    if not cfg.dual_fresh_batches:
      return [mb.rl] * cfg.dual_steps
    return [mb.rl] + [sample_transitions(jax.random.fold_in(key, i), data, mb.task_index,
                                         cfg.rl_batch_size) for i in range(1, cfg.dual_steps)]

  def update(state: TrainState, data: OfflineDataset, hp: HParams, task_pool):
    key = jax.random.wrap_key_data(state.key)
    key, k_mb, k_rep, k_dual, k_critic, k_actor = jax.random.split(key, 6)
    params, opt_state = dict(state.params), dict(state.opt)
    if cfg.task_resample_every > 1:  # UNICORN: one draw of tasks per iteration
      key, k_tasks = jax.random.split(key)
      pick = jax.random.choice(k_tasks, task_pool.shape[0], (cfg.meta_batch_size,),
                               replace=cfg.task_replace)
      tasks = jnp.where(state.step % cfg.task_resample_every == 0, task_pool[pick], state.tasks)
      mb = sample_for_tasks(k_mb, data, tasks)
    else:
      mb = sample(k_mb, data, task_pool)
    metrics = {}
    task_keys = lambda k: jax.random.split(k, cfg.meta_batch_size)

    # 1. Representation objective (its gradient is applied after the critic's, see 3).
    enc_grad = None
    if rep.loss is not None:
      loss_fn = rep.loss
      if cfg.uses_cvae:
        loss_fn = functools.partial(rep.loss, pretrain_params=params["pretrain"])
      (rep_loss, aux), enc_grad = jax.value_and_grad(loss_fn, has_aux=True)(
          params["encoder"], mb, hp, k_rep)
      z = aux["z"]
      metrics.update(aux["metrics"])
      metrics["encoder/loss"] = rep_loss
    else:
      z = rep.encode(params["encoder"], mb.context, mb.task_params, k_rep)
    z = jax.lax.stop_gradient(z)
    metrics["encoder/z_spread"] = z_spread(z)

    def batched(per_task_loss, p, zz, key, rl=None):
      rl = mb.rl if rl is None else rl
      loss, aux = jax.vmap(lambda b, z1, k: per_task_loss(p, b, z1, k))(rl, zz, task_keys(key))
      return jnp.mean(loss), jax.tree.map(jnp.mean, aux)

    def step_group(group, per_task_loss, key, lr, rl=None):
      """One optimiser step of ``group`` on the task-mean of ``per_task_loss(p, rl, z, key)``,
      vmapped over the meta-batch; returns the task-mean aux."""
      (_, aux), g = jax.value_and_grad(lambda p: batched(per_task_loss, p, z, key, rl),
                                       has_aux=True)(params[group])
      params[group], opt_state[group] = _apply(opt, opt_state[group], g, params[group], lr)
      return aux

    # 2. BRAC dual critic (dual_steps updates, FOCAL/UNICORN use 3). brac_div_before_dual: the D
    # of the critic target, actor loss and weight update (3-4) uses the dual critic as it was
    # before these steps (FOCAL sac.py:278-286, UNICORN train_offline_FOCAL.py:356-364). FOCAL
    # (torch 1.2, in-place .data updates) back-propagates the actor's D through the already
    # updated c weights; we use the pre-step weights for value and gradient alike.
    div_params = None
    if brac:
      if cfg.brac_div_before_dual:
        div_params = params["dual"]
      k_dual_rl = None
      if cfg.dual_fresh_batches and cfg.dual_steps > 1:
        key, k_dual_rl = jax.random.split(key)
      for i, rl_i in enumerate(dual_batches(k_dual_rl, data, mb)):
        metrics.update(step_group("dual", dual_fn(params, hp), jax.random.fold_in(k_dual, i),
                                  hp.dual_lr, rl_i))

    # 3. Critic; for supervised / CORRO it also trains (part of) the encoder through z.
    critic_loss = critic_fn(params, hp, div_params)
    if rep.critic_mask is None:
      metrics.update(step_group("critic", critic_loss, k_critic, hp.critic_lr))
    else:
      def total(pc, pe):
        zc = rep.encode(pe, mb.context, mb.task_params, k_rep)
        return batched(critic_loss, pc, zc, k_critic)

      (_, aux), (g_c, g_e) = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(
          params["critic"], params["encoder"])
      params["critic"], opt_state["critic"] = _apply(opt, opt_state["critic"], g_c,
                                                     params["critic"], hp.critic_lr)
      g_e = jax.tree.map(lambda g, m: g if m else jnp.zeros_like(g), g_e,
                         rep.critic_mask(params["encoder"]))
      enc_grad = g_e if enc_grad is None else jax.tree.map(jnp.add, enc_grad, g_e)
      metrics.update(aux)
    if enc_grad is not None:
      params["encoder"], opt_state["encoder"] = _apply(opt, opt_state["encoder"], enc_grad,
                                                       params["encoder"], hp.encoder_lr)

    # 4. Actor (+ entropy temperature, auto-tuned BRAC weight); TD3+BC: delayed actor + targets.
    if td3:
      old = (params["actor"], opt_state["actor"])
      metrics.update(step_group("actor", actor_fn(params, hp), k_actor, hp.actor_lr))
      do = (state.step % cfg.policy_delay) == 0
      params["actor"], opt_state["actor"] = _select(do, (params["actor"], opt_state["actor"]), old)
      params["actor_target"] = _select(do, optax.incremental_update(
          params["actor"], params["actor_target"], hp.tau), params["actor_target"])
      params["critic_target"] = _select(do, optax.incremental_update(
          params["critic"], params["critic_target"], hp.tau), params["critic_target"])
    else:
      m, logp, kl = step_group("actor", actor_fn(params, hp, div_params), k_actor, hp.actor_lr)
      metrics.update(m)
      if cfg.learn_entropy:
        g_alpha = -(jax.lax.stop_gradient(logp) + target_entropy) * jnp.exp(params["log_alpha"])
        params["log_alpha"], opt_state["log_alpha"] = _apply(
            opt, opt_state["log_alpha"], g_alpha, params["log_alpha"], hp.alpha_lr)
      metrics["actor/alpha"] = alpha_of(params, hp)
      if brac:
        if cfg.brac_auto_weight:
          # FOCAL sac.py:377-382, CSRO sac.py:400-405: w <- w + lr (D - target), w kept raw;
          # brac_weight_projected: w <- clip(w + lr (D - target), 0, w_max).
          w = hp.brac_weight + params["brac_offset"] + hp.brac_weight_lr * (kl - hp.brac_target_div)
          if cfg.brac_weight_projected:
            w = jnp.clip(w, 0.0, hp.brac_weight_max)
          params["brac_offset"] = w - hp.brac_weight
          metrics["actor/brac_weight_raw"] = w
        metrics["actor/brac_weight"] = brac_weight_of(params, hp)
      # 5. Target critic.
      params["critic_target"] = optax.incremental_update(params["critic"],
                                                         params["critic_target"], hp.tau)
    new_state = TrainState(params=params, opt=opt_state, step=state.step + 1,
                           key=jax.random.key_data(key), tasks=mb.task_index)
    return new_state, metrics

  def pretrain_update(state: TrainState, data: OfflineDataset, hp: HParams, task_pool):
    """CORRO stage 1: one CVAE step on the pooled RL batches of a meta-batch of train tasks."""
    key = jax.random.wrap_key_data(state.key)
    key, k_mb, k_loss = jax.random.split(key, 3)
    mb = sample(k_mb, data, task_pool)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), mb.rl)
    (_, metrics), g = jax.value_and_grad(rep.pretrain_loss, has_aux=True)(
        state.params["pretrain"], flat, hp, k_loss)
    params, opt_state = dict(state.params), dict(state.opt)
    params["pretrain"], opt_state["pretrain"] = _apply(opt, opt_state["pretrain"], g,
                                                       params["pretrain"], hp.encoder_lr)
    return state.replace(params=params, opt=opt_state, step=state.step + 1,
                         key=jax.random.key_data(key)), metrics

  def make_chunk(step_fn):
    def chunk(state, data, hp, task_pool):
      state, metrics = jax.lax.scan(lambda s, _: step_fn(s, data, hp, task_pool), state, None,
                                    length=cfg.steps_per_chunk)
      # FIRST_NONFINITE lets a diverging run name its exact update, not only its chunk.
      bad = ~jnp.all(jnp.stack([jnp.isfinite(v) for v in jax.tree.leaves(metrics)]), axis=0)
      first = jnp.where(jnp.any(bad), jnp.argmax(bad), -1).astype(jnp.int32)
      return state, {**jax.tree.map(jnp.mean, metrics), FIRST_NONFINITE: first}

    return jax.vmap(chunk, in_axes=(0, None, 0, None))

  main_chunk = make_chunk(update)

  def traced_chunk(state, data, hp, task_pool):
    traces["train_chunk"] += 1  # runs only while tracing: a retrace detector
    return main_chunk(state, data, hp, task_pool)

  main_jit = jax.jit(traced_chunk, donate_argnums=(0,))
  pretrain_jit = jax.jit(make_chunk(pretrain_update), donate_argnums=(0,))

  def train_chunk(state, data, hp, task_pool):
    if cfg.pretrain_steps and int(np.min(jax.device_get(state.step))) < cfg.pretrain_steps:
      return pretrain_jit(state, data, hp, task_pool)
    return main_jit(state, data, hp, task_pool)

  def init(keys):
    sharding = seed_sharding(int(keys.shape[0]))
    return jax.jit(jax.vmap(init_one), out_shardings=sharding)(keys)

  def act(params, obs, z, key, deterministic: bool):
    mean, log_std = policy.apply(params["actor"], obs, z)
    if deterministic or td3:
      return jnp.tanh(mean)
    return tanh_gaussian_sample(key, mean, log_std)[0]

  def encode_params(params, context, task_params, key=None):
    return rep.encode(params["encoder"], context, task_params, key)

  return Learner(cfg=cfg, init=init, train_chunk=train_chunk, encode=encode_params, act=act,
                 update=update, per_task_losses=per_task_losses, dual_batches=dual_batches,
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
