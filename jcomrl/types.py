"""Pytrees shared by every module: transitions, RL batches and contexts.

All are frozen ``flax.struct`` dataclasses with named fields; leading axes are documented per
field and never implied by position in a tuple.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Transition:
  """A block of transitions. Fields share leading axes ``[...]`` (e.g. ``[tasks, n]``).

  Attributes:
    obs: ``[..., obs_dim]`` observation s.
    action: ``[..., act_dim]`` action a, in the env's normalised range [-1, 1].
    reward: ``[...]`` reward r.
    next_obs: ``[..., obs_dim]`` the true next observation s' (never an auto-reset observation).
    terminal: ``[...]`` float 1.0 where s' is a true terminal state (bootstrapping stops).
    timeout: ``[...]`` float 1.0 where the episode was cut by the time limit after this step.
  """

  obs: jnp.ndarray
  action: jnp.ndarray
  reward: jnp.ndarray
  next_obs: jnp.ndarray
  terminal: jnp.ndarray
  timeout: jnp.ndarray

  def check(self) -> None:
    """Asserts that the fields agree on their leading axes."""
    lead = self.reward.shape
    chex.assert_equal_shape_prefix([self.obs, self.action, self.next_obs], len(lead))
    chex.assert_shape([self.terminal, self.timeout], lead)
    chex.assert_equal_shape([self.obs, self.next_obs])


@struct.dataclass
class MetaBatch:
  """What one learner step consumes for a meta-batch of ``B`` tasks.

  Attributes:
    task_index: ``[B]`` int32 row of each task in the dataset's task axis.
    task_label: ``[B]`` int32 label used by label-aware objectives (positive pairs share it).
    task_params: ``[B, P]`` true task parameters (oracle conditioning, probes).
    context: ``Transition`` with leading axes ``[B, K]``: what the encoder sees.
    rl: ``Transition`` with leading axes ``[B, N]``: the RL minibatch of each task.
  """

  task_index: jnp.ndarray
  task_label: jnp.ndarray
  task_params: jnp.ndarray
  context: Transition
  rl: Transition
