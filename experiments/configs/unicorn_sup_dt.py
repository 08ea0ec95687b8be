"""unicorn_sup_dt: the decision-transformer backbone (Prompt-DT's settings) with the
unicorn_sup objective's task code embedded as its first token (UNICORN Table 4).

Settings and deviations: :mod:`jcomrl.algos.presets` (``DT_PRESETS``). Variants: ``point_robot``,
``cheetah_vel``, ``cheetah_dir``, ``ant_dir`` (also ``@cpu``), ``tiny``.
"""

from experiments.configs.common import base_config


def get_config(variant: str = "point_robot"):
  return base_config("unicorn_sup_dt", variant)
