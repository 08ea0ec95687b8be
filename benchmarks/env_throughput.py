"""Env-steps per second of the MuJoCo task families per physics backend and batch size.

For every env, batch size B and physics backend (``--physics``, default both ``c`` and ``mjx``,
side by side in one run) one jitted function resets B envs (B benchmark tasks, cycled) and runs
``--steps`` steps of ``vmap(step)`` under ``lax.scan`` with uniform random actions drawn inside
the program; it returns only the summed reward, so the figure is pure simulation + reward cost.
Compile time (lower + compile, persistent cache off) is measured separately from run time; run
time is the median of ``--repeats`` calls after one warm-up call. The ``c / mjx`` column is the
ratio of the two backends' env-steps/s at the same env and batch size.

  python -m benchmarks.env_throughput                      # CPU: batch 16 and 64, c and mjx
  python -m benchmarks.env_throughput --physics=mjx --batch_sizes=1,1024,4096 --steps=200  # GPU

Writes ``benchmarks/results/env_throughput_<platform>.json`` (device kind, date and load average
inside) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

from jcomrl import atomic, envs, names
from jcomrl.envs.c_physics import default_threads

ENV_NAMES = list(names.MUJOCO_ENVS)


def make_run(env, batch: int, steps: int):
  def run(key, tasks):
    k_reset, k_act = jax.random.split(key)
    states = jax.vmap(env.reset)(jax.random.split(k_reset, batch), tasks)

    def body(carry, k):
      s, total = carry
      a = jax.random.uniform(k, (batch, env.action_size), minval=-1.0, maxval=1.0)
      s = jax.vmap(env.step)(s, a, tasks)
      return (s, total + s.reward.sum()), None

    (_, total), _ = jax.lax.scan(body, (states, jnp.zeros(())), jax.random.split(k_act, steps))
    return total

  return run


def bench(name: str, batch: int, steps: int, repeats: int, physics: str = "auto",
          c_threads: int | None = None) -> dict:
  env = envs.make(name, physics=physics)
  if env.physics == "c" and c_threads is not None:
    env = envs.make(name, physics=physics, c_threads=c_threads)
  all_tasks = env.all_benchmark_tasks()
  n = jax.tree.leaves(all_tasks)[0].shape[0]
  tasks = jax.tree.map(lambda x: x[jnp.arange(batch) % n], all_tasks)
  key = jax.random.PRNGKey(0)
  t0 = time.perf_counter()
  lowered = jax.jit(make_run(env, batch, steps)).lower(key, tasks)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  jax.block_until_ready(compiled(key, tasks))  # warm-up
  times = []
  for i in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.PRNGKey(i + 1), tasks))
    times.append(time.perf_counter() - t)
  run_s = statistics.median(times)
  return {"env": name, "physics": env.physics, "batch": batch, "steps": steps,
          "trace_lower_s": round(t1 - t0, 2),
          "compile_s": round(t2 - t1, 2), "run_s": round(run_s, 4),
          "env_steps_per_s": round(batch * steps / run_s, 1),
          "physics_steps_per_s": round(batch * steps * env.frame_skip / run_s, 1)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--envs", default=",".join(ENV_NAMES))
  parser.add_argument("--batch_sizes", default="16,64")
  parser.add_argument("--physics", default="c,mjx",
                      help="comma-separated backends to compare (c, mjx, auto)")
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=None, help="default: benchmarks/results/env_throughput_"
                      "<platform>.json")
  parser.add_argument("--c_threads", type=int, default=None,
                      help="threads of the C stepper (default: the CPUs this process may use)")
  parser.add_argument("--use_cache", action="store_true",
                      help="keep the persistent compilation cache on (compile times then lie)")
  args = parser.parse_args(argv)
  if not args.use_cache:
    jax.config.update("jax_enable_compilation_cache", False)
  dev = jax.devices()[0]
  load_start = os.getloadavg()
  rows = []
  print(f"device: {dev.platform} / {dev.device_kind} x{jax.device_count()}  "
        f"(cpu cores visible: {os.cpu_count()})")
  header = (f"{'env':<14}{'physics':>8}{'batch':>6}{'steps':>6}{'lower s':>9}{'compile s':>10}"
            f"{'run s':>9}{'env-steps/s':>13}{'c / mjx':>9}")
  print(header)
  backends = args.physics.split(",")
  for name in args.envs.split(","):
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
      rate = {}
      for physics in backends:
        r = bench(name, batch, args.steps, args.repeats, physics, args.c_threads)
        rate[r["physics"]] = r["env_steps_per_s"]
        ratio = ""
        if len(rate) == 2 and {"c", "mjx"} <= set(rate):
          r["c_over_mjx"] = round(rate["c"] / rate["mjx"], 2)
          ratio = f"{r['c_over_mjx']:>8.1f}x"
        rows.append(r)
        print(f"{name:<14}{r['physics']:>8}{batch:>6}{args.steps:>6}{r['trace_lower_s']:>9.1f}"
              f"{r['compile_s']:>10.1f}{r['run_s']:>9.3f}{r['env_steps_per_s']:>13,.0f}{ratio:>9}",
              flush=True)
  out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                 f"env_throughput_{dev.platform}.json")
  meta = {"device_platform": dev.platform, "device_kind": dev.device_kind,
          "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
          "c_threads": args.c_threads or default_threads(),
          "jax": jax.__version__, "python": platform.python_version(),
          "load_average_1_5_15min_at_start": [round(x, 2) for x in load_start],
          "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()],
          "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
          "note": "env-steps/s = batch * steps / median run time; compile excluded; "
                  "random actions; c_over_mjx = c env-steps/s / mjx env-steps/s at the same "
                  "env and batch (measured back to back); persistent compilation cache "
                  + ("on" if args.use_cache else "off")}
  try:
    import mujoco
    meta["mujoco"] = mujoco.__version__
  except ImportError:  # pragma: no cover
    pass
  os.makedirs(os.path.dirname(out), exist_ok=True)
  atomic.write_json(out, {"meta": meta, "results": rows})
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
