"""Learner updates per second for every preset at the papers' scale, for 1, 4 and 16 seeds.

Scale (issue 6): a meta-batch of 16 tasks x 256 RL transitions each x a 200-transition context,
cheetah-vel shapes (obs 20, action 6, task 1), on a synthetic 20-task dataset held on device.
Every preset keeps its own networks (``jcomrl.algos.presets`` cheetah_vel settings) with the
meta-batch, RL batch and context size forced to that scale. One ``train_chunk`` call (compile)
is excluded; then ``--repeats`` timed calls of ``--chunk`` updates each, the median is reported.

Reference: the official UNICORN PyTorch code at exactly this scale does 1.9 updates/s on one of
these 2-core CPU machines (530 ms per update, 60% of it in the BRAC dual critic, which its code
trains 3x per step even with the plain SAC backbone). The ``unicorn_ss+dual3`` row reproduces
that workload (UNICORN-SS with the dual critic trained 3x per step and unused).

  python -m benchmarks.learner_throughput                         # all presets, 1/4/16 seeds
  python -m benchmarks.learner_throughput --presets=focal --seeds=1,64 --chunk=200  # e.g. GPU

Writes ``benchmarks/results/learner_throughput_<device>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.algos import presets
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.data.dataset import OfflineDataset
from jcomrl.types import Transition

REFERENCE_UPDATES_PER_S = 1.9  # UNICORN PyTorch, 2-core CPU, this scale
OBS, ACT, TASK = 20, 6, 1
ROWS = ["focal", "csro", "unicorn_ss", "unicorn_sup", "supervised", "corro", "oracle",
        "unicorn_ss+dual3"]


def synthetic_dataset(num_tasks=20, n=4000, seg=200, seed=0) -> OfflineDataset:
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
  t = Transition(obs=f(num_tasks, n, OBS), action=jnp.tanh(f(num_tasks, n, ACT)),
                 reward=f(num_tasks, n), next_obs=f(num_tasks, n, OBS),
                 terminal=jnp.zeros((num_tasks, n)), timeout=jnp.zeros((num_tasks, n)))
  ids = jnp.zeros((num_tasks, n), jnp.int32)
  return OfflineDataset(transitions=t, checkpoint_id=ids, episode_id=ids,
                        task_params=f(num_tasks, TASK), segment_length=seg)


def row_config(row: str, chunk: int) -> tuple[LearnerConfig, HParams]:
  name, _, extra = row.partition("+")
  p = presets.preset(name, "cheetah_vel")
  lrn = dict(p["learner"], obs_size=OBS, action_size=ACT, task_param_size=TASK,
             meta_batch_size=16, rl_batch_size=256, context_size=200, steps_per_chunk=chunk,
             pretrain_steps=0, num_task_labels=20)
  if extra == "dual3":
    # UNICORN's dual critic descends from the FOCAL port: output-norm gradient penalty.
    lrn.update(backbone="brac", dual_steps=3, brac_penalty="policy", brac_gp="output")
    p["hparams"]["brac_weight"] = 0.0
  return LearnerConfig(**lrn), HParams.create(**p["hparams"])


def measure(row: str, num_seeds: int, chunk: int, repeats: int, data) -> dict:
  cfg, hp = row_config(row, chunk)
  lrn = make_learner(cfg)
  hps = broadcast_hparams(hp, num_seeds)
  pool = jnp.arange(data.num_tasks, dtype=jnp.int32)
  state = lrn.init(seed_keys(0, num_seeds))
  flops = None
  try:  # XLA's count for ONE un-scanned single-seed update (it counts a loop body once)
    one = jax.tree.map(lambda x: x[0], state)
    cost = jax.jit(lrn.update).lower(one, data, hp, pool).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan")))
  except Exception:  # noqa: BLE001 - cost analysis is optional and backend dependent
    pass
  t0 = time.perf_counter()
  state, m = lrn.train_chunk(state, data, hps, pool)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    state, m = lrn.train_chunk(state, data, hps, pool)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  per_seed = chunk / statistics.median(times)
  return {"preset": row, "seeds": num_seeds, "chunk": chunk, "repeats": repeats,
          "first_call_s": compile_s, "median_chunk_s": statistics.median(times),
          "updates_per_s_per_seed": per_seed, "updates_per_s_aggregate": per_seed * num_seeds,
          "speedup_per_seed_vs_reference": per_seed / REFERENCE_UPDATES_PER_S,
          "speedup_aggregate_vs_reference": per_seed * num_seeds / REFERENCE_UPDATES_PER_S,
          "xla_flops_per_update": flops,
          "achieved_gflops": None if flops is None else flops * per_seed * num_seeds / 1e9,
          "backbone": cfg.backbone, "dual_steps": cfg.dual_steps if cfg.backbone == "brac" else 0,
          "rl_hidden": list(cfg.rl_hidden), "encoder_hidden": list(cfg.encoder_hidden)}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--presets", default=",".join(ROWS))
  ap.add_argument("--seeds", default="1,4,16")
  ap.add_argument("--chunk", type=int, default=4, help="updates per timed dispatch")
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--out", default=None)
  ap.add_argument("--merge", action="store_true",
                  help="keep rows of an existing output file that this run does not re-measure")
  args = ap.parse_args()
  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  data = synthetic_dataset()
  results = []
  print(f"device: {kind} ({device.platform}, {len(jax.devices())} device(s), "
        f"{os.cpu_count()} CPUs); reference {REFERENCE_UPDATES_PER_S} updates/s")
  print(f"{'preset':18s} {'seeds':>5s} {'upd/s/seed':>11s} {'aggregate':>10s} "
        f"{'x ref/seed':>10s} {'x ref agg':>9s} {'1st call s':>10s} {'GFLOP/upd':>9s} "
        f"{'GFLOP/s':>8s}")
  slug = kind.lower().replace(" ", "_")
  out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                 f"learner_throughput_{slug}.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  old = []
  if args.merge and os.path.exists(out):
    with open(out) as f:
      old = json.load(f).get("results", [])

  def save():  # after every row, so a run stopped by a time limit keeps what it measured
    done = {(r["preset"], r["seeds"]) for r in results}
    payload = {"benchmark": "learner_throughput", "device_kind": kind,
               "platform": device.platform, "num_devices": len(jax.devices()),
               "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
               "jax": jax.__version__, "python": platform.python_version(),
               "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "scale": {"meta_batch": 16, "rl_batch": 256, "context": 200, "obs": OBS,
                         "action": ACT},
               "reference_updates_per_s": REFERENCE_UPDATES_PER_S,
               "results": [r for r in old if (r["preset"], r["seeds"]) not in done] + results}
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
      json.dump(payload, f, indent=1)
    os.replace(tmp, out)

  for row in args.presets.split(","):
    for s in [int(x) for x in args.seeds.split(",")]:
      r = measure(row, s, args.chunk, args.repeats, data)
      results.append(r)
      save()
      print(f"{row:18s} {s:5d} {r['updates_per_s_per_seed']:11.2f} "
            f"{r['updates_per_s_aggregate']:10.2f} {r['speedup_per_seed_vs_reference']:10.1f} "
            f"{r['speedup_aggregate_vs_reference']:9.1f} {r['first_call_s']:10.1f} "
            f"{(r['xla_flops_per_update'] or float('nan')) / 1e9:9.2f} "
            f"{r['achieved_gflops'] or float('nan'):8.1f}", flush=True)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
