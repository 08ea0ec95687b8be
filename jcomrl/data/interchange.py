"""D4RL and Minari interchange: read their HDF5 layouts into an ``OfflineDataset`` and write one
back out. h5py only; neither the ``d4rl`` nor the ``minari`` package is needed.

Layouts
-------
**D4RL** (``d4rl.offline_env.OfflineEnv.get_dataset``): one HDF5 file per task holding the
datasets ``observations [N, O]``, ``actions [N, A]``, ``rewards [N]``, ``terminals [N]`` and
``timeouts [N]`` (bool or 0/1), optionally ``next_observations [N, O]``, ``infos/*`` and
``metadata/*``. ``rewards``/``terminals``/``timeouts`` of shape ``[N, 1]`` are accepted, as d4rl
squeezes them. Files without ``timeouts`` (the pre-v1 D4RL datasets) are refused: their episode
ends cannot be recovered without the env's time limit.

**Minari 0.5.x** (HDF5 storage; ``Farama-Foundation/Minari`` ``minari/dataset/minari_storage.py``
``MinariStorage.new`` / ``read_raw_metadata``, ``minari/dataset/_storages/hdf5_storage.py``
``update_episodes`` / ``get_episodes``, ``docs/content/dataset_standards.md``, tag v0.5.3): a
dataset directory ``<dir>/data/`` holding ``metadata.json`` (``dataset_id``
``"[namespace/]name-vN"``, ``total_episodes``, ``total_steps``, ``data_format: "hdf5"``,
``observation_space`` / ``action_space`` as JSON strings of the serialised gymnasium spaces,
``minari_version``) and ``main_data.hdf5`` with one group ``episode_<i>`` per episode
(``i = 0 .. total_episodes - 1``; attributes ``id``, ``total_steps``, optional ``seed``) holding
``observations [T + 1, O]`` (the reset observation and every next one), ``actions [T, A]``,
``rewards [T]``, ``terminations [T]``, ``truncations [T]`` (bool) and an ``infos`` group whose
per-step arrays have ``T + 1`` rows (the reset's info first, as ``DataCollector`` records them)
or ``T``. Only flat ``Box`` observations and actions are read (a Dict/Tuple space, stored as a
group, is refused). The ``minari`` package is optional (``pip install 'jcomrl[minari]'``);
where it is installed, ``tests/test_interchange.py`` checks that ``minari.MinariDataset`` and
``minari.load_dataset`` (0.5.4) open what :func:`export_minari` writes.

Mapping onto jcomrl's ``[num_tasks, N]`` segments
-------------------------------------------------
One file (D4RL) or one dataset directory (Minari) is one task; several make a multi-task dataset,
tasks in the order given. A task's episodes are concatenated in file order into one stream of
transitions and the stream is cut into segments of ``segment_length`` steps. Nothing is padded:
each task keeps its first ``N`` transitions, where ``N`` is the shortest task's length rounded
down to a multiple of ``segment_length``; how many transitions each task lost is recorded in
``meta["source"]["trimmed_per_task"]``. ``terminal`` and ``timeout`` are the source's flags and
``episode_id`` numbers the episodes of a task, so episode ends stay exact. A segment can therefore
hold the end of one episode and the start of the next, as a native segment does after an early
termination; a trajectory context (``sampler.sample_trajectory``) is still always one task's
consecutive steps, which is what task inference needs. ``segment_length`` defaults to the
value a jcomrl export recorded, else to the common episode length when every episode of every
task has the same length (segments are then exactly episodes, e.g. non-terminating D4RL MuJoCo
files); when episode lengths vary it must be given (``DatasetError`` otherwise).

Next observations (D4RL without ``next_observations``)
------------------------------------------------------
An episode ends at a row with ``terminals`` or ``timeouts`` set. Inside an episode the next
observation is the next row's. A transition that ended its episode by a timeout has no successor
in the file (the next row is the next episode's reset), so it is **dropped**, as
``d4rl.qlearning_dataset`` does; the row before it, now the last stored step of that episode,
gets ``timeout = 1`` (the stored episode is cut there). The same holds for a last row of the file
that ends no episode. A terminal transition is kept with ``next_obs`` = its own observation (it
is never bootstrapped from). The counts are in
``meta["source"]["files"][i]["dropped_no_successor"]``.
With ``next_observations`` in the file (or from Minari, whose episodes hold their final
observation) nothing is dropped and flags are copied unchanged.

Dtypes
------
jcomrl stores float32 (``save_dataset`` casts). D4RL's MuJoCo files are float32 already; float64
observations (Minari's D4RL ports), actions or rewards are cast to float32 on import and the cast
is recorded per key (``meta["source"]["files"][i]["cast_to_float32"]``); a value that overflows
float32 is reported as non-finite. Exports write float32 arrays and bool flags, so jcomrl ->
D4RL/Minari -> jcomrl is bit-exact, and so is a float32 D4RL/Minari file -> jcomrl -> file.

Task parameters and ids
-----------------------
``infos/task_params`` (constant within a file), ``infos/episode_id`` and ``infos/checkpoint_id``,
which our exports write, are read back; every other ``infos/*`` array cannot be represented and
is left out, with its name listed in ``meta["source"]["files"][i]["dropped_infos"]``. Without
them ``task_params`` is the task's index (``[num_tasks, 1]``), ``checkpoint_id`` is 0 and
``episode_id`` counts episodes.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Sequence

import h5py
import numpy as np

from jcomrl import atomic
from jcomrl.data.dataset import (DatasetError, OfflineDataset, sha256_file,
                                 load_dataset)

D4RL_LAYOUT = ("d4rl-hdf5 (observations, actions, rewards, terminals, timeouts"
               "[, next_observations][, infos/*]); the layout of D4RL's v1/v2 datasets, which "
               "carry timeouts")
MINARI_LAYOUT = "minari-0.5 hdf5 (data/metadata.json + data/main_data.hdf5, episode_<i> groups)"
MINARI_VERSION = "0.5.3"  # written into metadata.json; read by minari 0.4.0 .. 0.5.x
EXPORT_VERSION = 1
_OWN_INFOS = ("task_params", "episode_id", "checkpoint_id")
_REQUIRED_D4RL = ("observations", "actions", "rewards", "terminals", "timeouts")


# ---------------------------------------------------------------------------- array checks


def _as_float(where: str, key: str, arr: np.ndarray, rank: int, casts: dict) -> np.ndarray:
  arr = np.asarray(arr)
  if rank == 1 and arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  if arr.dtype.kind not in "fiub":
    raise DatasetError(f"{where}: {key} has dtype {arr.dtype}; expected numbers")
  if arr.ndim != rank:
    want = "[N]" if rank == 1 else "[N, dim]"
    raise DatasetError(f"{where}: {key} has shape {list(arr.shape)}; expected {want} (jcomrl "
                       "reads flat vectors; flatten image or dict observations first)")
  if arr.dtype != np.float32:
    casts[key] = str(arr.dtype)
    with np.errstate(over="ignore"):
      arr = arr.astype(np.float32)
  bad = ~np.isfinite(arr)
  if bad.any():
    first = int(np.argmax(bad.reshape(arr.shape[0], -1).any(axis=1)))
    raise DatasetError(f"{where}: {key} holds {int(bad.sum())} non-finite values (NaN or inf, "
                       f"or beyond float32), the first in row {first}; clean the source data")
  return arr


def _as_flag(where: str, key: str, arr: np.ndarray) -> np.ndarray:
  arr = np.asarray(arr)
  if arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  if arr.ndim != 1 or arr.dtype.kind not in "fiub":
    raise DatasetError(f"{where}: {key} has shape {list(arr.shape)} dtype {arr.dtype}; "
                       "expected [N] booleans")
  ok = (arr == 0) | (arr == 1)
  if not ok.all():
    first = int(np.argmin(ok))
    raise DatasetError(f"{where}: {key} holds values other than 0 and 1, the first in row "
                       f"{first} ({arr[first]!r})")
  return arr.astype(np.float32)


def _as_ids(where: str, key: str, arr: np.ndarray, n: int) -> np.ndarray:
  arr = np.asarray(arr)
  if arr.shape != (n,) or arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
    raise DatasetError(f"{where}: {key} must be [{n}] non-negative integers, got shape "
                       f"{list(arr.shape)} dtype {arr.dtype}")
  if arr.size and arr.max() > np.iinfo(np.int32).max:
    raise DatasetError(f"{where}: {key} holds ids beyond int32")
  return arr.astype(np.int32)


def _task_row(where: str, arr: np.ndarray, n: int, casts: dict) -> np.ndarray:
  """``infos/task_params`` ``[n, P]`` (or ``[n]``), constant over rows -> ``[P]``."""
  arr = np.asarray(arr)
  if arr.ndim == 1:
    arr = arr[:, None]
  arr = _as_float(where, "infos/task_params", arr, 2, casts)
  if arr.shape[0] != n:
    raise DatasetError(f"{where}: infos/task_params has {arr.shape[0]} rows, expected {n}")
  if n and not (arr == arr[0]).all():
    raise DatasetError(f"{where}: infos/task_params varies between rows; one file (or Minari "
                       "dataset) must hold one task")
  return arr[0] if n else np.zeros(arr.shape[1], np.float32)


def _episode_ids_from_ends(ends: np.ndarray) -> np.ndarray:
  """Row ``i`` is in episode ``#ends before i``."""
  ids = np.zeros(ends.shape[0], np.int64)
  ids[1:] = np.cumsum(ends[:-1])
  return ids


