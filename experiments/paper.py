"""One results table per env, UNICORN Table-2 layout: ``python -m experiments.paper --env=cheetah_vel
--profile=cpu`` (``make paper ENV=cheetah_vel PROFILE=cpu``).

Steps, each resumable (kill it and run the same command again):

1. the dataset: ``data/<env>@cpu`` (``experiments/configs/data.py:<env>@cpu``, per-task SAC
   agents) or, with ``--profile=paper``, ``data/<env>@paper`` (the paper-scale variant with per-task
   SAC agents); reused when it exists, else generated (``experiments.collect``, resumable);
2. the seven presets x ``--seeds`` seeds (``experiments.sweep``: seeds vmapped in one process per
   preset, finished presets skipped, a killed one resumed from its last checkpoint), each
   evaluated with the protocols ``iid``, ``ood`` (UNICORN's behaviour-shift protocol),
   ``z_shuffle`` (the learning control) and ``diagnostics`` (task-code plots);
3. the table (``--out``, default ``benchmarks/results/paper_<profile>/<env>``): ``table.md`` /
   ``table.json`` with raw returns and normalised scores (mean ± std over seeds) for IID and OOD,
   the z-shuffle control and its drop, UNICORN Table 2's numbers beside ours, the dataset's
   random/expert behaviour returns per task, and every step's wall time; ``curves_<env>.png``
   (IID return during training) and ``codes_<algo>.png`` (PCA of held-out task codes).

Wall times come from ``<runs_root>/<env>/paper_log.jsonl`` (dataset) and ``sweep_log.jsonl``
(presets); a step reused from an earlier call keeps the time it took then.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from absl import flags

from experiments import cli

# The default rows (UNICORN Table 2's context methods and the oracle); --algos takes any preset.
PRESETS = ("unicorn_ss", "unicorn_sup", "csro", "corro", "focal", "supervised", "oracle")
PROTOCOLS = ("iid", "ood", "z_shuffle", "diagnostics")
PROFILES = ("cpu", "paper")
# Behaviour-data recipes: "per_task" = one SAC agent per task, snapshots rolled out
# (``data.py:<env>@cpu`` / ``<env>``); "fast" = one shared task-conditioned SAC agent, its whole
# replay buffer as the data (``data.py:<env>@fast``, jcomrl.datagen.shared_sac); "official" = the
# papers' recipe, one SAC agent per task at CORRO's data-collection settings and its whole
# replay buffer (``data.py:<env>@official``, OFFICIAL_RECIPE_PROVENANCE).
RECIPES = ("per_task", "fast", "official")
# MACAW is a learner of its own (jcomrl.algos.macaw), not a context preset; --algos takes it too.
EXTRA_ALGOS = ("macaw",)
# UNICORN Table 2 (the UNICORN paper, NeurIPS 2024; mean ± std over 6 seeds, 20 test tasks),
# MACAW and Prompt-DT included; the DT variants of the context methods from its Table 4 (HC-Dir
# and Hopper only), BOReL from Table 5 (label-free Ant-Dir).
UNICORN_TABLE2 = {
    "cheetah_vel": {"unicorn_ss": (-22, -94), "unicorn_sup": (-25, -91), "csro": (-28, -102),
                    "corro": (-37, -112), "focal": (-22, -97), "supervised": (-24, -104),
                    "macaw": (-56, -188), "prompt_dt": (-118, -249)},
    "cheetah_dir": {"unicorn_ss": (1307, 1296), "unicorn_sup": (1296, 1130),
                    "csro": (1180, 458), "corro": (704, 245), "focal": (1186, 861),
                    "supervised": (962, 782), "macaw": (1155, 450), "prompt_dt": (1176, -25),
                    "unicorn_ss_dt": (1233, 1186), "unicorn_sup_dt": (1227, 1065),
                    "focal_dt": (1209, 652)},
    "ant_dir": {"unicorn_ss": (267, 236), "unicorn_sup": (250, 239), "csro": (276, 233),
                "corro": (148, 120), "focal": (217, 173), "supervised": (238, 202),
                "macaw": (26, 0), "prompt_dt": (1, 0), "borel": (206, 187)},
    "hopper_param": {"unicorn_ss": (316, 304), "unicorn_sup": (312, 302), "csro": (310, 301),
                     "corro": (283, 272), "focal": (302, 297), "supervised": (306, 294),
                     "macaw": (218, 205), "prompt_dt": (234, 202), "unicorn_ss_dt": (304, 291),
                     "unicorn_sup_dt": (308, 297), "focal_dt": (293, 284)},
    "walker_param": {"unicorn_ss": (419, 407), "unicorn_sup": (322, 312), "csro": (310, 279),
                     "corro": (277, 213), "focal": (308, 286), "supervised": (256, 210),
                     "macaw": (141, 130), "prompt_dt": (185, 156)},
}


def dataset_for(env: str, profile: str, recipe: str = "per_task") -> tuple[str, str]:
  """``(dataset path, experiments/configs/data.py variant)`` of a profile and recipe."""
  if recipe != "per_task":
    return f"data/{env}@{recipe}", f"{env}@{recipe}"
  return (f"data/{env}@cpu", f"{env}@cpu") if profile == "cpu" else (f"data/{env}@paper", env)


def data_overrides(profile: str, recipe: str = "per_task") -> list[str]:
  """Config overrides of the dataset command: the paper profile takes the paper-scale variant
  (UNICORN Table 7 sizes) with the papers' per-task SAC agents (1e6 env steps per task) instead
  of that variant's default task-conditioned PPO."""
  return ([] if profile == "cpu" or recipe != "per_task"
          else ["--config.behaviour.algo=sac_per_task"])


