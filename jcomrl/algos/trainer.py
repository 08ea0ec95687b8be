"""The thin host loop around a learner: chunks of compiled steps, logging, checkpoints, resume.

``run_training`` calls ``learner.train_chunk`` (``steps_per_chunk`` updates for every seed per
dispatch), writes the per-seed chunk metrics to JSONL/TensorBoard, checkpoints every
``checkpoint_every`` steps and at the end, and resumes from the latest checkpoint of ``workdir``
when one exists. Non-finite losses stop the run with a message naming the step and the term;
the last good checkpoint is kept.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jcomrl import atomic, checkpoint, distributed
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import (
  FIRST_NONFINITE,
  Learner,
  broadcast_hparams,
  seed_keys,
  seed_sharding,
)
from jcomrl.data.dataset import OfflineDataset
from jcomrl.logging import MetricsWriter, Progress


class NonFiniteLossError(FloatingPointError):
  """A training metric (or the parameters) became NaN or infinite."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, "checkpoints")


def _truncate_metrics(workdir: str, step: int) -> None:
  """Drops ``metrics.jsonl`` rows after ``step`` (and a torn last line) before a resume.

  A run killed after its last checkpoint has logged chunks the resumed run will redo; keeping
  them would duplicate steps in the learning curves. The file is rewritten atomically.
  """
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue  # a line torn by the kill
      if int(row.get("step", 0)) <= step:
        keep.append(json.dumps(row) + "\n")
  with atomic.atomic_file(path) as f:
    f.writelines(keep)


def _non_finite_groups(params) -> list[str]:
  """Top-level parameter groups holding a NaN or an infinity."""
  if distributed.is_multiprocess():
    # Each process checks its own shards on the host, then one gather: no program per leaf.
    ok = [all(bool(np.all(np.isfinite(np.asarray(s.data)))) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.floating) for s in x.addressable_shards)
          for tree in params.values()]
    ok = distributed.all_ok(ok)
    return [group for group, good in zip(params, ok) if not good]
  bad = []
  for group, tree in params.items():
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype,
                                                                 jnp.floating)]
    if leaves and not bool(jax.device_get(jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(x)) for x in leaves])))):
      bad.append(group)
  return bad


def _check_metrics(metrics: dict, num_seeds: int, step: int, chunk: int, ckpt: str) -> None:
  """Raises NonFiniteLossError naming the non-finite terms and the first bad update; pops
  ``FIRST_NONFINITE`` from ``metrics``."""
  first = np.asarray(metrics.pop(FIRST_NONFINITE, np.full(num_seeds, -1)))
  bad = sorted((k for k, v in metrics.items() if not np.all(np.isfinite(v))),
               key=lambda k: (not k.endswith("loss"), k))  # loss terms first
  if bad or (first >= 0).any():
    hit = np.flatnonzero(first >= 0)
    where = (f"at step {step - chunk + 1 + int(first[hit].min())} (seed index "
             f"{', '.join(str(int(i)) for i in hit[first[hit] == first[hit].min()])})"
             if hit.size else f"in the chunk of steps {step - chunk + 1}-{step}")
    raise NonFiniteLossError(
        f"non-finite {', '.join(bad)} {where}; the last good checkpoint is kept in {ckpt} "
        f"(step {checkpoint.latest_step(ckpt)})")


def _check_params(params, step: int, chunk: int, ckpt: str) -> None:
  """A non-finite update can leave finite chunk metrics (computed before it) but broken
  parameters: never checkpoint those over the last good state."""
  broken = _non_finite_groups(params)
  if broken:
    raise NonFiniteLossError(
        f"non-finite parameters ({', '.join(broken)}) at step {step} (in the chunk of steps "
        f"{step - chunk + 1}-{step}); the last good checkpoint is kept in {ckpt} "
        f"(step {checkpoint.latest_step(ckpt)})")


