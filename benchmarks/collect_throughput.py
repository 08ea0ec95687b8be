"""Dataset-generation speed per env: collection transitions/s and behaviour-training env-steps/s.

For every env, and for the MuJoCo envs under every physics backend of ``--physics`` (default
``c`` and ``mjx`` side by side in one run; ``c_over_mjx`` in each ``c`` row is the ratio of the
two collection rates and training rates):
  * **collection**: the jitted ``[tasks x snapshots x episodes]`` rollout of
    ``jcomrl.datagen.collect`` (stochastic task-conditioned brax policy, explicit resets) over all
    40 benchmark tasks; compile (lower + compile) is timed apart from the run; the run time is the
    median of ``--repeats`` calls after a warm-up call.
  * **behaviour training**: brax PPO (``jcomrl.datagen.behaviour.train_ppo``) for a few short
    epochs; the figure is brax's own ``training/sps`` of the *last* epoch (the first one includes
    compilation); brax's evaluation rollouts are off. ``--sac_envs`` adds brax SAC for some envs.
  * **full-config estimate**: the time the env's full data config (``jcomrl.datagen.recipes``)
    would take at these rates (behaviour steps / training rate + transitions / collection rate),
    compilation excluded. On a CPU this is an extrapolation, not a measurement.

The CPU defaults are deliberately small (16 training envs, 1 episode per task and snapshot) so
the whole run stays around 10 minutes on 2 cores; on a GPU pass larger sizes, e.g.
``--train_envs=2048 --train_batch=512 --episodes=25``.

  python -m benchmarks.collect_throughput                       # all envs, CPU sizes, c + mjx
  python -m benchmarks.collect_throughput --physics=mjx         # one backend (e.g. a GPU)
  python -m benchmarks.collect_throughput --envs=point_robot,cheetah_vel
  python -m benchmarks.collect_throughput --returns             # also: random/expert returns

The CPU anchors in ``behaviour_returns_cpu.json`` came from (about 65 min on 2 cores)::

  python -m benchmarks.collect_throughput --skip_throughput --returns \
      --returns_envs=hopper_param,walker_param,cheetah_vel,cheetah_dir,point_robot,sparse_point_robot \
      --returns_steps_per_env=hopper_param=1200000,walker_param=1000000
  python -m benchmarks.collect_throughput --skip_throughput --returns --returns_envs=ant_dir \
      --returns_algo=sac --returns_steps=400000

and the hopper row was re-run at 4x that budget on the batched C backend (6.5 min)::

  python -m benchmarks.collect_throughput --skip_throughput --returns \
      --returns_envs=hopper_param --returns_steps_per_env=hopper_param=4800000

It moved the expert from 107.3 to 117.5, but the expert still loses to the untrained snapshot in
11 of 40 tasks (9 at 1.2M; tasks 5, 8, 12, 13, 25, 32, 35, 38 in both): those tasks are not
budget-limited for this PPO setting.

Writes ``benchmarks/results/collect_throughput_<device>.json``; with ``--returns`` it also trains
each env's behaviour policy (``--returns_algo``) for ``--returns_steps`` env steps (point robots:
their full data config) and writes the random- and expert-snapshot mean returns to
``benchmarks/results/behaviour_returns_<device>.json`` (the normalisation anchors later issues
use until GPU runs of the full configs replace them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import time

import jax
import numpy as np

from jcomrl import atomic, envs, names
from jcomrl.datagen import behaviour, collect, pipeline, recipes
from jcomrl.envs.c_physics import default_threads
from jcomrl.rollout import make_rollout_fn

ENV_NAMES = list(names.ENVS)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _device() -> tuple[str, str]:
  d = jax.devices()[0]
  kind = d.device_kind
  return kind, re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_")


HIDDEN = (64, 64)


def _ppo_kwargs(args) -> dict:
  """The short-run brax PPO settings (shared by the throughput and the returns runs, so the
  second finds the first's programs in the persistent compilation cache)."""
  return {"num_envs": args.train_envs, "batch_size": args.train_batch,
          "num_minibatches": args.minibatches, "unroll_length": args.unroll,
          "num_updates_per_batch": 2, "learning_rate": 3e-4, "entropy_cost": 1e-3,
          "discounting": 0.97, "normalize_observations": True, "run_evals": False,
          "hidden_sizes": HIDDEN}


def _ppo_epoch_steps(args) -> int:
  return args.train_batch * args.unroll * args.minibatches * args.train_steps_per_epoch


def bench_collection(env, episodes: int, snapshots: int, repeats: int) -> dict:
  """Transitions/s of the jitted collection rollout with untrained PPO snapshots."""
  make_policy, template = behaviour.policy_template(env, "ppo", HIDDEN, True)
  params = jax.tree.map(lambda x: np.stack([np.asarray(x)] * snapshots), template)
  tasks = env.all_benchmark_tasks()
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  fn = make_rollout_fn(env, make_policy)
  keys = collect.segment_keys(jax.random.key(0), num_tasks, snapshots, episodes)
  t0 = time.perf_counter()
  compiled = fn.lower(params, tasks, keys).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(params, tasks, keys))
  times = []
  for i in range(repeats):
    k = collect.segment_keys(jax.random.key(i + 1), num_tasks, snapshots, episodes)
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, tasks, k).reward)
    times.append(time.perf_counter() - t0)
  n = num_tasks * snapshots * episodes * env.episode_length
  run_s = statistics.median(times)
  return {"tasks": num_tasks, "snapshots": snapshots, "episodes": episodes,
          "transitions": n, "compile_s": round(compile_s, 2), "run_s": round(run_s, 4),
          "transitions_per_s": round(n / run_s, 1)}


