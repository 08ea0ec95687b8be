"""Supervised baseline (UNICORN Table 2): the context encoder is trained end to end by the
critic loss only, no representation objective.

Settings and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("supervised", variant)
