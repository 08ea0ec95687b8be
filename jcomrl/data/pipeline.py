"""Dataset generation end to end: behaviour policies -> rollouts -> validated dataset on disk.

The behaviour snapshots are saved inside the dataset directory (``behaviour/``) so that
evaluation can roll *other* tasks' behaviour policies in a test task (UNICORN's OOD context).
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax.training.acme import running_statistics, specs
from brax.training.agents.ppo import networks as ppo_networks

from jcomrl import envs
from jcomrl.data import behaviour, collect
from jcomrl.data.dataset import DatasetError, OfflineDataset, load_dataset, save_dataset
from jcomrl.envs.base import TaskEnv

BEHAVIOUR_DIR = "behaviour"


def _path_key(path) -> str:
  return jax.tree_util.keystr(path)


def save_behaviour(directory: str, policies: behaviour.BehaviourPolicies, algo: str) -> None:
  os.makedirs(directory, exist_ok=True)
  flat = {_path_key(p): np.asarray(x) for p, x in
          jax.tree_util.tree_flatten_with_path(policies.params)[0]}
  np.savez(os.path.join(directory, "snapshots.npz"), **flat)
  with open(os.path.join(directory, "behaviour.json"), "w") as f:
    json.dump({"algo": algo, "hidden_sizes": list(policies.hidden_sizes),
               "steps": policies.steps.tolist()}, f, indent=1)


def load_behaviour(dataset_dir: str, env: TaskEnv) -> behaviour.BehaviourPolicies:
  """Restores the behaviour snapshots saved with a dataset (``DatasetError`` if absent/bad)."""
  directory = os.path.join(dataset_dir, BEHAVIOUR_DIR)
  try:
    with open(os.path.join(directory, "behaviour.json")) as f:
      info = json.load(f)
    arrays = dict(np.load(os.path.join(directory, "snapshots.npz")))
  except (OSError, ValueError) as e:
    raise DatasetError(f"{dataset_dir}: behaviour snapshots missing or unreadable ({e})") from e
  if info.get("algo") != "ppo":
    raise DatasetError(f"{dataset_dir}: unsupported behaviour algo {info.get('algo')!r}")
  hidden = tuple(info["hidden_sizes"])
  obs_size = env.observation_size + env.task_size
  nets = ppo_networks.make_ppo_networks(obs_size, env.action_size,
                                        policy_hidden_layer_sizes=hidden,
                                        value_hidden_layer_sizes=hidden)
  template = (running_statistics.init_state(specs.Array((obs_size,), jnp.dtype("float32"))),
              nets.policy_network.init(jax.random.key(0)))
  paths, treedef = jax.tree_util.tree_flatten_with_path(template)
  leaves = []
  for path, leaf in paths:
    key = _path_key(path)
    if key not in arrays or arrays[key].shape[1:] != np.shape(leaf):
      raise DatasetError(f"{dataset_dir}: behaviour snapshot leaf {key} missing or of the wrong "
                         f"shape for env {env.name!r}")
    leaves.append(arrays[key])
  params = jax.tree_util.tree_unflatten(treedef, leaves)
  return behaviour.BehaviourPolicies(params=params, steps=np.asarray(info["steps"]),
                                     make_policy=ppo_networks.make_inference_fn(nets),
                                     hidden_sizes=hidden)


def generate(env_name: str, env_overrides: dict[str, Any], *, quality: str, seed: int,
             episodes_per_snapshot: int, behaviour_kwargs: dict[str, Any],
             progress=None) -> tuple[OfflineDataset, behaviour.BehaviourPolicies, dict]:
  """Trains behaviour policies on the train tasks and collects every benchmark task."""
  env = envs.make(env_name, **env_overrides)
  all_tasks = env.all_benchmark_tasks()
  split = env.benchmark_split()
  train_tasks = jax.tree.map(lambda x: x[np.asarray(split["train"])], all_tasks)
  kw = dict(behaviour_kwargs)
  policies = behaviour.train_ppo(env, train_tasks, seed=seed, progress_fn=progress, **kw)
  key = jax.random.fold_in(jax.random.key(seed), 1)
  data = collect.build_dataset(env, policies, all_tasks, key, quality=quality,
                               episodes_per_snapshot=episodes_per_snapshot)
  k_ret = jax.random.fold_in(jax.random.key(seed), 2)
  returns = collect.snapshot_returns(env, policies, all_tasks, k_ret)  # [K, T]
  meta = {
      "env": env_name, "env_overrides": env_overrides, "split": split,
      "task_params": np.asarray(data.task_params).tolist(), "quality": quality,
      "creation": {"seed": seed, "episodes_per_snapshot": episodes_per_snapshot,
                   "behaviour": {"algo": "ppo", **{k: v for k, v in kw.items()}}},
      "behaviour_snapshots": {"steps": policies.steps.tolist(),
                              "mean_return": returns.mean(axis=1).tolist(),
                              "used": collect.snapshot_ids(quality, policies.num_snapshots)},
      # Normalisation anchors: 0 = random (first) snapshot, 100 = expert (last) snapshot.
      "normalisation": {"random": float(returns[0].mean()), "expert": float(returns[-1].mean())},
  }
  return data, policies, meta


def generate_and_save(path: str, env_name: str, env_overrides: dict[str, Any], *,
                      overwrite: bool = False, **kwargs) -> tuple[OfflineDataset, dict]:
  data, policies, meta = generate(env_name, env_overrides, **kwargs)
  writer = lambda tmp: save_behaviour(os.path.join(tmp, BEHAVIOUR_DIR), policies, "ppo")
  save_dataset(path, data, meta, overwrite=overwrite, extra_writer=writer)
  return load_dataset(path)
