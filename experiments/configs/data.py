"""Dataset generation configs: ``--config=experiments/configs/data.py:<variant>``.

Variants: one per env at paper scale (``point_robot``, ``sparse_point_robot``, ``cheetah_vel``, ``cheetah_dir``,
``ant_dir``, ``hopper_param``, ``walker_param``) and tiny test variants: ``tiny`` (PPO) and
``tiny_sac`` train and collect point-robot data in about 30 s on a 2-core CPU;
``<env>@cpu`` for the MuJoCo envs is the CPU profile of ``make paper PROFILE=cpu`` (per-task SAC
agents, reduced sizes listed next to the paper's below); ``<env>@fast`` is the fast recipe
(one shared task-conditioned SAC agent, its whole replay buffer as the data; ``make paper
RECIPE=fast``);
``tiny_cheetah_vel`` and ``tiny_hopper_param`` simulate only seconds' worth of MuJoCo steps (on a
CPU through C MuJoCo, ``physics="auto"``; with ``physics="mjx"`` compiling the MJX programs takes
minutes on such a CPU the first time; the persistent compilation cache,
``JAX_COMPILATION_CACHE_DIR``, makes reruns fast).

Layout::

    variant, env, env_overrides, quality, seed, overwrite, resume
    out                     dataset dir (default data/<variant>_<quality>)
    transitions_per_task    size per task (> 0 wins; spread over the quality's snapshots) ...
    episodes_per_snapshot   ... else this many episodes per (task, snapshot)
    chunk_episodes          episodes per (task, snapshot) per jitted collection call (0 = all)
    return_episodes         episodes per (task, snapshot) for the random/expert anchors
    anchor_policy           how the snapshots act for the anchors: "deterministic" (default, as
                            the evaluation protocols act) | "stochastic"
    behaviour.algo          "ppo" | "sac": one task-conditioned brax network for every task;
                            "sac_per_task": one independent SAC agent per task, all trained in
                            one program (the papers' recipe, jcomrl.data.per_task_sac);
                            "sac_shared": one task-conditioned SAC agent of jcomrl's own
                            stepping every task's envs (the fast recipe, jcomrl.data.shared_sac)
    quality                 a snapshot mix ("mixed", "expert", ...) or "replay": the behaviour
                            run's whole replay buffer (sac_per_task / sac_shared only)
    behaviour.ppo / .sac / .sac_per_task   that trainer's kwargs (num_timesteps, num_envs, ...)
    behaviour.num_snapshots K snapshots kept (untrained first)
    behaviour_tasks         "all" (default; every benchmark task, as the papers' per-task
                            behaviour agents) | "train" (training tasks only)
    physics                 MuJoCo physics backend: "auto" (default: C MuJoCo when JAX runs on
                            the CPU, MJX on an accelerator) | "c" | "mjx"; recorded in the
                            dataset's meta.json (creation.physics)

Per-task sizes of the MuJoCo variants follow UNICORN Table 7 (cheetah 2e5, ant 1e5, hopper 3e5,
walker 4.5e5 transitions per task). Their behaviour budgets are sized for one GPU (PPO with a few
thousand parallel envs); they were not tuned on a GPU here, so check the expert returns that
``experiments.inspect_data`` reports and raise ``num_timesteps`` if the expert is weak.
"""

from ml_collections import config_dict

# --- point robot (pure JAX, 20-step episodes) ----------------------------------------------
_PPO_POINT = {"num_timesteps": 200_000, "num_envs": 128, "batch_size": 128, "num_minibatches": 4,
              "unroll_length": 20, "num_updates_per_batch": 4, "learning_rate": 3e-3,
              "entropy_cost": 1e-3, "discounting": 0.9, "hidden_sizes": (64, 64)}
_SAC_POINT = {"num_timesteps": 102_400, "num_envs": 64, "batch_size": 256,
              "grad_updates_per_step": 8, "learning_rate": 3e-3, "discounting": 0.9,
              "hidden_sizes": (64, 64)}

