"""The thin host loop around a learner: chunks of compiled steps, logging, checkpoints, resume.

``run_training`` calls ``learner.train_chunk`` (``steps_per_chunk`` updates for every seed per
dispatch), writes the per-seed chunk metrics to JSONL/TensorBoard, checkpoints every
``checkpoint_every`` steps and at the end, and resumes from the latest checkpoint of ``workdir``
when one exists. Non-finite losses stop the run with a message naming the step and the term;
the last good checkpoint is kept.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jcomrl import checkpoint
from jcomrl.algos.config import HParams
from jcomrl.algos.learner import Learner, broadcast_hparams, seed_keys
from jcomrl.data.dataset import OfflineDataset
from jcomrl.logging import MetricsWriter


class NonFiniteLossError(FloatingPointError):
  """A training metric became NaN or infinite."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, "checkpoints")


def run_training(learner: Learner, dataset: OfflineDataset, hparams: HParams, train_rows, *,
                 workdir: str, seed: int, num_seeds: int, num_steps: int,
                 checkpoint_every: int, eval_fn: Callable | None = None, eval_every: int = 0,
                 meta: dict | None = None, progress: Callable[[str], None] | None = print):
  """Trains ``num_seeds`` seeds (vmapped) to ``num_steps`` updates; returns the final state.

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
  state = learner.init(seed_keys(seed, num_seeds))
  step = 0
  if checkpoint.latest_step(ckpt) is not None:
    state, saved = checkpoint.restore(ckpt, state, expect={"learner": meta["learner"],
                                                           "num_seeds": num_seeds,
                                                           "seed": seed})
    step = int(saved["step"])
    logging.info("resumed from %s at step %d", ckpt, step)
    if progress:
      progress(f"resumed from step {step}")
  hps = broadcast_hparams(hparams, num_seeds)
  data = dataset.to_device()
  pool = jnp.asarray(train_rows, jnp.int32)
  writer = MetricsWriter(workdir)
  t0, done0 = time.time(), step
  try:
    while step < num_steps:
      state, metrics = learner.train_chunk(state, data, hps, pool)
      step += chunk
      metrics = jax.device_get(metrics)
      bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v)))
      if bad:
        raise NonFiniteLossError(
            f"non-finite {', '.join(bad)} in the chunk ending at step {step}; the last good "
            f"checkpoint is kept in {ckpt} (step {checkpoint.latest_step(ckpt)})")
      rate = (step - done0) / max(time.time() - t0, 1e-9)
      metrics["time/updates_per_s"] = rate
      if eval_fn is not None and eval_every and (step % eval_every == 0 or step == num_steps):
        metrics.update(eval_fn(state, step))
      writer.write(step, metrics)
      if step % checkpoint_every == 0 or step == num_steps:
        checkpoint.save(ckpt, step, state, meta)
      if progress:
        shown = {k: float(np.mean(v)) for k, v in metrics.items()
                 if k.startswith("eval/") or k in ("critic/loss", "encoder/loss")}
        progress(f"step {step}/{num_steps} ({rate:.0f} updates/s/seed-batch) " +
                 " ".join(f"{k}={v:.3f}" for k, v in shown.items()))
  finally:
    writer.close()
  return state
