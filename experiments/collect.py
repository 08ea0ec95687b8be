"""Generate an offline dataset: ``python -m experiments.collect
--config=experiments/configs/data.py:point_robot [--config.out=data/pr --config.quality=expert]``."""

import time

from absl import app, logging
from ml_collections import config_flags

from jcomrl.data import collect, pipeline

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/data.py:point_robot",
                                          "data config file[:variant]")


def generate(c, progress=print):
  t0 = time.time()
  b = dict(c.behaviour)
  b["hidden_sizes"] = tuple(b["hidden_sizes"])
  show = (lambda step, m: progress(f"behaviour step {step}: eval return "
                                   f"{float(m.get('eval/episode_reward', float('nan'))):.2f}"))
  data, meta = pipeline.generate_and_save(
      c.out, c.env, dict(c.env_overrides), overwrite=c.overwrite, quality=c.quality,
      seed=c.seed, episodes_per_snapshot=c.episodes_per_snapshot, behaviour_kwargs=b,
      progress=show)
  progress(f"wrote {c.out}: {data.num_tasks} tasks x {data.num_transitions} transitions in "
           f"{time.time() - t0:.0f}s; mean return per snapshot {collect.dataset_summary(data)}")
  return data, meta


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
  generate(_CONFIG.value)


if __name__ == "__main__":
  app.run(main)
