"""Dataset generation configs: ``--config=experiments/configs/data.py:<variant>``.

Variants: one per env at paper scale (``point_robot``, ``sparse_point_robot``, ``cheetah_vel``,
``cheetah_dir``, ``ant_dir``, ``hopper_param``, ``walker_param``); the tiny test variants
(``tiny``, ``tiny_sac``, ``tiny_cheetah_vel``, ``tiny_hopper_param``); and per MuJoCo env the
profiles ``<env>@cpu`` (per-task SAC at a 2-core size, ``make paper PROFILE=cpu``), ``<env>@fast``
(one shared task-conditioned SAC agent, its replay buffer as the data, ``make paper
RECIPE=fast``) and ``<env>@official`` (the papers' own behaviour-data recipe, every setting a row
of ``OFFICIAL_RECIPE_PROVENANCE``), and FOCAL's 2-task ``cheetah_dir@focal2`` / ``ant_dir@focal2``
(``tiny_<env>@focal2``: their quick build), and the multi-confounder tasks ``hopper_param@multi`` /
``walker_param@multi`` (the fast recipe on the env's ``"multi"`` variant; ``tiny_<env>@multi``: their quick build).

The recipes are defined in ``jcomrl.datagen.recipes`` (its docstring gives every variant's
settings, the config layout and the sources); this file is their command-line view, the same
configs under the same names.
"""

from jcomrl.datagen.recipes import (  # noqa: F401  (the names this config module has always had)
  CPU_ALGO,
  FAST_ALGO,
  FOCAL2_ALGO,
  MULTI_ALGO,
  OFFICIAL_ALGO,
  OFFICIAL_ENVS,
  OFFICIAL_ITERATIONS,
  OFFICIAL_RECIPE_PROVENANCE,
  OFFICIAL_SAVE_INTERVAL,
  OFFICIAL_UPDATES_PER_ITERATION,
  OFFICIAL_WARMUP_STEPS,
  get_config,
  official_recipe_markdown,
  official_sac_per_task,
  variants,
)
