"""The offline multi-task dataset: an on-device pytree and its validated directory format.

In memory an ``OfflineDataset`` holds per-task arrays ``[num_tasks, N, ...]``. Transitions of a
task are stored as ``N / segment_length`` consecutive *segments* of ``segment_length`` steps (one
behaviour rollout slot each, normally one whole episode; an episode that terminates early is
followed, after an explicit reset, by a new one in the same slot). A context "trajectory" is one
segment.

On disk a dataset is a directory::

    meta.json          schema version, env name + overrides, split, task parameters,
                       creation config, behaviour snapshots, and for every array its
                       shape, dtype and sha256
    <field>.npy        one memory-mappable array per field (obs, action, ...)
    behaviour/         optional: the behaviour-policy snapshots (``jcomrl.datagen.pipeline``
                       writes and reads them)

``save_dataset`` writes into a temporary sibling directory and renames it into place, so an
interrupted save never leaves a half-written dataset and never destroys the previous one.
``load_dataset`` validates everything and raises ``DatasetError`` naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jcomrl import atomic
from jcomrl.types import Transition

SCHEMA_VERSION = 1
ARRAY_FIELDS = ("obs", "action", "reward", "next_obs", "terminal", "timeout", "checkpoint_id",
                "episode_id", "task_params")
_DTYPES = {"checkpoint_id": np.int32, "episode_id": np.int32}


class DatasetError(ValueError):
  """A dataset on disk is missing, corrupt, or does not match what was asked for."""


@struct.dataclass
class OfflineDataset:
  """Per-task offline data. Array leaves are jit arguments; ``segment_length`` is static.

  Attributes:
    transitions: ``Transition`` with leading axes ``[num_tasks, N]``.
    checkpoint_id: ``[num_tasks, N]`` int32 behaviour snapshot that produced each transition.
    episode_id: ``[num_tasks, N]`` int32 episode index within its task.
    task_params: ``[num_tasks, P]`` true task parameters (``env.task_vector``).
    segment_length: steps per stored segment; ``N`` is a multiple of it.
  """

  transitions: Transition
  checkpoint_id: jnp.ndarray
  episode_id: jnp.ndarray
  task_params: jnp.ndarray
  segment_length: int = struct.field(pytree_node=False)

  @property
  def num_tasks(self) -> int:
    return int(self.transitions.reward.shape[0])

  @property
  def num_transitions(self) -> int:
    return int(self.transitions.reward.shape[1])

  @property
  def num_segments(self) -> int:
    return self.num_transitions // self.segment_length

  @property
  def observation_size(self) -> int:
    return int(self.transitions.obs.shape[-1])

  @property
  def action_size(self) -> int:
    return int(self.transitions.action.shape[-1])

  def arrays(self) -> dict[str, Any]:
    t = self.transitions
    return {"obs": t.obs, "action": t.action, "reward": t.reward, "next_obs": t.next_obs,
            "terminal": t.terminal, "timeout": t.timeout, "checkpoint_id": self.checkpoint_id,
            "episode_id": self.episode_id, "task_params": self.task_params}

  @classmethod
  def from_arrays(cls, arrays: dict[str, Any], segment_length: int) -> "OfflineDataset":
    ds = cls(transitions=Transition(obs=arrays["obs"], action=arrays["action"],
                                    reward=arrays["reward"], next_obs=arrays["next_obs"],
                                    terminal=arrays["terminal"], timeout=arrays["timeout"]),
             checkpoint_id=arrays["checkpoint_id"], episode_id=arrays["episode_id"],
             task_params=arrays["task_params"], segment_length=int(segment_length))
    ds.validate()
    return ds

  def validate(self) -> None:
    """Checks internal consistency; raises ``DatasetError`` naming the first problem."""
    t = self.transitions
    if t.reward.ndim != 2:
      raise DatasetError(f"reward must be [num_tasks, N], got shape {t.reward.shape}")
    lead = t.reward.shape
    for name, arr, rank in (("obs", t.obs, 3), ("action", t.action, 3), ("next_obs", t.next_obs, 3),
                            ("terminal", t.terminal, 2), ("timeout", t.timeout, 2),
                            ("checkpoint_id", self.checkpoint_id, 2),
                            ("episode_id", self.episode_id, 2)):
      if arr.ndim != rank or tuple(arr.shape[:2]) != tuple(lead):
        raise DatasetError(f"{name} has shape {arr.shape}; expected leading axes {lead}")
    if t.obs.shape != t.next_obs.shape:
      raise DatasetError(f"obs {t.obs.shape} and next_obs {t.next_obs.shape} differ in shape")
    if self.task_params.ndim != 2 or self.task_params.shape[0] != lead[0]:
      raise DatasetError(f"task_params has shape {self.task_params.shape}; expected [{lead[0]}, P]")
    if self.segment_length <= 0 or lead[1] % self.segment_length:
      raise DatasetError(f"N = {lead[1]} transitions per task is not a multiple of "
                         f"segment_length = {self.segment_length}")

  def to_device(self) -> "OfflineDataset":
    return jax.tree.map(jnp.asarray, self)


def sha256_file(path: str) -> str:
  """The SHA-256 hex digest of the file at ``path`` (read in 4 MiB blocks): the per-array
  checksums of ``meta.json`` and the source digests of imported files."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def save_dataset(path: str, dataset: OfflineDataset, meta: dict, *, overwrite: bool = False,
                 extra_writer=None) -> str:
  """Writes ``dataset`` and ``meta`` atomically to the directory ``path``.

  Args:
    path: target directory.
    dataset: the data (device or host arrays).
    meta: JSON-serialisable description; must hold ``env`` and ``split`` ({"train", "test"}
      lists of task rows). Array descriptors, the schema version and ``segment_length`` are added.
    overwrite: replace an existing dataset (the old one is kept until the new one is complete).
    extra_writer: optional ``f(tmp_dir)`` writing more files (e.g. behaviour snapshots) before
      the rename.
  Returns:
    ``path``.
  """
  dataset.validate()
  path = os.path.abspath(path)
  if os.path.exists(path) and not overwrite:
    raise DatasetError(f"{path} already exists; pass overwrite=True to replace it")
  for key in ("env", "split"):
    if key not in meta:
      raise DatasetError(f"meta must contain {key!r}")
  _check_split(meta["split"], dataset.num_tasks)
  with atomic.atomic_dir(path) as tmp:
    descr = {}
    for name, arr in dataset.arrays().items():
      arr = np.asarray(arr, dtype=_DTYPES.get(name, np.float32))
      file = os.path.join(tmp, f"{name}.npy")
      np.save(file, arr)
      descr[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": sha256_file(file)}
    full = dict(meta)
    full.update(schema_version=SCHEMA_VERSION, segment_length=dataset.segment_length,
                num_tasks=dataset.num_tasks, transitions_per_task=dataset.num_transitions,
                arrays=descr)
    if extra_writer is not None:
      extra_writer(tmp)
    with open(os.path.join(tmp, "meta.json"), "w") as f:
      json.dump(full, f, indent=1, sort_keys=True)
  return path


def _check_split(split: dict, num_tasks: int) -> None:
  if not isinstance(split, dict) or set(split) < {"train", "test"}:
    raise DatasetError(f"split must have 'train' and 'test' task lists, got {split!r}")
  for part in ("train", "test"):
    ids = split[part]
    if not ids or min(ids) < 0 or max(ids) >= num_tasks:
      raise DatasetError(f"split[{part!r}] = {ids} is empty or outside the {num_tasks} tasks")
  # Overlap is an error, except the "same" split (train = test: every task is trained on and
  # evaluated, FOCAL's 2-task direction envs and the one-task single-task datasets).
  same = sorted(split["train"]) == sorted(split["test"])
  if set(split["train"]) & set(split["test"]) and not same:
    raise DatasetError("train and test task ids overlap (only identical lists, the 'same' "
                       "split, may share tasks)")


def read_meta(path: str) -> dict:
  file = os.path.join(path, "meta.json")
  if not os.path.isdir(path):
    raise DatasetError(f"no dataset directory at {path}; generate one with experiments.collect "
                       "(make data) or pass the path of an existing dataset")
  if not os.path.exists(file):
    raise DatasetError(f"{path} has no meta.json: not a jcomrl dataset or an interrupted write")
  try:
    with open(file) as f:
      meta = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DatasetError(f"{file} is not valid JSON: {e}") from e
  version = meta.get("schema_version")
  if version != SCHEMA_VERSION:
    raise DatasetError(f"{path}: unknown dataset schema version {version!r} "
                       f"(this jcomrl reads version {SCHEMA_VERSION})")
  return meta


def load_dataset(path: str, *, verify_checksums: bool = True, mmap: bool = True,
                 expect_env: str | None = None) -> tuple[OfflineDataset, dict]:
  """Loads and validates a dataset directory; returns ``(dataset with numpy leaves, meta)``.

  Raises ``DatasetError`` for a missing directory or file, bad JSON, an unknown schema version,
  a truncated or unreadable array, a shape/dtype that disagrees with ``meta.json``, a checksum
  mismatch, non-finite values, flags other than 0/1, negative ids, a meta.json entry of the wrong
  type (a ``normalisation`` block, when present, must hold finite ``random`` and ``expert``), an
  inconsistent split, or (with ``expect_env``) a dataset of another environment.
  """
  meta = read_meta(path)
  _check_meta_types(path, meta)
  if expect_env is not None and meta.get("env") != expect_env:
    raise DatasetError(f"{path} holds data of env {meta.get('env')!r}, expected {expect_env!r}")
  descr = meta.get("arrays", {})
  arrays = {}
  for name in ARRAY_FIELDS:
    if name not in descr:
      raise DatasetError(f"{path}: meta.json does not describe array {name!r}")
    want = descr[name]
    if (not isinstance(want, dict) or not isinstance(want.get("shape"), list)
        or not isinstance(want.get("dtype"), str) or not isinstance(want.get("sha256"), str)):
      raise DatasetError(f"{path}: meta.json arrays.{name} must hold shape (list), dtype and "
                         f"sha256 (strings), got {want!r}")
    file = os.path.join(path, f"{name}.npy")
    if not os.path.exists(file):
      raise DatasetError(f"{path}: missing array file {name}.npy")
    try:
      arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      raise DatasetError(f"{path}: {name}.npy is truncated or corrupt ({e})") from e
    want = descr[name]
    if list(arr.shape) != list(want["shape"]) or str(arr.dtype) != want["dtype"]:
      raise DatasetError(f"{path}: {name}.npy has shape {list(arr.shape)} dtype {arr.dtype}; "
                         f"meta.json says shape {want['shape']} dtype {want['dtype']}")
    if verify_checksums and sha256_file(file) != want["sha256"]:
      raise DatasetError(f"{path}: checksum mismatch for {name}.npy (file modified or corrupt)")
    _check_values(path, name, arr)
    arrays[name] = arr
  ds = OfflineDataset.from_arrays(arrays, meta["segment_length"])
  _check_split(meta.get("split"), ds.num_tasks)
  return ds, meta


def _check_meta_types(path: str, meta: dict) -> None:
  """Types of the meta.json entries ``load_dataset`` and the learners read."""
  def bad(key, want):
    return DatasetError(f"{path}: meta.json {key} = {meta.get(key)!r} must be {want}")

  if not isinstance(meta.get("env"), str):
    raise bad("env", "an env name (string)")
  seg = meta.get("segment_length")
  if not isinstance(seg, int) or isinstance(seg, bool) or seg <= 0:
    raise bad("segment_length", "a positive int")
  if not isinstance(meta.get("arrays"), dict):
    raise bad("arrays", "a dict of array descriptors")
  if not isinstance(meta.get("env_overrides") or {}, dict):
    raise bad("env_overrides", "a dict")
  split = meta.get("split")
  if not isinstance(split, dict) or not all(
      isinstance(split.get(p), list) and all(isinstance(i, int) and not isinstance(i, bool)
                                             for i in split[p]) for p in ("train", "test")):
    raise bad("split", "{'train': [task rows], 'test': [task rows]} (lists of ints)")
  if "normalisation" in meta:
    check_normalisation(path, meta)


def check_normalisation(path: str, meta: dict) -> dict:
  """``meta["normalisation"]`` if it holds finite, distinct numbers ``random`` and ``expert``
  (the score anchors); ``DatasetError`` naming the problem otherwise."""
  norm = meta.get("normalisation")
  fix = ("meta.json needs \"normalisation\": {\"random\": <return>, \"expert\": <return>} "
         "(regenerate the dataset with experiments.collect)")
  if norm is None:
    raise DatasetError(f"{path}: no normalisation block; {fix}")
  if not isinstance(norm, dict):
    raise DatasetError(f"{path}: normalisation = {norm!r} is not a dict; {fix}")
  for key in ("random", "expert"):
    v = norm.get(key)
    if (not isinstance(v, (int, float)) or isinstance(v, bool)
        or not np.isfinite(v)):
      raise DatasetError(f"{path}: normalisation.{key} = {v!r} is not a finite number; {fix}")
  if norm["random"] == norm["expert"]:
    raise DatasetError(f"{path}: normalisation random and expert are equal ({norm['random']}); "
                       "the normalised score would divide by zero")
  return norm


def _check_values(path: str, name: str, arr: np.ndarray) -> None:
  """Finite floats, 0/1 flags, non-negative ids (a matching checksum does not prove these)."""
  a = np.asarray(arr)
  if name in ("terminal", "timeout"):
    ok = (a == 0) | (a == 1)
    what = "values other than 0 and 1"
  elif name in ("checkpoint_id", "episode_id"):
    ok = a >= 0
    what = "negative ids"
  else:
    ok = np.isfinite(a)
    what = "non-finite values (NaN or inf)"
  if not ok.all():
    first = np.unravel_index(int(np.argmin(ok.reshape(-1))), a.shape)
    raise DatasetError(f"{path}: {name}.npy holds {int(a.size - ok.sum())} {what}, the first "
                       f"at index {tuple(int(i) for i in first)}; regenerate the dataset")


# ---------------------------------------------------------------- reading stored episodes


def episode_ids(terminal: np.ndarray, timeout: np.ndarray) -> np.ndarray:
  """``episode_id [T, N]`` of stored transitions: per task row, 0 for the first episode and one
  more after every step flagged ``terminal`` or ``timeout``."""
  ends = np.maximum(terminal, timeout) > 0  # [T, N]
  ids = np.zeros(ends.shape, np.int32)
  ids[:, 1:] = np.cumsum(ends[:, :-1], axis=1)
  return ids


def episode_returns(reward: np.ndarray, terminal: np.ndarray, timeout: np.ndarray,
                    episode_id: np.ndarray, checkpoint_id: np.ndarray,
                    segment_length: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per task row: ``(checkpoint id, return)`` of every *complete* episode in stored data.

  An episode is complete when it ended by a true termination, lasted the whole time limit
  (``segment_length`` steps), or ended early inside its segment (a fall stored as a timeout
  under the ``"no_terminal"`` convention). An episode that began after an early end and was
  cut by the end of its segment is partial and left out. Host-side; reads memory-mapped
  arrays one task row at a time.
  """
  out = []
  for t in range(reward.shape[0]):
    ids = np.asarray(episode_id[t])
    n = int(ids[-1]) + 1
    ret = np.bincount(ids, weights=np.asarray(reward[t], np.float64), minlength=n)
    length = np.bincount(ids, minlength=n)
    last = np.cumsum(length) - 1
    first = last - length + 1
    # An early end inside a segment stored as a timeout ("no_terminal" convention) is complete
    # too; a timeout at a segment's last step may be the cut, so only a full length counts there.
    early_end = (np.asarray(timeout[t])[last] > 0) & ((last + 1) % segment_length != 0)
    complete = (np.asarray(terminal[t])[last] > 0) | (length >= segment_length) | early_end
    out.append((np.asarray(checkpoint_id[t])[first][complete], ret[complete]))
  return out


def dataset_summary(dataset: OfflineDataset) -> dict[str, Any]:
  """Per-checkpoint mean segment return over all tasks (host-side report)."""
  r = np.asarray(dataset.transitions.reward)
  seg = r.reshape(r.shape[0], -1, dataset.segment_length).sum(-1)
  ck = np.asarray(dataset.checkpoint_id)[:, ::dataset.segment_length]
  return {int(c): float(seg[ck == c].mean()) for c in np.unique(ck)}
