"""The multi-confounder tasks (issue 31, for DOMINO): the "multi" variant of hopper_param and
walker_param, its held-out-combinations split, the task table, and the data and training
configs that build and read it. Checked from the task table itself (no physics is stepped)."""

import itertools

import jax
import numpy as np
import pytest

from experiments.configs import common
from experiments.configs import data as data_config
from jcomrl import envs
from jcomrl.envs.mjx_base import make_split

ENVS = ("hopper_param", "walker_param")
LEVELS = (0.5, 0.75, 1.0, 1.25, 1.5)  # DOMINO domino/envs/config.py:109-110


@pytest.fixture(scope="module", params=ENVS)
def multi(request):
  env = envs.make(request.param, variant="multi")
  tasks = env.all_benchmark_tasks()
  return env, tasks, np.asarray(jax.vmap(env.task_vector)(tasks))


def _pairs(table, ids):
  return {tuple(np.round(table[i], 6)) for i in ids}


def test_the_table_is_every_combination_of_mass_and_damping_levels(multi):
  env, tasks, table = multi
  assert set(tasks) == {"body_mass", "dof_damping"} and env.task_size == 2
  assert table.shape == (25, 2)
  # Each group is scaled as a whole array by its level (DOMINO hopper_env.py:95-102); the
  # task vector records the two confounders' values.
  for g, name in enumerate(("body_mass", "dof_damping")):
    mult = np.asarray(tasks[name])
    assert mult.shape[1:] == np.shape(getattr(env.mj_model, name))
    np.testing.assert_allclose(mult, np.broadcast_to(table[:, g, None], mult.shape))
  assert _pairs(table, range(25)) == set(itertools.product(LEVELS, LEVELS))


def test_each_confounder_varies_independently(multi):
  _, _, table = multi
  mass, damping = table[:, 0], table[:, 1]
  # The joint frequency of (mass, damping) levels is the product of the marginals ...
  for m, d in itertools.product(LEVELS, LEVELS):
    joint = np.mean((mass == m) & (damping == d))
    assert joint == pytest.approx(np.mean(mass == m) * np.mean(damping == d))
  assert np.corrcoef(mass, damping)[0, 1] == pytest.approx(0.0, abs=1e-9)
  # ... and on the training split each level of each group is trained on equally often.
  env, _, _ = multi
  train = env.benchmark_split()["train"]
  for g in (0, 1):
    counts = [int(np.sum(table[train, g] == v)) for v in LEVELS]
    assert counts == [4] * 5


def test_split_holds_out_unseen_combinations_whose_levels_are_all_trained(multi):
  env, _, table = multi
  split = env.benchmark_split()
  train, test = split["train"], split["test"]
  assert sorted(train + test) == list(range(25)) and len(test) == 5
  seen = _pairs(table, train)
  for t in test:
    mass, damping = table[t]
    assert (mass, damping) not in seen  # a combination never trained on ...
    assert mass in table[train, 0] and damping in table[train, 1]  # ... of trained levels
  # One per level of each group: no level is left with few training tasks.
  assert sorted(table[test, 0]) == list(LEVELS) and sorted(table[test, 1]) == list(LEVELS)
  # Not the diagonal (where the two confounders would coincide).
  assert not any(table[t, 0] == table[t, 1] for t in test)


def test_variant_keeps_the_suites_other_settings_and_the_physics_reads_the_multipliers(multi):
  env, tasks, table = multi
  base = envs.make(env.name)
  assert (env.observation_size, env.alive_bonus, env.termination, env.end_convention,
          env.episode_length) == (base.observation_size, base.alive_bonus, base.termination,
                                  base.end_convention, base.episode_length)
  t = 7  # mass 0.75, damping 1.25
  task = jax.tree.map(lambda x: x[t], tasks)
  model = env.task_model(task)
  np.testing.assert_allclose(model.body_mass, env.mj_model.body_mass * table[t, 0], rtol=1e-6)
  np.testing.assert_allclose(model.dof_damping, env.mj_model.dof_damping * table[t, 1],
                             rtol=1e-6)
  np.testing.assert_allclose(model.geom_friction, env.mj_model.geom_friction)
  assert np.any(env.mj_model.dof_damping > 0)  # damping acts on the actuated joints
  flat = np.asarray(env.host_task_params(task))  # what the C stepper scales
  assert flat.shape == (env.mj_model.nbody + env.mj_model.nv,)
  # Training-distribution samples are training combinations.
  sampled = np.asarray(jax.vmap(env.task_vector)(env.sample_tasks(jax.random.key(0), 16)))
  assert _pairs(sampled, range(16)) <= _pairs(table, env.benchmark_split()["train"])


