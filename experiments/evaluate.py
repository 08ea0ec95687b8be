"""Evaluate a run from its checkpoint: ``python -m experiments.evaluate --workdir=runs/focal``."""

from absl import app, flags, logging

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: latest)")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
  res = common.evaluate_run(_WORKDIR.value, _STEP.value)
  for name, v in res.items():
    if isinstance(v, dict):
      print(f"{name}: mean return {v['mean']:.3f}  normalised {v.get('normalised', float('nan')):.1f}")


if __name__ == "__main__":
  app.run(main)
