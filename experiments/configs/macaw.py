"""MACAW (Mitchell et al., ICML 2021): MAML over a value function and an AWR policy, a learner of
its own (``learner_type = "macaw"``; no task encoder: a test task's context is its adaptation
data). Settings, sources and deviations: :mod:`jcomrl.algos.macaw_presets`.

Variants: every env of the suite (``point_robot``, ..., ``walker_param``), ``<env>@cpu`` for the
MuJoCo envs (the 2-core profile) and ``tiny`` (point-robot, test-sized). Any
:class:`~jcomrl.algos.macaw.MacawConfig` field is a ``learner.*`` key (e.g.
``--config.learner.first_order=True``), any hyper-parameter a ``hparams.*`` key (MACAW reads
``value_lr``, ``actor_lr`` and ``inner_lr_lr``).
"""

import dataclasses

from ml_collections import config_dict

from experiments.configs.common import CPU_OOD_MAX_POLICIES
from jcomrl.algos.macaw import LEARNER_TYPE, MacawConfig
from jcomrl.algos.macaw_presets import ENVS, MUJOCO_ENVS, macaw_preset

_FROM_DATASET = ("obs_size", "action_size", "task_param_size")


def get_config(variant: str = "point_robot"):
  env, at, profile = variant.partition("@")
  profile = profile if at else "paper"
  tiny = env == "tiny"
  env = "point_robot" if tiny else env
  if env not in ENVS or profile not in ("paper", "cpu") or (at and profile == "paper"):
    raise ValueError(f"no macaw variant {variant!r}; have {', '.join(ENVS)}, tiny, and "
                     f"<env>@cpu for {', '.join(MUJOCO_ENVS)}")
  p = macaw_preset(env, profile=profile, tiny=tiny)
  defaults = {f.name: f.default for f in dataclasses.fields(MacawConfig)
              if f.name not in _FROM_DATASET}
  c = config_dict.ConfigDict()
  c.algo = "macaw"
  c.learner_type = LEARNER_TYPE
  c.env = env
  c.profile = profile
  c.dataset = f"data/{env}@cpu" if profile == "cpu" else f"data/{env}_mixed"
  c.seed = 0
  c.num_seeds = 1
  c.learner = config_dict.ConfigDict({**defaults, **p["learner"]})
  c.hparams = config_dict.ConfigDict(p["hparams"])
  c.num_steps = p["num_steps"]
  chunk = p["learner"]["steps_per_chunk"]
  if env in MUJOCO_ENVS:
    c.checkpoint_every, c.eval_every = 10_000, 5_000
  else:
    c.checkpoint_every, c.eval_every = 1000, 1000
  c.eval = config_dict.ConfigDict(dict(num_episodes=4, seed=123))
  if profile == "cpu":
    c.checkpoint_every = c.eval_every = max(chunk, c.num_steps // 4 // chunk * chunk)
    c.eval.ood_max_policies = CPU_OOD_MAX_POLICIES
  if tiny:
    c.checkpoint_every, c.eval_every = chunk, c.num_steps
    c.eval.num_episodes = 1
  return c
