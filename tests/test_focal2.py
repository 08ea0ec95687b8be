"""FOCAL's 2-task setting (issue 28): ``focal.py:<env>@focal2`` and ``data.py:<env>@focal2``.

The expected numbers are FOCAL's configs, written here with their lines (FOCAL-ICLR
cc2f1fd343893bfa6dae5b8fe7640a0d55027cf7, the mirror's HEAD); nothing is read from the official
repository at test time.
"""

import json
import os

import jax
import numpy as np
import pytest

from experiments.cli import to_plain
from experiments.configs import common as config_common
from experiments.configs import data as data_config
from jcomrl import envs
from jcomrl import run as run_api
from jcomrl.algos import presets
from jcomrl.data.dataset import DatasetError, OfflineDataset, save_dataset
from jcomrl.types import Transition

# FOCAL configs/cheetah-dir.json and ant-dir.json, merged over configs/default.py by
# launch_experiment.py:174-182,189-193 (deep_update_dict).
FOCAL_2TASK = {
    "cheetah_dir": dict(
        n_train_tasks=2, n_eval_tasks=2, n_tasks=2,  # cheetah-dir.json:3,4,6
        meta_batch=4,  # cheetah-dir.json:10
        embedding_batch_size=256,  # cheetah-dir.json:18
        use_value_penalty=True,  # cheetah-dir.json:27
        alpha_init=500.0, alpha_max=2000.0,  # default.py:62-63 (the json sets neither)
        latent_size=20,  # default.py:7
        updates=500 * 2000,  # default.py:19 num_iterations x default.py:25 steps per iteration
    ),
    "ant_dir": dict(
        n_train_tasks=2, n_eval_tasks=2, n_tasks=2,  # ant-dir.json:3,4,7 (forward_backward :8)
        meta_batch=4,  # ant-dir.json:11
        embedding_batch_size=256,  # ant-dir.json:20
        use_value_penalty=True,  # ant-dir.json:31
        alpha_init=1e6, alpha_max=5e6,  # ant-dir.json:27-28
        latent_size=20,  # ant-dir.json:5
        updates=500 * 4000,  # default.py:19 num_iterations x ant-dir.json:16 steps per iteration
    ),
}
# The two tasks, in FOCAL's order: rlkit/envs/half_cheetah_dir.py:27 (directions [-1, 1]),
# rlkit/envs/ant_dir.py:51-53 (forward_backward: angles [0, pi]).
FOCAL_TASKS = {"cheetah_dir": ("direction", [-1.0, 1.0]), "ant_dir": ("angle", [0.0, np.pi])}


@pytest.mark.parametrize("env", presets.FOCAL2_ENVS)
def test_focal2_settings_are_the_2_task_configs(env):
  want = FOCAL_2TASK[env]
  c = config_common.base_config("focal", f"{env}@focal2")
  lrn, hp = c.learner, c.hparams
  assert lrn.meta_batch_size == want["meta_batch"]
  assert lrn.context_mode == "transitions" and lrn.context_size == want["embedding_batch_size"]
  assert lrn.latent_size == want["latent_size"]
  assert (hp.brac.weight, hp.brac.weight_max) == (want["alpha_init"], want["alpha_max"])
  assert lrn.brac.penalty == ("both" if want["use_value_penalty"] else "policy")
  assert c.num_steps == want["updates"]
  # FOCAL draws 4 of the 2 tasks: only with replacement (np.random.choice(2 tasks, 4,
  # replace=False) raises), so every meta-batch repeats a task.
  assert lrn.task_replace is True and want["meta_batch"] > want["n_train_tasks"]
  # The task setting and the data it trains on.
  assert (c.env, c.tasks, c.dataset) == (env, "focal2", f"data/{env}@focal2")
  assert c.env_overrides.to_dict() == {"variant": "focal"}
  run_api.validate_config(to_plain(c))
  # The 40-task preset keeps every one of those settings but the meta-batch (16, FOCAL's
  # multi-task default.py:17 and UNICORN's args_<env>.py:20) and the training length (UNICORN's
  # 200k); see the PROVENANCE rows "focal meta-batch on 40 tasks" and "focal2 training length".
  full = config_common.base_config("focal", env)
  assert full.learner.meta_batch_size == 16
  assert ({**full.learner.to_dict(), "meta_batch_size": want["meta_batch"]} == lrn.to_dict()
          and full.hparams.to_dict() == hp.to_dict())
  assert full.num_steps == 200_000 and "env_overrides" not in full
  # The CPU profile of the 2-task setting trains on the same 2-task data.
  cpu = config_common.base_config("focal", f"{env}@focal2@cpu")
  assert cpu.dataset == c.dataset and cpu.profile == "cpu"
  assert cpu.num_steps == presets.CPU_NUM_STEPS_ENV.get(env, presets.CPU_NUM_STEPS)


