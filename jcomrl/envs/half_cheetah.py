"""Half-Cheetah velocity and direction tasks on MJX.

Physics: brax's ``half_cheetah.xml`` (the gym model; timestep 0.01, Euler), frame skip 5, so
``dt = 0.05`` s and 200 steps = 10 s. Actions in [-1, 1]^6 are the motor controls (gears 120,
90, 60, 120, 60, 30). Start: ``qpos0 + U(-0.1, 0.1)``, ``qvel = 0.1 N(0, 1)``.
Observation (``obs_mode="pearl"``, the default: 20-d, the PEARL/varibad cheetah): ``qpos[1:] (8)
⊕ qvel (9) ⊕ torso body position (3)``; the torso position is ``data.xpos`` after the step, i.e.
from the kinematics of the last substep, as mujoco-py's ``get_body_com`` returns it.
``obs_mode="gym"``: 17-d ``qpos[1:] ⊕ qvel``, gym's ``HalfCheetah-v2`` observation (no absolute
x position; the single-task D4RL-style datasets use it).
Forward velocity ``v_x = (qpos_after[0] - qpos_before[0]) / dt`` (root slide joint = torso x).

``cheetah_vel``: task ``{"velocity": v*}``; reward ``-|v_x - v*| - 0.05 ||a||^2``.
  * ``variant="unicorn"`` (default, CORRO/UNICORN): 40 tasks, v* ~ U[0, 3] drawn with
    ``RandomState(1337)``, stored sorted by v*; split interleaved (train even ids, test odd ids).
  * ``"focal"``: 100 tasks U[0, 3] (seed 1337, sampling order), first 80 train / last 20 test.
  * ``"csro"``: 40 tasks ``linspace(1, 3, 40)``, CSRO's evenly spaced 30/10 split.
  Out-of-distribution tasks: ``env.ood_tasks(n)`` (velocities in ``(hi, hi + 1]``, i.e. (3, 4]
  by default), or ``make("cheetah_vel", velocity_range=(3.0, 4.0))`` for a whole benchmark.
``cheetah_dir``: task ``{"direction": ±1}``; reward ``dir * v_x - 0.05 ||a||^2``.
  * ``"unicorn"``: 40 tasks, ids 0-19 direction -1 and ids 20-39 direction +1 (sorted), split
    interleaved, so train and test each hold 10 tasks of each direction.
  * ``"focal"``: the 2 tasks (-1, +1), train = test = both. ``num_tasks=1`` leaves the one task
    +1 (forward running, gym's ``HalfCheetah`` task; the single-task datasets).
No termination: ``done`` only at the time limit (``truncation = 1``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.envs.mjx_base import MjxTaskEnv, make_split, resolve_variant


class _HalfCheetah(MjxTaskEnv):
  info_keys = ("x_velocity", "forward_reward", "ctrl_cost")
  host_fields = ("xpos",)  # the torso position in the observation

  def __init__(self, episode_length: int = 200, ctrl_cost_weight: float = 0.05,
               reset_noise_scale: float = 0.1, frame_skip: int = 5, obs_mode: str = "pearl",
               physics: str = "auto", c_threads: int | None = None):
    if obs_mode not in ("pearl", "gym"):
      raise ValueError(f"obs_mode must be 'pearl' or 'gym', got {obs_mode!r}")
    self.obs_mode = obs_mode
    super().__init__(asset="half_cheetah", frame_skip=frame_skip, episode_length=episode_length,
                     reset_noise_scale=reset_noise_scale, qvel_noise="normal", physics=physics,
                     c_threads=c_threads)
    self.ctrl_cost_weight = float(ctrl_cost_weight)
    self._torso = self.body_id("torso")

  observation_size = property(lambda self: self.mj_model.nq - 1 + self.mj_model.nv
                              + (3 if self.obs_mode == "pearl" else 0))
  task_size = property(lambda self: 1)

  def _obs(self, data):
    if self.obs_mode == "gym":
      return jnp.concatenate([data.qpos[1:], data.qvel])
    return jnp.concatenate([data.qpos[1:], data.qvel, data.xpos[self._torso]])

  def _forward(self, before, after, action):
    x_velocity = (after.qpos[0] - before.qpos[0]) / self.dt
    ctrl_cost = self.ctrl_cost_weight * jnp.sum(jnp.square(action))
    return x_velocity, ctrl_cost


class HalfCheetahVel(_HalfCheetah):
  """Target-velocity running; see the module docstring."""

  VARIANTS: ClassVar[dict[str, dict]] = {
      "unicorn": {
          "num_tasks": 40, "num_test_tasks": 20, "velocity_range": (0.0, 3.0),
          "spacing": "random", "sort_tasks": True, "split": "interleaved", "task_seed": 1337,
      },
      "focal": {
          "num_tasks": 100, "num_test_tasks": 20, "velocity_range": (0.0, 3.0),
          "spacing": "random", "sort_tasks": False, "split": "first_last", "task_seed": 1337,
      },
      "csro": {
          "num_tasks": 40, "num_test_tasks": 10, "velocity_range": (1.0, 3.0),
          "spacing": "linspace", "sort_tasks": True, "split": "evenly_spaced", "task_seed": 1337,
      },
  }


  def __init__(self, variant: str = "unicorn", num_tasks: int | None = None,
               num_test_tasks: int | None = None, velocity_range=None, spacing=None,
               sort_tasks=None, split=None, task_seed=None, **kwargs):
    cfg = resolve_variant(self.VARIANTS, variant, num_tasks=num_tasks,
                          num_test_tasks=num_test_tasks, velocity_range=velocity_range,
                          spacing=spacing, sort_tasks=sort_tasks, split=split,
                          task_seed=task_seed)
    super().__init__(**kwargs)
    self.name = "cheetah_vel"
    self.variant = variant
    self.num_tasks, self.num_test_tasks = int(cfg["num_tasks"]), int(cfg["num_test_tasks"])
    self.velocity_range = (float(cfg["velocity_range"][0]), float(cfg["velocity_range"][1]))
    if cfg["spacing"] not in ("random", "linspace"):
      raise ValueError(f"spacing must be 'random' or 'linspace', got {cfg['spacing']!r}")
    self.spacing, self.sort_tasks = cfg["spacing"], bool(cfg["sort_tasks"])
    self.split, self.task_seed = cfg["split"], int(cfg["task_seed"])
    make_split(self.split, self.num_tasks, self.num_test_tasks)

  def sample_tasks(self, key, n):
    lo, hi = self.velocity_range
    return {"velocity": jax.random.uniform(key, (n,), minval=lo, maxval=hi)}

  def all_benchmark_tasks(self):
    lo, hi = self.velocity_range
    if self.spacing == "linspace":
      v = np.linspace(lo, hi, self.num_tasks)
    else:
      v = np.random.RandomState(self.task_seed).uniform(lo, hi, size=self.num_tasks)
    if self.sort_tasks:
      v = np.sort(v)
    return {"velocity": jnp.asarray(v, jnp.float32)}

  def benchmark_split(self):
    return make_split(self.split, self.num_tasks, self.num_test_tasks)

  def ood_tasks(self, num: int):
    """``num`` target velocities evenly spaced in ``(hi, hi + 1]`` above the training range
    (``(3, 4]`` for the default ``[0, 3]``)."""
    if num <= 0:
      raise ValueError(f"num must be positive, got {num}")
    hi = self.velocity_range[1]
    return {"velocity": jnp.asarray(hi + np.arange(1, num + 1) / num, jnp.float32)}

  def task_vector(self, task):
    return jnp.reshape(task["velocity"], (1,))

  def _reward(self, before, after, action, task):
    x_velocity, ctrl_cost = self._forward(before, after, action)
    forward_reward = -jnp.abs(x_velocity - task["velocity"])
    info = {"x_velocity": x_velocity, "forward_reward": forward_reward, "ctrl_cost": ctrl_cost}
    return forward_reward - ctrl_cost, jnp.zeros(()), info


class HalfCheetahDir(_HalfCheetah):
  """Forward/backward running; see the module docstring."""

  VARIANTS: ClassVar[dict[str, dict]] = {
      "unicorn": {"num_tasks": 40, "num_test_tasks": 20, "split": "interleaved"},
      "focal": {"num_tasks": 2, "num_test_tasks": 2, "split": "same"},
  }

  def __init__(self, variant: str = "unicorn", num_tasks: int | None = None,
               num_test_tasks: int | None = None, split=None, **kwargs):
    cfg = resolve_variant(self.VARIANTS, variant, num_tasks=num_tasks,
                          num_test_tasks=num_test_tasks, split=split)
    super().__init__(**kwargs)
    self.name = "cheetah_dir"
    self.variant = variant
    self.num_tasks, self.num_test_tasks = int(cfg["num_tasks"]), int(cfg["num_test_tasks"])
    self.split = cfg["split"]
    if self.num_tasks < 1:
      raise ValueError(f"num_tasks must be >= 1, got {self.num_tasks}")
    make_split(self.split, self.num_tasks, self.num_test_tasks)

  def sample_tasks(self, key, n):
    heads = jax.random.bernoulli(key, 0.5, (n,))
    return {"direction": jnp.where(heads, 1.0, -1.0).astype(jnp.float32)}

  def all_benchmark_tasks(self):
    ids = np.arange(self.num_tasks)
    return {"direction": jnp.asarray(np.where(ids < self.num_tasks // 2, -1.0, 1.0),
                                     jnp.float32)}

  def benchmark_split(self):
    return make_split(self.split, self.num_tasks, self.num_test_tasks)

  def task_vector(self, task):
    return jnp.reshape(task["direction"], (1,))

  def _reward(self, before, after, action, task):
    x_velocity, ctrl_cost = self._forward(before, after, action)
    forward_reward = task["direction"] * x_velocity
    info = {"x_velocity": x_velocity, "forward_reward": forward_reward, "ctrl_cost": ctrl_cost}
    return forward_reward - ctrl_cost, jnp.zeros(()), info
