"""The official behaviour agents (PyTorch, rlkit ``TanhGaussianPolicy``) as jcomrl actor params.

CORRO (PKU-RL/CORRO 210ad40) collects its data with one SAC agent per task
(``train_data_collection.py:50-52``, one run per ``--seed``) and UNICORN (betray12138/UNICORN
d8853cd) ships the same ``learner.py``, ``models/policy.py`` and ``torchkit/`` (identical files)
and ``algorithms/sac.py`` (one more import and one blank line: its lines from 10 on are one or two
below CORRO's). Line numbers are CORRO's. What a checkpoint holds:

* the file: ``<run dir>/models/agent<i>.pt``, written by
  ``torch.save(self.agent.state_dict(), ...)`` (``learner.py:294-302``): the state dict of the
  *whole* SAC agent (``algorithms/sac.py:12``, an ``nn.Module``), a mapping of tensors, not a
  pickled module. ``<i>`` is the iteration count: ``log`` runs when ``(iter_ + 1) %
  log_interval == 0`` and saves when also ``iteration % save_interval == 0``
  (``learner.py:181,199-200,294``; ``--log-interval 10 --save-interval 20``,
  ``data_collection_config/args_<env>.py:33-34``, ant_dir 34-35: agent20, agent40, ...). The
  run directory is ``seed_<k>_goal_<g>`` (``learner.py:49-53`` without ``--log-tensorboard``;
  UNICORN's ``README.md:47-56`` ships ``batch_data_copy/<Env>/data/seed_<k>_goal_<g>/models/
  agentxx.pt``) or ``<k>__<dd_mm_HH_MM_SS>`` (``utils/tb_logger.py:18`` with
  ``--log-tensorboard 1``, as CORRO's ``README.md:23`` runs it).
* how the OOD evaluation uses them: each line of ``ood_test_config/<env>.txt`` is one such file;
  ``load_behavior_policy`` rebuilds a SAC agent with ``[128, 128]`` networks and
  ``load_state_dict(torch.load(path))`` (UNICORN ``train_offline_FOCAL.py:817-842,894-905``,
  CORRO ``test_ood_context.py:196-221,311-313,360-367``), then rolls it *sampling* actions
  (``context_agent.act(obs)``, ``deterministic=False``: UNICORN ``train_offline_FOCAL.py:756``,
  CORRO ``test_ood_context.py:250``) in each test task. UNICORN lists every saved agent of all 40
  tasks (``ood_test_config/AntDir-v0.txt``: agent20 ... agent200; ``HopperRandParams-v0.txt``:
  agent100 ... agent700); CORRO ten agents of ten tasks, mostly the last iteration
  (``ood_test_config/ant_dir.txt``: agent200 of seeds 1-5 and 36-40; ``cheetah_vel.txt``: a mix
  of agent300/400/500).
* the agent's modules: ``qf1``, ``qf2``, ``qf1_target``, ``qf2_target``, ``policy``
  (``algorithms/sac.py:40-50``); the learnt temperature is a plain tensor, not in the state dict
  (``sac.py:57``). The actor is ``policy.*``.
* the actor (``models/policy.py:15-59`` on ``torchkit/networks.py:17-62``): hidden layers
  ``fc0``, ``fc1``, ... (``nn.Linear`` registered by ``__setattr__("fc{i}")``;
  ``self.fcs`` is a plain list, so there are no ``fcs.<i>`` keys), then the mean head
  ``last_fc`` and the log-std head ``last_fc_log_std`` (``policy.py:57``), no layer norm
  (``layer_norm=False``, ``networks.py:28``; ``learner.py:154-156`` passes none). Forward
  (``policy.py:85-99``): ``h = relu(fc_i(h))`` (``hidden_activation=F.relu``,
  ``networks.py:24``), ``mean = last_fc(h)``, ``log_std = clamp(last_fc_log_std(h), -20, 2)``
  (``LOG_SIG_MIN/MAX``, ``policy.py:11-12,91``); the deterministic action is ``tanh(mean)``
  (``policy.py:98-99``), a sample ``tanh(mean + exp(log_std) * eps)``, ``eps ~ N(0, I)``
  (``torchkit/distributions.py:123-135``).

jcomrl's ``jcomrl.nets.actor_critic.TanhGaussianPolicy`` computes the same function (ReLU
``MLP``, log-std clipped to [-20, 2], ``tanh(mean)`` / ``tanh(mean + std * eps)``) with one output
layer for both heads: ``Dense_<L>``'s first ``A`` outputs are the mean and the last ``A`` the
log-std. :func:`load_rlkit_actor` transposes each torch ``weight [out, in]`` into a flax
``kernel [in, out]``: ``fc<i>`` -> ``params/MLP_0/Dense_<i>``, ``last_fc`` and
``last_fc_log_std`` -> ``params/MLP_0/Dense_<L>`` side by side.

torch is imported only inside the functions that read ``.pt`` files (the ``torch`` extra,
``pip install 'jcomrl[torch]'``). Assembling the converted actors into a dataset's behaviour
snapshots is ``jcomrl.datagen.official_behaviour`` (the dataset store sits below the data
generation, which owns ``BehaviourPolicies``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jcomrl.data.dataset import DatasetError

TORCH_FIX = "pip install 'jcomrl[torch]'"
AGENT_FILE = re.compile(r"^agent(\d+)\.pt$")
# seed_<k>_goal_<g>... (learner.py:49-53) or <k>__<dd_mm_HH_MM_SS> (utils/tb_logger.py:18)
TASK_DIR = re.compile(r"^(?:seed_(?P<seed>\d+)_goal_(?P<goal>.+)"
                      r"|(?P<tb>\d+)__\d\d_\d\d_\d\d_\d\d_\d\d)$")
ACTOR_PREFIX = "policy."  # the SAC agent's actor attribute (algorithms/sac.py:50)
HEADS = ("last_fc", "last_fc_log_std")  # mean, log-std (networks.py:60, policy.py:57)
_SAVE_HINT = ("the official collection saves the SAC agent's state_dict() as "
              "models/agent<i>.pt (CORRO/UNICORN learner.py:302)")


class TorchUnavailableError(DatasetError, ImportError):
  """torch is needed to read a ``.pt`` checkpoint and is not installed."""


def _torch():
  try:
    import torch
  except ImportError as e:
    raise TorchUnavailableError(
        f"reading the official PyTorch checkpoints needs torch, which is not installed: "
        f"{TORCH_FIX} (or the CPU wheel: pip install torch --index-url "
        "https://download.pytorch.org/whl/cpu)") from e
  return torch


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """The tensors of the state dict saved at ``path``, as float32 numpy arrays on the host.

  ``torch.load(weights_only=True, map_location="cpu")``: tensors only (the official files are
  state dicts saved on GPU); a pickled module or anything else is refused in one line."""
  torch = _torch()
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except FileNotFoundError as e:
    raise DatasetError(f"{path}: no such checkpoint file") from e
  except Exception as e:  # torch raises pickle / runtime errors of several kinds
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DatasetError(f"{path}: not a PyTorch state dict of tensors ({first[:200]}); "
                       f"{_SAVE_HINT}") from e
  if not isinstance(obj, Mapping):
    raise DatasetError(f"{path}: holds a {type(obj).__name__}, not a state dict; {_SAVE_HINT}")
  return _as_arrays(obj)


def _as_arrays(state: Mapping) -> dict[str, np.ndarray]:
  """The entries of a state dict as host numpy arrays (torch tensors detached, moved to CPU)."""
  out = {}
  for key, value in state.items():
    if hasattr(value, "detach"):  # a torch tensor
      value = value.detach().cpu().numpy()
    out[str(key)] = np.asarray(value)
  return out


def _actor_entries(state: dict[str, np.ndarray], source: str) -> tuple[str, dict]:
  """``(prefix, {name without prefix: float32 array})`` of the actor in a SAC agent's or an
  actor's own state dict."""
  if any(k.startswith(ACTOR_PREFIX) for k in state):
    prefix = ACTOR_PREFIX
  elif f"{HEADS[0]}.weight" in state or "fc0.weight" in state:
    prefix = ""
  else:
    some = ", ".join(repr(k) for k in list(state)[:4])
    raise DatasetError(f"{source}: no rlkit TanhGaussianPolicy in this state dict (keys {some}, "
                       f"...; expected 'policy.fc0.weight', ..., 'policy.last_fc_log_std.bias'"
                       f"); {_SAVE_HINT}")
  actor = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
  for key, arr in actor.items():
    if not np.issubdtype(arr.dtype, np.floating):
      raise DatasetError(f"{source}: state dict entry {prefix + key!r} is {arr.dtype}, not a "
                         f"float tensor; {_SAVE_HINT}")
  return prefix, {k: v.astype(np.float32) for k, v in actor.items()}


