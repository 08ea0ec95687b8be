"""Train a preset: ``python -m experiments.train --config=experiments/configs/focal.py:point_robot
--workdir=runs/focal`` (``--config.seed=3`` etc. override). Resumes if the workdir has checkpoints.

``--eval_protocols=iid,ood,online,task_ood,diagnostics`` (or ``all``) evaluates those protocols
from the final checkpoint (``eval/<protocol>_step<N>.json``); the default is ``iid``, and an
empty value skips the final evaluation.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import common

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/focal.py:point_robot",
                                          "training config file[:variant]")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)
_PROTOCOLS = flags.DEFINE_string("eval_protocols", "iid",
                                 f"comma list of {', '.join(common.ALL_PROTOCOLS)} or 'all' to "
                                 "evaluate after training ('' = none)")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
  try:
    protocols = common.parse_protocols(_PROTOCOLS.value)
  except ValueError as e:
    sys.exit(f"experiments.train: {e}")
  cfg = common.to_plain(_CONFIG.value)
  common.train_run(cfg, _WORKDIR.value, evaluate=False)
  if protocols:
    res = common.evaluate_protocols(_WORKDIR.value, protocols, progress=print)
    for name, r in res.items():
      score = r.get("score", {})
      if score:
        print(f"{name}: mean return {score['mean']:.3f}  normalised "
              f"{score.get('normalised', float('nan')):.1f}")


if __name__ == "__main__":
  app.run(main)