def _run_lengths(ids: np.ndarray) -> np.ndarray:
  if ids.size == 0:
    return np.zeros(0, np.int64)
  starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
  return np.diff(np.r_[starts, ids.size])


def _jcomrl_attrs(attrs) -> dict:
  """The ``jcomrl_*`` attributes our exports write (JSON-decoded)."""
  out = {}
  for key in attrs:
    if key.startswith("jcomrl_"):
      v = attrs[key]
      if isinstance(v, bytes):
        v = v.decode()
      if isinstance(v, np.generic):
        v = v.item()
      if isinstance(v, str) and key in ("jcomrl_split", "jcomrl_normalisation",
                                        "jcomrl_env_overrides"):
        v = json.loads(v)
      out[key[len("jcomrl_"):]] = v
  return out


# ---------------------------------------------------------------------------- D4RL import


def _d4rl_files(path_or_paths) -> list[str]:
  paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else path_or_paths
  files = []
  for p in map(str, paths):
    if os.path.isdir(p):
      found = sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith((".hdf5", ".h5")))
      if not found:
        raise DatasetError(f"{p} is a directory without .hdf5 files; pass D4RL .hdf5 files "
                           "(one per task) or a directory of them")
      files.extend(found)
    elif not os.path.exists(p):
      raise DatasetError(f"no D4RL file at {p}; pass the path of an existing .hdf5 file")
    else:
      files.append(p)
  if not files:
    raise DatasetError("no D4RL file given; pass at least one .hdf5 file")
  return files