def _check_keys(actor: dict, prefix: str, source: str) -> list[str]:
  """The actor's layer names ``fc0 .. fc<L-1>, last_fc, last_fc_log_std``; ``DatasetError``
  naming the first missing or unexpected key."""
  layers = [int(m.group(1)) for k in actor if (m := re.fullmatch(r"fc(\d+)\.(weight|bias)", k))]
  # fc0 .. the highest index present: a gap is a missing key
  names = [f"fc{i}" for i in range(max(layers) + 1 if layers else 0)] + list(HEADS)
  expected = {f"{n}.{p}" for n in names for p in ("weight", "bias")}
  missing = sorted(expected - set(actor),
                   key=lambda k: (names.index(k.split(".")[0]), k.endswith(".bias")))
  if missing:
    raise DatasetError(f"{source}: state dict lacks key {prefix + missing[0]!r} of the rlkit "
                       f"TanhGaussianPolicy (layers {prefix}fc0..fc<L-1>, {prefix}last_fc, "
                       f"{prefix}last_fc_log_std); {_SAVE_HINT}")
  unexpected = sorted(set(actor) - expected)
  if unexpected:
    raise DatasetError(f"{source}: unexpected actor key {prefix + unexpected[0]!r} (jcomrl "
                       "converts the official actor: ReLU layers fc<i> and the last_fc / "
                       "last_fc_log_std heads, no layer norm, learned log-std); convert only such "
                       "an actor")
  return names


