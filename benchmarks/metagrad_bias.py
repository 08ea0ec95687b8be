"""Bias and variance of gradient, Hessian and meta-gradient estimators against exact values on
random tabular MDPs (jcomrl.metagrad; issue 33).

The MDPs are Tang et al.'s toy setting (robintyh1/neurips2021-meta-gradient-offpolicy-evaluation
873cce3 ``main.py:51-54``: 20 states, 5 actions, gamma 0.8, 20-step trajectories, Dirichlet
density 0.001; ``--mdps`` random instances, their ``independent_trials`` is 10). Every estimate
is computed ``--reps`` times independently, each from K fresh trajectories, and compared with the
exact value (``jax.grad`` through ``tabular.value``'s linear algebra; finite horizon 20, so a
sampled estimator without bias has none against it). Reported per estimator and setting, averaged
over the MDPs:

* ``bias``: ``|mean estimate - exact| / |exact|`` (Frobenius norms), and ``floor``: the part of
  it that sampling alone gives, ``sd / sqrt(reps)``; a bias well above its floor is real;
* ``sd``: the spread of one estimate, ``sqrt(mean |estimate - mean|^2) / |exact|``;
* ``acc``: the mean correlation of one estimate with the exact one (the angular accuracy of Tang
  et al.'s ``main.py:129-143`` and Theoretical-GMRL's ``corr``).

Tables:
1. ``derivatives``: gradient and Hessian of the value, each estimator over K trajectories, at
   Tang et al.'s target policy (``main.py:107-113``: greedy on a random action with probability
   0.8, else uniform), on-policy (their study samples from the uniform policy, off-policy; the
   meta-RL estimators below are on-policy).
2. ``meta_samples``: the meta-gradient of one inner step, ``d V(theta + lr d V(theta))``, from
   zero logits (Theoretical-GMRL ``tabular/maml/main.py:158``), the inner step estimated from K
   trajectories with each estimator, the outer value exact (GMRL's ``--outer_est exact``,
   isolating the inner loop), lr 3 (their ``run_comp_sample.sh``); K over ``--samples``.
3. ``meta_steps``: the same over 1-3 inner steps at K = 32 (their ``run_comp_step_num.sh``).

    .venv/bin/python -m benchmarks.metagrad_bias            # ~10 min on 2 CPU cores
    .venv/bin/python -m benchmarks.metagrad_bias --quick    # smoke run

Writes ``benchmarks/results/metagrad/metagrad_<device>.json``, ``metagrad.md`` (the tables) and
``metagrad.png`` (bias and spread against K and steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.metagrad import tabular as tb
from jcomrl.metagrad.estimators import ESTIMATORS

GAMMA, HORIZON = 0.8, 20  # Tang et al. main.py:52-53
LR = 3.0                  # Theoretical-GMRL tabular/maml/run_comp_sample.sh


def _stats(est: np.ndarray, exact: np.ndarray) -> dict:
  """``est [reps, ...]`` against ``exact [...]``: relative bias, its sampling floor, spread, and
  the mean correlation of single estimates with the exact value."""
  est = est.reshape(est.shape[0], -1).astype(np.float64)
  ex = exact.ravel().astype(np.float64)
  norm = np.linalg.norm(ex)
  mean = est.mean(0)
  sd = np.sqrt(np.mean(np.sum((est - mean) ** 2, axis=1))) / norm
  c_est = est - est.mean(1, keepdims=True)
  c_ex = ex - ex.mean()
  acc = (c_est @ c_ex) / (np.linalg.norm(c_est, axis=1) * np.linalg.norm(c_ex) + 1e-30)
  return {"bias": float(np.linalg.norm(mean - ex) / norm), "floor": float(sd / np.sqrt(len(est))),
          "sd": float(sd), "acc": float(np.mean(acc))}


def _baselines(theta, mdp, traj):
  table = tb.state_values(theta, mdp, GAMMA, HORIZON)
  return table[jnp.arange(HORIZON + 1), traj.states]


def derivative_estimates(name: str, k: int, reps: int):
  """``(mdp, theta, key) -> (grads [reps, S, A], hessians [reps, S, A, S, A])``."""
  est = ESTIMATORS[name]

  def one_rep(theta, mdp, traj):
    base = _baselines(theta, mdp, traj)

    def surrogate(q):
      return jnp.mean(jax.vmap(lambda lp, r, v: est(lp, r, GAMMA, v))(
          tb.log_probs(q, traj), traj.rewards, base))
    return jax.grad(surrogate)(theta), jax.hessian(surrogate)(theta)

  @jax.jit
  def run(mdp, theta, key):
    traj = tb.sample(key, theta, mdp, reps * k, HORIZON)
    traj = jax.tree.map(lambda x: x.reshape((reps, k) + x.shape[1:]), traj)
    return jax.lax.map(lambda t: one_rep(theta, mdp, t), traj)
  return run


def meta_estimates(name: str, k: int, steps: int, reps: int):
  """``(mdp, theta, key) -> meta-gradients [reps, S, A]`` (inner ``name`` on K trajectories,
  exact outer value)."""
  def one(theta, mdp, key):
    return jax.grad(lambda q: tb.sampled_meta_objective(
        q, key, mdp, GAMMA, LR, name, "exact", k, 1, steps=steps, horizon=HORIZON)[0])(theta)

  @jax.jit
  def run(mdp, theta, key):
    return jax.lax.map(lambda kk: one(theta, mdp, kk), jax.random.split(key, reps))
  return run


def _tang_target(key, num_states: int, num_actions: int) -> jnp.ndarray:
  """Tang et al.'s target policy logits (``main.py:107-113``, epsilon 0.8)."""
  greedy = jax.nn.one_hot(jax.random.randint(key, (num_states,), 0, num_actions), num_actions)
  return jnp.log(0.8 * greedy + 0.2 / num_actions)


