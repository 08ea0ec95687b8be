"""Side-by-side learning curves: official-code runs (``benchmarks.official_unicorn`` JSON lines)
and jcomrl runs (a run directory's ``metrics.jsonl``), on the same quantities (the study in
benchmarks/results/issue35).

    python -m benchmarks.compare_curves --out=benchmarks/results/issue35/cheetah_vel_snapshots \\
        --official=unicorn_ss:official_unicorn_ss_seed0.jsonl \\
        --ours=unicorn_ss:runs/ours_unicorn_ss --ours="unicorn_ss rlkit init:runs/ours_rlkit"

Writes ``<out>.json`` (every curve, per seed, with the sources' headers / configs) and
``<out>.png`` (one panel per quantity). jcomrl's per-seed metrics are lists; the official rows
are one seed each. Quantities: IID return on the held-out tasks (``eval/iid`` /
``eval/iid_return``), Q of data actions (``critic/q``), Q of policy actions (``actor/q``), the
TD loss (``critic/loss``), the policy's entropy estimate (``actor/entropy``), the encoder loss
and the codes' spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np

QUANTITIES = (("iid return", ("eval/iid", "eval/iid_return")),
              ("z-shuffled return", ("eval/z_shuffle", "eval/z_shuffle_return")),
              ("Q(s, a_data)", ("critic/q",)), ("Q(s, a_pi)", ("actor/q",)),
              ("critic loss", ("critic/loss",)), ("policy entropy", ("actor/entropy",)),
              ("encoder loss", ("encoder/loss",)), ("z spread", ("encoder/z_spread",)),
              ("BRAC divergence", ("actor/kl", "dual/kl")),
              ("BRAC weight", ("brac/weight", "actor/brac_weight")))


def _value(row, keys):
  for k in keys:
    if k in row:
      v = row[k]
      return [float(x) for x in v] if isinstance(v, list) else [float(v)]
  return None


def read_official_seeds(paths):
  """Several official runs (one seed each) of the same setting as one series: per quantity and
  step, the seeds' values side by side (steps every seed logged)."""
  runs = [read_official(p) for p in paths]
  header, curves = runs[0][0], {}
  for name in runs[0][1]:
    by_step = [dict(c.get(name, [])) for _, c in runs]
    steps = sorted(set.intersection(*(set(b) for b in by_step)))
    curves[name] = [(st, [x for b in by_step for x in b[st]]) for st in steps]
  return header, curves


def read_official(path):
  header, curves = None, {}
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      if "header" in row:
        header = row["header"]
        continue
      for name, keys in QUANTITIES:
        v = _value(row, keys)
        if v is not None:
          curves.setdefault(name, []).append((int(row["step"]), v))
  return header, curves


def read_ours(run_dir):
  curves = {}
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue
      for name, keys in QUANTITIES:
        v = _value(row, keys)
        if v is not None:
          curves.setdefault(name, []).append((int(row["step"]), v))
  cfg = json.load(open(os.path.join(run_dir, "config.json")))
  finals = {}
  eval_dir = os.path.join(run_dir, "eval")
  last = f"_step{cfg['num_steps']}.json"
  for proto in ("iid", "z_shuffle"):
    path = os.path.join(eval_dir, proto + last)
    if os.path.exists(path):
      res = json.load(open(path))
      finals[proto] = {"score": res.get("score"), "returns": res.get(proto, {}).get("returns")}
  if "iid" in finals and "z_shuffle" in finals and finals["iid"]["returns"] is not None:
    # the z-shuffle control is paired with the iid episodes (same contexts, keys, episodes):
    # the drop per (seed, task), its mean and standard error over those units
    iid = np.asarray(finals["iid"]["returns"], np.float64)
    zs = np.asarray(finals["z_shuffle"]["returns"], np.float64)
    units = (iid - zs).reshape(iid.shape[0] * iid.shape[1], -1).mean(-1)
    finals["shuffle_drop"] = {"mean": float(units.mean()),
                              "se": float(units.std(ddof=1) / np.sqrt(units.size)),
                              "units": int(units.size)}
  return cfg, curves, finals


