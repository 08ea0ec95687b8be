"""Offline-RL backbones as registered modules (one file each; see :mod:`.base`).

``BACKBONES`` maps each name to its class; importing this package registers the built-in ones.
The pure per-task losses live in :mod:`.losses` and are re-exported here.
"""

from jcomrl.algos.backbones import awac, bc, brac, cql, dt, iql, misa, sac, td3bc  # noqa: F401 (registers)
from jcomrl.algos.backbones.base import (  # noqa: F401
  BACKBONES,
  Backbone,
  Policy,
  apply_gradient,
  as_policy,
  gradient_step,
  make_backbone,
  make_critic,
  make_policy,
  memoryless_policy,
  optimiser_init,
  register,
  task_mean,
)
from jcomrl.algos.backbones.losses import (  # noqa: F401
  actor_loss,
  critic_loss,
  dual_loss,
  kl_dual_estimate,
  policy_mode,
  policy_sample,
  td3_critic_loss,
  td3bc_actor_loss,
)
