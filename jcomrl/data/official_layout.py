"""The per-task ``.npy`` layouts of the official codes: export a jcomrl dataset to them.

UNICORN / CORRO (:func:`export_unicorn`) and FOCAL (:func:`export_focal`).

The official UNICORN code (betray12138/UNICORN d8853cd) and CORRO (PKU-RL/CORRO) read offline
data with ``utils/offline_utils.py`` ``load_dataset`` / ``load_transitions``:

* ``<main_data_dir>/<EnvName>/<data_dir>/`` holds one directory per task, named
  ``seed_<k>_goal_<g1>_<g2>...``; ``extract_goal_from_path`` parses the floats after ``goal_``
  as the task's goal (the task parameters), ``offline_utils.py:41-47``.
* each task directory holds ``obs.npy [N, O]``, ``actions.npy [N, A]``, ``rewards.npy [N, 1]``,
  ``next_obs.npy [N, O]`` and ``terminals.npy [N, 1]`` (``load_transitions``,
  ``offline_utils.py:96-108``), float32. 2-D arrays are reshaped to
  ``(-1, trajectory_len, dim)`` (``offline_utils.py:171-175``), so ``N`` must be a multiple of
  the env's episode length (200 for the MuJoCo families): a context "trajectory" is 200
  consecutive rows.
* tasks are taken in ``os.listdir`` order (``offline_utils.py:157-165``), which the file system
  decides, and the first ``num_train_tasks`` become training tasks (``train_offline_FOCAL.py``
  ``main``). Exporting the split's training and test tasks to two sibling ``data_dir``s
  (``train/`` and ``test/``) keeps the split exact whatever the listing order; ``seed_<k>`` is
  the jcomrl task index, so each directory maps back to its row.

What the layout cannot hold: ``timeout`` (episode ends are implicit every ``trajectory_len``
rows), ``episode_id`` and ``checkpoint_id``. :func:`export_unicorn` therefore refuses a dataset
whose segments are not whole episodes of ``segment_length`` steps (a timeout anywhere but a
segment's last step), since the official loader would cut its trajectories elsewhere.
"""

from __future__ import annotations

import json
import os

import numpy as np

from jcomrl import atomic
from jcomrl.data.dataset import DatasetError, OfflineDataset, load_dataset

# Files of one task directory, in load_transitions' order, and the jcomrl field each comes from.
UNICORN_FILES = (("obs", "obs"), ("actions", "action"), ("rewards", "reward"),
                 ("next_obs", "next_obs"), ("terminals", "terminal"))


def goal_dir_name(task_index: int, task_params: np.ndarray) -> str:
  """``seed_<k>_goal_<g>...``: the goal as ``offline_utils.create_goal_path_ext_from_goal``
  writes it (each part rounded to 3 decimals, ``_``-joined); ``extract_goal_from_path`` reads it
  back as floats."""
  parts = "_".join(str(round(float(g), 3)) for g in np.ravel(task_params))
  return f"seed_{task_index}_goal_{parts}"


def export_unicorn(dataset_or_dir, out_dir: str, *, meta: dict | None = None,
                   overwrite: bool = False) -> dict[str, list[str]]:
  """Writes ``out_dir/train/<task dirs>`` and ``out_dir/test/<task dirs>`` in the UNICORN layout.

  ``out_dir`` plays the role of ``<main_data_dir>/<EnvName>``; pass ``data_dir="train"`` /
  ``"test"`` to the official ``load_dataset``. Tasks outside the dataset's split are not
  written. ``out_dir/jcomrl_export.json`` records the source env and its overrides, split,
  segment length, each directory's jcomrl task index and every task row's exact parameters
  (what ``official_import.import_official("unicorn", out_dir)`` restores). The whole tree is
  written to a temporary sibling and renamed into place, so an interrupted export leaves
  nothing half-written; an existing ``out_dir`` is refused unless ``overwrite``.

  Returns:
    ``{"train": [dir names], "test": [dir names]}``.
  """
  dataset, meta, arrays = _exportable(
      dataset_or_dir, meta, out_dir, overwrite, "the UNICORN layout needs one to place its tasks",
      "the UNICORN loader cuts every trajectory_len rows")
  split = meta["split"]
  seg, n = int(dataset.segment_length), dataset.num_transitions
  written = {}
  with atomic.atomic_dir(out_dir, prefix=".unicorn-export-") as tmp:
    for part in ("train", "test"):
      written[part] = []
      for t in split[part]:
        name = goal_dir_name(int(t), arrays["task_params"][t])
        d = os.path.join(tmp, part, name)
        os.makedirs(d)
        for fname, field in UNICORN_FILES:
          a = arrays[field][t].astype(np.float32)
          np.save(os.path.join(d, fname + ".npy"), a.reshape(n, -1))
        written[part].append(name)
    record = {"layout": "unicorn", "env": meta.get("env"), "segment_length": seg,
              "transitions_per_task": n, "split": {k: list(map(int, split[k])) for k in
                                                   ("train", "test")},
              "dirs": written, "normalisation": meta.get("normalisation"),
              **_record_tasks(meta, arrays)}
    with open(os.path.join(tmp, "jcomrl_export.json"), "w") as f:
      json.dump(record, f, indent=1, sort_keys=True)
  return written


# FOCAL's file name (FOCAL-ICLR cc2f1fd rlkit/core/rl_algorithm.py:104-111, sample=1): trajectory
# n of a task, saved from the behaviour model of epoch ``step``.
FOCAL_FILE = "trj_evalsample{n}_step{step}.npy"
# FOCAL's configs read the trajectories of the behaviour model at epoch 6e5 (configs/default.py
# train_epoch / eval_epoch, configs/cheetah-vel.json:25-26).
FOCAL_STEP = 600000