def _read_d4rl_file(path: str) -> dict:
  """One D4RL file as one task: ``{"arrays", "task_row", "info", "attrs"}`` (see the module
  docstring: next observations rebuilt when the file has none, episode ids, checkpoint ids)."""
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise DatasetError(f"{path} is not a readable HDF5 file ({e}); pass a D4RL .hdf5 file") from e
  casts: dict[str, str] = {}
  with f:
    obs, act, rew, term, tout, nxt = _d4rl_arrays(path, f, casts)
    own, dropped, metadata_keys = _d4rl_extras(f)
    attrs = _jcomrl_attrs(f.attrs)
  n = obs.shape[0]
  info = {"name": os.path.basename(path), "sha256": sha256_file(path), "rows": int(n),
          "next_observations": "file" if nxt is not None else "rebuilt",
          "cast_to_float32": casts, "dropped_infos": dropped, "metadata_keys": metadata_keys}
  episode_id = (_as_ids(path, "infos/episode_id", own["episode_id"], n)
                if "episode_id" in own else None)
  ckpt = (_as_ids(path, "infos/checkpoint_id", own["checkpoint_id"], n)
          if "checkpoint_id" in own else np.zeros(n, np.int32))
  task_row = (_task_row(path, own["task_params"], n, casts) if "task_params" in own else None)
  ends, keep, nxt, tout = _d4rl_successors(obs, term, tout, nxt, info)
  if episode_id is None:
    episode_id = _episode_ids_from_ends(ends)
  episode_id = episode_id[keep]
  if episode_id.size and "episode_id" not in own:
    episode_id = np.unique(episode_id, return_inverse=True)[1].astype(np.int32)
  arrays = {"obs": obs[keep], "action": act[keep], "reward": rew[keep], "next_obs": nxt[keep],
            "terminal": term[keep], "timeout": tout[keep],
            "episode_id": episode_id.astype(np.int32), "checkpoint_id": ckpt[keep]}
  info["transitions"] = int(keep.sum())
  return {"arrays": arrays, "task_row": task_row, "info": info, "attrs": attrs}


def _d4rl_arrays(path: str, f, casts: dict) -> tuple:
  """``(observations, actions, rewards, terminals, timeouts, next_observations or None)`` of an
  open D4RL file, checked (``DatasetError``) and cast to float32 (``casts`` records the casts)."""
  for key in _REQUIRED_D4RL:
    if key not in f or not isinstance(f[key], h5py.Dataset):
      hint = (" (files without timeouts predate D4RL's v1 datasets: use a current version "
              "or add a timeouts array)" if key == "timeouts" else "")
      raise DatasetError(f"{path}: missing dataset {key!r}; a D4RL file needs "
                         f"{', '.join(_REQUIRED_D4RL)}{hint}")
  obs = _as_float(path, "observations", f["observations"][()], 2, casts)
  n = obs.shape[0]
  if n == 0:
    raise DatasetError(f"{path}: observations is empty")
  act = _as_float(path, "actions", f["actions"][()], 2, casts)
  rew = _as_float(path, "rewards", f["rewards"][()], 1, casts)
  term = _as_flag(path, "terminals", f["terminals"][()])
  tout = _as_flag(path, "timeouts", f["timeouts"][()])
  nxt = None
  if "next_observations" in f:
    nxt = _as_float(path, "next_observations", f["next_observations"][()], 2, casts)
    if nxt.shape != obs.shape:
      raise DatasetError(f"{path}: next_observations has shape {list(nxt.shape)}, "
                         f"observations {list(obs.shape)}; they must match")
  for key, arr in (("actions", act), ("rewards", rew), ("terminals", term),
                   ("timeouts", tout)):
    if arr.shape[0] != n:
      raise DatasetError(f"{path}: {key} has {arr.shape[0]} rows but observations has {n}; "
                         "every dataset must have one row per transition")
  return obs, act, rew, term, tout, nxt


def _d4rl_extras(f) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
  """``(own infos, dropped keys, metadata keys)`` of an open D4RL file: the ``infos/*`` arrays
  jcomrl reads back (``_OWN_INFOS``), the other infos and top-level datasets it drops, and the
  ``metadata/*`` datasets it lists."""
  own: dict[str, np.ndarray] = {}
  dropped: list[str] = []
  if "infos" in f and isinstance(f["infos"], h5py.Group):
    def visit(name, obj):
      if isinstance(obj, h5py.Dataset):
        if name in _OWN_INFOS:
          own[name] = obj[()]
        else:
          dropped.append(f"infos/{name}")
    f["infos"].visititems(visit)
  known = set(_REQUIRED_D4RL) | {"next_observations", "infos", "metadata"}
  dropped += sorted(k for k in f.keys() if k not in known)
  metadata_keys = []
  if "metadata" in f and isinstance(f["metadata"], h5py.Group):
    f["metadata"].visititems(lambda name, obj: metadata_keys.append(f"metadata/{name}")
                             if isinstance(obj, h5py.Dataset) else None)
  return own, dropped, metadata_keys


