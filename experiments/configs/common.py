"""Shared pieces of the training configs: a preset's learner, hyper-parameters and schedule.

Every ``experiments/configs/<preset>.py:<variant>`` calls :func:`base_config`; the settings
themselves live in :mod:`jcomrl.algos.presets` (with their sources). Variants are the envs of
the suite (``point_robot``, ``sparse_point_robot``, ``cheetah_vel``, ``cheetah_dir``,
``ant_dir``, ``hopper_param``, ``walker_param``) and ``tiny`` (point-robot, test-sized); a
``+paper`` suffix (``unicorn_ss.py:walker_param+paper``) takes the paper's value where it and the
official code disagree (``presets.preset(..., source="paper")``); an ``@cpu`` suffix on a MuJoCo env
(``focal.py:cheetah_vel@cpu``, also ``walker_param+paper@cpu``) is the CPU scale profile of
``make paper PROFILE=cpu`` (``presets.PROFILES``: narrower nets, smaller batches, 30k updates, a
random 40 of UNICORN's OOD behaviour policies, checkpoints and IID curve points every quarter).
An ``@focal2`` suffix (``focal.py:cheetah_dir@focal2``, ``ant_dir@focal2``; with the profile
``cheetah_dir@focal2@cpu``) is FOCAL's own 2-task setting of those envs (``presets.preset(...,
tasks="focal2")``: FOCAL's forward/backward configs on the env's ``"focal"`` variant, train =
test = both tasks), trained on ``data/<env>@focal2`` (``data.py:<env>@focal2``); the dataset must
hold that variant (``env_overrides``, checked by ``jcomrl.run.build``).
``tiny_<env>@focal2`` is its test-sized run on ``data.py:tiny_<env>@focal2``'s data. An
``@multi`` suffix on ``hopper_param`` / ``walker_param`` (any preset, e.g.
``domino.py:hopper_param@multi``, ``focal.py:walker_param@multi@cpu``) trains on the
multi-confounder tasks (the env's ``"multi"`` variant: body mass x joint damping on a grid, 5
combinations held out) of ``data/<env>@multi`` (``data.py:<env>@multi``); ``tiny_<env>@multi`` is its test-sized
run on ``data.py:tiny_<env>@multi``'s data.

``learner`` holds every shared :class:`~jcomrl.algos.config.LearnerConfig` field and every
registered backbone's and objective's own settings as its subtree ``learner.<name>.*``
(:mod:`jcomrl.algos.settings`); ``hparams`` the shared hyper-parameters and each plug-in's
``hparams.<name>.*``. The preset's values sit over the defaults, so any of them can be
overridden from the command line, e.g. ``focal.py:tiny --config.learner.extra_objectives=corro:0.5
--config.learner.corro.negative_source=reward_noise --config.hparams.corro.weight=2``; the
env's sizes and the classifier's ``num_task_labels`` come from the dataset. Flat names of
configs written before plug-in subtrees (``learner.brac_penalty``) are still read.
"""

import dataclasses

from ml_collections import config_dict

from jcomrl.algos import presets
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.settings import SETTINGS

# Filled from the dataset by jcomrl.run.build, never from a config.
_FROM_DATASET = ("obs_size", "action_size", "task_param_size", "num_task_labels")

VARIANTS = presets.ENVS + ("tiny",)


# The cpu profile's evaluation: a fixed random subset of UNICORN's (snapshot, task) OOD pairs
# (360 = 9 trained snapshots x 40 tasks at paper scale).
CPU_OOD_MAX_POLICIES = 40


def set_schedule_and_learner(c, p: dict) -> int:
  """``c.learner`` (every shared LearnerConfig field but the dataset's, and every registered
  plug-in's settings as its subtree ``learner.<plug-in>``: the preset's values over the
  defaults), ``c.hparams`` (the same for HParams: ``hparams.<plug-in>``) and ``c.num_steps`` from
  a preset ``p``; returns its chunk length. Every key can be overridden from the command line,
  a plug-in's own ones too when another backbone or objective is chosen there."""
  defaults = {f.name: f.default for f in dataclasses.fields(LearnerConfig)
              if f.name not in _FROM_DATASET + ("plugins",)}
  learner = {**defaults, **{n: cls().to_dict() for n, cls in sorted(SETTINGS.items())}}
  hparams = HParams.defaults()
  for key, value in p["learner"].items():
    learner[key] = {**learner[key], **value} if isinstance(value, dict) else value
  for key, value in p["hparams"].items():
    hparams[key] = {**hparams[key], **value} if isinstance(value, dict) else value
  c.learner = config_dict.ConfigDict(learner)
  c.hparams = config_dict.ConfigDict(hparams)
  c.num_steps = p["num_steps"]
  return p["learner"]["steps_per_chunk"]



