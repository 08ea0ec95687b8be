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

``learner`` holds every :class:`~jcomrl.algos.config.LearnerConfig` field (the preset's values
over the defaults), so any of them can be overridden from the command line, e.g.
``focal.py:tiny --config.learner.extra_objectives=corro:0.5
--config.learner.corro_negative_source=reward_noise``; the env's sizes and the classifier's
``num_task_labels`` come from the dataset.
"""

import dataclasses

from ml_collections import config_dict

from jcomrl.algos import presets
from jcomrl.algos.config import LearnerConfig

# Filled from the dataset by experiments.common.build, never from a config.
_FROM_DATASET = ("obs_size", "action_size", "task_param_size", "num_task_labels")

VARIANTS = presets.ENVS + ("tiny",)


# The cpu profile's evaluation: a fixed random subset of UNICORN's (snapshot, task) OOD pairs
# (360 = 9 trained snapshots x 40 tasks at paper scale).
CPU_OOD_MAX_POLICIES = 40


def set_schedule_and_learner(c, p: dict) -> int:
  """``c.learner`` (every LearnerConfig field but the dataset's, the preset's values over the
  defaults), ``c.hparams`` and ``c.num_steps`` from a preset ``p``; returns its chunk length."""
  defaults = {f.name: f.default for f in dataclasses.fields(LearnerConfig)
              if f.name not in _FROM_DATASET}
  c.learner = config_dict.ConfigDict({**defaults, **p["learner"]})
  c.hparams = config_dict.ConfigDict(p["hparams"])
  c.num_steps = p["num_steps"]
  return p["learner"]["steps_per_chunk"]


def base_config(preset: str, variant: str):
  variant, at, profile = variant.partition("@")
  profile = profile if at else "paper"
  if profile not in presets.PROFILES or profile == "paper" and at:
    raise ValueError(f"unknown variant suffix @{profile}; expected @cpu or none")
  variant, plus, source = variant.partition("+")
  source = source if plus else "code"
  if source not in presets.SOURCES:
    raise ValueError(f"unknown variant suffix +{source}; expected +paper or none")
  if variant not in VARIANTS:
    raise ValueError(f"no variant {variant!r} for {preset}; have {', '.join(VARIANTS)}")
  tiny = variant == "tiny"
  env = "point_robot" if tiny else variant
  if profile == "cpu" and env not in presets.MUJOCO_ENVS:
    raise ValueError(f"the @cpu profile is for the MuJoCo envs ({', '.join(presets.MUJOCO_ENVS)})"
                     f"; {variant} is CPU-sized already")
  p = presets.preset(preset, env, tiny=tiny, source=source, profile=profile)
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
  c.eval = config_dict.ConfigDict(dict(num_episodes=4, seed=123))
  if profile == "cpu":
    c.dataset = f"data/{env}@cpu"
    c.checkpoint_every = c.eval_every = max(chunk, c.num_steps // 4 // chunk * chunk)
    c.eval.ood_max_policies = CPU_OOD_MAX_POLICIES
  if tiny:  # for tests: tiny networks, a few tens of steps
    c.checkpoint_every, c.eval_every = chunk, c.num_steps
    c.eval.num_episodes = 1
  return c