def _mean_rows(rows: list[dict]) -> dict:
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run_tables(args) -> dict:
  names = list(ESTIMATORS)
  keys = jax.random.split(jax.random.key(args.seed), args.mdps)
  mdps = [tb.random_mdp(k) for k in keys]
  out = {"derivatives": {}, "meta_samples": {}, "meta_steps": {}}
  for name in names:
    for k in args.samples:
      g_rows, h_rows, m_rows = [], [], []
      deriv = derivative_estimates(name, k, args.reps)
      meta = meta_estimates(name, k, 1, args.reps)
      for i, mdp in enumerate(mdps):
        theta = _tang_target(jax.random.fold_in(keys[i], 1), 20, 5)
        g, h = deriv(mdp, theta, jax.random.fold_in(keys[i], 2 + k))
        g_rows.append(_stats(np.asarray(g), np.asarray(jax.grad(tb.value)(theta, mdp, GAMMA))))
        h_rows.append(_stats(np.asarray(h), np.asarray(jax.hessian(tb.value)(theta, mdp, GAMMA))))
        zero = jnp.zeros((20, 5))
        exact = jax.grad(tb.meta_value)(zero, mdp, GAMMA, LR, 1, HORIZON)
        m_rows.append(_stats(np.asarray(meta(mdp, zero, jax.random.fold_in(keys[i], 3 + k))),
                             np.asarray(exact)))
      out["derivatives"][f"{name}|{k}"] = {"gradient": _mean_rows(g_rows),
                                           "hessian": _mean_rows(h_rows)}
      out["meta_samples"][f"{name}|{k}"] = _mean_rows(m_rows)
      print(f"{name:13s} K={k:4d}  grad bias {out['derivatives'][f'{name}|{k}']['gradient']['bias']:.3f}"
            f"  hess bias {out['derivatives'][f'{name}|{k}']['hessian']['bias']:.3f}"
            f"  meta bias {out['meta_samples'][f'{name}|{k}']['bias']:.3f}", flush=True)
    for steps in args.steps:
      meta = meta_estimates(name, args.steps_samples, steps, args.reps)
      rows = []
      for i, mdp in enumerate(mdps):
        zero = jnp.zeros((20, 5))
        exact = jax.grad(tb.meta_value)(zero, mdp, GAMMA, LR, steps, HORIZON)
        rows.append(_stats(np.asarray(meta(mdp, zero, jax.random.fold_in(keys[i], 100 + steps))),
                           np.asarray(exact)))
      out["meta_steps"][f"{name}|{steps}"] = _mean_rows(rows)
      print(f"{name:13s} steps={steps}  meta bias {out['meta_steps'][f'{name}|{steps}']['bias']:.3f}",
            flush=True)
  return out


def _cell(s: dict) -> str:
  return f"{s['bias']:.3f} ({s['floor']:.3f}) / {s['sd']:.2f} / {s['acc']:.2f}"


