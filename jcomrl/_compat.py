"""Compatibility with the pinned library range.

``brax.training`` (<= 0.14.2) still calls ``jax.device_put_replicated``, which jax 0.10 removed
(brax issue #671; the jax pmap migration guide gives ``jax.device_put`` as the replacement).
``ensure_brax_training_compat`` installs an equivalent: the value stacked once per device along
a new leading axis, which ``jax.pmap`` accepts as a per-device input. It is called by jcomrl's
behaviour-policy trainers before they call into brax and is a no-op where jax still has it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _device_put_replicated(x, devices):
  n = len(devices)
  return jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * n), x)


def ensure_brax_training_compat() -> None:
  if not hasattr(jax, "device_put_replicated"):
    jax.device_put_replicated = _device_put_replicated