def bench_training(env, algo: str, args) -> dict:
  """brax's env-steps/s of the last of a few short training epochs."""
  sps = []
  t0 = time.perf_counter()
  if algo == "ppo":
    timesteps = _ppo_epoch_steps(args) * args.epochs
    kw = _ppo_kwargs(args)
  else:
    timesteps = args.train_envs * args.sac_steps_per_epoch * args.epochs
    kw = {"num_envs": args.train_envs, "batch_size": 256, "grad_updates_per_step": 8,
          "num_eval_envs": 4, "hidden_sizes": (64, 64)}
  behaviour.train_behaviour(
      algo, env, env.all_benchmark_tasks(), num_timesteps=timesteps, num_snapshots=args.epochs + 1,
      seed=0, progress_fn=lambda step, m: sps.append(float(m.get("training/sps", np.nan))),
      **kw)
  total = time.perf_counter() - t0
  measured = [s for s in sps if not math.isnan(s)]
  return {"algo": algo, "num_envs": args.train_envs, "num_timesteps": timesteps,
          "epochs": args.epochs, "total_s_incl_compile": round(total, 1),
          "env_steps_per_s": round(measured[-1], 1) if measured else None,
          "env_steps_per_s_per_epoch": [round(s, 1) for s in measured]}


def full_config_estimate(name: str, collect_rate: float, train_rate: float | None) -> dict:
  c = recipes.get_config(name)  # sizes only: the backend does not change them
  env = envs.make(c.env)
  algo = c.behaviour.algo
  steps = int(c.behaviour[algo].num_timesteps)
  eps = pipeline.episodes_for(env, c.quality, c.behaviour.num_snapshots,
                              episodes_per_snapshot=c.episodes_per_snapshot,
                              transitions_per_task=c.transitions_per_task)
  used = len(collect.snapshot_ids(c.quality, c.behaviour.num_snapshots))
  num_tasks = int(jax.tree.leaves(env.all_benchmark_tasks())[0].shape[0])
  transitions = num_tasks * used * eps * env.episode_length
  train_s = steps / train_rate if train_rate else None
  collect_s = transitions / collect_rate
  return {"behaviour_algo": algo, "behaviour_steps": steps, "dataset_transitions": transitions,
          "train_s": None if train_s is None else round(train_s, 1),
          "collect_s": round(collect_s, 1),
          "total_s": None if train_s is None else round(train_s + collect_s, 1)}


# The CPU budget of the MuJoCo ``--returns`` runs: small-batch brax PPO (32 envs, 4 minibatches
# of 32 x 20 steps, 4 passes), 400k env steps, about 8 minutes per env on 2 cores; enough for the
# last snapshot to beat the untrained one in every task, not for a converged expert.
RETURNS_PPO = {"num_envs": 32, "batch_size": 32, "num_minibatches": 4, "unroll_length": 20,
               "num_updates_per_batch": 4, "learning_rate": 3e-4, "entropy_cost": 1e-3,
               "discounting": 0.97, "normalize_observations": True, "run_evals": False,
               "hidden_sizes": HIDDEN}
