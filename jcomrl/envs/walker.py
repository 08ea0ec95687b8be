"""Walker2d with randomised physics parameters (``walker_param``), rand_param_envs style, on MJX.

Physics: brax's ``walker2d.xml`` (gym's walker: timestep 0.002, Euler, gears 100) with the
``rootz`` reference restored so ``qpos[1]`` is the torso height; frame skip 5 as in
rand_param_envs (gym's Walker2d uses 4), ``dt = 0.01`` s.
Start: ``qpos0 + U(-0.005, 0.005)``, ``qvel = U(-0.005, 0.005)``.
Task: per-element multipliers of the ``rand_params`` arrays of the MJX model, applied inside the
traced step (:class:`jcomrl.envs.mjx_base.RandParamEnv`): ``body_mass`` (1.5^U(-3, 3), [8]) and
``geom_friction`` (1.5^U(-3, 3), [8, 3]) by default; FOCAL also ``body_inertia`` (1.5^U, [8, 3])
and ``dof_damping`` (1.3^U, [9]).
Reward: ``v_x + 1 - 1e-3 ||a||^2`` with ``v_x = (qpos_after[0] - qpos_before[0]) / dt``.

  * ``variant="unicorn"`` (default, CORRO/UNICORN): body mass and geom friction only; the episode
    ends early (``done``) if the torso height ``qpos[1] <= 0.5``; obs = ``qpos ⊕ qvel`` (18-d);
    40 tasks from ``RandomState(1337)``, split interleaved (train even ids, test odd ids).
    Episode ends: ``end_convention="no_terminal"`` (see :mod:`jcomrl.envs.base`): a fall ends
    a collection episode (CORRO ``learner.py:457,471``) but is stored with terminal 0
    (``learner.py:474,484``: ``is_goal_state``, absent on MuJoCo), and the evaluation episode
    sums all 200 rewards, stepping on past the fall (UNICORN ``train_offline_FOCAL.py:491-504``,
    the ``done_rollout`` test commented out; ``max_rollouts_per_task = 1`` so the wrapper never
    resets, ``environments/wrappers.py:128-134``).
  * ``"focal"``: all four groups; terminates unless ``0.8 < height < 2`` and
    ``-1 < angle < 1`` (``angle = qpos[2]``); obs = ``qpos[1:] ⊕ clip(qvel, -10, 10)`` (17-d);
    50 tasks, first 40 train / last 10 test. ``end_convention="true_terminal"``.
  * ``"csro"``: as ``"focal"`` with 40 tasks from ``RandomState(1234)``, evenly spaced 30/10 split;
    ``"true_terminal"`` (CSRO ``rlkit/samplers/util.py:273`` stops an episode at ``done``).
  * ``"multi"`` (the multi-confounder tasks, for DOMINO): the ``"unicorn"`` settings, but the
    varied groups are ``body_mass`` and ``dof_damping`` (not friction), each scaled as a whole
    array by one level of {0.5, 0.75, 1, 1.25, 1.5}: the 25 combinations (id ``5 i + j``), 5
    held out (``(i, (i + 2) mod 5)``); ``task_vector`` = (mass scale, damping scale). DOMINO has
    no walker: its hopper's groups and levels (:data:`jcomrl.envs.mjx_base.MULTI_CONFOUNDER`).
    The walker's joints damp at 0.1 (the hopper's at 1), so its damping confounder is the
    weaker of the two.
  OOD tasks: ``log_scale_range=(lo, hi)`` (exponent range, default (-3, 3)).
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from jcomrl.envs.base import check_end_convention
from jcomrl.envs.mjx_base import (MULTI_CONFOUNDER, RAND_PARAM_LINEAGE_VARIANTS,
                                   PlanarParamEnv, resolve_variant)



class WalkerParam(PlanarParamEnv):
  """See the module docstring."""

  TERMINATIONS = ("low_height", "rand_param", "none")
  VARIANTS: ClassVar[dict[str, dict]] = {
      "unicorn": {
          "rand_params": ("body_mass", "geom_friction"), "log_scale_range": (-3.0, 3.0),
          "num_tasks": 40, "num_test_tasks": 20, "split": "interleaved", "task_seed": 1337,
          "obs_mode": "full", "alive_bonus": 1.0, "termination": "low_height",
          "end_convention": "no_terminal", "levels": None,
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
               min_height: float = 0.5, episode_length: int = 200,
               reset_noise_scale: float = 0.005, frame_skip: int = 5, physics: str = "auto",
               c_threads: int | None = None):
    cfg = resolve_variant(
        self.VARIANTS, variant, rand_params=rand_params, log_scale_range=log_scale_range,
        num_tasks=num_tasks, num_test_tasks=num_test_tasks, split=split, task_seed=task_seed,
        obs_mode=obs_mode, alive_bonus=alive_bonus, termination=termination,
        end_convention=end_convention, levels=levels)
    self.end_convention = check_end_convention(cfg.pop("end_convention"))
    super().__init__(asset="walker2d", frame_skip=frame_skip, episode_length=episode_length,
                     reset_noise_scale=reset_noise_scale, qvel_noise="uniform",
                     ctrl_cost_weight=ctrl_cost_weight, physics=physics, c_threads=c_threads,
                     **cfg)
    self.name = "walker_param"
    self.variant = variant
    self.min_height = float(min_height)

  def _terminal(self, qpos, qvel):
    del qvel
    height, angle = qpos[1], qpos[2]
    if self.termination == "low_height":
      return height <= self.min_height
    if self.termination == "rand_param":
      return ~((height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0))
    return jnp.zeros((), bool)
