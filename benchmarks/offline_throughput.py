"""Single-task offline-RL updates per second (BC, TD3+BC, CQL, IQL, MISA with and without HMC).

D4RL scale: hopper shapes (obs 11, action 3), batch 256, 2 x 256 networks, each backbone at its
``jcomrl.algos.offline_presets`` settings, on a synthetic one-task dataset of 1e5 transitions held
on device; 1 seed and several vmapped seeds (``--seeds``), per seed and aggregate. Rows:
``bc``, ``td3bc``, ``cql``, ``iql``, ``misa`` (HMC, K = 50: the official setting),
``misa_importance`` (K = 50 importance-weighted policy samples instead of HMC), ``misa_nograd``
(no partition-gradient term). Timing as ``benchmarks.learner_throughput`` (first call excluded,
median of ``--repeats`` chunks, 1-minute load average before and after each row).

  python -m benchmarks.offline_throughput                       # all rows, 1 and 4 seeds
  python -m benchmarks.offline_throughput --rows=misa --seeds=1,16 --chunk=100   # e.g. GPU

``--profile=cpu`` times the ``@cpu`` profile's networks instead (the misa rows keep the partition
gradient they name). Writes ``benchmarks/results/offline_throughput_<profile>_<device>.json``
and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.learner_throughput import measure, table_line
from jcomrl import atomic
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.offline_presets import offline_preset
from jcomrl.data.dataset import OfflineDataset
from jcomrl.types import Transition

OBS, ACT = 11, 3
ROWS = ["bc", "td3bc", "cql", "iql", "misa", "misa_importance", "misa_nograd"]
_VARIANTS = {"misa": ("misa", {"misa_partition_grad": "hmc"}),
             "misa_importance": ("misa", {"misa_partition_grad": "importance"}),
             "misa_nograd": ("misa", {"misa_partition_grad": "none"})}


def synthetic_single_task(n=100_000, seed=0) -> OfflineDataset:
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
  t = Transition(obs=f(1, n, OBS), action=jnp.tanh(f(1, n, ACT)), reward=f(1, n),
                 next_obs=f(1, n, OBS), terminal=jnp.zeros((1, n)), timeout=jnp.zeros((1, n)))
  ids = jnp.zeros((1, n), jnp.int32)
  return OfflineDataset(transitions=t, checkpoint_id=ids, episode_id=ids,
                        task_params=jnp.zeros((1, 0)), segment_length=1000)


PROFILE = {"name": "paper"}  # set from --profile


def row_config(row: str, chunk: int) -> tuple[LearnerConfig, HParams]:
  name, extra = _VARIANTS.get(row, (row, {}))
  p = offline_preset(name, profile=PROFILE["name"])
  lrn = dict(p["learner"], **extra, obs_size=OBS, action_size=ACT, task_param_size=0,
             steps_per_chunk=chunk)
  return LearnerConfig.create(**lrn), HParams.create(**p["hparams"])


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rows", default=",".join(ROWS))
  ap.add_argument("--seeds", default="1,4")
  ap.add_argument("--chunk", type=int, default=20)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--profile", choices=("paper", "cpu"), default="paper",
                  help="paper: the official settings (2 x 256, MISA K = 50 with HMC); cpu: the "
                  "offline.py @cpu profile (2 x 64; misa rows keep their partition gradient)")
  ap.add_argument("--out", default=None)
  args = ap.parse_args()
  PROFILE["name"] = args.profile
  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  data = synthetic_single_task()
  out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                 f"offline_throughput_{args.profile}_"
                                 f"{kind.lower().replace(' ', '_')}.json")
  print(f"device: {kind} ({device.platform}, {os.cpu_count()} CPUs); load average "
        f"{os.getloadavg()}")
  print(f"{'row':18s} {'seeds':>5s} {'ms/upd':>8s} {'upd/s/seed':>11s} {'aggregate':>10s} "
        f"{'1st call s':>10s} {'load':>9s}")
  results = []
  for row in args.rows.split(","):
    for s in [int(x) for x in args.seeds.split(",")]:
      r = measure(row, s, args.chunk, args.repeats, data, configure=row_config)
      results.append(r)
      atomic.write_json(out, {
          "benchmark": "offline_throughput", "device_kind": kind, "platform": device.platform,
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "python": platform.python_version(),
          "date": datetime.datetime.now().isoformat(timespec="seconds"),
          "profile": args.profile, "scale": {"rl_batch": 256, "obs": OBS, "action": ACT},
          "results": results})
      print(table_line(row, s, r, flops=False), flush=True)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
