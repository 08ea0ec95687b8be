"""The official behaviour-data recipe as a data profile (``data.py:<env>@official``): every
provenance row cites a file:line and explains a difference, every row's value is what
``get_config`` builds (read from the built config, never from the table), the buffer keeps the
whole run, and the snapshots follow CORRO's save interval. No training."""

import functools
import inspect
import re

import pytest

from experiments import collect as collect_cli
from experiments.configs import data as data_config
from jcomrl import envs
from jcomrl.datagen import per_task_sac, pipeline

ENVS = ("cheetah_vel", "cheetah_dir", "ant_dir", "hopper_param", "walker_param")
ROWS = data_config.OFFICIAL_RECIPE_PROVENANCE


@functools.cache
def _env(name):
  return envs.make(name)


def _get(c, path):
  for part in path.split("."):
    c = c[part]
  return c


def _interval_iterations(s, k):
  return per_task_sac.schedule(s.num_timesteps, k, s.num_envs, s.warmup_steps,
                               after_warmup=s.intervals_after_warmup)


def _updates(s):
  training = s.num_timesteps - s.warmup_steps
  assert training % s.num_envs == 0
  return training // s.num_envs * s.updates_per_iteration


# The derived quantities ("=name" keys), computed from the built config and the trainer's code.
DERIVED = {
    "=log_std_clip": lambda env, c: tuple(
        getattr(per_task_sac.networks(_env(env), per_task_sac.PerTaskSACConfig())[0], k)
        for k in ("log_std_min", "log_std_max")),
    "=episode_length": lambda env, c: _env(env).episode_length,
    "=end_convention": lambda env, c: _env(env).end_convention,
    "=loop": lambda env, c: (c.behaviour.sac_per_task.num_envs,
                             c.behaviour.sac_per_task.updates_per_iteration),
    "=updates_per_env_step": lambda env, c: (c.behaviour.sac_per_task.updates_per_iteration
                                             / c.behaviour.sac_per_task.num_envs),
    "=updates_per_task": lambda env, c: _updates(c.behaviour.sac_per_task),
    "=updates_per_interval": lambda env, c: (
        _interval_iterations(c.behaviour.sac_per_task, c.behaviour.num_snapshots)
        * c.behaviour.sac_per_task.updates_per_iteration),
}


def test_every_row_cites_a_file_line_and_explains_differences():
  assert len(ROWS) >= 25
  for setting, key, ours, official, source, why in ROWS:
    assert setting and key and official and source, setting
    assert ours is not None and ours != {}, setting
    assert re.search(r"\.(py|md|txt):\d+", source), f"{setting}: no file:line in {source!r}"
    if isinstance(ours, dict):
      assert set(ours) <= set(ENVS), setting
    if not official.startswith("same"):
      assert why, f"{setting}: ours {ours!r} differs from official {official!r} without a why"
    assert key.startswith("=") and key in DERIVED or not key.startswith("="), key
  table = data_config.official_recipe_markdown()
  assert table.count("\n") == len(ROWS) + 1


@pytest.mark.parametrize("env", ENVS)
def test_every_row_is_what_the_config_builds(env):
  c = data_config.get_config(f"{env}@official")
  covered = set()
  for setting, key, ours, *_ in ROWS:
    if isinstance(ours, dict):
      if env not in ours:
        continue
      ours = ours[env]
    have = DERIVED[key](env, c) if key.startswith("=") else _get(c, key)
    assert have == ours, f"{env} {setting}: config has {have!r}, the table says {ours!r}"
    covered.add(key)
  # every trainer setting of the profile is a row (num_envs / updates_per_iteration: "=loop")
  sac = c.behaviour.sac_per_task
  cited = {k.rsplit(".", 1)[-1] for k in covered if k.startswith("behaviour.sac_per_task.")}
  assert set(sac) - cited == {"num_envs", "updates_per_iteration"}, set(sac) - cited
  assert "=loop" in covered
  assert {"behaviour.num_snapshots", "=updates_per_env_step", "=updates_per_task",
          "behaviour.sac_per_task.num_timesteps"} <= covered


@pytest.mark.parametrize("env", ENVS)
def test_the_buffer_holds_every_transition_of_the_run(env):
  c = data_config.get_config(f"{env}@official")
  s = c.behaviour.sac_per_task
  k = c.behaviour.num_snapshots
  run = s.warmup_steps + _interval_iterations(s, k) * (k - 1) * s.num_envs
  assert run == s.num_timesteps  # the budget divides evenly: no step is dropped
  assert s.buffer_size >= run  # no ring overwrite (keep_replay would refuse one)
  assert s.warmup_steps == 50 * _env(env).episode_length  # 50 random rollouts


@pytest.mark.parametrize("env,iterations", sorted(data_config.OFFICIAL_ITERATIONS.items()))
def test_snapshots_follow_corro_save_interval(env, iterations):
  c = data_config.get_config(f"{env}@official")
  s = c.behaviour.sac_per_task
  k = c.behaviour.num_snapshots
  assert iterations % 20 == 0 and k - 1 == iterations // 20  # agent20 ... agent<iterations>
  interval = _interval_iterations(s, k) * s.num_envs  # env steps per task between snapshots
  steps = [0] + [s.warmup_steps + i * interval for i in range(1, k)]
  assert steps[-1] == s.num_timesteps and steps[1] > s.warmup_steps
  # each trained snapshot has had CORRO's 20 iterations x 200 updates more than the one before
  assert interval // s.num_envs * s.updates_per_iteration == 20 * 200
  if s.num_envs == 2:  # 200-step episodes: 20 iterations are 20 x 2 x 200 env steps
    assert interval == 8_000 and steps[1] == 18_000


def test_the_five_variants_exist_and_build():
  assert {f"{e}@official" for e in ENVS} <= set(data_config.variants())
  assert "@official" in data_config.__doc__
  accepted = set(inspect.signature(per_task_sac.train_sac_per_task).parameters)
  for env in ENVS:
    c = data_config.get_config(f"{env}@official")
    assert c.env == env and c.quality == pipeline.REPLAY and c.return_episodes == 10
    assert c.behaviour.algo == "sac_per_task" and c.behaviour.algo in pipeline.REPLAY_ALGOS
    algo, kw = pipeline.split_behaviour_kwargs(collect_cli.behaviour_kwargs(c))
    assert algo == "sac_per_task" and set(kw) <= accepted, set(kw) - accepted