# The SAC alternative (``--returns_algo=sac``): update-to-data ratio 1 (16 envs x 16 gradient
# steps per training step), more sample-efficient than PPO per env step, slower per step on a CPU.
RETURNS_SAC = {"num_envs": 16, "batch_size": 256, "grad_updates_per_step": 16,
               "learning_rate": 3e-4, "discounting": 0.99, "normalize_observations": True,
               "min_replay_size": 4096, "max_replay_size": 1_000_000, "num_eval_envs": 16,
               "hidden_sizes": (128, 128)}
RETURNS_SNAPSHOTS = 4


def _returns_steps(name: str, args) -> int:
  """``--returns_steps``, or this env's entry of ``--returns_steps_per_env``."""
  for item in filter(None, args.returns_steps_per_env.split(",")):
    env_name, _, steps = item.partition("=")
    if env_name not in ENV_NAMES or not steps.isdigit():
      raise ValueError(f"--returns_steps_per_env: expected <env>=<steps> with env one of "
                       f"{ENV_NAMES}, got {item!r}")
    if env_name == name:
      return int(steps)
  return args.returns_steps


def behaviour_returns(name: str, args) -> dict:
  """Trains the env's behaviour policy (point robots: their full data config; MuJoCo:
  ``RETURNS_PPO`` or ``RETURNS_SAC`` for ``--returns_steps``) and rolls the first and last
  snapshot in all tasks: mean stochastic episode return (rewards up to the first done)."""
  env = envs.make(name)
  episodes = args.returns_episodes
  t0 = time.perf_counter()
  algo = "ppo"
  if name in ("point_robot", "sparse_point_robot"):
    c = recipes.get_config(name)
    kw = dict(c.behaviour.ppo.to_dict(), num_snapshots=c.behaviour.num_snapshots)
    budget = f"full '{name}' data config (brax PPO, {kw['num_timesteps']:,} env steps)"
  elif args.returns_algo == "sac":
    algo, steps = "sac", _returns_steps(name, args)
    kw = dict(RETURNS_SAC, num_timesteps=steps, num_snapshots=RETURNS_SNAPSHOTS)
    budget = (f"CPU budget: brax SAC, {steps:,} env steps, {kw['num_envs']} envs x "
              f"{kw['grad_updates_per_step']} updates of batch {kw['batch_size']} per step, "
              f"lr {kw['learning_rate']}, discount {kw['discounting']}, "
              f"hidden {list(kw['hidden_sizes'])}")
  else:
    steps = _returns_steps(name, args)
    kw = dict(RETURNS_PPO, num_timesteps=steps, num_snapshots=RETURNS_SNAPSHOTS)
    budget = (f"CPU budget: brax PPO, {steps:,} env steps, "
              f"{kw['num_envs']} envs, {kw['num_minibatches']} minibatches of "
              f"{kw['batch_size']} x unroll {kw['unroll_length']}, "
              f"{kw['num_updates_per_batch']} passes, lr {kw['learning_rate']}, "
              f"hidden {list(kw['hidden_sizes'])}")
  kw["hidden_sizes"] = tuple(kw["hidden_sizes"])
  pol = behaviour.train_behaviour(algo, env, env.all_benchmark_tasks(), seed=0, **kw)
  train_s = time.perf_counter() - t0
  ends = pol.select([0, pol.num_snapshots - 1])
  ret = collect.snapshot_returns(env, ends, env.all_benchmark_tasks(), jax.random.key(2),
                                 episodes)  # [2, T]
  return {"env": name, "budget": budget, "behaviour_steps": int(pol.steps[-1]),
          "random": round(float(ret[0].mean()), 3), "expert": round(float(ret[1].mean()), 3),
          "random_per_task_std": round(float(ret[0].std()), 3),
          "expert_per_task_std": round(float(ret[1].std()), 3),
          "tasks_expert_better": int((ret[1] > ret[0]).sum()), "num_tasks": int(ret.shape[1]),
          "worst_task_margin": round(float((ret[1] - ret[0]).min()), 3),
          "per_task": {"random": [round(float(x), 2) for x in ret[0]],
                       "expert": [round(float(x), 2) for x in ret[1]]},
          "episodes_per_task": episodes, "wall_s": round(time.perf_counter() - t0, 1),
          "train_s": round(train_s, 1)}


