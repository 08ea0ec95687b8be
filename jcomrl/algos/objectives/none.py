"""Single-task offline RL: no task code at all (z has size 0, nothing is encoded or learned).

A single-task dataset is a one-task dataset; with ``representation="none"`` every backbone runs
as the plain offline-RL algorithm on (s, a), e.g. the D4RL-style suite's BC, TD3+BC, CQL, IQL
and MISA rows.
"""

from __future__ import annotations

from jcomrl.algos.objectives.base import Objective, register


@register
class NoCode(Objective):
  name = "none"
  uses_encoder = False
  has_loss = False

  @classmethod
  def code_size(cls, cfg) -> int:
    del cfg
    return 0

  @staticmethod
  def code_without_encoder(task_params):
    return task_params[..., :0]
