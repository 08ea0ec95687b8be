"""Learner updates per second for every preset at the papers' scale, for 1, 4 and 16 seeds.

Scale (the papers'): a meta-batch of 16 tasks x 256 RL transitions each x a 200-transition context,
cheetah-vel shapes (obs 20, action 6, task 1), on a synthetic 20-task dataset held on device.
Every preset keeps its own networks (``jcomrl.algos.presets`` cheetah_vel settings) with the
meta-batch, RL batch and context size forced to that scale. One ``train_chunk`` call (compile)
is excluded; then ``--repeats`` timed calls of ``--chunk`` updates each, the median is reported.

The ``unicorn_ss+dual3`` row reproduces the official UNICORN PyTorch code's workload at this scale
(UNICORN-SS with the BRAC dual critic trained 3x per step and unused, as its code does even with
the plain SAC backbone). The decision-transformer rows (``prompt_dt``, ``unicorn_ss_dt``) keep
Prompt-DT's batch of 16 segments of 20 steps per task instead of 256 transitions. An earlier report
quotes 247 ms per update for that code and 96-99 ms for jcomrl side by side on a 2-core machine; on
this project's 2-core CPU machines jcomrl's row measures 300-404 ms with nothing else running, which
the GEMM floor below says is within 1.6-1.9x of what the hardware allows. No stored reference speed
is compared here: a figure is valid only next to a measurement of the reference taken in the same
conditions, so the table reports ms per update, updates/s and the 1-minute load average before
and after each row (a row taken with a load average above ~0.5 on 2 cores is not a valid speed
figure).

**The GEMM floor.** Before the rows, the script times float32 matrix products of the learner's
own layer shape (``[meta_batch x rl_batch, 256] x [256, 256]``) and of a 1024^3 product in one
jitted loop and keeps the best rate, ``gemm_peak_gflops``. Each row then gets
``floor_ms_at_gemm_peak`` = XLA's FLOP count of one update / that rate: the time the update
would take if every FLOP ran as fast as the device's best dense matrix product, a lower bound no
implementation of the same workload can beat on that device, and ``fraction_of_gemm_peak``.

The ``macaw`` row is MACAW's own learner (``jcomrl.algos.macaw``, cheetah_vel preset: 3 x 100
WLinear value and policy networks, one inner step per task) at its official meta-batch of 5
tasks x 256 RL transitions, with a 200-transition context as its adaptation batch.

``--seed_mode=loop`` runs the seeds one after another (one single-seed program, ``--seeds`` calls
per chunk) instead of one seed-vmapped program, to compare the two on the device.

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

from jcomrl import atomic
from jcomrl.algos import presets
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.algos.macaw import MacawConfig, make_macaw
from jcomrl.algos.macaw_presets import macaw_preset
from jcomrl.data.dataset import OfflineDataset
from jcomrl.types import Transition

OBS, ACT, TASK = 20, 6, 1
META_BATCH, RL_BATCH, CONTEXT = 16, 256, 200  # the papers' scale
ROWS = ["focal", "csro", "unicorn_ss", "unicorn_sup", "supervised", "corro", "oracle",
        "unicorn_ss+dual3", "unicorn_ss+dual3w0", "prompt_dt", "unicorn_ss_dt", "macaw"]


def synthetic_dataset(num_tasks=20, n=4000, seg=200, seed=0) -> OfflineDataset:
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
  t = Transition(obs=f(num_tasks, n, OBS), action=jnp.tanh(f(num_tasks, n, ACT)),
                 reward=f(num_tasks, n), next_obs=f(num_tasks, n, OBS),
                 terminal=jnp.zeros((num_tasks, n)), timeout=jnp.zeros((num_tasks, n)))
  ids = jnp.zeros((num_tasks, n), jnp.int32)
  return OfflineDataset(transitions=t, checkpoint_id=ids, episode_id=ids,
                        task_params=f(num_tasks, TASK), segment_length=seg)


def row_config(row: str, chunk: int) -> tuple[LearnerConfig | MacawConfig, HParams]:
  if row == "macaw":
    p = macaw_preset("cheetah_vel")
    lrn = dict(p["learner"], obs_size=OBS, action_size=ACT, task_param_size=TASK,
               context_size=CONTEXT, rl_batch_size=RL_BATCH, steps_per_chunk=chunk)
    return MacawConfig(**lrn), HParams.create(**p["hparams"])
  name, _, extra = row.partition("+")
  p = presets.preset(name, "cheetah_vel")
  lrn = dict(p["learner"], obs_size=OBS, action_size=ACT, task_param_size=TASK,
             meta_batch_size=META_BATCH, rl_batch_size=RL_BATCH, context_size=CONTEXT,
             steps_per_chunk=chunk,
             pretrain_steps=0, num_task_labels=20)
  if name in presets.DT_PRESETS:  # the DT trains on 16 length-20 segments per task, not 256 rows
    lrn["rl_batch_size"] = p["learner"]["rl_batch_size"]
  if extra in ("dual3", "dual3w0"):
    # dual3: the dual critic is trained and statically unused (brac_penalty="none"); dual3w0: the
    # earlier form of the same workload, D in the actor loss at a traced weight of 0.
    penalty = "none" if extra == "dual3" else "policy"
    # UNICORN's dual critic descends from the FOCAL port: output-norm gradient penalty.
    # The preset's actor-critic settings carry over (SAC's are a subset of BRAC's), and the
    # dual critic takes the preset table's dual width, which equals its rl_hidden (the nested
    # preset of a SAC-backbone method has no BRAC subtree to hold it).
    own = lrn.pop(lrn["backbone"], {})
    lrn.update(backbone="brac", brac={**own, "dual_steps": 3, "penalty": penalty, "gp": "output",
                                      "dual_hidden": lrn["rl_hidden"]})
    p["hparams"]["brac"] = {**p["hparams"].get("brac", {}), "weight": 0.0}
  return LearnerConfig.create(**lrn), HParams.create(**p["hparams"])


def measure(row: str, num_seeds: int, chunk: int, repeats: int, data,
            seed_mode: str = "vmap", configure=row_config) -> dict:
  """One row: ``configure(row, chunk) -> (LearnerConfig, HParams)`` timed on ``data``."""
  load_before = os.getloadavg()[0]
  cfg, hp = configure(row, chunk)
  # The loop mode below calls 1-seed programs itself.
  lrn = (make_macaw(cfg) if isinstance(cfg, MacawConfig)
         else make_learner(cfg, seed_mode="vmap"))
  vmapped = 1 if seed_mode == "loop" else num_seeds  # seeds per program
  calls = num_seeds if seed_mode == "loop" else 1  # programs per chunk
  hps = broadcast_hparams(hp, vmapped)
  pool = jnp.arange(data.num_tasks, dtype=jnp.int32)
  states = [lrn.init(seed_keys(i, vmapped)) for i in range(calls)]
  state = states[0]
  flops = None
  try:  # XLA's count for ONE un-scanned single-seed update (it counts a loop body once)
    one = jax.tree.map(lambda x: x[0], state)
    cost = jax.jit(lrn.update).lower(one, data, hp, pool).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan")))
  except Exception:  # noqa: BLE001 - cost analysis is optional and backend dependent
    pass

  def one_chunk():
    ms = []
    for i in range(calls):
      states[i], m = lrn.train_chunk(states[i], data, hps, pool)
      ms.append(m)
    jax.block_until_ready(ms)

  t0 = time.perf_counter()
  one_chunk()
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    one_chunk()
    times.append(time.perf_counter() - t0)
  per_seed = chunk / statistics.median(times)
  return {"preset": row, "seeds": num_seeds, "seed_mode": seed_mode, "chunk": chunk,
          "repeats": repeats, "first_call_s": compile_s,
          "median_chunk_s": statistics.median(times), "chunk_times_s": times,
          "ms_per_update_per_seed": 1e3 / per_seed,
          "updates_per_s_per_seed": per_seed, "updates_per_s_aggregate": per_seed * num_seeds,
          "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0],
          "xla_flops_per_update": flops,
          "achieved_gflops": None if flops is None else flops * per_seed * num_seeds / 1e9,
          **_structure(cfg)}


def gemm_peak_gflops(repeats: int = 5, loops: int = 50) -> dict:
  """Best float32 matrix-product rate of the default device (GFLOP/s), per shape and overall.

  One jitted ``lax.scan`` of ``loops`` products whose right factor depends on the carry (so
  XLA cannot hoist the product out of the loop); the best of ``repeats`` timed calls.
  """
  shapes = {"learner_layer": (META_BATCH * RL_BATCH, 256, 256), "square_1024": (1024, 1024, 1024)}
  rates = {}
  for name, (m, k, n) in shapes.items():
    a = jnp.ones((m, k), jnp.float32)
    b = jnp.ones((k, n), jnp.float32)

    def run(a, b):
      def body(c, _):
        return c + 1e-9 * (a @ (b + c))[0, 0], None
      return jax.lax.scan(body, jnp.zeros((), jnp.float32), None, length=loops)[0]

    f = jax.jit(run)
    jax.block_until_ready(f(a, b))
    best = float("inf")
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(f(a, b))
      best = min(best, time.perf_counter() - t0)
    rates[name] = 2.0 * m * k * n * loops / best / 1e9
  return {"gemm_peak_gflops": max(rates.values()), "gemm_gflops_by_shape": rates}


def with_floor(r: dict, peak: dict) -> dict:
  """``r`` plus the GEMM floor columns (see the module docstring)."""
  flops, best = r.get("xla_flops_per_update"), peak["gemm_peak_gflops"]
  if not flops or flops != flops:  # unknown or NaN
    return {**r, "floor_ms_at_gemm_peak": None, "fraction_of_gemm_peak": None}
  floor_ms = flops / (best * 1e9) * 1e3
  return {**r, "floor_ms_at_gemm_peak": floor_ms,
          "fraction_of_gemm_peak": floor_ms / r["ms_per_update_per_seed"] * r["seeds"]}


def _structure(cfg) -> dict:
  if isinstance(cfg, MacawConfig):
    return {"backbone": "macaw", "dual_steps": 0, "rl_hidden": list(cfg.hidden),
            "encoder_hidden": [], "meta_batch": cfg.meta_batch_size, "wlinear": cfg.wlinear}
  return {"backbone": cfg.backbone, "dual_steps": cfg.settings("brac").dual_steps if cfg.backbone == "brac" else 0,
          "rl_hidden": list(cfg.rl_hidden), "encoder_hidden": list(cfg.encoder_hidden)}


def table_line(row: str, seeds: int, r: dict, flops: bool = True) -> str:
  """One printed row of a throughput table (``flops``: with XLA's GFLOP columns)."""
  floor = r.get("floor_ms_at_gemm_peak")
  cols = (f"{(r['xla_flops_per_update'] or float('nan')) / 1e9:9.2f} "
          f"{r['achieved_gflops'] or float('nan'):8.1f} "
          f"{floor if floor is not None else float('nan'):9.1f} " if flops else "")
  return (f"{row:18s} {seeds:5d} {r['ms_per_update_per_seed']:8.1f} "
          f"{r['updates_per_s_per_seed']:11.2f} {r['updates_per_s_aggregate']:10.2f} "
          f"{r['first_call_s']:10.1f} {cols}"
          f"{r['load_avg_1m_before']:4.2f}/{r['load_avg_1m_after']:4.2f}")


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--presets", default=",".join(ROWS))
  ap.add_argument("--seeds", default="1,4,16")
  ap.add_argument("--chunk", type=int, default=25,
                  help="updates per timed dispatch (long enough that dispatch cost is small)")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--seed_mode", choices=("vmap", "loop"), default="vmap",
                  help="seeds vmapped in one program, or run one after another")
  ap.add_argument("--out", default=None)
  ap.add_argument("--no_gemm_floor", action="store_true",
                  help="skip the GEMM-peak measurement (and the floor columns)")
  ap.add_argument("--merge", action="store_true",
                  help="keep rows of an existing output file that this run does not re-measure")
  args = ap.parse_args()
  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  data = synthetic_dataset()
  results = []
  print(f"device: {kind} ({device.platform}, {len(jax.devices())} device(s), "
        f"{os.cpu_count()} CPUs); load average {os.getloadavg()}; seeds {args.seed_mode}")
  peak = None if args.no_gemm_floor else gemm_peak_gflops()
  if peak is not None:
    by_shape = ", ".join(f"{k} {v:.1f}" for k, v in peak["gemm_gflops_by_shape"].items())
    print(f"GEMM peak {peak['gemm_peak_gflops']:.1f} GFLOP/s ({by_shape}); floor ms = "
          "XLA FLOPs per update / GEMM peak")
  print(f"{'preset':18s} {'seeds':>5s} {'ms/upd':>8s} {'upd/s/seed':>11s} {'aggregate':>10s} "
        f"{'1st call s':>10s} {'GFLOP/upd':>9s} {'GFLOP/s':>8s} {'floor ms':>9s} {'load':>9s}")
  slug = kind.lower().replace(" ", "_")
  out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                 f"learner_throughput_{slug}.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  old = []
  if args.merge and os.path.exists(out):
    with open(out) as f:
      old = json.load(f).get("results", [])

  def save():  # after every row, so a run stopped by a time limit keeps what it measured
    key = lambda r: (r["preset"], r["seeds"], r.get("seed_mode", "vmap"))
    done = {key(r) for r in results}
    payload = {"benchmark": "learner_throughput", "device_kind": kind,
               "platform": device.platform, "num_devices": len(jax.devices()),
               "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
               "jax": jax.__version__, "python": platform.python_version(),
               "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "scale": {"meta_batch": META_BATCH, "rl_batch": RL_BATCH, "context": CONTEXT,
                         "obs": OBS, "action": ACT},
               **(peak or {}),
               "results": [r for r in old if key(r) not in done] + results}
    atomic.write_json(out, payload)

  for row in args.presets.split(","):
    for s in [int(x) for x in args.seeds.split(",")]:
      r = measure(row, s, args.chunk, args.repeats, data, args.seed_mode)
      if peak is not None:
        r = with_floor(r, peak)
      results.append(r)
      save()
      print(table_line(row, s, r), flush=True)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
