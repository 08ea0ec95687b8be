"""UNICORN-SUP (Li et al., NeurIPS 2024): a task classifier on z trained by cross-entropy
(a Barber-Agakov bound on I(Z; M)), no metric loss; UNICORN's backbone and context.

Settings and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("unicorn_sup", variant)