# --- MJX MuJoCo families (200-step episodes), GPU-sized -------------------------------------
_PPO_MJX = {"num_envs": 2048, "batch_size": 512, "num_minibatches": 32, "unroll_length": 20,
            "num_updates_per_batch": 8, "learning_rate": 3e-4, "entropy_cost": 1e-3,
            "discounting": 0.97, "reward_scaling": 1.0, "normalize_observations": True,
            "hidden_sizes": (128, 128, 128)}
_SAC_MJX = {"num_envs": 128, "batch_size": 512, "grad_updates_per_step": 8,
            "learning_rate": 6e-4, "discounting": 0.99, "reward_scaling": 1.0,
            "normalize_observations": True, "min_replay_size": 8192,
            "max_replay_size": 1_000_000, "hidden_sizes": (256, 256)}

# Tiny CPU budgets for the MuJoCo families: two short epochs of 16 envs (seconds of simulation;
# the time goes into compiling); PPO skips brax's evaluation rollouts.
_PPO_MJX_TINY = {"num_timesteps": 640, "num_envs": 16, "batch_size": 16, "num_minibatches": 2,
                 "unroll_length": 10, "num_updates_per_batch": 1, "learning_rate": 3e-4,
                 "entropy_cost": 1e-3, "discounting": 0.97, "normalize_observations": True,
                 "run_evals": False, "hidden_sizes": (32, 32)}
_SAC_MJX_TINY = {"num_timesteps": 512, "num_envs": 16, "batch_size": 64,
                 "grad_updates_per_step": 1, "learning_rate": 3e-4, "discounting": 0.99,
                 "num_eval_envs": 4, "hidden_sizes": (32, 32)}


# Per-task SAC (FOCAL/CSRO/CORRO/UNICORN's data collection): CORRO
# data_collection_config/args_<env>.py:13-27 (2x128, lr 3e-4, gamma 0.99, tau 0.005, fixed
# entropy 0.2, batch 256, 10k random warm-up steps, 0.5 updates per env step); the papers train
# each agent for 1e6+ env steps. ``num_timesteps`` here counts env steps per task.
_SAC_PER_TASK = {"num_timesteps": 1_000_000, "num_envs": 2, "updates_per_iteration": 1,
                 "hidden_sizes": (128, 128), "batch_size": 256, "warmup_steps": 10_000}
_SAC_PER_TASK_POINT = dict(_SAC_PER_TASK, num_timesteps=8_000, warmup_steps=1_000,
                           num_envs=4, updates_per_iteration=2, hidden_sizes=(64, 64),
                           discount=0.9)


# The fast recipe (jcomrl.data.shared_sac, a documented deviation from the papers' per-task
# agents): ONE task-conditioned SAC agent steps one env per task (40 envs), 4 updates of 256
# transitions drawn over all tasks per iteration (the updates per env step of the measured brax
# run, ../shared/measurements.md), 2x256 nets, learnt entropy towards -|A| (brax SAC's default),
# 1k random warm-up steps per task; with quality="replay" each task's stream is its data.
# 24k env steps per task: on cheetah_vel the last snapshot returns -41.1 (random -325.7) in
# 1246 s on the loaded 2-core CPU (benchmarks/results/issue35); UNICORN Table 7's buffers hold
# 2e5 per task (--config.behaviour.sac_shared.num_timesteps=200000, ~8x the time). Not yet
# measured on the other families.
_SAC_SHARED = {"num_timesteps": 24_000, "num_envs": 1, "updates_per_iteration": 4,
               "hidden_sizes": (256, 256), "batch_size": 256, "warmup_steps": 1_000,
               "learn_entropy": True}
_SAC_SHARED_POINT = dict(_SAC_SHARED, num_timesteps=4_000, warmup_steps=200,
                         updates_per_iteration=1, hidden_sizes=(64, 64), discount=0.9)


