"""Aggregate run directories into a results table and learning curves:
``python -m experiments.table --runs_root=runs/sweep --out=runs/sweep/table``.

Every directory under ``--runs_root`` holding a ``config.json`` is a run (its ``algo`` and
``env`` come from the config). For each run and protocol the latest ``eval/<protocol>_step<N>.json``
is read; its ``score`` holds one value per seed. Runs of the same (algo, env) pool their seeds.
Writes, laid out like UNICORN Table 2 (rows = algorithms, per env one column per protocol,
``mean ± std`` over seeds, population std, best mean per column in bold):

  table.md     Markdown (plus a representation-diagnostics table when diagnostics exist)
  table.tex    LaTeX (booktabs)
  table.json   the aggregated numbers
  curves_<env>.png   IID return during training (mean ± std over seeds) per algorithm
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from absl import flags

from jcomrl import atomic, names

ENV_NAMES = names.ENV_DISPLAY
ALGO_NAMES = names.PRESET_DISPLAY
PROTOCOL_NAMES = names.PROTOCOL_DISPLAY
_STEP_FILE = re.compile(r"^(?P<protocol>[a-z_]+)_step(?P<step>\d+)\.json$")


def find_runs(runs_root: str) -> list[str]:
  """Run directories (holding ``config.json``) under ``runs_root``, sorted."""
  if not os.path.isdir(runs_root):
    raise FileNotFoundError(f"no runs root directory {runs_root}")
  runs = []
  for root, dirs, files in os.walk(runs_root):
    if "config.json" in files:
      runs.append(root)
      dirs[:] = []  # a run's subdirectories (checkpoints, eval) hold no runs
    dirs.sort()
  return sorted(runs)


def latest_eval(workdir: str, protocol: str) -> dict | None:
  """The latest complete ``eval/<protocol>_step<N>.json`` of a run, or ``None``."""
  eval_dir = os.path.join(workdir, "eval")
  if not os.path.isdir(eval_dir):
    return None
  found = []
  for name in os.listdir(eval_dir):
    m = _STEP_FILE.match(name)
    if m and m["protocol"] == protocol:
      found.append((int(m["step"]), name))
  for _, name in sorted(found, reverse=True):
    with open(os.path.join(eval_dir, name)) as f:
      res = json.load(f)
    if res.get("protocol") == protocol:
      return res
  return None


def seed_values(res: dict, metric: str) -> list[float] | None:
  score = res.get("score") or {}
  key = "seed_means" if metric == "return" else "seed_normalised"
  return score.get(key)


def collect(runs_root: str, protocols: list[str], metric: str) -> dict:
  """``{"cells": {(env, algo, protocol): [per-seed values]}, "diagnostics": ..., "runs": ...}``."""
  cells, diag, runs = {}, {}, {}
  for workdir in find_runs(runs_root):
    with open(os.path.join(workdir, "config.json")) as f:
      cfg = json.load(f)
    env, algo = cfg.get("env", "?"), cfg.get("algo") or os.path.basename(workdir)
    runs.setdefault((env, algo), []).append(workdir)
    for p in protocols:
      res = latest_eval(workdir, p)
      vals = seed_values(res, metric) if res else None
      if vals:
        cells.setdefault((env, algo, p), []).extend(float(v) for v in vals)
    d = latest_eval(workdir, "diagnostics")
    if d:
      for k in ("mi_lower_bound", "probe_r2"):
        diag.setdefault((env, algo, k), []).extend(d.get(f"seed_{k}", [d.get(k)]))
      diag[(env, algo, "mi_max")] = [d.get("mi_max")]
  return {"cells": cells, "diagnostics": diag, "runs": runs}


def _order(names, canonical) -> list[str]:
  names = sorted(set(names))
  known = [n for n in canonical if n in names]
  return known + [n for n in names if n not in canonical]


def fmt(mean: float, std: float) -> tuple[str, str]:
  """Numbers like UNICORN's table: integers from 100, else 1 or 2 decimals."""
  a = abs(mean)
  d = 0 if a >= 100 else (1 if a >= 10 else 2)
  return f"{mean:.{d}f}", f"{std:.{d}f}"