def _check_actor(actor: dict, prefix: str, source: str) -> tuple[int, tuple[int, ...], int]:
  """``(obs size, hidden sizes, action size)`` of the actor entries; ``DatasetError`` naming the
  first missing, unexpected or misshapen key."""
  names = _check_keys(actor, prefix, source)
  mean_w = actor[f"{HEADS[0]}.weight"]
  in_size = None  # the previous hidden layer's output size (unknown before fc0)
  for n in names:
    w, b = actor[f"{n}.weight"], actor[f"{n}.bias"]
    if n == HEADS[1] and w.shape != mean_w.shape:
      raise DatasetError(f"{source}: key {prefix + n + '.weight'!r} has shape {tuple(w.shape)}; "
                         f"expected {tuple(mean_w.shape)}, the mean head's; {_SAVE_HINT}")
    if w.ndim != 2 or (in_size is not None and w.shape[1] != in_size):
      want = "(out, in)" if in_size is None else f"(out, {in_size}), the previous layer's output"
      raise DatasetError(f"{source}: key {prefix + n + '.weight'!r} has shape {tuple(w.shape)}; "
                         f"expected {want}; {_SAVE_HINT}")
    if b.shape != (w.shape[0],):
      raise DatasetError(f"{source}: key {prefix + n + '.bias'!r} has shape {tuple(b.shape)}; "
                         f"expected ({w.shape[0]},), its weight's output size; {_SAVE_HINT}")
    if n.startswith("fc"):
      in_size = w.shape[0]
  hidden = tuple(int(actor[f"{n}.weight"].shape[0]) for n in names[:-2])
  return int(actor[f"{names[0]}.weight"].shape[1]), hidden, int(mean_w.shape[0])


def load_rlkit_actor(path_or_state_dict: Any, *, obs_size: int | None = None,
                     action_size: int | None = None,
                     hidden_sizes: tuple[int, ...] | None = None) -> dict:
  """jcomrl actor params (``TanhGaussianPolicy``) of an official rlkit actor.

  Args:
    path_or_state_dict: an ``agent<i>.pt`` path (the SAC agent's state dict, actor keys
      ``policy.*``), or the state dict itself (the agent's or the actor's own, keys ``fc0.weight``
      ..., tensors or arrays), or a module with ``state_dict()``.
    obs_size, action_size, hidden_sizes: when given, the actor must have these (the env's
      observation size without the task vector, its action size).

  Returns:
    ``{"params": {"MLP_0": {"Dense_<i>": {"kernel", "bias"}}}}`` (float32 numpy), the params of
    ``TanhGaussianPolicy(hidden_sizes, action_size)`` applied with a size-0 task code, as
    ``jcomrl.datagen.per_task_sac`` trains them (see the module docstring for the mapping).

  Raises:
    DatasetError: one line naming the key that is missing, unexpected or of the wrong shape (or
      the size that differs from the one asked for) and the fix; ``TorchUnavailableError`` (a
      ``DatasetError``) for a path without torch installed.
  """
  if isinstance(path_or_state_dict, (str, os.PathLike)):
    source = os.fspath(path_or_state_dict)
    state = read_state_dict(source)
  else:
    source = "state dict"
    obj = path_or_state_dict
    state = _as_arrays(obj.state_dict() if hasattr(obj, "state_dict") else obj)
  prefix, actor = _actor_entries(state, source)
  obs, hidden, act = _check_actor(actor, prefix, source)
  for what, have, want in (("observation size", obs, obs_size), ("action size", act, action_size),
                           ("hidden sizes", hidden,
                            None if hidden_sizes is None else tuple(hidden_sizes))):
    if want is not None and have != want:
      be = "are" if what.endswith("s") else "is"
      raise DatasetError(f"{source}: the actor's {what} {be} {have}, expected {want}; convert "
                         "agents collected in this env, all with the same network")
  layers = {f"Dense_{i}": {"kernel": actor[f"fc{i}.weight"].T.copy(), "bias": actor[f"fc{i}.bias"]}
            for i in range(len(hidden))}
  layers[f"Dense_{len(hidden)}"] = {
      "kernel": np.concatenate([actor[f"{h}.weight"].T for h in HEADS], axis=1),
      "bias": np.concatenate([actor[f"{h}.bias"] for h in HEADS])}
  return {"params": {"MLP_0": layers}}


