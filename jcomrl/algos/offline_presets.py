"""Single-task offline-RL presets: BC, TD3+BC, CQL, IQL and MISA at their official settings.

Every preset runs with ``representation="none"`` on a one-task dataset (meta-batch 1, no task
code); D4RL-style settings shared by all: batch 256, 2 x 256 networks, gamma 0.99, Polyak 0.005.
``OFFLINE_PRESETS[name] = (learner overrides, hyper-parameters)``; sources:

* ``bc``: maximum likelihood of the data actions (MISA ``bc_mode="mle"``), Adam 3e-4.
* ``td3bc``: sfujim/TD3_BC ``main.py`` defaults (alpha 2.5, noise 0.2 clipped at 0.5, policy
  delay 2, lr 3e-4). Deviation: TD3_BC normalises observations by the dataset's mean and std
  (``normalize=True``); jcomrl feeds raw observations.
* ``cql``: young-geng/JaxCQL ``conservative_sac.py:27-46`` and ``conservative_sac_main.py``:
  K = 10, weight 5, temperature 1, importance-sampled proposals, no entropy backup, learned
  temperature towards -|A| at the policy's lr 3e-4, policy log-std ``m * raw + o`` with learnable
  m, o (1, -1), log-std in [-20, 2].
* ``iql``: ikostrikov/implicit_q_learning ``configs/mujoco_config.py`` / ``train_offline.py``:
  expectile 0.7, temperature 3, lr 3e-4 (the actor's cosine decay is not reproduced).
* ``misa``: sail-sg/MISA ``algos/misa.py:38-69`` and ``experiments/main.py:43-68``: policy lr 1e-4,
  Q lr 3e-4, temperature lr 1e-4 towards -|A|, K = 50, gamma_1 = 5, BC weight 0.5, partition
  weight 0.1, HMC (5 burn-in, 2 leapfrog steps of size 1), ELU critics, ReLU policy with the
  JaxCQL head, mean clipped to +-9, log-std in [-5, 2].

Training lengths: 1e6 updates for every method (MISA trains 1.2e6, 1200 epochs x 1000; the
others 1e6), evaluated every 5e3 updates on 10 episodes.
"""

from __future__ import annotations

from jcomrl.algos.presets import nested

OFFLINE_COMMON = dict(representation="none", meta_batch_size=1, context_size=1,
                      context_mode="transitions", rl_batch_size=256, rl_hidden=(256, 256),
                      steps_per_chunk=1000)
OFFLINE_HPARAMS = dict(discount=0.99, tau=0.005, actor_lr=3e-4, critic_lr=3e-4, alpha_lr=3e-4)
_JAXCQL_POLICY = dict(policy_log_std_affine=True, learn_entropy=True, soft_target=False)

OFFLINE_PRESETS: dict[str, tuple[dict, dict]] = {
    "bc": ({"backbone": "bc"}, {}),
    "td3bc": ({"backbone": "td3bc", "policy_delay": 2},
              {"td3_alpha": 2.5, "td3_policy_noise": 0.2, "td3_noise_clip": 0.5}),
    "cql": ({"backbone": "cql", "partition_samples": 10, **_JAXCQL_POLICY},
            {"cql_weight": 5.0, "cql_temperature": 1.0}),
    "iql": ({"backbone": "iql"},
            {"iql_expectile": 0.7, "iql_temperature": 3.0, "iql_weight_max": 100.0,
             "value_lr": 3e-4}),
    "misa": ({"backbone": "misa", "partition_samples": 50, "misa_bound": "misa",
              "misa_partition_grad": "hmc", "hmc_burnin": 5, "hmc_leapfrog": 2,
              "critic_activation": "elu", "policy_mean_clip": 9.0, "log_std_min": -5.0,
              **_JAXCQL_POLICY},
             {"actor_lr": 1e-4, "alpha_lr": 1e-4, "misa_critic_weight": 5.0,
              "misa_bc_weight": 0.5, "misa_partition_weight": 0.1, "hmc_step_size": 1.0}),
}
OFFLINE_NUM_STEPS = 1_000_000

# The CPU profile (2 cores; sized for a 90-minute table of 3 datasets x 5 methods x 3 seeds,
# benchmarks/results/offline_cpu): 2 x 64 networks, 1e4 updates, K = 4 partition samples for
# CQL (12 proposals per state) and MISA, MISA's partition gradient by importance weights of its
# K samples instead of HMC.
# Measured with benchmarks.offline_throughput --profile=cpu --seeds=3 (2 x 64, K = 10, load 2-4):
# ms per update per seed bc 1.5, td3bc 5.5, iql 5.8, cql 77, misa HMC 114, misa importance 62,
# misa without the partition term 40 -- the critic on N x K sampled actions dominates CQL and
# MISA. Every difference is recorded in the run's config.
CPU_PROFILE = dict(rl_hidden=(64, 64), steps_per_chunk=500)
CPU_NUM_STEPS = 10_000
CPU_PARTITION_SAMPLES = 4
CPU_MISA = dict(misa_partition_grad="importance")


def offline_preset(name: str, profile: str = "paper", tiny: bool = False) -> dict:
  """``{"learner": ..., "hparams": ..., "num_steps": ...}`` of one single-task preset."""
  if name not in OFFLINE_PRESETS:
    raise ValueError(f"unknown offline preset {name!r}; expected one of {tuple(OFFLINE_PRESETS)}")
  learner, hparams = OFFLINE_PRESETS[name]
  learner = {**OFFLINE_COMMON, **learner}
  num_steps = OFFLINE_NUM_STEPS
  if profile == "cpu" or tiny:
    learner.update(CPU_PROFILE)
    num_steps = CPU_NUM_STEPS
    if "partition_samples" in learner:
      learner["partition_samples"] = CPU_PARTITION_SAMPLES
    if name == "misa":
      learner.update(CPU_MISA)
  if tiny:
    learner.update(rl_hidden=(16, 16), rl_batch_size=32, steps_per_chunk=50,
                   partition_samples=min(learner.get("partition_samples", 10), 4))
    num_steps = 100
  return nested({"learner": learner, "hparams": {**OFFLINE_HPARAMS, **hparams},
                 "num_steps": num_steps})