def export_focal(dataset_or_dir, out_dir: str, *, meta: dict | None = None,
                 step: int = FOCAL_STEP, overwrite: bool = False) -> dict[str, list[int]]:
  """Writes ``out_dir/goal_idx<k>/trj_evalsample<n>_step<step>.npy`` in FOCAL's layout.

  FOCAL's loader (FOCAL-ICLR ``rlkit/core/rl_algorithm.py`` ``init_buffer``, lines 101-221)
  globs ``goal_idx*/trj_evalsample<n>_step<epoch>.npy`` for ``n < n_trj``, takes ``k`` of
  ``goal_idx<k>`` as the task's index, and reads each file as an object array of rows
  ``[obs, action, reward, next_obs]``; it marks the last row of every file terminal
  (153-154; ``LearnerConfig.timeout_as_terminal`` does the same in jcomrl). Here each file
  is one segment (``segment_length`` rows) of jcomrl task ``k``, ``n`` its segment index, so
  pass ``n_trj = transitions_per_task / segment_length`` (recorded in
  ``out_dir/jcomrl_export.json`` with the split: FOCAL's train / eval tasks are the split's
  indices). Every task of the split is written; the same checks and atomic write as
  :func:`export_unicorn`.

  Returns:
    ``{"train": [task indices], "test": [task indices]}``.
  """
  dataset, meta, arrays = _exportable(
      dataset_or_dir, meta, out_dir, overwrite,
      "FOCAL's layout needs one to name its train and eval tasks",
      "FOCAL's loader marks every file's last row terminal")
  split = meta["split"]
  seg, n = int(dataset.segment_length), dataset.num_transitions
  written = {"train": [int(t) for t in split["train"]], "test": [int(t) for t in split["test"]]}
  with atomic.atomic_dir(out_dir, prefix=".focal-export-") as tmp:
    for t in written["train"] + written["test"]:
      d = os.path.join(tmp, f"goal_idx{t}")
      os.makedirs(d)
      for j in range(n // seg):
        rows = slice(j * seg, (j + 1) * seg)
        trj = np.empty((seg, 4), dtype=object)
        obs, act = arrays["obs"][t, rows], arrays["action"][t, rows]
        rew, nxt = arrays["reward"][t, rows], arrays["next_obs"][t, rows]
        for i in range(seg):
          trj[i, 0], trj[i, 1] = obs[i].astype(np.float32), act[i].astype(np.float32)
          trj[i, 2], trj[i, 3] = float(rew[i]), nxt[i].astype(np.float32)
        np.save(os.path.join(d, FOCAL_FILE.format(n=j, step=step)), trj, allow_pickle=True)
    record = {"layout": "focal", "env": meta.get("env"), "segment_length": seg,
              "transitions_per_task": n, "n_trj": n // seg, "step": step,
              "split": written, "normalisation": meta.get("normalisation"),
              **_record_tasks(meta, arrays)}
    with open(os.path.join(tmp, "jcomrl_export.json"), "w") as f:
      json.dump(record, f, indent=1, sort_keys=True)
  return written


def _record_tasks(meta: dict, arrays: dict) -> dict:
  """The record entries ``official_import`` restores: the env's overrides and every task row's
  exact parameters (float32 values, which JSON keeps exactly)."""
  return {"env_overrides": dict(meta.get("env_overrides") or {}),
          "task_params": np.asarray(arrays["task_params"], np.float32).tolist()}


def read_export_record(out_dir: str) -> dict:
  """The ``jcomrl_export.json`` an export wrote: source env, split, sizes (and ``n_trj`` and
  ``step`` for FOCAL's layout)."""
  with open(os.path.join(out_dir, "jcomrl_export.json")) as f:
    return json.load(f)


def _exportable(dataset_or_dir, meta, out_dir: str, overwrite: bool, why_split: str,
                why_whole: str):
  """``(dataset, meta, numpy arrays)`` of an export's source, after the checks both layouts
  need: a train/test split, whole segments, and no existing ``out_dir`` unless ``overwrite``."""
  if isinstance(dataset_or_dir, (str, os.PathLike)):
    dataset, meta = load_dataset(str(dataset_or_dir))
  else:
    dataset, meta = dataset_or_dir, dict(meta or {})
  split = meta.get("split")
  if not isinstance(split, dict) or "train" not in split or "test" not in split:
    raise DatasetError(f"the dataset has no train/test split in its meta; {why_split}")
  _check_whole_segments(dataset, why_whole)
  if os.path.exists(out_dir) and not overwrite:
    raise DatasetError(f"{out_dir} already exists; choose another directory or pass overwrite")
  return dataset, meta, {k: np.asarray(v) for k, v in dataset.arrays().items()}


def _check_whole_segments(dataset: OfflineDataset, why: str) -> None:
  seg = int(dataset.segment_length)
  timeout = np.asarray(dataset.transitions.timeout)
  terminal = np.asarray(dataset.transitions.terminal)
  inner = np.ones((dataset.num_transitions,), bool)
  inner[seg - 1::seg] = False
  if dataset.num_transitions % seg or np.any(timeout[:, inner] > 0) or np.any(terminal > 0):
    raise DatasetError(f"this layout holds whole episodes of segment_length steps without early "
                       f"ends ({why}); this dataset has episode ends inside its segments")
