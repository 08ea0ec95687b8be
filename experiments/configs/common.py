"""Shared pieces of the training configs: a preset's learner, hyper-parameters and schedule.

Every ``experiments/configs/<preset>.py:<variant>`` calls :func:`base_config`; the settings
themselves live in :mod:`jcomrl.algos.presets` (with their sources). Variants are the envs of
the suite (``point_robot``, ``sparse_point_robot``, ``cheetah_vel``, ``cheetah_dir``,
``ant_dir``, ``hopper_param``, ``walker_param``) and ``tiny`` (point-robot, test-sized); a
``+paper`` suffix (``unicorn_ss.py:walker_param+paper``) takes the paper's value where it and the
official code disagree (``presets.preset(..., source="paper")``).
"""

from ml_collections import config_dict

from jcomrl.algos import presets

VARIANTS = presets.ENVS + ("tiny",)


def base_config(preset: str, variant: str):
  variant, plus, source = variant.partition("+")
  source = source if plus else "code"
  if source not in presets.SOURCES:
    raise ValueError(f"unknown variant suffix +{source}; expected +paper or none")
  if variant not in VARIANTS:
    raise ValueError(f"no variant {variant!r} for {preset}; have {', '.join(VARIANTS)}")
  tiny = variant == "tiny"
  env = "point_robot" if tiny else variant
  p = presets.preset(preset, env, tiny=tiny, source=source)
  c = config_dict.ConfigDict()
  c.algo = preset
  c.env = env
  c.preset_source = source
  c.dataset = f"data/{env}_mixed"
  c.seed = 0
  c.num_seeds = 1
  c.learner = config_dict.ConfigDict(p["learner"])
  c.hparams = config_dict.ConfigDict(p["hparams"])
  c.num_steps = p["num_steps"]
  chunk = p["learner"]["steps_per_chunk"]
  if env in presets.MUJOCO_ENVS:
    c.checkpoint_every, c.eval_every = 10_000, 5_000
  else:
    c.checkpoint_every, c.eval_every = 1000, 1000
  c.eval = config_dict.ConfigDict(dict(num_episodes=4, seed=123))
  if tiny:  # for tests: tiny networks, a few tens of steps
    c.checkpoint_every, c.eval_every = chunk, c.num_steps
    c.eval.num_episodes = 1
  return c