def _d4rl_successors(obs, term, tout, nxt, info: dict):
  """``(ends, keep, next_obs, timeout)``: the rows that end an episode, the rows kept and their
  next observations and timeouts; without ``next_observations`` in the file (``nxt`` None) a
  row's successor is the next row, and a row without one is dropped (``info`` counts them)."""
  n = obs.shape[0]
  ends = (term > 0) | (tout > 0)
  if nxt is None:
    # Successor within the episode: the next row, unless this row ends the episode or the file.
    has_next = ~ends & (np.arange(n) < n - 1)
    keep = (term > 0) | has_next
    nxt = np.where(has_next[:, None], np.roll(obs, -1, axis=0), obs)
    tout = tout.copy()
    lost = np.flatnonzero(~keep)
    # The row before a dropped one, in the same episode, is now that episode's last step.
    prev = lost[lost > 0] - 1
    tout[prev[~ends[prev]]] = 1.0
    info["dropped_no_successor"] = int(lost.size)
  else:
    keep = np.ones(n, bool)
    info["dropped_no_successor"] = 0
  return ends, keep, nxt, tout


def import_d4rl(path_or_paths, *, segment_length: int | None = None, env: str | None = None,
                test_tasks: Sequence[int] | None = None,
                normalisation: dict | None = None) -> tuple[OfflineDataset, dict]:
  """Reads D4RL-layout HDF5 file(s) into a dataset (see the module docstring for the mapping).

  Args:
    path_or_paths: one ``.hdf5`` file (a one-task dataset), a list of them (one task each, in
      this order) or a directory (its ``*.hdf5`` files, sorted by name).
    segment_length: steps per stored segment (default: the value recorded by a jcomrl export,
      else the common episode length; required when episode lengths vary).
    env: ``meta["env"]`` (default: recorded by a jcomrl export, else ``"d4rl:<first file>"``);
      name a jcomrl env to train and evaluate on the data with it.
    test_tasks: held-out task rows (default: recorded by an export, else the last task; a
      one-task dataset trains and tests on its only task).
    normalisation: ``{"random": R, "expert": E}`` score anchors for ``meta`` (optional).
  Returns:
    ``(dataset with numpy leaves, meta)`` ready for ``save_dataset``.
  Raises:
    DatasetError: naming the file and the problem (missing file or key, wrong shapes, NaNs,
      flags other than 0/1, inconsistent tasks).
  """
  files = _d4rl_files(path_or_paths)
  tasks = [_read_d4rl_file(p) for p in files]
  default_env = "d4rl:" + os.path.splitext(os.path.basename(files[0]))[0]
  return _assemble(tasks, "d4rl", D4RL_LAYOUT, segment_length, env, default_env, test_tasks,
                   normalisation)


# ---------------------------------------------------------------------------- assembling


def _common_attr(tasks: list[dict], key: str):
  vals = [t["attrs"].get(key) for t in tasks]
  if vals and all(v is not None and v == vals[0] for v in vals):
    return vals[0]
  return None


def _assemble(tasks: list[dict], fmt: str, layout: str, segment_length, env, default_env,
              test_tasks, normalisation, split: dict | None = None
              ) -> tuple[OfflineDataset, dict]:
  """Per-task arrays -> ``(dataset, meta)``: the segment length, the common length, the task
  parameters and the split (``split`` when given, else ``test_tasks`` / recorded / the last
  task); ``jcomrl.data.official_import`` reuses it."""
  names = [t["info"]["name"] for t in tasks]
  num_tasks = len(tasks)
  obs_sizes = {t["arrays"]["obs"].shape[1] for t in tasks}
  act_sizes = {t["arrays"]["action"].shape[1] for t in tasks}
  if len(obs_sizes) > 1 or len(act_sizes) > 1:
    sizes = ", ".join(f"{n}: obs {t['arrays']['obs'].shape[1]} action "
                      f"{t['arrays']['action'].shape[1]}" for n, t in zip(names, tasks))
    raise DatasetError(f"the tasks disagree on observation/action size ({sizes}); every task "
                       "must come from the same environment family")
  lengths = [int(t["arrays"]["reward"].shape[0]) for t in tasks]

  rule = "given"
  if segment_length is None:
    recorded = _common_attr(tasks, "segment_length")
    episode_lengths = np.concatenate([_run_lengths(t["arrays"]["episode_id"]) for t in tasks])
    if recorded is not None:
      segment_length, rule = int(recorded), "recorded by the jcomrl export"
    elif episode_lengths.size and (episode_lengths == episode_lengths[0]).all():
      segment_length, rule = int(episode_lengths[0]), "the common episode length"
    else:
      lo, hi = (int(episode_lengths.min()), int(episode_lengths.max())) if \
          episode_lengths.size else (0, 0)
      raise DatasetError(f"episode lengths vary from {lo} to {hi} steps in {', '.join(names)}; "
                         "pass segment_length (--segment_length=L): episodes are concatenated "
                         "and cut into segments of L steps (L bounds the trajectory context)")
  segment_length = int(segment_length)
  if segment_length <= 0:
    raise DatasetError(f"segment_length must be positive, got {segment_length}")
  n = min(lengths) // segment_length * segment_length
  if n == 0:
    short = names[int(np.argmin(lengths))]
    raise DatasetError(f"{short} has only {min(lengths)} transitions, fewer than segment_length "
                       f"{segment_length}; pass a smaller segment_length")

  stacked = {k: np.stack([t["arrays"][k][:n] for t in tasks])
             for k in ("obs", "action", "reward", "next_obs", "terminal", "timeout",
                       "episode_id", "checkpoint_id")}
  rows = [t["task_row"] for t in tasks]
  if all(r is not None for r in rows):
    if len({r.shape for r in rows}) > 1:
      raise DatasetError("infos/task_params differ in size between the tasks")
    stacked["task_params"] = np.stack(rows).astype(np.float32)
    params_source = "infos/task_params"
  elif any(r is not None for r in rows):
    missing = [nm for nm, r in zip(names, rows) if r is None]
    raise DatasetError(f"only some tasks carry infos/task_params (missing in {missing}); give "
                       "all tasks their parameters or none")
  else:
    stacked["task_params"] = np.arange(num_tasks, dtype=np.float32)[:, None]
    params_source = "task index (the source has no task parameters)"
  dataset = OfflineDataset.from_arrays(stacked, segment_length)

  split = split if split is not None else _split(tasks, num_tasks, test_tasks)
  env = env or _common_attr(tasks, "env") or default_env
  meta: dict[str, Any] = {
      "env": env, "env_overrides": _common_attr(tasks, "env_overrides") or {}, "split": split,
      "quality": _common_attr(tasks, "quality") or "imported",
      "task_params_source": params_source,
      "source": {"format": fmt, "layout": layout, "files": [t["info"] for t in tasks],
                 "segment_length_rule": rule, "transitions_per_task": lengths,
                 "trimmed_per_task": [length - n for length in lengths]}}
  norm = normalisation or _common_attr(tasks, "normalisation")
  if norm is not None:
    meta["normalisation"] = {"random": float(norm["random"]), "expert": float(norm["expert"])}
  return dataset, meta