class _NoWriter:
  """The metrics writer of a process other than 0 in a multi-process run (writes nothing)."""

  def write(self, step: int, metrics: dict) -> None:
    del step, metrics

  def close(self) -> None:
    pass


def _progress_line(metrics: dict, shown: Progress) -> str:
  values = {k: float(np.mean(v)) for k, v in metrics.items()
            if k.startswith("eval/") or k in ("critic/loss", "encoder/loss")}
  return shown.line(" ".join(f"{k}={v:.3f}" for k, v in values.items()))


def canonical_learner(cfg):
  """How a checkpoint's saved learner dict is compared with ``cfg``'s: through
  ``LearnerConfig.canonical_dict`` for the composable learner, as saved otherwise (MACAW)."""
  return LearnerConfig.canonical_dict if isinstance(cfg, LearnerConfig) else None


def _init_or_resume(learner: Learner, workdir: str, meta: dict, progress):
  """The fresh train state, or the latest checkpoint's; returns ``(state, step)``."""
  ckpt = checkpoint_dir(workdir)
  state = learner.init(seed_keys(meta["seed"], meta["num_seeds"]))
  if checkpoint.latest_step(ckpt) is None:
    return state, 0
  fresh = state
  state, saved = checkpoint.restore(ckpt, state, expect={k: meta[k] for k in
                                                         ("learner", "num_seeds", "seed")},
                                    canonical=canonical_learner(learner.cfg))
  # Orbax returns committed arrays; a fresh single-device state is uncommitted, and jit keys its
  # executables on that: give the restored state the fresh one's placement so a resumed run
  # reuses the compiled chunk instead of compiling it again.
  state = jax.tree.map(lambda r, f: r if f.committed else jax.device_put(np.asarray(r)),
                       state, fresh)
  step = int(saved["step"])
  if distributed.is_main():
    _truncate_metrics(workdir, step)
  logging.info("resumed from %s at step %d", ckpt, step)
  if progress:
    progress(f"resumed from step {step} (metrics.jsonl rows and TensorBoard events after step "
             f"{step} are dropped)")
  return state, step


def run_training(learner: Learner, dataset: OfflineDataset, hparams: HParams, train_rows, *,
                 workdir: str, seed: int, num_seeds: int, num_steps: int,
                 checkpoint_every: int, eval_fn: Callable | None = None, eval_every: int = 0,
                 meta: dict | None = None, progress: Callable[[str], None] | None = print):
  """Trains ``num_seeds`` seeds (vmapped) to ``num_steps`` updates; returns the final state.

  In a multi-process run (:mod:`jcomrl.distributed`) every process calls this with the same
  arguments: the seeds are sharded over every process's devices, process 0 writes the metrics,
  all processes write the checkpoints together (orbax), and ``eval_fn`` runs on every process.

  Args:
    eval_fn: optional ``eval_fn(state, step) -> dict`` of metrics, called every ``eval_every``
      steps and at the end (host side, between dispatches).
    meta: JSON config saved with every checkpoint (the learner structure is always added).
  """
  cfg = learner.cfg
  chunk = cfg.steps_per_chunk
  if num_steps % chunk or checkpoint_every % chunk or (eval_every and eval_every % chunk):
    raise ValueError(f"num_steps ({num_steps}), checkpoint_every ({checkpoint_every}) and "
                     f"eval_every ({eval_every}) must be multiples of steps_per_chunk ({chunk})")
  ckpt = checkpoint_dir(workdir)
  meta = dict(meta or {}, learner=cfg.structure_dict(), num_seeds=num_seeds, seed=seed)
  state, step = _init_or_resume(learner, workdir, meta, progress)
  hps, data, pool, pre_pool = _device_inputs(cfg, dataset, hparams, train_rows, num_seeds)
  pretrain_steps = getattr(cfg, "pretrain_steps", 0)
  # On resume, a new TensorBoard events file purges the killed run's events after ``step``.
  # Process 0 writes the logs of a multi-process run.
  writer = (MetricsWriter(workdir, purge_step=step + 1 if step else None)
            if distributed.is_main() else _NoWriter())
  # Honest rate: update time only (the first chunk, which compiles, and evaluations excluded).
  shown = Progress(num_steps, "step", unit="updates", done=step,
                   waiting="rate after the next chunk")
  compiling = True
  try:
    while step < num_steps:
      if compiling and progress:
        progress(f"compiling the training step ({chunk} updates per dispatch) ...")
      t_chunk = time.time()
      state, metrics = learner.train_chunk(state, data, hps,
                                           pre_pool if step < pretrain_steps else pool)
      step += chunk
      metrics = distributed.to_host(metrics)
      dt = time.time() - t_chunk
      shown.advance(chunk, seconds=dt, timed=not compiling)
      if compiling:
        compiling = False
        if progress:
          progress(f"compiled; first chunk done in {dt:.1f}s")
      _check_metrics(metrics, num_seeds, step, chunk, ckpt)
      _log_save_evaluate(state, metrics, step, num_steps=num_steps, chunk=chunk, ckpt=ckpt,
                         meta=meta, checkpoint_every=checkpoint_every, eval_fn=eval_fn,
                         eval_every=eval_every, writer=writer, shown=shown, progress=progress)
  finally:
    writer.close()
  return state


