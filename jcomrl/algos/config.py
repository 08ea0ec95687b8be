"""Static learner configuration and traced hyper-parameters.

``LearnerConfig`` holds everything that fixes shapes and program structure (network sizes,
meta-batch, context length, which objective and backbone): it is hashable and a change
recompiles. ``HParams`` holds the numbers a sweep varies (learning rates, loss weights, discount):
they are traced pytree leaves, so a sweep over them is a ``vmap`` and never a recompile.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
from flax import struct

from jcomrl import mi
from jcomrl.nets.encoders import ENCODERS
from jcomrl.nets.mlp import INITS as NET_INITS

# Names of the MI bounds an objective can select: the registries of jcomrl.mi. The objective and
# backbone names come from their registries (jcomrl.algos.objectives.OBJECTIVES,
# jcomrl.algos.backbones.BACKBONES), read by jcomrl.algos.compose.check, never here.
CONTRASTIVE_BOUNDS = tuple(mi.WITH_NEGATIVES)
UPPER_BOUNDS = tuple(mi.UPPER_BOUNDS)
BRAC_PENALTIES = ("policy", "value", "both", "none")
BRAC_GRADIENT_PENALTIES = ("grad", "output")
TD3BC_BC_REDUCTIONS = ("mean", "sum")
PRETRAIN_TASKS = ("all", "train")
NEGATIVE_SOURCES = ("cvae", "reward_noise")
DECODER_NLLS = ("mbrl", "half")
CORRO_POSITIVES = ("task", "context")
ACTIVATIONS = ("relu", "elu")
# MISA (Ma et al. 2023) lower bounds on I(S; A) with the critic Q as the energy:
# "misa" (per-state log-partition), "dv" (Donsker-Varadhan: one log-partition over the batch),
# "f" (f-divergence / NWJ: E exp(Q - 1)); MISA >= MISA-DV >= MISA-f on the same critic.
MISA_BOUNDS = ("misa", "dv", "f")
# How MISA's actor gets the gradient of its log-partition term, E_mu[grad log pi] with
# mu ~ pi exp(Q): "hmc" (samples of mu by HMC from the data actions, MISA's code), "importance"
# (the policy's own K samples weighted by exp(Q), cheaper and biased for the "misa" bound),
# "none" (drop the term).
MISA_PARTITION_GRADS = ("hmc", "importance", "none")
KL_PRIORS = ("gauss", "previous")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """Structure of one learner (static under jit)."""

  obs_size: int
  action_size: int
  task_param_size: int
  # Representation: objective x encoder.
  representation: str = "focal"
  # Further registered objectives added to the loss, "name:weight,..." (static weights; e.g.
  # "corro:0.5" adds half CORRO's contrastive term to the primary objective's loss).
  extra_objectives: str = ""
  encoder: str = "mean_tanh"
  latent_size: int = 8
  encoder_hidden: tuple[int, ...] = (64, 64)
  use_next_obs: bool = True
  aux_hidden: tuple[int, ...] = (64, 64)  # decoder / classifier / CLUB net / CVAE widths
  decoder_nll: str = "mbrl"  # unicorn_ss: "mbrl" (UNICORN's, no 1/2) | "half" (nats, 1/2)
  # Reconstruction terms: decode s' - s as well as r (BOReL decodes the reward only).
  decode_state: bool = True
  # The ``kl`` term's prior: "gauss" (N(0, I) for every code) or "previous" (a sequence
  # encoder's belief after t steps against the one after t - 1, N(0, I) before the first:
  # VariBAD/BOReL's default ``kl_to_gauss_prior=False``).
  kl_prior: str = "gauss"
  num_task_labels: int = 0  # unicorn_sup: classifier classes (= the dataset's task rows)
  corro_negatives: int = 16
  corro_negative_source: str = "cvae"
  corro_positives: str = "task"  # "task" (CORRO: any transition of the task) | "context"
  # corro's MI lower bound on (anchor, positive, negatives) scores: any of
  # jcomrl.mi.WITH_NEGATIVES (CORRO: "infonce"); interpolated's alpha is contrastive_alpha.
  contrastive_bound: str = "infonce"
  contrastive_alpha: float = 0.5
  # csro's MI upper bound on q_psi's log-likelihoods: "club" (CSRO, all K^2 pairs as its code),
  # "club_sampled" (CLUB-S) or "l1out" (jcomrl.mi.UPPER_BOUNDS).
  upper_bound: str = "club"
  cvae_latent: int = 5
  pretrain_steps: int = 0  # corro + cvae: CVAE-only updates at the start of the run
  # The tasks the pretrain stage draws from: "all" (every task row of the dataset, train and
  # held-out: CORRO fits its CVAE on every task directory, PKU-RL/CORRO
  # train_generative_model.py:89-92 with relabel_model_config/args_*.py --data-dir) or "train"
  # (the training tasks only, jcomrl's behaviour before the CVAE pool was aligned with CORRO).
  pretrain_tasks: str = "all"
  # Offline-RL backbone.
  backbone: str = "brac"
  rl_hidden: tuple[int, ...] = (64, 64)
  dual_hidden: tuple[int, ...] = (64, 64)
  # Where the BRAC weight w enters: the actor loss, the Bellman target, both, or nowhere
  # ("none": the dual critic is trained and unused, the workload of UNICORN's own code).
  brac_penalty: str = "policy"
  brac_auto_weight: bool = False
  brac_gp: str = "grad"
  dual_steps: int = 1
  # Each dual step after the first draws a fresh RL batch of the same tasks, with the same codes
  # (FOCAL sac.py:201-203, CSRO sac.py:206-208, UNICORN train_offline_FOCAL.py:789-791).
  dual_fresh_batches: bool = True
  # D(s) in the target, the actor loss and the weight update comes from the dual critic as it
  # was *before* this update's dual steps (FOCAL sac.py:278-286; UNICORN
  # train_offline_FOCAL.py:356-364); False: after them (CSRO sac.py:278-287).
  brac_div_before_dual: bool = False
  # False: the actor's ``w * D`` term is a constant, no gradient through D (UNICORN's FOCALSAC:
  # D under torch.no_grad, divergences.py:70-73, focalsac.py:196).
  brac_actor_div_grad: bool = True
  # Auto-tuned weight: False keeps the raw weight unclipped and clips it only where it is used
  # (FOCAL and CSRO sac.py get_alpha + the alpha step); True stores the clipped weight.
  brac_weight_projected: bool = False
  # False: the Bellman target has no ``- alpha log pi(a'|s')`` term (UNICORN's FOCALSAC,
  # focalsac.py:135).
  soft_target: bool = True
  learn_entropy: bool = False
  log_std_min: float = -20.0
  log_std_max: float = 2.0
  # JaxCQL / MISA policy head (young-geng/JaxCQL model.py, sail-sg/MISA algos/model.py:165-209):
  # log_std = m * raw + o with learnable scalars m, o initialised at 1 and -1, and the pre-tanh
  # mean clipped to +-policy_mean_clip (9 there; 0 = no clip).
  policy_log_std_affine: bool = False
  policy_mean_clip: float = 0.0
  critic_activation: str = "relu"  # MISA's Q networks use ELU (experiments/main.py:67)
  # Initialisation of the policy, Q, value, dual-critic and MLP-encoder networks
  # (jcomrl.nets.mlp.INITS): "lecun_normal" (flax's default) or "rlkit" (the torchkit init of
  # the FOCAL / CSRO / CORRO / UNICORN PyTorch codes: hidden U(+-1/sqrt(out width)), bias 0.1,
  # heads U(+-3e-3) / U(+-1e-3) for the policy; UNICORN-SS's mbrl decoder then takes mbrl's
  # truncated normal, jcomrl.nets.mlp "mbrl").
  net_init: str = "lecun_normal"
  # Data actions are clipped to +-action_logp_clip before their log-likelihood under the
  # tanh-Gaussian (BC, IQL, MISA's BC term; MISA experiments/main.py:128-130 clips at 0.999).
  action_logp_clip: float = 0.999
  # Policy samples per state for a log-partition estimate: CQL's K (JaxCQL cql_n_actions = 10)
  # and MISA's (n_actions = 50, also the number of HMC results per state).
  partition_samples: int = 10
  cql_importance_sample: bool = True  # JaxCQL conservative_sac.py:242-255 (CQL(H) with IS)
  misa_bound: str = "misa"
  misa_partition_grad: str = "hmc"
  hmc_burnin: int = 5  # MISA misa.py:64-66: 5 burn-in steps, 2 leapfrog steps
  hmc_leapfrog: int = 2
  policy_delay: int = 2  # td3bc
  td3bc_bc: str = "mean"  # BC term over action dims: "mean" (TD3_BC.py:143 F.mse_loss) / "sum"
  # Decision transformer (backbone "dt"), as Prompt-DT's defaults (mxu34/prompt-dt pdt_main.py:
  # 243 prompt length, 260 K, 263-267 GPT size / activation / dropout, 268-270 AdamW and warm-up;
  # 112 timestep table; grad clip prompt_dt/prompt_seq_trainer.py:79) and kzl/decision-transformer
  # (gym/experiment.py:292-299, training/seq_trainer.py:28). Returns-to-go are divided by
  # dt_return_scale and evaluation starts from dt_target_return (per env: presets).
  dt_context_length: int = 20
  dt_embed: int = 128
  dt_layers: int = 3
  dt_heads: int = 1
  dt_dropout: float = 0.1
  dt_max_timestep: int = 1000
  dt_return_scale: float = 1000.0
  dt_target_return: float = 0.0
  dt_warmup_steps: int = 10_000
  dt_weight_decay: float = 1e-4
  dt_grad_clip: float = 0.25
  prompt_length: int = 5  # objective "prompt": prompt steps taken from the context trajectory
  # Meta-batch.
  meta_batch_size: int = 16
  context_size: int = 20
  context_mode: str = "trajectory"
  rl_batch_size: int = 64
  task_replace: bool = True
  # Consecutive updates that share one draw of meta-batch task indices (contexts and RL batches
  # are still fresh every update). UNICORN/CORRO draw the tasks once per iteration of
  # ``rl_updates_per_iter`` = 200 updates (UNICORN train_offline_FOCAL.py:284-289, 328); an
  # iteration starts at every global step that is a multiple of this.
  task_resample_every: int = 1
  steps_per_chunk: int = 100

  def __post_init__(self):
    # The checks of this config alone; the names of the objective terms and the backbone, their
    # own settings and whether they fit together are checked by the registries' owner,
    # :func:`jcomrl.algos.compose.check` (this module imports no backbone and no objective).
    for name, allowed in (("brac_penalty", BRAC_PENALTIES),
                          ("brac_gp", BRAC_GRADIENT_PENALTIES), ("encoder", ENCODERS),
                          ("corro_negative_source", NEGATIVE_SOURCES),
                          ("td3bc_bc", TD3BC_BC_REDUCTIONS),
                          ("decoder_nll", DECODER_NLLS), ("corro_positives", CORRO_POSITIVES),
                          ("contrastive_bound", CONTRASTIVE_BOUNDS),
                          ("upper_bound", UPPER_BOUNDS),
                          ("critic_activation", ACTIVATIONS), ("misa_bound", MISA_BOUNDS),
                          ("net_init", NET_INITS),
                          ("misa_partition_grad", MISA_PARTITION_GRADS),
                          ("kl_prior", KL_PRIORS),
                          ("context_mode", ("trajectory", "transitions")),
                          ("pretrain_tasks", PRETRAIN_TASKS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {allowed}")
    for name in ("meta_batch_size", "context_size", "rl_batch_size", "steps_per_chunk",
                 "latent_size", "dual_steps", "policy_delay", "corro_negatives", "cvae_latent",
                 "task_resample_every", "partition_samples", "hmc_leapfrog",
                 "dt_context_length", "dt_embed", "dt_layers", "dt_heads", "dt_max_timestep",
                 "prompt_length"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    if self.pretrain_steps < 0 or self.pretrain_steps % self.steps_per_chunk:
      raise ValueError(f"pretrain_steps ({self.pretrain_steps}) must be a non-negative multiple "
                       f"of steps_per_chunk ({self.steps_per_chunk})")
    if self.brac_auto_weight and self.brac_penalty == "none":
      raise ValueError("brac_auto_weight needs a BRAC penalty; brac_penalty='none' uses no weight")
    if self.hmc_burnin < 0:
      raise ValueError(f"hmc_burnin must be non-negative, got {self.hmc_burnin}")
    if not 0.0 < self.action_logp_clip < 1.0:
      raise ValueError(f"action_logp_clip must lie in (0, 1), got {self.action_logp_clip}")

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> LearnerConfig:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
      raise ValueError(f"unknown learner config keys {sorted(unknown)}")
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**d)

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def fill_defaults(cls, d: dict[str, Any]) -> dict[str, Any]:
    """A saved learner dict with the fields added since it was written set to their defaults
    (a new field's default keeps the earlier behaviour), in ``to_dict``'s form, so runs and
    checkpoints of earlier versions compare equal to the same config today."""
    out = {f.name: f.default for f in dataclasses.fields(cls)
           if f.default is not dataclasses.MISSING}
    out.update(d)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

  def structure_dict(self) -> dict[str, Any]:
    """The fields that fix the train state's structure (what a checkpoint must agree with)."""
    d = self.to_dict()
    d.pop("steps_per_chunk")
    return d


@struct.dataclass
class HParams:
  """Traced hyper-parameters (float32 leaves; add a leading axis to vmap a sweep)."""

  actor_lr: Any = 3e-4
  critic_lr: Any = 3e-4
  encoder_lr: Any = 3e-4
  dual_lr: Any = 1e-4
  alpha_lr: Any = 3e-4
  discount: Any = 0.9
  tau: Any = 0.005
  reward_scale: Any = 1.0
  entropy_alpha: Any = 0.2
  focal_weight: Any = 10.0
  brac_weight: Any = 0.1
  gp_weight: Any = 5.0
  brac_weight_lr: Any = 1.0  # brac_auto_weight: w <- w + lr * (D - target), used clip(w, 0, max)
  brac_target_div: Any = 0.05
  brac_weight_max: Any = 2000.0
  # Actor regularisers ``mean_reg * mean(mu^2) + std_reg * mean(log_sigma^2)`` on the pre-tanh
  # Gaussian (FOCAL sac.py:361-362 and CSRO sac.py:384-385, weights 1e-3 in their default.py).
  policy_mean_reg: Any = 0.0
  policy_std_reg: Any = 0.0
  club_weight: Any = 1.0  # csro: lambda on the CLUB term
  club_model_weight: Any = 10.0  # csro: q_psi NLL weight
  decoder_weight: Any = 1.0  # unicorn_ss: reconstruction NLL weight
  kl_weight: Any = 1.0  # the kl term (BOReL's --kl-weight; UNICORN Table 6 sweeps it)
  sup_weight: Any = 1.0  # unicorn_sup: classifier cross-entropy weight
  corro_weight: Any = 1.0
  corro_temperature: Any = 0.1
  corro_reward_noise: Any = 0.5
  cvae_kl_weight: Any = 0.2
  td3_alpha: Any = 2.5
  td3_policy_noise: Any = 0.2
  td3_noise_clip: Any = 0.5
  value_lr: Any = 3e-4  # iql: V(s)'s Adam rate (implicit_q_learning train_offline.py: 3e-4)
  # CQL(H) (JaxCQL conservative_sac.py:38-46): the regulariser's weight and temperature.
  cql_weight: Any = 5.0
  cql_temperature: Any = 1.0
  # IQL (Kostrikov et al. 2022; ikostrikov/implicit_q_learning, gym locomotion): expectile tau,
  # inverse temperature beta of the advantage weights exp(beta A), their clip.
  iql_expectile: Any = 0.7
  iql_temperature: Any = 3.0
  iql_weight_max: Any = 100.0
  # MISA (sail-sg/MISA algos/misa.py:55-66): gamma_1 on the critic's bound term
  # (min_q_weight), the BC + entropy bracket's weight (bc_weight_misa), the partition-gradient
  # term's weight (unbiased_weight), and HMC's step size (mcmc_step_size).
  misa_critic_weight: Any = 5.0
  misa_bc_weight: Any = 0.5
  misa_partition_weight: Any = 0.1
  hmc_step_size: Any = 1.0
  # MACAW (eric-mitchell/macaw config/alg/standard.json:23 ``lrlr``): Adam rate of its learned
  # inner learning rates and advantage-head weight (outer rates: value_lr, actor_lr).
  inner_lr_lr: Any = 1e-3

  @classmethod
  def create(cls, **kw) -> HParams:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(kw) - names
    if unknown:
      raise ValueError(f"unknown hyper-parameters {sorted(unknown)}")
    hp = cls(**kw)
    return jax_tree_float32(hp)

  def to_dict(self) -> dict[str, float]:
    return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


def jax_tree_float32(tree):
  import jax
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
