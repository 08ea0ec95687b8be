"""Train a preset: ``python -m experiments.train --config=experiments/configs/focal.py:point_robot
--workdir=runs/focal`` (``--config.seed=3`` etc. override). Resumes if the workdir has checkpoints;
the same config with a larger ``--config.num_steps`` extends a finished run.

``--eval_protocols=iid,ood,online,task_ood,diagnostics`` (or ``all``) evaluates those protocols
from the final checkpoint (``eval/<protocol>_step<N>.json``); the default is ``iid``, and an
empty value skips the final evaluation. On several processes (hosts), start the same command on
each with ``--coordinator_address=host:port --num_processes=N --process_id=i`` (or
``--distributed_auto`` under SLURM / Open MPI): the seeds are sharded over every process's
devices and process 0 writes the run's files. Errors are one line on stderr (exit 2);
``JCOMRL_DEBUG=1`` or ``--verbosity=1`` shows the traceback.
"""

import os

from absl import flags
from ml_collections import config_flags

from experiments import cli

DEFAULT_CONFIG = os.path.join(cli.CONFIG_DIR, "focal.py") + ":point_robot"
FLAGS = flags.FLAGS


def define_flags() -> None:
  """The flags (defined when run as a program: ml_collections reads the ``--config.*``
  overrides from ``sys.argv`` as soon as the config flag is defined)."""
  config_flags.DEFINE_config_file(
      "config", DEFAULT_CONFIG,
      "training config file[:variant] (experiments/configs/<preset>.py:<variant>)")
  flags.DEFINE_string("workdir", None, "run directory", required=True)
  flags.DEFINE_string("eval_protocols", "iid",
                      f"comma list of {', '.join(cli.ALL_PROTOCOLS)} or 'all' to evaluate "
                      "after training ('' = none)")


def print_result(name: str, r: dict) -> None:
  score = r.get("score", {})
  if score:
    print(f"{name}: mean return {score['mean']:.3f}  normalised "
          f"{score.get('normalised', float('nan')):.1f}", flush=True)


def main(argv):
  del argv
  from jcomrl import run as run_api  # JAX: imported once the flags are checked

  protocols = cli.parse_protocols(FLAGS.eval_protocols)
  cfg = cli.to_plain(FLAGS.config)
  # Trains, then evaluates under the same run-directory lock.
  run_api.train(cfg, FLAGS.workdir, protocols=protocols,
                progress=lambda s: print(s, flush=True), on_result=print_result,
                provenance=cli.run_provenance())


def run():
  cli.run(main, "experiments.train", define=define_flags, config=("config", DEFAULT_CONFIG),
          distributed=True)


if __name__ == "__main__":
  run()
