"""Host-side metrics writer (JSON lines and TensorBoard events in a run directory) and the one
progress/ETA printer (``Progress``: it formats lines and hands them to a ``progress`` callable;
the library never prints)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
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


# ---------------------------------------------------------------------------- progress


def format_seconds(s: float) -> str:
  """``M:SS``, or ``H:MM:SS`` from an hour on."""
  s = int(round(max(s, 0.0)))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def bar(done: float, total: float, width: int = 20) -> str:
  """``[#####...............]  25%``."""
  frac = min(max(done / total, 0.0), 1.0) if total else 1.0
  fill = int(round(frac * width))
  return f"[{'#' * fill}{'.' * (width - fill)}] {100 * frac:3.0f}%"


class Progress:
  """The one progress/ETA printer: done / total, rate, ETA and a label, as one line.

  ``advance`` counts work done; the rate is the timed work over its seconds (``timed=False``
  counts work that must not set the rate: a chunk that includes compilation, work reused from
  disk or done by an earlier process of a resumed run), and the ETA is the work left at that
  rate. ``line`` formats ``"<label> <done>/<total> (<pct>%, <rate> <unit>/s, [elapsed <t>, ]ETA
  <t>)[: <detail>]"``; ``report`` also hands it to ``progress`` (a callable, e.g. ``print``).

  Args:
    total: work in all (None or 0: unknown; the line shows no fraction, percentage or ETA).
    label: what the line starts with (e.g. ``"step"``, ``"collect chunk"``).
    unit: the rate's unit (``"updates"``); empty: the line shows no rate.
    unit_size: units per item of work (e.g. transitions per collection chunk) for the rate.
    progress: the callable ``report`` hands lines to (None: ``report`` only returns them).
    done: the work done before this process started (a resumed run's).
    show_elapsed: show the wall time since the printer was made.
    waiting: shown in place of rate and ETA while no rate is known yet (with a total).
    clock: seconds now (``time.time``; a test may pass its own).
  """

  def __init__(self, total: float | None, label: str, *, unit: str = "", unit_size: float = 1,
               progress: Callable[[str], Any] | None = None, done: float = 0,
               show_elapsed: bool = False, waiting: str = "ETA ?",
               clock: Callable[[], float] = time.time):
    self.total, self.label, self.unit, self.unit_size = total, label, unit, unit_size
    self.progress, self.done, self.show_elapsed, self.waiting = progress, done, show_elapsed, waiting
    self._clock = clock
    self.t0 = self._last = clock()
    self._timed, self._seconds = 0.0, 0.0

  @property
  def elapsed(self) -> float:
    return self._clock() - self.t0

  @property
  def rate(self) -> float | None:
    """Items of timed work per second (None until some was timed)."""
    return self._timed / self._seconds if self._timed > 0 and self._seconds > 0 else None

  @property
  def eta(self) -> float | None:
    """Seconds left at the rate so far; None when unknown or done."""
    rate = self.rate
    if not self.total or rate is None or self.done >= self.total:
      return None
    return (self.total - self.done) / rate

  def advance(self, n: float = 1, *, seconds: float | None = None, timed: bool = True):
    """``n`` more items done in ``seconds`` (default: the wall time since the last call)."""
    now = self._clock()
    seconds = now - self._last if seconds is None else seconds
    self._last = now
    self.done += n
    if timed:
      self._timed, self._seconds = self._timed + n, self._seconds + seconds
    return self

  def update(self, done: float, **kw):
    """``advance`` to ``done`` items in all."""
    return self.advance(done - self.done, **kw)

  def line(self, detail: str = "", *, note: str | None = None) -> str:
    """The progress line; ``note`` replaces the rate and ETA (e.g. "reused from the work dir")."""
    head = f"{self.label} {self.done:,}"
    parts = []
    if self.total:
      head += f"/{self.total:,}"
      parts.append(f"{100 * min(self.done / self.total, 1.0):.0f}%")
    if note is not None:
      parts.append(note)
    else:
      rate = self.rate
      if rate is not None and self.unit:
        parts.append(f"{rate * self.unit_size:,.0f} {self.unit}/s")
      if self.show_elapsed:
        parts.append(f"elapsed {format_seconds(self.elapsed)}")
      eta = self.eta
      if eta is not None:
        parts.append(f"ETA {format_seconds(eta)}")
      elif rate is None and self.waiting and self.total:
        parts.append(self.waiting)
    return f"{head} ({', '.join(parts)})" + (f": {detail}" if detail else "")

  def report(self, detail: str = "", **kw) -> str:
    """``line(...)``, handed to ``progress`` when one was given; returns it."""
    text = self.line(detail, **kw)
    if self.progress is not None:
      self.progress(text)
    return text
