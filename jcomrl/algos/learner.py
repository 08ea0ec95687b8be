"""The generic COMRL learner: ``make_learner(cfg)`` -> one compiled training program.

    learner = make_learner(cfg)
    state = learner.init(seed_keys)                       # leading seed axis [S]
    state, metrics = learner.train_chunk(state, dataset, hparams, task_pool)

``train_chunk`` is ``jit(vmap_seeds(scan(update, steps_per_chunk)))``: one dispatch runs
``steps_per_chunk`` updates for every seed (``seed_mode="loop"``: one single-seed dispatch per
seed, the default on a one-device CPU, see :data:`SEED_MODES`). An update reads: sample a meta-batch on device ->
representation step (the objective's loss and gradient, :mod:`jcomrl.algos.objectives`) ->
backbone step (:mod:`jcomrl.algos.backbones`; its losses ``vmap``-ed over the meta-batch's tasks
with the codes detached) -> encoder step (the objective's gradient plus, for objectives that
let the critic train the encoder, the critic loss's gradient back-propagated from z). The
dataset, the hyper-parameters (leading seed axis) and the task pool are arguments, never
closures; the train state is donated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jcomrl import distributed
from jcomrl.algos import compose
from jcomrl.algos.backbones import apply_gradient, make_backbone, optimiser_init
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.objectives import code_size, make_representation, z_spread
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import (
  sample_context,
  sample_meta_batch,
  sample_segments,
  sample_transitions,
)
from jcomrl.types import MetaBatch, Transition

# Metric key of ``train_chunk``: per seed, the index in the chunk of the first update with a
# non-finite metric, or -1 (the other metrics are chunk means).
FIRST_NONFINITE = "health/first_nonfinite_update"

# How ``train_chunk`` runs several seeds: "vmap" (one program over the seed axis, sharded over
# the devices), "loop" (one single-seed program called per seed; the train state keeps its
# seed axis), "auto" = "loop" on a single CPU device, else "vmap". Measured side by side on a
# quiet 2-core CPU, 3 seeds at the papers' scale (benchmarks/results/learner_seed_modes_cpu.json):
# the loop gives +16 % (unicorn_ss) and +23 % (unicorn_ss+dual3) aggregate updates/s, because
# XLA's CPU backend runs the batched seed programs' small matmuls less efficiently. The two modes
# compute the same updates (equal up to float rounding; tests/test_algos.py).
SEED_MODES = ("auto", "vmap", "loop")


def resolve_seed_mode(seed_mode: str) -> str:
  if seed_mode not in SEED_MODES:
    raise ValueError(f"unknown seed_mode {seed_mode!r}; expected one of {SEED_MODES}")
  if seed_mode == "auto":
    return "loop" if jax.default_backend() == "cpu" and len(jax.devices()) == 1 else "vmap"
  return seed_mode

@struct.dataclass
class TrainState:
  """Everything a learner carries between steps (one seed; stacked on a leading seed axis).

  ``params`` holds the backbone's groups (SAC: ``actor``, ``critic``, ``critic_target``,
  ``log_alpha`` if learned; BRAC adds ``dual`` and ``brac_offset``; TD3+BC ``actor_target``),
  ``encoder`` (the context encoder and the objective's networks; not for the oracle) and
  ``pretrain`` (a pretrain stage's networks: CORRO's CVAE); ``opt`` the Adam state of each
  trained group; ``key`` is raw uint32 key data (checkpoint friendly); ``tasks`` the task
  indices of the last meta-batch, kept for ``cfg.task_resample_every`` updates.
  """

  params: dict
  opt: dict
  step: jnp.ndarray
  key: jnp.ndarray
  tasks: jnp.ndarray


def seed_sharding(num_seeds: int) -> NamedSharding | None:
  """Shards a leading seed axis over ``gcd(num_seeds, #devices)`` devices (None on one).

  In a multi-process run (:mod:`jcomrl.distributed`) the mesh spans every process's devices,
  ``("seed", "replica")`` of shape ``(gcd, #devices / gcd)`` with each process's devices
  contiguous: the seeds are split over the processes (and their devices), replicated where
  the seeds do not divide the devices, and every process takes part (with one seed too).
  """
  if jax.process_count() > 1:
    devices = distributed.ordered_devices()
    n = math.gcd(num_seeds, len(devices))
    mesh = Mesh(np.asarray(devices).reshape(n, len(devices) // n), ("seed", "replica"))
    return NamedSharding(mesh, PartitionSpec("seed"))
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
    act: ``act(params, obs, z, key, deterministic) -> action`` for one seed (vmappable); for a
      ``stateful`` backbone (the decision transformer) a
      :class:`~jcomrl.algos.backbones.base.Policy` (``init`` / ``step``), which the rollouts of
      :mod:`jcomrl.eval.rollout` accept in place of ``act``.
    update: the un-jitted single-seed update ``(state, dataset, hparams, task_pool)``.
    per_task_losses: the backbone losses of one task (tests).
    rl_batches: ``(key, dataset, meta_batch) -> [Transition]``, the RL batches an update's
      backbone trains on: the meta-batch's, then ``backbone.extra_batches`` fresh draws of the
      same tasks (BRAC's further dual steps).
    backbone / representation: the parts (:mod:`jcomrl.algos.backbones`, ``.objectives``).
    trace_count: a callable returning how many times the main ``train_chunk`` was traced.
  """

  cfg: LearnerConfig
  init: Callable
  train_chunk: Callable
  encode: Callable
  act: Callable
  update: Callable
  per_task_losses: Callable
  rl_batches: Callable
  trace_count: Callable
  backbone: Any
  representation: Any

  @property
  def z_size(self) -> int:
    """The size of the task code z (the representation objective's ``code_size``)."""
    return code_size(self.cfg)


class _Program:
  """The single-seed pieces of one learner configuration (what ``make_learner`` compiles)."""

  def __init__(self, cfg: LearnerConfig):
    self.cfg = compose.check(cfg)
    self.rep = make_representation(cfg)
    self.backbone = make_backbone(cfg)
    # The encoder group exists when something trains it (an objective's loss or the critic).
    self.trains_encoder = self.rep.loss is not None or self.rep.critic_mask is not None

  def init_one(self, key) -> TrainState:
    ks = jax.random.split(key, 6)  # actor, critic, auxiliary nets, encoder, pretrain, state
    params = self.backbone.init(ks[:3])
    if self.trains_encoder:
      params["encoder"] = self.rep.init(ks[3])
    if self.rep.pretrain_init is not None:
      params["pretrain"] = self.rep.pretrain_init(ks[4])
    groups = self.backbone.trained_groups() + tuple(g for g in ("encoder", "pretrain")
                                                    if g in params)
    return TrainState(params=params, opt={g: optimiser_init(params[g]) for g in groups},
                      step=jnp.zeros((), jnp.int32), key=jax.random.key_data(ks[5]),
                      tasks=jnp.zeros((self.cfg.meta_batch_size,), jnp.int32))

  def checked(self, mb: MetaBatch) -> MetaBatch:
    """Trace-time shape checks (chex; no runtime cost): a dataset whose arrays disagree with
    the learner's sizes fails here, naming the shapes, instead of deep inside a loss."""
    cfg, b = self.cfg, self.cfg.meta_batch_size
    for part in (mb.context, mb.rl):
      part.check()
      chex.assert_shape(part.obs, (b, None, cfg.obs_size))
      chex.assert_shape(part.action, (b, None, cfg.action_size))
    chex.assert_shape(mb.rl.reward, (b, cfg.rl_batch_size))
    chex.assert_shape(mb.task_params, (b, cfg.task_param_size))
    return mb

  def sample(self, key, data, task_pool) -> MetaBatch:
    cfg = self.cfg
    return self.checked(sample_meta_batch(
        key, data, task_pool, meta_batch_size=cfg.meta_batch_size,
        context_size=cfg.context_size, context_mode=cfg.context_mode,
        rl_batch_size=cfg.rl_batch_size, replace=cfg.task_replace))

  def meta_batch(self, key, k_mb, state: TrainState, data, task_pool):
    """This update's meta-batch and the remaining key. UNICORN keeps one draw of tasks for
    ``task_resample_every`` updates (contexts and RL batches are fresh every update)."""
    cfg = self.cfg
    if cfg.task_resample_every <= 1:
      return self.sample(k_mb, data, task_pool), key
    key, k_tasks = jax.random.split(key)
    pick = jax.random.choice(k_tasks, task_pool.shape[0], (cfg.meta_batch_size,),
                             replace=cfg.task_replace)
    tasks = jnp.where(state.step % cfg.task_resample_every == 0, task_pool[pick], state.tasks)
    k_ctx, k_rl = jax.random.split(k_mb)
    return self.checked(MetaBatch(
        task_index=tasks, task_label=tasks, task_params=data.task_params[tasks],
        context=sample_context(k_ctx, data, tasks, size=cfg.context_size, mode=cfg.context_mode),
        rl=sample_transitions(k_rl, data, tasks, cfg.rl_batch_size))), key

  def rl_batches(self, key, data, mb: MetaBatch) -> list[Transition]:
    """The meta-batch's RL batch, then ``extra_batches`` fresh draws of the same tasks (FOCAL
    sac.py:201-203 ``_optimize_c``: each further dual step samples its own batch). A backbone
    with ``batch_kind = "segments"`` gets ``rl_batch_size`` trajectory windows per task instead
    (``Segment [B, N, K]`` with the backbone's ``segment_length`` K and ``return_scale``, drawn
    with ``key``)."""
    if self.backbone.batch_kind == "segments":
      bb = self.backbone
      return [sample_segments(key, data, mb.task_index, self.cfg.rl_batch_size,
                              bb.segment_length, bb.return_scale)]
    return [mb.rl] + [sample_transitions(jax.random.fold_in(key, i), data, mb.task_index,
                                         self.cfg.rl_batch_size)
                      for i in range(1, 1 + self.backbone.extra_batches)]

  def representation_step(self, params, mb: MetaBatch, hp: HParams, key):
    """The objective's gradient on the encoder group (None without a loss), the detached
    codes ``[B, Z]`` and the metrics."""
    if self.rep.loss is None:
      grad, metrics = None, {}
      z = self.rep.encode(params.get("encoder"), mb.context, mb.task_params, key)
    else:
      (loss, aux), grad = jax.value_and_grad(self.rep.loss, has_aux=True)(
          params["encoder"], mb, hp, key, params.get("pretrain"))
      z, metrics = aux["z"], {**aux["metrics"], "encoder/loss": loss}
    z = jax.lax.stop_gradient(z)
    return grad, z, {**metrics, "encoder/z_spread": z_spread(z)}

  def critic_encoder_grad(self, enc_params, mb: MetaBatch, key, dz):
    """The critic loss's gradient on the encoder leaves the objective lets it train:
    ``dL/dz`` (from the backbone) back-propagated through the same ``encode`` call."""
    _, vjp = jax.vjp(lambda p: self.rep.encode(p, mb.context, mb.task_params, key), enc_params)
    (grad,) = vjp(dz)
    return jax.tree.map(lambda g, m: g if m else jnp.zeros_like(g), grad,
                        self.rep.critic_mask(enc_params))

  def update(self, state: TrainState, data: OfflineDataset, hp: HParams, task_pool):
    key = jax.random.wrap_key_data(state.key)
    key, k_mb, k_rep, *k_backbone = jax.random.split(key, 6)
    mb, key = self.meta_batch(key, k_mb, state, data, task_pool)
    rls = [mb.rl]
    if self.backbone.extra_batches or self.backbone.batch_kind == "segments":
      key, k_rl = jax.random.split(key)
      rls = self.rl_batches(k_rl, data, mb)
    if self.cfg.timeout_as_terminal and self.backbone.batch_kind != "segments":
      rls = [r.replace(terminal=jnp.maximum(r.terminal, r.timeout)) for r in rls]
    enc_grad, z, metrics = self.representation_step(state.params, mb, hp, k_rep)
    through_critic = self.rep.critic_mask is not None
    params, opt, m_backbone, dz = self.backbone.update(
        state.params, state.opt, rls, z, hp, k_backbone, state.step, through_critic)
    if through_critic:
      g = self.critic_encoder_grad(state.params["encoder"], mb, k_rep, dz)
      enc_grad = g if enc_grad is None else jax.tree.map(jnp.add, enc_grad, g)
    if enc_grad is not None:
      enc, opt_enc = apply_gradient(enc_grad, params["encoder"], opt["encoder"], hp.encoder_lr)
      params, opt = {**params, "encoder": enc}, {**opt, "encoder": opt_enc}
    new_state = TrainState(params=params, opt=opt, step=state.step + 1,
                           key=jax.random.key_data(key), tasks=mb.task_index)
    return new_state, {**metrics, **m_backbone}

  def pretrain_update(self, state: TrainState, data: OfflineDataset, hp: HParams, task_pool):
    """A pretrain step (CORRO's CVAE) on the pooled RL batches of a meta-batch of train tasks."""
    key = jax.random.wrap_key_data(state.key)
    key, k_mb, k_loss = jax.random.split(key, 3)
    mb = self.sample(k_mb, data, task_pool)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), mb.rl)
    (_, metrics), g = jax.value_and_grad(self.rep.pretrain_loss, has_aux=True)(
        state.params["pretrain"], flat, hp, k_loss)
    new, opt_pre = apply_gradient(g, state.params["pretrain"], state.opt["pretrain"],
                                  hp.encoder_lr)
    return state.replace(params={**state.params, "pretrain": new},
                         opt={**state.opt, "pretrain": opt_pre}, step=state.step + 1,
                         key=jax.random.key_data(key)), metrics

  def chunk(self, step_fn):
    """``vmap_seeds(scan(step_fn, steps_per_chunk))`` with the chunk-mean metrics."""
    def run(state, data, hp, task_pool):
      state, metrics = jax.lax.scan(lambda s, _: step_fn(s, data, hp, task_pool), state, None,
                                    length=self.cfg.steps_per_chunk)
      # FIRST_NONFINITE lets a diverging run name its exact update, not only its chunk.
      bad = ~jnp.all(jnp.stack([jnp.isfinite(v) for v in jax.tree.leaves(metrics)]), axis=0)
      first = jnp.where(jnp.any(bad), jnp.argmax(bad), -1).astype(jnp.int32)
      return state, {**jax.tree.map(jnp.mean, metrics), FIRST_NONFINITE: first}

    return jax.vmap(run, in_axes=(0, None, 0, None))


def _seed_slice(tree, i: int):
  return jax.tree.map(lambda x: x[i:i + 1], tree)


@jax.jit
def _concat_seeds(parts):
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


def make_learner(cfg: LearnerConfig, seed_mode: str = "auto") -> Learner:
  """Builds the networks, losses and compiled training program for ``cfg``; ``seed_mode``: how
  several seeds are run (:data:`SEED_MODES`)."""
  loop = resolve_seed_mode(seed_mode) == "loop"
  prog = _Program(cfg)
  traces = {"train_chunk": 0}
  main_chunk = prog.chunk(prog.update)

  def traced_chunk(state, data, hp, task_pool):
    traces["train_chunk"] += 1  # runs only while tracing: a retrace detector
    return main_chunk(state, data, hp, task_pool)

  main_jit = jax.jit(traced_chunk, donate_argnums=(0,))
  pretrain_jit = jax.jit(prog.chunk(prog.pretrain_update), donate_argnums=(0,))

  def train_chunk(state, data, hp, task_pool):
    fn = main_jit
    if cfg.pretrain_steps and int(np.min(distributed.to_host(state.step))) < cfg.pretrain_steps:
      fn = pretrain_jit
    num_seeds = int(state.step.shape[0])
    if not loop or num_seeds == 1:
      return fn(state, data, hp, task_pool)
    outs = [fn(_seed_slice(state, i), data, _seed_slice(hp, i), task_pool)
            for i in range(num_seeds)]
    return _concat_seeds(outs)

  def init(keys):
    sharding = seed_sharding(int(keys.shape[0]))
    return jax.jit(jax.vmap(prog.init_one), out_shardings=sharding)(keys)

  def encode(params, context, task_params, key=None):
    return prog.rep.encode(params.get("encoder"), context, task_params, key)

  return Learner(cfg=cfg, init=init, train_chunk=train_chunk, encode=encode,
                 act=prog.backbone.policy() if prog.backbone.stateful else prog.backbone.act,
                 update=prog.update,
                 per_task_losses=prog.backbone.per_task_losses, rl_batches=prog.rl_batches,
                 trace_count=lambda: traces["train_chunk"], backbone=prog.backbone,
                 representation=prog.rep)


def broadcast_hparams(hp: HParams, num_seeds: int) -> HParams:
  """Gives every hyper-parameter a leading seed axis of size ``num_seeds``."""
  return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (num_seeds,)), hp)


def seed_keys(seed: int, num_seeds: int):
  """One independent key per seed, ``fold_in`` of the base seed."""
  base = jax.random.key(seed)
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


def unstack_seed(tree: Any, i: int) -> Any:
  return jax.tree.map(lambda x: x[i], tree)
