"""Session-scoped fixtures shared by the suite (compiled functions and datasets built once)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import envs
from jcomrl.data.dataset import save_dataset
from jcomrl.datagen import collect
from jcomrl.datagen.policies import BehaviourPolicies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every compiled program goes to the persistent compilation cache, the small ones too. Many
# tests run JAX eagerly (op by op) or jit small functions: each eager primitive is its own tiny
# XLA program, compiled in ~10-50 ms, and the in-memory caches are cleared after every module
# (``_release_compiled_programs``), so without this the same few hundred tiny programs were
# recompiled in every module and every run (the Makefile's 0.5 s floor keeps them out of the
# cache). Loading one from disk takes about a millisecond; a warm `make test` spends about a
# third less time. Subprocesses the tests start inherit the setting. Without a cache directory
# set (plain `pytest`), the tests use the repository's `.jax_cache/`, the Makefile's.
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(ROOT, ".jax_cache")
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def scripted_policies(num_snapshots: int = 3) -> BehaviourPolicies:
  """Snapshots that move towards the goal (read from the task vector in the obs) with
  increasing skill: snapshot k mixes uniform noise and the goal direction by k / (K - 1)."""

  def make_policy(params, deterministic):
    def policy(obs, key):
      pos, goal = obs[:2], obs[2:]
      direction = (goal - pos) / (jnp.linalg.norm(goal - pos) + 1e-6)
      noise = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
      return jnp.clip(params["skill"] * direction + (1 - params["skill"]) * noise, -1, 1), {}
    return policy

  return BehaviourPolicies(params={"skill": jnp.linspace(0.0, 1.0, num_snapshots)},
                           steps=np.arange(num_snapshots), make_policy=make_policy,
                           hidden_sizes=())


@pytest.fixture(scope="session")
def point_env():
  return envs.make("point_robot")


@pytest.fixture(scope="session")
def synthetic_data(point_env):
  """A mixed-quality point-robot dataset over the 40 benchmark tasks (3 snapshots x 4 eps)."""
  tasks = point_env.all_benchmark_tasks()
  return collect.build_dataset(point_env, scripted_policies(), tasks, jax.random.key(0),
                               quality="mixed", episodes_per_snapshot=4)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, synthetic_data, point_env):
  path = os.path.join(tmp_path_factory.mktemp("data"), "point_robot")
  meta = {"env": "point_robot", "env_overrides": {}, "split": point_env.benchmark_split(),
          "normalisation": {"random": -20.0, "expert": -5.0}}
  save_dataset(path, synthetic_data, meta)
  return path


@pytest.fixture(scope="session")
def tiny_learner():
  """The tiny BRAC learner of test_algos / test_plugin, compiled once for the session."""
  from jcomrl.algos.config import LearnerConfig
  from jcomrl.algos.learner import make_learner
  return make_learner(LearnerConfig.create(
      obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
      aux_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,), meta_batch_size=4, context_size=8,
      context_mode="transitions", rl_batch_size=8, steps_per_chunk=5, num_task_labels=40))


@pytest.fixture(scope="session")
def meta_batch(synthetic_data):
  """A 4-task meta-batch of the synthetic data (tasks from the first 30 rows)."""
  from jcomrl.data.sampler import sample_meta_batch
  return sample_meta_batch(jax.random.key(0), synthetic_data.to_device(),
                           jnp.arange(30, dtype=jnp.int32), meta_batch_size=4, context_size=8,
                           context_mode="transitions", rl_batch_size=8)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops JAX's in-memory executables after every test module. One pytest process compiles
  hundreds of XLA programs; with all of them alive the suite's process segfaulted inside XLA's
  compiler late in the run (twice at one test, then at another after that one was fixed),
  consistent with exhausting the process's memory mappings (vm.max_map_count 65530 here).
  Session fixtures stay; a program needed again reloads from the persistent compilation cache
  (``JAX_COMPILATION_CACHE_DIR``; every program is written to it, see the top of this file)."""
  yield
  import gc
  jax.clear_caches()
  gc.collect()


@pytest.fixture(autouse=True, scope="session")
def _mujoco_warnings_stay_out_of_the_checkout():
  """Tests write only under their temporary directories. MuJoCo's C warnings (which by default
  append to MUJOCO_LOG.TXT in the working directory, the repository root here) go to a list for
  the session, and a MUJOCO_LOG.TXT that appears in the root during the session (e.g. from a
  subprocess) fails it, with the log's text."""
  import mujoco

  log = os.path.join(ROOT, "MUJOCO_LOG.TXT")
  existed = os.path.exists(log)
  sink: list = []
  previous = mujoco.get_mju_user_warning()
  mujoco.set_mju_user_warning(sink.append)
  yield sink
  mujoco.set_mju_user_warning(previous)
  if not existed and os.path.exists(log):
    with open(log) as f:
      text = f.read()[-2000:]
    os.remove(log)
    pytest.fail(f"a test wrote MUJOCO_LOG.TXT into the repository root:\n{text}")