def actor_sizes(params: dict) -> tuple[int, tuple[int, ...], int]:
  """``(obs size, hidden sizes, action size)`` of converted actor params."""
  layers = params["params"]["MLP_0"]
  kernels = [np.shape(layers[f"Dense_{i}"]["kernel"]) for i in range(len(layers))]
  return int(kernels[0][0]), tuple(int(k[1]) for k in kernels[:-1]), int(kernels[-1][1] // 2)


def find_agent_checkpoints(directory: str) -> dict[int, str]:
  """``{iteration: path}`` of the ``agent<i>.pt`` files in ``directory/models`` (a run
  directory) or in ``directory`` itself (``DatasetError`` if there are none)."""
  models = os.path.join(directory, "models")
  where = models if os.path.isdir(models) else directory
  try:
    names = os.listdir(where)
  except OSError as e:
    raise DatasetError(f"{directory}: cannot list the agent checkpoints ({e})") from e
  found = {int(m.group(1)): os.path.join(where, n) for n in names if (m := AGENT_FILE.match(n))}
  if not found:
    raise DatasetError(f"{where}: no agent<i>.pt checkpoint (the official collection writes "
                       "<run dir>/models/agent<i>.pt, learner.py:297-302)")
  return dict(sorted(found.items()))


def task_dir_seed(name: str) -> int | None:
  """The run's ``--seed`` from an official run directory name, else None."""
  m = TASK_DIR.match(os.path.basename(os.path.normpath(name)))
  return None if m is None else int(m.group("seed") or m.group("tb"))


def task_dir_goal(name: str) -> list[float] | None:
  """The goal of a ``seed_<k>_goal_<g1>_<g2>...`` directory name (as UNICORN's
  ``extract_goal_from_path`` reads it, ``utils/offline_utils.py:41-47``), else None."""
  m = TASK_DIR.match(os.path.basename(os.path.normpath(name)))
  if m is None or m.group("goal") is None:
    return None
  try:
    return [float(g) for g in m.group("goal").split("_")]
  except ValueError:
    return None


def find_task_checkpoints(root: str) -> dict[str, dict[int, str]]:
  """``{run directory name: {iteration: path}}`` of every official run directory under ``root``
  (e.g. UNICORN's ``batch_data_copy/AntDir-v0/data``); ``DatasetError`` if there is none."""
  try:
    names = sorted(n for n in os.listdir(root) if TASK_DIR.match(n)
                   and os.path.isdir(os.path.join(root, n)))
  except OSError as e:
    raise DatasetError(f"{root}: cannot list the official run directories ({e})") from e
  if not names:
    raise DatasetError(f"{root}: no official run directory (seed_<k>_goal_<g> or "
                       "<k>__<timestamp>, each holding models/agent<i>.pt)")
  return {n: find_agent_checkpoints(os.path.join(root, n)) for n in names}


def rows_by_goal(names, task_params, decimals: int = 3) -> dict[str, int]:
  """``{run directory name: task row}``: the row of ``task_params [T, P]`` whose parameters,
  rounded to ``decimals`` as the directory names are (``create_goal_path_ext_from_goal``,
  ``utils/offline_utils.py:50-62``), equal the name's goal. ``DatasetError`` for a name without a
  goal, with no matching row or with several."""
  params = np.round(np.asarray(task_params, np.float64).reshape(len(task_params), -1), decimals)
  out = {}
  for name in names:
    goal = task_dir_goal(name)
    if goal is None:
      raise DatasetError(f"{name}: no goal in the directory name (seed_<k>_goal_<g>...); map "
                         "this run to its task row yourself")
    goal = np.round(np.asarray(goal), decimals)
    hits = ([] if goal.shape != params.shape[1:] else
            np.flatnonzero(np.all(np.isclose(params, goal, rtol=0.0, atol=1e-9), axis=1)))
    if len(hits) != 1:
      raise DatasetError(f"{name}: goal {goal.tolist()} matches {len(hits)} task rows of the "
                         f"dataset (rows {list(hits)[:5]}); expected exactly one")
    out[name] = int(hits[0])
  return out
