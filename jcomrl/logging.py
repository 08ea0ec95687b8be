"""Host-side metrics writer: JSON lines and TensorBoard events in a run directory."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def _scalar(v) -> Any:
  a = np.asarray(v)
  return float(a) if a.ndim == 0 else a.astype(float).tolist()


class MetricsWriter:
  """Appends ``{"step": s, **metrics}`` to ``metrics.jsonl`` and writes TensorBoard scalars.

  Per-seed vectors are logged as lists in JSONL and as their mean (plus ``/seed<i>``) in
  TensorBoard. TensorBoard is optional: without tensorboardX only JSONL is written.
  ``purge_step`` (on resume: the first step to be redone) starts a new events file that tells
  TensorBoard to drop the earlier files' events from that step on.
  """

  def __init__(self, workdir: str, tensorboard: bool = True, purge_step: int | None = None):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter
        # The suffix keeps two writers of one second (tensorboardX names files by the second)
        # in separate files.
        self._tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=purge_step,
                                 filename_suffix=f".{os.getpid()}.{purge_step or 0}")
      except ImportError:
        self._tb = None

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    row = {"step": int(step), **{k: _scalar(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in metrics.items():
        a = np.asarray(v, dtype=float)
        self._tb.add_scalar(k, float(a.mean()), step)
        if a.size > 1:
          for i, x in enumerate(a.reshape(-1)):
            self._tb.add_scalar(f"{k}/seed{i}", float(x), step)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