@pytest.mark.parametrize("env", presets.FOCAL2_ENVS)
def test_focal2_data_config_is_the_2_task_env_with_train_equal_to_test(env):
  d = data_config.get_config(f"{env}@focal2")
  cpu = data_config.get_config(f"{env}@cpu")
  assert d.env == env and d.env_overrides.to_dict() == presets.FOCAL2_ENV_OVERRIDES
  assert d.out == f"data/{env}@focal2"  # where focal.py:<env>@focal2 reads it
  # <env>@cpu's recipe and per-task size (only the tasks differ)
  assert d.behaviour.algo == cpu.behaviour.algo == "sac_per_task"
  assert d.behaviour.sac_per_task.to_dict() == cpu.behaviour.sac_per_task.to_dict()
  assert (d.transitions_per_task, d.quality, d.behaviour.num_snapshots) == (
      cpu.transitions_per_task, "mixed", 10)
  tiny = data_config.get_config(f"tiny_{env}@focal2")
  assert tiny.env_overrides.to_dict() == presets.FOCAL2_ENV_OVERRIDES
  assert tiny.out == config_common.base_config("focal", f"tiny_{env}@focal2").dataset
  # The env of the variant: FOCAL's 2 tasks, trained on and evaluated on (n_train_tasks =
  # n_eval_tasks = n_tasks = 2; launch_experiment.py:134-137 takes tasks[:2] and tasks[-2:]).
  e = envs.make(env, **d.env_overrides.to_dict())
  want = FOCAL_2TASK[env]
  assert e.num_tasks == want["n_tasks"]
  split = e.benchmark_split()
  assert split["train"] == split["test"] == [0, 1]
  assert len(split["train"]) == want["n_train_tasks"] and len(split["test"]) == want["n_eval_tasks"]
  key, values = FOCAL_TASKS[env]
  np.testing.assert_allclose(np.asarray(e.all_benchmark_tasks()[key]), values, atol=1e-6)


def test_focal2_is_refused_where_no_2_task_config_exists():
  with pytest.raises(ValueError, match="focal2 task setting"):
    config_common.base_config("csro", "cheetah_dir@focal2")
  with pytest.raises(ValueError, match="focal2 task setting"):
    config_common.base_config("focal", "cheetah_vel@focal2")
  with pytest.raises(ValueError, match="given twice"):
    config_common.base_config("focal", "ant_dir@cpu@focal2@cpu")
  with pytest.raises(ValueError, match="no variant 'tiny_cheetah_dir'"):
    config_common.base_config("focal", "tiny_cheetah_dir")
  with pytest.raises(ValueError, match="unknown task setting"):
    presets.preset("focal", "cheetah_dir", tasks="focal3")


def _tiny_2_task_dataset(path, env_overrides):
  """2 cheetah-dir tasks x 2 random 200-step segments (no physics: a training-only check)."""
  env = envs.make("cheetah_dir", **presets.FOCAL2_ENV_OVERRIDES)
  t, h, n = 2, 200, 400
  rng = np.random.default_rng(0)
  obs = rng.normal(size=(t, n, env.observation_size)).astype(np.float32)
  action = rng.uniform(-1, 1, size=(t, n, env.action_size)).astype(np.float32)
  direction = np.asarray([-1.0, 1.0], np.float32)[:, None]
  reward = (direction * obs[..., 8] - 0.05 * np.sum(action ** 2, -1)).astype(np.float32)
  timeout = np.zeros((t, n), np.float32)
  timeout[:, h - 1::h] = 1.0
  tr = Transition(obs=obs, action=action, reward=reward, next_obs=np.roll(obs, -1, axis=1),
                  terminal=np.zeros((t, n), np.float32), timeout=timeout)
  episodes = np.broadcast_to(np.arange(n, dtype=np.int32) // h, (t, n)).copy()
  data = OfflineDataset(transitions=tr, checkpoint_id=np.zeros((t, n), np.int32),
                        episode_id=episodes, task_params=direction.copy(), segment_length=h)
  meta = {"env": "cheetah_dir", "env_overrides": env_overrides, "split": env.benchmark_split(),
          "normalisation": {"random": -1.0, "expert": 1.0}}
  save_dataset(path, data, meta)
  return path


def test_tiny_focal_run_on_a_2_task_dataset(tmp_path):
  from jcomrl.algos.trainer import run_training

  cfg = to_plain(config_common.base_config("focal", "tiny_cheetah_dir@focal2"))
  cfg["dataset"] = _tiny_2_task_dataset(str(tmp_path / "focal2"), presets.FOCAL2_ENV_OVERRIDES)
  env, data, meta, learner, hp = run_api.build(cfg)
  assert env.num_tasks == data.num_tasks == 2 and meta["split"]["train"] == [0, 1]
  workdir = str(tmp_path / "run")
  state = run_training(learner, data, hp, meta["split"]["train"], num_steps=10, workdir=workdir,
                       seed=0, num_seeds=1, checkpoint_every=10, progress=None)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert rows and rows[-1]["step"] == 10
  # 4 draws of 2 tasks: every meta-batch holds a positive pair of the metric loss.
  pos = [r["focal/num_pos_pairs"] for r in rows if "focal/num_pos_pairs" in r]
  assert pos and min(np.min(p) for p in pos) >= 2
  # A dataset of the suite's 40-task variant (no "focal" override) is refused by the config.
  cfg["dataset"] = _tiny_2_task_dataset(str(tmp_path / "unicorn"), {})
  with pytest.raises(DatasetError, match="variant='focal'"):
    run_api.build(cfg)
