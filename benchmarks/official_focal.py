"""The official FOCAL code trained on a jcomrl dataset, evaluated in jcomrl's env (the FOCAL half
of the side-by-side study in benchmarks/results/issue35; the UNICORN half is
:mod:`benchmarks.official_unicorn`).

Trains the **unmodified** PyTorch code of FOCAL-ICLR/FOCAL-ICLR (cc2f1fd, its HEAD:
``rlkit/torch/sac/sac.py`` class ``FOCALSoftActorCritic`` — twin Q + V network, BRAC with the
dual critic and the auto-tuned weight, the distance metric loss on the codes —
``rlkit/torch/sac/agent.py`` ``PEARLAgent``, ``rlkit/torch/networks.py``,
``rlkit/torch/sac/policies.py``, ``rlkit/core/rl_algorithm.py``'s buffers, its offline loader
``init_buffer`` and its ``collect_data``) on a jcomrl dataset exported to its layout
(:func:`jcomrl.data.official_layout.export_focal`), with its own config
(``configs/default.py`` updated by ``configs/<env>.json``, as ``launch_experiment.main``).

The outer loop is ``OfflineMetaRLAlgorithm.train``'s (rl_algorithm.py:407-447): on the first
iteration ``collect_data(num_initial_steps)`` for every training task; then per iteration
``num_tasks_sample`` tasks each get their encoder buffer cleared and refilled
(``num_steps_prior``) and ``num_extra_rl_steps_posterior`` more RL transitions, all resampled
from the offline data by their ``offline_sample``; then ``num_train_steps_per_itr`` calls of
``_do_training(np.random.choice(train_tasks, meta_batch, replace=mb_replace), zloss=True)``.
Our logging replaces their logger and their evaluation (which needs mujoco-py): every
``--eval_every`` updates, for each held-out task the context is ``max_path_length`` random
transitions of that task's offline data (their ``offline_rollout``: ``random_batch(max_path_length)``
of the eval buffer), the code is their ``infer_posterior`` (the mean of the encoder's tanh
outputs) and their policy acts deterministically (``eval_deterministic=True``) in jcomrl's C-MuJoCo
env, every held-out task stepped together on the host. The z-shuffled control gives each task
the code of the task jcomrl's z_shuffle protocol pairs it with (``suite.z_shuffle_permutation``);
``eval/z_shuffle_neighbour`` gives it the next-slower test task's instead (a roll of the split's
velocity-sorted order: the first version of this driver's control, which pairs near neighbours). Diagnostics and evaluation draw from their own
generators, so the training stream is the one an unlogged run would draw.

What is not theirs, and why:

* the networks are built here as ``launch_experiment.experiment`` builds them (lines 47-98),
  because importing that module imports their mujoco-py envs; ``--sizes=cpu`` sets the widths
  (``net_size`` and the encoder's three hidden layers, 200 in their launcher), ``batch_size``
  and ``meta_batch`` to jcomrl's CPU profile; ``paper`` keeps theirs;
* ``algorithm.to()`` is called on the CPU: their launcher calls it only in GPU mode
  (launch_experiment.py:139-141), but it is also what creates the BRAC divergence and the
  trainable alpha (sac.py ``to``), so on a CPU their own launcher would fail at the first update;
* their optimiser is torch 1.2's Adam (``environment.yaml`` pins ``torch==1.2.0``), written out
  here (:class:`_Torch12Adam`, torch 1.2 ``optim/adam.py``) because the update order of
  ``_take_step`` relies on it: the policy loss backpropagates through ``div_estimate``, computed
  with the dual critic before its three optimiser steps (sac.py:326-339 then 371). Torch 1.2's
  Adam wrote ``p.data`` without touching autograd's version counters, so that backward ran, with
  the stepped weights; since torch 1.5 the step is versioned and the same code raises "one of the
  variables needed for gradient computation has been modified by an inplace operation". Passing
  this class as their ``optimizer_class`` argument keeps their file unmodified and their
  semantics;
* ``rlkit.torch.transformer`` (imported by networks.py and policies.py, deleted from the tree in
  e5b2f59 and never used with their defaults), ``gtimer`` (timing stamps) and the logger's
  optional dependencies are inert stand-ins; the env is a stand-in holding the spaces and the
  task index (their ``offline_sample`` reads ``env._goal_idx``).

Needs torch and gin-config beside jcomrl (``.venv/bin/pip install torch gin-config==0.5.0``) and
a checkout of their tree::

    git clone https://github.com/FOCAL-ICLR/FOCAL-ICLR ~/.cache/jcomrl-anchor/focal
    .venv/bin/python -m benchmarks.official_focal --focal=~/.cache/jcomrl-anchor/focal \\
        --dataset=data/cv_shared_replay --sizes=cpu --num_updates=30000 --eval_every=1000 \\
        --seed=0 --out=benchmarks/results/issue35/official_focal_shared_replay_seed0.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import runpy
import sys
import tempfile
import time

import numpy as np

from benchmarks.official_unicorn import _Box, _Stand_ins, add_run_args, install_stand_ins

CONFIG = {"cheetah_vel": "cheetah-vel.json", "cheetah_dir": "cheetah-dir.json",
          "ant_dir": "ant-dir.json"}
# jcomrl's CPU profile for the focal preset (experiments/configs profile "cpu"): hidden widths 64
# (Q, V, policy, dual critic and the encoder), RL batch 128 per task, meta-batch 8.
SIZES = {"cpu": dict(width=64, batch_size=128, meta_batch=8), "paper": None}


class _TaskEnv:
  """What FOCAL's buffers and samplers read from an env: the spaces and the current task."""

  def __init__(self, obs_size, action_size, tasks):
    self.observation_space = _Box(-np.inf, np.inf, shape=(obs_size,))
    self.action_space = _Box(-1.0, 1.0, shape=(action_size,))
    self._tasks = list(tasks)
    self._goal_idx = self._tasks[0]

  def get_all_task_idx(self):
    return self._tasks

  def reset_task(self, idx):
    self._goal_idx = idx


