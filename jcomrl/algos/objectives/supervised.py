"""The end-to-end baseline: no representation loss, the critic loss trains the whole encoder."""

from __future__ import annotations

from jcomrl.algos.objectives.base import Objective, register


@register
class Supervised(Objective):
  name = "supervised"
  critic_trains = "all"
  has_loss = False