def _mjx(timesteps_ppo: int, timesteps_sac: int, **ppo_overrides) -> dict:
  return {"num_snapshots": 10, "ppo": dict(_PPO_MJX, num_timesteps=timesteps_ppo, **ppo_overrides),
          "sac": dict(_SAC_MJX, num_timesteps=timesteps_sac), "sac_per_task": _SAC_PER_TASK,
          "sac_shared": _SAC_SHARED}


_TINY_MJX = {"num_snapshots": 3, "ppo": _PPO_MJX_TINY, "sac": _SAC_MJX_TINY,
             "sac_per_task": dict(_SAC_PER_TASK, num_timesteps=256, warmup_steps=128,
                                  batch_size=32, hidden_sizes=(32, 32)),
             "sac_shared": dict(_SAC_SHARED, num_timesteps=400, warmup_steps=100,
                                batch_size=32, hidden_sizes=(32, 32),
                                updates_per_iteration=1)}

# variant -> (env, behaviour, size); size = (transitions_per_task, episodes_per_snapshot,
# chunk_episodes, return_episodes).
_VARIANTS = {
    "point_robot": ("point_robot", {"num_snapshots": 6, "ppo": _PPO_POINT, "sac": _SAC_POINT,
                                    "sac_per_task": _SAC_PER_TASK_POINT,
                                    "sac_shared": _SAC_SHARED_POINT}, (0, 10, 0, 4)),
    "tiny": ("point_robot", {"num_snapshots": 3, "ppo": dict(_PPO_POINT, num_timesteps=20_480),
                             "sac": dict(_SAC_POINT, num_timesteps=25_600),
                             "sac_per_task": dict(_SAC_PER_TASK_POINT, num_timesteps=2_000,
                                                  warmup_steps=500),
                             "sac_shared": dict(_SAC_SHARED_POINT, num_timesteps=800,
                                                warmup_steps=100)}, (0, 4, 0, 4)),
    "cheetah_vel": ("cheetah_vel", _mjx(20_000_000, 2_000_000), (200_000, 0, 25, 25)),
    "cheetah_dir": ("cheetah_dir", _mjx(20_000_000, 2_000_000), (200_000, 0, 25, 25)),
    "ant_dir": ("ant_dir", _mjx(30_000_000, 3_000_000, num_envs=4096, batch_size=1024,
                                unroll_length=10, num_updates_per_batch=4, entropy_cost=1e-2),
                (100_000, 0, 25, 25)),
    "hopper_param": ("hopper_param", _mjx(20_000_000, 2_000_000), (300_000, 0, 25, 25)),
    "walker_param": ("walker_param", _mjx(30_000_000, 3_000_000), (450_000, 0, 25, 25)),
    # Tiny MJX variants: 3 snapshots, 1 episode each per task (40 tasks x 3 x 200 steps).
    "tiny_cheetah_vel": ("cheetah_vel", _TINY_MJX, (0, 1, 0, 1)),
    "tiny_hopper_param": ("hopper_param", _TINY_MJX, (0, 1, 0, 1)),
}
# CPU profile (``<env>@cpu``; issue 17, ``make paper PROFILE=cpu``): the papers' recipe (one SAC
# agent per task, 10 snapshots of its training, mixed-quality rollouts) at a size 2 CPU cores
# build in minutes. Reduced against the paper-scale variants above:
#   per-task SAC   2x64 nets, batch 128, 4 envs x 2 updates per iteration (0.5 updates per env
#                  step, as CORRO), 24k env steps per task (4k random warm-up)
#                  <- paper: 2x128, batch 256, 1e6+ env steps, 10k warm-up (CORRO args_*.py:13-27)
#   per-task size  10k transitions (cheetah), 6k (ant)  <- UNICORN Table 7: 2e5 / 1e5
#   anchors        10 episodes per task and snapshot   <- 25 here at paper scale
_SAC_PER_TASK_CPU = dict(_SAC_PER_TASK, num_timesteps=24_000, warmup_steps=4_000, num_envs=4,
                         updates_per_iteration=2, hidden_sizes=(64, 64), batch_size=128,
                         buffer_size=24_000)
