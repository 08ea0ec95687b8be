"""Train and evaluate presets x envs, seeds vmapped: ``python -m experiments.sweep
--algos="focal csro unicorn_ss" --envs=point_robot --seeds=3 --runs_root=runs/sweep``.

For every ``(algo, env)`` pair the sweep runs ONE process, ``python -m experiments.train
--config=experiments/configs/<algo>.py:<variant> --config.num_seeds=<seeds>
--config.dataset=<dataset> --workdir=<runs_root>/<env>/<algo> --eval_protocols=<protocols>``,
which trains all seeds as one vmapped program and then evaluates every protocol from the saved
final checkpoint. Finished pairs (final checkpoint + every protocol file) are skipped; a pair
killed mid-run is resumed from its last checkpoint by the same command. Missing datasets are
generated first with ``experiments.collect`` (``experiments/configs/data.py:<env>``).
Each pair's outcome and wall time go to ``<runs_root>/sweep_log.jsonl``; then run
``python -m experiments.table --runs_root=<runs_root> --out=<dir>``.

Several hosts: run the same sweep on every process with ``--coordinator_address``,
``--num_processes`` and its own ``--process_id``; each pair's training then spans every
process (process 0 writes the run files and the sweep log); datasets must exist beforehand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

from experiments import cli
from jcomrl import logging as jlogging


def split_list(spec: str) -> list[str]:
  return [x for x in spec.replace(",", " ").split() if x]


def config_file(algo: str) -> str:
  """``experiments/configs/<algo>.py`` (relative in a checkout, else the installed file)."""
  rel = os.path.join("experiments", "configs", f"{algo}.py")
  return rel if os.path.exists(rel) else os.path.join(cli.CONFIG_DIR, f"{algo}.py")


def run_dir(runs_root: str, env: str, algo: str) -> str:
  return os.path.join(runs_root, env, algo)


def train_command(algo: str, env: str, *, variant: str | None, seeds: int, dataset: str,
                  workdir: str, protocols: list[str], overrides: list[str],
                  distributed: dict | None = None) -> list[str]:
  """The ``experiments.train`` command line of one (algo, env) pair; ``distributed``: the
  multi-process settings (``cli.distributed_settings``) passed on to it."""
  cmd = [sys.executable, "-m", "experiments.train",
         f"--config={config_file(algo)}:{variant or env}", f"--config.num_seeds={seeds}",
         f"--config.dataset={dataset}", f"--workdir={workdir}",
         f"--eval_protocols={','.join(protocols)}"]
  for key, value in (distributed or {}).items():
    if key != "auto" and value is not None:
      cmd.append(f"--{key}={value}")
  for item in overrides:
    if "=" not in item:
      raise cli.UsageError(f"--set expects key=value, got {item!r}")
    cmd.append(f"--config.{item}")
  return cmd


def plan(algos: list[str], envs: list[str], runs_root: str, protocols: list[str],
         variant: str | None = None) -> list[dict]:
  """One entry per (algo, env): its run dir, what is left to do (``train``/``evaluate``/
  ``skip``) and its ``protocols``: the requested ones its learner can be evaluated with
  (``dropped``: the others, e.g. MACAW's ``online``/``diagnostics``)."""
  from jcomrl import run as run_api  # JAX: imported once the flags are checked

  out = []
  for env in envs:
    for algo in algos:
      cfg = cli.load_config(f"{config_file(algo)}:{variant or env}")
      kept, dropped = run_api.applicable_protocols(cli.to_plain(cfg), protocols)
      workdir = run_dir(runs_root, env, algo)
      st = run_api.status(workdir, kept)
      todo = "skip" if st["trained"] and not st["missing"] else (
          "evaluate" if st["trained"] else ("resume" if st["step"] else "train"))
      out.append({"algo": algo, "env": env, "workdir": workdir, "todo": todo,
                  "protocols": kept, "dropped": dropped, **st})
  return out


def _append_log(runs_root: str, row: dict) -> None:
  os.makedirs(runs_root, exist_ok=True)
  with open(os.path.join(runs_root, "sweep_log.jsonl"), "a") as f:
    f.write(json.dumps(row) + "\n")


def ensure_dataset(env: str, path: str, data_variant: str | None, dry_run: bool,
                   multiprocess: bool = False) -> None:
  """Generates the dataset at ``path`` with ``experiments.collect`` if it is not there (a
  multi-process sweep refuses: its processes would all write it)."""
  from jcomrl.data.dataset import DatasetError, read_meta

  try:
    read_meta(path)
    return
  except DatasetError:
    pass
  cmd = [sys.executable, "-m", "experiments.collect",
         f"--config={config_file('data')}:{data_variant or env}", f"--config.out={path}"]
  if multiprocess:
    raise cli.UsageError(f"dataset {path} is missing; a multi-process sweep does not generate "
                         f"datasets: run {' '.join(cmd[1:])} once first")
  print(f"[sweep] dataset {path} missing: {' '.join(cmd)}", flush=True)
  if not dry_run and subprocess.run(cmd, check=False).returncode:
    raise cli.RunFailed(f"generating the dataset {path} failed (see the error above)")


FLAGS = flags.FLAGS
DEFAULT_SEEDS = 3  # also the Makefile's SEEDS default


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so that importing this
  module next to other entry points never clashes on flag names)."""
  flags.DEFINE_string("algos", "focal csro unicorn_ss",
                      "presets (experiments/configs/<algo>.py), space or comma separated")
  flags.DEFINE_string("envs", "point_robot", "env variants, space or comma separated")
  flags.DEFINE_integer("seeds", DEFAULT_SEEDS, "seeds per (algo, env), vmapped in one process",
                       lower_bound=1)
  flags.DEFINE_string("runs_root", "runs/sweep", "root of the run directories")
  flags.DEFINE_string("protocols", "all",
                      f"protocols to evaluate: comma list of "
                      f"{', '.join(cli.ALL_PROTOCOLS)} or 'all'")
  flags.DEFINE_string("variant", None,
                      "config variant for every preset (default: the env name)")
  flags.DEFINE_string("dataset", "data/{env}_mixed",
                      "dataset path; '{env}' is replaced by the env name")
  flags.DEFINE_string("data_variant", None,
                      "experiments/configs/data.py variant used to generate a "
                      "missing dataset (default: the env name)")
  flags.DEFINE_multi_string("set", [], "extra config override key=value for every run "
                            "(e.g. --set=num_steps=2000)")
  flags.DEFINE_boolean("dry_run", False, "print the plan and commands, run nothing")
  flags.DEFINE_boolean("keep_going", True, "continue after a failed pair")
  cli.define_distributed_flags()


def main(argv):
  del argv
  algos, envs = split_list(FLAGS.algos), split_list(FLAGS.envs)
  protocols = cli.parse_protocols(FLAGS.protocols)
  missing = [a for a in algos if not os.path.exists(config_file(a))]
  if missing:
    raise cli.UsageError(f"no config file for preset(s) {missing} in --algos; presets: "
                         + ", ".join(sorted(f[:-3] for f in os.listdir(cli.CONFIG_DIR)
                                            if f.endswith(".py") and f not in
                                            ("__init__.py", "common.py", "data.py"))))
  for item in FLAGS.set:
    if "=" not in item:
      raise cli.UsageError(f"--set expects key=value, got {item!r}")
  # Every config variant and override key, before anything runs.
  for algo in algos:
    for env in envs:
      cli.check_overrides(["sweep"] + [f"--config.{item}" for item in FLAGS.set], "config",
                          f"{config_file(algo)}:{FLAGS.variant or env}")
  # Multi-process: every process runs this sweep with its own settings and each pair's
  # training joins them; the sweep itself does not join (it runs no JAX program).
  dist = cli.distributed_settings()
  if dist is not None and dist["auto"]:
    raise cli.UsageError("experiments.sweep takes explicit --coordinator_address, "
                         "--num_processes and --process_id (process 0 writes the sweep log); "
                         "with cluster auto-detection run experiments.train "
                         "--distributed_auto per pair")
  writes_log = dist is None or dist["process_id"] == 0
  runs_root = FLAGS.runs_root
  t_all = time.time()
  failures = []
  total = len(algos) * len(envs)
  watch = jlogging.Progress(total, "pairs", show_elapsed=True)
  for env in envs:
    dataset = FLAGS.dataset.format(env=env)
    entries = plan(algos, [env], runs_root, protocols, FLAGS.variant)
    if any(e["todo"] != "skip" for e in entries):
      ensure_dataset(env, dataset, FLAGS.data_variant, FLAGS.dry_run, dist is not None)
    for e in entries:
      tag = f"[sweep] {e['algo']} on {env}"
      if e["dropped"]:
        print(f"{tag}: protocol(s) {', '.join(e['dropped'])} do not apply to its learner, "
              "skipped", flush=True)
      if e["todo"] == "skip":
        print(f"{tag}: finished (step {e['step']}), skipped; {watch.advance().line()}", flush=True)
        continue
      cmd = train_command(e["algo"], env, variant=FLAGS.variant, seeds=FLAGS.seeds,
                          dataset=dataset, workdir=e["workdir"], protocols=e["protocols"],
                          overrides=FLAGS.set, distributed=dist)
      print(f"{tag}: {e['todo']} (checkpoint step {e['step']}): {' '.join(cmd)}", flush=True)
      if FLAGS.dry_run:
        continue
      t0 = time.time()
      rc = subprocess.run(cmd, check=False).returncode
      row = {"algo": e["algo"], "env": env, "workdir": e["workdir"], "todo": e["todo"],
             "returncode": rc, "wall_s": round(time.time() - t0, 1), "seeds": FLAGS.seeds,
             "time": time.strftime("%Y-%m-%d %H:%M:%S")}
      if writes_log:
        _append_log(runs_root, row)
      print(f"{tag}: {'done' if rc == 0 else f'FAILED (exit {rc})'} in {row['wall_s']}s; "
            f"{watch.advance().line()}", flush=True)
      if rc != 0:
        failures.append(f"{e['algo']}/{env}")
        if not FLAGS.keep_going:
          break
  print(f"[sweep] total wall time {time.time() - t_all:.0f}s; "
        f"{'failed: ' + ', '.join(failures) if failures else 'all pairs finished'}", flush=True)
  if failures:
    raise cli.RunFailed(f"{len(failures)} pair(s) failed: {', '.join(failures)} (their errors "
                        f"are above and in {runs_root}/sweep_log.jsonl)")


def run():
  cli.run(main, "experiments.sweep", define=define_flags)


if __name__ == "__main__":
  run()
