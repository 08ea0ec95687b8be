"""Hopper with randomised physics parameters (``hopper_param``), rand_param_envs style, on MJX.

Physics: brax's ``hopper.xml`` (gym's hopper: timestep 0.002, Euler, gears 200) with the
``rootz`` reference restored so ``qpos[1]`` is the torso height; frame skip 4, ``dt = 0.008`` s.
Start: ``qpos0 + U(-0.005, 0.005)``, ``qvel = U(-0.005, 0.005)``.
Task: per-element multipliers of ``body_mass``, ``body_inertia`` (1.5^U(-3, 3)), ``dof_damping``
(1.3^U(-3, 3)) and ``geom_friction`` (1.5^U(-3, 3)), applied to the MJX model inside the traced
step (see :class:`jcomrl.envs.mjx_base.RandParamEnv`); task_size 41 (5 bodies, 6 dofs, 5 geoms).
Reward: ``v_x + alive_bonus - 1e-3 ||a||^2`` with ``v_x = (qpos_after[0] - qpos_before[0]) / dt``.

  * ``variant="unicorn"`` (default, CORRO/UNICORN): alive bonus 0, no termination (only the
    200-step limit), obs = ``qpos ⊕ qvel`` (12-d); 40 tasks from ``RandomState(1337)``, split
    interleaved (train even ids, test odd ids). Episode ends: ``end_convention="no_terminal"``
    (stored terminal always 0, evaluation sums all 200 rewards; see :mod:`jcomrl.envs.base`):
    UNICORN ``environments/mujoco/rand_param_envs/hopper_rand_params.py:37`` (``done = False``),
    CORRO ``learner.py:474,484`` (stored terminal = ``is_goal_state``, 0 on MuJoCo).
  * ``"focal"``: alive bonus 1, terminates unless the state is finite, ``|s[2:]| < 100``, height
    > 0.7 and ``|angle| < 0.2`` (``s = qpos ⊕ qvel``); obs = ``qpos[1:] ⊕ clip(qvel, -10, 10)``
    (11-d); 50 tasks, first 40 train / last 10 test. ``end_convention="true_terminal"``.
  * ``"csro"``: as ``"focal"`` with 40 tasks from ``RandomState(1234)``, evenly spaced 30/10 split;
    ``"true_terminal"`` (CSRO ``rlkit/samplers/util.py:273`` stops an episode at ``done``).
  * ``"multi"`` (the multi-confounder tasks, for DOMINO): the ``"unicorn"`` settings, but only
    ``body_mass`` and ``dof_damping`` vary, each scaled as a whole array by one level of
    {0.5, 0.75, 1, 1.25, 1.5}: the 25 combinations (id ``5 i + j``, mass level ``i``, damping
    level ``j``), 5 held out (``(i, (i + 2) mod 5)``, each level of each group still in 4
    training tasks); ``task_vector`` = (mass scale, damping scale). DOMINO's hopper groups and
    levels (``domino/envs/config.py:108-110``, ``hopper_env.py:95-102``); see
    :data:`jcomrl.envs.mjx_base.MULTI_CONFOUNDER` for why these two.
  OOD tasks: ``log_scale_range=(lo, hi)`` (exponent range, default (-3, 3)).
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from jcomrl.envs.base import check_end_convention
from jcomrl.envs.mjx_base import (ALL_RAND_PARAMS, MULTI_CONFOUNDER,
                                   RAND_PARAM_LINEAGE_VARIANTS, PlanarParamEnv, resolve_variant)



class HopperParam(PlanarParamEnv):
  """See the module docstring."""

  TERMINATIONS = ("none", "rand_param")
  VARIANTS: ClassVar[dict[str, dict]] = {
      "unicorn": {
          "rand_params": ALL_RAND_PARAMS, "log_scale_range": (-3.0, 3.0), "num_tasks": 40,
          "num_test_tasks": 20, "split": "interleaved", "task_seed": 1337, "obs_mode": "full",
          "alive_bonus": 0.0, "termination": "none", "end_convention": "no_terminal",
          "levels": None,
      },
      **{name: {**cfg, "end_convention": "true_terminal"}
         for name, cfg in RAND_PARAM_LINEAGE_VARIANTS.items()},
  }
  # The multi-confounder grid (body mass x joint damping; mjx_base.MULTI_CONFOUNDER) on the
  # suite's settings.
  VARIANTS["multi"] = {**VARIANTS["unicorn"], **MULTI_CONFOUNDER}


  def __init__(self, variant: str = "unicorn", rand_params=None, log_scale_range=None,
               num_tasks=None, num_test_tasks=None, split=None, task_seed=None, obs_mode=None,
               alive_bonus=None, termination=None, end_convention=None, levels=None,
               ctrl_cost_weight: float = 1e-3,
               episode_length: int = 200, reset_noise_scale: float = 0.005, frame_skip: int = 4,
               physics: str = "auto", c_threads: int | None = None):
    cfg = resolve_variant(
        self.VARIANTS, variant, rand_params=rand_params, log_scale_range=log_scale_range,
        num_tasks=num_tasks, num_test_tasks=num_test_tasks, split=split, task_seed=task_seed,
        obs_mode=obs_mode, alive_bonus=alive_bonus, termination=termination,
        end_convention=end_convention, levels=levels)
    self.end_convention = check_end_convention(cfg.pop("end_convention"))
    super().__init__(asset="hopper", frame_skip=frame_skip, episode_length=episode_length,
                     reset_noise_scale=reset_noise_scale, qvel_noise="uniform",
                     ctrl_cost_weight=ctrl_cost_weight, physics=physics, c_threads=c_threads,
                     **cfg)
    self.name = "hopper_param"
    self.variant = variant

  def _terminal(self, qpos, qvel):
    if self.termination == "none":
      return jnp.zeros((), bool)
    s = jnp.concatenate([qpos, qvel])
    healthy = (jnp.all(jnp.isfinite(s)) & jnp.all(jnp.abs(s[2:]) < 100.0)
               & (qpos[1] > 0.7) & (jnp.abs(qpos[2]) < 0.2))
    return ~healthy
