"""BOReL (Dorfman et al., NeurIPS 2021) as UNICORN compares with it (App. C.1, Table 5): a
Gaussian GRU belief over the context trajectory trained as a VAE (reward reconstruction + KL to
the previous belief), on UNICORN's backbone, without oracle reward relabelling.

Settings and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("borel", variant)
