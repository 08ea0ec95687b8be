"""Named algorithm presets with each paper's settings, per environment of the suite.

``preset(name, env)`` returns ``{"learner": {...}, "hparams": {...}, "num_steps": int}``: keyword
overrides for :class:`~jcomrl.algos.config.LearnerConfig` (without the env's sizes, which come
from the dataset) and :class:`~jcomrl.algos.config.HParams`. The experiment configs
(``experiments/configs/<preset>.py:<env>``) are thin wrappers around it.

Sources (``../shared/reference/comrl-algorithms.md`` §1-2, §6.4, §8):

* ``focal`` — FOCAL's official configs: encoder 3x200 -> latent 20 (tanh, mean), context of
  ``embedding_batch_size`` random transitions, twin-Q SAC 3x256 + BRAC with the auto-tuned weight
  (``alpha_init``/``alpha_max`` per env, target divergence 0.05, value penalty on ant-dir and
  cheetah-dir), 3 dual steps, reward scale 5, log-std max 0, metric-loss weight 10; the encoder
  sees (s, a, r) on cheetah-vel/-dir and ant-dir and (s, a, r, s') on hopper/walker
  (``use_next_obs_in_context``, default False, true in the hopper/walker configs).
  BRAC as the code: penalty on c's output (``brac_gp="output"``; BRAC's dc/da is ``"grad"``), D
  taken before the 3 dual steps (CSRO: after), each further dual step on a fresh RL batch, raw
  weight clipped only where used, 1e-3 mu^2 and log-sigma^2 actor regularisers.
  Differences: meta-batches are drawn *with* replacement (UNICORN; FOCAL's default has no
  positive pairs), twin-Q SAC without the V network, 200k steps.
* ``csro`` — CSRO's configs: FOCAL's encoder and backbone (policy penalty only, ``alpha_init``
  50/500, ``alpha_max`` 2e3 on cheetah / ant-goal, 1e4 on hopper / walker) + lambda * CLUB on
  q(z | s, a) (3x200 net); (s, a, r, s') context on hopper/walker only, as FOCAL. CSRO has no
  cheetah-dir or ant-dir config: cheetah-dir uses cheetah-vel's numbers, ant-dir ant-goal's
  (meta-batch 10, context 512, lambda 50). Our CLUB is in nats (Gaussian
  log-likelihood, summed over latent dims, the 1/2 included); CSRO's code averages the squared
  error over dims without the 1/2, so ``club_weight = lambda * 2 / latent_size`` keeps the
  paper's lambda.
* ``unicorn_ss`` / ``unicorn_sup`` / ``supervised`` — UNICORN (paper Table 7 and code): stochastic
  encoder 2x64 (hopper/walker 2x128), latent 5 (hopper 40, walker 32), context one whole
  200-step trajectory, RL 2x256 as in the code (the paper's table says depth 3), lr 3e-4,
  gamma 0.99, meta-batch 16 drawn with replacement and kept for each iteration of 200 updates,
  RL batch 256, 200k steps. Backbone as the code: plain twin-Q SAC with fixed entropy 0.2
  (cheetah-vel 0), except ant-dir: FOCALSAC (``jcomrl.algos.backbones``: target
  ``min Q' - 0.2 D``, actor ``log pi - min Q + 0.2 D`` with D constant, 3 dual steps, penalty on
  c's output; jcomrl's earlier form is ``soft_target=True, brac_actor_div_grad=True``, entropy
  0.2, ``brac_gp="grad"``, ``brac_div_before_dual=False``). ``unicorn_ss`` uses the
  paper's alpha/(1-alpha) (0.15 cheetah/ant, 1.5 hopper/walker; the code has 0.01 for
  cheetah-dir, 0.7 for walker). ``supervised`` trains the encoder through the critic only.
* ``corro`` — CORRO: attention-pooled, L2-normalised transition encoder (2x64; hopper/walker
  2x128), InfoNCE at temperature 0.1 with 16 CVAE negatives per anchor and the positive any
  transition of the anchor's task, plain SAC with fixed entropy 0.2, 2x256, one-trajectory
  context. CVAE latent/hidden 5/64 (ant/hopper/walker 64/128), loss mean-MSE(s') + mean-MSE(r)
  + 0.2 KL, pre-trained in the same run for as many passes over the training data as CORRO's
  100 epochs (:func:`corro_cvae_pretrain_steps`: batch 4096 instead of 128, so 32x fewer
  updates; the default assumes 20 tasks of the data configs' size, recompute it for another
  dataset). Difference: the transition encoder is trained alongside the RL stage instead of in
  a separate stage before it.
* ``oracle`` — UNICORN's backbone conditioned on the true task parameters.

On the point robots every preset shares one small backbone (twin-Q SAC + a fixed BRAC weight
0.1, discount 0.9, 64-wide networks, 64 random transitions as context, 3000 steps) so that the
comparison isolates the representation objective.
"""

