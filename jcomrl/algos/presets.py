"""Named algorithm presets with each paper's settings, per environment of the suite.

``preset(name, env)`` returns ``{"learner": {...}, "hparams": {...}, "num_steps": int}``: keyword
overrides for :class:`~jcomrl.algos.config.LearnerConfig` (without the env's sizes, which come
from the dataset) and :class:`~jcomrl.algos.config.HParams`. The experiment configs
(``experiments/configs/<preset>.py:<env>``) are thin wrappers around it.

Sources: the official repositories (FOCAL-ICLR/FOCAL-ICLR @cc2f1fd, MoreanP/CSRO @7db1efd,
PKU-RL/CORRO @210ad40, betray12138/UNICORN @d8853cd, Rondorf/BOReL @cf0816f, mxu34/prompt-dt
@5f665e5) and the papers (UNICORN's settings: its Table 7); file and line per setting in
:data:`PROVENANCE`:

* ``focal`` — FOCAL's official configs: encoder 3x200 -> latent 20 (tanh, mean), context of
  ``embedding_batch_size`` random transitions, twin-Q SAC 3x256 + BRAC with the auto-tuned weight
  (``alpha_init``/``alpha_max`` per env, target divergence 0.05, value penalty on ant-dir and
  cheetah-dir), 3 dual steps, reward scale 5, log-std max 0, metric-loss weight 10; the encoder
  sees (s, a, r) on cheetah-vel/-dir and ant-dir and (s, a, r, s') on hopper/walker
  (``use_next_obs_in_context``, default False, true in the hopper/walker configs).
  BRAC as the code: penalty on c's output (``brac_gp="output"``; BRAC's dc/da is ``"grad"``), D
  taken before the 3 dual steps (CSRO: after), each further dual step on a fresh RL batch, raw
  weight clipped only where used, 1e-3 mu^2 and log-sigma^2 actor regularisers; TD targets stop
  at the end of every stored trajectory, as FOCAL's and CSRO's loaders mark its last transition
  terminal (``timeout_as_terminal``).
  Differences: meta-batches are drawn *with* replacement (UNICORN; FOCAL's default has no
  positive pairs), twin-Q SAC without the V network, 200k steps.
  Cheetah-dir and ant-dir: FOCAL's configs for them (``configs/cheetah-dir.json``,
  ``ant-dir.json``) are its paper's 2-task forward/backward setting (train = test = both tasks);
  the suite's envs hold UNICORN's 40 tasks (20 train, 20 test). On those 40 tasks
  (``tasks="unicorn"``, the default) the preset keeps the json's per-task settings (context 256,
  BRAC alpha, value penalty) but not its meta-batch of 4, which was sized for 2 tasks (from 20
  training tasks 4 draws repeat a task, the metric loss's positive pair, in only 27% of
  updates): it takes 16, the meta-batch of FOCAL's multi-task configs (``default.py``,
  ``cheetah-vel.json``) and of the UNICORN code that produced UNICORN Table 2's FOCAL row on
  these 40 tasks (``--config.learner.meta_batch_size=4`` keeps the json's); it trains UNICORN's
  200k updates instead of the json's 1M / 2M.
  ``tasks="focal2"`` is FOCAL's 2-task setting itself: the env's ``"focal"`` variant
  (:data:`FOCAL2_ENV_OVERRIDES`), the json's settings and its budget
  (``experiments/configs/focal.py:cheetah_dir@focal2``). Which setting comes from where and
  whether it carries over to 40 tasks: the PROVENANCE rows "focal ..., cheetah-dir" to
  "focal2 ...".
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
  0.2, ``brac_gp="grad"``, ``brac_div_before_dual=False``). ``unicorn_ss`` uses the code's
  alpha/(1-alpha) (0.15 cheetah-vel/ant, 0.01 cheetah-dir, 1.5 hopper, 0.7 walker); the paper's
  Table 7 has 0.15 on cheetah-dir and 1.5 on walker (``--config.hparams.unicorn_ss.focal_weight=...``).
  ``supervised`` trains the encoder through the critic only.
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
* ``borel`` — BOReL's VAE as UNICORN compares with it (App. C.1, Table 5: no oracle reward
  relabelling): a Gaussian GRU belief over the context trajectory (``gru_gaussian``), reward-only
  reconstruction with a 2x32 decoder, KL to the previous step's belief at weight 0.05, latent 5,
  GRU width 128 (Rondorf/BOReL ``vae_config/args_cheetah_vel.py``), on UNICORN's backbone and
  context. Differences: one relu layer of width 128 embeds (s, a, r, s') jointly (BOReL: three
  per-component embeddings, 32 + 16 + 16 wide); the VAE trains alongside the policy instead of
  before it, and the policy sees the code of the whole context (:mod:`jcomrl.algos.objectives.kl`).
* ``smac`` — SMAC's offline phase (Pong et al. 2022; rail-berkeley/rlkit @ac45a9d): the PEARL
  encoder (``pearl``: product of per-transition Gaussian factors, sampled z), the ``smac``
  objective (reward-decoder squared error + 0.1 KL) and the ``awac`` backbone (advantage weights
  softmax(A / 100) over the meta-batch), 50k updates; settings, sources and the self-supervised
  online phase (not built yet) in :mod:`jcomrl.algos.smac_presets`.
* ``domino`` — DOMINO (YaoMarkMu/DOMINO_MB-MetaRL @1618435) as a context objective
  (:mod:`jcomrl.algos.objectives.domino`): deterministic encoder 256-128-64 (ReLU), code of 30 =
  a global chunk and 2 decomposed sub-contexts of DOMINO's ``context_out_dim`` 10, a context of
  10 transitions (its ``history_length``), InfoNCE per sub-context at temperature 0.004 on dot
  products minus the symmetrised InfoNCE between the sub-contexts, weight 1e-3 with the clip at
  1e4, forward NLL of (s' - s, r) and backward NLL of s - s' (weight 0.5) with 4x200 decoders,
  encoder and decoders at lr 1e-3, meta-batch tasks distinct. DOMINO is model-based (CEM on
  its learned dynamics); the policy here is UNICORN's backbone (the other MLP presets', so the
  comparison isolates the objective), which DOMINO has none of: every such setting is a
  PROVENANCE row "domino ..." saying "jcomrl choice" and why.
* ``prompt_dt`` / ``unicorn_ss_dt`` / ``unicorn_sup_dt`` / ``focal_dt`` (:data:`DT_PRESETS`) — the
  decision-transformer backbone (``backbone="dt"``) of Prompt-DT (mxu34/prompt-dt @5f665e5):
  GPT 3 layers x 1 head, embed 128, dropout 0.1, ReLU, K = 20, AdamW lr 1e-4 / wd 1e-4, linear
  warm-up 10k, grad clip 0.25, 16 segments per task, 50k updates (5000 iterations x 10 steps);
  returns-to-go scale and target return per env from Prompt-DT's ``gen_env`` (cheetah-vel 500 / 0,
  cheetah-dir 1000 / 1500, ant-dir 500 / 500; point-robot 10 / 0, jcomrl's: the reward's upper
  bound as Prompt-DT's cheetah-vel target, a scale that puts returns near 1). ``prompt_dt``
  conditions on a 5-step prompt from the context trajectory (objective ``prompt``); the other
  three embed the code of UNICORN-SS / UNICORN-SUP / FOCAL's encoder (the objective's own
  settings and loss, as its MLP preset) as the first token (UNICORN Table 4; no code released).
  Differences: meta-batches of 16 tasks drawn with replacement (Prompt-DT steps on every training
  task at once), one prompt per task and update (Prompt-DT: one per sequence), no state
  normalisation (Prompt-DT normalises states by the mean / std of all train and test data,
  ``pdt_main.py:82-89``). On point-robot: 3000 updates with a 600-update warm-up (Prompt-DT's
  1 : 5 ratio). Only the envs of :data:`DT_ENVS` have a return scale and target.

Every setting taken from an official code, with our value, the official one, its source (file:line)
and why where they differ, is a row of :data:`PROVENANCE` (``provenance_markdown()`` prints it);
``preset(..., source="paper")`` takes the paper's value where the paper and the code disagree.

On the point robots every preset shares one small backbone (twin-Q SAC + a fixed BRAC weight
0.1, discount 0.9, 64-wide networks, 64 random transitions as context, 3000 steps) so that the
comparison isolates the representation objective.
"""

