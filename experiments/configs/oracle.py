"""Oracle: the same backbone conditioned on the true task parameters (an upper reference).

Settings per env: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("oracle", variant)