from __future__ import annotations

import copy

PRESETS = ("focal", "corro", "csro", "unicorn_ss", "unicorn_sup", "supervised", "oracle")
ENVS = ("point_robot", "sparse_point_robot", "cheetah_vel", "cheetah_dir", "ant_dir",
        "hopper_param", "walker_param")
MUJOCO_ENVS = ENVS[2:]
NUM_BENCHMARK_TASKS = 40  # every env's benchmark task table (classifier classes)

# UNICORN Table 7 and offline_rl_config/*: latent size, encoder width, alpha / (1 - alpha).
_UNICORN_ENV = {
    "cheetah_vel": dict(latent=5, width=64, ss_weight=0.15, entropy=0.0),
    "cheetah_dir": dict(latent=5, width=64, ss_weight=0.15, entropy=0.2),
    "ant_dir": dict(latent=5, width=64, ss_weight=0.15, entropy=0.2),
    "hopper_param": dict(latent=40, width=128, ss_weight=1.5, entropy=0.2),
    "walker_param": dict(latent=32, width=128, ss_weight=1.5, entropy=0.2),
}
# FOCAL configs: context transitions, BRAC alpha_init / alpha_max, value penalty, meta-batch.
_FOCAL_ENV = {
    "cheetah_vel": dict(context=100, alpha_init=50.0, alpha_max=2000.0, value=False, mb=16),
    "cheetah_dir": dict(context=256, alpha_init=500.0, alpha_max=2000.0, value=True, mb=4),
    "ant_dir": dict(context=256, alpha_init=1e6, alpha_max=5e6, value=True, mb=4),
    "hopper_param": dict(context=100, alpha_init=500.0, alpha_max=2000.0, value=False, mb=10),
    "walker_param": dict(context=100, alpha_init=50.0, alpha_max=1e4, value=False, mb=16),
}
# CSRO configs (MoreanP/CSRO configs/*.json): lambda, context transitions, alpha_init /
# alpha_max, latent size, meta-batch. CSRO ships no cheetah-dir or ant-dir config: cheetah_dir
# takes cheetah-vel.json's values and ant_dir takes ant-goal.json's (jcomrl has no ant-goal).
_CSRO_ENV = {
    "cheetah_vel": dict(lam=10.0, context=100, alpha_init=50.0, alpha_max=2000.0, latent=20,
                        mb=16),
    "cheetah_dir": dict(lam=10.0, context=100, alpha_init=50.0, alpha_max=2000.0, latent=20,
                        mb=16),
    "ant_dir": dict(lam=50.0, context=512, alpha_init=500.0, alpha_max=2000.0, latent=20, mb=10),
    "hopper_param": dict(lam=25.0, context=256, alpha_init=50.0, alpha_max=1e4, latent=20, mb=16),
    "walker_param": dict(lam=25.0, context=256, alpha_init=50.0, alpha_max=1e4, latent=40, mb=16),
}
# FOCAL and CSRO feed s' to the encoder only where a config sets use_next_obs_in_context
# (hopper/walker); the default (configs/default.py) is (s, a, r).
_FOCAL_CSRO_NEXT_OBS = {"cheetah_vel": False, "cheetah_dir": False, "ant_dir": False,
                        "hopper_param": True, "walker_param": True}
_CORRO_CVAE = {"cheetah_vel": (5, 64), "cheetah_dir": (5, 64), "ant_dir": (64, 128),
               "hopper_param": (64, 128), "walker_param": (64, 128)}