def summary_row(s) -> dict:
  """The final evaluation of one series: IID and z-shuffled return, the paired drop and its
  standard error, the IID return normalised by the dataset's random / expert anchors."""
  if "header" in s:  # official: each seed's last evaluation row (one episode per task)
    lasts = []
    for source in s["source"].split(","):
      last = None
      with open(source) as f:
        for line in f:
          row = json.loads(line)
          if "step" in row:
            last = row
      lasts.append(last)
    norm = (s["header"] or {}).get("normalisation") or {}
    iid = float(np.mean([r["eval/iid"] for r in lasts]))
    zs = float(np.mean([r["eval/z_shuffle"] for r in lasts]))
    # seeds are independent: the SE of the mean drop from each seed's SE over its tasks
    se = float(np.sqrt(sum(r["eval/shuffle_drop_se"] ** 2 for r in lasts)) / len(lasts))
    drop, step, seeds = iid - zs, min(r["step"] for r in lasts), len(lasts)
  else:
    fin = s["final_protocols"]
    norm = (fin.get("iid", {}).get("score") or {})
    iid = fin["iid"]["score"]["mean"]
    zs = fin["z_shuffle"]["score"]["mean"]
    drop, se = fin["shuffle_drop"]["mean"], fin["shuffle_drop"]["se"]
    step, seeds = s["config"]["num_steps"], s["config"]["num_seeds"]
    norm = {"normalised": fin["iid"]["score"].get("normalised")}
  row = {"series": s["label"], "updates": step, "seeds": seeds, "iid": round(iid, 1),
         "z_shuffle": round(zs, 1), "drop": round(drop, 1), "drop_se": round(se, 1)}
  if norm.get("normalised") is not None:
    row["iid_normalised"] = round(norm["normalised"], 1)
  elif norm.get("random") is not None:
    row["iid_normalised"] = round(100 * (iid - norm["random"]) / (norm["expert"] - norm["random"]),
                                  1)
  return row


def markdown(rows) -> str:
  head = "| series | updates | seeds | IID | normalised | z-shuffled | drop (SE) |"
  lines = [head, "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['series']} | {r['updates']} | {r['seeds']} | {r['iid']} | "
                 f"{r.get('iid_normalised', '')} | {r['z_shuffle']} | "
                 f"{r['drop']} ({r['drop_se']}) |")
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--official", action="append", default=[],
                 help="LABEL:path.jsonl[,path.jsonl of another seed...] (repeat)")
  p.add_argument("--ours", action="append", default=[], help="LABEL:run_dir (repeat)")
  p.add_argument("--out", required=True, help="output path without extension")
  p.add_argument("--title", default="")
  a = p.parse_args()
  series = []
  for spec in a.official:
    label, path = spec.split(":", 1)
    header, curves = read_official_seeds(path.split(","))
    series.append({"label": f"official {label}", "source": path, "header": header,
                   "curves": curves})
  for spec in a.ours:
    label, path = spec.split(":", 1)
    cfg, curves, finals = read_ours(path)
    series.append({"label": f"jcomrl {label}", "source": path, "config": cfg,
                   "curves": curves, "final_protocols": finals})
  rows = [summary_row(s) for s in series]
  print(markdown(rows))
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  from jcomrl.provenance import cpu_model

  cpu = cpu_model()
  out = {"title": a.title, "cpu": cpu, "machine": platform.machine(),
         "load_average_when_written": load, "summary": rows, "series": series}
  os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
  with open(a.out + ".json", "w") as f:
    json.dump(out, f, indent=1)
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib not installed: wrote the JSON only")
    return
  names = [n for n, _ in QUANTITIES if any(n in s["curves"] for s in series)]
  cols = 4
  rows = (len(names) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    for i, s in enumerate(series):
      pts = s["curves"].get(name)
      if not pts:
        continue
      steps = np.array([x for x, _ in pts])
      vals = [v for _, v in pts]
      width = max(len(v) for v in vals)
      arr = np.array([v + [np.nan] * (width - len(v)) for v in vals])
      for j in range(arr.shape[1]):
        ax.plot(steps, arr[:, j], color=f"C{i}", alpha=0.9 if j == 0 else 0.5,
                label=s["label"] if j == 0 else None, lw=1.2)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("updates", fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
  fig.suptitle(a.title, fontsize=10)
  fig.tight_layout(rect=(0, 0.06, 1, 0.96))
  fig.savefig(a.out + ".png", dpi=90)
  print(f"wrote {a.out}.json and {a.out}.png")


if __name__ == "__main__":
  main()
