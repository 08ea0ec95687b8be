"""The data recipes: every variant of the multi-task dataset configs, as ``ml_collections``
``ConfigDict`` s (``get_config(variant)``), with the provenance of the papers' recipe
(``OFFICIAL_RECIPE_PROVENANCE``). ``experiments/configs/data.py`` is the command line's view of
them (``--config=experiments/configs/data.py:<variant>``); ``generate(c)`` builds the dataset of
a config (``experiments.collect`` and ``benchmarks.dataset_build`` run it).

Variants: one per env at paper scale (``point_robot``, ``sparse_point_robot``, ``cheetah_vel``, ``cheetah_dir``,
``ant_dir``, ``hopper_param``, ``walker_param``) and tiny test variants: ``tiny`` (PPO) and
``tiny_sac`` train and collect point-robot data in about 30 s on a 2-core CPU;
``<env>@cpu`` for the MuJoCo envs is the CPU profile of ``make paper PROFILE=cpu`` (per-task SAC
agents, reduced sizes listed next to the paper's below); ``<env>@fast`` is the fast recipe
(one shared task-conditioned SAC agent, its whole replay buffer as the data; ``make paper
RECIPE=fast``); ``<env>@official`` is the papers' own behaviour-data recipe (FOCAL(latest),
CORRO, UNICORN: one SAC agent per task trained by CORRO's ``train_data_collection.py``, its whole
replay buffer as the data), every setting a row of ``OFFICIAL_RECIPE_PROVENANCE``;
``cheetah_dir@focal2`` / ``ant_dir@focal2`` are FOCAL's 2-task forward/backward setting (the env's
``variant="focal"``, ``<env>@cpu``'s recipe and size, written to ``data/<variant>``, where
``focal.py:<env>@focal2`` reads it) and ``tiny_<env>@focal2`` its few-minute test build;
``hopper_param@multi`` / ``walker_param@multi`` are the multi-confounder tasks (the env's
``variant="multi"``: body mass x joint damping on a 5 x 5 grid, 5 combinations held out) built by
the fast recipe, written to ``data/<variant>`` (where the training configs' ``<env>@multi``
read it), and ``tiny_<env>@multi`` their test build;
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
                            one program (the papers' recipe, jcomrl.datagen.per_task_sac);
                            "sac_shared": one task-conditioned SAC agent of jcomrl's own
                            stepping every task's envs (the fast recipe, jcomrl.datagen.shared_sac)
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

from __future__ import annotations

from ml_collections import config_dict

from jcomrl.names import FOCAL2_ENVS, MUJOCO_ENVS, MULTI_ENVS, TASK_SETTING_OVERRIDES

# Importing this module imports no JAX: the command line loads the configs before JAX starts;
# the functions that build datasets import the pipeline when called.

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
# entropy 0.2, batch 256, 10k random warm-up steps, 0.5 updates per env step). CORRO trains each
# agent for 90k (ant-dir) to 290k (hopper) env steps, walker 3000 iterations (``<env>@official``
# below; the args files' line-5 comment "official sac: 1e6 steps, ..." describes standard SAC,
# not their num_iters). ``num_timesteps`` here counts env steps per task.
_SAC_PER_TASK = {"num_timesteps": 1_000_000, "num_envs": 2, "updates_per_iteration": 1,
                 "hidden_sizes": (128, 128), "batch_size": 256, "warmup_steps": 10_000}
_SAC_PER_TASK_POINT = dict(_SAC_PER_TASK, num_timesteps=8_000, warmup_steps=1_000,
                           num_envs=4, updates_per_iteration=2, hidden_sizes=(64, 64),
                           discount=0.9)


# The fast recipe (jcomrl.datagen.shared_sac, a documented deviation from the papers' per-task
# agents): ONE task-conditioned SAC agent steps one env per task (40 envs), 4 updates of 256
# transitions drawn over all tasks per iteration (the updates per env step of a measured brax SAC
# run on cheetah_vel: behaviour.algo=sac, 40 envs, 4 gradient updates per step, 600k env steps),
# 2x256 nets, learnt entropy towards -|A| (brax SAC's default),
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
# CPU profile (``<env>@cpu``; ``make paper PROFILE=cpu``): the papers' recipe (one SAC
# agent per task, 10 snapshots of its training, mixed-quality rollouts) at a size 2 CPU cores
# build in minutes. Reduced against the paper-scale variants above:
#   per-task SAC   2x64 nets, batch 128, 4 envs x 2 updates per iteration (0.5 updates per env
#                  step, as CORRO), 24k env steps per task (4k random warm-up)
#                  <- paper: 2x128, batch 256, 90k-290k env steps, 10k warm-up (<env>@official)
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

# The fast recipe as a data profile (``<env>@fast``; ``make paper RECIPE=fast``): the
# shared task-conditioned SAC above (``_SAC_SHARED``, 24k env steps per task), its whole replay
# buffer as the data (``quality="replay"``), 10 snapshots for the OOD protocol and the anchors.
FAST_ALGO = "sac_shared"
for _env in MUJOCO_ENVS:
  _VARIANTS[f"{_env}@fast"] = (_env, _CPU_BEHAVIOUR, (0, 0, 0, 10))

# The official behaviour-data recipe as a data profile (``<env>@official``): FOCAL(latest), CORRO
# and UNICORN collect with one SAC agent per task, run by CORRO's train_data_collection.py with
# data_collection_config/args_<env>.py and learner.py (UNICORN ships that learner.py unchanged and
# no collection script), and keep the agent's whole replay buffer (quality="replay"). Each setting
# is a row of OFFICIAL_RECIPE_PROVENANCE below with its file:line; tests/test_official_recipe.py
# checks every row against what get_config builds. Per iteration CORRO rolls 2 episodes of 200
# steps with the policy fixed, then makes 200 updates; jcomrl's trainer interleaves instead (2
# envs per task step once, then 1 update: the same 0.5 updates per env step and the same 4,000
# updates between snapshots, the policy changing every step). num_timesteps = the 10,000 random
# warm-up steps + iterations x 200 updates / (updates per env step); the K - 1 snapshot
# intervals start after the warm-up (intervals_after_warmup) and each holds 20 iterations' worth,
# so snapshot k has CORRO's agent<20k>.pt's number of updates and no rounding is needed (every
# num_iters is a multiple of 20). Sizes per task (UNICORN Table 7 rounds them): 210k cheetah,
# 90k ant, 290k hopper; walker see below.
OFFICIAL_ALGO = "sac_per_task"
OFFICIAL_ENVS = MUJOCO_ENVS
# --num-iters (cheetah_dir has no CORRO config: cheetah_vel's, see the provenance rows)
OFFICIAL_ITERATIONS = {"cheetah_vel": 500, "cheetah_dir": 500, "ant_dir": 200,
                       "hopper_param": 700, "walker_param": 3000}
OFFICIAL_SAVE_INTERVAL = 20  # --save-interval: iterations between agent<i>.pt
OFFICIAL_UPDATES_PER_ITERATION = 200  # --rl-updates-per-iter
OFFICIAL_WARMUP_STEPS = 50 * 200  # --num-init-rollouts-pool x the 200-step episodes
# (envs per task, updates per iteration) of jcomrl's loop. Walker's episodes end at falls, so
# CORRO's 3000 iterations of 2 rollouts + 200 updates make 600k updates over a data-dependent
# number of env steps (UNICORN Table 7: 4.5e5); 4 envs x 5 updates keep the 600k updates and
# 4,000 per snapshot interval over 480k steps after the warm-up.
_OFFICIAL_LOOP = {"walker_param": (4, 5)}


def official_sac_per_task(env: str) -> dict:
  """``behaviour.sac_per_task`` of ``<env>@official`` (the rows of OFFICIAL_RECIPE_PROVENANCE)."""
  num_envs, updates = _OFFICIAL_LOOP.get(env, (2, 1))
  total_updates = OFFICIAL_ITERATIONS[env] * OFFICIAL_UPDATES_PER_ITERATION
  assert total_updates * num_envs % updates == 0, env
  steps = OFFICIAL_WARMUP_STEPS + total_updates * num_envs // updates
  return {"num_timesteps": steps, "num_envs": num_envs, "updates_per_iteration": updates,
          "hidden_sizes": (128, 128), "batch_size": 256, "actor_lr": 3e-4, "critic_lr": 3e-4,
          "discount": 0.99, "tau": 0.005, "entropy_alpha": 0.2, "learn_entropy": False,
          "reward_scale": 1.0, "warmup_steps": OFFICIAL_WARMUP_STEPS, "buffer_size": steps,
          "intervals_after_warmup": True, "init_scheme": "rlkit"}


for _env in OFFICIAL_ENVS:
  _VARIANTS[f"{_env}@official"] = (
      _env, {"num_snapshots": OFFICIAL_ITERATIONS[_env] // OFFICIAL_SAVE_INTERVAL + 1,
             "ppo": _PPO_MJX, "sac": _SAC_MJX, "sac_per_task": official_sac_per_task(_env),
             "sac_shared": _SAC_SHARED}, (0, 0, 0, 10))

# Provenance of every setting of ``<env>@official``: (setting, key, ours, official, source, why
# if different; "" = the same). ``key`` is a config path of ``get_config("<env>@official")`` or a
# derived quantity ("=name", computed from the config by tests/test_official_recipe.py); ``ours``
# holds for all five envs, or is a dict {env: value} for those envs. Sources: PKU-RL/CORRO 210ad40
# (``args_<env>.py`` = data_collection_config/args_<env>.py; cheetah_vel, hopper_param and
# walker_param share line numbers; args_ant_dir.py has no comment at line 5 and two more
# arguments, so its lines are one lower for the others' 9-27 and one higher for 33-37) and
# betray12138/UNICORN d8853cd (its learner.py is CORRO's).
_STEPS = {"cheetah_vel": 210_000, "cheetah_dir": 210_000, "ant_dir": 90_000,
          "hopper_param": 290_000, "walker_param": 490_000}
_NOT_WALKER = ("cheetah_vel", "cheetah_dir", "ant_dir", "hopper_param")
OFFICIAL_RECIPE_PROVENANCE = (
    ("behaviour agents", "behaviour.algo", "sac_per_task",
     "same: one SAC agent per task (one train_data_collection.py run each, a one-task buffer)",
     "CORRO train_data_collection.py:50-52; learner.py:97-105,180-193", ""),
    ("tasks with an agent", "behaviour_tasks", "all",
     "same: all 40 (--seed 1..40, one run each; test tasks too)", "CORRO README.md:21-24",
     ""),
    ("dataset", "quality", "replay",
     "same: the buffer's first size() transitions, warm-up rollouts included, saved every "
     "save_interval iterations (overwriting; num_iters is a multiple of 20, so the last save is "
     "the whole run)",
     "learner.py:183-186,294,303-304,480-485,521-531; args_<env>.py:34,36 (ant_dir 35,37)", ""),
    ("run seed (agent t: fold_in(key(seed), t), task t of the env's table)", "seed", 0,
     "seed = task: seeds 1..40, each run's task drawn from its seeded RNG",
     "CORRO README.md:21-24; learner.py:35,38-45; utils/helpers.py:117-120; "
     "environments/mujoco/half_cheetah_vel.py:25,57-59",
     "jcomrl's 40 tasks are each env's fixed table (shared by every preset and protocol); JAX "
     "random streams cannot reproduce torch/numpy's"),
    ("actor and twin-Q hidden sizes", "behaviour.sac_per_task.hidden_sizes", (128, 128),
     "same ([128, 128])", "args_<env>.py:14-15 (ant_dir 13-14); learner.py:148-156", ""),
    ("network init", "behaviour.sac_per_task.init_scheme", "rlkit",
     "same (fan-in uniform hidden layers, biases 0.1; Q heads U(+-3e-3), policy heads "
     "U(+-1e-3))", "torchkit/networks.py:23-27,47-62; models/policy.py:37,57-59", ""),
    ("policy log-std clip", "=log_std_clip", (-20.0, 2.0), "same", "models/policy.py:11-12", ""),
    ("actor learning rate (Adam)", "behaviour.sac_per_task.actor_lr", 3e-4, "same",
     "args_<env>.py:16 (ant_dir 15); algorithms/sac.py:51", ""),
    ("critic learning rate (Adam)", "behaviour.sac_per_task.critic_lr", 3e-4, "same",
     "args_<env>.py:17 (ant_dir 16); algorithms/sac.py:41,44", ""),
    ("discount", "behaviour.sac_per_task.discount", 0.99, "same",
     "args_<env>.py:21 (ant_dir 20); algorithms/sac.py:90", ""),
    ("target smoothing tau", "behaviour.sac_per_task.tau", 0.005, "same",
     "args_<env>.py:22 (ant_dir 21); algorithms/sac.py:119,158-160", ""),
    ("entropy temperature", "behaviour.sac_per_task.entropy_alpha", 0.2, "same",
     "args_<env>.py:18 (ant_dir 17); algorithms/sac.py:60-61,89,126", ""),
    ("temperature learnt", "behaviour.sac_per_task.learn_entropy", False,
     "same (--automatic-entropy-tuning False)",
     "args_<env>.py:19 (ant_dir 18); algorithms/sac.py:54-61", ""),
    ("reward scale", "behaviour.sac_per_task.reward_scale", 1.0, "same (none)",
     "algorithms/sac.py:90", ""),
    ("batch size", "behaviour.sac_per_task.batch_size", 256, "same",
     "args_<env>.py:26 (ant_dir 25); learner.py:213", ""),
    ("episode length", "=episode_length", 200, "same",
     "environments/__init__.py:8-9,16-17,24-25 (cheetah-dir, cheetah-vel, ant-dir); "
     "hopper_rand_params.py:7,41-43; walker2d_rand_params.py:7,35-37", ""),
    ("stored terminal, hopper/walker", "=end_convention",
     {"hopper_param": "no_terminal", "walker_param": "no_terminal"},
     "same (term = is_goal_state(), absent on MuJoCo: 0, falls included)",
     "learner.py:474,484; walker2d_rand_params.py:31", ""),
    ("random warm-up env steps per task", "behaviour.sac_per_task.warmup_steps", 10_000,
     "50 rollouts x 200 steps before iteration 0 (walker: rollouts end at falls, fewer steps)",
     "args_<env>.py:24 (ant_dir 23); learner.py:183-186,459-463; walker2d_rand_params.py:31",
     "walker: jcomrl's warm-up is counted in env steps and takes the no-fall 10,000"),
    ("envs per task, updates per iteration", "=loop", dict.fromkeys(_NOT_WALKER, (2, 1)),
     "2 rollouts of 200 steps, then 200 updates",
     "args_<env>.py:25,27 (ant_dir 24,26); learner.py:190-193,211",
     "order: jcomrl's loop interleaves (each iteration steps 2 envs per task, then updates "
     "once), so the policy changes every step instead of every 400; same ratio and updates"),
    ("updates per env step", "=updates_per_env_step", dict.fromkeys(_NOT_WALKER, 0.5),
     "same: 200 per 2 x 200 steps", "args_<env>.py:25,27 (ant_dir 24,26)", ""),
    ("envs per task, updates per iteration, walker", "=loop", {"walker_param": (4, 5)},
     "2 rollouts that end at falls, then 200 updates", "args_walker_param.py:25,27; "
     "walker2d_rand_params.py:31; learner.py:457,471",
     "jcomrl budgets env steps, CORRO rollouts: 4 x 5 keeps the 600k updates and 4,000 per "
     "snapshot interval over 480k steps, near UNICORN Table 7's 4.5e5 per task"),
    ("updates per env step, walker", "=updates_per_env_step", {"walker_param": 1.25},
     "data-dependent: 200 per 2 rollouts; 600k over Table 7's 4.5e5 is about 1.36",
     "args_walker_param.py:23,25,27; walker2d_rand_params.py:31",
     "a fixed ratio (see the row above); CORRO's falls early in training make it vary"),
    ("iterations x updates = updates per task", "=updates_per_task",
     {"cheetah_vel": 100_000, "cheetah_dir": 100_000, "ant_dir": 40_000,
      "hopper_param": 140_000, "walker_param": 600_000},
     "num_iters x 200: 500 cheetah-vel, 200 ant-dir, 700 hopper, 3000 walker; cheetah-dir "
     "has no config",
     "args_cheetah_vel.py:23,27; args_ant_dir.py:22,26; args_hopper_param.py:23,27; "
     "args_walker_param.py:23,27; learner.py:181,211",
     "cheetah_dir: CORRO has no cheetah-dir collection (no config; train_data_collection.py "
     "has no such env type) and UNICORN ships none: cheetah_vel's 500 iterations"),
    ("env steps per task, cheetah_vel", "behaviour.sac_per_task.num_timesteps",
     {"cheetah_vel": _STEPS["cheetah_vel"]}, "same: 10,000 + 500 x 2 x 200 (Table 7: 2e5)",
     "args_cheetah_vel.py:23-25; learner.py:181-191", ""),
    ("env steps per task, cheetah_dir", "behaviour.sac_per_task.num_timesteps",
     {"cheetah_dir": _STEPS["cheetah_dir"]}, "no collection config (Table 7: 2e5)",
     "CORRO train_data_collection.py:31-43; environments/__init__.py:4-10",
     "cheetah_vel's recipe: same robot, episode length and Table 7 size"),
    ("env steps per task, ant_dir", "behaviour.sac_per_task.num_timesteps",
     {"ant_dir": _STEPS["ant_dir"]}, "same: 10,000 + 200 x 2 x 200 (Table 7: 1e5)",
     "args_ant_dir.py:22-24; environments/mujoco/ant_dir.py:34", ""),
    ("env steps per task, hopper_param", "behaviour.sac_per_task.num_timesteps",
     {"hopper_param": _STEPS["hopper_param"]}, "same: 10,000 + 700 x 2 x 200 (Table 7: 3e5)",
     "args_hopper_param.py:23-25; hopper_rand_params.py:37,41-43", ""),
    ("env steps per task, walker_param", "behaviour.sac_per_task.num_timesteps",
     {"walker_param": _STEPS["walker_param"]},
     "data-dependent: 50 + 6,000 rollouts ending at falls, at most 1,210,000 (Table 7: 4.5e5)",
     "args_walker_param.py:23-25; walker2d_rand_params.py:31,35-37",
     "10,000 + 480,000: see the walker loop row"),
    ("replay buffer per task", "behaviour.sac_per_task.buffer_size", _STEPS,
     "1e6 ring buffer: holds every transition of cheetah, ant, hopper; walker's would wrap "
     "above 1e6 (Table 7's 4.5e5 did not)",
     "args_<env>.py:13 (ant_dir 12); learner.py:97-98; simple_replay_buffer.py:89-92",
     "sized to the run so nothing is ever overwritten (keep_replay refuses a wrap); the same "
     "data wherever CORRO's buffer did not wrap"),
    ("snapshots kept", "behaviour.num_snapshots",
     {"cheetah_vel": 26, "cheetah_dir": 26, "ant_dir": 11, "hopper_param": 36,
      "walker_param": 151},
     "agent<i>.pt, i = 20, 40, ..., num_iters, with --save-models 1 (the README's command; the "
     "args default 0 saves no model)",
     "args_<env>.py:34,37 (ant_dir 35,38); learner.py:199-200,294-302; CORRO README.md:23; "
     "UNICORN ood_test_config/AntDir-v0.txt:1-10",
     "plus the untrained snapshot first: jcomrl's random anchor (the OOD protocol's "
     "ood_snapshots='trained' leaves it out)"),
    ("snapshot intervals start after the warm-up",
     "behaviour.sac_per_task.intervals_after_warmup", True,
     "same (agent<i> after the random rollouts + i iterations)", "learner.py:181-200", ""),
    ("updates between snapshots", "=updates_per_interval", 4_000, "same (20 iterations x 200)",
     "args_<env>.py:27,34 (ant_dir 26,35)", ""),
)


def official_recipe_markdown() -> str:
  """OFFICIAL_RECIPE_PROVENANCE as a Markdown table."""
  rows = ["| setting | ours | official | source | why, if different |", "|---|---|---|---|---|"]
  for setting, _, ours, official, source, why in OFFICIAL_RECIPE_PROVENANCE:
    if isinstance(ours, dict):
      ours = ", ".join(f"{env} {v}" for env, v in ours.items())
    rows.append("| " + " | ".join((setting, str(ours), official, source, why)) + " |")
  return "\n".join(rows)

# FOCAL's 2-task setting (``<env>@focal2``; jcomrl.algos.presets TASK_SETTINGS): the
# forward/backward tasks of FOCAL's cheetah-dir / ant-dir configs (FOCAL-ICLR cc2f1fd
# configs/cheetah-dir.json:3-7, ant-dir.json:3-9: 2 tasks, train = test = both), i.e. the env's
# "focal" variant (``env_overrides.variant``; jcomrl.envs HalfCheetahDir / AntDir VARIANTS). The
# behaviour data are ``<env>@cpu``'s recipe and per-task size (per-task SAC, 10 snapshots, mixed
# quality; 10k transitions per task cheetah, 6k ant), so the 2- and 40-task data differ only in
# the env variant (the tasks; on ant-dir also FOCAL's rlkit reward and termination, the variant's
# own); FOCAL's own collection (pytorch_sac's train.yaml, 50 sampled trajectories per
# saved checkpoint) is not reproduced. Written to ``data/<variant>`` (``out``), the dataset
# ``experiments/configs/focal.py:<env>@focal2`` trains on. ``tiny_<env>@focal2``: the tiny MuJoCo
# variants' behaviour (brax PPO, 640 env steps, 3 snapshots, one episode per task and snapshot;
# about 1.5 min on the loaded 2-core CPU, mostly compiling) for a quick end-to-end check; the
# tiny per-task SAC (256 env steps) is not used: on tiny_cheetah_dir@focal2 it left the untrained
# snapshot the best, so the random and expert anchors were equal and the dataset was refused.
FOCAL2_ALGO = "sac_per_task"
_FOCAL2_SIZE = {"cheetah_dir": 10_000, "ant_dir": 6_000}  # <env>@cpu's
assert tuple(_FOCAL2_SIZE) == FOCAL2_ENVS
for _env, _size in _FOCAL2_SIZE.items():
  _VARIANTS[f"{_env}@focal2"] = (_env, _CPU_BEHAVIOUR, (_size, 0, 0, 10))
  _VARIANTS[f"tiny_{_env}@focal2"] = (_env, _TINY_MJX, (0, 1, 0, 1))

# The multi-confounder tasks (``<env>@multi``; jcomrl.envs.mjx_base.MULTI_CONFOUNDER, for
# DOMINO): the env's "multi" variant (25 tasks: body mass x joint damping levels) built by the
# fast recipe above (one shared task-conditioned SAC agent over all 25 tasks, held-out
# combinations included as every recipe's behaviour_tasks="all", its replay buffer as the
# data), written to ``data/<variant>`` where the training configs' ``<env>@multi`` read it.
# ``tiny_<env>@multi``: the tiny MuJoCo variants' fast-recipe settings (400 env steps per task,
# 3 snapshots) for an end-to-end check.
MULTI_ALGO = FAST_ALGO
for _env in MULTI_ENVS:
  _VARIANTS[f"{_env}@multi"] = (_env, _CPU_BEHAVIOUR, (0, 0, 0, 10))
  _VARIANTS[f"tiny_{_env}@multi"] = (_env, _TINY_MJX, (0, 0, 0, 1))

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
  """The variant names ``get_config`` accepts, sorted."""
  return sorted(_VARIANTS)


def get_config(variant: str = "point_robot") -> config_dict.ConfigDict:
  """The data config of ``variant`` (layout in the module docstring); ``ValueError`` naming the
  variants for an unknown one."""
  if variant not in _VARIANTS:
    raise ValueError(f"no data config variant {variant!r}; have {variants()}")
  env, beh, (transitions, episodes, chunk, ret_eps) = _VARIANTS[variant]
  c = config_dict.ConfigDict()
  c.variant = variant
  c.env = env
  tasks = variant.rpartition("@")[2] if "@" in variant else ""
  focal2, multi = tasks == "focal2", tasks == "multi"
  c.env_overrides = config_dict.ConfigDict(dict(TASK_SETTING_OVERRIDES.get(tasks, {})))
  c.quality = "replay" if variant.endswith(("@fast", "@official", "@multi")) else "mixed"
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
                      FOCAL2_ALGO if focal2 and not variant.startswith("tiny_") else
                      FAST_ALGO if variant.endswith("@fast") else
                      MULTI_ALGO if multi else
                      OFFICIAL_ALGO if variant.endswith("@official") else "ppo")
  # How the snapshots act for the normalisation anchors: as the evaluation protocols act
  # (jcomrl.datagen.pipeline.ANCHOR_POLICIES; "stochastic" was jcomrl's earlier anchor).
  c.anchor_policy = "deterministic"
  c.behaviour.num_snapshots = beh["num_snapshots"]
  c.behaviour.ppo = config_dict.ConfigDict(beh["ppo"])
  c.behaviour.sac = config_dict.ConfigDict(beh["sac"])
  c.behaviour.sac_per_task = config_dict.ConfigDict(beh["sac_per_task"])
  c.behaviour.sac_shared = config_dict.ConfigDict(beh["sac_shared"])
  # The 2-task and multi-confounder data go where the training configs' <env>@<tasks> read them.
  c.out = f"data/{variant}" if focal2 or multi else config_dict.placeholder(str)
  c.overwrite = False
  c.resume = True
  return c


# ------------------------------------------------------------------ building a config's dataset


def check_env(c) -> None:
  """``ConfigError`` naming the registered envs unless ``c.env`` is one of them."""
  from jcomrl import envs
  from jcomrl.datagen import pipeline

  if c.env not in envs.registered():
    raise pipeline.ConfigError(f"unknown env {c.env!r} (config key env); expected one of "
                               f"{', '.join(envs.registered())}")


def behaviour_kwargs(c) -> dict:
  """``{"algo", "num_snapshots", **behaviour.<algo>}`` of a data config (``ConfigError`` if bad)."""
  from jcomrl.datagen import behaviour, pipeline

  algo = c.behaviour.algo
  if algo not in behaviour.ALGOS or algo not in c.behaviour:
    raise pipeline.ConfigError(f"unknown behaviour algo {algo!r} (config key behaviour.algo); "
                               f"expected one of {behaviour.ALGOS} with settings in "
                               "behaviour.<algo>")
  return {"algo": algo, "num_snapshots": c.behaviour.num_snapshots,
          **c.behaviour[algo].to_dict()}


def default_out(c) -> str:
  """Where a config's dataset goes: ``c.out``, else ``data/<variant>_<quality>``."""
  return c.out or f"data/{c.get('variant', c.env)}_{c.quality}"