def markdown(res: dict, args) -> str:
  names = list(ESTIMATORS)
  lines = ["Cells: bias (its sampling floor) / sd / acc, relative to the exact value's norm; "
           f"{args.mdps} MDPs x {args.reps} independent estimates each.", ""]
  for part, what in (("gradient", "Gradient of V"), ("hessian", "Hessian of V")):
    lines += [f"### {what} (Tang et al.'s target policy, on-policy)", "",
              "| estimator | " + " | ".join(f"K={k}" for k in args.samples) + " |",
              "|---|" + "---|" * len(args.samples)]
    for n in names:
      lines.append(f"| {n} | " + " | ".join(_cell(res["derivatives"][f"{n}|{k}"][part])
                                           for k in args.samples) + " |")
    lines.append("")
  lines += [f"### Meta-gradient, one inner step (lr {LR}), exact outer value", "",
            "| inner estimator | " + " | ".join(f"K={k}" for k in args.samples) + " |",
            "|---|" + "---|" * len(args.samples)]
  for n in names:
    lines.append(f"| {n} | " + " | ".join(_cell(res["meta_samples"][f"{n}|{k}"])
                                         for k in args.samples) + " |")
  lines += ["", f"### Meta-gradient against inner steps (K={args.steps_samples}, lr {LR})", "",
            "| inner estimator | " + " | ".join(f"{s} step(s)" for s in args.steps) + " |",
            "|---|" + "---|" * len(args.steps)]
  for n in names:
    lines.append(f"| {n} | " + " | ".join(_cell(res["meta_steps"][f"{n}|{s}"])
                                         for s in args.steps) + " |")
  return "\n".join(lines) + "\n"


def plot(res: dict, args, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(1, 4, figsize=(18, 4))
  for n in ESTIMATORS:
    for j, part in enumerate(("gradient", "hessian")):
      ax[j].loglog(args.samples, [res["derivatives"][f"{n}|{k}"][part]["bias"]
                                  for k in args.samples], "o-", label=n)
    ax[2].loglog(args.samples, [res["meta_samples"][f"{n}|{k}"]["bias"] for k in args.samples],
                 "o-", label=n)
    ax[3].semilogy(args.steps, [res["meta_steps"][f"{n}|{s}"]["bias"] for s in args.steps],
                   "o-", label=n)
  titles = ("gradient of V: bias vs K", "Hessian of V: bias vs K",
            "meta-gradient (1 step): bias vs K", f"meta-gradient: bias vs steps (K={args.steps_samples})")
  for a, t in zip(ax, titles):
    a.set_title(t, fontsize=10)
    a.set_xlabel("inner steps" if "steps" in t and "vs steps" in t else "trajectories K")
    a.set_ylabel("relative bias")
  ax[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--mdps", type=int, default=5)
  p.add_argument("--reps", type=int, default=200)
  p.add_argument("--samples", type=int, nargs="+", default=[4, 16, 64, 256])
  p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3])
  p.add_argument("--steps_samples", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quick", action="store_true", help="2 MDPs, 20 reps, K in 4 16, 1-2 steps")
  p.add_argument("--out_dir", default=os.path.join(os.path.dirname(__file__), "results",
                                                   "metagrad"))
  args = p.parse_args()
  if args.quick:
    args.mdps, args.reps, args.samples, args.steps = 2, 20, [4, 16], [1, 2]
  load, t0 = os.getloadavg(), time.time()
  res = run_tables(args)
  dev = jax.devices()[0]
  record = {"results": res, "args": vars(args), "wall_s": round(time.time() - t0, 1),
            "load_avg_start": load, "load_avg_end": os.getloadavg(),
            "device": f"{dev.device_kind} ({dev.platform})", "cpu": platform.processor(),
            "jax": jax.__version__}
  try:
    from jcomrl.provenance import cpu_model, source_commit
    record["cpu"], record["jcomrl_commit"] = cpu_model(), source_commit()
  except Exception:  # provenance is best effort in a benchmark
    pass
  os.makedirs(args.out_dir, exist_ok=True)
  with open(os.path.join(args.out_dir, f"metagrad_{dev.platform}.json"), "w") as f:
    json.dump(record, f, indent=1)
  md = markdown(res, args)
  with open(os.path.join(args.out_dir, "metagrad.md"), "w") as f:
    f.write(md)
  plot(res, args, os.path.join(args.out_dir, "metagrad.png"))
  print(md)
  print(f"wall {record['wall_s']} s, load {load}")


if __name__ == "__main__":
  main()
