"""Point-robot navigation (CSRO's half-circle variant), pure JAX.

A 2-D point starts at the origin; the (normalised) action a in [-1, 1]^2 moves it by
``max_step * a`` (``max_step`` = 0.1, i.e. rlkit's action box [-0.1, 0.1]^2); the reward is
``-||pos - goal||_2``; episodes last 20 steps; the observation is the position.
Goals lie on the unit half-circle, angle in [0, pi]. The benchmark has 40 tasks with angles
``linspace(0, pi, 40)`` and CSRO's evenly spaced 30/10 split (test ids 2, 6, ..., 38).

Sparse variant (rlkit ``SparsePointEnv``): the reward is 0 outside ``goal_radius`` (0.2) of the
goal and ``1 - ||pos - goal||`` inside it. ``info["dense_reward"]`` keeps the dense reward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jcomrl.envs.base import EnvState, TaskEnv, evenly_spaced_split


class PointRobot(TaskEnv):
  """Task = ``{"goal": [2]}``; task_vector = goal xy."""

  def __init__(self, num_tasks: int = 40, num_test_tasks: int = 10, episode_length: int = 20,
               max_step: float = 0.1, sparse: bool = False, goal_radius: float = 0.2,
               angle_range: tuple[float, float] = (0.0, float(jnp.pi))):
    if num_tasks < 2:
      raise ValueError(f"num_tasks must be >= 2, got {num_tasks}")
    self.num_tasks = int(num_tasks)
    self.num_test_tasks = int(num_test_tasks)
    self._episode_length = int(episode_length)
    self.max_step = float(max_step)
    self.sparse = bool(sparse)
    self.goal_radius = float(goal_radius)
    self.angle_range = (float(angle_range[0]), float(angle_range[1]))
    self.name = "sparse_point_robot" if sparse else "point_robot"

  observation_size = property(lambda self: 2)
  action_size = property(lambda self: 2)
  episode_length = property(lambda self: self._episode_length)
  task_size = property(lambda self: 2)

  @staticmethod
  def _goal(angle):
    return {"goal": jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)}

  def sample_tasks(self, key, n):
    lo, hi = self.angle_range
    return self._goal(jax.random.uniform(key, (n,), minval=lo, maxval=hi))

  def all_benchmark_tasks(self):
    lo, hi = self.angle_range
    return self._goal(jnp.linspace(lo, hi, self.num_tasks))

  def ood_tasks(self, num: int):
    """``num`` goals on the part of the unit circle outside ``angle_range`` (for the default
    half circle: the lower half, angles evenly spaced strictly inside (pi, 2 pi))."""
    if num <= 0:
      raise ValueError(f"num must be positive, got {num}")
    lo, hi = self.angle_range
    gap = 2 * float(jnp.pi) - (hi - lo)
    if gap <= 1e-6:
      raise NotImplementedError(f"{self.name}: the training angles {self.angle_range} cover the "
                                "whole circle, so there are no out-of-distribution goals")
    offsets = (jnp.arange(num) + 0.5) / num * gap
    return self._goal(hi + offsets)

  def benchmark_split(self):
    return evenly_spaced_split(self.num_tasks, self.num_test_tasks)

  def task_vector(self, task):
    return task["goal"]

  def _reward(self, pos, goal):
    dense = -jnp.linalg.norm(pos - goal, axis=-1)
    if not self.sparse:
      return dense, dense
    inside = (-dense <= self.goal_radius).astype(jnp.float32)
    return inside * (dense + 1.0), dense

  def reset(self, key, task):
    del key  # deterministic start at the origin
    pos = jnp.zeros(2, jnp.float32)
    zero = jnp.zeros((), jnp.float32)
    return EnvState(physics=pos, obs=pos, reward=zero, done=zero, truncation=zero,
                    step_count=jnp.zeros((), jnp.int32),
                    info={"dense_reward": zero})

  def step(self, state, action, task):
    action = jnp.clip(action, -1.0, 1.0)
    pos = state.physics + self.max_step * action
    reward, dense = self._reward(pos, task["goal"])
    step_count = state.step_count + 1
    done, truncation = self._time_limit(step_count, jnp.zeros((), jnp.float32))
    return state.replace(physics=pos, obs=pos, reward=reward, done=done, truncation=truncation,
                         step_count=step_count, info={"dense_reward": dense})