def _split(tasks: list[dict], num_tasks: int, test_tasks) -> dict:
  if test_tasks is None:
    recorded = _common_attr(tasks, "split")
    idx = [t["attrs"].get("task_index") for t in tasks]
    if (recorded is not None and idx == list(range(num_tasks))
        and _common_attr(tasks, "num_tasks") == num_tasks):
      return {"train": [int(i) for i in recorded["train"]],
              "test": [int(i) for i in recorded["test"]]}
    test_tasks = [num_tasks - 1]
  test = sorted({int(i) for i in test_tasks})
  if not test or test[0] < 0 or test[-1] >= num_tasks:
    raise DatasetError(f"test_tasks {list(test_tasks)} must be rows 0..{num_tasks - 1}")
  if num_tasks == 1:
    return {"train": [0], "test": [0]}
  train = [i for i in range(num_tasks) if i not in test]
  if not train:
    raise DatasetError(f"test_tasks {test} leave no training task")
  return {"train": train, "test": test}


# ---------------------------------------------------------------------------- D4RL export


def _dataset_and_meta(dataset_or_dir, meta) -> tuple[OfflineDataset, dict]:
  if isinstance(dataset_or_dir, (str, os.PathLike)):
    return load_dataset(str(dataset_or_dir))
  dataset_or_dir.validate()
  return dataset_or_dir, dict(meta or {})


def _host_arrays(dataset: OfflineDataset) -> dict[str, np.ndarray]:
  arrays = {k: np.asarray(v) for k, v in dataset.arrays().items()}
  for k in ("terminal", "timeout"):
    a = arrays[k]
    if not ((a == 0) | (a == 1)).all():
      raise DatasetError(f"{k} holds values other than 0 and 1; cannot write it as a flag")
  return arrays


def _export_attrs(meta: dict, dataset: OfflineDataset, task: int) -> dict:
  attrs = {"layout": "d4rl", "jcomrl_export_version": EXPORT_VERSION,
           "jcomrl_task_index": task, "jcomrl_num_tasks": dataset.num_tasks,
           "jcomrl_segment_length": dataset.segment_length}
  if isinstance(meta.get("env"), str):
    attrs["jcomrl_env"] = meta["env"]
  if isinstance(meta.get("quality"), str):
    attrs["jcomrl_quality"] = meta["quality"]
  for key in ("split", "normalisation", "env_overrides"):
    if meta.get(key) is not None:
      attrs[f"jcomrl_{key}"] = json.dumps(meta[key], sort_keys=True)
  return attrs


def _targets(out_dir: str, names: list[str], overwrite: bool) -> list[str]:
  paths = [os.path.join(out_dir, nm) for nm in names]
  existing = [p for p in paths if os.path.lexists(p)]
  if existing and not overwrite:
    raise DatasetError(f"{existing[0]} already exists ({len(existing)} of the {len(paths)} "
                       "outputs do); choose another output directory or pass overwrite")
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise DatasetError(f"{out_dir} exists and is not a directory")
  return paths


