"""A single-task offline-RL table (MISA's D4RL table, our datasets): backbones x datasets x seeds.

    python -m experiments.offline_table --datasets=data/offline/hopper-medium,\\
        data/offline/halfcheetah-medium_replay --algos=bc,td3bc,cql,iql,misa --profile=cpu --seeds=3

For every (dataset, algo) it trains ``experiments/configs/offline.py:<algo>@<profile>`` on the
one-task dataset (the env and its overrides from the dataset's meta.json; seeds vmapped in one
program) in ``<runs_root>/<dataset name>/<algo>`` (finished runs are skipped, killed ones
resume), then writes ``table.md`` and ``table.json`` to ``--out``: per cell the IID normalised
score (0 = the dataset's random anchor, 100 = its expert anchor) mean ± sd over seeds, the
column totals, the wall time of each run, and MISA's paper numbers for the D4RL dataset of the
same name with the two orderings side by side (MISA's table as the EPQ paper, "Exclusively
Penalized Q-learning", NeurIPS 2024, reprints it; gym -v2). ``--table_only`` rebuilds the table
from finished runs.
"""

from __future__ import annotations

import ast
import json
import os
import time

import numpy as np
from absl import flags

from experiments import cli

ALGOS = ("bc", "td3bc", "cql", "iql", "misa")
# MISA's gym -v2 table (MISA, Ma et al., NeurIPS 2023, as the EPQ paper reprints it; BC,
# TD3+BC, CQL (reproduced via MISA), IQL, MISA), for the D4RL dataset names our suite mirrors.
PAPER = {
    "halfcheetah-medium": (42.6, 48.3, 44.0, 47.4, 47.4),
    "hopper-medium": (52.9, 59.3, 58.5, 66.3, 67.1),
    "walker2d-medium": (75.3, 83.7, 72.5, 78.3, 84.1),
    "halfcheetah-medium-replay": (36.6, 44.6, 45.5, 44.2, 45.6),
    "hopper-medium-replay": (18.1, 60.9, 95.0, 94.7, 98.6),
    "walker2d-medium-replay": (26.0, 81.8, 77.2, 73.9, 86.2),
    "halfcheetah-medium-expert": (55.2, 90.7, 91.6, 86.7, 94.7),
    "hopper-medium-expert": (52.5, 98.0, 105.4, 91.5, 109.8),
    "walker2d-medium-expert": (107.5, 110.1, 108.8, 109.6, 109.4),
}


def d4rl_name(dataset: str) -> str:
  """``data/offline/hopper-medium_replay`` -> ``hopper-medium-replay``."""
  return os.path.basename(os.path.normpath(dataset)).replace("_", "-")


def parse_override(item: str) -> tuple[str, object]:
  key, eq, value = item.partition("=")
  if not eq or not key:
    raise cli.UsageError(f"--set expects key=value, got {item!r}")
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value


def run_config(algo: str, profile: str, dataset: str, seeds: int, overrides) -> dict:
  from experiments.configs import offline
  from jcomrl.data.dataset import read_meta

  meta = read_meta(dataset)
  c = offline.get_config(f"{algo}@{profile}" if profile != "paper" else algo)
  c.env, c.dataset, c.num_seeds = meta["env"], dataset, seeds
  for key, value in overrides:
    node, *path = key.split(".")
    target = c
    for part in [node, *path][:-1]:
      target = target[part]
    target[([node, *path])[-1]] = value
  return cli.to_plain(c)