def test_bad_grids_are_refused():
  with pytest.raises(ValueError, match="two parameter groups"):
    envs.make("hopper_param", variant="multi", rand_params=("body_mass",))
  with pytest.raises(ValueError, match="num_tasks"):
    envs.make("hopper_param", variant="multi", num_tasks=20)
  with pytest.raises(ValueError, match="num_tasks must be num_test"):
    make_split("held_out_combinations", 24, 5)
  with pytest.raises(ValueError, match="more than 2 levels"):
    envs.make("walker_param", variant="multi", levels=(0.5, 1.0), num_tasks=4, num_test_tasks=2)
  # The other variants are unchanged: 41 per-element exponents, no grid.
  assert envs.make("hopper_param").task_size == 41


@pytest.mark.parametrize("env", ENVS)
def test_data_and_training_configs_of_the_multi_tasks(env):
  for variant in (f"{env}@multi", f"tiny_{env}@multi"):
    c = data_config.get_config(variant)
    assert (c.env, c.env_overrides.to_dict(), c.quality, c.behaviour.algo, c.out) == (
        env, {"variant": "multi"}, "replay", "sac_shared", f"data/{variant}")
  assert data_config.get_config(f"{env}@multi").behaviour.sac_shared.to_dict() == (
      data_config.get_config(f"{env}@fast").behaviour.sac_shared.to_dict())  # the fast recipe
  for preset in ("domino", "focal"):
    c = common.base_config(preset, f"{env}@multi")
    assert (c.dataset, c.env_overrides.to_dict(), c.tasks) == (
        f"data/{env}@multi", {"variant": "multi"}, "multi")
    assert common.base_config(preset, f"{env}@multi@cpu").dataset == f"data/{env}@multi"
  tiny = common.base_config("domino", f"tiny_{env}@multi")
  assert tiny.dataset == f"data/tiny_{env}@multi" and tiny.num_steps == 20
  with pytest.raises(ValueError, match="multi task setting"):
    common.base_config("domino", "cheetah_vel@multi")


def _tiny_multi_dataset(path, env_overrides):
  """The 25 hopper multi-confounder tasks x 2 random 200-step segments (no physics: a
  training-only check of the config -> build -> train path)."""
  from jcomrl.data.dataset import OfflineDataset, save_dataset
  from jcomrl.types import Transition

  env = envs.make("hopper_param", variant="multi")
  t, h, n = 25, 200, 400
  rng = np.random.default_rng(0)
  f = lambda *shape: rng.normal(size=shape).astype(np.float32)
  timeout = np.zeros((t, n), np.float32)
  timeout[:, h - 1::h] = 1.0
  obs = f(t, n, env.observation_size)
  tr = Transition(obs=obs, action=np.tanh(f(t, n, env.action_size)), reward=f(t, n),
                  next_obs=np.roll(obs, -1, axis=1), terminal=np.zeros((t, n), np.float32),
                  timeout=timeout)
  params = np.asarray(jax.vmap(env.task_vector)(env.all_benchmark_tasks()), np.float32)
  data = OfflineDataset(transitions=tr, checkpoint_id=np.zeros((t, n), np.int32),
                        episode_id=np.broadcast_to(np.arange(n, dtype=np.int32) // h, (t, n)).copy(),
                        task_params=params, segment_length=h)
  meta = {"env": "hopper_param", "env_overrides": env_overrides, "split": env.benchmark_split(),
          "normalisation": {"random": -1.0, "expert": 1.0}}
  save_dataset(path, data, meta)
  return path


def test_tiny_domino_run_on_a_multi_confounder_dataset(tmp_path):
  from experiments.cli import to_plain
  from jcomrl import run as run_api
  from jcomrl.algos.trainer import run_training
  from jcomrl.data.dataset import DatasetError

  cfg = to_plain(common.base_config("domino", "tiny_hopper_param@multi"))
  cfg["dataset"] = _tiny_multi_dataset(str(tmp_path / "multi"), {"variant": "multi"})
  env, data, meta, learner, hp = run_api.build(cfg)
  assert env.levels is not None and data.task_params.shape == (25, 2)
  assert learner.cfg.task_param_size == 2 and learner.cfg.task_replace is False
  state = run_training(learner, data, hp, meta["split"]["train"], num_steps=10,
                       workdir=str(tmp_path / "run"), seed=0, num_seeds=1, checkpoint_every=10,
                       progress=None)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
  # Data of the suite's 40-task variant are refused by the @multi config.
  cfg["dataset"] = _tiny_multi_dataset(str(tmp_path / "unicorn"), {})
  with pytest.raises(DatasetError, match="variant='multi'"):
    run_api.build(cfg)
