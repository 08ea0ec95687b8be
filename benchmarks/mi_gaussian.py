"""MI estimators on the correlated-Gaussian staircase (Poole et al. 2019; Song & Ermon 2020).

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps, with rho chosen so that the true MI
I = -(d/2) log(1 - rho^2) steps through 2, 4, 6, 8, 10 nats, ``--steps_per_level`` steps each.
One critic per lower bound (plus a learned log-baseline for TUBA and I_alpha) and one Gaussian
q(y|x) per upper bound (trained by maximum likelihood, as in CLUB) are trained *together*: every
estimator's parameters are stacked on a leading axis, the networks of all estimators are evaluated
by one ``vmap`` over that axis, each estimator's bound is then taken on its own score matrix, and
one vmapped Adam update follows; that step is the body of one ``lax.scan`` over steps inside one
``jit`` (``--mode loop`` instead unrolls a static loop over estimators in the same scan body).
All estimators see the same batches. The host loop only calls that program once per MI level.

Critic: ``--critic separable`` (default; two 2 x 256 ReLU MLPs into a 32-d embedding, scores by
dot product, the published architecture) costs 2K network evaluations per estimator and step:
~40 steps/s for all 12 estimators on an idle 2-core CPU (~9 min for the 20 000-step staircase;
the recorded run took 23 min with the two cores shared by other jobs, load average 6-10).
``--critic concat`` (MLP on [x, y]) is the more accurate published alternative but costs
K^2 = 4096 evaluations; at width 256 that is hours on 2 CPU cores (fine on a GPU), so on CPU use
it narrowed (``--hidden 32``). Every network uses ``--init`` (default: PyTorch's fan-in uniform
init, which the reference implementations were tuned with; with flax's lecun-normal default the
2 x 256 separable critic trains markedly slower, see ``jcomrl/nets/critics.py``).

For each estimator and level the script reports, over the last ``--window`` steps of the level,
the bias (mean estimate - I), the variance and the MSE of the per-step minibatch estimate, writes
the numbers to ``benchmarks/results/mi_gaussian_<device>.json`` and the staircase plot (estimate vs
steps, true MI dashed) to ``benchmarks/results/mi_gaussian.png``.

Usage:
  .venv/bin/python benchmarks/mi_gaussian.py            # full staircase (5 x 4000 steps)
  .venv/bin/python benchmarks/mi_gaussian.py --quick    # smoke run (a few hundred steps)
  .venv/bin/python benchmarks/mi_gaussian.py --critic concat --hidden 32   # narrow joint critic

An existing result file for the same device is not lost: its run (stats, critic, run time) is kept
in the new file under ``previous_runs``, keyed by critic type, width and init.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jcomrl import atomic, mi, optim
from jcomrl.nets.critics import ConcatCritic, CriticMLP, SeparableCritic

# Lower bounds: name -> value_fn(scores, log_baseline, dv_state) -> (value, new_dv_state).
_LOWER: dict[str, Callable] = {
    "nwj": lambda s, b, st: (mi.nwj(s), st),
    "tuba": lambda s, b, st: (mi.tuba(s, b), st),
    "dv": lambda s, b, st: (mi.dv(s), st),
    "mine": lambda s, b, st: mi.dv_ema(s, st, 0.9),
    "infonce": lambda s, b, st: (mi.infonce(s), st),
    "js": lambda s, b, st: (mi.js(s), st),
    "smile_1": lambda s, b, st: (mi.smile(s, 1.0), st),
    "smile_5": lambda s, b, st: (mi.smile(s, 5.0), st),
    "alpha_0.01": lambda s, b, st: (mi.interpolated(s, b, 0.01), st),
}
_UPPER = ("club", "club_s", "l1out")
_LOG_VAR_MIN, _LOG_VAR_MAX = -10.0, 4.0


class LowerState(NamedTuple):
  critic: dict
  baseline: dict
  opt: optax.OptState
  dv: mi.DVEMAState


class UpperState(NamedTuple):
  q: dict
  opt: optax.OptState


def _rho(mi_nats: jnp.ndarray, dim: int) -> jnp.ndarray:
  return jnp.sqrt(1.0 - jnp.exp(-2.0 * mi_nats / dim))


def _sample(key, mi_nats, dim: int, batch: int):
  rho = _rho(mi_nats, dim)
  kx, ke = jax.random.split(key)
  x = jax.random.normal(kx, (batch, dim))
  y = rho * x + jnp.sqrt(1.0 - rho * rho) * jax.random.normal(ke, (batch, dim))
  return x, y


def make_program(args, lower_names, upper_names):
  """Returns ``(init, run_level)``: ``run_level(state, key, mi_nats)`` scans one MI level."""
  hidden = (args.hidden,) * args.layers
  if args.critic == "concat":
    critic = ConcatCritic(hidden_sizes=hidden, init_scheme=args.init)
  else:
    critic = SeparableCritic(hidden_sizes=hidden, embed_dim=args.embed_dim, init_scheme=args.init)
  baseline = CriticMLP(hidden_sizes=hidden, output_size=1, init_scheme=args.init)
  qnet = CriticMLP(hidden_sizes=hidden, output_size=2 * args.dim, init_scheme=args.init)
  opt = optim.adam(args.lr)
  n_lower, n_upper = len(lower_names), len(upper_names)

  def q_out(params, x):
    out = qnet.apply(params, x)
    mean, raw = out[:, :args.dim], out[:, args.dim:]
    return mean, mi.soft_clamp_log_var(raw, _LOG_VAR_MIN, _LOG_VAR_MAX)

  def init(key):
    x0 = jnp.zeros((args.batch, args.dim))

    def init_lower(k):
      kc, kb = jax.random.split(k)
      pc, pb = critic.init(kc, x0, x0), baseline.init(kb, x0)
      return LowerState(pc, pb, opt.init((pc, pb)), mi.dv_ema_init())

    def init_upper(k):
      pq = qnet.init(k, x0)
      return UpperState(pq, opt.init(pq))

    kl, ku = jax.random.split(key)
    lower = [init_lower(k) for k in jax.random.split(kl, n_lower)]
    upper = [init_upper(k) for k in jax.random.split(ku, n_upper)]
    if args.mode == "vmap":   # stack every estimator's state on a leading axis
      stack = lambda states: jax.tree.map(lambda *a: jnp.stack(a), *states) if states else None
      return stack(lower), stack(upper)
    return tuple(lower), tuple(upper)

  def lower_step(st: LowerState, bound, x, y):
    def objective(params):
      pc, pb = params
      scores = critic.apply(pc, x, y)
      log_b = baseline.apply(pb, y)[:, 0]
      value, new_dv = bound(scores, log_b, st.dv)
      return -value, (value, new_dv)

    grads, (value, new_dv) = jax.grad(objective, has_aux=True)((st.critic, st.baseline))
    (pc, pb), new_opt = optim.step(opt, st.opt, grads, (st.critic, st.baseline))
    return LowerState(pc, pb, new_opt, new_dv), value

  def upper_step(st: UpperState, bound, x, y, key):
    mean, log_var = q_out(st.q, x)
    value = bound(mi.gaussian_log_q(mean, log_var, y), key)

    def nll(pq):   # q is fitted by maximum likelihood on the positive pairs
      m, lv = q_out(pq, x)
      return mi.gaussian_nll(m, lv, y)

    grads = jax.grad(nll)(st.q)
    q, new_opt = optim.step(opt, st.opt, grads, st.q)
    return UpperState(q, new_opt), jax.lax.stop_gradient(value)

  upper_fns = {"club": lambda lq, k: mi.club(lq), "club_s": mi.club_sampled,
               "l1out": lambda lq, k: mi.l1out(lq)}
  lower_branches = [_LOWER[n] for n in lower_names]
  upper_branches = [upper_fns[n] for n in upper_names]

  def lower_group_step(st: LowerState, x, y):
    """All lower bounds at once: networks vmapped over the stacked estimator axis, then each
    estimator's bound on its own score matrix (a static loop over a few [K, K] reductions).
    The objective is the sum of the bounds; each depends only on its own parameters, so its
    gradient is every estimator's own gradient."""
    def objective(params):
      pc, pb = params
      scores = jax.vmap(critic.apply, in_axes=(0, None, None))(pc, x, y)
      log_b = jax.vmap(baseline.apply, in_axes=(0, None))(pb, y)[..., 0]
      values, dvs = [], []
      for e, bound in enumerate(lower_branches):
        dv_e = jax.tree.map(lambda a, e=e: a[e], st.dv)
        v, d = bound(scores[e], log_b[e], dv_e)
        values.append(v)
        dvs.append(d)
      values = jnp.stack(values)
      new_dv = jax.tree.map(lambda *a: jnp.stack(a), *dvs)
      return -jnp.sum(values), (values, new_dv)

    grads, (values, new_dv) = jax.grad(objective, has_aux=True)((st.critic, st.baseline))
    updates, new_opt = jax.vmap(opt.update)(grads, st.opt)
    pc, pb = optax.apply_updates((st.critic, st.baseline), updates)
    return LowerState(pc, pb, new_opt, new_dv), values

  def upper_group_step(st: UpperState, x, y, keys):
    out = jax.vmap(q_out, in_axes=(0, None))(st.q, x)
    log_q = jax.vmap(mi.gaussian_log_q, in_axes=(0, 0, None))(out[0], out[1], y)
    values = jnp.stack([f(log_q[e], keys[e]) for e, f in enumerate(upper_branches)])

    def nll(pq):
      m, lv = jax.vmap(q_out, in_axes=(0, None))(pq, x)
      return jnp.sum(jax.vmap(mi.gaussian_nll, in_axes=(0, 0, None))(m, lv, y))

    grads = jax.grad(nll)(st.q)
    updates, new_opt = jax.vmap(opt.update)(grads, st.opt)
    return UpperState(optax.apply_updates(st.q, updates), new_opt), values

  def step(state, key, mi_nats):
    lower, upper = state
    kd, ks = jax.random.split(key)
    x, y = _sample(kd, mi_nats, args.dim, args.batch)
    keys = jax.random.split(ks, max(n_upper, 1))
    values = []
    if args.mode == "vmap":   # one vmapped network evaluation per group (stacked parameters)
      if n_lower:
        lower, v = lower_group_step(lower, x, y)
        values.append(v)
      if n_upper:
        upper, v = upper_group_step(upper, x, y, keys)
        values.append(v)
    else:                     # a static loop over estimators inside the same scan step
      out = [lower_step(st, f, x, y) for st, f in zip(lower, lower_branches)]
      lower = tuple(o[0] for o in out)
      values.append(jnp.stack([o[1] for o in out]) if out else jnp.zeros((0,)))
      out = [upper_step(st, f, x, y, k) for st, f, k in zip(upper, upper_branches, keys)]
      upper = tuple(o[0] for o in out)
      values.append(jnp.stack([o[1] for o in out]) if out else jnp.zeros((0,)))
    return (lower, upper), jnp.concatenate(values)

  @functools.partial(jax.jit, static_argnums=3, donate_argnums=0)
  def run_level(state, key, mi_nats, n_steps):
    keys = jax.random.split(key, n_steps)
    return jax.lax.scan(lambda s, k: step(s, k, mi_nats), state, keys)

  return init, run_level