def export_d4rl(dataset_or_dir, out_dir: str, *, meta: dict | None = None,
                overwrite: bool = False) -> list[str]:
  """Writes each task as a D4RL-layout file ``out_dir/task_<ttt>.hdf5``.

  Each file holds ``observations``, ``actions``, ``rewards``, ``next_observations`` (float32),
  ``terminals``, ``timeouts`` (bool), ``infos/task_params [N, P]``, ``infos/episode_id`` and
  ``infos/checkpoint_id`` (int32), and root attributes ``layout = "d4rl"`` and ``jcomrl_*``
  (export version, task index, number of tasks, segment length, env, quality, split,
  normalisation, env overrides) from which :func:`import_d4rl` restores the dataset bit-exactly.
  Each file is written atomically (temporary file, then rename); existing files are refused
  unless ``overwrite`` (an old file is then replaced only once its new version is complete).

  Args:
    dataset_or_dir: an ``OfflineDataset`` or the directory of a saved one.
    out_dir: created if missing.
    meta: the dataset's meta (when a dataset object is given).
  Returns:
    the written paths, one per task.
  """
  dataset, meta = _dataset_and_meta(dataset_or_dir, meta)
  arrays = _host_arrays(dataset)
  paths = _targets(out_dir, [f"task_{t:03d}.hdf5" for t in range(dataset.num_tasks)], overwrite)
  n = dataset.num_transitions
  for t, path in enumerate(paths):
    with atomic.atomic_file(path, "w+b", suffix=".hdf5") as fobj:
      with h5py.File(fobj, "w") as h:
        h.create_dataset("observations", data=arrays["obs"][t].astype(np.float32))
        h.create_dataset("actions", data=arrays["action"][t].astype(np.float32))
        h.create_dataset("rewards", data=arrays["reward"][t].astype(np.float32))
        h.create_dataset("next_observations", data=arrays["next_obs"][t].astype(np.float32))
        h.create_dataset("terminals", data=arrays["terminal"][t] > 0)
        h.create_dataset("timeouts", data=arrays["timeout"][t] > 0)
        infos = h.create_group("infos")
        params = arrays["task_params"][t].astype(np.float32)
        infos.create_dataset("task_params", data=np.repeat(params[None], n, axis=0))
        infos.create_dataset("episode_id", data=arrays["episode_id"][t].astype(np.int32))
        infos.create_dataset("checkpoint_id", data=arrays["checkpoint_id"][t].astype(np.int32))
        h.attrs.update(_export_attrs(meta, dataset, t))
  return paths


# ---------------------------------------------------------------------------- Minari


def _minari_dirs(path_or_paths) -> list[str]:
  paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else path_or_paths
  out = []
  for p in map(str, paths):
    if not os.path.isdir(p):
      raise DatasetError(f"no Minari dataset directory at {p}; pass a directory holding "
                         "data/metadata.json and data/main_data.hdf5")
    if os.path.exists(os.path.join(p, "data", "metadata.json")):
      out.append(os.path.join(p, "data"))
    elif os.path.exists(os.path.join(p, "metadata.json")):
      out.append(p)
    else:  # a directory of exported tasks (task_000/, task_001/, ...)
      subs = sorted(os.path.join(p, d, "data") for d in os.listdir(p)
                    if os.path.exists(os.path.join(p, d, "data", "metadata.json")))
      if not subs:
        raise DatasetError(f"{p} holds no Minari dataset (no data/metadata.json in it or its "
                           "subdirectories); pass a Minari dataset directory")
      out.extend(subs)
  if not out:
    raise DatasetError("no Minari dataset given; pass at least one dataset directory")
  return out


def _read_minari(data_dir: str) -> dict:
  """One Minari dataset as one task: ``{"arrays", "task_row", "info", "attrs"}`` (its episodes
  in order; see the module docstring)."""
  where = os.path.dirname(data_dir) if os.path.basename(data_dir) == "data" else data_dir
  mmeta, total, main = _minari_metadata(data_dir, where)
  try:
    f = h5py.File(main, "r")
  except OSError as e:
    raise DatasetError(f"{main} is not a readable HDF5 file ({e})") from e
  casts: dict[str, str] = {}
  parts: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminal",
                                            "timeout", "episode_id", "checkpoint_id")}
  dropped: set[str] = set()
  task_rows = []
  with f:
    for i in range(total):
      fields, task_row = _minari_episode(f, main, i, total, casts, dropped)
      for key, arr in fields.items():
        parts[key].append(arr)
      task_rows.append(task_row)
  if any(r is None for r in task_rows) and any(r is not None for r in task_rows):
    raise DatasetError(f"{where}: only some episodes carry infos/task_params")
  if task_rows[0] is not None and not all(np.array_equal(r, task_rows[0]) for r in task_rows):
    raise DatasetError(f"{where}: infos/task_params differ between episodes; one Minari "
                       "dataset must hold one task")
  arrays = {k: np.concatenate(v) for k, v in parts.items()}
  attrs = {}
  own_meta = mmeta.get("jcomrl")
  if isinstance(own_meta, dict):
    attrs = dict(own_meta)
  info = {"name": os.path.basename(where.rstrip(os.sep)), "dataset_id": mmeta.get("dataset_id"),
          "minari_version": mmeta.get("minari_version"), "sha256": sha256_file(main),
          "episodes": total, "transitions": int(arrays["reward"].shape[0]),
          "cast_to_float32": casts, "dropped_infos": sorted(dropped)}
  return {"arrays": arrays, "task_row": task_rows[0], "info": info, "attrs": attrs}