# CORRO's CVAE: 100 epochs over the pooled training-task data at batch 128
# (relabel_model_config/args_*.py:13-14). Default pool: 20 training tasks x the per-task sizes of
# experiments/configs/data.py (UNICORN Table 7).
CORRO_CVAE_EPOCHS = 100
_CORRO_TRAIN_TRANSITIONS = {"cheetah_vel": 20 * 200_000, "cheetah_dir": 20 * 200_000,
                            "ant_dir": 20 * 100_000, "hopper_param": 20 * 300_000,
                            "walker_param": 20 * 450_000}

_POINT_ROBOT = dict(
    learner=dict(latent_size=8, encoder_hidden=(64, 64), aux_hidden=(64, 64),
                 rl_hidden=(64, 64), dual_hidden=(64, 64), meta_batch_size=16,
                 context_mode="transitions", context_size=64, rl_batch_size=64,
                 use_next_obs=True, backbone="brac", steps_per_chunk=500),
    hparams=dict(actor_lr=1e-3, critic_lr=1e-3, encoder_lr=1e-3, discount=0.9, tau=0.02,
                 brac_weight=0.1, entropy_alpha=0.2, focal_weight=10.0),
    num_steps=3000,
)

_MUJOCO_COMMON = dict(
    learner=dict(meta_batch_size=16, rl_batch_size=256, rl_hidden=(256, 256),
                 dual_hidden=(256, 256), context_mode="trajectory", context_size=200,
                 use_next_obs=True, steps_per_chunk=1000),
    hparams=dict(actor_lr=3e-4, critic_lr=3e-4, encoder_lr=3e-4, dual_lr=1e-4, discount=0.99,
                 tau=0.005),
    num_steps=200_000,
)