_CPU_BEHAVIOUR = {"num_snapshots": 10, "ppo": _PPO_MJX, "sac": _SAC_MJX,
                  "sac_per_task": _SAC_PER_TASK_CPU, "sac_shared": _SAC_SHARED}
CPU_ALGO = "sac_per_task"
for _env, _size in (("cheetah_vel", 10_000), ("cheetah_dir", 10_000), ("ant_dir", 6_000),
                    ("hopper_param", 10_000), ("walker_param", 10_000)):
  _VARIANTS[f"{_env}@cpu"] = (_env, _CPU_BEHAVIOUR, (_size, 0, 0, 10))

# The fast recipe as a data profile (``<env>@fast``; issue 28, ``make paper RECIPE=fast``): the
# shared task-conditioned SAC above (``_SAC_SHARED``, 24k env steps per task), its whole replay
# buffer as the data (``quality="replay"``), 10 snapshots for the OOD protocol and the anchors.
FAST_ALGO = "sac_shared"
for _env in ("cheetah_vel", "cheetah_dir", "ant_dir", "hopper_param", "walker_param"):
  _VARIANTS[f"{_env}@fast"] = (_env, _CPU_BEHAVIOUR, (0, 0, 0, 10))

# Sparse point robot: behaviour policies learn from the dense reward (FOCAL issue #1), the
# dataset stores the sparse one.
_VARIANTS["sparse_point_robot"] = (
    "sparse_point_robot",
    {"num_snapshots": 6, "ppo": dict(_PPO_POINT, train_reward="dense_reward"),
     "sac": dict(_SAC_POINT, train_reward="dense_reward"),
     "sac_per_task": dict(_SAC_PER_TASK_POINT, train_reward="dense_reward"),
     "sac_shared": dict(_SAC_SHARED_POINT, train_reward="dense_reward")}, (0, 10, 0, 4))
_VARIANTS["tiny_sac"] = _VARIANTS["tiny"]


def variants() -> list[str]:
  return sorted(_VARIANTS)


def get_config(variant: str = "point_robot"):
  if variant not in _VARIANTS:
    raise ValueError(f"no data config variant {variant!r}; have {variants()}")
  env, beh, (transitions, episodes, chunk, ret_eps) = _VARIANTS[variant]
  c = config_dict.ConfigDict()
  c.variant = variant
  c.env = env
  c.env_overrides = config_dict.ConfigDict()
  c.quality = "replay" if variant.endswith("@fast") else "mixed"
  c.seed = 0
  c.transitions_per_task = transitions
  c.episodes_per_snapshot = episodes
  c.chunk_episodes = chunk
  c.return_episodes = ret_eps
  c.behaviour_tasks = "all"
  c.physics = "auto"
  c.behaviour = config_dict.ConfigDict()
  c.behaviour.algo = ("sac" if variant == "tiny_sac" else
                      CPU_ALGO if variant.endswith("@cpu") else
                      FAST_ALGO if variant.endswith("@fast") else "ppo")
  # How the snapshots act for the normalisation anchors: as the evaluation protocols act
  # (jcomrl.data.pipeline.ANCHOR_POLICIES; "stochastic" was jcomrl's anchor before issue 28).
  c.anchor_policy = "deterministic"
  c.behaviour.num_snapshots = beh["num_snapshots"]
  c.behaviour.ppo = config_dict.ConfigDict(beh["ppo"])
  c.behaviour.sac = config_dict.ConfigDict(beh["sac"])
  c.behaviour.sac_per_task = config_dict.ConfigDict(beh["sac_per_task"])
  c.behaviour.sac_shared = config_dict.ConfigDict(beh["sac_shared"])
  c.out = config_dict.placeholder(str)
  c.overwrite = False
  c.resume = True
  return c
