"""Generate an offline dataset: ``python -m experiments.collect
--config=experiments/configs/data.py:point_robot [--config.out=data/pr --config.quality=expert
--config.behaviour.algo=sac]``.

Progress lines go to stdout. A killed run resumes from ``<out>.partial/`` when started again with
the same config (behaviour snapshots are reused, an unfinished ``sac_per_task`` / ``sac_shared``
behaviour training continues from its last checkpoint, finished collection chunks are skipped).

A single-task family config (``experiments/configs/offline_data.py``, it has ``qualities``)
writes its qualities from one behaviour run (``jcomrl.datagen.offline``)::

    python -m experiments.collect --config=experiments/configs/offline_data.py:hopper@cpu
"""

import os
import re
import time

import numpy as np

from ml_collections import config_flags

from experiments import cli
from jcomrl import logging as jlogging
from jcomrl.datagen.recipes import behaviour_kwargs, default_out, set_cpu_devices  # noqa: F401

DEFAULT_CONFIG = os.path.join(cli.CONFIG_DIR, "data.py") + ":point_robot"


def define_flags() -> None:
  """The flags (defined when run as a program: ml_collections reads the ``--config.*``
  overrides from ``sys.argv`` as soon as it is defined)."""
  from absl import flags

  config_flags.DEFINE_config_file(
      "config", DEFAULT_CONFIG, "data config file[:variant] (experiments/configs/data.py:<env>)")
  flags.DEFINE_integer(
      "cpu_devices", None, "XLA CPU devices to split the host into; per-task SAC agents "
      "(behaviour.algo=sac_per_task) train in parallel over them. Default: the cores this "
      "process may use when behaviour.algo=sac_per_task, else 1", lower_bound=1)


def resumed_step(message: str) -> int | None:
  """The env step of ``pipeline.generate``'s "resuming <algo> behaviour training from env step N"
  message, or None for any other message."""
  found = re.match(r"resuming \S+ behaviour training from env step ([\d,]+)", message)
  return int(found.group(1).replace(",", "")) if found else None


def generate_family(c, progress=print):
  """Builds (or resumes) the single-task family of an ``offline_data.py`` config ``c``;
  returns ``{quality: (dataset, meta)}``."""
  from jcomrl.datagen import offline

  t0 = time.time()
  kw = behaviour_kwargs(c)
  out = offline.generate_family(
      c.out, c.name, c.env, c.env_overrides.to_dict(), qualities=c.qualities, seed=c.seed,
      behaviour_kwargs=kw, transitions=c.transitions, chunk_episodes=c.chunk_episodes,
      return_episodes=c.return_episodes, medium_fraction=c.medium_fraction,
      physics=c.get("physics", "auto"), anchor_policy=c.get("anchor_policy", "deterministic"),
      overwrite=c.overwrite, resume=c.resume, message=progress)
  for q, (data, meta) in out.items():
    progress(f"{offline.dataset_dir(c.out, c.name, q)}: {data.num_transitions:,} transitions, "
             f"normalisation {meta['normalisation']}")
  progress(f"done in {jlogging.format_seconds(time.time() - t0)}")
  return out


def generate(c, progress=print):
  """Builds (or resumes) the dataset of config ``c``; returns ``(dataset, meta)`` (a family
  config: ``{quality: (dataset, meta)}``, see ``generate_family``)."""
  from jcomrl.data.dataset import dataset_summary
  from jcomrl.datagen import recipes

  if "qualities" in c:
    return generate_family(c, progress)
  t0 = time.time()
  out = default_out(c)
  recipes.check_env(c)
  kw = behaviour_kwargs(c)
  total = kw.get("num_timesteps")
  # The ETA is at this process's rate: the steps of a resumed run's earlier process are not timed.
  shown = jlogging.Progress(total, "behaviour step", progress=progress, show_elapsed=True)

  def say(msg):
    step = resumed_step(msg)
    if step is not None:
      shown.update(step, timed=False)
    progress(msg)

  def show(step, m):
    r = m.get("eval/episode_reward")
    train = m.get("train/return")  # jcomrl's own SAC trainers: per-task training returns
    if r is not None:
      tail = f"eval return {float(r):.2f}"
    elif train is not None:
      tail = f"mean training return {float(np.mean(train)):.2f}"
    else:
      tail = "(no brax eval)"
    shown.update(step)
    shown.report(tail)

  data, meta = recipes.generate(c, progress=show, message=say)
  summary = {k: round(v, 2) for k, v in dataset_summary(data).items()}
  progress(f"wrote {out}: {data.num_tasks} tasks x {data.num_transitions} transitions in "
           f"{time.time() - t0:.0f}s; mean segment return per snapshot {summary}; "
           f"normalisation {meta['normalisation']}")
  return data, meta


def main(argv):
  del argv
  from absl import flags

  set_cpu_devices(flags.FLAGS.config, flags.FLAGS.cpu_devices)
  generate(flags.FLAGS.config, progress=lambda s: print(s, flush=True))


def run():
  cli.run(main, "experiments.collect", define=define_flags, config=("config", DEFAULT_CONFIG))


if __name__ == "__main__":
  run()
