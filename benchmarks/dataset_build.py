"""Wall time to build each env's full default dataset, and its behaviour expert/random returns.

Runs ``jcomrl.datagen.recipes.generate`` (the code ``make data`` runs) on the full data recipe
of every env in ``--envs`` (``experiments/configs/data.py:<env>``, UNICORN Table 7 sizes) and
records, per env: the wall time split into behaviour training and collection (+ anchors), the
dataset size, and the normalisation anchors (mean return of the random and the expert behaviour
snapshot over all 40 tasks). The goal set for dataset generation is all six MuJoCo datasets in under
30 minutes on one H100; on a 2-core CPU the full configs take days (see ``collect_throughput``'s
estimates), so run this on a GPU.

Builds are resumable: a build killed (e.g. by a per-command time limit) and started again with
the same ``--data_root`` reuses its saved behaviour snapshots and finished collection chunks;
the row then adds the earlier attempt's seconds (``attempts`` counts them).

  python -m benchmarks.dataset_build --envs=cheetah_vel,ant_dir      # on a GPU
  python -m benchmarks.dataset_build --envs=tiny_cheetah_vel         # CPU smoke run

Writes ``benchmarks/results/dataset_build_<device>.json`` and merges the anchors into
``benchmarks/results/behaviour_returns_<device>.json`` (budget "full data config").
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.collect_throughput import RESULTS, _device, _meta, _write
from jcomrl.datagen import recipes

MUJOCO = "cheetah_vel,cheetah_dir,ant_dir,hopper_param,walker_param"


def _load(path: str) -> dict:
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return {"results": []}


def build(variant: str, data_root: str, earlier_s: float, save, rebuild: bool = False) -> dict:
  """Builds (or resumes) one variant's dataset; returns its timing row.

  ``save(row)`` is called at every progress line with the row so far (``finished`` False), so a
  build killed mid-way leaves its seconds behind for the resumed attempt to add.
  """
  c = recipes.get_config(variant)
  c.out = os.path.join(data_root, variant)
  c.overwrite = rebuild
  beh = c.behaviour[c.behaviour.algo]
  t0 = time.perf_counter()
  row = {"env": variant, "finished": False, "behaviour_algo": c.behaviour.algo,
         "behaviour_steps": int(beh.num_timesteps), "behaviour_num_envs": int(beh.num_envs),
         "wall_s": earlier_s}
  marks = {}

  def progress(line: str) -> None:
    if "saved behaviour snapshots" in line or line.startswith("resuming: reusing"):
      marks["behaviour_done"] = time.perf_counter()
    row["wall_s"] = round(earlier_s + time.perf_counter() - t0, 1)
    save(row)
    print(f"[{variant}] {line}", flush=True)

  data, meta = recipes.generate(
      c, progress=lambda step, metrics: progress(f"behaviour step {step:,}"), message=progress)
  this = time.perf_counter() - t0
  behaviour_s = marks.get("behaviour_done", t0 + this) - t0
  norm = meta["normalisation"]
  row.update({
      "finished": True, "wall_s": round(earlier_s + this, 1), "this_attempt_s": round(this, 1),
      "behaviour_s_this_attempt": round(behaviour_s, 1),
      "collection_and_anchors_s_this_attempt": round(this - behaviour_s, 1),
      "snapshot_steps": meta["behaviour_snapshots"]["steps"],
      "snapshot_mean_return": [round(r, 3) for r in meta["behaviour_snapshots"]["mean_return"]],
      "num_tasks": data.num_tasks, "transitions_per_task": data.num_transitions,
      "random": round(norm["random"], 3), "expert": round(norm["expert"], 3)})
  return row


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--envs", default=MUJOCO, help="data config variants, comma-separated")
  ap.add_argument("--data_root", default="data/full", help="where the datasets are written")
  ap.add_argument("--rebuild", action="store_true",
                  help="overwrite datasets already built (default: skip them)")
  ap.add_argument("--results_dir", default=RESULTS)
  args = ap.parse_args(argv)
  kind, tag = _device()
  load0 = os.getloadavg()
  path = os.path.join(args.results_dir, f"dataset_build_{tag}.json")
  rows = {r["env"]: r for r in _load(path)["results"]}
  note = ("full default data configs built by jcomrl.datagen.recipes.generate (make data); "
          "wall_s sums every attempt of a resumed build (compile time included); attempts counts "
          "them")
  save_all = lambda: _write(path, {"meta": _meta(kind, note, load0),
                                   "results": list(rows.values())})
  for variant in args.envs.split(","):
    previous = rows.get(variant)
    if os.path.exists(os.path.join(args.data_root, variant)) and not args.rebuild:
      print(f"{variant}: {os.path.join(args.data_root, variant)} exists; skipped (--rebuild "
            "to build it again)", flush=True)
      continue
    resumed = previous is not None and not previous.get("finished", True)
    attempts = previous.get("attempts", 1) + 1 if resumed else 1

    def save(row, variant=variant, attempts=attempts):
      rows[variant] = {**row, "attempts": attempts}
      save_all()

    row = build(variant, args.data_root, previous["wall_s"] if resumed else 0.0, save,
                args.rebuild)
    save(row)
    print(f"{variant:<18} {row['wall_s']:8.0f} s  (this attempt: behaviour "
          f"{row['behaviour_s_this_attempt']:.0f} s)  random {row['random']:9.2f}  "
          f"expert {row['expert']:9.2f}", flush=True)
    ret_path = os.path.join(args.results_dir, f"behaviour_returns_{tag}.json")
    ret = _load(ret_path)
    kept = [r for r in ret["results"] if r["env"] != variant]
    kept.append({"env": variant, "budget": f"full data config '{variant}' "
                 f"({row['behaviour_algo']}, {row['behaviour_steps']:,} env steps)",
                 "behaviour_steps": row["snapshot_steps"][-1], "random": row["random"],
                 "expert": row["expert"], "build_wall_s": row["wall_s"]})
    _write(ret_path, {"meta": ret.get("meta") or _meta(kind, note, load0), "results": kept})


if __name__ == "__main__":
  main()
