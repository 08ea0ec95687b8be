"""Oracle: the same backbone conditioned on the true task parameters (an upper reference).

Variants: ``point_robot``, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("oracle", variant)