def corro_cvae_pretrain_steps(num_train_transitions: int, *, meta_batch_size: int,
                              rl_batch_size: int, steps_per_chunk: int,
                              epochs: int = CORRO_CVAE_EPOCHS) -> int:
  """jcomrl's ``pretrain_steps`` for CORRO's CVAE budget of ``epochs`` passes over the data.

  CORRO trains the CVAE for 100 epochs at batch 128 over the pooled training-task transitions
  (``PKU-RL/CORRO`` ``train_generative_model.py:92,104``, ``relabel_model_config/args_*.py:13-14``).
  One jcomrl pre-training update sees ``meta_batch_size * rl_batch_size`` transitions (the
  meta-batch's RL batches, pooled), so the same number of passes is
  ``ceil(epochs * N / (meta_batch_size * rl_batch_size))`` updates, rounded up to a whole chunk.
  It is the same data budget with a larger batch: ``(meta_batch_size * rl_batch_size) / 128``
  times fewer Adam updates (32x at 16 x 256) at the same learning rate (3e-4).
  """
  if num_train_transitions <= 0:
    raise ValueError(f"num_train_transitions must be positive, got {num_train_transitions}")
  per_step = meta_batch_size * rl_batch_size
  steps = -(-epochs * num_train_transitions // per_step)
  return -(-steps // steps_per_chunk) * steps_per_chunk


def _point_robot(name: str) -> dict:
  p = copy.deepcopy(_POINT_ROBOT)
  lrn, hp = p["learner"], p["hparams"]
  if name == "csro":
    hp["club_weight"] = 25.0 * 2.0 / lrn["latent_size"]
  elif name == "unicorn_ss":
    lrn["encoder"] = "stochastic"
    hp["focal_weight"] = 0.15
  elif name == "unicorn_sup":
    lrn["encoder"] = "stochastic"
  elif name == "corro":
    lrn.update(encoder="attention", cvae_latent=5, aux_hidden=(64,), pretrain_steps=1000)
    p["num_steps"] += 1000
  return p


def _mujoco(name: str, env: str) -> dict:
  p = copy.deepcopy(_MUJOCO_COMMON)
  lrn, hp = p["learner"], p["hparams"]
  u = _UNICORN_ENV[env]
  if name in ("focal", "csro"):
    f = _FOCAL_ENV[env]
    lrn.update(encoder="mean_tanh", latent_size=20, encoder_hidden=(200, 200, 200),
               aux_hidden=(200, 200, 200), context_mode="transitions", context_size=f["context"],
               rl_hidden=(256, 256, 256), dual_hidden=(256, 256, 256), meta_batch_size=f["mb"],
               backbone="brac", brac_auto_weight=True, dual_steps=3, log_std_max=0.0,
               brac_penalty="both" if f["value"] else "policy")
    hp.update(reward_scale=5.0, focal_weight=10.0, brac_weight=f["alpha_init"],
              brac_weight_max=f["alpha_max"], brac_target_div=0.05, brac_weight_lr=1.0,
              entropy_alpha=1.0)
    # BRAC as FOCAL sac.py (CSRO takes D after its dual steps, sac.py:278-287); default.py:40-41.
    lrn.update(brac_gp="output", brac_div_before_dual=name == "focal")
    hp.update(policy_mean_reg=1e-3, policy_std_reg=1e-3)
    lrn.update(use_next_obs=_FOCAL_CSRO_NEXT_OBS[env])
    if name == "csro":
      c = _CSRO_ENV[env]
      lrn.update(latent_size=c["latent"], context_size=c["context"], brac_penalty="policy",
                 meta_batch_size=c["mb"])
      hp.update(brac_weight=c["alpha_init"], brac_weight_max=c["alpha_max"],
                club_weight=c["lam"] * 2.0 / c["latent"], club_model_weight=10.0)
    return p
  # UNICORN-lineage presets (unicorn_ss, unicorn_sup, supervised, corro, oracle).
  lrn.update(latent_size=u["latent"], encoder_hidden=(u["width"], u["width"]),
             aux_hidden=(u["width"], u["width"]), encoder="stochastic")
  lrn.update(task_resample_every=200)  # UNICORN/CORRO: tasks drawn once per 200-update iteration
  hp.update(entropy_alpha=u["entropy"])
  if env == "ant_dir" and name != "corro":  # UNICORN's FOCALSAC (focalsac.py:119-204)
    lrn.update(backbone="brac", brac_penalty="both", dual_steps=3, brac_gp="output",
               brac_div_before_dual=True, brac_actor_div_grad=False, soft_target=False)
    hp.update(brac_weight=0.2, entropy_alpha=1.0)
  else:
    lrn.update(backbone="sac")
  if name == "unicorn_ss":
    hp.update(focal_weight=u["ss_weight"], decoder_weight=1.0)
  elif name == "supervised":
    lrn.update(encoder="mean_tanh")
  elif name == "corro":
    latent, hidden = _CORRO_CVAE[env]
    pretrain = corro_cvae_pretrain_steps(
        _CORRO_TRAIN_TRANSITIONS[env], meta_batch_size=lrn["meta_batch_size"],
        rl_batch_size=lrn["rl_batch_size"], steps_per_chunk=lrn["steps_per_chunk"])
    lrn.update(encoder="attention", cvae_latent=latent, aux_hidden=(hidden,),
               corro_negatives=16, corro_negative_source="cvae", pretrain_steps=pretrain,
               corro_positives="task", backbone="sac")
    hp.update(corro_temperature=0.1, entropy_alpha=0.2)
    p["num_steps"] += pretrain
  return p


def preset(name: str, env: str, *, tiny: bool = False) -> dict:
  """The preset ``name`` on ``env`` (``tiny=True``: test-sized networks and schedule)."""
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; expected one of {PRESETS}")
  if env not in ENVS:
    raise ValueError(f"no {name} settings for env {env!r}; have {ENVS}")
  p = _point_robot(name) if env in ("point_robot", "sparse_point_robot") else _mujoco(name, env)
  p["learner"]["representation"] = name
  p["learner"]["num_task_labels"] = NUM_BENCHMARK_TASKS
  if tiny:
    lrn = p["learner"]
    lrn.update(encoder_hidden=(16,), aux_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,),
               meta_batch_size=4, context_size=8, rl_batch_size=8, steps_per_chunk=10,
               latent_size=min(lrn.get("latent_size", 8), 8), dual_steps=1,
               context_mode="transitions")
    if lrn.get("pretrain_steps"):
      lrn["pretrain_steps"] = 10
    p["num_steps"] = 20 + lrn.get("pretrain_steps", 0)
  return p
