"""The main job on the embedded small default (``make run``).

Collects a point-robot dataset (task-conditioned brax PPO behaviour snapshots, random ->
expert), trains FOCAL and the oracle agent on the 30 training tasks, evaluates both and a
uniform random policy on the 10 held-out tasks, prints a results table and writes plots.
Re-running reuses the dataset and resumes/reuses finished runs in ``--workdir``.
"""

import os
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import flags

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments import cli  # noqa: E402
from experiments import collect as collect_cli  # noqa: E402
from experiments.configs import data as data_config  # noqa: E402
from experiments.configs import focal as focal_config  # noqa: E402
from experiments.configs import oracle as oracle_config  # noqa: E402
from jcomrl import envs  # noqa: E402
from jcomrl import run as run_api  # noqa: E402
from jcomrl.data.dataset import DatasetError, load_dataset  # noqa: E402
from jcomrl.data.sampler import sample_context  # noqa: E402
from jcomrl.eval.rollout import random_policy_returns  # noqa: E402
from jcomrl.logging import read_metrics  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "directory for data, runs and plots")


def _dataset(workdir):
  path = os.path.join(workdir, "data")
  try:
    load_dataset(path, expect_env="point_robot")
    print(f"[data] reusing {path}")
  except DatasetError:
    c = data_config.get_config("point_robot")
    c.out, c.overwrite = path, True
    print("[data] training behaviour policies (brax PPO) and collecting point-robot data ...")
    collect_cli.generate(c, progress=lambda s: print("[data]", s))
  return path


def _plot_curves(workdir, runs, path):
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name in runs:
    rows = [r for r in read_metrics(os.path.join(workdir, name)) if "eval/iid_return" in r]
    if rows:
      ax.plot([r["step"] for r in rows], [np.mean(r["eval/iid_return"]) for r in rows], "o-",
              label=name)
  ax.set_xlabel("update step")
  ax.set_ylabel("test-task return (IID trajectory context)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_codes(workdir, path):
  cfg, env, data, meta, learner, state, _ = run_api.restore(os.path.join(workdir, "focal"))
  params = jax.tree.map(lambda x: x[0], state.params)
  rows = jnp.asarray(meta["split"]["test"])
  keys = jax.random.split(jax.random.key(0), 20)
  z = jnp.stack([learner.encode(params, sample_context(
      k, data.to_device(), rows, size=cfg["learner"]["context_size"], mode="transitions"),
      data.task_params[rows]) for k in keys])  # [20, T, Z]
  flat = np.asarray(z.reshape(-1, z.shape[-1]))
  flat = flat - flat.mean(0)
  _, _, vt = np.linalg.svd(flat, full_matrices=False)
  xy = flat @ vt[:2].T
  goals = np.asarray(data.task_params)[np.asarray(rows)]
  angle = np.tile(np.arctan2(goals[:, 1], goals[:, 0]), z.shape[0])
  fig, ax = plt.subplots(figsize=(4.5, 3.8))
  sc = ax.scatter(xy[:, 0], xy[:, 1], c=angle, cmap="viridis", s=10)
  fig.colorbar(sc, label="goal angle (rad)")
  ax.set_title("FOCAL task codes of held-out tasks (PCA)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  t0 = time.time()
  workdir = _WORKDIR.value
  data_path = _dataset(workdir)
  results = {}
  for name, mod in (("focal", focal_config), ("oracle", oracle_config)):
    cfg = cli.to_plain(mod.get_config("point_robot"))
    cfg["dataset"] = data_path
    print(f"[{name}] training {cfg['num_steps']} steps ...")
    results[name] = run_api.train(cfg, os.path.join(workdir, name),
                                  progress=lambda s, n=name: print(f"[{n}]", s),
                                  provenance=cli.run_provenance())["iid"]
  env = envs.make("point_robot")
  _, meta = load_dataset(data_path)
  test = jax.tree.map(lambda x: x[np.asarray(meta["split"]["test"])], env.all_benchmark_tasks())
  rand = float(np.mean(random_policy_returns(env, test, jax.random.key(7), 16)))
  norm = meta["normalisation"]
  scale = lambda r: 100 * (r - norm["random"]) / (norm["expert"] - norm["random"])

  print("\nPoint-robot, 10 held-out tasks, mean return (deterministic policy):")
  print(f"{'agent':<8} | {'IID: 1 trajectory':>18} | {'IID: 64 transitions':>20} | {'normalised':>10}")
  print("-" * 66)
  for name, res in results.items():
    a, b = res["iid"]["mean"], res["iid_transitions"]["mean"]
    print(f"{name:<8} | {a:>18.2f} | {b:>20.2f} | {scale(b):>10.1f}")
  print(f"{'random':<8} | {rand:>18.2f} | {rand:>20.2f} | {scale(rand):>10.1f}")
  focal = results["focal"]["iid_transitions"]["mean"]
  oracle = results["oracle"]["iid_transitions"]["mean"]
  gap = (oracle - focal) / max(oracle - rand, 1e-9)
  print(f"\nFOCAL is {100 * gap:.1f}% of the random->oracle gap below the oracle "
        f"({'within' if gap <= 0.2 else 'NOT within'} the 20% target); "
        f"behaviour snapshots: random {norm['random']:.2f}, expert {norm['expert']:.2f}")
  curves, codes = (os.path.join(workdir, "learning_curves.png"),
                   os.path.join(workdir, "focal_task_codes.png"))
  _plot_curves(workdir, results, curves)
  _plot_codes(workdir, codes)
  print(f"plots: {curves}\n       {codes}\ntotal time {time.time() - t0:.0f}s")


def run():
  cli.run(main, "experiments.run_default")


if __name__ == "__main__":
  run()