def set_cpu_devices(c, requested: int | None) -> int:
  """Splits the host CPU into XLA devices before JAX starts its backends (per-task SAC shards
  its agents over them: on a quiet 2-core CPU, 40 cheetah-vel agents trained in 42 s instead of
  63 s with 2 devices). ``requested``: the device count, or ``None`` for the cores this process
  may use when ``c``'s behaviour algo is ``sac_per_task``, else 1. Returns the device count set
  (1: left alone)."""
  import jax

  from jcomrl.envs.c_physics import default_threads

  n = requested
  if n is None:
    n = default_threads() if c.get("behaviour", {}).get("algo") == "sac_per_task" else 1
  if n > 1:
    jax.config.update("jax_num_cpu_devices", int(n))
  return int(n)


def generate(c, *, progress=None, message=None, provenance: dict | None = None):
  """Builds (or resumes, from ``<out>.partial``) the dataset of data config ``c`` at
  ``default_out(c)``; returns ``(dataset, meta)`` as read back and validated.

  ``progress(step, metrics)``: behaviour-training progress; ``message(str)``: the pipeline's
  progress lines (resume notices, collection chunks). ``meta["creation"]`` records
  ``jcomrl.provenance.creation_record()`` updated with ``provenance``.

  Raises:
    ConfigError: an unknown env or behaviour algo, or an invalid setting.
    DatasetError: the dataset exists (and ``c.overwrite`` is off), or a work directory of other
      behaviour settings is in the way.
  """
  from jcomrl import provenance as prov
  from jcomrl.datagen import pipeline

  check_env(c)
  kw = behaviour_kwargs(c)
  record = dict(prov.creation_record(), **(provenance or {}))
  return pipeline.generate_and_save(
      default_out(c), c.env, dict(c.env_overrides), overwrite=c.overwrite, resume=c.resume,
      quality=c.quality, seed=c.seed, behaviour_kwargs=kw,
      episodes_per_snapshot=c.episodes_per_snapshot, transitions_per_task=c.transitions_per_task,
      chunk_episodes=c.chunk_episodes, return_episodes=c.return_episodes,
      behaviour_tasks=c.get("behaviour_tasks", "all"), physics=c.get("physics", "auto"),
      anchor_policy=c.get("anchor_policy", "deterministic"), provenance=record,
      progress=progress, message=message)
