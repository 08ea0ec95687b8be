"""Train a preset: ``python -m experiments.train --config=experiments/configs/focal.py:point_robot
--workdir=runs/focal`` (``--config.seed=3`` etc. override). Resumes if the workdir has checkpoints."""

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import common

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/focal.py:point_robot",
                                          "training config file[:variant]")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
  res = common.train_run(common.to_plain(_CONFIG.value), _WORKDIR.value)
  print({k: round(v["mean"], 3) for k, v in res.items() if isinstance(v, dict)})


if __name__ == "__main__":
  app.run(main)
