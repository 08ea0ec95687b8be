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


@struct.dataclass
class Segment:
  """Length-``K`` windows of trajectories for sequence models (the decision transformer).

  Windows never cross a stored episode end; a window shorter than ``K`` (it reached the end of
  its episode) is left-padded, as the official DT batches (kzl/decision-transformer
  ``gym/experiment.py:146-155``): padded steps have ``mask = 0`` and zero inputs.

  Attributes:
    obs: ``[..., K, obs_dim]`` observations s_t.
    action: ``[..., K, act_dim]`` data actions a_t (the targets).
    rtg: ``[..., K]`` return-to-go R_t = sum of the episode's rewards from t on, divided by the
      return scale.
    timestep: ``[..., K]`` int32 step index t within the episode.
    mask: ``[..., K]`` float 1.0 on real steps, 0.0 on padding.
  """

  obs: jnp.ndarray
  action: jnp.ndarray
  rtg: jnp.ndarray
  timestep: jnp.ndarray
  mask: jnp.ndarray


def segment_vector_size(length: int, obs_size: int, action_size: int) -> int:
  """The size of :func:`segment_to_vector`'s output."""
  return length * (3 + obs_size + action_size)


def segment_to_vector(seg: Segment) -> jnp.ndarray:
  """A ``Segment [..., P]`` flattened to one vector ``[..., P * (3 + obs + act)]`` (per step:
  rtg, timestep, mask, obs, action), so that a prompt travels as a task code ``z``."""
  per_step = jnp.concatenate([seg.rtg[..., None], seg.timestep[..., None].astype(jnp.float32),
                              seg.mask[..., None], seg.obs, seg.action], axis=-1)
  return per_step.reshape(per_step.shape[:-2] + (-1,))


def vector_to_segment(vec: jnp.ndarray, length: int, obs_size: int) -> Segment:
  """The inverse of :func:`segment_to_vector`."""
  steps = vec.reshape(vec.shape[:-1] + (length, -1))
  return Segment(rtg=steps[..., 0], timestep=jnp.round(steps[..., 1]).astype(jnp.int32),
                 mask=steps[..., 2], obs=steps[..., 3:3 + obs_size],
                 action=steps[..., 3 + obs_size:])
