"""``BehaviourPolicies``: the K snapshots a behaviour trainer returns, the container every
trainer (``behaviour``, ``per_task_sac``, ``shared_sac``), the collection and the stored
``behaviour/`` directory share. It imports no trainer, so the trainers and their registry
(``behaviour``) import it without importing each other."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class BehaviourPolicies:
  """K snapshots of one task-conditioned policy (or of T per-task agents, ``"sac_per_task"``).

  Attributes:
    params: brax ``(normalizer_params, policy_params)`` with a leading snapshot axis ``[K]``;
      for ``"sac_per_task"`` ``{"actor": [K, T] actors, "task_vectors": [K, T, task_size]}``.
    steps: env steps at which each snapshot was taken (first = 0, the untrained policy).
    make_policy: ``make_policy(params, deterministic) -> policy(obs, key) -> (action, extras)``
      for *one* snapshot's params (vmap it over the snapshot axis).
    hidden_sizes: the policy network's hidden layer sizes (to rebuild it after a restore).
    algo: the trainer that produced the snapshots (one of ``behaviour.ALGOS``); it decides the
      network layout used to restore them.
    normalize_observations: whether the policy applies its running observation normaliser
      (brax's ``normalize_observations``); a restored ``make_policy`` must do the same.
  """

  params: Any
  steps: np.ndarray
  make_policy: Callable
  hidden_sizes: tuple[int, ...]
  algo: str = "ppo"
  normalize_observations: bool = False

  @property
  def num_snapshots(self) -> int:
    return int(self.steps.shape[0])

  def select(self, ids) -> BehaviourPolicies:
    ids = np.asarray(ids)
    return dataclasses.replace(self, params=jax.tree.map(lambda x: x[ids], self.params),
                               steps=self.steps[ids])
