"""CORRO (Yuan & Lu, ICML 2022): InfoNCE on L2-normalised transition embeddings with negatives
sharing the anchor's (s, a) and (r, s') from a pre-trained CVAE (or reward noise:
``--config.learner.corro.negative_source=reward_noise``); attention pooling trained by the critic.

Settings and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the suite, ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("corro", variant)