def default_paths(env: str, profile: str, recipe: str) -> tuple[str, str]:
  """``(runs root, table directory)`` defaults; another recipe than per_task adds its name."""
  tag = "" if recipe == "per_task" else f"_{recipe}"
  return (f"runs/paper_{profile}{tag}",
          os.path.join("benchmarks", "results", f"paper_{profile}", f"{env}{tag}"))


def variant_for(env: str, profile: str) -> str:
  return f"{env}@cpu" if profile == "cpu" else env


def _log(path: str, row: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def _read_log(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def ensure_dataset(path: str, data_variant: str, log_path: str,
                   overrides: tuple[str, ...] = ()) -> None:
  """Generates the dataset with ``experiments.collect`` unless it exists; logs the wall time."""
  from experiments.sweep import config_file
  from jcomrl.data.dataset import DatasetError, read_meta

  try:
    read_meta(path)
    print(f"[paper] dataset {path}: reused", flush=True)
    return
  except DatasetError:
    pass
  cmd = [sys.executable, "-m", "experiments.collect",
         f"--config={config_file('data')}:{data_variant}", f"--config.out={path}",
         *overrides]
  print(f"[paper] dataset {path}: {' '.join(cmd)}", flush=True)
  t0 = time.time()
  if subprocess.run(cmd, check=False).returncode:
    raise cli.RunFailed(f"generating the dataset {path} failed (see the error above); run the "
                        "same command again to resume it")
  _log(log_path, {"step": "dataset", "path": path, "wall_s": round(time.time() - t0, 1),
                  "time": time.strftime("%Y-%m-%d %H:%M:%S"), "load_avg": os.getloadavg(),
                  "jcomrl_commit": cli.source_commit(), "cpu": cli.cpu_model()})


def run_sweep(env: str, profile: str, seeds: int, runs_root: str, algos: list[str],
              extra: list[str], recipe: str = "per_task") -> None:
  path, data_variant = dataset_for(env, profile, recipe)
  cmd = [sys.executable, "-m", "experiments.sweep", f"--algos={','.join(algos)}",
         f"--envs={env}", f"--variant={variant_for(env, profile)}", f"--dataset={path}",
         f"--data_variant={data_variant}", f"--seeds={seeds}", f"--runs_root={runs_root}",
         f"--protocols={','.join(PROTOCOLS)}"] + [f"--set={s}" for s in extra]
  print(f"[paper] {' '.join(cmd)}", flush=True)
  if subprocess.run(cmd, check=False).returncode:
    raise cli.RunFailed("some presets failed (see above); run the same command again to resume")


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------


def _ms(v) -> str:
  from experiments.table import fmt

  if v is None or len(v) == 0:
    return "–"
  return "{} ± {}".format(*fmt(float(np.mean(v)), float(np.std(v))))


def gather(runs_root: str, env: str, algos: list[str]) -> dict:
  """Per preset: per-seed IID/OOD/z-shuffle returns and normalised scores, the drop, times."""
  from experiments.sweep import run_dir
  from experiments.table import latest_eval, seed_values

  sweep_log = _read_log(os.path.join(runs_root, "sweep_log.jsonl"))
  rows = {}
  for algo in algos:
    wd = run_dir(runs_root, env, algo)
    if not os.path.exists(os.path.join(wd, "config.json")):
      continue
    res = {p: latest_eval(wd, p) for p in ("iid", "ood", "z_shuffle")}  # each file read once
    r = {p: seed_values(v, "return") if v else None for p, v in res.items()}
    n = {p: seed_values(v, "normalised") if v else None for p, v in res.items()}
    drop, paired = None, None
    if r["iid"] and r["z_shuffle"]:
      drop = (np.asarray(r["iid"]) - np.asarray(r["z_shuffle"])).tolist()
      paired = _paired(res["iid"], res["z_shuffle"])
    times = [x["wall_s"] for x in sweep_log if x.get("env") == env and x.get("algo") == algo
             and x.get("returncode") == 0]
    diag = latest_eval(wd, "diagnostics") or {}
    rows[algo] = {"return": r, "normalised": n, "drop": drop, "paired_drop": paired,
                  "mi": diag.get("seed_mi_lower_bound"), "probe_r2": diag.get("seed_probe_r2"),
                  "mi_max": diag.get("mi_max"), "workdir": wd,
                  "wall_s": float(sum(times)) if times else None}
  return rows


def paired_drop(workdir: str) -> dict | None:
  """IID minus z-shuffled return paired per (seed, test task, episode): the two protocols share
  contexts and rollout keys, so each pair differs only in the code. Mean, standard error and
  ``significant`` (mean > 2 standard errors)."""
  from experiments.table import latest_eval

  return _paired(latest_eval(workdir, "iid"), latest_eval(workdir, "z_shuffle"))


def _paired(a: dict | None, b: dict | None) -> dict | None:
  if not a or not b or "returns" not in a.get("iid", {}) or "returns" not in b.get("z_shuffle",
                                                                                     {}):
    return None
  d = np.asarray(a["iid"]["returns"], np.float64) - np.asarray(b["z_shuffle"]["returns"],
                                                               np.float64)
  if d.size < 2:
    return None
  se = float(d.std(ddof=1) / np.sqrt(d.size))
  return {"mean": float(d.mean()), "se": se, "n": int(d.size),
          "significant": bool(d.mean() > 2 * se)}


def behaviour_report(meta: dict) -> dict:
  """Random (first), best and last behaviour snapshot return per task, from the dataset; the
  expert anchor is the best snapshot (the highest mean over all tasks; ``pipeline.anchors``)."""
  snaps = meta.get("behaviour_snapshots", {})
  per_task = snaps.get("task_returns")
  norm = meta.get("normalisation") or {}
  creation = meta.get("creation", {})
  out = {"algo": snaps.get("algo"), "normalisation": norm,
         "anchor_policy": snaps.get("policy", "stochastic"), "quality": meta.get("quality"),
         "recipe": creation.get("behaviour"), "behaviour_seconds":
         creation.get("behaviour_seconds"), "data_commit": creation.get("jcomrl_commit"),
         "transitions_per_task": meta.get("transitions_per_task")}
  if per_task:
    per_task = np.asarray(per_task)
    best_k = int(norm.get("best_snapshot", int(np.argmax(per_task.mean(axis=1)))))
    rnd, exp, last = per_task[0], per_task[best_k], per_task[-1]
    out.update(random=rnd.tolist(), expert=exp.tolist(), last=last.tolist(),
               best_snapshot=best_k,
               tasks_expert_better=int(np.sum(exp > rnd)), num_tasks=int(len(rnd)),
               worse_tasks=[int(i) for i in np.flatnonzero(exp <= rnd)],
               snapshot_means=snaps.get("mean_return"),
               snapshot_means_other=next((v for k, v in snaps.items()
                                          if k.startswith("mean_return_")), None))
  return out


def build_markdown(env: str, profile: str, rows: dict, beh: dict, times: dict,
                   seeds: int) -> str:
  from experiments.table import ALGO_NAMES, ENV_NAMES

  name = ENV_NAMES.get(env, env)
  ref = UNICORN_TABLE2.get(env, {})
  norm = beh.get("normalisation") or {}
  md = [f"# {name}, profile `{profile}`: {seeds} seeds, held-out tasks", "",
        f"Raw return and normalised score (0 = random behaviour snapshot "
        f"{norm.get('random', float('nan')):.1f}, 100 = expert snapshot "
        f"{norm.get('expert', float('nan')):.1f}), mean ± std over seeds. IID: one stored "
        "trajectory of the test task as context; OOD: UNICORN's behaviour-shift contexts; "
        "z-shuffled: the IID episodes with every test task given another test task's code; "
        "drop = IID − z-shuffled (mean ± std over seeds; in brackets mean ± standard error over "
        "the paired seed × task × episode differences, which share contexts and keys). "
        "UNICORN Table 2 (6 seeds, full scale) beside ours (DT variants: its Table 4; "
        "BOReL: Table 5).",
        "Task code: I(z; task) is the diagnostics protocol's classifier lower bound on held-out "
        "tasks (nats, at most log #tasks), R² the linear probe from z to the task parameters.",
        "", "| Algorithm | IID | OOD | IID norm. | OOD norm. | IID z-shuffled | drop | "
        "I(z; task) | probe R² | UNICORN IID / OOD | train+eval wall |", "|" + "---|" * 11]
  best = {}
  for p in ("iid", "ood"):
    means = [np.mean(r["return"][p]) for r in rows.values() if r["return"][p]]
    best[p] = max(means) if means else None
  for algo, r in rows.items():
    cells = []
    for p in ("iid", "ood"):
      text = _ms(r["return"][p])
      if r["return"][p] and algo != "oracle" and best[p] is not None and np.isclose(
          np.mean(r["return"][p]), max(np.mean(x["return"][p]) for a, x in rows.items()
                                       if x["return"][p] and a != "oracle")):
        text = f"**{text}**"
      cells.append(text)
    pd = r.get("paired_drop")
    drop = _ms(r["drop"])
    if pd:
      drop += " ({}{:.1f} ± {:.1f} paired{})".format("+" if pd["mean"] >= 0 else "", pd["mean"],
                                                    pd["se"], "" if pd["significant"] else
                                                    ", not > 2 SE")
    cells += [_ms(r["normalised"]["iid"]), _ms(r["normalised"]["ood"]),
              _ms(r["return"]["z_shuffle"]), drop]
    cells += [_ms(r.get("mi")), _ms(r.get("probe_r2"))]
    cells.append("{} / {}".format(*ref[algo]) if algo in ref else "–")
    cells.append(f"{r['wall_s'] / 60:.1f} min" if r["wall_s"] else "–")
    md.append(f"| {ALGO_NAMES.get(algo, algo)} | " + " | ".join(cells) + " |")
  md += ["", "Bold: best IID / OOD mean among the context methods (the oracle reads the true task).",
         "", "## Behaviour data", ""]
  if "random" in beh:
    md.append(f"{beh['algo']} agents ({beh.get('quality')} data, "
              f"{beh.get('transitions_per_task')} transitions per task; anchors measured with "
              f"the snapshots acting {beh.get('anchor_policy')}ally): the expert (best, "
              f"snapshot {beh['best_snapshot']}) beats the random (first) one in "
              f"{beh['tasks_expert_better']}/{beh['num_tasks']} tasks"
              + (f" (not in tasks {beh['worse_tasks']})" if beh["worse_tasks"] else "") + ".")
    if beh.get("behaviour_seconds"):
      md.append(f"Behaviour training took {beh['behaviour_seconds'] / 60:.1f} min; recipe "
                f"`{json.dumps(beh.get('recipe'))}`; data built at commit "
                f"{beh.get('data_commit')}.")
    md += ["", "| task | " + " | ".join(str(i) for i in range(beh["num_tasks"])) + " |",
           "|" + "---|" * (beh["num_tasks"] + 1),
           "| random | " + " | ".join(f"{x:.0f}" for x in beh["random"]) + " |",
           "| expert (best) | " + " | ".join(f"{x:.0f}" for x in beh["expert"]) + " |",
           "| last | " + " | ".join(f"{x:.0f}" for x in beh["last"]) + " |"]
    if beh.get("snapshot_means"):
      md += ["", f"Mean return per snapshot (all tasks, {beh.get('anchor_policy')}): "
             + ", ".join(f"{x:.1f}" for x in beh["snapshot_means"])]
    if beh.get("snapshot_means_other"):
      md += ["", "The same, the other way of acting: "
             + ", ".join(f"{x:.1f}" for x in beh["snapshot_means_other"])]
  md += ["", "## Wall time (2-core CPU unless stated)", ""]
  for k, v in times.items():
    md.append(f"- {k}: {v}")
  return "\n".join(md) + "\n"


def make_table(env: str, profile: str, runs_root: str, out: str, algos: list[str],
               seeds: int, recipe: str = "per_task") -> dict:
  from experiments.table import _write, find_runs, plot_curves
  from jcomrl.data.dataset import read_meta

  path, _ = dataset_for(env, profile, recipe)
  meta = read_meta(path)
  rows = gather(runs_root, env, algos)
  if not rows:
    raise cli.UsageError(f"no finished runs of {env} under {runs_root}")
  beh = behaviour_report(meta)
  log = _read_log(os.path.join(runs_root, env, "paper_log.jsonl"))
  data_s = sum(x["wall_s"] for x in log if x.get("step") == "dataset")
  train_s = sum(r["wall_s"] or 0.0 for r in rows.values())
  times = {"dataset (behaviour agents + collection + anchors)":
           f"{data_s / 60:.1f} min" if data_s else "reused (no time logged)",
           "presets (train + evaluate, all seeds)": f"{train_s / 60:.1f} min",
           "total": f"{(data_s + train_s) / 60:.1f} min"}
  os.makedirs(out, exist_ok=True)
  _write(os.path.join(out, "table.md"), build_markdown(env, profile, rows, beh, times, seeds))
  _write(os.path.join(out, "table.json"), json.dumps(
      {"env": env, "profile": profile, "recipe": recipe, "seeds": seeds, "dataset": path,
       "rows": rows, "jcomrl_commit_at_table": cli.source_commit(), "cpu": cli.cpu_model(),
       "dataset_log": log,
       "behaviour": beh, "unicorn_table2": UNICORN_TABLE2.get(env), "times": times,
       "dataset_wall_s": data_s, "presets_wall_s": train_s,
       "load_avg_at_table": os.getloadavg()}, indent=1))
  runs = {}
  for wd in find_runs(os.path.join(runs_root, env)):
    runs.setdefault((env, os.path.basename(wd)), []).append(wd)
  plot_curves(runs, env, os.path.join(out, f"curves_{env}.png"))
  for algo, r in rows.items():
    pngs = sorted((f for f in os.listdir(os.path.join(r["workdir"], "eval"))
                   if f.startswith("codes_step") and f.endswith(".png")),
                  key=lambda f: int(f[len("codes_step"):].split(".")[0].split("_")[0]))
    if pngs:
      shutil.copyfile(os.path.join(r["workdir"], "eval", pngs[-1]),
                      os.path.join(out, f"codes_{algo}.png"))
  return {"rows": rows, "behaviour": beh, "times": times}


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("env", "cheetah_vel", "MuJoCo env of the table")
  flags.DEFINE_enum("profile", "cpu", list(PROFILES),
                    "cpu: the reduced CPU profile; paper: full scale (a GPU)")
  flags.DEFINE_integer("seeds", 3, "seeds per preset (vmapped)", lower_bound=1)
  flags.DEFINE_string("algos", ",".join(PRESETS), "presets, comma separated")
  flags.DEFINE_string("runs_root", None, "run directories (default runs/paper_<profile>)")
  flags.DEFINE_string("out", None, "table directory (default benchmarks/results/paper_<profile>/"
                      "<env>)")
  flags.DEFINE_multi_string("set", [], "extra config override key=value for every preset")
  flags.DEFINE_boolean("table_only", False, "only rebuild the table from finished runs")
  flags.DEFINE_enum("recipe", "per_task", list(RECIPES),
                    "behaviour data: per_task (one SAC agent per task, snapshot rollouts), "
                    "fast (one shared SAC agent, its replay buffer; data.py:<env>@fast) or "
                    "official (the papers' per-task recipe, its replay buffer; "
                    "data.py:<env>@official)")


def main(argv):
  del argv
  from jcomrl.algos import presets

  env, profile = FLAGS.env, FLAGS.profile
  if env not in presets.MUJOCO_ENVS:
    raise cli.UsageError(f"--env={env} is not a MuJoCo env of the suite; expected one of "
                         f"{', '.join(presets.MUJOCO_ENVS)}")
  algos = [a for a in FLAGS.algos.replace(",", " ").split() if a]
  known = presets.ALL_PRESETS + EXTRA_ALGOS
  bad = [a for a in algos if a not in known]
  if bad:
    raise cli.UsageError(f"unknown preset(s) {bad} in --algos; expected some of "
                         f"{', '.join(known)}")
  recipe = FLAGS.recipe
  runs_default, out_default = default_paths(env, profile, recipe)
  runs_root = FLAGS.runs_root or runs_default
  out = FLAGS.out or out_default
  if not FLAGS.table_only:
    path, data_variant = dataset_for(env, profile, recipe)
    ensure_dataset(path, data_variant, os.path.join(runs_root, env, "paper_log.jsonl"),
                   tuple(data_overrides(profile, recipe)))
    run_sweep(env, profile, FLAGS.seeds, runs_root, algos, FLAGS.set, recipe)
  res = make_table(env, profile, runs_root, out, algos, FLAGS.seeds, recipe)
  with open(os.path.join(out, "table.md")) as f:
    print(f.read())
  print(f"[paper] wrote {out}/table.md, table.json, curves_{env}.png and "
        f"{sum(1 for a in res['rows'] if os.path.exists(os.path.join(out, f'codes_{a}.png')))} "
        "task-code plot(s)")


def run():
  cli.run(main, "experiments.paper", define=define_flags)


if __name__ == "__main__":
  run()
