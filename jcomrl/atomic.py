"""Atomic file writes: a reader (or a run killed half-way) sees the old file or the new one, never
a torn one. Every file jcomrl writes (JSON results, metrics rewrites, collection chunks, plots)
goes through :func:`atomic_file`; whole directories (datasets, behaviour snapshots, exports) are
built in a temporary sibling directory by :func:`atomic_dir` and swapped into place with
:func:`replace_dir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w", *, suffix: str = ""):
  """Yields a file object open on a temporary file next to ``path``; on a clean exit the file is
  flushed, synced, made ``0644`` and renamed onto ``path``; on an exception it is removed and
  ``path`` is untouched. ``suffix`` keeps an extension some writers need (``".npz"``, ``".png"``).
  Parent directories are created."""
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=
                             f".tmp{suffix}")
  try:
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_text(path: str, text: str) -> None:
  with atomic_file(path) as f:
    f.write(text)


def write_json(path: str, obj: Any, *, indent: int | None = 1, sort_keys: bool = False) -> None:
  with atomic_file(path) as f:
    json.dump(obj, f, indent=indent, sort_keys=sort_keys)


def save_figure(fig, path: str, **savefig_kwargs) -> None:
  """``fig.savefig`` to ``path`` atomically (the format follows ``path``'s extension)."""
  ext = os.path.splitext(path)[1]
  fmt = savefig_kwargs.pop("format", ext[1:] or None)
  with atomic_file(path, "wb", suffix=ext) as f:
    fig.savefig(f, format=fmt, **savefig_kwargs)


def replace_dir(tmp_dir: str, path: str) -> None:
  """Moves the finished ``tmp_dir`` to ``path``; a previous ``path`` survives until the swap."""
  if os.path.exists(path):
    old = f"{path}.old-{os.getpid()}"
    os.rename(path, old)
    os.rename(tmp_dir, path)
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.rename(tmp_dir, path)


@contextlib.contextmanager
def atomic_dir(path: str, *, prefix: str | None = None):
  """Yields the path of a new, empty temporary directory beside ``path``; on a clean exit it is
  swapped into place with :func:`replace_dir` (a previous ``path`` survives until the swap), on
  an exception it is removed and ``path`` is untouched. Parent directories are created.

  ``prefix``: the temporary directory's name prefix (default ``".<basename of path>.tmp-"``).
  The caller decides beforehand whether an existing ``path`` may be replaced."""
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=prefix or f".{os.path.basename(path)}.tmp-", dir=parent)
  try:
    yield tmp
    replace_dir(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
