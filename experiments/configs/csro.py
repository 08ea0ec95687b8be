"""CSRO (Gao et al., ICML 2023): FOCAL's metric loss + lambda * CLUB upper bound of I(z; s, a)
with a variational q_psi(z | s, a), on FOCAL's BRAC backbone (policy penalty, auto weight).

Settings and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("csro", variant)
