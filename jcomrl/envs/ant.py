"""Ant direction tasks on MJX (``ant_dir``).

Physics: brax's ``ant.xml`` (gym's ant: timestep 0.01, 8 motors with gear 150; brax removed RK4
for Euler and limits collisions to the four feet and the floor), frame skip 5, ``dt = 0.05``.
By default (``torso_contact=True``) the torso sphere also collides with the floor, so an ant that
flips over rests on its back instead of falling through the floor forever (the env has no
termination by default). Start: ``qpos0 + U(-0.1, 0.1)`` (root height 0.75), ``qvel = 0.1 N(0,1)``.
Observation (27-d): ``qpos[2:] (13) ⊕ qvel (14)``.
Task ``{"angle": θ}``; ``task_vector = (cos θ, sin θ)``. The planar torso velocity is
``v = (qpos_after[:2] - qpos_before[:2]) / dt`` (free root joint = torso position).

  * ``variant="unicorn"`` (default, CORRO/UNICORN): reward = ``v · (cos θ, sin θ)`` only, never
    terminates; 40 tasks θ ~ U[0, 2π) drawn with ``RandomState(1337)``, stored sorted by θ, split
    interleaved (train even ids, test odd ids). OOD: build with ``angle_range=(lo, hi)`` (an
    arc) and ``env.ood_tasks(n)`` gives directions on the rest of the circle.
  * ``"focal"`` (rlkit): 2 tasks θ ∈ {0, π} (train = test); reward
    ``v · dir - 0.5 ||a||^2 - 0.5e-3 ||clip(cfrc_ext, -1, 1)||^2 + 1``; terminates when the state
    is not finite or the torso height ``qpos[2]`` leaves [0.2, 1.0]. ``cfrc_ext`` comes from
    ``mjx.rne_postconstraint`` on the final substep's data (C backend: ``mj_rnePostConstraint``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.envs.mjx_base import MjxTaskEnv, make_split, resolve_variant


class AntDir(MjxTaskEnv):
  """Run along a task direction; see the module docstring."""

  info_keys = ("x_velocity", "y_velocity", "forward_reward", "ctrl_cost", "contact_cost",
               "height")

  VARIANTS: ClassVar[dict[str, dict]] = {
      "unicorn": {
          "num_tasks": 40, "num_test_tasks": 20, "angle_range": (0.0, 2 * np.pi),
          "fixed_angles": None, "split": "interleaved", "task_seed": 1337,
          "ctrl_cost_weight": 0.0, "contact_cost_weight": 0.0, "survive_reward": 0.0,
          "terminate": False, "healthy_z_range": (0.2, 1.0),
      },
      "focal": {
          "num_tasks": 2, "num_test_tasks": 2, "angle_range": (0.0, 2 * np.pi),
          "fixed_angles": (0.0, np.pi), "split": "same", "task_seed": 1337,
          "ctrl_cost_weight": 0.5, "contact_cost_weight": 0.5e-3, "survive_reward": 1.0,
          "terminate": True, "healthy_z_range": (0.2, 1.0),
      },
  }


  def __init__(self, variant: str = "unicorn", num_tasks=None, num_test_tasks=None,
               angle_range=None, fixed_angles=None, split=None, task_seed=None,
               ctrl_cost_weight=None, contact_cost_weight=None, survive_reward=None,
               terminate=None, healthy_z_range=None, episode_length: int = 200,
               reset_noise_scale: float = 0.1, frame_skip: int = 5, torso_contact: bool = True,
               physics: str = "auto", c_threads: int | None = None):
    cfg = resolve_variant(
        self.VARIANTS, variant, num_tasks=num_tasks, num_test_tasks=num_test_tasks,
        angle_range=angle_range, fixed_angles=fixed_angles, split=split, task_seed=task_seed,
        ctrl_cost_weight=ctrl_cost_weight, contact_cost_weight=contact_cost_weight,
        survive_reward=survive_reward, terminate=terminate, healthy_z_range=healthy_z_range)
    edits = (("geom", "torso_geom", "contype", 1),) if torso_contact else ()
    super().__init__(asset="ant", frame_skip=frame_skip, episode_length=episode_length,
                     reset_noise_scale=reset_noise_scale, qvel_noise="normal", edits=edits,
                     physics=physics, c_threads=c_threads)
    self.name = "ant_dir"
    self.variant = variant
    self.fixed_angles = None if cfg["fixed_angles"] is None else tuple(
        float(a) for a in cfg["fixed_angles"])
    self.num_tasks = len(self.fixed_angles) if self.fixed_angles else int(cfg["num_tasks"])
    self.num_test_tasks = int(cfg["num_test_tasks"])
    self.angle_range = (float(cfg["angle_range"][0]), float(cfg["angle_range"][1]))
    self.split, self.task_seed = cfg["split"], int(cfg["task_seed"])
    self.ctrl_cost_weight = float(cfg["ctrl_cost_weight"])
    self.contact_cost_weight = float(cfg["contact_cost_weight"])
    self.survive_reward = float(cfg["survive_reward"])
    self.terminate = bool(cfg["terminate"])
    self.healthy_z_range = (float(cfg["healthy_z_range"][0]), float(cfg["healthy_z_range"][1]))
    self.torso_contact = bool(torso_contact)
    make_split(self.split, self.num_tasks, self.num_test_tasks)

  observation_size = property(lambda self: self.mj_model.nq - 2 + self.mj_model.nv)
  # The C backend returns the contact forces only where the reward reads them.
  host_fields = property(lambda self: ("cfrc_ext",) if self.contact_cost_weight else ())
  task_size = property(lambda self: 2)

  def sample_tasks(self, key, n):
    if self.fixed_angles:
      idx = jax.random.randint(key, (n,), 0, len(self.fixed_angles))
      return {"angle": jnp.asarray(self.fixed_angles, jnp.float32)[idx]}
    lo, hi = self.angle_range
    return {"angle": jax.random.uniform(key, (n,), minval=lo, maxval=hi)}

  def all_benchmark_tasks(self):
    if self.fixed_angles:
      return {"angle": jnp.asarray(self.fixed_angles, jnp.float32)}
    lo, hi = self.angle_range
    theta = np.sort(np.random.RandomState(self.task_seed).uniform(lo, hi, size=self.num_tasks))
    return {"angle": jnp.asarray(theta, jnp.float32)}

  def benchmark_split(self):
    return make_split(self.split, self.num_tasks, self.num_test_tasks)

  def ood_tasks(self, num: int):
    """``num`` directions evenly spaced on the arc outside ``angle_range`` (UNICORN's task-OOD
    setting trains on an arc); the default full circle has no outside."""
    if num <= 0:
      raise ValueError(f"num must be positive, got {num}")
    if self.fixed_angles:
      raise NotImplementedError(f"ant_dir variant {self.variant!r} has fixed directions "
                                f"{self.fixed_angles}; no out-of-distribution directions")
    lo, hi = self.angle_range
    gap = 2 * np.pi - (hi - lo)
    if gap <= 1e-6:
      raise NotImplementedError(
          f"ant_dir angle_range {self.angle_range} covers the whole circle, so there are no "
          "out-of-distribution directions; build it with make('ant_dir', angle_range=(lo, hi))")
    return {"angle": jnp.asarray(hi + (np.arange(num) + 0.5) / num * gap, jnp.float32)}

  def task_vector(self, task):
    return jnp.stack([jnp.cos(task["angle"]), jnp.sin(task["angle"])], axis=-1)

  def _obs(self, data):
    return jnp.concatenate([data.qpos[2:], data.qvel])

  def _reward(self, before, after, action, task):
    velocity = (after.qpos[:2] - before.qpos[:2]) / self.dt
    forward_reward = jnp.dot(velocity, self.task_vector(task))
    ctrl_cost = self.ctrl_cost_weight * jnp.sum(jnp.square(action))
    if self.contact_cost_weight:
      cfrc_ext = self.contact_forces(after, task)
      contact_cost = self.contact_cost_weight * jnp.sum(jnp.square(jnp.clip(cfrc_ext, -1, 1)))
    else:
      contact_cost = jnp.zeros(())
    reward = forward_reward - ctrl_cost - contact_cost + self.survive_reward
    height = after.qpos[2]
    if self.terminate:
      lo, hi = self.healthy_z_range
      finite = jnp.all(jnp.isfinite(after.qpos)) & jnp.all(jnp.isfinite(after.qvel))
      terminal = ~(finite & (height >= lo) & (height <= hi))
    else:
      terminal = jnp.zeros((), bool)
    info = {"x_velocity": velocity[0], "y_velocity": velocity[1],
            "forward_reward": forward_reward, "ctrl_cost": ctrl_cost,
            "contact_cost": contact_cost, "height": height}
    return reward, terminal, info