def train_all(datasets, algos, profile, seeds, runs_root, overrides) -> None:
  from jcomrl import run as run_api

  os.makedirs(runs_root, exist_ok=True)
  for dataset in datasets:
    for algo in algos:
      workdir = os.path.join(runs_root, d4rl_name(dataset), algo)
      status = run_api.status(workdir, ["iid"])
      if status["trained"] and not status["missing"]:
        print(f"[offline] {workdir}: done", flush=True)
        continue
      cfg = run_config(algo, profile, dataset, seeds, overrides)
      print(f"[offline] {algo} on {dataset} ({seeds} seeds, {cfg['num_steps']} updates)",
            flush=True)
      t0 = time.perf_counter()
      run_api.train(cfg, workdir, provenance=cli.run_provenance())
      row = {"dataset": dataset, "algo": algo, "wall_s": time.perf_counter() - t0,
             "load_avg_1m": os.getloadavg()[0]}
      with open(os.path.join(runs_root, "offline_log.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def gather(datasets, algos, runs_root) -> dict:
  from experiments.table import latest_eval, seed_values

  times = {}
  log = os.path.join(runs_root, "offline_log.jsonl")
  if os.path.exists(log):
    with open(log) as f:
      for line in f:
        r = json.loads(line)
        times[(d4rl_name(r["dataset"]), r["algo"])] = r["wall_s"]
  cells = {}
  for dataset in datasets:
    name = d4rl_name(dataset)
    for algo in algos:
      res = latest_eval(os.path.join(runs_root, name, algo), "iid")
      vals = seed_values(res, "normalised") if res else None
      cells[(name, algo)] = {"seeds": vals, "wall_s": times.get((name, algo))}
  return cells


def _cell(vals) -> str:
  from experiments.table import fmt

  if not vals:
    return "–"
  return "{} ± {}".format(*fmt(float(np.mean(vals)), float(np.std(vals))))


def build_markdown(datasets, algos, cells, profile, seeds) -> str:
  names = [d4rl_name(d) for d in datasets]
  lines = [f"# Single-task offline RL, profile {profile}, {seeds} seeds (IID normalised score)",
           "", "| dataset | " + " | ".join(algos) + " |", "|---" * (len(algos) + 1) + "|"]
  for n in names:
    lines.append(f"| {n} | " + " | ".join(_cell(cells[(n, a)]["seeds"]) for a in algos) + " |")
  totals = []
  for a in algos:
    means = [np.mean(cells[(n, a)]["seeds"]) for n in names if cells[(n, a)]["seeds"]]
    totals.append(f"{sum(means):.1f}" if len(means) == len(names) else "–")
  lines.append("| **total** | " + " | ".join(totals) + " |")
  paper = [n for n in names if n in PAPER]
  if paper:
    cols = [ALGOS.index(a) for a in algos if a in ALGOS]
    lines += ["", "MISA's paper (D4RL gym -v2; BC, TD3+BC, CQL, IQL, MISA):", "",
              "| dataset | " + " | ".join(ALGOS[i] for i in cols) + " |",
              "|---" * (len(cols) + 1) + "|"]
    for n in paper:
      lines.append(f"| {n} | " + " | ".join(f"{PAPER[n][i]:.1f}" for i in cols) + " |")
    lines.append("| **total** | " + " | ".join(f"{sum(PAPER[n][i] for n in paper):.1f}"
                                                for i in cols) + " |")
  lines += ["", "Wall time per run (s): " + ", ".join(
      f"{n}/{a} {cells[(n, a)]['wall_s']:.0f}" for n in names for a in algos
      if cells[(n, a)]["wall_s"] is not None)]
  return "\n".join(lines) + "\n"


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_list("datasets", None, "one-task dataset directories")
  flags.DEFINE_list("algos", list(ALGOS), "offline presets (experiments/configs/offline.py)")
  flags.DEFINE_enum("profile", "cpu", ["cpu", "paper", "tiny"], "offline.py profile")
  flags.DEFINE_integer("seeds", 3, "seeds per run (vmapped)", lower_bound=1)
  flags.DEFINE_string("runs_root", None, "run directories (default runs/offline_<profile>)")
  flags.DEFINE_string("out", None, "table directory (default benchmarks/results/"
                      "offline_<profile>)")
  flags.DEFINE_multi_string("set", [], "config override key=value for every run "
                            "(e.g. learner.misa.bound=dv)")
  flags.DEFINE_boolean("table_only", False, "only rebuild the table from finished runs")


def main(argv):
  del argv
  from jcomrl.algos.offline_presets import OFFLINE_PRESETS

  if not FLAGS.datasets:
    raise cli.UsageError("--datasets is empty; give one-task dataset directories, e.g. "
                         "--datasets=data/offline/hopper-medium")
  bad = [a for a in FLAGS.algos if a not in OFFLINE_PRESETS]
  if bad:
    raise cli.UsageError(f"unknown offline preset(s) {bad} in --algos; expected some of "
                         f"{', '.join(OFFLINE_PRESETS)}")
  missing = [d for d in FLAGS.datasets if not os.path.exists(os.path.join(d, "meta.json"))]
  if missing and not FLAGS.table_only:
    raise cli.UsageError(f"no dataset at {missing[0]} (no meta.json); generate it with "
                         "experiments.collect --config=experiments/configs/offline_data.py:...")
  overrides = [parse_override(s) for s in FLAGS.set]
  runs_root = FLAGS.runs_root or f"runs/offline_{FLAGS.profile}"
  out = FLAGS.out or os.path.join("benchmarks", "results", f"offline_{FLAGS.profile}")
  if not FLAGS.table_only:
    train_all(FLAGS.datasets, FLAGS.algos, FLAGS.profile, FLAGS.seeds, runs_root, overrides)
  cells = gather(FLAGS.datasets, FLAGS.algos, runs_root)
  md = build_markdown(FLAGS.datasets, FLAGS.algos, cells, FLAGS.profile, FLAGS.seeds)
  os.makedirs(out, exist_ok=True)
  from jcomrl import atomic

  atomic.write_text(os.path.join(out, "table.md"), md)
  atomic.write_json(os.path.join(out, "table.json"), {
      "profile": FLAGS.profile, "seeds": FLAGS.seeds, "overrides": FLAGS.set,
      "cells": {f"{n}/{a}": v for (n, a), v in cells.items()}})
  print(md)


def run():
  cli.run(main, "experiments.offline_table", define=define_flags)


if __name__ == "__main__":
  run()
