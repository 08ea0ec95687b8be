"""Generate an offline dataset: ``python -m experiments.collect
--config=experiments/configs/data.py:point_robot [--config.out=data/pr --config.quality=expert
--config.behaviour.algo=sac]``.

Progress lines go to stdout. A killed run resumes from ``<out>.partial/`` when started again with
the same config (behaviour snapshots are reused, finished collection chunks are skipped).
"""

import sys
import time

from absl import app, logging
from ml_collections import config_flags

from jcomrl.data import collect, pipeline
from jcomrl.data.dataset import DatasetError

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/data.py:point_robot",
                                          "data config file[:variant]")


def behaviour_kwargs(c) -> dict:
  """``{"algo", "num_snapshots", **behaviour.<algo>}`` of a data config (``ConfigError`` if bad)."""
  algo = c.behaviour.algo
  if algo not in ("ppo", "sac") or algo not in c.behaviour:
    raise pipeline.ConfigError(f"unknown behaviour algo {algo!r} (config key behaviour.algo); "
                               "expected 'ppo' or 'sac' with settings in behaviour.<algo>")
  return {"algo": algo, "num_snapshots": c.behaviour.num_snapshots,
          **c.behaviour[algo].to_dict()}


def default_out(c) -> str:
  return c.out or f"data/{c.get('variant', c.env)}_{c.quality}"


def generate(c, progress=print):
  """Builds (or resumes) the dataset of config ``c``; returns ``(dataset, meta)``."""
  t0 = time.time()
  out = default_out(c)

  def show(step, m):
    r = m.get("eval/episode_reward")
    tail = f"eval return {float(r):.2f}" if r is not None else "(no brax eval)"
    progress(f"behaviour step {step:,} ({time.time() - t0:.0f}s): {tail}")

  data, meta = pipeline.generate_and_save(
      out, c.env, dict(c.env_overrides), overwrite=c.overwrite, resume=c.resume,
      quality=c.quality, seed=c.seed, behaviour_kwargs=behaviour_kwargs(c),
      episodes_per_snapshot=c.episodes_per_snapshot, transitions_per_task=c.transitions_per_task,
      chunk_episodes=c.chunk_episodes, return_episodes=c.return_episodes,
      behaviour_tasks=c.get("behaviour_tasks", "all"), physics=c.get("physics", "auto"),
      progress=show,
      message=progress)
  summary = {k: round(v, 2) for k, v in collect.dataset_summary(data).items()}
  progress(f"wrote {out}: {data.num_tasks} tasks x {data.num_transitions} transitions in "
           f"{time.time() - t0:.0f}s; mean segment return per snapshot {summary}; "
           f"normalisation {meta['normalisation']}")
  return data, meta


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
  try:
    generate(_CONFIG.value)
  except (pipeline.ConfigError, DatasetError) as e:
    sys.exit(f"experiments.collect: {e}")


if __name__ == "__main__":
  app.run(main)