def _minari_metadata(data_dir: str, where: str) -> tuple[dict, int, str]:
  """``(metadata.json, total_episodes, path of main_data.hdf5)`` of a Minari ``data/``
  directory, checked (``DatasetError``)."""
  meta_file = os.path.join(data_dir, "metadata.json")
  try:
    with open(meta_file) as f:
      mmeta = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DatasetError(f"{meta_file} is not valid JSON: {e}") from e
  if not isinstance(mmeta, dict):
    raise DatasetError(f"{meta_file} must hold a JSON object")
  fmt = mmeta.get("data_format", "hdf5")
  if fmt != "hdf5":
    raise DatasetError(f"{where}: data_format {fmt!r}; only Minari's hdf5 storage is read "
                       "(re-create the dataset with data_format='hdf5')")
  total = mmeta.get("total_episodes")
  if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
    raise DatasetError(f"{meta_file}: total_episodes = {total!r} must be a positive int")
  main = os.path.join(data_dir, "main_data.hdf5")
  if not os.path.exists(main):
    raise DatasetError(f"{where}: missing data/main_data.hdf5")
  return mmeta, total, main


def _minari_episode(f, main: str, i: int, total: int, casts: dict,
                    dropped: set[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
  """Group ``episode_<i>`` of an open ``main_data.hdf5`` as ``({field: [T] array}, task row or
  None)``, checked (``DatasetError``); ``casts`` and ``dropped`` collect the float32 casts and
  the infos not read."""
  name = f"episode_{i}"
  if name not in f or not isinstance(f[name], h5py.Group):
    raise DatasetError(f"{main}: missing group {name} (metadata.json says {total} episodes)")
  g = f[name]
  ew = f"{main}:{name}"
  for key in ("observations", "actions", "rewards", "terminations", "truncations"):
    if key not in g:
      raise DatasetError(f"{ew}: missing {key!r}")
    if not isinstance(g[key], h5py.Dataset):
      raise DatasetError(f"{ew}: {key} is a group (a Dict/Tuple space); jcomrl reads flat "
                         "Box observations and actions only: flatten them first")
  obs = _as_float(ew, "observations", g["observations"][()], 2, casts)
  t = obs.shape[0] - 1
  act = _as_float(ew, "actions", g["actions"][()], 2, casts)
  rew = _as_float(ew, "rewards", g["rewards"][()], 1, casts)
  term = _as_flag(ew, "terminations", g["terminations"][()])
  trunc = _as_flag(ew, "truncations", g["truncations"][()])
  if t < 1 or any(a.shape[0] != t for a in (act, rew, term, trunc)):
    raise DatasetError(f"{ew}: observations has {t + 1} rows, actions/rewards/terminations/"
                       f"truncations {act.shape[0]}/{rew.shape[0]}/{term.shape[0]}/"
                       f"{trunc.shape[0]}; expected T + 1 and T (T >= 1)")
  own = _minari_own_infos(g, ew, t, dropped)
  fields = {"obs": obs[:-1], "next_obs": obs[1:], "action": act, "reward": rew, "terminal": term,
            "timeout": trunc,
            "episode_id": (_as_ids(ew, "infos/episode_id", own["episode_id"], t)
                           if "episode_id" in own else np.full(t, i, np.int32)),
            "checkpoint_id": (_as_ids(ew, "infos/checkpoint_id", own["checkpoint_id"], t)
                              if "checkpoint_id" in own else np.zeros(t, np.int32))}
  task_row = _task_row(ew, own["task_params"], t, casts) if "task_params" in own else None
  return fields, task_row


def _minari_own_infos(g, ew: str, t: int, dropped: set[str]) -> dict[str, np.ndarray]:
  """The ``infos/*`` arrays of an episode group that jcomrl reads back (``_OWN_INFOS``), cut to
  the episode's ``t`` steps (per-step infos hold ``t + 1`` rows, the reset's first, or ``t``);
  the other infos' names go to ``dropped``."""
  own = {}
  if "infos" in g and isinstance(g["infos"], h5py.Group):
    def visit(nm, obj, own=own):
      if isinstance(obj, h5py.Dataset):
        if nm in _OWN_INFOS:
          own[nm] = obj[()]
        else:
          dropped.add(f"infos/{nm}")
    g["infos"].visititems(visit)
  for key, arr in own.items():  # per-step infos hold T + 1 rows (reset info first) or T
    if np.asarray(arr).shape[:1] not in ((t,), (t + 1,)):
      raise DatasetError(f"{ew}: infos/{key} has {np.asarray(arr).shape[:1]} rows; "
                         f"expected {t} or {t + 1}")
    own[key] = np.asarray(arr)[:t]
  return own


def import_minari(path_or_paths, *, segment_length: int | None = None, env: str | None = None,
                  test_tasks: Sequence[int] | None = None,
                  normalisation: dict | None = None) -> tuple[OfflineDataset, dict]:
  """Reads Minari 0.5.x hdf5 dataset directories (one per task) into a dataset.

  ``path_or_paths``: a Minari dataset directory (holding ``data/``), its ``data/`` directory,
  a list of them, or a directory of exported tasks (``task_000/``, ...). Episodes hold their
  final observation, so nothing is dropped; ``terminations`` -> ``terminal``, ``truncations``
  -> ``timeout``. Other arguments, the segment mapping and errors as :func:`import_d4rl`
  (``env`` defaults to ``"minari:<dataset_id>"``).
  """
  dirs = _minari_dirs(path_or_paths)
  tasks = [_read_minari(d) for d in dirs]
  default_env = "minari:" + str(tasks[0]["info"]["dataset_id"] or tasks[0]["info"]["name"])
  return _assemble(tasks, "minari", MINARI_LAYOUT, segment_length, env, default_env,
                   test_tasks, normalisation)


def _box(dtype: str, size: int, low: float, high: float) -> str:
  return json.dumps({"type": "Box", "dtype": dtype, "shape": [size], "low": [low] * size,
                     "high": [high] * size})


def _episode_bounds(a: dict[str, np.ndarray], t: int) -> list[tuple[int, int]]:
  """Minari episodes of task row ``t``: split after a terminal / timeout, where the episode id
  changes, or where ``next_obs`` is not the next row's ``obs`` (Minari stores one observation
  sequence per episode, so this keeps every next_obs exact)."""
  obs, nxt = a["obs"][t], a["next_obs"][t]
  cut = ((a["terminal"][t][:-1] > 0) | (a["timeout"][t][:-1] > 0)
         | (a["episode_id"][t][1:] != a["episode_id"][t][:-1])
         | (nxt[:-1] != obs[1:]).any(axis=-1))
  ends = np.r_[np.flatnonzero(cut) + 1, obs.shape[0]]
  starts = np.r_[0, ends[:-1]]
  return list(zip(starts.tolist(), ends.tolist()))


def export_minari(dataset_or_dir, out_dir: str, *, meta: dict | None = None,
                  overwrite: bool = False) -> list[str]:
  """Writes each task as a Minari 0.5.x hdf5 dataset directory ``out_dir/task_<ttt>/``.

  Layout and metadata keys as in the module docstring (``dataset_id``
  ``"jcomrl/<env>_task<ttt>-v0"``, ``minari_version`` ``"0.5.3"``, Box spaces: observations
  unbounded, actions ``[-1, 1]`` when the data lie there); ``metadata.json`` also holds a
  ``"jcomrl"`` entry (segment length, env, split, ...) for :func:`import_minari`. A task row is
  split into episodes at terminal/timeout flags, episode-id changes and wherever ``next_obs``
  differs from the next ``obs``; ``infos/{task_params, episode_id, checkpoint_id}`` have
  ``T + 1`` rows like ``DataCollector``'s infos. Each task directory is built in a temporary
  sibling and renamed into place; existing ones are refused unless ``overwrite``.
  Returns the written dataset directories.
  """
  dataset, meta = _dataset_and_meta(dataset_or_dir, meta)
  a = _host_arrays(dataset)
  paths = _targets(out_dir, [f"task_{t:03d}" for t in range(dataset.num_tasks)], overwrite)
  os.makedirs(out_dir, exist_ok=True)
  env_name = re.sub(r"[^-_\w]", "_", str(meta.get("env", "jcomrl")))
  act = a["action"]
  act_low, act_high = (-1.0, 1.0) if (np.abs(act) <= 1).all() else (-np.inf, np.inf)
  for path in paths:
    if os.path.lexists(path) and not os.path.exists(os.path.join(path, "data", "metadata.json")):
      raise DatasetError(f"{path} exists and is not a Minari dataset; refusing to replace it")
  for t, path in enumerate(paths):
    with atomic.atomic_dir(path) as tmp:
      data_dir = os.path.join(tmp, "data")
      os.makedirs(data_dir)
      bounds = _episode_bounds(a, t)
      with h5py.File(os.path.join(data_dir, "main_data.hdf5"), "w", track_order=True) as h:
        for i, (s, e) in enumerate(bounds):
          g = h.create_group(f"episode_{i}")
          g.attrs["id"] = i
          g.attrs["total_steps"] = e - s
          g.create_dataset("observations", data=np.concatenate(
              [a["obs"][t, s:e], a["next_obs"][t, e - 1:e]]).astype(np.float32))
          g.create_dataset("actions", data=a["action"][t, s:e].astype(np.float32))
          g.create_dataset("rewards", data=a["reward"][t, s:e].astype(np.float32))
          g.create_dataset("terminations", data=a["terminal"][t, s:e] > 0)
          g.create_dataset("truncations", data=a["timeout"][t, s:e] > 0)
          infos = g.create_group("infos")
          rows = np.r_[np.arange(s, e), e - 1]  # T + 1 rows: the last repeated
          params = a["task_params"][t].astype(np.float32)
          infos.create_dataset("task_params", data=np.repeat(params[None], rows.size, axis=0))
          infos.create_dataset("episode_id", data=a["episode_id"][t, rows].astype(np.int32))
          infos.create_dataset("checkpoint_id",
                               data=a["checkpoint_id"][t, rows].astype(np.int32))
      mmeta = {
          "dataset_id": f"jcomrl/{env_name}_task{t:03d}-v0",
          "total_episodes": len(bounds), "total_steps": dataset.num_transitions,
          "data_format": "hdf5", "minari_version": MINARI_VERSION,
          "observation_space": _box("float32", dataset.observation_size, -np.inf, np.inf),
          "action_space": _box("float32", dataset.action_size, act_low, act_high),
          "algorithm_name": "jcomrl export",
          "description": f"task {t} of {dataset.num_tasks} of a jcomrl dataset "
                         f"(env {meta.get('env')!r}), exported by jcomrl.data.interchange",
          "jcomrl": {"export_version": EXPORT_VERSION, "task_index": t,
                     "num_tasks": dataset.num_tasks, "segment_length": dataset.segment_length,
                     **{k: meta[k] for k in ("env", "quality", "split", "normalisation",
                                             "env_overrides") if meta.get(k) is not None}}}
      atomic.write_json(os.path.join(data_dir, "metadata.json"), mmeta)
  return paths