def _suffixes(variant: str) -> tuple[str, str, str]:
  """``(name, profile, tasks)`` of ``<name>[@focal2|@multi][@cpu]`` (the suffixes in either
  order)."""
  name, *tags = variant.split("@")
  profile, tasks = "paper", "unicorn"
  for tag in tags:
    if tag == "cpu" and profile == "paper":
      profile = "cpu"
    elif tag in presets.TASK_SETTINGS[1:] and tasks == "unicorn":
      tasks = tag
    elif tag in ("cpu",) + presets.TASK_SETTINGS[1:]:
      raise ValueError(f"variant suffix @{tag} given twice (or after another task setting) in "
                       f"{variant!r}")
    else:
      raise ValueError(f"unknown variant suffix @{tag}; expected @cpu, "
                       f"{', '.join('@' + t for t in presets.TASK_SETTINGS[1:])} or none")
  return name, profile, tasks


def base_config(preset: str, variant: str):
  variant, profile, tasks = _suffixes(variant)
  variant, plus, source = variant.partition("+")
  source = source if plus else "code"
  if source not in presets.SOURCES:
    raise ValueError(f"unknown variant suffix +{source}; expected +paper or none")
  # ``tiny_<env>@<tasks>``: test-sized networks and schedule on the data of
  # ``data.py:tiny_<env>@<tasks>`` (focal2: cheetah_dir / ant_dir; multi: hopper / walker).
  setting_tiny = (tasks != "unicorn" and variant.startswith("tiny_")
                  and variant.removeprefix("tiny_") in presets.TASK_SETTING_ENVS[tasks])
  if variant not in VARIANTS and not setting_tiny:
    raise ValueError(f"no variant {variant!r} for {preset}; have {', '.join(VARIANTS)}"
                     f" (and tiny_<env>@focal2 for {', '.join(presets.FOCAL2_ENVS)}, "
                     f"tiny_<env>@multi for {', '.join(presets.MULTI_ENVS)})")
  tiny = variant == "tiny" or variant.startswith("tiny_")
  env = "point_robot" if variant == "tiny" else variant.removeprefix("tiny_")
  if profile == "cpu" and env not in presets.MUJOCO_ENVS:
    raise ValueError(f"the @cpu profile is for the MuJoCo envs ({', '.join(presets.MUJOCO_ENVS)})"
                     f"; {variant} is CPU-sized already")
  p = presets.preset(preset, env, tiny=tiny, source=source, profile=profile, tasks=tasks)
  c = config_dict.ConfigDict()
  c.algo = preset
  c.env = env
  c.preset_source = source
  c.profile = profile
  c.dataset = f"data/{env}_mixed"
  c.seed = 0
  c.num_seeds = 1
  chunk = set_schedule_and_learner(c, p)
  if env in presets.MUJOCO_ENVS:
    c.checkpoint_every, c.eval_every = 10_000, 5_000
  else:
    c.checkpoint_every, c.eval_every = 1000, 1000
  # periodic_z_shuffle: the z-shuffle control at every eval_every as well (learning curves).
  c.eval = config_dict.ConfigDict(dict(num_episodes=4, seed=123, periodic_z_shuffle=False))
  if profile == "cpu":
    c.dataset = f"data/{env}@cpu"
    c.checkpoint_every = c.eval_every = max(chunk, c.num_steps // 4 // chunk * chunk)
    c.eval.ood_max_policies = CPU_OOD_MAX_POLICIES
  if tasks != "unicorn":
    # The data of ``data.py:<variant>@<tasks>`` (one dataset for both profiles); the dataset's
    # env must be the env's variant of that setting (checked by jcomrl.run.build).
    c.tasks = tasks
    c.env_overrides = config_dict.ConfigDict(dict(presets.TASK_SETTING_OVERRIDES[tasks]))
    c.dataset = f"data/{variant}@{tasks}"
  if tiny:  # for tests: tiny networks, a few tens of steps
    c.checkpoint_every, c.eval_every = chunk, c.num_steps
    c.eval.num_episodes = 1
  return c