def _device_inputs(cfg, dataset: OfflineDataset, hparams: HParams, train_rows, num_seeds: int):
  """``(hparams per seed, dataset on device, task pool, pretrain task pool)`` of a run, replicated
  over the seed mesh in a multi-process run."""
  hps = broadcast_hparams(hparams, num_seeds)
  data = dataset.to_device()
  pool = jnp.asarray(train_rows, jnp.int32)
  # A pretrain stage (CORRO's CVAE) draws from every task row with pretrain_tasks="all".
  # Learners without a pretrain stage (MACAW) have no such fields.
  pretrain_steps = getattr(cfg, "pretrain_steps", 0)
  pre_pool = (jnp.arange(dataset.num_tasks, dtype=jnp.int32)
              if pretrain_steps and getattr(cfg, "pretrain_tasks", None) == "all" else pool)
  if distributed.is_multiprocess():  # global arrays replicated over the seed mesh
    mesh = seed_sharding(num_seeds).mesh
    hps, data, pool, pre_pool = distributed.replicate((hps, data, pool, pre_pool), mesh)
  return hps, data, pool, pre_pool


def _log_save_evaluate(state, metrics: dict, step: int, *, num_steps: int, chunk: int, ckpt: str,
                       meta: dict, checkpoint_every: int, eval_fn: Callable | None,
                       eval_every: int, writer, shown: Progress,
                       progress: Callable[[str], None] | None) -> None:
  """After a chunk: the metrics row, the checkpoint (every ``checkpoint_every`` steps, at the
  end and before an evaluation; never of non-finite parameters), the evaluation (every
  ``eval_every`` steps and at the end) and the progress line."""
  rate = shown.rate
  if rate is not None:
    metrics["time/updates_per_s"] = rate
  do_eval = eval_fn is not None and eval_every and (step % eval_every == 0
                                                    or step == num_steps)
  saving = step % checkpoint_every == 0 or step == num_steps or do_eval
  if saving:
    _check_params(state.params, step, chunk, ckpt)
  if not do_eval:
    # Logged before the checkpoint: a kill between the two must not lose the row of the
    # step a resume restarts from (rows after the restored step are dropped on resume).
    writer.write(step, metrics)
  # The checkpoint comes before an evaluation at the same step, so that a failing
  # evaluation never loses the step's state; the metrics row is logged either way.
  if saving:
    checkpoint.save(ckpt, step, state, meta)
  if do_eval:
    try:
      metrics.update(eval_fn(state, step))
    finally:
      writer.write(step, metrics)
  if progress:
    progress(_progress_line(metrics, shown))
