"""Prompt-DT (Xu et al., ICML 2022): the decision-transformer backbone conditioned on a 5-step
prompt taken from the context trajectory.

Settings and deviations: :mod:`jcomrl.algos.presets` (``DT_PRESETS``). Variants: ``point_robot``,
``cheetah_vel``, ``cheetah_dir``, ``ant_dir`` (also ``@cpu``), ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("prompt_dt", variant)
