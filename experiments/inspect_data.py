"""Dataset report: per-task episode returns of every behaviour checkpoint, and a plot.

  python -m experiments.inspect_data data/point_robot_mixed [--out=returns.png]

Reads the stored dataset (``checkpoint_id``, ``episode_id``, ``reward``, ``terminal``,
``timeout``), so it shows the quality mix a learner will actually see. Only complete episodes
count (ended by termination or by the time limit; see ``jcomrl.data.dataset.episode_returns``).
Prints a summary per checkpoint (mean over tasks, worst and best task, episodes) and a per-task
table, and writes a PNG with the return against the checkpoint's training step, one line per task
(held-out tasks dashed), into the dataset directory unless ``--out`` is given.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from experiments import cli
from jcomrl import atomic
from jcomrl.data.dataset import episode_returns, load_dataset

PLOT_NAME = "returns_by_checkpoint.png"

_OUT = flags.DEFINE_string("out", None, f"plot path (default: <dataset dir>/{PLOT_NAME})")
_VERIFY = flags.DEFINE_bool("verify_checksums", True, "verify array checksums while loading")


def return_table(path: str, verify_checksums: bool = True) -> dict:
  """Per-task, per-checkpoint episode-return statistics of the dataset at ``path``.

  Returns:
    ``{"checkpoints": [C] ids, "steps": [C] training steps (or ids when unknown),
    "mean", "std": [T, C] (nan where a task has no complete episode of a checkpoint),
    "count": [T, C] episodes, "split": meta split, "meta": meta}``.
  """
  data, meta = load_dataset(path, verify_checksums=verify_checksums)
  t = data.transitions
  per_task = episode_returns(t.reward, t.terminal, t.timeout, data.episode_id,
                             data.checkpoint_id, data.segment_length)
  ckpts = np.unique(np.concatenate([c for c, _ in per_task]))
  mean = np.full((data.num_tasks, ckpts.size), np.nan)
  std = np.full_like(mean, np.nan)
  count = np.zeros(mean.shape, np.int64)
  for i, (c, r) in enumerate(per_task):
    for j, k in enumerate(ckpts):
      sel = r[c == k]
      count[i, j] = sel.size
      if sel.size:
        mean[i, j], std[i, j] = sel.mean(), sel.std()
  all_steps = meta.get("behaviour_snapshots", {}).get("steps")
  steps = [all_steps[k] if all_steps and k < len(all_steps) else int(k) for k in ckpts]
  return {"checkpoints": ckpts.tolist(), "steps": steps, "mean": mean, "std": std,
          "count": count, "split": meta["split"], "meta": meta}


def format_report(path: str, table: dict) -> str:
  """The printed report: a summary per checkpoint, then a per-task table."""
  meta, mean = table["meta"], table["mean"]
  test = set(table["split"]["test"])
  algo = meta.get("creation", {}).get("behaviour", {}).get("algo", "?")
  lines = [(f"dataset {path}: env {meta['env']}, quality {meta.get('quality', '?')}, "
            f"{meta['num_tasks']} tasks x {meta['transitions_per_task']} transitions, "
            f"behaviour {algo}")]
  if "normalisation" in meta:
    lines.append(f"normalisation anchors: random {meta['normalisation']['random']:.2f}, "
                 f"expert {meta['normalisation']['expert']:.2f}")
  lines.append("")
  lines.append(f"{'ckpt':>4} {'step':>11} {'mean':>9} {'std(task)':>9} {'worst':>9} "
               f"{'best':>9} {'episodes':>9}")
  for j, (k, s) in enumerate(zip(table["checkpoints"], table["steps"])):
    col = mean[:, j]
    lines.append(f"{k:>4} {s:>11,} {np.nanmean(col):>9.2f} {np.nanstd(col):>9.2f} "
                 f"{np.nanmin(col):>9.2f} {np.nanmax(col):>9.2f} {table['count'][:, j].sum():>9}")
  lines.append("")
  lines.append("mean episode return per task (rows; * = held-out test task) and checkpoint (cols)")
  lines.append("task " + "".join(f"{k:>9}" for k in table["checkpoints"]))
  for i in range(mean.shape[0]):
    mark = "*" if i in test else " "
    lines.append(f"{i:>3}{mark} " + "".join(f"{v:>9.2f}" for v in mean[i]))
  return "\n".join(lines)


def plot(table: dict, out: str, title: str = "") -> str:
  """Writes the return-vs-checkpoint plot (one line per task) atomically to ``out``."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  mean, steps = table["mean"], np.asarray(table["steps"])
  test = set(table["split"]["test"])
  cmap = plt.get_cmap("viridis")
  fig, ax = plt.subplots(figsize=(6, 4))
  n = mean.shape[0]
  for i in range(n):
    ax.plot(steps, mean[i], "--" if i in test else "-", marker="o", ms=2.5, lw=1.0,
            color=cmap(i / max(n - 1, 1)), alpha=0.8)
  ax.plot(steps, np.nanmean(mean, axis=0), "k-", lw=2.5, label="mean over tasks")
  ax.set_xlabel("behaviour training step of the checkpoint")
  ax.set_ylabel("episode return in the dataset")
  ax.set_title(title or "return per checkpoint, one line per task (test tasks dashed)",
               fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  out = os.path.abspath(out)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  atomic.save_figure(fig, out, dpi=120)
  plt.close(fig)
  return out


def inspect(path: str, out: str | None = None, verify_checksums: bool = True,
            printer=print) -> dict:
  """Prints the report of the dataset at ``path`` and writes its plot; returns the table."""
  table = return_table(path, verify_checksums)
  printer(format_report(path, table))
  meta = table["meta"]
  title = f"{meta['env']} ({meta.get('quality', '?')}): return per checkpoint, one line per task"
  table["plot"] = plot(table, out or os.path.join(path, PLOT_NAME), title)
  printer(f"\nplot written to {table['plot']}")
  return table


def main(argv):
  if len(argv) != 2:
    raise cli.UsageError("expected one dataset directory: python -m experiments.inspect_data "
                         "<dataset dir> [--out=x.png]")
  cli.require_optional("matplotlib", "experiments.inspect_data (it writes a plot)")
  inspect(argv[1], _OUT.value, _VERIFY.value)


def run():
  cli.run(main, "experiments.inspect_data")


if __name__ == "__main__":
  run()
