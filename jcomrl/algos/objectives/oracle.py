"""The upper reference: z is the true task parameter vector (no encoder, no loss)."""

from __future__ import annotations

from jcomrl.algos.objectives.base import Objective, register


@register
class Oracle(Objective):
  name = "oracle"
  uses_encoder = False
  has_loss = False
