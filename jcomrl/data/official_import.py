"""Import the offline data of the official COMRL codes, read as their own loaders read it.

``import_official(layout, path, ...)`` returns ``(OfflineDataset, meta)`` for ``save_dataset``;
``experiments.convert --from=<layout>`` is the command line. Five layouts:

==========  =====================================================================================
layout      what is read (the official loader it follows)
==========  =====================================================================================
unicorn     ``<main_data_dir>/<EnvName>/<data_dir>/seed_<k>_goal_<g1>_<g2>.../{obs, actions,
corro       rewards, next_obs, terminals}.npy``: UNICORN (betray12138/UNICORN d8853cd) and CORRO
            (PKU-RL/CORRO 210ad40) ``utils/offline_utils.py`` ``load_dataset`` (150-220) /
            ``load_transitions`` (95-107) / ``extract_goal_from_path`` (41-47); FOCAL-latest
            (LanqingLi1993/FOCAL-latest) uses the same file (import its data with ``unicorn``).
focal       ``<data_dir>/goal_idx<k>/trj_evalsample<n>_step<t>.npy``: FOCAL-ICLR (cc2f1fd)
            ``rlkit/core/rl_algorithm.py`` ``init_buffer`` (101-221).
csro        the same files, CSRO (MoreanP/CSRO 7db1efd) ``rlkit/core/rl_algorithm.py``
            ``init_buffer`` (100-166), which lists the paths instead of globbing them.
macaw       ``<dir>/env_<env>_train_task<i>.pkl`` + ``buffers_<env>_train_<i>_sub_task_0.hdf5``:
            MACAW (eric-mitchell/macaw 3dfd4f9) ``run.py`` (52-57) and ``src/utils.py``
            ``ReplayBuffer.__init__`` (111-210).
==========  =====================================================================================

UNICORN / CORRO
---------------
Each task directory holds five arrays; ``load_transitions`` casts them to float32
(``ptu.FloatTensor``, ``offline_utils.py:102-106``; the collectors save float64, CORRO
``learner.py:521-531``, so the cast is theirs too and is recorded per file). A 2-D file ``[N, d]``
is cut into trajectories of ``trajectory_len`` rows (``offline_utils.py:179-184``:
``reshape(-1, trajectory_len, d)``); a 3-D file is ``[trajectory_len, num_trajs, d]``
(``offline_utils.py:191-202``). ``trajectory_len`` is the env's ``_max_episode_steps`` times
``max_rollouts_per_task`` (``offline_utils.py:88``): 200 for the MuJoCo envs registered in
UNICORN ``environments/__init__.py`` (``OFFICIAL_ENVS``); it is not in the files, so it comes from
``segment_length``, a jcomrl export's record, the official env name (the parent directory, as
``load_dataset`` joins ``main_data_dir/env_name/data_dir``, ``offline_utils.py:157``) or the
jcomrl env. Each trajectory is one jcomrl segment: its last row gets ``timeout = 1`` (unless it
is terminal), ``episode_id`` is the trajectory's index; ``terminal`` is the file's flag (CORRO
stores ``is_goal_state`` there, ``learner.py:474``, 0 on MuJoCo). The goal is parsed from the
directory name as ``extract_goal_from_path`` does (the floats after the last ``goal_``; the
collector writes ``seed_<seed>_goal_<g>`` with each part rounded to 3 decimals,
``learner.py:51-53`` and ``offline_utils.py:50-62``), so task parameters carry 3 decimals.

Order and split. ``load_dataset`` takes the directories in ``os.listdir`` order (159-168), which
the file system decides, and ``train_offline_FOCAL.py`` (UNICORN 882-885) makes the first
``num_train_tasks`` the training tasks. The order here is deterministic: by the number after
``seed_`` (the collector's seed), then by name (``meta["source"]["order_rule"]``); the first
``num_train_tasks`` of that order train and the rest are held out, with ``num_train_tasks`` /
``num_eval_tasks`` from the official config of the env (``OFFICIAL_ENVS``; e.g. 20 / 20, CORRO's
walker 16 / 8). A directory holding ``train/`` and ``test/`` subdirectories (what
``official_layout.export_unicorn`` writes) is split by them. ``test_tasks`` overrides both.

Goals -> task parameters. UNICORN's ``_goal`` (``learner.py:51``) is: the target velocity
(``half_cheetah_vel.py:57-61``), the direction +-1 (``half_cheetah_dir.py:79-83``), the direction
angle **in radians** in [0, 2 pi) for ant-dir (``ant_dir.py:45-52``; jcomrl's ``ant_dir`` task
vector is ``(cos, sin)`` of it, so one angle becomes two numbers), and for the rand-param envs
the *absolute* values of body mass, inertia, damping and friction concatenated
(``hopper_rand_params.py:23``, ``rand_param_envs/base.py:87-119``). jcomrl's param envs use the
exponents of the multipliers instead, which cannot be recovered from 3-decimal absolute values
(the world body's mass is 0, small inertias round to 0) without the official model: their goals
are kept as they are and ``meta["task_params_lost"]`` says so.

FOCAL / CSRO
------------
``init_buffer`` reads ``goal_idx<k>/trj_evalsample<n>_step<t>.npy`` (``sample=1``, the default,
``configs/default.py:55``; ``trj_eval<n>_step<t>.npy`` when no ``trj_evalsample`` file exists,
the ``sample=0`` files), ``k`` the task index (``rl_algorithm.py:125-132``). FOCAL globs
``n < n_trj`` and ``step = train_epoch`` (all steps when it is null, 106-114); CSRO lists
``range(*train_epoch)`` x ``range(n_trj)`` per task (104-112), so a missing file is an error
there and here. Each file is an object array of rows ``[obs, action, reward, next_obs]``
(``rlkit/torch/sac/pytorch_sac/train.py:116-128`` writes it, one evaluation episode); the loader
marks its last row terminal (FOCAL 153-154, CSRO 151-152). jcomrl stores that end as
``timeout = 1`` (terminal 0): ``LearnerConfig.timeout_as_terminal=True`` (the FOCAL and CSRO
presets) treats it as their terminal, ``False`` bootstraps through it. Files are episodes,
concatenated per task in the loader's order (FOCAL: ``n`` then step; CSRO: step then ``n``) and
cut into segments of ``segment_length`` (the common file length, else the env's episode length,
else given); ``episode_id`` numbers the files, ``checkpoint_id`` the steps (``meta["source"]
["checkpoint_steps"]``). Object arrays are unpickled by a loader that admits numpy arrays and
scalars only. The files hold no task parameters: the env draws its tasks from a fixed seed and
``goal_idx<k>`` is task ``k`` of that table (FOCAL ``rlkit/envs/half_cheetah_vel.py:54-58``,
``ant_dir.py:50-57``; CSRO ``half_cheetah_vel.py:55-62``). With ``env`` (a jcomrl env) the task
parameters are row ``k`` of the env's benchmark table in the variant of that code (``focal`` /
``csro``, ``env_overrides.variant``), whose tables reproduce theirs; without it they are ``k``.
Where every ``goal_idx<k>`` holds a ``log.txt`` (the rand-param envs' saved parameters, FOCAL
``walker_rand_params_wrapper.py:83-88``, CSRO ``hopper_rand_params_wrapper.py:84-89``), its
absolute parameters are read instead (lost as for UNICORN's). Split: the official config
(``OFFICIAL_ENVS``): FOCAL's first ``n_train_tasks`` train and last ``n_eval_tasks`` evaluate
(``launch_experiment.py:133-141``; both the 2 tasks for the 2-task direction envs), CSRO's evenly
spaced interpolation split (``launch_experiment.py:119-122``); task directories in neither are
not loaded (``rl_algorithm.py:125-132``) and are listed as dropped.

Observation normaliser. FOCAL (``launch_experiment.py:34-38``) and CSRO (35-40) wrap the env in
``NormalizedBoxEnv(obs_absmax=...)`` when the data directory holds ``normalizer.npz``, key
``abs_max``. That wrapper divides the observations returned by ``step()`` by ``abs_max + 1e-8``
(FOCAL ``rlkit/envs/wrappers.py:171-172, 194-195``); ``reset()`` passes through unnormalised
(``ProxyEnv.reset``, 21-22), and neither loader touches the stored data. The importer stores it
unapplied as ``meta["observation_normaliser"]``.

MACAW
-----
``run.py`` unpickles ``env_<env>_train_task<i>.pkl`` (a one-element list holding the task dict,
52-57: ``{"velocity": v}``, ``{"goal": angle}``, ``{"direction": d}`` or the rand-param arrays)
for ``i < total_tasks``; ``ReplayBuffer`` reads ``obs``, ``actions``, ``rewards``,
``terminals``, ``next_obs`` and the derived ``mc_rewards``, ``terminal_obs``,
``terminal_discounts``, ``discount_factor`` of ``buffers_<env>_train_<i>_sub_task_0.hdf5``
(``src/utils.py:190-208``). Their buffer writes each trajectory last step first
(``add_trajectory``, ``utils.py:246-264``), so a file whose rows chain backwards
(``obs[i] == next_obs[i + 1]``) is reversed here (``meta["source"]["files"]``). Episodes end
where the chain breaks or ``terminals`` is set; MACAW bootstraps every trajectory end from
``terminal_obs`` (``macaw.py:305-312``), so the end is stored as ``timeout``. The derived arrays
are dropped (recomputable). MACAW reads only the last ``inner_buffer_size`` rows (``'end'``
mode, ``utils.py:183-192``, default 20000, ``args.py:80``); all rows are read here. Split: the
``train_tasks`` / ``test_tasks`` of its task configs (``OFFICIAL_ENVS``).

Task rows and the env
---------------------
jcomrl evaluates task row ``i`` of a dataset in task ``i`` of ``envs.make(env,
**env_overrides).all_benchmark_tasks()``. With a jcomrl ``env`` the importer checks the
observation and action sizes against it, maps each task to the env table (goal values within
3-decimal rounding, or the goal index) and, when the tasks are exactly the table's first rows,
orders them as the table and takes the table's exact task vectors:
``meta["task_table"]["rows_are_env_tasks"]`` is then true. Otherwise (goals not in the table,
absolute rand-param goals, missing tasks) the rows keep the source order, the flag is false, and
an evaluation in that env would roll out other tasks than the data's.

Every file read is listed with its SHA-256 in ``meta["source"]``; files present but not read are
listed as ignored. A jcomrl export (``jcomrl_export.json`` beside the tasks) restores the env,
its overrides, the segment length, the split and the exact task parameters it records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
from typing import Any, Sequence

import numpy as np

from jcomrl.data import interchange
from jcomrl.data.dataset import DatasetError, OfflineDataset, sha256_file

LAYOUTS = ("unicorn", "corro", "focal", "csro", "macaw")
GOAL_TOLERANCE = 5e-4 + 1e-5  # goals written with 3 decimals (offline_utils.py:61)
UNICORN_FILES = ("obs", "actions", "rewards", "next_obs", "terminals")  # offline_utils.py:102-106
MACAW_KEYS = ("obs", "actions", "rewards", "terminals", "next_obs")  # utils.py:201-208
MACAW_DERIVED = ("mc_rewards", "terminal_obs", "terminal_discounts", "discount_factor")


@dataclasses.dataclass(frozen=True)
class OfficialEnv:
  """One env of an official code's configs.

  Attributes:
    env: the jcomrl env of the family (``None``: none).
    goal: how a stored goal maps onto ``env.task_vector``: ``"value"`` (as is), ``"angle"``
      (radians -> cos, sin), ``"params"`` (absolute rand-param values: not mappable).
    episode_length: rows per trajectory (``trajectory_len`` / ``max_path_length``).
    split: ``("first", num_train, num_eval)`` (positions in the import order) or
      ``("ids", train ids, test ids)`` (task indices).
    variant: ``env_overrides["variant"]`` whose task table the goal indices refer to.
    steps: the behaviour checkpoints read (``None``: every step found).
    n_trj: trajectories per checkpoint read (``None``: every one found).
    cite: the official files the entry follows.
  """

  env: str | None
  goal: str
  episode_length: int | None
  split: tuple
  variant: str | None = None
  steps: tuple | None = None
  n_trj: int | None = None
  cite: str = ""


def _first_last(n: int, n_test: int) -> tuple:
  return ("ids", tuple(range(n - n_test)), tuple(range(n - n_test, n)))


def _evenly(n: int, n_test: int) -> tuple:  # CSRO launch_experiment.py:119-122
  gap = (n - n_test) // n_test + 1
  test = tuple(gap // 2 + gap * i for i in range(n_test))
  return ("ids", tuple(i for i in range(n) if i not in test), test)


_U = "UNICORN offline_rl_config/args_{}.py:13-14, environments/__init__.py"
_C = "CORRO offline_rl_config/args_{}.py:13-14"
_F = "FOCAL-ICLR configs/{}.json:3-6, launch_experiment.py:133-141, configs/default.py:30"
_S = "CSRO configs/{}.json:3-9,22,29-32, launch_experiment.py:119-122"
_M = "MACAW config/{}, run.py:52-57"
OFFICIAL_ENVS: dict[str, dict[str, OfficialEnv]] = {
    "unicorn": {
        "HalfCheetahVel-v0": OfficialEnv("cheetah_vel", "value", 200, ("first", 20, 20),
                                         cite=_U.format("cheetah_vel") + ":12-18"),
        "HalfCheetahDir-v0": OfficialEnv("cheetah_dir", "value", 200, ("first", 20, 20),
                                         cite=_U.format("cheetah_dir") + ":4-10"),
        "AntDir-v0": OfficialEnv("ant_dir", "angle", 200, ("first", 20, 20),
                                 cite=_U.format("ant_dir") + ":20-26"),
        "HopperRandParams-v0": OfficialEnv(
            "hopper_param", "params", 200, ("first", 20, 20),
            cite=_U.format("hopper_param") + ":86-91, hopper_rand_params.py:7"),
        "WalkerRandParams-v0": OfficialEnv(
            "walker_param", "params", 200, ("first", 20, 20),
            cite=_U.format("walker_param") + ":93-98, walker2d_rand_params.py:7"),
    },
    "corro": {
        "HalfCheetahVel-v0": OfficialEnv("cheetah_vel", "value", 200, ("first", 20, 20),
                                         cite=_C.format("cheetah_vel")),
        "AntDir-v0": OfficialEnv("ant_dir", "angle", 200, ("first", 20, 20),
                                 cite=_C.format("ant_dir")),
        "HopperRandParams-v0": OfficialEnv("hopper_param", "params", 200, ("first", 20, 20),
                                           cite=_C.format("hopper_param")),
        "WalkerRandParams-v0": OfficialEnv("walker_param", "params", 200, ("first", 16, 8),
                                           cite=_C.format("walker_param")),
    },
    "focal": {
        "cheetah-vel": OfficialEnv("cheetah_vel", "index", 200, _first_last(100, 20), "focal",
                                   steps=(600000,), n_trj=50,
                                   cite=_F.format("cheetah-vel") + ", cheetah-vel.json:24-29"),
        "cheetah-dir": OfficialEnv("cheetah_dir", "index", 200, ("ids", (0, 1), (0, 1)),
                                   "focal", n_trj=50, cite=_F.format("cheetah-dir")),
        "ant-dir": OfficialEnv("ant_dir", "index", 200, ("ids", (0, 1), (0, 1)), "focal",
                               n_trj=50, cite=_F.format("ant-dir")),
        "hopper-rand-params": OfficialEnv("hopper_param", "index", 200, _first_last(50, 10),
                                          "focal", cite=_F.format("hopper_rand_params")),
        "walker-rand-params": OfficialEnv("walker_param", "index", 200, _first_last(50, 10),
                                          "focal", n_trj=50,
                                          cite=_F.format("walker_rand_params")),
    },
    "csro": {
        "cheetah-vel": OfficialEnv("cheetah_vel", "index", 200, _evenly(40, 10), "csro",
                                   steps=tuple(range(100000, 1000000, 50000)), n_trj=50,
                                   cite=_S.format("cheetah-vel")),
        "hopper-rand-params": OfficialEnv("hopper_param", "index", 200, _evenly(40, 10), "csro",
                                          steps=tuple(range(50000, 1000000, 50000)), n_trj=50,
                                          cite=_S.format("hopper_rand_params")),
        "walker-rand-params": OfficialEnv("walker_param", "index", 200, _evenly(40, 10), "csro",
                                          steps=tuple(range(50000, 1000000, 50000)), n_trj=50,
                                          cite=_S.format("walker_rand_params")),
        "point-robot": OfficialEnv("point_robot", "index", 20, _evenly(40, 10),
                                   steps=tuple(range(2200, 5000, 200)), n_trj=50,
                                   cite=_S.format("point-robot")),
    },
    "macaw": {
        "cheetah_vel": OfficialEnv(
            "cheetah_vel", "value", None,
            ("ids", tuple(i for i in range(40) if i not in (2, 7, 15, 23, 26)), (2, 7, 15, 23, 26)),
            cite=_M.format("cheetah_vel/40tasks_offline.json:4-10")),
        "ant_dir": OfficialEnv(
            "ant_dir", "angle", None,
            ("ids", tuple(i for i in range(50) if i not in (6, 17, 23, 30, 41)),
             (6, 17, 23, 30, 41)), cite=_M.format("ant_dir/50tasks_offline.json:3-10")),
        "cheetah_dir": OfficialEnv("cheetah_dir", "value", None, ("ids", (0, 1), (0, 1)),
                                   cite=_M.format("cheetah_dir/2tasks_offline.json:4-6")),
        "walker_params": OfficialEnv(
            "walker_param", "params", None,
            ("ids", tuple(i for i in range(50) if i not in (43, 15, 12, 39, 2)),
             (43, 15, 12, 39, 2)), cite=_M.format("walker_params/50tasks_offline.json:3-10")),
    },
}


# ---------------------------------------------------------------------------- small readers


_SAFE_GLOBALS = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                 for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("collections", "OrderedDict"),
    ("_codecs", "encode")}  # protocol-2 pickles carry an array's bytes through codecs.encode


class _DataUnpickler(pickle.Unpickler):
  """Unpickles numpy arrays, numpy scalars and plain containers only (no code runs)."""

  def find_class(self, module, name):
    if (module, name) in _SAFE_GLOBALS:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not data")


def _unpickle(path: str, fobj) -> Any:
  try:
    return _DataUnpickler(fobj).load()
  except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
          ValueError) as e:
    raise DatasetError(f"{path} does not unpickle as plain arrays ({e}); re-save it with "
                       "numpy arrays and numbers only") from e


def load_npy(path: str) -> np.ndarray:
  """A ``.npy`` file; object arrays (FOCAL's trajectories) through :class:`_DataUnpickler`."""
  if not os.path.isfile(path):
    raise DatasetError(f"missing file {path}")
  with open(path, "rb") as f:
    try:
      version = np.lib.format.read_magic(f)
      read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
      _, _, dtype = read(f)
      if not dtype.hasobject:
        f.seek(0)
        return np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      raise DatasetError(f"{path} is not a readable .npy file ({e})") from e
    return np.asarray(_unpickle(path, f))


def _file(path: str, root: str, **more) -> dict:
  return {"name": os.path.relpath(path, root), "sha256": sha256_file(path), **more}


def _jcomrl_env(name: str | None, overrides: dict):
  """``(env, task table [T, P] float32)`` of a registered jcomrl env, else ``None``."""
  from jcomrl import envs

  if name is None or name not in envs.registered():
    return None
  try:
    env = envs.make(name, physics="c", **overrides)
  except ValueError as e:
    raise DatasetError(f"env {name!r} with env_overrides {overrides}: {e}") from e
  import jax

  table = np.asarray(jax.vmap(env.task_vector)(env.all_benchmark_tasks()), np.float32)
  return env, table


def _read_record(path: str) -> dict | None:
  """The ``jcomrl_export.json`` an ``official_layout`` export wrote beside the tasks."""
  file = os.path.join(path, "jcomrl_export.json")
  if not os.path.isfile(file):
    return None
  try:
    with open(file) as f:
      record = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DatasetError(f"{file} is not valid JSON: {e}") from e
  if not isinstance(record, dict):
    raise DatasetError(f"{file} must hold a JSON object")
  return record


def detect_layouts(path: str) -> list[str]:
  """The layouts whose marks ``path`` carries (task directories or files by name)."""
  if not os.path.isdir(path):
    return []
  names = os.listdir(path)
  found = []
  if _goal_dirs(path) or any(_goal_dirs(os.path.join(path, n)) for n in names
                             if os.path.isdir(os.path.join(path, n))):
    found.append("unicorn/corro")
  if any(re.fullmatch(r"goal_idx.*", n) for n in names):
    found.append("focal/csro")
  if any(re.fullmatch(r"(env_.+_train_task\d+\.pkl|buffers_.+\.hdf5)", n) for n in names):
    found.append("macaw")
  return found


def _no_layout(layout: str, path: str, want: str) -> DatasetError:
  if not os.path.isdir(path):
    return DatasetError(f"no directory at {path}; pass the {layout} data directory ({want})")
  seen = detect_layouts(path)
  hint = f"; it looks like the {' and '.join(seen)} layout" if seen else ""
  return DatasetError(f"{path} matches no {layout} layout (expected {want}){hint}")


# ---------------------------------------------------------------------------- UNICORN / CORRO


def _goal_dirs(path: str) -> list[str]:
  """The task directories of a UNICORN ``data_dir``: subdirectories whose name holds ``goal_``
  (``extract_goal_from_path`` reads what follows it)."""
  if not os.path.isdir(path):
    return []
  return [n for n in os.listdir(path)
          if "goal_" in n and os.path.isdir(os.path.join(path, n))]


def parse_goal(name: str) -> np.ndarray:
  """The goal of a task directory name, as UNICORN's ``extract_goal_from_path``
  (``offline_utils.py:41-47``) parses it: the ``_``-separated floats after the last ``goal_``."""
  parts = name.split("goal_")[-1].split("_")
  try:
    goal = np.asarray([float(p) for p in parts], np.float64)
  except ValueError:
    bad = next(p for p in parts if not _is_float(p))
    raise DatasetError(f"task directory {name!r} does not parse as seed_<k>_goal_<g1>_<g2>...: "
                       f"{bad!r} is not a number (UNICORN offline_utils.py:41-47 reads the floats "
                       "after 'goal_'); rename it") from None
  if not np.isfinite(goal).all():
    raise DatasetError(f"task directory {name!r} holds a non-finite goal {goal.tolist()}")
  return goal


def _is_float(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _seed(name: str) -> int | None:
  m = re.match(r"seed_(-?\d+)_", name)
  return int(m.group(1)) if m else None


def _unicorn_parts(path: str) -> list[tuple[str | None, str]]:
  """``[(part, data_dir)]``: ``[(None, path)]`` when ``path`` holds task directories, else its
  ``train/`` and ``test/`` (an export) or its one data directory."""
  want = ("task directories seed_<k>_goal_<g1>_... holding obs/actions/rewards/next_obs/"
          "terminals .npy, or train/ and test/ directories of them; point --path at "
          "<main_data_dir>/<EnvName>/<data_dir>")
  if not os.path.isdir(path):
    raise _no_layout("unicorn/corro", path, want)
  if _goal_dirs(path):
    return [(None, path)]
  subs = sorted(n for n in os.listdir(path) if _goal_dirs(os.path.join(path, n)))
  if not subs:
    raise _no_layout("unicorn/corro", path, want)
  if set(subs) == {"train", "test"}:
    return [("train", os.path.join(path, "train")), ("test", os.path.join(path, "test"))]
  if len(subs) > 1:
    raise DatasetError(f"{path} holds several data directories ({', '.join(subs)}); pass one of "
                       "them (UNICORN's load_dataset reads one data_dir, offline_utils.py:157)")
  return [(subs[0], os.path.join(path, subs[0]))]


def _trajectories(where: str, name: str, arr: np.ndarray, length: dict) -> np.ndarray:
  """The rows ``[N, ...]`` of one UNICORN array: a 3-D file is ``[trajectory_len, num_trajs, d]``
  (``offline_utils.py:191-202``; it fixes the trajectory length), a 2-D one ``[N, d]`` cut every
  ``trajectory_len`` rows (179-184). ``length``: ``{"len", "fixed", "rule"}``, updated."""
  if arr.ndim == 3:
    if length["fixed"] and arr.shape[0] != length["len"]:
      raise DatasetError(f"{where}: {name}.npy is [trajectory_len, num_trajs, dim] = "
                         f"{list(arr.shape)}, but trajectories are {length['len']} rows here "
                         f"({length['rule']})")
    if not length["fixed"]:
      length.update(len=int(arr.shape[0]), fixed=True,
                    rule="the trajectory axis of the 3-D files (offline_utils.py:191-202)")
    return arr.transpose(1, 0, 2).reshape(-1, arr.shape[-1])
  if arr.ndim not in (1, 2):
    raise DatasetError(f"{where}: {name}.npy has shape {list(arr.shape)}; expected [N, dim] or "
                       "[trajectory_len, num_trajs, dim] (offline_utils.py:179-202)")
  if length["len"] is None:
    raise DatasetError(f"{where}: the trajectory length is unknown (the files do not hold it; "
                       "UNICORN takes the env's _max_episode_steps, offline_utils.py:88): pass "
                       "--segment_length=L or --env")
  if arr.shape[0] % length["len"]:
    raise DatasetError(f"{where}: {name}.npy has {arr.shape[0]} rows, not a multiple of the "
                       f"trajectory length {length['len']} ({length['rule']}; their "
                       "reshape(-1, trajectory_len, dim) would fail, offline_utils.py:180): pass "
                       "the right --segment_length")
  return arr


def _read_unicorn_task(d: str, root: str, length: dict) -> dict:
  """One task directory: arrays, goal, files (with SHA-256) and the files not read."""
  name = os.path.basename(d)
  goal = parse_goal(name)
  casts: dict[str, str] = {}
  files, raw = [], {}
  for key in UNICORN_FILES:
    p = os.path.join(d, key + ".npy")
    if not os.path.isfile(p):
      raise DatasetError(f"{d}: missing {key}.npy (UNICORN/CORRO load_transitions reads obs, "
                         "actions, rewards, next_obs and terminals .npy, offline_utils.py:95-107)")
    a = load_npy(p)
    files.append(_file(p, root, shape=list(a.shape), dtype=str(a.dtype)))
    raw[key] = _trajectories(d, key, a, length)
  traj_len = length["len"]
  obs = interchange._as_float(d, "obs", raw["obs"], 2, casts)
  n = obs.shape[0]
  arrays = {"obs": obs, "action": interchange._as_float(d, "actions", raw["actions"], 2, casts),
            "reward": interchange._as_float(d, "rewards", raw["rewards"], 1, casts),
            "next_obs": interchange._as_float(d, "next_obs", raw["next_obs"], 2, casts),
            "terminal": interchange._as_flag(d, "terminals", raw["terminals"])}
  for key, arr in arrays.items():
    if arr.shape[0] != n:
      raise DatasetError(f"{d}: {key} has {arr.shape[0]} rows, obs {n}; every file needs one "
                         "row per transition")
  ends = (np.arange(n) % traj_len) == traj_len - 1
  arrays["timeout"] = (ends & (arrays["terminal"] == 0)).astype(np.float32)
  arrays["episode_id"] = (np.arange(n) // traj_len).astype(np.int32)
  arrays["checkpoint_id"] = np.zeros(n, np.int32)
  ignored = sorted(set(os.listdir(d)) - {k + ".npy" for k in UNICORN_FILES})
  info = {"name": os.path.relpath(d, root), "files": files, "transitions": int(n),
          "trajectory_len": int(traj_len), "cast_to_float32": casts, "ignored": ignored}
  return {"key": _seed(name), "name": name, "goal": goal, "arrays": arrays, "info": info}


def _traj_len_rule(ctx: dict, entry) -> tuple[int | None, str]:
  """The trajectory length of a layout that does not store it, and where it comes from."""
  if ctx["segment_length"]:
    return int(ctx["segment_length"]), "given"
  if (ctx["record"] or {}).get("segment_length"):
    return int(ctx["record"]["segment_length"]), "recorded by the jcomrl export"
  if entry is not None and entry.episode_length:
    return entry.episode_length, f"the official env's episode length ({entry.cite})"
  if ctx["env_len"]:
    return int(ctx["env_len"]), "the jcomrl env's episode length"
  return None, "the trajectory axis of the 3-D files"


def _read_unicorn(layout: str, path: str, ctx: dict) -> dict:
  """The task directories of ``path`` in the import order, with the official split."""
  parts = _unicorn_parts(path)
  official_name = os.path.basename(path if parts[0][0] is not None
                                   else os.path.dirname(path))
  entry = OFFICIAL_ENVS[layout].get(official_name) or ctx["entry"]
  traj_len, rule = _traj_len_rule(ctx, entry)
  length = {"len": traj_len, "rule": rule,
            "fixed": rule in ("given", "recorded by the jcomrl export")}
  tasks, part_of = [], []
  for part, data_dir in parts:
    names = sorted(_goal_dirs(data_dir), key=lambda n: (_seed(n) is None, _seed(n) or 0, n))
    for n in names:
      tasks.append(_read_unicorn_task(os.path.join(data_dir, n), path, length))
      part_of.append(part)
  split, split_rule = _unicorn_split(layout, part_of, entry, official_name)
  record = ctx["record"]
  return {"tasks": tasks, "goal_kind": "vector" if record else (entry.goal if entry else "value"),
          "entry": entry, "official_name": official_name, "split": split,
          "split_rule": split_rule, "keys_are_rows": record is not None, "normaliser": None,
          "natural_segment": (length["len"], length["rule"]),
          "order_rule": "task directories sorted by the number after 'seed_' (the collector's "
                        "seed), then by name; the official load_dataset takes os.listdir order "
                        "(offline_utils.py:159-168), which the file system decides",
          "source": {"data_dirs": [os.path.relpath(d, path) for _, d in parts]}}


def _unicorn_split(layout: str, part_of: list, entry, official_name: str) -> tuple:
  """``({"train", "test"} positions or None, rule)``."""
  n = len(part_of)
  if part_of and part_of[0] in ("train", "test"):
    return ({"train": [i for i, p in enumerate(part_of) if p == "train"],
             "test": [i for i, p in enumerate(part_of) if p == "test"]},
            "the train/ and test/ data directories (a jcomrl export)")
  if entry is None:
    return None, (f"no official config known for {official_name!r}: the last task is held out "
                  "(pass --env or --test_tasks)")
  _, n_train, n_eval = entry.split
  if n != n_train + n_eval:
    return None, (f"the official config splits {n_train} + {n_eval} tasks ({entry.cite}) but "
                  f"there are {n}: the last task is held out (pass --test_tasks)")
  return ({"train": list(range(n_train)), "test": list(range(n_train, n))},
          f"the first num_train_tasks = {n_train} of the order train, the other {n_eval} are "
          f"held out ({entry.cite}; train_offline_FOCAL.py:882-885)")


# ---------------------------------------------------------------------------- FOCAL / CSRO

_TRJ_NAMES = {1: re.compile(r"trj_evalsample(\d+)_step(\d+)\.npy"),  # rl_algorithm.py:108-114
              0: re.compile(r"trj_eval(\d+)_step(\d+)\.npy")}  # the sample=0 files, 117-123


def _focal_goal_dirs(path: str, layout: str) -> dict[int, str]:
  """``{k: goal_idx<k> directory}``; a ``goal_idx`` name without an integer is an error."""
  want = "goal_idx<k>/trj_evalsample<n>_step<t>.npy files"
  if not os.path.isdir(path):
    raise _no_layout(layout, path, want)
  out = {}
  for n in sorted(os.listdir(path)):
    if not n.startswith("goal_idx") or not os.path.isdir(os.path.join(path, n)):
      continue
    m = re.fullmatch(r"goal_idx(\d+)", n)
    if not m:
      raise DatasetError(f"{os.path.join(path, n)}: the name does not parse as goal_idx<k> "
                         "(the loader reads k with int(), FOCAL rl_algorithm.py:125-132); rename "
                         "it or move it out of the data directory")
    out[int(m.group(1))] = os.path.join(path, n)
  if not out:
    raise _no_layout(layout, path, want)
  return out


def _trajectory_files(d: str) -> dict[int, dict[tuple[int, int], str]]:
  """``{sample: {(n, step): path}}`` of one goal directory; a ``trj_eval`` name that does not
  parse is an error."""
  out: dict[int, dict] = {1: {}, 0: {}}
  for name in os.listdir(d):
    if not name.startswith("trj_eval"):
      continue
    for sample, pattern in _TRJ_NAMES.items():
      m = pattern.fullmatch(name)
      if m:
        out[sample][(int(m.group(1)), int(m.group(2)))] = os.path.join(d, name)
        break
    else:
      raise DatasetError(f"{os.path.join(d, name)}: the name does not parse as "
                         "trj_evalsample<n>_step<t>.npy (FOCAL rl_algorithm.py:106-114); rename "
                         "or remove it")
  return out


def _select_files(layout: str, dirs: dict, entry, steps) -> tuple[dict, int, list[int], list]:
  """``({k: [(n, step, path)] in the loader's order}, sample, steps, ignored)``: FOCAL globs
  ``n < n_trj`` at the configured step (rl_algorithm.py:105-114), CSRO lists
  ``range(*train_epoch)`` x ``range(n_trj)`` (104-112), so there a missing file is an error."""
  found = {k: _trajectory_files(d) for k, d in dirs.items()}
  sample = 1 if any(f[1] for f in found.values()) else 0
  steps = list(steps) if steps else (list(entry.steps) if entry and entry.steps else sorted(
      {s for f in found.values() for (_, s) in f[sample]}))
  n_trj = entry.n_trj if entry else None
  chosen, ignored = {}, []
  for k, f in found.items():
    files = f[sample]
    if layout == "csro":
      ns = range(n_trj) if n_trj else sorted({n for g in found.values() for (n, _) in g[sample]})
      want = [(n, s) for s in steps for n in ns]  # step-major, CSRO rl_algorithm.py:106-108
      missing = [w for w in want if w not in files]
      if missing:
        n, s = missing[0]
        pattern = "trj_evalsample{}_step{}.npy" if sample else "trj_eval{}_step{}.npy"
        raise DatasetError(f"{dirs[k]}: missing {pattern.format(n, s)} ({len(missing)} of the "
                           f"{len(want)} files CSRO's loader lists, rl_algorithm.py:104-112, "
                           "are missing); pass --steps for the checkpoints present")
    else:
      want = sorted((w for w in files if w[1] in steps and (n_trj is None or w[0] < n_trj)))
    chosen[k] = [(n, s, files[(n, s)]) for n, s in want]
    ignored += [os.path.relpath(p, os.path.dirname(dirs[k])) for w, p in sorted(files.items())
                if w not in set(want)]
  if not any(chosen.values()):
    raise DatasetError(f"no trajectory files at steps {steps} in {os.path.dirname(dirs[min(dirs)])}"
                       "; pass --steps with the steps of the trj_evalsample<n>_step<t>.npy files")
  return chosen, sample, steps, ignored


def _read_trajectory(path: str, casts: dict) -> dict[str, np.ndarray]:
  """One FOCAL trajectory file: object rows ``[obs, action, reward, next_obs]``
  (rl_algorithm.py:104, 148-152)."""
  trj = load_npy(path)
  if trj.ndim != 2 or trj.shape[0] == 0 or trj.shape[1] < 4:
    raise DatasetError(f"{path}: shape {list(trj.shape)}; a trajectory file holds [T, 4] rows "
                       "[obs, action, reward, next_obs] (FOCAL rl_algorithm.py:104, 148-152)")
  cols = {}
  for j, key in enumerate(("obs", "action", "reward", "next_obs")):
    try:
      cols[key] = np.stack([np.ravel(np.asarray(x)) for x in trj[:, j]])
    except (ValueError, TypeError) as e:
      raise DatasetError(f"{path}: column {j} ({key}) does not stack into an array ({e})") from e
  out = {k: interchange._as_float(path, k, v, 1 if k == "reward" else 2, casts)
         for k, v in cols.items()}
  t = out["obs"].shape[0]
  if out["next_obs"].shape != out["obs"].shape:
    raise DatasetError(f"{path}: next_obs has shape {list(out['next_obs'].shape)}, obs "
                       f"{list(out['obs'].shape)}")
  if out["reward"].shape != (t,):
    raise DatasetError(f"{path}: rewards have shape {list(out['reward'].shape)}, expected [{t}]")
  out["terminal"] = np.zeros(t, np.float32)
  out["timeout"] = np.zeros(t, np.float32)
  out["timeout"][-1] = 1.0  # their loader's terminal[-1] = 1 (FOCAL 153-154, CSRO 151-152)
  return out


def _read_focal_task(k: int, d: str, files: list, steps: list, root: str) -> dict:
  casts: dict[str, str] = {}
  parts: dict[str, list] = {key: [] for key in ("obs", "action", "reward", "next_obs",
                                                "terminal", "timeout", "episode_id",
                                                "checkpoint_id")}
  info_files = []
  for e, (n, s, p) in enumerate(files):
    trj = _read_trajectory(p, casts)
    t = trj["obs"].shape[0]
    for key, v in trj.items():
      parts[key].append(v)
    parts["episode_id"].append(np.full(t, e, np.int32))
    parts["checkpoint_id"].append(np.full(t, steps.index(s), np.int32))
    info_files.append(_file(p, root, n=n, step=s, rows=t))
  arrays = {key: np.concatenate(v) for key, v in parts.items()}
  log = os.path.join(d, "log.txt")
  goal, keys = (read_log_params(log) if os.path.isfile(log) else (None, None))
  if goal is not None:
    info_files.append(_file(log, root, params=keys))
  info = {"name": os.path.basename(d), "files": info_files,
          "transitions": int(arrays["reward"].shape[0]), "cast_to_float32": casts,
          "episode_lengths": sorted({f["rows"] for f in info_files if "rows" in f})}
  return {"key": k, "name": os.path.basename(d), "goal": goal, "arrays": arrays, "info": info}


def read_log_params(path: str) -> tuple[np.ndarray, list[str]]:
  """The rand-param task of a ``goal_idx<k>/log.txt`` (the printed dict of arrays that FOCAL's
  ``read_log_params`` parses, ``walker_rand_params_wrapper.py:6-33``): ``(values in the file's
  order, flattened, [key names])``."""
  with open(path) as f:
    text = f.read()
  entries = re.findall(r"'(\w+)'\s*:\s*array\((.*?)\)", text, flags=re.S)
  if not entries:
    raise DatasetError(f"{path} does not parse as a dict of arrays ('name': array([...]), the "
                       "format of FOCAL's read_log_params, walker_rand_params_wrapper.py:6-33); "
                       "fix or remove it")
  number = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
  values = [float(v) for _, body in entries for v in re.findall(number, body.split("dtype")[0])]
  return np.asarray(values, np.float64), [k for k, _ in entries]


def _read_normaliser(path: str) -> dict | None:
  """``normalizer.npz`` of a FOCAL / CSRO data directory, as their launchers read it."""
  file = os.path.join(path, "normalizer.npz")
  if not os.path.isfile(file):
    return None
  try:
    with np.load(file, allow_pickle=False) as z:
      keys = sorted(z.keys())
      absmax = np.asarray(z["abs_max"], np.float64) if "abs_max" in keys else None
  except (ValueError, OSError, EOFError) as e:
    raise DatasetError(f"{file} is not a readable .npz file ({e})") from e
  if absmax is None:
    raise DatasetError(f"{file} holds {keys} but no 'abs_max' (FOCAL launch_experiment.py:35 and "
                       "CSRO :37 read np.load(...)['abs_max']); rename the key or remove the file")
  if not np.isfinite(absmax).all():
    raise DatasetError(f"{file}: abs_max holds non-finite values")
  return {"kind": "abs_max", "obs_absmax": absmax.reshape(-1).tolist(),
          "shape": list(absmax.shape), "source": {"file": "normalizer.npz",
                                                  "sha256": sha256_file(file)},
          "formula": "obs / (obs_absmax + 1e-8)",
          "applies_to": "the observations step() returns (FOCAL rlkit/envs/wrappers.py:171-172, "
                        "194-195); not reset()'s (ProxyEnv.reset, 21-22), not the stored data",
          "applied_to_stored_data": False,
          "cite": "FOCAL launch_experiment.py:34-38, CSRO launch_experiment.py:35-40"}


def _read_focal(layout: str, path: str, ctx: dict) -> dict:
  dirs = _focal_goal_dirs(path, layout)
  official_name = os.path.basename(path)
  entry = OFFICIAL_ENVS[layout].get(official_name) or ctx["entry"]
  chosen, sample, steps, ignored = _select_files(layout, dirs, entry, ctx["steps"])
  if ctx["test_tasks"] is not None:
    dropped, split, split_rule = [], None, "given (test_tasks)"
  else:
    dropped, split, split_rule = _focal_split(sorted(dirs), entry, ctx["record"])
  keep = [k for k in sorted(dirs) if k not in dropped]
  tasks = [_read_focal_task(k, dirs[k], chosen[k], steps, path) for k in keep]
  with_log = [t["goal"] is not None for t in tasks]
  if any(with_log) and not all(with_log):
    missing = [t["name"] for t, w in zip(tasks, with_log) if not w]
    raise DatasetError(f"{path}: only some goal_idx directories hold log.txt (missing in "
                       f"{missing[:3]}); give all tasks their parameters or none")
  lengths = sorted({n for t in tasks for n in t["info"]["episode_lengths"]})
  if len(lengths) == 1:
    seg = (lengths[0], "the common trajectory file length")
  else:
    seg = _traj_len_rule(ctx, entry)
  order = ("n, then step (FOCAL rl_algorithm.py:105-114)" if layout == "focal"
           else "step, then n (CSRO rl_algorithm.py:104-112)")
  return {"tasks": tasks, "goal_kind": "params" if all(with_log) else "index", "entry": entry,
          "official_name": official_name, "split": split, "split_rule": split_rule,
          "keys_are_rows": ctx["record"] is not None, "normaliser": _read_normaliser(path),
          "natural_segment": seg if ctx["segment_length"] is None else
          (ctx["segment_length"], "given"),
          "order_rule": f"tasks by k of goal_idx<k>; a task's files by {order}, the loader's "
                        "order",
          "source": {"sample": sample, "checkpoint_steps": steps, "ignored_files": ignored,
                     "dropped_tasks": [os.path.basename(dirs[k]) for k in dropped],
                     "trajectory_lengths": lengths}}


def _focal_split(keys: list[int], entry, record) -> tuple[list[int], dict | None, str]:
  """``(dropped task keys, {"train", "test"} positions among the kept ones, rule)``: the record's
  split (a jcomrl export), else the official one, whose tasks alone are loaded."""
  if record is not None and isinstance(record.get("split"), dict):
    train, test = record["split"].get("train", []), record["split"].get("test", [])
    rule = "recorded by the jcomrl export"
  elif entry is not None:
    _, train, test = entry.split
    rule = (f"the official config's train / eval task indices ({entry.cite}); the loader loads "
            f"only those tasks (rl_algorithm.py:125-132)")
  else:
    return [], None, ("no official config known: the last task is held out (pass --env or "
                      "--test_tasks)")
  wanted = set(train) | set(test)
  kept = [k for k in keys if k in wanted]
  pos = {k: i for i, k in enumerate(kept)}
  split = {"train": [pos[k] for k in train if k in pos], "test": [pos[k] for k in test if k in pos]}
  if not split["train"] or not split["test"]:
    raise DatasetError(f"the {rule.split(' (')[0]} names train tasks {list(train)[:5]}... and test "
                       f"tasks {list(test)[:5]}..., but the data has goal_idx {keys[:5]}...: "
                       "pass --test_tasks (task rows in goal_idx order)")
  return [k for k in keys if k not in wanted], split, rule


# ---------------------------------------------------------------------------- MACAW

_MACAW_TASK = re.compile(r"env_(.+)_train_task(\d+)\.pkl")  # config/*/*.json task_paths


def _macaw_files(path: str) -> tuple[str, dict[int, tuple[str, str]]]:
  """``(env name, {i: (task pkl, buffer hdf5)})`` for ``i < total_tasks`` (run.py:53)."""
  want = "env_<env>_train_task<i>.pkl and buffers_<env>_train_<i>_sub_task_0.hdf5 files"
  if not os.path.isdir(path):
    raise _no_layout("macaw", path, want)
  found: dict[int, str] = {}
  names = set()
  for n in sorted(os.listdir(path)):
    m = _MACAW_TASK.fullmatch(n)
    if m:
      names.add(m.group(1))
      found[int(m.group(2))] = os.path.join(path, n)
    elif n.startswith("env_") and n.endswith(".pkl"):
      raise DatasetError(f"{os.path.join(path, n)}: the name does not parse as "
                         "env_<env>_train_task<i>.pkl (MACAW's task_paths, config/*/*.json); "
                         "rename or remove it")
  if not found:
    raise _no_layout("macaw", path, want)
  if len(names) > 1:
    raise DatasetError(f"{path} holds the tasks of several envs ({sorted(names)}); pass a "
                       "directory of one env")
  env = names.pop()
  out = {}
  for i in range(max(found) + 1):
    pkl = found.get(i, os.path.join(path, f"env_{env}_train_task{i}.pkl"))
    buf = os.path.join(path, f"buffers_{env}_train_{i}_sub_task_0.hdf5")
    for p in (pkl, buf):
      if not os.path.isfile(p):
        raise DatasetError(f"missing file {p} (MACAW reads the task and buffer of every task "
                           f"i < total_tasks, run.py:53-57, macaw.py:170-172)")
    out[i] = (pkl, buf)
  return env, out


def _macaw_goal(path: str) -> tuple[np.ndarray, list[str]]:
  """The task dict of a MACAW task pickle (a one-element list, run.py:54-57), flattened."""
  with open(path, "rb") as f:
    task = _unpickle(path, f)
  if not isinstance(task, (list, tuple)) or len(task) != 1 or not isinstance(task[0], dict):
    raise DatasetError(f"{path}: expected a one-element list holding the task dict (run.py:56), "
                       f"got {type(task).__name__}")
  try:
    values = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in task[0].values()])
  except (TypeError, ValueError) as e:
    raise DatasetError(f"{path}: the task dict's values are not numbers ({e})") from e
  return values, [str(k) for k in task[0]]


def _chain(obs: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(forward, backward)`` links: row i's next_obs is row i+1's obs / the reverse."""
  return (nxt[:-1] == obs[1:]).all(axis=1), (obs[:-1] == nxt[1:]).all(axis=1)


def _read_macaw_buffer(path: str, root: str) -> tuple[dict, dict]:
  import h5py

  casts: dict[str, str] = {}
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise DatasetError(f"{path} is not a readable HDF5 file ({e})") from e
  with f:
    for key in MACAW_KEYS:
      if key not in f:
        raise DatasetError(f"{path}: missing dataset {key!r} (MACAW's ReplayBuffer reads "
                           f"{', '.join(MACAW_KEYS + MACAW_DERIVED)}, utils.py:190-208)")
    a = {"obs": interchange._as_float(path, "obs", f["obs"][()], 2, casts),
         "action": interchange._as_float(path, "actions", f["actions"][()], 2, casts),
         "reward": interchange._as_float(path, "rewards", f["rewards"][()], 1, casts),
         "next_obs": interchange._as_float(path, "next_obs", f["next_obs"][()], 2, casts),
         "done": interchange._as_flag(path, "terminals", f["terminals"][()])}
    dropped = sorted(k for k in f.keys() if k not in MACAW_KEYS)
  n = a["obs"].shape[0]
  if any(v.shape[0] != n for v in a.values()) or a["next_obs"].shape != a["obs"].shape:
    raise DatasetError(f"{path}: obs/actions/rewards/terminals/next_obs differ in rows or shape "
                       f"({ {k: list(v.shape) for k, v in a.items()} })")
  fwd, bwd = _chain(a["obs"], a["next_obs"])
  reverse = int(bwd.sum()) > int(fwd.sum())
  if reverse:  # add_trajectory writes each trajectory last step first (utils.py:246-264)
    a = {k: v[::-1].copy() for k, v in a.items()}
    fwd, _ = _chain(a["obs"], a["next_obs"])
  ends = np.r_[~fwd | (a["done"][:-1] > 0), True]
  info = _file(path, root, rows=int(n), reversed=reverse, forward_links=int(fwd.sum()),
               dropped=dropped, cast_to_float32=casts)
  arrays = {k: a[k] for k in ("obs", "action", "reward", "next_obs")}
  arrays["terminal"] = np.zeros(n, np.float32)
  arrays["timeout"] = ends.astype(np.float32)
  arrays["episode_id"] = interchange._episode_ids_from_ends(ends).astype(np.int32)
  arrays["checkpoint_id"] = np.zeros(n, np.int32)
  return arrays, info


def _read_macaw(layout: str, path: str, ctx: dict) -> dict:
  env_name, files = _macaw_files(path)
  entry = OFFICIAL_ENVS["macaw"].get(env_name) or ctx["entry"]
  tasks = []
  for i, (pkl, buf) in files.items():
    goal, keys = _macaw_goal(pkl)
    arrays, info = _read_macaw_buffer(buf, path)
    tasks.append({"key": i, "name": f"task {i}", "goal": goal, "arrays": arrays,
                  "info": {"name": f"task {i}", "files": [_file(pkl, path, task_keys=keys), info],
                           "transitions": info["rows"]}})
  lengths = np.concatenate([interchange._run_lengths(t["arrays"]["episode_id"]) for t in tasks])
  seg = ((int(lengths[0]), "the common episode length") if (lengths == lengths[0]).all()
         else _traj_len_rule(ctx, entry))
  if ctx["segment_length"]:
    seg = (int(ctx["segment_length"]), "given")
  split, rule = None, f"no MACAW task config known for {env_name!r}: the last task is held out"
  if entry is not None and ctx["test_tasks"] is None:
    _, train, test = entry.split
    if max(train + test) < len(tasks):
      split = {"train": sorted(train), "test": sorted(test)}
      rule = f"the train_tasks / test_tasks of {entry.cite}"
  return {"tasks": tasks, "goal_kind": entry.goal if entry else "value", "entry": entry,
          "official_name": env_name, "split": split, "split_rule": rule,
          "keys_are_rows": False, "normaliser": None, "natural_segment": seg,
          "order_rule": "task i of env_<env>_train_task<i>.pkl, i = 0, 1, ... (run.py:53)",
          "source": {"terminals_stored_as": "timeout (MACAW bootstraps every trajectory end "
                                            "from terminal_obs, macaw.py:305-312)"}}


# ---------------------------------------------------------------------------- task parameters


def _goal_vectors(read: dict) -> list[np.ndarray] | None:
  """Each task's goal in jcomrl's task-vector convention (``None`` for index-only tasks)."""
  kind = read["goal_kind"]
  if kind == "index":
    return None
  out = []
  for t in read["tasks"]:
    g = np.asarray(t["goal"], np.float64)
    if kind == "angle" and g.size == 1:  # radians (UNICORN ant_dir.py:45-52) -> (cos, sin)
      g = np.array([np.cos(g[0]), np.sin(g[0])])
    out.append(g)
  if len({g.shape for g in out}) > 1:
    raise DatasetError(f"the tasks' goals differ in length ({sorted({g.size for g in out})}); "
                       "every task must come from the same env")
  return out


def _match_rows(vectors: list[np.ndarray], table: np.ndarray) -> tuple[list, int]:
  """``(env table row of each goal or None, number of goals near several rows)``: goals and rows
  within 3-decimal rounding are paired closest first, each row once (two env tasks closer than
  the rounding, e.g. 5e-4 rad apart in ant_dir's table, cannot be told apart by their names:
  the closer pairing is taken and the count recorded)."""
  rows: list[int | None] = [None] * len(vectors)
  if not vectors or vectors[0].shape != table.shape[1:]:
    return rows, 0
  d = np.abs(np.stack(vectors)[:, None, :] - table.astype(np.float64)[None]).max(axis=-1)
  near = d <= GOAL_TOLERANCE
  taken = set()
  for g, r in sorted(zip(*np.nonzero(near)), key=lambda gr: d[gr]):
    if rows[g] is None and r not in taken:
      rows[g] = int(r)
      taken.add(int(r))
  return rows, int((near.sum(axis=1) > 1).sum())


def _task_params(read: dict, built, record: dict | None) -> tuple[list[int], np.ndarray, dict]:
  """``(order: position of the task for each new row, task_params [T, P], meta entries)``."""
  tasks, kind = read["tasks"], read["goal_kind"]
  n = len(tasks)
  vectors = _goal_vectors(read)
  table = None if built is None else built[1]
  ambiguous = 0
  if kind == "index":
    env_rows = [t["key"] if table is not None and t["key"] < len(table) else None for t in tasks]
  elif kind == "params" or table is None:
    env_rows = [None] * n
  else:
    env_rows, ambiguous = _match_rows(vectors, table)
  aligned = table is not None and sorted(r for r in env_rows if r is not None) == list(range(n))
  order = sorted(range(n), key=lambda i: env_rows[i]) if aligned else list(range(n))
  if aligned or (kind == "index" and None not in env_rows):
    params, source = table[[env_rows[i] for i in order]], "the env's benchmark task table"
  elif vectors is not None:
    params, source = np.stack([vectors[i] for i in order]), _GOAL_SOURCE[read["layout"]]
  else:
    params = np.asarray([[tasks[i]["key"]] for i in order], np.float64)
    source = "the goal index k of goal_idx<k> (the files hold no task parameters; pass --env)"
  rec = (record or {}).get("task_params")
  if read["keys_are_rows"] and isinstance(rec, list) and all(
      isinstance(tasks[i]["key"], int) and 0 <= tasks[i]["key"] < len(rec) for i in order):
    params = np.asarray([rec[tasks[i]["key"]] for i in order], np.float64)
    source = "recorded by the jcomrl export (jcomrl_export.json)"
  entries = {"task_params_source": source, "task_table": {
      "rows_are_env_tasks": bool(aligned), "env_rows": [env_rows[i] for i in order],
      "source_tasks": [tasks[i]["name"] for i in order], "goals_near_several_rows": ambiguous,
      "rule": _table_rule(kind, aligned, table is not None)}}
  if kind == "params" and not read["keys_are_rows"]:
    entries["task_params_lost"] = (
        "the goals are the official env's absolute body_mass / body_inertia / dof_damping / "
        "geom_friction values (UNICORN rand_param_envs/base.py:87-119, FOCAL/CSRO log.txt), "
        "rounded to 3 decimals in UNICORN's directory names; jcomrl's param envs use the "
        "exponents of the multipliers, which these cannot give back (the world body's mass is "
        "0, small inertias round to 0), so task_params are those absolute values and the task "
        "rows are not the env's tasks")
  return order, np.asarray(params, np.float32), entries


_GOAL_SOURCE = {
    "unicorn": "the goal in each task directory's name (offline_utils.py:41-47)",
    "corro": "the goal in each task directory's name (offline_utils.py:41-47)",
    "focal": "goal_idx<k>/log.txt (the rand-param values)",
    "csro": "goal_idx<k>/log.txt (the rand-param values)",
    "macaw": "the task dict of env_<env>_train_task<i>.pkl (run.py:54-57)"}


def _table_rule(kind: str, aligned: bool, have_env: bool) -> str:
  if not have_env:
    return "no jcomrl env named: the rows keep the source order and are no env's tasks"
  if aligned:
    how = "goal index k is env task k" if kind == "index" else (
        "each goal matched the env task within 3-decimal rounding")
    return (f"{how}; the rows are the env's benchmark tasks 0..T-1 in order, with its exact "
            "task vectors")
  return ("the goals are not the env's first benchmark tasks (env_rows: the matching env task, "
          "null where none): the rows keep the source order, and an evaluation in this env "
          "would roll out other tasks than the data's")


# ---------------------------------------------------------------------------- the import


_READERS = {"unicorn": _read_unicorn, "corro": _read_unicorn, "focal": _read_focal,
            "csro": _read_focal, "macaw": _read_macaw}
_LAYOUT_TEXT = {
    "unicorn": "UNICORN utils/offline_utils.py load_dataset: <data_dir>/seed_<k>_goal_<g>.../"
               "{obs,actions,rewards,next_obs,terminals}.npy",
    "corro": "CORRO utils/offline_utils.py load_dataset (UNICORN's): <data_dir>/seed_<k>_goal_"
             "<g>.../{obs,actions,rewards,next_obs,terminals}.npy",
    "focal": "FOCAL-ICLR rlkit/core/rl_algorithm.py init_buffer: <data_dir>/goal_idx<k>/"
             "trj_evalsample<n>_step<t>.npy",
    "csro": "CSRO rlkit/core/rl_algorithm.py init_buffer: <data_dir>/goal_idx<k>/"
            "trj_evalsample<n>_step<t>.npy",
    "macaw": "MACAW run.py + src/utils.py ReplayBuffer: env_<env>_train_task<i>.pkl + "
             "buffers_<env>_train_<i>_sub_task_0.hdf5"}


def _entry_for_env(layout: str, env: str | None) -> OfficialEnv | None:
  for entry in OFFICIAL_ENVS[layout].values():
    if env is not None and entry.env == env:
      return entry
  return None


def import_official(layout: str, path: str, *, env: str | None = None,
                    env_overrides: dict | None = None, segment_length: int | None = None,
                    test_tasks: Sequence[int] | None = None, normalisation: dict | None = None,
                    steps: Sequence[int] | None = None) -> tuple[OfflineDataset, dict]:
  """Reads an official code's offline-data directory (see the module docstring).

  Args:
    layout: one of :data:`LAYOUTS`.
    path: the data directory (UNICORN / CORRO: ``<main_data_dir>/<EnvName>/<data_dir>``, or an
      ``export_unicorn`` output; FOCAL / CSRO: the ``data_dir`` holding ``goal_idx<k>/``;
      MACAW: the directory of one env's ``.pkl`` and ``.hdf5`` files).
    env: a jcomrl env to train the data with (its sizes are checked, its task table orders the
      rows), or any label (default: recorded by a jcomrl export, else ``<layout>:<name>``).
    env_overrides: for ``envs.make`` (default: recorded, else ``{"variant": "focal"}`` /
      ``"csro"`` for those layouts' envs, whose task tables their goal indices refer to).
    segment_length: rows per segment (default: the trajectory length; see the docstring).
    test_tasks: held-out task rows (default: the official split).
    normalisation: ``{"random": R, "expert": E}`` score anchors (optional).
    steps: FOCAL / CSRO checkpoint steps to read (default: the official config's, else all).
  Returns:
    ``(dataset with numpy leaves, meta)`` for ``save_dataset``.
  Raises:
    DatasetError: one line naming the file and the problem.
  """
  if layout not in LAYOUTS:
    raise DatasetError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
  path = os.path.abspath(str(path))
  record = _read_record(path) if os.path.isdir(path) else None
  env_name = env or (record or {}).get("env")
  entry = _entry_for_env(layout, env_name)
  if env_overrides is None and isinstance((record or {}).get("env_overrides"), dict):
    env_overrides = dict(record["env_overrides"])  # what the exported dataset was made with
  elif env_overrides is None:
    env_overrides = {"variant": entry.variant} if entry is not None and entry.variant else {}
  built = _jcomrl_env(env_name, env_overrides)
  ctx = {"segment_length": segment_length, "record": record, "entry": entry, "steps": steps,
         "env_len": built[0].episode_length if built else None, "test_tasks": test_tasks}
  read = _READERS[layout](layout, path, ctx)
  read["layout"] = layout
  if built is not None:
    _check_sizes(read["tasks"], env_name, env_overrides, built[0])
  return _assemble(read, layout, path, env_name, env_overrides, built, record, ctx,
                   normalisation)


def _check_sizes(tasks: list[dict], env: str, overrides: dict, e) -> None:
  t = tasks[0]
  obs, act = t["arrays"]["obs"].shape[1], t["arrays"]["action"].shape[1]
  if (obs, act) != (e.observation_size, e.action_size):
    raise DatasetError(f"{t['info']['name']}: observations have {obs} dims and actions {act}, "
                       f"but env {env!r} (env_overrides {overrides}) has {e.observation_size} "
                       f"and {e.action_size}; pass the --env (and --env_overrides) the data "
                       "came from, or leave --env out")


def _assemble(read: dict, layout: str, path: str, env_name, overrides, built, record, ctx,
              normalisation) -> tuple[OfflineDataset, dict]:
  order, params, entries = _task_params(read, built, record)
  new_row = {old: new for new, old in enumerate(order)}
  tasks = []
  for i in order:
    t = read["tasks"][i]
    tasks.append({"arrays": t["arrays"], "task_row": params[len(tasks)], "info": t["info"],
                  "attrs": {}})
  split = None
  if read["split"] is not None and ctx["test_tasks"] is None:
    split = {k: sorted(new_row[i] for i in v) for k, v in read["split"].items()}
  seg, seg_rule = read["natural_segment"]
  default_env = f"{layout}:{read['official_name'] or os.path.basename(path)}"
  dataset, meta = interchange._assemble(tasks, layout, _LAYOUT_TEXT[layout], seg, env_name,
                                        default_env, ctx["test_tasks"], normalisation,
                                        split=split)
  src = meta["source"]
  src.update(read["source"], root=path, order_rule=read["order_rule"],
             segment_length_rule=seg_rule if seg else src["segment_length_rule"],
             split_rule="given (test_tasks)" if ctx["test_tasks"] is not None
             else read["split_rule"],
             official_env=read["official_name"], official_config=(
                 read["entry"].cite if read["entry"] is not None else None),
             jcomrl_export=record is not None)
  meta["env_overrides"] = dict(overrides) if built is not None else {}
  meta.update(entries)
  meta["task_table"].update(env=meta["env"], env_overrides=meta["env_overrides"])
  if read["normaliser"] is not None:
    _check_normaliser(read["normaliser"], dataset.observation_size)
    meta["observation_normaliser"] = read["normaliser"]
  return dataset, meta


def _check_normaliser(norm: dict, obs_size: int) -> None:
  if len(norm["obs_absmax"]) not in (1, obs_size):
    raise DatasetError(f"normalizer.npz: abs_max has {len(norm['obs_absmax'])} values but the "
                       f"observations have {obs_size} dims; it must hold one per dim")
