"""FOCAL's distance-metric loss on task codes (Li, Yang, Luo 2021): an upper bound on I(Z; X).

``hparams.focal.weight * [mean over same-task pairs of ||z_i - z_j||^2 + mean over other-task pairs of
1 / (||z_i - z_j||^n + eps)]`` (:func:`jcomrl.mi.focal_metric_loss`, FOCAL ``sac.py`` ``_optimize_c``).
"""

from __future__ import annotations

from jcomrl import mi
from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.settings import hyper


def focal_term(z, batch, weight):
  """The FOCAL loss times ``weight`` and its metrics (shared by the objectives built on it)."""
  loss, metrics = mi.focal_metric_loss(z, batch.task_label)
  return weight * loss, metrics


@hyper
class FocalHyper:
  """``hparams.focal.weight`` (before plug-in subtrees ``focal_weight``)."""

  legacy = {"weight": "focal_weight"}

  weight: float = 10.0


@register
class Focal(Objective):
  name = "focal"
  Hyper = FocalHyper

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    return focal_term(z, batch, self.hyper(hp).weight)