from __future__ import annotations

import copy

# The registries: nested() maps each plug-in's flat keys to its subtree.
from jcomrl.algos import backbones, objectives  # noqa: F401
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.smac_presets import SMAC_PROVENANCE, smac_mujoco, smac_point_robot
# presets.ENVS / MUJOCO_ENVS / FOCAL2_* are the names module's
from jcomrl.names import (  # noqa: F401
  ENVS,
  FOCAL2_ENV_OVERRIDES,
  FOCAL2_ENVS,
  MUJOCO_ENVS,
  MULTI_ENV_OVERRIDES,
  MULTI_ENVS,
  TASK_SETTING_ENVS,
  TASK_SETTING_OVERRIDES,
)

PRESETS = ("focal", "corro", "csro", "unicorn_ss", "unicorn_sup", "supervised", "oracle", "borel",
           "smac", "domino")
# Decision-transformer presets: the DT backbone with Prompt-DT's prompt or an objective's code.
DT_PRESETS = ("prompt_dt", "unicorn_ss_dt", "unicorn_sup_dt", "focal_dt")
DT_REPRESENTATION = {"prompt_dt": "prompt", "unicorn_ss_dt": "unicorn_ss",
                     "unicorn_sup_dt": "unicorn_sup", "focal_dt": "focal"}
ALL_PRESETS = PRESETS + DT_PRESETS
# Presets whose official codes build their MLPs with rlkit's torchkit (hidden U(+-1/sqrt(out)),
# bias 0.1, heads U(+-3e-3) / U(+-1e-3)): FOCAL-ICLR rlkit/torch/networks.py:22-58, CSRO's rlkit
# copy, CORRO / UNICORN torchkit/networks.py:17-62. Side by side with the official UNICORN code
# (benchmarks/results/issue35): with flax's default init our
# UNICORN-SS critic loss ran ~2x the official code's over the first 10k updates on the same
# data and sizes, and the policy entropy ~20 nats lower; with this init both track it. BOReL
# builds on varibad's networks (torch nn.Linear defaults): it keeps flax's default. DOMINO (a
# model-based TF code without RL networks) trains on the suite's backbone, so with its init;
# its decoders then take mbrl's truncated normal, DOMINO's own dense-layer init
# (DOMINO_MB-MetaRL utils.py:870-881: sd 1 / (2 sqrt(fan_in)), zero bias).
# ``--config.learner.net_init=lecun_normal`` restores the old init.
RLKIT_INIT_PRESETS = ("focal", "corro", "csro", "unicorn_ss", "unicorn_sup", "supervised",
                      "oracle", "domino")
# Returns-to-go scale and evaluation target return: Prompt-DT prompt_dt/prompt_utils.py:24-50
# (cheetah-dir 1000 / 1500, cheetah-vel 500 / 0, ant-dir 500 / 500); point-robot is jcomrl's.
_DT_ENV = {"point_robot": (10.0, 0.0), "cheetah_vel": (500.0, 0.0),
           "cheetah_dir": (1000.0, 1500.0), "ant_dir": (500.0, 500.0)}
DT_ENVS = tuple(_DT_ENV)
# Prompt-DT pdt_main.py:243 (prompt length), 260 (K), 262 (batch per task), 263-267 (GPT),
# 268-270 (AdamW, warm-up), 112 (timestep table); prompt_seq_trainer.py:79 (clip).
_DT_LEARNER = dict(backbone="dt", dt_context_length=20, dt_embed=128, dt_layers=3, dt_heads=1,
                   dt_dropout=0.1, dt_max_timestep=1000, dt_weight_decay=1e-4, dt_grad_clip=0.25,
                   prompt_length=5, rl_batch_size=16)
DT_NUM_STEPS = 50_000  # pdt_main.py:272-273: 5000 iterations x 10 steps
DT_WARMUP = 10_000  # pdt_main.py:270
# Settings of the MLP backbones that a DT preset drops (its objective side is kept).
_RL_ONLY_LEARNER = ("rl_hidden", "dual_hidden", "brac_auto_weight", "brac_penalty", "brac_gp",
                    "brac_div_before_dual", "brac_actor_div_grad", "soft_target", "dual_steps",
                    "log_std_max")
_RL_ONLY_HPARAMS = ("critic_lr", "dual_lr", "alpha_lr", "discount", "tau", "reward_scale",
                    "entropy_alpha", "brac_weight", "brac_weight_max", "brac_target_div",
                    "brac_weight_lr", "policy_mean_reg", "policy_std_reg")

# UNICORN offline_rl_config/args_<env>.py (d8853cd): latent size, encoder width, the code's
# alpha / (1 - alpha) (``--beta-encoder``) and the paper's (Table 7), entropy weight.
_UNICORN_ENV = {
    "cheetah_vel": dict(latent=5, width=64, ss_weight=0.15, ss_weight_paper=0.15, entropy=0.0),
    "cheetah_dir": dict(latent=5, width=64, ss_weight=0.01, ss_weight_paper=0.15, entropy=0.2),
    "ant_dir": dict(latent=5, width=64, ss_weight=0.15, ss_weight_paper=0.15, entropy=0.2),
    "hopper_param": dict(latent=40, width=128, ss_weight=1.5, ss_weight_paper=1.5, entropy=0.2),
    "walker_param": dict(latent=32, width=128, ss_weight=0.7, ss_weight_paper=1.5, entropy=0.2),
}
# FOCAL configs: context transitions, BRAC alpha_init / alpha_max, value penalty, meta-batch.
_FOCAL_ENV = {
    "cheetah_vel": dict(context=100, alpha_init=50.0, alpha_max=2000.0, value=False, mb=16),
    "cheetah_dir": dict(context=256, alpha_init=500.0, alpha_max=2000.0, value=True, mb=4),
    "ant_dir": dict(context=256, alpha_init=1e6, alpha_max=5e6, value=True, mb=4),
    "hopper_param": dict(context=100, alpha_init=500.0, alpha_max=2000.0, value=False, mb=10),
    "walker_param": dict(context=100, alpha_init=50.0, alpha_max=1e4, value=False, mb=16),
}
# FOCAL's cheetah-dir / ant-dir configs are its 2-task forward/backward setting (FOCAL-ICLR
# cc2f1fd343893bfa6dae5b8fe7640a0d55027cf7, its HEAD; configs/cheetah-dir.json:3-7,
# ant-dir.json:3-9: n_train_tasks 2, n_eval_tasks 2, env n_tasks 2; launch_experiment.py:134-137
# takes tasks[:2] for training and tasks[-2:] for evaluation, the same two). ``tasks="unicorn"`` (default) trains on the suite's 40-task envs;
# ``tasks="focal2"`` is that 2-task setting, on the envs' "focal" variant (jcomrl.envs
# HalfCheetahDir / AntDir VARIANTS: directions -1 / +1, angles 0 / pi; split "same").
# ``tasks="multi"`` (any preset, hopper_param / walker_param) is the multi-confounder tasks of the
# envs' "multi" variant (body mass x joint damping on a 5 x 5 grid, 5 combinations held out;
# jcomrl.envs.mjx_base.MULTI_CONFOUNDER), with the preset's settings unchanged.
TASK_SETTINGS = ("unicorn", "focal2", "multi")
# FOCAL's meta-batch on the 40-task cheetah-dir / ant-dir: FOCAL-ICLR configs/default.py:17 and
# cheetah-vel.json:10 (its multi-task settings), UNICORN offline_rl_config/args_cheetah_dir.py:20
# and args_ant_dir.py:20 (the code behind UNICORN Table 2's FOCAL row on these 40 tasks).
FOCAL_40TASK_META_BATCH = 16
FOCAL2_PRESETS = ("focal",)
# The 2-task configs' training length: num_iterations 500 (default.py:19; neither json sets it)
# x num_train_steps_per_itr, 2000 for cheetah-dir (default.py:25) and 4000 for ant-dir
# (ant-dir.json:16).
FOCAL2_NUM_STEPS = {"cheetah_dir": 500 * 2000, "ant_dir": 500 * 4000}
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
# CORRO's CVAE data: every task's transitions, train and held-out (40 x UNICORN Table 7's size;
# train_generative_model.py:89-92 loads every task directory of --data-dir).
_CORRO_CVAE_TRANSITIONS = {"cheetah_vel": 40 * 200_000, "cheetah_dir": 40 * 200_000,
                           "ant_dir": 40 * 100_000, "hopper_param": 40 * 300_000,
                           "walker_param": 40 * 450_000}

