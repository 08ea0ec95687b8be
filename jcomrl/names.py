"""Names that several layers list: the suite's envs, the evaluation protocols, FOCAL's 2-task
setting.

No JAX is imported here, so the command line can check a flag against these names before JAX
loads. ``jcomrl.eval.suite``, ``jcomrl.run`` and ``experiments.cli`` take their lists from
this module.
"""

from __future__ import annotations

import difflib

# The envs of the suite (presets, data recipes, tables and benchmarks take their lists from here).
ENVS = ("point_robot", "sparse_point_robot", "cheetah_vel", "cheetah_dir", "ant_dir",
        "hopper_param", "walker_param")
MUJOCO_ENVS = ENVS[2:]
# How tables name them (UNICORN's table headers).
ENV_DISPLAY = {"point_robot": "Point-Robot", "sparse_point_robot": "Sparse-Point-Robot",
               "cheetah_vel": "HC-Vel", "cheetah_dir": "HC-Dir", "ant_dir": "Ant-Dir",
               "hopper_param": "Hopper", "walker_param": "Walker"}
# The methods' display names, by preset (jcomrl.algos.presets, MACAW's learner type).
PRESET_DISPLAY = {"unicorn_ss": "UNICORN-SS", "unicorn_sup": "UNICORN-SUP", "csro": "CSRO",
                  "corro": "CORRO", "focal": "FOCAL", "supervised": "Supervised",
                  "oracle": "Oracle", "borel": "BOReL", "macaw": "MACAW",
                  "prompt_dt": "Prompt-DT", "unicorn_ss_dt": "UNICORN-SS-DT",
                  "unicorn_sup_dt": "UNICORN-SUP-DT", "focal_dt": "FOCAL-DT",
                  "smac": "SMAC", "domino": "DOMINO"}

# FOCAL's own 2-task setting of two envs (the env's "focal" variant: FOCAL's forward/backward
# tasks): the presets and the data recipes of ``<env>@focal2`` (jcomrl.algos.presets,
# jcomrl.datagen.recipes) take them from here.
FOCAL2_ENVS = ("cheetah_dir", "ant_dir")
FOCAL2_ENV_OVERRIDES = {"variant": "focal"}  # jcomrl.envs.make(env, **FOCAL2_ENV_OVERRIDES)

# The multi-confounder tasks (body mass x joint damping on a grid, combinations held out; the
# env's "multi" variant, jcomrl.envs.mjx_base.MULTI_CONFOUNDER), for DOMINO: the data recipes
# ``<env>@multi`` and the training configs' ``@multi`` task setting take them from here.
MULTI_ENVS = ("hopper_param", "walker_param")
MULTI_ENV_OVERRIDES = {"variant": "multi"}
# Task settings other than the suite's: the envs each has and the env overrides of its data.
TASK_SETTING_ENVS = {"focal2": FOCAL2_ENVS, "multi": MULTI_ENVS}
TASK_SETTING_OVERRIDES = {"focal2": FOCAL2_ENV_OVERRIDES, "multi": MULTI_ENV_OVERRIDES}

# The adaptation protocols of ``jcomrl.eval.suite`` (each writes ``eval/<name>_step<N>.json``).
EVAL_PROTOCOLS = ("iid", "ood", "online", "task_ood", "z_shuffle")
# ... and the representation diagnostics (task-code plots and probes), run like a protocol.
PROTOCOLS = EVAL_PROTOCOLS + ("diagnostics",)
PROTOCOL_DISPLAY = {"iid": "IID", "ood": "OOD", "online": "Online", "task_ood": "Task-OOD",
                    "z_shuffle": "IID z-shuffled"}


def parse_protocols(spec, error: type[Exception] = ValueError) -> list[str]:
  """``"iid,ood"`` or a sequence of names -> the checked list (``"all"`` = every protocol).

  Raises ``error`` (one line: the unknown names, the closest known one, the choices).
  """
  names = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec or ())
           if p.strip()]
  if names == ["all"]:
    return list(PROTOCOLS)
  bad = [p for p in names if p not in PROTOCOLS]
  if bad:
    close = difflib.get_close_matches(bad[0], PROTOCOLS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise error(f"unknown protocol(s) {bad}{hint}; expected a comma list of "
                f"{', '.join(PROTOCOLS)} or 'all'")
  return names