def build_tables(data: dict, protocols: list[str], metric: str) -> dict:
  """Markdown and LaTeX strings plus the aggregated numbers."""
  cells = data["cells"]
  envs = _order([k[0] for k in data["runs"]], list(ENV_NAMES))
  algos = _order([k[1] for k in data["runs"]], list(ALGO_NAMES))
  cols = [(e, p) for e in envs for p in protocols]
  stats = {}
  for (e, a, p), v in cells.items():
    v = np.asarray(v, np.float64)
    stats[(e, a, p)] = (float(v.mean()), float(v.std()), len(v))
  best = {}
  for e, p in cols:
    means = [stats[(e, a, p)][0] for a in algos if (e, a, p) in stats]
    if means:
      best[(e, p)] = max(means)

  def cell(e, a, p, md: bool) -> str:
    if (e, a, p) not in stats:
      return "–" if md else "--"
    m, s, _ = stats[(e, a, p)]
    ms, ss = fmt(m, s)
    is_best = np.isclose(m, best[(e, p)]) and sum(1 for x in algos if (e, x, p) in stats) > 1
    if md:
      text = f"{ms} ± {ss}"
      return f"**{text}**" if is_best else text
    text = f"{ms} $\\pm$ {ss}"
    return f"\\textbf{{{text}}}" if is_best else text

  what = "return" if metric == "return" else "normalised score (0 random, 100 expert)"
  seeds = sorted({n for (_, _, n) in stats.values()})
  caption = (f"Average test {what} on held-out tasks, mean ± std over {'/'.join(map(str, seeds)) or 'no'} "
             f"seeds ({', '.join(PROTOCOL_NAMES.get(p, p) for p in protocols)} contexts).")
  head = ["Algorithm"] + [f"{ENV_NAMES.get(e, e)} {PROTOCOL_NAMES.get(p, p)}" for e, p in cols]
  md = [caption, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for a in algos:
    md.append("| " + " | ".join([ALGO_NAMES.get(a, a)] + [cell(e, a, p, True)
                                                           for e, p in cols]) + " |")
  diag = data["diagnostics"]
  if diag:
    md += ["", ("Representation diagnostics on held-out tasks (mean ± std over seeds): MI lower "
                "bound I(z; task) in nats (softmax classifier, held-out contexts; max log "
                "#tasks) and linear-probe R² from z to the task parameters."), ""]
    dh = ["Algorithm"] + [f"{ENV_NAMES.get(e, e)} {k}" for e in envs for k in ("MI", "R²")]
    md += ["| " + " | ".join(dh) + " |", "|" + "---|" * len(dh)]
    for a in algos:
      row = [ALGO_NAMES.get(a, a)]
      for e in envs:
        for k in ("mi_lower_bound", "probe_r2"):
          v = diag.get((e, a, k))
          row.append("–" if not v else "{} ± {}".format(*fmt(float(np.mean(v)),
                                                              float(np.std(v)))))
      md.append("| " + " | ".join(row) + " |")

  tex = ["% " + caption, "\\begin{tabular}{l" + " c" * len(cols) + "}", "\\toprule"]
  groups = " & ".join(f"\\multicolumn{{{len(protocols)}}}{{c}}{{{ENV_NAMES.get(e, e)}}}"
                      for e in envs)
  tex.append(f" & {groups} \\\\")
  rules = " ".join(f"\\cmidrule(lr){{{2 + i * len(protocols)}-{1 + (i + 1) * len(protocols)}}}"
                   for i in range(len(envs)))
  tex.append(rules)
  tex.append("Algorithm & " + " & ".join(PROTOCOL_NAMES.get(p, p) for _, p in cols) + " \\\\")
  tex.append("\\midrule")
  for a in algos:
    tex.append(ALGO_NAMES.get(a, a) + " & " + " & ".join(cell(e, a, p, False)
                                                         for e, p in cols) + " \\\\")
  tex += ["\\bottomrule", "\\end{tabular}"]
  numbers = [{"env": e, "algo": a, "protocol": p, "mean": m, "std": s, "num_seeds": n,
              "values": cells[(e, a, p)]} for (e, a, p), (m, s, n) in sorted(stats.items())]
  return {"markdown": "\n".join(md) + "\n", "latex": "\n".join(tex) + "\n",
          "numbers": numbers, "envs": envs, "algos": algos}


def plot_curves(runs: dict, env: str, path: str) -> bool:
  """IID return during training per algorithm (mean ± std over pooled seeds); False if none."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from jcomrl.logging import read_metrics

  fig, ax = plt.subplots(figsize=(5, 3.5))
  drawn = False
  for algo in _order([a for (e, a) in runs if e == env], list(ALGO_NAMES)):
    per_step = {}
    for workdir in runs[(env, algo)]:
      for row in read_metrics(workdir):
        if "eval/iid_return" in row:
          per_step.setdefault(row["step"], []).extend(np.atleast_1d(row["eval/iid_return"]))
    if not per_step:
      continue
    steps = sorted(per_step)
    mean = np.array([np.mean(per_step[s]) for s in steps])
    std = np.array([np.std(per_step[s]) for s in steps])
    line, = ax.plot(steps, mean, "o-", ms=3, label=ALGO_NAMES.get(algo, algo))
    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    drawn = True
  if drawn:
    ax.set_xlabel("update step")
    ax.set_ylabel("test-task return (IID trajectory context)")
    ax.set_title(ENV_NAMES.get(env, env))
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=120)
  plt.close(fig)
  return drawn


def _write(path: str, text: str) -> None:
  atomic.write_text(path, text)


def make_table(runs_root: str, out: str, protocols: list[str], metric: str = "return") -> dict:
  """Writes table.md/.tex/.json and curves_<env>.png into ``out``; returns the built tables."""
  data = collect(runs_root, protocols, metric)
  if not data["runs"]:
    raise FileNotFoundError(f"no run directories (with config.json) under {runs_root}")
  tables = build_tables(data, protocols, metric)
  os.makedirs(out, exist_ok=True)
  _write(os.path.join(out, "table.md"), tables["markdown"])
  _write(os.path.join(out, "table.tex"), tables["latex"])
  _write(os.path.join(out, "table.json"), json.dumps(
      {"metric": metric, "protocols": protocols, "cells": tables["numbers"],
       "runs": {f"{e}/{a}": v for (e, a), v in sorted(data["runs"].items())}}, indent=1))
  tables["plots"] = []
  for env in tables["envs"]:
    path = os.path.join(out, f"curves_{env}.png")
    if plot_curves(data["runs"], env, path):
      tables["plots"].append(path)
  return tables


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so that importing this
  module next to other entry points never clashes on flag names)."""
  flags.DEFINE_string("runs_root", "runs/sweep", "root of the run directories")
  flags.DEFINE_string("out", None, "output directory (default: <runs_root>/table)")
  flags.DEFINE_string("protocols", "iid,ood",
                      "columns per env: comma list of iid, ood, online, task_ood")
  flags.DEFINE_enum("metric", "return", ["return", "normalised"],
                    "raw return or normalised score (0 random, 100 expert snapshot)")


def main(argv):
  del argv
  from experiments import cli

  protocols = [p for p in FLAGS.protocols.replace(" ", "").split(",") if p]
  bad = [p for p in protocols if p not in PROTOCOL_NAMES]
  if bad:
    raise cli.UsageError(f"unknown protocol column(s) {bad} in --protocols; expected a comma "
                         f"list of {', '.join(sorted(PROTOCOL_NAMES))}")
  out = FLAGS.out or os.path.join(FLAGS.runs_root, "table")
  cli.require_optional("matplotlib", "experiments.table (it plots the learning curves)")
  try:
    tables = make_table(FLAGS.runs_root, out, protocols, FLAGS.metric)
  except FileNotFoundError as e:
    raise cli.UsageError(f"{e}; pass --runs_root=<the sweep's runs_root>") from e
  print(tables["markdown"])
  print(f"wrote {out}/table.md, table.tex, table.json and {len(tables['plots'])} curve plot(s)")


def run():
  from experiments import cli

  cli.run(main, "experiments.table", define=define_flags)


if __name__ == "__main__":
  run()
