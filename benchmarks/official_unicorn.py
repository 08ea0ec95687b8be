"""The official UNICORN code trained on a jcomrl dataset, evaluated in jcomrl's env
(the side-by-side study in benchmarks/results/issue35).

Trains the **unmodified** PyTorch code of betray12138/UNICORN (d8853cd: ``train_offline_FOCAL.py``
class ``FOCAL``, ``algorithms/sac.py``, ``models/encoder.py`` ``MLPEncoder``,
``models/decoder.py`` ``FOCALDecoder``) on a jcomrl dataset exported to its layout
(:mod:`jcomrl.data.official_layout`) and read by its own loader
(``utils/offline_utils.py`` ``load_dataset``), with its own config parser
(``offline_rl_config/args_<env>.py``). Every ``--eval_every`` updates it logs the quantities our
``experiments.train`` logs (``metrics.jsonl`` of a jcomrl run): Q of the data actions
(``critic/q``), Q of fresh policy actions (``actor/q``), the TD loss (``critic/loss``: their
``qf1_loss + qf2_loss``, which is our twin-sum), the policy entropy estimate, the encoder loss
and the codes' spread; and the IID return on the held-out tasks.

Their evaluation needs mujoco-py, so the evaluation here is ours and theirs only in the networks:
for each held-out task one stored trajectory of that task is the context (their
``sample_context_batch(trainset=False)``, as jcomrl's ``iid`` protocol), their encoder gives the
code (a sampled one, as their ``context_encoding`` does), and their policy acts
deterministically (``eval_deterministic=True``) in jcomrl's env, every held-out task stepped
together on the host (C MuJoCo). The z-shuffled control gives each task the code of the task
jcomrl's z_shuffle protocol pairs it with (``suite.z_shuffle_permutation``), with the same
contexts and env keys.

What is not theirs: a stand-in for ``environments.make_env`` (spaces and the 200-step horizon
only; their env package needs mujoco-py), stand-in modules for imports their training path never
executes (gym spaces, plotting, hydra/omegaconf for mbrl), and the outer loop, which is
``FOCAL.train``'s (``np.random.choice(num_train_tasks, meta_batch)`` with replacement, then
``update``) with our logging in place of ``log``. Sizes are set on the parsed ``args`` (the
``--sizes`` flag), never in their files.

Needs torch, gin-config and mbrl 0.2.0 beside jcomrl (the first line below installs
them), and a clone of their tree::

    .venv/bin/pip install torch gin-config==0.5.0 termcolor && .venv/bin/pip install --no-deps mbrl==0.2.0
    .venv/bin/python -m benchmarks.official_unicorn --unicorn=~/.cache/jcomrl-anchor/unicorn \\
        --dataset=data/cv_sac --sizes=cpu --num_updates=30000 --eval_every=1000 --seed=0 \\
        --out=benchmarks/results/issue35/official_unicorn_ss_seed0.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import time
import types

import numpy as np

ENV_CLASS = {"cheetah_vel": "HalfCheetahVel-v0", "cheetah_dir": "HalfCheetahDir-v0",
             "ant_dir": "AntDir-v0"}
# jcomrl's CPU profile (jcomrl.algos.presets CPU_*): hidden widths 64, RL batch 128 per task,
# meta-batch 8. "paper" keeps their config's values.
SIZES = {"cpu": dict(width=64, rl_batch_size=128, meta_batch=8), "paper": None}


class _Permissive(types.ModuleType):
  """A stand-in module whose every attribute is an inert class."""

  def __init__(self, name):
    super().__init__(name)
    self.__path__ = []

  def __getattr__(self, attr):
    if attr.startswith("__"):
      raise AttributeError(attr)
    cls = type(attr, (), {"__init__": lambda self, *a, **k: None,
                          "__call__": lambda self, *a, **k: None})
    setattr(self, attr, cls)
    return cls


class _Stand_ins(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  def __init__(self, prefixes):
    self.prefixes = set(prefixes)

  def find_spec(self, name, path=None, target=None):
    if any(name == p or name.startswith(p + ".") for p in self.prefixes):
      return importlib.machinery.ModuleSpec(name, self, is_package=True)
    return None

  def create_module(self, spec):
    return _Permissive(spec.name)

  def exec_module(self, module):
    pass


class _Box:
  def __init__(self, low, high, shape=None, dtype=np.float32):
    if shape is not None:
      low, high = np.full(shape, low, dtype), np.full(shape, high, dtype)
    self.low, self.high = np.asarray(low, dtype), np.asarray(high, dtype)
    self.shape, self.dtype = self.low.shape, dtype

  def sample(self):
    return np.random.uniform(self.low, self.high).astype(self.dtype)


class _Discrete:
  def __init__(self, n):
    self.n, self.shape = n, ()


class _SpacesOnlyEnv:
  """What ``FOCAL.__init__`` / ``expand_args`` read from an env: spaces, horizon, goals."""

  def __init__(self, obs_size, action_size, horizon):
    self.observation_space = _Box(-np.inf, np.inf, shape=(obs_size,))
    self.action_space = _Box(-1.0, 1.0, shape=(action_size,))
    self._max_episode_steps = horizon
    self.goals = None

  @property
  def unwrapped(self):
    return self

  def set_all_goals(self, goals):
    self.goals = goals

  def get_all_task_idx(self):
    return range(len(self.goals))


def install_stand_ins(obs_size, action_size, horizon):
  def module(name, **attrs):
    m = types.ModuleType(name)
    m.__path__ = []
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m

  try:
    import gym.spaces  # noqa: F401
  except ImportError:
    gym = module("gym", Env=object, Wrapper=object)
    gym.spaces = module("gym.spaces", Box=_Box, Discrete=_Discrete, Tuple=tuple, Space=object)
    gym.spaces.box = module("gym.spaces.box", Box=_Box)
    gym.spaces.discrete = module("gym.spaces.discrete", Discrete=_Discrete)
  prefixes = {"environments"}
  for name in ("hydra", "omegaconf", "gymnasium", "sklearn", "seaborn", "pandas", "tqdm"):
    try:
      importlib.import_module(name)
    except ImportError:
      prefixes.add(name)
  sys.meta_path.insert(0, _Stand_ins(prefixes))
  make_env_mod = types.ModuleType("environments.make_env")
  make_env_mod.make_env = lambda *a, **k: _SpacesOnlyEnv(obs_size, action_size, horizon)
  sys.modules["environments.make_env"] = make_env_mod


def add_run_args(p: argparse.ArgumentParser, sizes: dict) -> None:
  """The flags every official-code driver takes: data, sizes, budget, seed, threads, output."""
  p.add_argument("--dataset", required=True, help="a jcomrl dataset directory")
  p.add_argument("--sizes", default="cpu", choices=sorted(sizes))
  p.add_argument("--num_updates", type=int, default=30000)
  p.add_argument("--eval_every", type=int, default=1000)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=0)
  p.add_argument("--out", required=True, help="JSON lines, one row per evaluation")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--unicorn", required=True, help="their source tree (the anchor's unicorn/)")
  add_run_args(p, SIZES)
  p.add_argument("extra", nargs="*", help="more flags for their config parser (after --)")
  a = p.parse_args()

  import jax
  import jax.numpy as jnp

  from jcomrl import envs
  from jcomrl.data.dataset import load_dataset
  from jcomrl.data.official_layout import export_unicorn
  from jcomrl.eval import suite
  from jcomrl.provenance import cpu_model, source_commit

  dataset, meta = load_dataset(a.dataset)
  env_name = meta["env"]
  env = envs.make(env_name, **(meta.get("env_overrides") or {}))
  horizon = int(env.episode_length)
  if dataset.segment_length != horizon:
    sys.exit(f"segments of {dataset.segment_length} steps; their loader cuts every {horizon}")
  install_stand_ins(env.observation_size, env.action_size, horizon)
  unicorn = os.path.abspath(os.path.expanduser(a.unicorn))
  sys.path.insert(0, unicorn)
  import torch
  if a.threads:
    torch.set_num_threads(a.threads)
  torch.manual_seed(a.seed)
  import torchkit.pytorch_utils as ptu
  import train_offline_FOCAL as their
  from offline_rl_config import args_ant_dir, args_cheetah_dir, args_cheetah_vel
  from utils import offline_utils as off_utl

  get_args = {"cheetah_vel": args_cheetah_vel, "cheetah_dir": args_cheetah_dir,
              "ant_dir": args_ant_dir}[env_name].get_args
  args = get_args(["--log-tensorboard", "0", "--seed", str(a.seed)] + list(a.extra))
  ptu.set_gpu_mode(False)
  sizes = SIZES[a.sizes]
  if sizes:
    w = sizes["width"]
    args.dqn_layers, args.policy_layers = [w, w], [w, w]
    args.aggregator_hidden_size = min(int(args.aggregator_hidden_size), w)
    args.rl_batch_size, args.meta_batch = sizes["rl_batch_size"], sizes["meta_batch"]
  args, _ = off_utl.expand_args(args)
  split = meta["split"]
  args.num_train_tasks, args.num_eval_tasks = len(split["train"]), len(split["test"])

  with tempfile.TemporaryDirectory(prefix="unicorn-layout-") as root:
    export_unicorn(a.dataset, os.path.join(root, ENV_CLASS[env_name]))
    args.main_data_dir = root
    train_ds, train_goals = off_utl.load_dataset(data_dir="train", args=args, arr_type="numpy")
    test_ds, test_goals = off_utl.load_dataset(data_dir="test", args=args, arr_type="numpy")
    # their task order is os.listdir's: recover each row's jcomrl task index from seed_<k>_
    test_index = [int(n.split("_")[1]) for n in
                  os.listdir(os.path.join(root, ENV_CLASS[env_name], "test"))]
  test_goals = np.asarray(test_goals, np.float64)
  want = np.asarray(dataset.task_params)[test_index]
  assert np.allclose(want.reshape(test_goals.shape), test_goals, atol=1e-3), "goal order"
  learner = their.FOCAL(args, train_ds, np.asarray(train_goals), test_ds, test_goals)

  # jcomrl's env over the held-out tasks, in their row order, all stepped together.
  all_tasks = env.all_benchmark_tasks()
  tasks = jax.tree.map(lambda x: x[np.asarray(test_index)], all_tasks)
  n_test = len(test_index)
  reset = jax.jit(jax.vmap(env.reset))
  step = jax.jit(jax.vmap(env.step))
  # jcomrl's z-shuffle pairs, mapped to their row order (os.listdir's): row r is jcomrl test
  # task test_index[r]; it acts with the code of the row holding the task jcomrl pairs it with.
  # (Before: np.roll over the listdir order, pairs of mean |dv| 0.89 on cheetah_vel against
  # jcomrl's 1.07.)
  split_test = [int(t) for t in meta["split"]["test"]]
  pos = [split_test.index(t) for t in test_index]
  row_of = {p: r for r, p in enumerate(pos)}
  perm = np.asarray(suite.z_shuffle_permutation(n_test))
  derange = np.array([row_of[int(perm[pos[r]])] for r in range(n_test)])

  def evaluate(key):
    learner.training_mode(False)
    with torch.no_grad():
      ctx = learner.sample_context_batch(list(range(n_test)), trainset=False)
      z, _ = learner.encoder.context_encoding(obs=ctx[0], actions=ctx[1], rewards=ctx[2],
                                              next_obs=ctx[3], terms=ctx[4])
      out = {}
      for name, codes in (("iid", z), ("z_shuffle", z[derange])):
        state = reset(jax.random.split(key, n_test), tasks)
        ret, alive = np.zeros(n_test), np.ones(n_test)
        for _ in range(horizon):
          obs = torch.as_tensor(np.asarray(state.obs), dtype=torch.float32)
          act, _, _, _ = learner.agent.act(torch.cat([obs, codes], -1),
                                           deterministic=bool(args.eval_deterministic))
          state = step(state, jnp.asarray(act.numpy()), tasks)
          ret += np.asarray(state.reward) * alive  # rewards up to the episode's end
          alive = alive * (1.0 - np.asarray(state.done))
        out[name] = ret
    return out, z

  def diagnostics(indices):
    """Their quantities on a fresh meta-batch of training tasks (no update)."""
    with torch.no_grad():
      o, act, r, o2, term = learner.sample_rl_batch(indices, args.rl_batch_size)
      ctx = learner.sample_context_batch_finetune(indices, learner.storage)
      z, _ = learner.encoder.context_encoding(obs=ctx[0], actions=ctx[1], rewards=ctx[2],
                                              next_obs=ctx[3], terms=ctx[4])
      zt = z.unsqueeze(1).expand(-1, o.shape[1], -1)
      oz = torch.cat([o, zt], -1).reshape(-1, o.shape[-1] + z.shape[-1])
      a_flat = act.reshape(-1, act.shape[-1])
      q_data = 0.5 * (learner.agent.qf1(oz, a_flat) + learner.agent.qf2(oz, a_flat))
      pi_a, _, _, logp = learner.agent.act(oz, return_log_prob=True)
      q_pi = learner.agent._min_q(oz, pi_a)
      return {"critic/q": float(q_data.mean()), "actor/q": float(q_pi.mean()),
              "actor/entropy": float(-logp.mean()),
              "encoder/z_spread": float(z.std(0, unbiased=False).mean()),
              "actor/action_abs": float(pi_a.abs().mean()),
              "data/action_abs": float(a_flat.abs().mean())}

  norm = meta.get("normalisation") or {}
  rnd, exp = norm.get("random"), norm.get("expert")
  os.makedirs(os.path.dirname(os.path.abspath(a.out)) or ".", exist_ok=True)
  header = {"what": "official UNICORN (betray12138/UNICORN) trained on a jcomrl dataset",
            "unicorn_tree": unicorn, "dataset": os.path.abspath(a.dataset),
            "dataset_sha": meta.get("arrays", {}).get("reward", {}).get("sha256"),
            "env": env_name, "sizes": a.sizes, "seed": a.seed, "agent": type(learner.agent).__name__,
            "args": {k: (v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v))
                     for k, v in vars(args).items()},
            "jcomrl_commit": source_commit(),
            "cpu": cpu_model(), "normalisation": norm}
  key = jax.random.key(a.seed)
  iters_per_eval = max(1, a.eval_every // int(args.rl_updates_per_iter))
  t0 = time.time()
  np.random.seed(a.seed)
  learner._start_training()
  with open(a.out, "w") as f:
    f.write(json.dumps({"header": header}) + "\n")
    done = 0
    it = 0
    while done < a.num_updates:
      learner.training_mode(True)
      indices = np.random.choice(len(learner.goals), args.meta_batch)  # with replacement, as theirs
      stats = learner.update(indices)
      done += int(args.rl_updates_per_iter)
      it += 1
      if it % iters_per_eval == 0 or done >= a.num_updates:
        key, k_eval = jax.random.split(key)
        rets, _ = evaluate(k_eval)
        row = {"step": done, "wall_s": round(time.time() - t0, 1),
               "critic/loss": float(stats["qf1_loss"] + stats["qf2_loss"]),
               "actor/loss": float(stats["policy_loss"]),
               "encoder/loss": float(stats["metric_loss"]),
               **diagnostics(np.random.choice(len(learner.goals), args.meta_batch)),
               "eval/iid": float(rets["iid"].mean()),
               "eval/iid_se": float(rets["iid"].std(ddof=1) / np.sqrt(n_test)),
               "eval/z_shuffle": float(rets["z_shuffle"].mean()),
               "eval/shuffle_drop_se": float((rets["iid"] - rets["z_shuffle"]).std(ddof=1)
                                             / np.sqrt(n_test)),
               "eval/iid_per_task": rets["iid"].round(2).tolist()}
        if rnd is not None and exp is not None:
          row["eval/iid_normalised"] = 100 * (row["eval/iid"] - rnd) / (exp - rnd)
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(f"step {done}: iid {row['eval/iid']:.1f} z_shuffle {row['eval/z_shuffle']:.1f} "
              f"Q data {row['critic/q']:.1f} Q pi {row['actor/q']:.1f} "
              f"critic loss {row['critic/loss']:.2f} ({row['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
  main()
