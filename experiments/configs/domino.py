"""DOMINO (Mu et al., NeurIPS 2022) as a context objective: a deterministic encoder whose code is
a global chunk and 2 decomposed sub-contexts, each trained by InfoNCE (dot products / 0.004)
against the other tasks, minus the InfoNCE between the sub-contexts, with forward and backward
transition prediction; UNICORN's backbone acts (DOMINO itself plans with its learned model).

Settings, sources and deviations: :mod:`jcomrl.algos.presets` (rows "domino ...") and
:mod:`jcomrl.algos.objectives.domino`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("domino", variant)
