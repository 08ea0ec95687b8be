"""Orbax checkpoints of a learner's train state, with the config needed to rebuild it.

A run directory's ``checkpoints/<step>/`` holds the train state (``StandardSave``) and a JSON item
with the format version, the learner config and the hyper-parameters. Orbax writes each step to
a temporary directory and renames it when complete, so a killed save never corrupts the previous
checkpoint. ``restore`` refuses a checkpoint whose learner config differs from the one asked for
(``CheckpointError`` names the differing keys) and restores strictly into the structure that
config builds. In a multi-process run (:mod:`jcomrl.distributed`) every process calls ``save``,
``restore`` and ``steps`` in the same order (each orbax manager waits for all of them); orbax
writes each process's shards, process 0 the JSON and the commit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp

from jcomrl import distributed

# 2: the plug-in learner (parameter groups owned by the backbone and the objective, optimiser
# states only for trained groups, Adam without optax's inject_hyperparams wrapper). Format 1 is
# refused with a message naming it: its train-state tree cannot be mapped onto format 2.
FORMAT_VERSION = 2
_FORMAT_NOTES = {1: "jcomrl before the plug-in learner (format 1); retrain in a new workdir or "
                    "evaluate it with a checkout older than the format change"}


class CheckpointError(ValueError):
  """A checkpoint is missing or does not belong to the configuration asked for."""


def _manager(directory: str, max_to_keep: int | None = 3) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_names=("state", "meta"))


def save(directory: str, step: int, state: Any, meta: dict, max_to_keep: int | None = 3) -> None:
  """Saves ``state`` (any pytree of arrays) and JSON ``meta`` as checkpoint ``step``."""
  meta = dict(meta, format_version=FORMAT_VERSION, step=int(step))
  with _manager(directory, max_to_keep) as mngr:
    mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                 meta=ocp.args.JsonSave(meta)), force=True)
    mngr.wait_until_finished()


def steps(directory: str) -> list[int]:
  # Every orbax manager waits for all processes of a multi-process run: they must agree on
  # whether one is opened (process 0's view of the directory), or one process could open a
  # manager the others never open.
  if not distributed.broadcast_from_main(int(os.path.isdir(directory))):
    return []
  with _manager(directory) as mngr:
    return sorted(mngr.all_steps())


def latest_step(directory: str) -> int | None:
  s = steps(directory)
  return s[-1] if s else None


def read_meta(directory: str, step: int | None = None) -> dict:
  step = _pick_step(directory, step)
  with _manager(directory) as mngr:
    return dict(mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)


def _pick_step(directory: str, step: int | None) -> int:
  available = steps(directory)
  if not available:
    raise CheckpointError(f"no checkpoint in {directory}")
  if step is None:
    return available[-1]
  if step not in available:
    raise CheckpointError(f"no checkpoint for step {step} in {directory}; have {available}")
  return step


def restore(directory: str, abstract_state: Any, step: int | None = None,
            expect: dict | None = None,
            canonical: Callable[[dict], dict] | None = None) -> tuple[Any, dict]:
  """Restores ``(state, meta)``; ``abstract_state`` gives the exact structure, shapes, dtypes.

  Args:
    expect: entries that must equal the saved meta (e.g. ``{"learner": cfg.to_dict()}``).
    canonical: maps a learner dict to the form it is compared in (e.g.
      ``LearnerConfig.canonical_dict``: a checkpoint written before fields were added or before
      plug-ins owned their settings matches the same config today).
  """
  step = _pick_step(directory, step)
  meta = read_meta(directory, step)
  if meta.get("format_version") != FORMAT_VERSION:
    have = meta.get("format_version")
    note = f" ({_FORMAT_NOTES[have]})" if have in _FORMAT_NOTES else ""
    raise CheckpointError(f"checkpoint {directory}/{step} has format version {have!r}{note}; "
                          f"this jcomrl reads format {FORMAT_VERSION}")
  for key, want in (expect or {}).items():
    have = meta.get(key)
    if (key == "learner" and have != want and isinstance(have, dict) and isinstance(want, dict)
        and canonical):
      # saved before plug-in subtrees or before fields were added: the config it stands for
      have, want = canonical(have), canonical(want)
    if have != want:
      if isinstance(have, dict) and isinstance(want, dict):
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        detail = ", ".join(f"{k}: saved {have.get(k)!r} vs asked {want.get(k)!r}" for k in diff)
      else:
        detail = f"saved {have!r} vs asked {want!r}"
      raise CheckpointError(f"checkpoint {directory}/{step} was made with another {key}: {detail}")
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
  with _manager(directory) as mngr:
    try:
      out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    except (ValueError, KeyError) as e:
      raise CheckpointError(f"checkpoint {directory}/{step} does not match the expected train "
                            f"state structure: {e}") from e
  return out.state, meta
