"""Evaluate a run from its checkpoint: ``python -m experiments.evaluate --workdir=runs/focal
[--protocols=iid,ood,online,task_ood,diagnostics | all] [--step=N]``.

Each protocol writes ``<workdir>/eval/<protocol>_step<N>.json`` (per-task, per-episode returns
and the normalised score); ``diagnostics`` also writes ``eval/codes_step<N>.png``.
"""

import sys

from absl import app, flags, logging

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: latest)")
_PROTOCOLS = flags.DEFINE_string("protocols", "iid",
                                 f"comma list of {', '.join(common.ALL_PROTOCOLS)} or 'all'")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
  try:
    protocols = common.parse_protocols(_PROTOCOLS.value)
  except ValueError as e:
    sys.exit(f"experiments.evaluate: {e}")
  res = common.evaluate_protocols(_WORKDIR.value, protocols, _STEP.value)
  for name, r in res.items():
    if name == "diagnostics":
      print(f"diagnostics: MI(z; task) >= {r['mi_lower_bound']:.3f} nats (max "
            f"{r['mi_max']:.3f}), probe R^2 {r['probe_r2']:.3f}, plots {r['plots']}")
      continue
    for variant, v in r.items():
      if isinstance(v, dict) and "returns" in v:
        print(f"{name}/{variant}: mean return {v['mean']:.3f}  normalised "
              f"{v.get('normalised', float('nan')):.1f}")


if __name__ == "__main__":
  app.run(main)
