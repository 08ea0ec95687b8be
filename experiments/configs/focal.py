"""FOCAL (Li et al., ICLR 2021): distance-metric loss on a deterministic mean-tanh encoder,
twin-Q SAC with a BRAC KL policy regulariser, z detached from the RL losses.

Follows the official code for the metric loss constants (RMS positives, 1/(d^2 + 0.1)
negatives, weight 10) and for the context (random transitions of the task, 64 by default);
differs from it by sampling the meta-batch *with* replacement (as UNICORN does, so positive
pairs exist) and by using twin-Q SAC without a V network.
Settings per env and deviations: :mod:`jcomrl.algos.presets`. Variants: every env of the
suite, ``point_robot`` (the default small job), ``tiny`` (tests); ``cheetah_dir@focal2`` and
``ant_dir@focal2`` are FOCAL's own 2-task forward/backward setting (its configs
cheetah-dir.json / ant-dir.json, on data of ``experiments/configs/data.py:<env>@focal2``; the
suite's cheetah_dir / ant_dir have 40 tasks), ``<env>@focal2@cpu`` its CPU profile and
``tiny_<env>@focal2`` its test-sized run.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("focal", variant)