def _update_collection(args, kind: str, tag: str, load0) -> None:
  """Re-measures only collection for ``--envs`` and updates those rows of the existing json."""
  path = os.path.join(RESULTS, f"collect_throughput_{tag}.json")
  with open(path) as f:
    doc = json.load(f)
  rows = {(r["env"], r.get("physics")): r for r in doc["results"]}
  for name, physics in ((n, p) for n in args.envs.split(",") for p in args.physics.split(",")):
    env = envs.make(name, physics=physics)
    backend = getattr(env, "physics", None)
    if (name, backend) in rows and rows[(name, backend)].get("_updated"):
      continue  # point robots: no physics backend, measured once
    col = bench_collection(env, args.episodes, args.snapshots, args.repeats)
    row = rows.setdefault((name, backend),
                          {"env": name, "physics": backend, "behaviour_training": []})
    row["collection"], row["_updated"] = col, True
    train = next((t["env_steps_per_s"] for t in row["behaviour_training"]
                  if t["algo"] == "ppo"), None)
    row["full_config_estimate"] = full_config_estimate(name, col["transitions_per_s"], train)
    print(f"{name:<19} {backend or '-':>4} collection {col['transitions_per_s']:>10,.0f} "
          f"transitions/s (compile {col['compile_s']:.1f}s)", flush=True)
  for row in rows.values():
    row.pop("_updated", None)
  doc["results"] = list(rows.values())
  doc["meta"]["collection_update"] = {**_meta(kind, args.collection_note, load0),
                                      "envs": args.envs.split(",")}
  _write(path, doc)
  print(f"updated {path}")