# BOReL's VAE (Rondorf/BOReL vae_config/args_cheetah_vel.py:19,23,43,53; the same in
# args_point_robot_sparse.py): GRU encoder, reward decoder only, KL to the previous belief.
_BOREL = dict(encoder="gru_gaussian", decode_state=False, kl_prior="previous")
_BOREL_KL_WEIGHT = 0.05

# DOMINO (YaoMarkMu/DOMINO_MB-MetaRL 1618435; run_domino.py = run_scripts/run_domino.py,
# utils.py = domino/dynamics/core/utils.py, domino.py = domino/dynamics/domino.py): the context
# encoder 256-128-64 (run_domino.py:354), 3 x context_out_dim 10 = global head + 2 sub-contexts
# (run_domino.py:230-238; utils.py:674-694), a context of history_length 10 transitions
# (run_domino.py:213-217), decoders of the dynamics model's 4 x 200 (run_domino.py:146-148,343),
# one Adam at lr 1e-3 for encoder and decoders (run_domino.py:159; domino.py:744-745); tasks of
# a meta-batch distinct, as the slots its negatives come from (utils.py:791-795). The loss
# weights are the objective's defaults (jcomrl.algos.objectives.domino), written out here.
_DOMINO_LEARNER = dict(encoder="mean_tanh", encoder_hidden=(256, 128, 64), latent_size=30,
                       aux_hidden=(200, 200, 200, 200), context_mode="transitions",
                       context_size=10)
_DOMINO_SETTINGS = dict(num_contexts=2, global_context=True, contrastive_bound="infonce",
                        l2_normalise=False, backward_model=True, decoder_nll="mbrl",
                        decode_state=True)
_DOMINO_HYPER = dict(contrastive_weight=1e-3, temperature=0.004, decomposition_weight=1.0,
                     backward_weight=0.5, decoder_weight=1.0, contrastive_clip=1e4)
DOMINO_ENCODER_LR = 1e-3

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

  CORRO trains the CVAE for 100 epochs at batch 128 over the pooled transitions of every task
  (``PKU-RL/CORRO`` ``train_generative_model.py:89-92,104``,
  ``relabel_model_config/args_*.py:13-14``; ``pretrain_tasks="all"``).
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
  elif name == "borel":  # a trajectory context: one whole 20-step point-robot episode
    lrn.update(_BOREL, encoder_hidden=(64,), context_mode="trajectory", context_size=20)
    hp.update(kl_weight=_BOREL_KL_WEIGHT)
  elif name == "smac":
    p = smac_point_robot(p)
  elif name == "domino":  # the shared small backbone; 3 equal chunks of 3 (global + 2)
    lrn.update(latent_size=9, domino=dict(_DOMINO_SETTINGS))
    hp.update(domino=dict(_DOMINO_HYPER))
  return p


def _mujoco(name: str, env: str, source: str = "code") -> dict:
  if name == "smac":  # SMAC's settings are its own, the same on every env (smac_presets)
    return smac_mujoco()
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
  # UNICORN-lineage presets (unicorn_ss, unicorn_sup, supervised, corro, oracle) and domino.
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
    hp.update(focal_weight=u["ss_weight_paper" if source == "paper" else "ss_weight"],
              decoder_weight=1.0)
  elif name == "supervised":
    lrn.update(encoder="mean_tanh")
  elif name == "borel":
    lrn.update(_BOREL, latent_size=5, encoder_hidden=(128,), aux_hidden=(32, 32))
    hp.update(kl_weight=_BOREL_KL_WEIGHT)
  elif name == "domino":  # UNICORN's backbone; DOMINO's context objective and sizes
    lrn.update(_DOMINO_LEARNER, domino=dict(_DOMINO_SETTINGS))
    hp.update(encoder_lr=DOMINO_ENCODER_LR, domino=dict(_DOMINO_HYPER))
  elif name == "corro":
    latent, hidden = _CORRO_CVAE[env]
    pretrain = corro_cvae_pretrain_steps(
        _CORRO_CVAE_TRANSITIONS[env], meta_batch_size=lrn["meta_batch_size"],
        rl_batch_size=lrn["rl_batch_size"], steps_per_chunk=lrn["steps_per_chunk"])
    lrn.update(encoder="attention", cvae_latent=latent, aux_hidden=(hidden,),
               corro_negatives=16, corro_negative_source="cvae", pretrain_steps=pretrain,
               corro_positives="task", backbone="sac", pretrain_tasks="all")
    hp.update(corro_temperature=0.1, entropy_alpha=0.2)
    p["num_steps"] += pretrain
  return p


