"""Where a result came from: the source commit and the CPU model that results, datasets and
benchmark files record beside their numbers, so every table names the code and the machine that
made it."""

from __future__ import annotations

import os
import subprocess
import time


def source_commit() -> str | None:
  """The jcomrl source commit (``git rev-parse HEAD`` of the checkout this package runs from,
  with ``+dirty`` when tracked files differ from it), or ``None`` outside a git checkout (an
  installed wheel). Results record it so every table names the code that made it."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return head + ("+dirty" if dirty else "") if head else None


def cpu_model() -> str | None:
  """The CPU model (``/proc/cpuinfo``'s first ``model name``), or ``None`` where unreadable."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def creation_record() -> dict:
  """``{"jcomrl_commit", "created", "load_avg_at_start", "cpu"}``: what a dataset's
  ``meta["creation"]`` records about the run that made it (taken when the run starts)."""
  return {"jcomrl_commit": source_commit(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
          "load_avg_at_start": [round(x, 2) for x in os.getloadavg()], "cpu": cpu_model()}
