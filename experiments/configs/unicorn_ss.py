"""UNICORN-SS (Li et al., NeurIPS 2024): Gaussian-NLL reconstruction of (delta s, r) from
(z, s, a) + alpha / (1 - alpha) * FOCAL's metric loss, stochastic encoder, one-trajectory context.

Settings and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("unicorn_ss", variant)