def _meta(kind: str, note: str, load0) -> dict:
  import brax

  return {"device_kind": kind, "device_platform": jax.devices()[0].platform,
          "device_count": jax.device_count(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "brax": brax.__version__, "python": platform.python_version(),
          "c_threads": default_threads(),
          "load_average_1_5_15min_at_start": [round(x, 2) for x in load0],
          "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()],
          "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
          "note": note}


def _write(path: str, obj: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_json(path, obj)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--envs", default=",".join(ENV_NAMES))
  p.add_argument("--physics", default="c,mjx",
                 help="MuJoCo physics backends to compare, comma-separated (c, mjx, auto)")
  p.add_argument("--episodes", type=int, default=1, help="collection episodes per task/snapshot")
  p.add_argument("--snapshots", type=int, default=2, help="collection snapshots")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--train_envs", type=int, default=16)
  p.add_argument("--train_batch", type=int, default=16)
  p.add_argument("--minibatches", type=int, default=2)
  p.add_argument("--unroll", type=int, default=10)
  p.add_argument("--train_steps_per_epoch", type=int, default=4)
  p.add_argument("--sac_steps_per_epoch", type=int, default=64)
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--sac_envs", default="point_robot", help="envs also timed with brax SAC")
  p.add_argument("--skip_throughput", action="store_true")
  p.add_argument("--collection_only", action="store_true",
                 help="re-measure collection for --envs, updating the existing json's rows")
  p.add_argument("--collection_note", default="collection rows re-measured")
  p.add_argument("--returns", action="store_true", help="also record random/expert returns")
  p.add_argument("--returns_envs", default=",".join(ENV_NAMES))
  p.add_argument("--returns_steps", type=int, default=400_000,
                 help="behaviour env steps per MuJoCo env for --returns")
  p.add_argument("--returns_steps_per_env", default="",
                 help="per-env overrides of --returns_steps: ant_dir=1600000,hopper_param=...")
  p.add_argument("--returns_algo", choices=("ppo", "sac"), default="ppo",
                 help="behaviour trainer of the MuJoCo --returns runs")
  p.add_argument("--returns_episodes", type=int, default=2,
                 help="episodes per task and snapshot")
  args = p.parse_args()
  kind, tag = _device()
  load0 = os.getloadavg()

  if args.collection_only:
    _update_collection(args, kind, tag, load0)
  elif not args.skip_throughput:
    rows = []
    print(f"device: {kind}")
    print(f"{'env':<19} {'physics':>7} {'collect tr/s':>13} {'compile s':>9} {'algo':>4} "
          f"{'train steps/s':>13} {'full config est.':>16} {'c / mjx':>15}")
    for name in args.envs.split(","):
      rates = {}
      for physics in args.physics.split(","):
        env = envs.make(name, physics=physics)
        backend = getattr(env, "physics", None)
        if backend in rates or (backend is None and rates):
          continue  # point robots: no physics backend, measured once
        col = bench_collection(env, args.episodes, args.snapshots, args.repeats)
        algos = ["ppo"] + (["sac"] if name in args.sac_envs.split(",") else [])
        trains = [bench_training(env, a, args) for a in algos]
        ppo_rate = trains[0]["env_steps_per_s"]
        est = full_config_estimate(name, col["transitions_per_s"], ppo_rate)
        row = {"env": name, "physics": backend, "collection": col,
               "behaviour_training": trains, "full_config_estimate": est}
        rates[backend] = (col["transitions_per_s"], ppo_rate)
        ratio = ""
        if {"c", "mjx"} <= set(rates):
          (cc, ct), (mc, mt) = rates["c"], rates["mjx"]
          row_c = row if backend == "c" else next(
              r for r in rows if r["env"] == name and r["physics"] == "c")
          row_c["c_over_mjx"] = {"collection": round(cc / mc, 2),
                                 "ppo_training": round(ct / mt, 2) if ct and mt else None}
          ratio = (f"{row_c['c_over_mjx']['collection']:.1f}x / "
                   f"{row_c['c_over_mjx']['ppo_training'] or float('nan'):.1f}x")
        rows.append(row)
        for t in trains:
          est_s = (f"{est['total_s'] / 3600:.1f} h" if est["total_s"] and t["algo"] == "ppo"
                   else "")
          print(f"{name:<19} {backend or '-':>7} {col['transitions_per_s']:>13,.0f} "
                f"{col['compile_s']:>9.1f} {t['algo']:>4} "
                f"{t['env_steps_per_s'] or float('nan'):>13,.0f} {est_s:>16} {ratio:>15}",
                flush=True)
        _write(os.path.join(RESULTS, f"collect_throughput_{tag}.json"),  # partial, per env
               {"meta": _meta(kind, "(partial: run in progress)", load0), "results": rows})
    note = (f"SMALL sizes for a ~10 min CPU run: collection = all 40 tasks x {args.snapshots} "
            f"snapshots x {args.episodes} episode(s), median of {args.repeats} calls, compile "
            f"excluded; behaviour training = brax PPO with {args.train_envs} envs, batch "
            f"{args.train_batch}, {args.epochs} short epochs (the first includes compilation), brax's training/sps of the last "
            "epoch (compiled), brax eval off; SAC (where listed) with grad_updates_per_step 8. "
            "full_config_estimate extrapolates the full data config at these rates (compile "
            "excluded); GPU runs with GPU-sized batches will replace these figures. MuJoCo envs "
            f"under each physics backend of {args.physics!r} (c: C MuJoCo through one host "
            "callback per batch step; mjx: MJX in the program); c_over_mjx = c rate / mjx rate.")
    _write(os.path.join(RESULTS, f"collect_throughput_{tag}.json"),
           {"meta": _meta(kind, note, load0), "results": rows})
    print(f"wrote {os.path.join(RESULTS, f'collect_throughput_{tag}.json')}")

  if args.returns:
    path = os.path.join(RESULTS, f"behaviour_returns_{tag}.json")
    old = []
    if os.path.exists(path):  # rows of envs not re-run are kept
      with open(path) as f:
        old = json.load(f).get("results", [])
    names = args.returns_envs.split(",")
    rows = [r for r in old if r["env"] not in names]
    for name in names:
      r = behaviour_returns(name, args)
      r["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
      rows.append(r)
      _write(path, {"meta": _meta(kind, "(partial: run in progress)", load0),  # per env
                    "results": rows})
      print(f"{name:<19} random {r['random']:>9.2f}  expert {r['expert']:>9.2f}  "
            f"({r['tasks_expert_better']}/{r['num_tasks']} tasks better; {r['budget']}; "
            f"{r['wall_s']:.0f}s)", flush=True)
    note = ("Mean stochastic episode return (rewards up to the first done) over all 40 "
            f"benchmark tasks x {args.returns_episodes} episodes of the first (untrained = "
            "'random') and last ('expert') behaviour snapshot, trained in all 40 tasks (the "
            "data pipeline's default behaviour_tasks='all'); tasks_expert_better counts the "
            "tasks where the expert's mean beats the random one's. Budgets are what this "
            "device allowed (see 'budget' per env): on a CPU the MuJoCo experts are partly "
            "trained, not converged; the full data configs' anchors (benchmarks.dataset_build "
            "on a GPU) replace them.")
    _write(os.path.join(RESULTS, f"behaviour_returns_{tag}.json"),
           {"meta": _meta(kind, note, load0), "results": rows})
    print(f"wrote {os.path.join(RESULTS, f'behaviour_returns_{tag}.json')}")


if __name__ == "__main__":
  main()