def _ema(values: np.ndarray, span: int = 200) -> np.ndarray:
  alpha = 2.0 / (span + 1.0)
  out = np.empty_like(values)
  acc = values[0]
  for t, v in enumerate(values):
    acc = alpha * v + (1 - alpha) * acc
    out[t] = acc
  return out


def _club_at_true_conditional(mi_nats, dim):
  """I_CLUB with q = p(y|x) for the Gaussian: d rho^2 / (1 - rho^2) (>= I)."""
  rho2 = 1.0 - np.exp(-2.0 * np.asarray(mi_nats) / dim)
  return dim * rho2 / (1.0 - rho2)


def _curves(estimates: np.ndarray, names, window: int) -> dict:
  """Per-window mean and std of the raw per-step estimates, and the EMA(200) at window ends."""
  n = (len(estimates) // window) * window
  blocks = estimates[:n].reshape(-1, window, estimates.shape[1]).astype(np.float64)
  mean, std = blocks.mean(axis=1), blocks.std(axis=1)
  out = {"step": (np.arange(len(mean)) * window + window - 1).tolist()}
  for j, name in enumerate(names):
    ema = _ema(estimates[:, j].astype(np.float64))[window - 1:n:window]
    out[name] = {"mean": mean[:, j].round(4).tolist(), "std": std[:, j].round(4).tolist(),
                 "ema200": ema.round(4).tolist()}
  return out


def _critic_info(cfg: dict) -> dict:
  """Critic type, width and init of a run's config (runs before ``--init`` existed used flax's
  lecun-normal default)."""
  init = cfg.get("init", "lecun_normal")
  info = {"type": cfg["critic"], "layers": cfg["layers"], "hidden": cfg["hidden"], "init": init}
  if cfg["critic"] == "separable":
    info["embed_dim"] = cfg["embed_dim"]
  info["label"] = f"{cfg['critic']}_{cfg['layers']}x{cfg['hidden']}_{init}"
  return info


def _previous_runs(json_path: str, label: str) -> dict:
  """Runs kept from an existing result file (its own run and its ``previous_runs``), by label;
  a run with the same label as the new one is replaced."""
  if not os.path.exists(json_path):
    return {}
  with open(json_path) as f:
    old = json.load(f)
  runs = dict(old.get("previous_runs", {}))
  info = old.get("critic") or _critic_info(old["config"])
  runs[info["label"]] = {
      "critic": info, "config": old["config"], "device": old["device"],
      "wall_time_s": old["wall_time_s"], "stats_window": old["stats_window"],
      "stats": old["stats"]}
  runs.pop(label, None)
  return runs


def plot_record(record: dict, path: str):
  """The staircase plot from a result record (so it can be redrawn from the JSON alone)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names, cfg, curves = record["estimators"], record["config"], record["curves"]
  steps = np.asarray(curves["step"])
  true_mi = np.asarray(record["levels"])[steps // cfg["steps_per_level"]]
  cols = 4
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), sharex=True)
  for i, ax in enumerate(np.ravel(axes)):
    if i >= len(names):
      ax.axis("off")
      continue
    name = names[i]
    c = {k: np.asarray(v) for k, v in curves[name].items()}
    ax.fill_between(steps, c["mean"] - c["std"], c["mean"] + c["std"], color="C0", alpha=0.25,
                    lw=0, label="window mean +- std")
    ax.plot(steps, c["ema200"], color="C0", lw=1.2, label="EMA(200)")
    ax.plot(steps, true_mi, "k--", lw=1.0, label="true MI")
    if name == "infonce":
      ax.axhline(math.log(cfg["batch"]), color="C3", ls=":", lw=1.0, label="log K")
    if name in ("club", "club_s"):
      ax.plot(steps, _club_at_true_conditional(true_mi, cfg["dim"]), color="C2", ls=":", lw=1.0,
              label="I_CLUB, true q")
    if name in _UPPER:
      ax.set_ylim(-1, 40)
    else:
      ax.set_ylim(-1, 14)
    ax.set_title(name)
    ax.legend(fontsize=6, loc="upper left")
  for ax in np.ravel(axes)[-cols:]:
    ax.set_xlabel("step")
  fig.suptitle(f"MI estimates on correlated Gaussians, d={cfg['dim']}, K={cfg['batch']}, "
               f"{cfg['critic']} critic {cfg['layers']}x{cfg['hidden']} "
               f"({cfg.get('init', 'lecun_normal')} init), Adam {cfg['lr']:g}; "
               f"{record['device']}, {record['wall_time_s']:.0f} s")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="smoke run: 150 steps per level")
  parser.add_argument("--levels", default="2,4,6,8,10", help="true MI per level (nats)")
  parser.add_argument("--steps_per_level", type=int, default=4000)
  parser.add_argument("--dim", type=int, default=20)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--lr", type=float, default=5e-4)
  parser.add_argument("--critic", choices=("concat", "separable"), default="separable")
  parser.add_argument("--hidden", type=int, default=256,
                      help="width of every hidden layer (the published protocol uses 256; a "
                      "concat critic needs ~32 to run in minutes on a 2-core CPU)")
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--embed_dim", type=int, default=32, help="separable critic only")
  parser.add_argument("--init", choices=("fan_in_uniform", "lecun_normal"), default="fan_in_uniform",
                      help="initialisation of every network (see jcomrl.nets.critics)")
  parser.add_argument("--estimators", default=",".join(list(_LOWER) + list(_UPPER)))
  parser.add_argument("--window", type=int, default=500, help="last steps of a level for stats")
  parser.add_argument("--mode", choices=("vmap", "loop"), default="vmap",
                      help="vmap: networks of all estimators vmapped over stacked parameters; "
                      "loop: a static loop over estimators inside the scan step")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out_dir", default=os.path.join(os.path.dirname(__file__), "results"))
  parser.add_argument("--no_plot", action="store_true")
  parser.add_argument("--replot", default=None, metavar="JSON",
                      help="only redraw the plot from a result JSON (written next to it)")
  args = parser.parse_args()
  if args.replot:
    with open(args.replot) as f:
      record = json.load(f)
    suffix = "_quick" if "_quick" in os.path.basename(args.replot) else ""
    png = os.path.join(os.path.dirname(args.replot), f"mi_gaussian{suffix}.png")
    plot_record(record, png)
    print(f"wrote {png}")
    return
  if args.quick:
    args.steps_per_level = min(args.steps_per_level, 150)
    args.window = min(args.window, 50)

  names = args.estimators.split(",")
  unknown = [n for n in names if n not in _LOWER and n not in _UPPER]
  if unknown:
    raise SystemExit(f"unknown estimators {unknown}; choose from {list(_LOWER) + list(_UPPER)}")
  lower_names = [n for n in names if n in _LOWER]
  upper_names = [n for n in names if n in _UPPER]
  names = lower_names + upper_names
  levels = [float(v) for v in args.levels.split(",")]
  device = jax.devices()[0]
  kind = (device.device_kind or device.platform).lower()
  device_name = re.sub(r"[^a-z0-9]+", "_", kind).strip("_")
  print(f"device: {device.device_kind} ({device.platform}); estimators: {names}")
  print(f"protocol: d={args.dim} K={args.batch} levels={levels} x {args.steps_per_level} steps, "
        f"Adam {args.lr}, {args.critic} critic {args.layers}x{args.hidden}")

  init, run_level = make_program(args, lower_names, upper_names)
  key = jax.random.PRNGKey(args.seed)
  key, k_init = jax.random.split(key)
  state = init(k_init)

  load_start = os.getloadavg()[0]
  t_start = time.perf_counter()
  t_compile = None
  chunks = []
  for i, level in enumerate(levels):
    key, k_level = jax.random.split(key)
    t0 = time.perf_counter()
    state, est = run_level(state, k_level, jnp.float32(level), args.steps_per_level)
    est = np.asarray(jax.block_until_ready(est))
    dt = time.perf_counter() - t0
    if t_compile is None:
      # a second, un-timed compilation would be needed to separate compile from run; report
      # the first level's time (which includes compilation) separately instead
      t_compile = dt
    chunks.append(est)
    print(f"  level {i + 1}/{len(levels)} (I = {level:g}): {dt:.1f} s, "
          f"{args.steps_per_level / dt:.0f} steps/s ({len(names)} estimators)", flush=True)
  wall = time.perf_counter() - t_start
  estimates = np.concatenate(chunks, axis=0)
  if not np.all(np.isfinite(estimates)):
    bad = [n for j, n in enumerate(names) if not np.all(np.isfinite(estimates[:, j]))]
    print(f"WARNING: non-finite estimates for {bad}")

  stats = {}
  for j, name in enumerate(names):
    stats[name] = []
    for i, level in enumerate(levels):
      last = chunks[i][-args.window:, j].astype(np.float64)
      stats[name].append({"mi": level, "mean": float(np.mean(last)),
                          "bias": float(np.mean(last) - level), "var": float(np.var(last)),
                          "mse": float(np.mean((last - level) ** 2))})

  header = "".join(f" | I={lv:<4g} bias    var     mse" for lv in levels)
  print(f"\nlast {args.window} steps of each level; wall time {wall:.1f} s "
        f"(first level incl. compilation {t_compile:.1f} s)")
  print(f"{'estimator':<11}{header}")
  for name in names:
    row = "".join(f" | {s['bias']:+8.2f} {s['var']:7.2f} {s['mse']:7.2f}" for s in stats[name])
    print(f"{name:<11}{row}")

  os.makedirs(args.out_dir, exist_ok=True)
  suffix = "_quick" if args.quick else ""
  json_path = os.path.join(args.out_dir, f"mi_gaussian_{device_name}{suffix}.json")
  window = max(1, args.steps_per_level // 100)
  record = {
      "benchmark": "mi_gaussian", "device": device.device_kind, "platform": device.platform,
      "cpu_count": os.cpu_count(), "load_avg_1min_start_end": [load_start, os.getloadavg()[0]],
      "jax": jax.__version__, "config": vars(args), "critic": _critic_info(vars(args)),
      "levels": levels, "estimators": names,
      "wall_time_s": wall, "first_level_time_incl_compile_s": t_compile,
      "steps_per_s": len(levels) * args.steps_per_level / wall,
      "stats_window": args.window, "stats": stats,
      "i_club_true_conditional": _club_at_true_conditional(levels, args.dim).round(3).tolist(),
      "curve_window": window, "curves": _curves(estimates, names, window),
  }
  record["previous_runs"] = _previous_runs(json_path, record["critic"]["label"])
  atomic.write_json(json_path, record)
  print(f"wrote {json_path}")
  if not args.no_plot:
    png = os.path.join(args.out_dir, f"mi_gaussian{suffix}.png")
    plot_record(record, png)
    print(f"wrote {png}")


if __name__ == "__main__":
  main()
