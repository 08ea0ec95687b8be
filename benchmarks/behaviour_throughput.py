"""How fast the per-task behaviour recipe trains on this device, against the device's GEMM floor
(the target: the official recipe's data in <= 2 h for cheetah_vel, <= 1 h for ant_dir on 2 cores).

``python -m benchmarks.behaviour_throughput --env=cheetah_vel [--variant=official]`` builds the
trainer of the data recipe ``<env>@<variant>`` (``jcomrl.datagen.recipes``, the configs of
``experiments/configs/data.py``; ``jcomrl.datagen.per_task_sac``: the 40
agents vmapped, their envs stepped as one batch), fills the replay buffers past the warm-up, and
times, each the best of ``--repeats`` compiled calls:

* ``iteration``: ``--iterations`` training iterations (env step of every task's envs + its
  updates), the loop that the recipe runs ``num_iterations`` times;
* ``update``: the vmapped SAC update alone (``make_update`` over the 40 agents, jitted on its own,
  for reference) and its XLA FLOP count (``cost_analysis``, times the devices it is split over);
* the GEMM peak of the device (``benchmarks.learner_throughput.gemm_peak_gflops``).

It prints and writes (``benchmarks/results/behaviour_throughput_<variant>_<env>.json``): ms per
iteration and per update, the update's FLOPs, the iteration's GFLOP/s (update FLOPs / iteration
time: the env step adds no matrix products) and its fraction of the GEMM peak, the
iterations the recipe needs and the projected training time at the measured rate. Speed figures
are only valid on a quiet machine: the load average and CPU model are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp


def _best(fn, repeats: int) -> float:
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
  return best


def measure(env_name: str, variant: str, iterations: int, repeats: int,
            devices: int | None = None) -> dict:
  from jcomrl import envs
  from jcomrl.algos.config import HParams
  from jcomrl.datagen import per_task_sac as pts
  from jcomrl.datagen import recipes
  from jcomrl.nets.mlp import check_init
  from jcomrl.provenance import cpu_model, source_commit

  c = recipes.get_config(f"{env_name}@{variant}")
  kw = recipes.behaviour_kwargs(c)
  if kw["algo"] != "sac_per_task":
    raise SystemExit(f"{env_name}@{variant} trains {kw['algo']}; this benchmark times "
                     "sac_per_task recipes")
  env = envs.make(env_name, **dict(c.env_overrides))
  num_envs, upi = int(kw["num_envs"]), int(kw.get("updates_per_iteration", 1))
  warmup = int(kw["warmup_steps"])
  after = bool(kw.get("intervals_after_warmup", False))
  seg = pts.schedule(int(kw["num_timesteps"]), int(kw["num_snapshots"]), num_envs, warmup, after)
  total_iters = (warmup // num_envs if after else 0) + seg * (int(kw["num_snapshots"]) - 1)
  train_iters = total_iters - -(-warmup // num_envs)
  # A buffer big enough for the timed run only: the update's cost does not depend on capacity.
  cap = warmup + num_envs * iterations * (repeats + 2) + num_envs
  cfg = pts.PerTaskSACConfig(hidden_sizes=tuple(kw["hidden_sizes"]), num_envs=num_envs,
                             batch_size=int(kw["batch_size"]), buffer_size=cap,
                             updates_per_iteration=upi,
                             learn_entropy=bool(kw.get("learn_entropy", False)),
                             init_scheme=check_init(kw.get("init_scheme", "lecun_normal")))
  hp = HParams.create(entropy_alpha=float(kw.get("entropy_alpha", 0.2)), discount=0.99)
  tasks = env.all_benchmark_tasks()
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(num_tasks))
  init, run = pts.make_trainer(env, cfg)
  # As experiments.collect trains it: the agents sharded over the host's XLA CPU devices.
  sharding = pts.task_sharding(num_tasks, devices)
  tasks = pts.shard_over_tasks(tasks, sharding, num_tasks)
  state = pts.shard_over_tasks(init(keys, tasks, 0.1), sharding, num_tasks)
  warm = jnp.asarray(warmup, jnp.int32)
  t0 = time.perf_counter()
  state, _ = run(state, tasks, hp, warm, jnp.asarray(-(-warmup // num_envs), jnp.int32))
  jax.block_until_ready(state)
  warm_s = time.perf_counter() - t0
  n = jnp.asarray(iterations, jnp.int32)
  state, _ = run(state, tasks, hp, warm, n)  # the training branch, compiled and warm
  jax.block_until_ready(state)
  holder = {"s": state}

  def timed_iterations():
    holder["s"], out = run(holder["s"], tasks, hp, warm, n)
    return out

  it_s = _best(timed_iterations, repeats) / iterations
  state = holder["s"]
  update = jax.jit(jax.vmap(pts.make_update(env, cfg), in_axes=(0, 0, None, 0, None)))
  k_upd = jax.vmap(lambda k: jax.random.fold_in(k, 7))(keys)
  args = (state.agents, state.buffer, state.size, k_upd, hp)
  compiled = update.lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  # cost_analysis counts one device's share of a partitioned program: the whole update is that
  # times the devices the agents are sharded over.
  devices = 1 if sharding is None else int(sharding.mesh.size)
  flops = devices * float(cost.get("flops", float("nan"))) if cost else float("nan")
  jax.block_until_ready(compiled(*args))
  up_s = _best(lambda: compiled(*args), repeats * 3)
  from benchmarks.learner_throughput import gemm_peak_gflops

  peak = gemm_peak_gflops()
  gflops = flops / it_s / 1e9  # the iteration's rate: its update is nearly all its FLOPs
  return {
      "env": env_name, "variant": variant, "recipe": {k: v for k, v in kw.items()},
      "tasks": num_tasks, "physics": getattr(env, "physics", None),
      "xla_devices": devices,
      "iterations_timed": iterations, "repeats": repeats,
      "ms_per_iteration": it_s * 1e3, "ms_per_update_call": up_s * 1e3,
      "updates_per_call_per_task": upi, "xla_flops_per_update_call": flops,
      "iteration_gflops": gflops, "gemm_peak_gflops": peak["gemm_peak_gflops"],
      "gemm_gflops_by_shape": peak["gemm_gflops_by_shape"],
      "fraction_of_gemm_peak": gflops / peak["gemm_peak_gflops"],
      "warmup_s_incl_compile": warm_s,
      "training_iterations": train_iters,
      "projected_training_h": train_iters * it_s / 3600 + warm_s / 3600,
      "projected_h_at_gemm_peak": train_iters * (flops / (peak["gemm_peak_gflops"] * 1e9))
      / 3600,
      "cpu": cpu_model(), "jcomrl_commit": source_commit(),
      "load_avg_at_end": os.getloadavg(), "jax": jax.__version__,
      "date": time.strftime("%Y-%m-%d %H:%M:%S"),
  }


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--env", default="cheetah_vel")
  ap.add_argument("--variant", default="official", help="data.py variant suffix (@official)")
  ap.add_argument("--iterations", type=int, default=200)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--out", default=None)
  ap.add_argument("--devices", type=int, default=None,
                  help="XLA CPU devices the agents are sharded over (default: as "
                       "experiments.collect, the cores this process may use)")
  args = ap.parse_args()
  from jcomrl.datagen import recipes

  args.devices = recipes.set_cpu_devices({"behaviour": {"algo": "sac_per_task"}},
                                             args.devices)
  load0 = os.getloadavg()
  r = measure(args.env, args.variant, args.iterations, args.repeats, args.devices)
  r["load_avg_at_start"] = load0
  print(f"{r['env']}@{r['variant']} on {r['cpu']} (load {load0[0]:.2f} -> "
        f"{r['load_avg_at_end'][0]:.2f}), {r['tasks']} agents on {r['xla_devices']} XLA "
        "device(s):")
  print(f"  iteration {r['ms_per_iteration']:.1f} ms (the update alone, jitted on its own: "
        f"{r['ms_per_update_call']:.1f} ms)")
  print(f"  update {r['xla_flops_per_update_call'] / 1e9:.2f} GFLOP per iteration -> "
        f"{r['iteration_gflops']:.1f} GFLOP/s = {100 * r['fraction_of_gemm_peak']:.0f}% of the "
        f"GEMM peak {r['gemm_peak_gflops']:.1f} GFLOP/s")
  print(f"  {r['training_iterations']:,} training iterations -> {r['projected_training_h']:.2f} h "
        f"at this rate ({r['projected_h_at_gemm_peak']:.2f} h at the GEMM peak)")
  out = args.out or os.path.join("benchmarks", "results",
                                 f"behaviour_throughput_{args.variant}_{args.env}.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out + ".tmp", "w") as f:
    json.dump(r, f, indent=1, default=float)
  os.replace(out + ".tmp", out)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