def _dt(name: str, env: str, source: str) -> dict:
  """A DT preset: the objective's settings of its MLP preset (none for ``prompt_dt``) with the
  decision-transformer backbone."""
  point = env in ("point_robot", "sparse_point_robot")
  if env not in _DT_ENV:
    raise ValueError(f"no return scale / target return for {name} on {env!r}; the DT presets "
                     f"have {DT_ENVS}")
  if name == "prompt_dt":
    p = copy.deepcopy(_POINT_ROBOT if point else _MUJOCO_COMMON)
    p["learner"].update(context_mode="trajectory", context_size=20 if point else 200)
  else:
    base = name[:-len("_dt")]
    p = _point_robot(base) if point else _mujoco(base, env, source)
  lrn, hp = p["learner"], p["hparams"]
  for k in _RL_ONLY_LEARNER:
    lrn.pop(k, None)
  for k in _RL_ONLY_HPARAMS:
    hp.pop(k, None)
  scale, target = _DT_ENV[env]
  num_steps = 3000 if point else DT_NUM_STEPS
  lrn.update(_DT_LEARNER, dt_return_scale=scale, dt_target_return=target,
             dt_warmup_steps=num_steps // 5 if point else DT_WARMUP)
  hp.update(actor_lr=1e-4)  # pdt_main.py:268
  p["num_steps"] = num_steps
  return p


SOURCES = ("code", "paper")

# Scale profiles. "paper" = the official sizes above. "cpu" (``make paper PROFILE=cpu``)
# = the same presets, code paths, protocols and layer counts at a size a 2-core CPU trains in
# minutes; every reduced setting, next to the paper's:
#   hidden layer widths (RL, dual critic, encoder, aux nets)  min(width, 64)
#                     <- 256 (UNICORN/CORRO RL nets), 256 x 3 and 200 x 3 (FOCAL/CSRO)
#   rl_batch_size      128        <- 256 (all four codes)
#   meta_batch_size    min(mb, 8) <- 16 (UNICORN/CORRO), 4-16 (FOCAL/CSRO configs)
#   num_steps          CPU_NUM_STEPS = 30k updates (ant-dir 3k)  <- 200k (UNICORN Table 7) / FOCAL-CSRO's
#   CORRO CVAE budget  CPU_CORRO_CVAE_EPOCHS passes over the CPU datasets' 40 tasks
#                      <- 100 epochs over 20 x Table-7-size tasks
#   DT presets         GPT width min(dt_embed, 64) <- 128, CPU_DT_SEGMENTS segments of K = 20
#                      steps per task and update <- 16 (Prompt-DT pdt_main.py:262), warm-up
#                      num_steps / 5 <- 10k of 50k; layers, heads, K and the prompt are kept.
#                      Prompt-DT's size (16 segments, width 128) took ~2 s per point-robot
#                      update on the loaded 2-core CPU (the all-presets point-robot table);
#                      the GPT's cost is linear in the segments, so 4 segments cut it ~4x at
#                      a given width.
# Context sizes, latent sizes, learning rates, loss weights and schedules are the paper profile's.
PROFILES = ("paper", "cpu")
CPU_WIDTH = 64
CPU_RL_BATCH = 128
CPU_META_BATCH = 8
# 30k updates (the learning-curve study in benchmarks/results/issue35: on cheetah_vel
# replay data UNICORN-SS's IID return climbs until ~20k updates, -309 at 6k, -82 at 18k, -66 at
# 30k, and FOCAL's until ~24k; at the CPU profile's first budget of 6k neither uses its code).
# The study ran on cheetah_vel only; the other envs but ant-dir take the same budget until
# theirs is measured.
CPU_NUM_STEPS = 30_000
# Ant-Dir: every preset but CORRO trains FOCALSAC's dual critic 3 steps per update (UNICORN
# focalsac.py), ~3x the cost of an update on the other envs, so the CPU profile halves its schedule.
CPU_NUM_STEPS_ENV = {"ant_dir": 3_000}
CPU_STEPS_PER_CHUNK = 500
CPU_CORRO_CVAE_EPOCHS = 20
CPU_DT_SEGMENTS = 4
# Transitions of the CPU datasets (experiments/configs/data.py ``<env>@cpu``: all 40 tasks x
# per-task size) for CORRO's CVAE budget, which passes over every task's data.
_CPU_CVAE_TRANSITIONS = {"cheetah_vel": 40 * 10_000, "cheetah_dir": 40 * 10_000,
                         "ant_dir": 40 * 6_000, "hopper_param": 40 * 10_000,
                         "walker_param": 40 * 10_000}


def _cpu_profile(name: str, env: str, p: dict) -> dict:
  lrn = p["learner"]
  for k in ("rl_hidden", "dual_hidden", "encoder_hidden", "aux_hidden"):
    if k in lrn:
      lrn[k] = tuple(min(int(w), CPU_WIDTH) for w in lrn[k])
  lrn["rl_batch_size"] = CPU_RL_BATCH
  lrn["meta_batch_size"] = min(lrn["meta_batch_size"], CPU_META_BATCH)
  lrn["steps_per_chunk"] = CPU_STEPS_PER_CHUNK
  p["num_steps"] = CPU_NUM_STEPS_ENV.get(env, CPU_NUM_STEPS)
  if lrn.get("backbone") == "dt":  # fewer segments per task, a narrower GPT, warm-up 1 : 5
    lrn.update(rl_batch_size=CPU_DT_SEGMENTS, dt_embed=min(lrn["dt_embed"], CPU_WIDTH),
               dt_warmup_steps=p["num_steps"] // 5)
  if lrn.get("pretrain_steps"):
    lrn["pretrain_steps"] = corro_cvae_pretrain_steps(
        _CPU_CVAE_TRANSITIONS[env], meta_batch_size=lrn["meta_batch_size"],
        rl_batch_size=lrn["rl_batch_size"], steps_per_chunk=lrn["steps_per_chunk"],
        epochs=CPU_CORRO_CVAE_EPOCHS)
    p["num_steps"] += lrn["pretrain_steps"]
  return p


def check_env_profile(name: str, env: str, profile: str) -> None:
  """Raises ValueError unless preset ``name`` can be built for ``env`` at ``profile``."""
  if env not in ENVS:
    raise ValueError(f"no {name} settings for env {env!r}; have {ENVS}")
  if profile not in PROFILES:
    raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
  if profile == "cpu" and env not in MUJOCO_ENVS:
    raise ValueError(f"the cpu profile is for the MuJoCo envs {MUJOCO_ENVS}; {env} is already "
                     "CPU-sized")


def check_tasks(name: str, env: str, tasks: str) -> None:
  """Raises ValueError unless preset ``name`` has settings for ``env``'s task setting ``tasks``
  (:data:`TASK_SETTINGS`)."""
  if tasks not in TASK_SETTINGS:
    raise ValueError(f"unknown task setting {tasks!r}; expected one of {TASK_SETTINGS}")
  if tasks == "focal2" and (name not in FOCAL2_PRESETS or env not in FOCAL2_ENVS):
    raise ValueError(
        f"the focal2 task setting is FOCAL's 2-task config (configs/cheetah-dir.json, "
        f"ant-dir.json): presets {FOCAL2_PRESETS} on {FOCAL2_ENVS}, not {name} on {env}; other "
        "presets have no 2-task settings (train one on the 2-task data with --config.dataset)")
  if tasks == "multi" and env not in MULTI_ENVS:
    raise ValueError(f"the multi task setting (body mass x joint damping, the env's 'multi' "
                     f"variant) is for {MULTI_ENVS}, not {env}")


def preset(name: str, env: str, *, tiny: bool = False, source: str = "code",
           profile: str = "paper", tasks: str = "unicorn") -> dict:
  """The preset ``name`` on ``env`` (``tiny=True``: test-sized networks and schedule).

  ``profile="cpu"`` (MuJoCo envs only) shrinks widths, batches and the schedule as listed at
  :data:`PROFILES`; ``"paper"`` (default) keeps the official sizes.

  ``tasks="unicorn"`` (default): the suite's task setting (40 tasks on the MuJoCo envs);
  ``"focal2"`` (``focal`` on cheetah_dir / ant_dir only): FOCAL's 2-task config, for data of the
  env's ``"focal"`` variant (:data:`FOCAL2_ENV_OVERRIDES`): the same settings as on 40 tasks
  but the config's training length (:data:`FOCAL2_NUM_STEPS`). ``"multi"`` (any preset on
  hopper_param / walker_param): the multi-confounder tasks of the env's ``"multi"`` variant
  (:data:`MULTI_ENV_OVERRIDES`), the preset's settings unchanged.

  ``source="code"`` (default) follows the official code where it and the paper disagree;
  ``"paper"`` takes the paper's value instead (today: UNICORN-SS's alpha/(1-alpha) on cheetah-dir
  and walker, Table 7). Every such setting is a row of :data:`PROVENANCE`.
  """
  if source not in SOURCES:
    raise ValueError(f"unknown preset source {source!r}; expected one of {SOURCES}")
  if name not in ALL_PRESETS:
    raise ValueError(f"unknown preset {name!r}; expected one of {ALL_PRESETS}")
  check_env_profile(name, env, profile)
  check_tasks(name, env, tasks)
  if name in DT_PRESETS:
    p = _dt(name, env, source)
  else:
    p = (_point_robot(name) if env in ("point_robot", "sparse_point_robot")
         else _mujoco(name, env, source))
  if tasks == "focal2":
    # Everything else of _mujoco's FOCAL settings is the 2-task json's already (context,
    # alpha, value penalty, meta-batch 4; the PROVENANCE rows "focal ..., cheetah-dir" on).
    p["num_steps"] = FOCAL2_NUM_STEPS[env]
  elif name == "focal" and env in FOCAL2_ENVS:
    # 40 tasks: the multi-task meta-batch, not the 2-task json's 4 (row "focal meta-batch on 40
    # tasks").
    p["learner"]["meta_batch_size"] = FOCAL_40TASK_META_BATCH
  p["learner"]["representation"] = DT_REPRESENTATION.get(name, name)
  if name in RLKIT_INIT_PRESETS:
    p["learner"]["net_init"] = "rlkit"
  if name in ("focal", "csro"):
    # Their loaders mark every stored trajectory's last transition terminal (PROVENANCE row
    # "focal/csro time-limit ends").
    p["learner"]["timeout_as_terminal"] = True
  if name in ("csro", "domino"):
    # CSRO draws a meta-batch's tasks without replacement (configs/default.py:65
    # ``mb_replace=False``), so FOCAL's positive-pair term never acts in it;
    # ``--config.learner.task_replace=True`` restores jcomrl's earlier draw with replacement.
    # DOMINO's negatives are the meta-batch's other tasks: without replacement no task is its
    # own negative (PROVENANCE row "domino meta-batch draw").
    p["learner"]["task_replace"] = False
  # No extra objective terms in any paper's method; the key is there so that a config can add
  # some (``--config.learner.extra_objectives=corro:0.5``, registered objectives only).
  p["learner"]["extra_objectives"] = ""
  # The MI bound each objective optimises, named so a config can swap it
  # (``--config.learner.corro.contrastive_bound=nwj``): CORRO's InfoNCE (train_contrastive.py), CSRO's
  # CLUB over all K^2 pairs (CSRO sac.py). Any of jcomrl.mi.WITH_NEGATIVES / UPPER_BOUNDS.
  if name == "corro":
    p["learner"].update(contrastive_bound="infonce")
  elif name == "csro":
    p["learner"].update(upper_bound="club")
  # num_task_labels (unicorn_sup's classes) is not a preset setting: jcomrl.run.build
  # takes it from the dataset's number of tasks (and checks an explicit value against it).
  if profile == "cpu":
    p = _cpu_profile(name, env, p)
  if tiny:
    lrn = p["learner"]
    lrn.update(encoder_hidden=(16,), aux_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,),
               meta_batch_size=4, context_size=8, rl_batch_size=8, steps_per_chunk=10,
               latent_size=min(lrn.get("latent_size", 8), 8), dual_steps=1,
               context_mode="transitions")
    if lrn.get("pretrain_steps"):
      lrn["pretrain_steps"] = 10
    if lrn.get("backbone") == "dt":
      lrn.update(dt_embed=16, dt_layers=1, dt_context_length=5, dt_warmup_steps=10,
                 rl_batch_size=4)
      if lrn["representation"] == "prompt":  # the prompt comes from a context trajectory
        lrn["context_mode"] = "trajectory"
    p["num_steps"] = 20 + lrn.get("pretrain_steps", 0)
  return nested(p)


def nested(p: dict) -> dict:
  """Preset ``p`` with its learner and hparams as the run config holds them: the shared keys,
  and each plug-in's own as its subtree (``learner.brac.penalty``, ``hparams.corro.weight``).
  The tables above set them by the flat names of configs before plug-in subtrees
  (``brac_penalty``, ``corro_weight``...), which :meth:`LearnerConfig.nest` maps."""
  learner = LearnerConfig.nest(p["learner"])
  used = LearnerConfig(obs_size=1, action_size=1, task_param_size=1,
                       **{k: learner[k] for k in ("representation", "extra_objectives",
                                                  "backbone") if k in learner}).plugin_names()
  return {**p, "learner": learner, "hparams": HParams.nest(p["hparams"], used)}


# Provenance of every preset and protocol setting that follows an official code: (setting, our
# value, official value, source file:line, why if different; "" = the same). Repositories and
# commits: UNICORN betray12138/UNICORN d8853cd, FOCAL FOCAL-ICLR cc2f1fd, CSRO MoreanP/CSRO
# 7db1efd, CORRO PKU-RL/CORRO 210ad40, mbrl-lib v0.2.0, TD3+BC sfujim/TD3_BC, DOMINO
# YaoMarkMu/DOMINO_MB-MetaRL 1618435 (utils.py = domino/dynamics/core/utils.py, domino.py =
# domino/dynamics/domino.py, run_domino.py = run_scripts/run_domino.py). Checked by
# tests/test_presets_provenance.py (every row has a source; a difference says why).
PROVENANCE = (
    ("network init (policy, Q, dual critic, MLP encoder) of focal, corro, csro, unicorn_ss, "
     "unicorn_sup, supervised, oracle", "rlkit: hidden U(+-1/sqrt(out width)), bias 0.1, "
     "Q/dual/encoder heads U(+-3e-3), policy head U(+-1e-3)", "same",
     "FOCAL-ICLR rlkit/torch/networks.py:22-58 (Mlp: fanin_init, b_init_value=0.1, init_w=3e-3); "
     "UNICORN torchkit/networks.py:17-62, torchkit/pytorch_utils.py:40-49 (fanin_init reads "
     "size[0] of the [out, in] weight), models/policy.py:37-59 (init_w=1e-3)", ""),
    ("decoder init (unicorn_ss GaussianMLP, with net_init rlkit)",
     "truncated normal (+-2 sd), sd 1/(2 sqrt(fan_in)), bias 0", "same",
     "mbrl 0.2.0 models/util.py:15-28 (EnsembleLinearLayer weight [members, in, out]), "
     "util/math.py:69-93; UNICORN models/decoder.py FOCALDecoder", ""),
    # --- UNICORN lineage (unicorn_ss, unicorn_sup, supervised, oracle) ---
    ("unicorn latent / encoder width, cheetah-vel/-dir, ant-dir", "5 / 2x64", "5 / 2x64",
     "UNICORN offline_rl_config/args_cheetah_vel.py:65,67; args_cheetah_dir.py:59,61; "
     "args_ant_dir.py:59,61", ""),
    ("unicorn latent / encoder width, hopper / walker", "40 / 2x128, 32 / 2x128", "same",
     "args_hopper_param.py:59,61; args_walker_param.py:59,61", ""),
    ("unicorn_ss alpha/(1-alpha), cheetah-vel / ant-dir / hopper", "0.15 / 0.15 / 1.5", "same",
     "args_cheetah_vel.py:128; args_ant_dir.py:120; args_hopper_param.py:118", ""),
    ("unicorn_ss alpha/(1-alpha), cheetah-dir / walker", "0.01 / 0.7 (source='paper': 0.15 / 1.5)",
     "same (paper Table 7: 0.15 / 1.5)", "args_cheetah_dir.py:121; args_walker_param.py:119",
     ""),
    ("unicorn_ss reconstruction NLL", "mean((t-mu)^2 e^-lv + lv), no 1/2 (decoder_nll='mbrl')",
     "same", "mbrl-lib mbrl/util/math.py:59-61, models/gaussian_mlp.py:299-304; UNICORN "
     "models/decoder.py:203-208", ""),
    ("unicorn entropy weight", "0 cheetah-vel, 0.2 others", "same",
     "args_cheetah_vel.py:38; args_cheetah_dir.py:36; args_ant_dir.py:33; args_hopper_param.py:36",
     ""),
    ("unicorn RL networks", "2x256", "same (paper Table 7: depth 3)",
     "UNICORN train_offline_FOCAL.py:197-224", ""),
    ("unicorn meta-batch tasks", "16 drawn with replacement, kept for 200 updates",
     "same (one draw per iteration)", "train_offline_FOCAL.py:284-289,328; args_*.py:25",
     ""),
    ("unicorn ant-dir backbone", "FOCALSAC: target min Q' - 0.2 D (no entropy), actor log pi - "
     "min Q + 0.2 D with D constant, GP on c's output, D before the 3 dual steps",
     "same", "focalsac.py:131-136,196; brac/divergences.py:34-43,66-73; "
     "train_offline_FOCAL.py:356-364", ""),
    ("unicorn ant-dir policy samples for D", "separate samples for target, actor and dual",
     "one shared sample", "train_offline_FOCAL.py:356-359", "sampling noise only"),
    ("unicorn training length", "200k updates", "same (1000 iterations x 200)",
     "args_*.py:25; train_offline_FOCAL.py:328", ""),
    ("stochastic encoder at evaluation", "sampled code (EvalSettings.encoder_code='sample'; "
     "'mean' option)", "same (rsample)", "UNICORN models/encoder.py:246-250,262; "
     "train_offline_FOCAL.py:484", ""),
    ("hopper/walker episode end, UNICORN/CORRO variants", "stored terminal 0; evaluation sums "
     "all 200 steps", "same", "CORRO learner.py:474,484; UNICORN hopper_rand_params.py:37; "
     "train_offline_FOCAL.py:491-504; wrappers.py:128-134", ""),
    ("OOD behaviour sources", "trained snapshots only (ood_snapshots='trained')",
     "same (agent20 onwards)", "UNICORN ood_test_config/AntDir-v0.txt; CORRO "
     "learner.py:199-200,294-302", ""),
    # --- FOCAL ---
    ("focal encoder / latent / RL nets", "3x200 / 20 / 3x256", "same",
     "FOCAL configs/default.py:7-8; launch_experiment.py:58,64", ""),
    ("focal context s'", "off on cheetah-vel/-dir, ant-dir; on hopper/walker", "same",
     "default.py:67; hopper_rand_params.json:10; walker_rand_params.json:11", ""),
    ("focal context / alpha_init / alpha_max / meta-batch, cheetah-vel", "100 / 50 / 2e3 / 16",
     "same", "cheetah-vel.json:19,26-27,10", ""),
    # FOCAL's cheetah-dir / ant-dir configs are its 2-task setting: the rows from here to
    # "focal2 behaviour data" say what the 40-task preset (tasks="unicorn") and the 2-task one
    # (tasks="focal2") take from them.
    ("focal ..., cheetah-dir (value penalty); 40 tasks and focal2", "256 / 500 / 2e3 / 4, yes",
     "same (the 2-task config)",
     "cheetah-dir.json:18 (embedding_batch_size), default.py:62-63 (alpha_init / alpha_max: the "
     "json sets none), cheetah-dir.json:10 (meta_batch), 27 (use_value_penalty)", ""),
    ("focal ..., ant-dir (value penalty); 40 tasks and focal2", "256 / 1e6 / 5e6 / 4, yes",
     "same (the 2-task config)",
     "ant-dir.json:20 (embedding_batch_size), 27-28 (alpha_init / alpha_max), 11 (meta_batch), "
     "31 (use_value_penalty)", ""),
    ("focal tasks, cheetah-dir / ant-dir",
     "tasks='unicorn' (default): the suite's 40 (20 train, 20 test, interleaved); "
     "tasks='focal2': the 2 of the env's 'focal' variant, train = test = both",
     "2 tasks (forward / backward), train = test = both: n_train_tasks 2, n_eval_tasks 2, "
     "env n_tasks 2; tasks[:2] trained on, tasks[-2:] evaluated ('randomize_tasks' sits in "
     "env_params, so the shuffled branch is not taken)",
     "FOCAL cheetah-dir.json:3-7; ant-dir.json:3-9; launch_experiment.py:99,134-137",
     "the 40 tasks are the suite's benchmark (UNICORN's comparison, and what every other preset "
     "trains on); tasks='focal2' is FOCAL's own setting"),
    ("focal context size / BRAC alpha / value penalty on 40 tasks", "the 2-task config's, kept",
     "no 40-task config", "as the two rows above",
     "kept: per-task quantities (a context is drawn from one task's data; BRAC regularises "
     "towards that task's behaviour), independent of how many tasks there are"),
    ("focal meta-batch on 40 tasks", "16 tasks drawn with replacement (CPU profile: 8)",
     "4 of the 2 tasks in the 2-task configs; 16 in its multi-task ones; no 40-task config",
     "cheetah-dir.json:10; ant-dir.json:11; default.py:17; cheetah-vel.json:10; UNICORN "
     "offline_rl_config/args_cheetah_dir.py:20, args_ant_dir.py:20",
     "the 2-task configs' 4 was sized for 2 tasks, where 4 draws always repeat a task; from 20 "
     "training tasks 4 draws with replacement repeat one (a positive pair of the metric loss) "
     "in 1 - 20*19*18*17/20^4 = 27% of updates only (8: 80%, 16: >99.9%), so in the others "
     "only the repulsive term acts. 16 is FOCAL's multi-task default and what UNICORN's code "
     "ran FOCAL with on these 40 tasks (its Table 2); --config.learner.meta_batch_size=4 keeps "
     "the 2-task config's"),
    ("focal2 meta-batch draw", "4 of the 2 tasks with replacement: every meta-batch holds a "
     "positive pair", "mb_replace False: np.random.choice(2 tasks, 4, replace=False) raises "
     "ValueError",
     "FOCAL rl_algorithm.py:440; default.py:70; cheetah-dir.json, ant-dir.json (no mb_replace)",
     "the published 2-task config cannot draw 4 of 2 tasks without replacement; the preset's "
     "draw with replacement (row 'focal task sampling') is the only one that runs"),
    ("focal2 training length", "1M updates cheetah-dir, 2M ant-dir",
     "same: 500 iterations x 2000 (cheetah-dir) / 4000 (ant-dir) updates",
     "default.py:19,25; ant-dir.json:16 (cheetah-dir.json sets neither)", ""),
    ("focal2 tasks and rewards", "cheetah direction -1 / +1 (task 0 / 1), reward dir * v_x - "
     "0.05 sum(a^2); ant angle 0 / pi, reward v . dir - 0.5 sum(a^2) - 0.5e-3 "
     "sum(clip(cfrc_ext, -1, 1)^2) + 1, terminal outside torso z in [0.2, 1]", "same",
     "FOCAL rlkit/envs/half_cheetah_dir.py:27,41-46; rlkit/envs/ant_dir.py:18-33,50-53",
     ""),
    ("focal2 behaviour data", "data.py:<env>@focal2: <env>@cpu's per-task SAC recipe and "
     "per-task size (10k cheetah, 6k ant), 10 snapshots, mixed quality",
     "SAC behaviour policies (pytorch_sac train.yaml, policy_train.py); n_trj 50 sampled "
     "trajectories per saved checkpoint",
     "FOCAL README.md:30-46; cheetah-dir.json:21,25; ant-dir.json:23,25; "
     "rl_algorithm.py:102-110",
     "FOCAL's collection is not reproduced; the 40-task CPU data's recipe makes the two task "
     "settings comparable at a size 2 CPU cores build"),
    ("focal ..., hopper", "100 / 500 / 2e3 / 10, no", "same",
     "hopper_rand_params.json:20,11; default.py:60,62-63", ""),
    ("focal ..., walker", "100 / 50 / 1e4 / 16, no", "same", "walker_rand_params.json:22,32-33,27,12",
     ""),
    ("focal reward scale / metric weight / target D / alpha lr / dual steps / dual lr",
     "5 / 10 / 0.05 / 1 / 3 / 1e-4", "same", "default.py:47,66,64,38,39,37", ""),
    ("focal log-std max", "0", "same", "rlkit/torch/sac/policies.py:14", ""),
    ("focal/csro gradient penalty", "on c's output sqrt(1e-8 + c^2), weight 5", "same",
     "FOCAL/CSRO torchkit brac/divergences.py:34-43", ""),
    ("focal D timing", "before the dual steps", "same", "FOCAL sac.py:278-286", ""),
    ("focal actor D gradient", "through D at the pre-step dual weights",
     "through D at the post-step weights (torch 1.2 in-place .data updates)",
     "FOCAL sac.py:278,352", "an autograd artefact of torch 1.2; 3 Adam steps at lr 1e-4 apart"),
    ("focal/csro BRAC weight", "raw weight stored, clip(0, alpha_max) where used", "same",
     "FOCAL sac.py:95-97,377-382; CSRO sac.py:100-102,400-405", ""),
    ("focal/csro policy regularisers", "1e-3 mean mu^2 + 1e-3 mean log sigma^2", "same",
     "FOCAL sac.py:361-368, default.py:40-41; CSRO sac.py:384-391, default.py:36-37", ""),
    ("focal/csro extra dual steps", "fresh RL batch each (dual_fresh_batches)", "same",
     "FOCAL sac.py:201-222; CSRO sac.py:206-224", ""),
    ("focal/csro value network", "twin Q only", "twin Q + V network", "FOCAL sac.py",
     "the SAC-v2 form shared by every jcomrl backbone"),
    ("focal task sampling", "with replacement", "with replacement in FOCAL-latest "
     "(np.random.choice without replace=False, commented 'sample with replacement! it is "
     "important for FOCAL'); without in FOCAL-ICLR (mb_replace=False at cc2f1fd and 36431ed)",
     "FOCAL-latest bee78b0 train_offline_FOCAL.py:234; FOCAL-ICLR configs/default.py:70, "
     "rlkit/core/rl_algorithm.py:440",
     "FOCAL-latest's draw: the metric loss needs positive pairs inside a meta-batch, and "
     "FOCAL-ICLR's 2-task configs cannot draw 4 of 2 tasks without replacement"),
    ("csro task sampling", "without replacement", "same (mb_replace=False)",
     "CSRO configs/default.py:65", ""),
    ("focal/csro time-limit ends", "terminal in the TD target (timeout_as_terminal=True)",
     "same: the loader marks the last transition of every stored trajectory terminal",
     "FOCAL-ICLR rlkit/core/rl_algorithm.py:153-154 (train), 164-165 (eval); CSRO "
     "rlkit/core/rl_algorithm.py:151-152, 162-163",
     "followed since the side-by-side with FOCAL's code on one dataset "
     "(benchmarks/results/issue35): with it Q(s, a_data) and the critic loss track the official "
     "curves; without it (the other presets' handling, a time limit is not a state) Q settles "
     "near r/(1-gamma) instead of ~57% of it on 200-step trajectories: "
     "--config.learner.timeout_as_terminal=False"),
    ("focal/csro training length (focal: tasks='unicorn')", "200k updates",
     "FOCAL 100k cheetah-vel, 1M cheetah-dir, 2M ant/hopper/walker; CSRO 105k (210k ant-goal)",
     "FOCAL default.py:19,25, cheetah-vel.json:18, ant-dir.json:16; CSRO cheetah-vel.json:15,18",
     "one budget for every preset, as UNICORN's comparison"),
    # --- CSRO ---
    ("csro context s'", "off on cheetah-vel/-dir, ant-dir; on hopper/walker", "same",
     "CSRO default.py:62; hopper_rand_params.json:14; walker_rand_params.json:14", ""),
    ("csro lambda / context / alpha_init / alpha_max / latent / meta-batch, cheetah-vel",
     "10 / 100 / 50 / 2e3 / 20 / 16", "same", "cheetah-vel.json:44,20,37-38,7,14", ""),
    ("csro cheetah-dir", "cheetah-vel's values", "no config", "CSRO configs/",
     "CSRO ships no cheetah-dir config"),
    ("csro ant-dir", "ant-goal's: 50 / 512 / 500 / 2e3 / 20 / 10", "no config (ant-goal: same)",
     "ant-goal.json:44,20,37,38,7,14", "CSRO has no ant-dir config; jcomrl has no ant-goal env"),
    ("csro hopper", "25 / 256 / 50 / 1e4 / 20 / 16", "same",
     "hopper_rand_params.json:45,21,38,39,7,15", ""),
    ("csro walker", "25 / 256 / 50 / 1e4 / 40 / 16", "same",
     "walker_rand_params.json:44,21,37,38,7,15", ""),
    ("csro D timing", "after the dual steps", "same", "CSRO sac.py:278-287", ""),
    ("csro CLUB weight", "lambda * 2 / latent", "lambda (mean over dims, no 1/2)",
     "CSRO rlkit/torch/sac/sac.py:316-322", "our CLUB is a log-likelihood in nats; same gradient"),
    ("csro q_psi weight / NLL form", "10 / with 1/2", "same", "cheetah-vel.json:43; sac.py:303",
     ""),
    ("csro q_psi update order", "CLUB uses q_psi before its update", "q_psi updated first",
     "CSRO sac.py", "not yet an option (noticed in a review of CSRO's sac.py)"),
    ("csro online schedule", "z = 0 until num_exp_traj_eval episodes, z inferred after each "
     "evaluation episode, half random steps (online_schedule='csro')", "same",
     "CSRO rl_algorithm.py:505-514,528-534,569-570; util.py:346-354", ""),
    ("csro online rounds x context episodes", "point-robot 20 x 1, ant-dir 4 x 2, MuJoCo 3 x 2",
     "point-robot 400 steps / 20 = 20 x 1; ant-goal 800 / 200 = 4 x 2; walker 600 / 200 = 3 x 2",
     "CSRO configs/point-robot.json:19,22,26; ant-goal.json:19,22,26; "
     "walker_rand_params.json:20,23,27",
     "fixed rounds: CSRO runs more, shorter rounds after early terminations"),
    ("focal online accumulation per round", "one episode length (3 x 20 point-robot, 3 x 200)",
     "same (random_batch(max_path_length))", "CSRO rlkit/samplers/util.py:8", ""),
    # --- CORRO ---
    ("corro CVAE latent / hidden", "5 / 1x64 cheetah, 64 / 1x128 ant/hopper/walker", "same",
     "CORRO relabel_model_config/args_cheetah_vel.py:18-20; args_{ant_dir,hopper_param,"
     "walker_param}.py:18-19", ""),
    ("corro CVAE loss", "mean-MSE(s') + mean-MSE(r) + 0.2 KL", "same",
     "train_generative_model.py:114-118; args_*.py:17", ""),
    ("corro CVAE budget", "ceil(100 N / (16 x 256)) updates (100 passes)", "100 epochs at batch 128",
     "relabel_model_config/args_*.py:13-15", "same data passes in jcomrl's batch; 32x fewer updates"),
    ("corro CVAE data", "every task row, train and held-out (pretrain_tasks='all'; 'train' = "
     "jcomrl's earlier default)", "same: every task directory of --data-dir",
     "CORRO train_generative_model.py:89-92; relabel_model_config/args_cheetah_vel.py:28; "
     "UNICORN d8853cd utils/offline_utils.py:159-169 (load_dataset lists every task dir)", ""),
    ("corro positives", "any transition of the anchor's task (corro_positives='task')", "same",
     "train_contrastive.py:185-191", ""),
    ("corro temperature / negatives / reward std / entropy", "0.1 / 16 / 0.5 / 0.2", "same",
     "offline_rl_config/args_cheetah_vel.py:76,74,71,32", ""),
    ("corro anchors per step", "meta-batch x context", "64", "args_cheetah_vel.py:73",
     "the encoder trains jointly with the RL stage on its batch"),
    ("corro encoder stage", "alongside RL", "separate stage before RL", "train_contrastive.py",
     "one compiled learner; the pretrained CVAE still comes first"),
    # --- TD3+BC (no preset uses it) ---
    ("td3bc BC term", "mean over batch and action dims (td3bc_bc='mean')", "same (F.mse_loss)",
     "sfujim/TD3_BC TD3_BC.py:143", ""),
    # --- decision transformer (prompt_dt, unicorn_ss_dt, unicorn_sup_dt, focal_dt) ---
    ("dt GPT layers / heads / embed / dropout / activation", "3 / 1 / 128 / 0.1 / relu", "same",
     "Prompt-DT pdt_main.py:263-267; kzl gym/experiment.py:292-296", ""),
    ("dt context K / prompt length / segments per task", "20 / 5 / 16", "same",
     "pdt_main.py:260,243,262", ""),
    ("dt optimiser", "AdamW lr 1e-4 wd 1e-4, linear warm-up 10k, clip 0.25", "same",
     "pdt_main.py:124-133,268-270; prompt_seq_trainer.py:79", ""),
    ("dt loss", "action MSE on the state tokens, real steps only", "same",
     "pdt_main.py:142; prompt_seq_trainer.py:68-75", ""),
    ("dt segment sampling", "start uniform over stored steps, window to the episode end, "
     "left-padded", "same (trajectory p ~ length, start uniform)", "prompt_utils.py:209-264", ""),
    ("dt return scale / target, cheetah-vel / cheetah-dir / ant-dir",
     "500 / 0, 1000 / 1500, 500 / 500", "same", "prompt_utils.py:24-50", ""),
    ("dt return scale / target, point-robot", "10 / 0", "no point-robot config", "jcomrl",
     "Prompt-DT has no point-robot; target = the reward's bound as its cheetah-vel"),
    ("dt training length", "50k updates (point-robot 3k, warm-up 600)", "5000 x 10 = 50k",
     "pdt_main.py:272-273", "point-robot: a short schedule with the same warm-up ratio"),
    ("dt timestep table", "1000 entries", "same (max_ep_len=1000)", "pdt_main.py:112", ""),
    ("dt meta-batch", "16 tasks with replacement", "every training task each step",
     "prompt_utils.py:162-205", "the learner's task-vmapped meta-batch; UNICORN's size"),
    ("dt state normalisation", "none", "mean / std of all train + test data",
     "pdt_main.py:82-89; prompt_utils.py:425-427", "not yet implemented"),
    ("prompt_dt prompt", "5 steps ending one before the context trajectory's end, one per task "
     "and update", "same window, one per sequence", "prompt_utils.py:115-120,174",
     "z is per task in jcomrl"),
    ("prompt_dt prompt tokens", "own embeddings, no LayerNorm, before the sequence", "same",
     "prompt_decision_transformer.py:42-45,78,86-118", ""),
    ("*_dt task code token", "linear embedding of z as the first token, no LayerNorm",
     "not released", "UNICORN paper Table 4", "treated as a one-step prompt"),
    # --- point robots ---
    ("point-robot backbone (every preset)", "twin-Q SAC + BRAC 0.1, gamma 0.9, 64-wide, 3000 "
     "steps", "per paper", "jcomrl", "one shared small backbone isolates the objective"),
    # --- BOReL (as UNICORN App. C.1 uses it) ---
    ("borel KL weight / prior", "0.05 / previous belief (kl_prior='previous')", "same",
     "Rondorf/BOReL vae_config/args_cheetah_vel.py:19,53", ""),
    ("borel latent / GRU width", "5 / 128", "same", "args_cheetah_vel.py:24-25", ""),
    ("borel decoders", "reward only, 2x32 (decode_state=False, aux_hidden)", "same",
     "args_cheetah_vel.py:33,36,43", ""),
    ("borel transition embedding", "one relu layer of 128 on (s, a, r, s')",
     "per-component relu embeddings 32 (s) + 16 (a) + 16 (r)", "args_cheetah_vel.py:28-30",
     "one encoder input layout for every jcomrl encoder; the GRU sees the same information"),
    ("borel training", "VAE trained with the policy, z detached from the critic",
     "VAE trained first, then frozen; offline SAC on belief-relabelled states",
     "Rondorf/BOReL README.md:23-42 (train_vae_offline.py, then train_offline_agent.py)",
     "jcomrl's one-stage learner (as for CORRO); UNICORN Table 5's variant infers the belief "
     "from offline context at test time, which is what the IID protocol does"),
    # --- DOMINO (jcomrl.algos.objectives.domino; the "multi" task variant in jcomrl.envs) ---
    ("domino method", "DOMINO's context objective training the encoder of jcomrl's model-free "
     "offline learner", "model-based: a context-conditioned dynamics ensemble planned with CEM",
     "DOMINO run_domino.py:184,313-319; domino/policies/mpc_controller.py",
     "jcomrl's learner is model-free; the context objective is the method's contribution and is "
     "kept, the planner is not"),
    ("domino backbone, schedule, meta-batch and RL batch", "UNICORN's: SAC 2x256 with its "
     "per-env entropy (FOCALSAC on ant-dir), 16 tasks kept 200 updates, RL batch 256, 200k "
     "updates", "none (no policy network: CEM, 200 candidates, horizon 30)",
     "run_domino.py:160,165-167,184",
     "jcomrl choice: the backbone every MLP preset of the suite shares, so that the comparison "
     "isolates the objective"),
    ("domino sub-contexts", "2 decomposed sub-contexts and a global chunk before them "
     "(learner.domino.num_contexts=2, global_context=True)",
     "same: two sub-heads (con_head_layers) and the global head (use_global_head_flag 1)",
     "utils.py:674-694,728-735; run_domino.py:233-238", ""),
    ("domino code size", "30 = 3 chunks of 10", "same: 3 heads of context_out_dim 10",
     "run_domino.py:230-232; utils.py:735", ""),
    ("domino global chunk", "read by the decoders and the policy; no contrastive term",
     "feeds dynamics head 0 only; its weights also project the (stop-gradient) keys",
     "utils.py:142-167,696-703,721-726,735; layers.py:384 (AUTO_REUSE shares cp_output_head)",
     "one decoder reads all of z (row 'domino dynamics heads'); the keys come from the encoder "
     "itself (row 'domino positives and negatives')"),
    ("domino encoder", "one MLP 256-128-64 (ReLU) per transition, tanh, mean over the context; "
     "its output split into the chunks", "two trunks 256-128-64 (ReLU; cp_hidden for the "
     "global head, online_contra for the sub-heads) with linear heads, on the flattened "
     "10-step history of normalised (s' - s, a)",
     "run_domino.py:218-223,354,357; utils.py:601-627,674-694,728-735; "
     "samplers/utils.py:192-215",
     "jcomrl's encoders embed each transition and pool (one network for every objective); the "
     "chunks keep the heads' roles"),
    ("domino context", "10 random transitions (s, a, r, s') of the task",
     "the last history_length = 10 steps", "run_domino.py:213-217",
     "jcomrl's contexts are offline transitions of the task; the same number of them"),
    ("domino contrastive bound, scores, temperature",
     "InfoNCE on dot products / 0.004, no L2 normalisation", "same",
     "utils.py:781-786", ""),
    ("domino positives and negatives", "positive: the same sub-context of a second context of "
     "the task (K transitions of its RL draw), stop-gradient; negatives: those of the "
     "meta-batch's other tasks, stop-gradient",
     "positive: the global head's weights on the contrastive trunk's features of another sample "
     "of the same ensemble slot, stop-gradient; negatives: those of the 4 other slots (its "
     "comment: slots hold different dynamics; the released fit bootstraps each slot over all "
     "data)", "utils.py:696-703,721-726,759-789,791-795,837; domino.py:1259-1263",
     "a second context of the same task is the analogue of a same-dynamics sample, and "
     "jcomrl's meta-batch rows are the tasks the comment describes; no second key network"),
    ("domino decomposition term", "added to the loss: per pair j < k the mean of InfoNCE(query "
     "c_k, keys sg c_j) and InfoNCE(query sg c_j, keys c_k, negatives with gradient); only c_k "
     "gets its gradient", "same (d, subtracted from the cross-entropies)",
     "utils.py:796-826,838-840", ""),
    ("domino decomposition weight", "1 (hparams.domino.decomposition_weight)",
     "same (d subtracted unweighted)", "utils.py:840", ""),
    ("domino contrastive weight and clip", "1e-3, value clipped to +-1e4", "same (cons_lr, "
     "clip_by_value)", "domino.py:123,741-742", ""),
    ("domino contrastive value", "sum over sub-contexts of the mean over tasks of -bound "
     "plus the decomposition's (nats, each bound with its log(M + 1))",
     "mean over samples of cross-entropies summed over the 5 hard-coded slots",
     "utils.py:765,786-788,836-840; domino.py:484",
     "jcomrl's meta-batch is the slot axis: averaging over it keeps 1e-3's weight against the "
     "NLLs, which the official also sums over its slots (domino.py:646-655); the constants "
     "move the point where the clip bites"),
    ("domino forward prediction", "Gaussian NLL of (s' - s, r) given (z, s, a), mean((t - mu)^2 "
     "e^-lv + lv), log-var bounds 0.5 / -10 with the 0.01 penalty, weight 1",
     "the same NLL, bounds and penalty of normalised s' - s only (the reward from the env's "
     "function), weight 1", "domino.py:311,425-427,604-616,657-659,724-728; utils.py:131-140",
     "an offline learner has no reward function: r is decoded as UNICORN-SS's reconstruction "
     "(reused), whose targets are not normalised"),
    ("domino backward prediction", "NLL of s - s' given (z, s', a), + penalty, weight 0.5",
     "same on normalised targets (bb_model, back_coeff 0.5)",
     "run_domino.py:224-226; domino.py:365,374,505-509,661-728,994-996",
     "targets not normalised, as the forward row"),
    ("domino dynamics heads", "one decoder (and one backward head) reading all of z",
     "3 heads, head i reading context chunk i, T-MCL training each trajectory's best head",
     "utils.py:142-167,735; domino.py:618-655",
     "the multiple-choice heads belong to the planner's model; one decoder keeps every chunk "
     "predictive"),
    ("domino decoder sizes", "4 x 200 ReLU (cpu profile 4 x 64)",
     "4 x 200 swish, L2 weight decay 2.5e-5 to 1e-4 per layer",
     "run_domino.py:146-148,343-347", "jcomrl's decoder class (ReLU) and optimiser "
     "(no weight decay)"),
    ("domino decoder init", "mbrl truncated normal, sd 1/(2 sqrt(fan_in)), bias 0 (net_init "
     "rlkit)", "same", "utils.py:867-881", ""),
    ("domino learning rate", "1e-3, one Adam for encoder and decoders", "same",
     "run_domino.py:159; domino.py:744-745", ""),
    ("domino critic gradient", "none: z reaches the critic detached", "same: only the model "
     "losses train the context encoder", "domino.py:724-745", ""),
    ("domino meta-batch draw", "distinct tasks (task_replace=False)",
     "5 slots described as different dynamics; the released fit bootstraps each uniformly",
     "utils.py:765,791-795; domino.py:1259-1263", "a repeated task would be its own negative"),
    ("domino point-robot", "latent 9 (3 chunks of 3) on the shared small backbone",
     "no point-robot", "jcomrl", "jcomrl choice: equal chunks at the shared size"),
    ("multi-confounder tasks (hopper_param / walker_param variant 'multi')",
     "body mass x joint damping scales on the 5 x 5 grid of {0.5, 0.75, 1, 1.25, 1.5}, each "
     "array scaled as a whole; 5 combinations held out (one per level of each group)",
     "DOMINO hopper: the same two groups and levels, drawn independently per episode; tested "
     "on out-of-range corners", "DOMINO domino/envs/config.py:108-117; hopper_env.py:8-10,"
     "67-73,95-102", "held-out combinations test composition inside the trained range, with "
     "fixed tasks as the suite's protocols need; walker takes the hopper's levels (DOMINO has "
     "no walker)"),
)


# SMAC's rows live beside its settings (jcomrl.algos.smac_presets).
PROVENANCE += SMAC_PROVENANCE


def provenance_markdown() -> str:
  """:data:`PROVENANCE` as a Markdown table."""
  rows = ["| setting | ours | official | source | why, if different |", "|---|---|---|---|---|"]
  rows += ["| " + " | ".join(r) + " |" for r in PROVENANCE]
  return "\n".join(rows)