def _torch12_adam():
  import math

  import torch

  class _Torch12Adam(torch.optim.Optimizer):
    """torch 1.2's Adam (no amsgrad, no weight decay, FOCAL's use): the update written to
    ``p.data``, which autograd does not version (see the module docstring)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
      super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
      for group in self.param_groups:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
          if p.grad is None:
            continue
          grad = p.grad.data
          state = self.state[p]
          if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p.data)
            state["exp_avg_sq"] = torch.zeros_like(p.data)
          m, v = state["exp_avg"], state["exp_avg_sq"]
          state["step"] += 1
          m.mul_(beta1).add_(grad, alpha=1 - beta1)
          v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
          bias1 = 1 - beta1 ** state["step"]
          bias2 = 1 - beta2 ** state["step"]
          denom = (v.sqrt() / math.sqrt(bias2)).add_(group["eps"])
          p.data.addcdiv_(m, denom, value=-group["lr"] / bias1)

  return _Torch12Adam


def _deep_update(src, dst):
  for k, v in src.items():
    if isinstance(v, dict):
      _deep_update(v, dst.setdefault(k, {}))
    else:
      dst[k] = v
  return dst


@contextlib.contextmanager
def _own_randomness(seed):
  """Runs the block on its own numpy / torch streams and restores theirs afterwards."""
  import torch
  np_state, torch_state = np.random.get_state(), torch.random.get_rng_state()
  np.random.seed(seed)
  torch.manual_seed(seed)
  try:
    yield
  finally:
    np.random.set_state(np_state)
    torch.random.set_rng_state(torch_state)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--focal", required=True, help="their source tree (FOCAL-ICLR/FOCAL-ICLR)")
  add_run_args(p, SIZES)
  p.add_argument("--algo", action="append", default=[], metavar="KEY=JSON",
                 help="set one of their algo_params after the json (e.g. mb_replace=true, one "
                      "of their own options); repeat")
  a = p.parse_args()

  import jax
  import jax.numpy as jnp

  from jcomrl import envs
  from jcomrl.data.dataset import load_dataset
  from jcomrl.data.official_layout import export_focal
  from jcomrl.eval import suite
  from jcomrl.provenance import cpu_model, source_commit

  dataset, meta = load_dataset(a.dataset)
  env_name = meta["env"]
  env = envs.make(env_name, **(meta.get("env_overrides") or {}))
  horizon = int(env.episode_length)
  split = meta["split"]
  train_tasks = [int(t) for t in split["train"]]
  eval_tasks = [int(t) for t in split["test"]]

  install_stand_ins(env.observation_size, env.action_size, horizon)
  stand_ins = {"rlkit.torch.transformer", "gtimer"}
  for name in ("dateutil", "joblib", "pandas"):
    try:
      importlib.import_module(name)
    except ImportError:
      stand_ins.add(name)
  sys.meta_path.insert(0, _Stand_ins(stand_ins))
  focal = os.path.abspath(os.path.expanduser(a.focal))
  sys.path.insert(0, focal)
  import torch
  if a.threads:
    torch.set_num_threads(a.threads)
  import rlkit.torch.pytorch_util as ptu
  from rlkit.torch.networks import FlattenMlp, MlpEncoder
  from rlkit.torch.sac.agent import PEARLAgent
  from rlkit.torch.sac.policies import TanhGaussianPolicy
  from rlkit.torch.sac.sac import FOCALSoftActorCritic

  # launch_experiment.main: configs/default.py's default_config updated by the env's json.
  variant = runpy.run_path(os.path.join(focal, "configs", "default.py"))["default_config"]
  with open(os.path.join(focal, "configs", CONFIG[env_name])) as f:
    variant = _deep_update(json.load(f), variant)
  algo = variant["algo_params"]
  for spec in a.algo:
    k, v = spec.split("=", 1)
    if k not in algo:
      sys.exit(f"--algo {k}: not one of their algo_params ({', '.join(sorted(algo))})")
    algo[k] = json.loads(v)
  sizes = SIZES[a.sizes]
  net_size, enc_hidden = variant["net_size"], [200, 200, 200]
  if sizes:
    net_size, enc_hidden = sizes["width"], [sizes["width"]] * 3
    algo["batch_size"], algo["meta_batch"] = sizes["batch_size"], sizes["meta_batch"]
  seg = int(dataset.segment_length)
  algo["n_trj"] = dataset.num_transitions // seg
  variant["net_size"] = net_size

  ptu.set_gpu_mode(False)
  torch.manual_seed(a.seed)  # launch_experiment.global_seed
  np.random.seed(a.seed)
  fenv = _TaskEnv(env.observation_size, env.action_size, train_tasks + eval_tasks)
  obs_dim, action_dim, latent_dim = env.observation_size, env.action_size, variant["latent_size"]
  ctx_in = (2 * obs_dim if algo["use_next_obs_in_context"] else obs_dim) + action_dim + 1
  encoder = MlpEncoder(hidden_sizes=enc_hidden, input_size=ctx_in,
                       output_size=2 * latent_dim if algo["use_information_bottleneck"]
                       else latent_dim, output_activation=torch.tanh)

  def critic(inputs):
    return FlattenMlp(hidden_sizes=[net_size] * 3, input_size=inputs, output_size=1)

  qf1 = critic(obs_dim + action_dim + latent_dim)
  qf2 = critic(obs_dim + action_dim + latent_dim)
  vf = critic(obs_dim + latent_dim)
  policy = TanhGaussianPolicy(hidden_sizes=[net_size] * 3, obs_dim=obs_dim + latent_dim,
                              latent_dim=latent_dim, action_dim=action_dim)
  agent = PEARLAgent(latent_dim, encoder, policy, **algo)
  c = critic(obs_dim + action_dim + latent_dim)

  with tempfile.TemporaryDirectory(prefix="focal-layout-") as root:
    algo["data_dir"] = os.path.join(root, "data")
    export_focal(dataset, algo["data_dir"], meta=meta)
    with contextlib.redirect_stdout(sys.stderr):
      learner = FOCALSoftActorCritic(env=fenv, train_tasks=train_tasks, eval_tasks=eval_tasks,
                                     nets=[agent, qf1, qf2, vf, c], latent_dim=latent_dim,
                                     optimizer_class=_torch12_adam(), **algo)
  learner.to()  # on the CPU (see the module docstring)
  for k in train_tasks + eval_tasks:  # their loader read every file of every task
    buf = (learner.train_buffer if k in train_tasks else learner.eval_buffer).task_buffers[k]
    assert buf._size == dataset.num_transitions, (k, buf._size)

  # jcomrl's env over the held-out tasks, all stepped together.
  tasks = jax.tree.map(lambda x: x[np.asarray(eval_tasks)], env.all_benchmark_tasks())
  n_test = len(eval_tasks)
  reset = jax.jit(jax.vmap(env.reset))
  step = jax.jit(jax.vmap(env.step))
  # jcomrl's z-shuffle pairs (test task i acts with the code of test task derange[i]; the split's
  # order, which is eval_tasks'). Not np.roll: the split lists cheetah_vel's test tasks by
  # velocity, so a roll gives each task its neighbour's code (mean |dv| 0.26 against 1.07).
  derange = np.asarray(suite.z_shuffle_permutation(n_test))
  neighbour = np.roll(np.arange(n_test), 1)

  def evaluate(key, seed):
    learner.training_mode(False)
    with torch.no_grad(), _own_randomness(seed):
      ctx = [learner.eval_buffer.task_buffers[k].random_batch(algo["max_path_length"])
             for k in eval_tasks]  # offline_rollout's context (samplers/util.py:7)
      parts = ["observations", "actions", "rewards"]
      if algo["use_next_obs_in_context"]:
        parts.append("next_observations")
      context = torch.stack([torch.cat([torch.as_tensor(b[n], dtype=torch.float32)
                                        for n in parts], -1) for b in ctx])
      agent.infer_posterior(context)
      z = agent.z_means
      out = {}
      for name, codes in (("iid", z), ("z_shuffle", z[derange]),
                          ("z_shuffle_neighbour", z[neighbour])):
        state = reset(jax.random.split(key, n_test), tasks)
        ret, alive = np.zeros(n_test), np.ones(n_test)
        for _ in range(horizon):
          obs = torch.as_tensor(np.array(state.obs), dtype=torch.float32)
          act = policy(1, n_test, torch.cat([obs, codes], -1), deterministic=True)[0]
          state = step(state, jnp.asarray(act.numpy()), tasks)
          ret += np.asarray(state.reward) * alive
          alive = alive * (1.0 - np.asarray(state.done))
        out[name] = ret
    return out

  def diagnostics(seed):
    """Their quantities on a fresh meta-batch of training tasks (no update)."""
    with torch.no_grad(), _own_randomness(seed):
      idx = np.random.choice(train_tasks, algo["meta_batch"], replace=algo["mb_replace"])
      context = learner.sample_context(idx)
      o, act, _, _, _ = learner.sample_sac(idx)
      outs, task_z, _ = agent(o, context, task_indices=idx)
      t, b, _ = o.size()
      o, act = o.view(t * b, -1), act.view(t * b, -1)
      new_a, log_pi = outs[0], outs[3]
      q_data = 0.5 * (qf1(t, b, o, act, task_z) + qf2(t, b, o, act, task_z))
      q_pi = torch.min(qf1(t, b, o, new_a, task_z), qf2(t, b, o, new_a, task_z))
      return {"critic/q": float(q_data.mean()), "actor/q": float(q_pi.mean()),
              "actor/entropy": float(-log_pi.mean()),
              "encoder/z_spread": float(agent.z_means.std(0, unbiased=False).mean()),
              "actor/action_abs": float(new_a.abs().mean()),
              "data/action_abs": float(act.abs().mean())}

  norm = meta.get("normalisation") or {}
  rnd, exp = norm.get("random"), norm.get("expert")
  os.makedirs(os.path.dirname(os.path.abspath(a.out)) or ".", exist_ok=True)
  header = {"what": "official FOCAL (FOCAL-ICLR/FOCAL-ICLR) trained on a jcomrl dataset",
            "focal_tree": focal, "dataset": os.path.abspath(a.dataset),
            "dataset_sha": meta.get("arrays", {}).get("reward", {}).get("sha256"),
            "env": env_name, "sizes": a.sizes, "seed": a.seed, "net_size": net_size,
            "algo_overrides": a.algo,
            "encoder_hidden": enc_hidden,
            "variant": {k: v for k, v in variant.items() if k != "util_params"},
            "jcomrl_commit": source_commit(), "cpu": cpu_model(), "normalisation": norm}
  key = jax.random.key(a.seed)
  per_itr = int(algo["num_train_steps_per_itr"])
  t0 = time.time()
  done, it = 0, 0
  with open(a.out, "w") as f:
    f.write(json.dumps({"header": header}) + "\n")
    while done < a.num_updates:
      learner.training_mode(True)
      with contextlib.redirect_stdout(sys.stderr):
        if it == 0:  # rl_algorithm.py:410-416
          for idx in train_tasks:
            learner.task_idx = idx
            fenv.reset_task(idx)
            learner.collect_data(algo["num_initial_steps"], 1, np.inf,
                                 buffer=learner.train_buffer)
        for _ in range(algo["num_tasks_sample"]):  # rl_algorithm.py:418-433
          idx = np.random.choice(train_tasks, 1)[0]
          learner.task_idx = idx
          fenv.reset_task(idx)
          learner.enc_replay_buffer.task_buffers[idx].clear()
          if algo["num_steps_prior"] > 0:
            learner.collect_data(algo["num_steps_prior"], 1, np.inf, buffer=learner.train_buffer)
          if algo["num_steps_posterior"] > 0:
            learner.collect_data(algo["num_steps_posterior"], 1, algo["update_post_train"],
                                 buffer=learner.train_buffer)
          if algo["num_extra_rl_steps_posterior"] > 0:
            learner.collect_data(algo["num_extra_rl_steps_posterior"], 1,
                                 algo["update_post_train"], buffer=learner.train_buffer,
                                 add_to_enc_buffer=False)
      with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        for _ in range(per_itr):  # rl_algorithm.py:438-443 (its loss dict is printed every 10)
          indices = np.random.choice(train_tasks, algo["meta_batch"], replace=algo["mb_replace"])
          learner._do_training(indices, zloss=True)
      done += per_itr
      it += 1
      if done % a.eval_every < per_itr or done >= a.num_updates:
        key, k_eval = jax.random.split(key)
        rets = evaluate(k_eval, seed=a.seed * 100003 + done)
        loss = learner.loss
        row = {"step": done, "wall_s": round(time.time() - t0, 1),
               "critic/loss": float(loss["qf_loss"]), "actor/loss": float(loss["policy_loss"]),
               "encoder/loss": float(loss["z_loss"]), "actor/kl": float(loss["div_estimate"]),
               "brac/weight": float(learner.get_alpha.detach()), "dual/loss": float(loss["c_loss"]),
               "critic/q_batch": 0.5 * float(loss["q1_pred"] + loss["q2_pred"]),
               **diagnostics(seed=a.seed * 100003 + done + 1),
               "eval/iid": float(rets["iid"].mean()),
               "eval/iid_se": float(rets["iid"].std(ddof=1) / np.sqrt(n_test)),
               "eval/z_shuffle": float(rets["z_shuffle"].mean()),
               "eval/shuffle_drop_se": float((rets["iid"] - rets["z_shuffle"]).std(ddof=1)
                                             / np.sqrt(n_test)),
               "eval/z_shuffle_neighbour": float(rets["z_shuffle_neighbour"].mean()),
               "eval/iid_per_task": rets["iid"].round(2).tolist(),
               "eval/z_shuffle_per_task": rets["z_shuffle"].round(2).tolist(),
               "buffer/rl_per_task": float(np.mean([learner.replay_buffer.task_buffers[k]._size
                                                     for k in train_tasks]))}
        if rnd is not None and exp is not None:
          row["eval/iid_normalised"] = 100 * (row["eval/iid"] - rnd) / (exp - rnd)
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(f"step {done}: iid {row['eval/iid']:.1f} z_shuffle {row['eval/z_shuffle']:.1f} "
              f"Q data {row['critic/q']:.1f} Q pi {row['actor/q']:.1f} "
              f"critic loss {row['critic/loss']:.2f} alpha {row['brac/weight']:.0f} "
              f"({row['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
  main()
