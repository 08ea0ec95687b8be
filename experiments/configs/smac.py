"""SMAC's offline phase (Pong et al., ICML 2022): the PEARL encoder (a product of per-transition
Gaussian factors, z sampled from it) trained by a reward decoder's squared error plus 0.1 KL to
N(0, I), and AWAC (advantage-weighted likelihood, weights softmax(A / 100) over the meta-batch)
on (s, z) with the code detached; 50k updates. SMAC's self-supervised online phase is not built
yet (what it does, with the official file:lines: :mod:`jcomrl.algos.smac_presets`).

Settings and deviations: :mod:`jcomrl.algos.smac_presets` (its rows are part of
:data:`jcomrl.algos.presets.PROVENANCE`). Variants: every env of the suite, ``<env>@cpu``,
``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("smac", variant)
