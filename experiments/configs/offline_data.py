"""Single-task D4RL-style dataset configs: ``--config=experiments/configs/offline_data.py:<variant>``.

One behaviour run (per-task SAC with one task) per env makes all five qualities
(``jcomrl.datagen.offline``): ``random``, ``medium``, ``medium_replay``, ``expert``,
``medium_expert``, written to ``<out>/<name>-<quality>`` (default ``data/offline``)::

    python -m experiments.collect --config=experiments/configs/offline_data.py:hopper@cpu
    python -m experiments.collect --config=experiments/configs/offline_data.py:hopper-medium@cpu

Variants: ``<env>[-<quality>][@cpu]`` for ``halfcheetah``, ``hopper``, ``walker2d``, ``ant``
(without ``-<quality>``: all five; ``@cpu``: the 2-core CPU profile), and ``tiny[-<quality>]``
(hopper, 100-step episodes, a few thousand env steps; the tests). ``--config.qualities=all`` or
a comma list overrides the variant's. A quality's directory that exists from the same run and
config is kept; the behaviour run is shared by the qualities through ``<out>/<name>.partial``.

The envs: each is our env family with overrides that leave one task matching the gym task
(gym ``*-v2``, which D4RL's gym datasets use) as closely as the family allows, with D4RL's
1000-step episodes; the remaining differences are listed in the README ("Single-task
(D4RL-style) datasets").

Layout::

    variant, name (family; directories <out>/<name>-<quality>), env, env_overrides
    qualities              "all" or a comma list of random, medium, medium_replay, expert,
                           medium_expert
    seed, out, overwrite, resume, physics
    transitions            size of random / medium / expert (medium_expert: twice; medium_replay:
                           the run's replay up to the medium snapshot); D4RL: 1M
    chunk_episodes         episodes per jitted collection call (0 = all at once)
    return_episodes        evaluation episodes per snapshot (anchors, the medium choice)
    medium_fraction        medium = the snapshot closest to this fraction of the expert's return
    anchor_policy          "deterministic" (default, as the evaluation acts) or "stochastic": how
                           the snapshots act when the anchors (0 = untrained, 100 = the best
                           snapshot, which also makes the expert data) are measured
    behaviour.algo         "sac_per_task" (the only one with a replay buffer to keep)
    behaviour.num_snapshots  K snapshots (untrained first, final last; expert = the best, medium
                           from the others but the untrained one)
    behaviour.sac_per_task   jcomrl.datagen.per_task_sac.train_sac_per_task kwargs; every snapshot
                           interval must be whole episodes per env (a clear error says which
                           num_timesteps fit)
"""

from ml_collections import config_dict

# family -> (env, overrides leaving one task). See the README for what still differs from gym.
ENVS = {
    # cheetah_dir forward (+1): reward v_x - 0.1 |a|^2 (gym HalfCheetah-v2's ctrl cost), gym's
    # 17-d observation.
    "halfcheetah": ("cheetah_dir", {"variant": "focal", "num_tasks": 1, "ctrl_cost_weight": 0.1,
                                    "obs_mode": "gym"}),
    # hopper_param at the unscaled physics (multipliers 1.5^0 = 1): the "focal" variant is
    # rand_param_envs' copy of gym Hopper-v2 (alive bonus 1, its termination, 11-d obs).
    "hopper": ("hopper_param", {"variant": "focal", "num_tasks": 1, "split": "same",
                                "log_scale_range": (0.0, 0.0)}),
    # walker_param likewise, with gym Walker2d-v2's frame skip 4 (rand_param_envs: 5).
    "walker2d": ("walker_param", {"variant": "focal", "num_tasks": 1, "split": "same",
                                  "log_scale_range": (0.0, 0.0), "frame_skip": 4}),
    # ant_dir at angle 0 with gym Ant-v2's ctrl cost, survive reward and termination; contact
    # cost 0, as D4RL's Ant-v2 under mujoco-py 2 computed it (gym issue #1541).
    "ant": ("ant_dir", {"variant": "focal", "fixed_angles": (0.0,),
                        "contact_cost_weight": 0.0}),
}
QUALITIES = ("random", "medium", "medium_replay", "expert", "medium_expert")
EPISODE_LENGTH = 1000  # D4RL / gym TimeLimit

# Paper scale (D4RL: SAC, 2x256, batch 256, 1 update per env step, lr 3e-4, learned entropy
# from alpha 1 (rlkit), 1M env steps; 1M transitions per quality). 41 snapshots = one every 25k
# steps, the resolution of the medium (1/3 expert) choice. Sized for a GPU.
_SAC = {"num_timesteps": 1_000_000, "num_envs": 1, "updates_per_iteration": 1,
        "hidden_sizes": (256, 256), "batch_size": 256, "warmup_steps": 10_000,
        "learn_entropy": True, "init_alpha": 1.0}
_PAPER = {"num_snapshots": 41, "sac": _SAC, "transitions": 1_000_000, "return_episodes": 10,
          "chunk_episodes": 100}
# CPU profile (2 cores, one env's five datasets in about 10 minutes): 2x64 nets, batch 128,
# 100k env steps, 21 snapshots (one every 5k steps), 4k warm-up, 50k transitions per quality,
# 10 evaluation episodes.
_SAC_CPU = dict(_SAC, num_timesteps=100_000, hidden_sizes=(64, 64), batch_size=128,
                warmup_steps=4_000, init_alpha=0.2)
_CPU = {"num_snapshots": 21, "sac": _SAC_CPU, "transitions": 50_000, "return_episodes": 10,
        "chunk_episodes": 25}
# Tiny (tests): hopper, 100-step episodes, 1,800 env steps, 4 snapshots, 300 transitions,
# stochastic anchors (see get_config).
_TINY = {"num_snapshots": 4, "transitions": 300, "return_episodes": 4, "chunk_episodes": 0,
         "sac": dict(_SAC, num_timesteps=1_800, warmup_steps=300, hidden_sizes=(32, 32),
                     batch_size=64, init_alpha=0.2)}


def variants() -> list[str]:
  out = ["tiny"] + [f"tiny-{q}" for q in QUALITIES]
  for name in ENVS:
    for suffix in ("", "@cpu"):
      out += [name + suffix] + [f"{name}-{q}{suffix}" for q in QUALITIES]
  return out


def _parse(variant: str):
  """``(family, quality or None, profile)`` of a variant name (``ValueError`` if unknown)."""
  base, at, profile = variant.partition("@")
  if at and profile != "cpu":
    raise ValueError(f"unknown profile @{profile} in {variant!r}; the only profile is @cpu")
  name, _, quality = base.partition("-")
  quality = quality.replace("-", "_") or None  # D4RL's hyphenated spelling works too
  if name not in (*ENVS, "tiny") or (quality and quality not in QUALITIES) or (
      name == "tiny" and at):
    raise ValueError(f"no offline data variant {variant!r}; have <env>[-<quality>][@cpu] for "
                     f"env in {sorted(ENVS)}, quality in {QUALITIES}, and tiny[-<quality>]")
  return name, quality, ("tiny" if name == "tiny" else profile or "paper")


def get_config(variant: str = "tiny"):
  name, quality, profile = _parse(variant)
  sizes = {"paper": _PAPER, "cpu": _CPU, "tiny": _TINY}[profile]
  env, overrides = ENVS["hopper" if name == "tiny" else name]
  c = config_dict.ConfigDict()
  c.variant = variant
  c.name = name
  c.env = env
  c.env_overrides = config_dict.ConfigDict(
      dict(overrides, episode_length=100 if name == "tiny" else EPISODE_LENGTH))
  c.qualities = quality or "all"
  c.seed = 0
  c.transitions = sizes["transitions"]
  c.chunk_episodes = sizes["chunk_episodes"]
  c.return_episodes = sizes["return_episodes"]
  c.medium_fraction = 1.0 / 3.0
  # How the snapshots act when the anchors are measured (and the expert / medium snapshots
  # chosen): as the single-task evaluation acts (jcomrl.datagen.pipeline.ANCHOR_POLICIES). Not
  # tiny's: after its 1,800 env steps no trained snapshot acting deterministically outlasts the
  # untrained one, whose near-constant mean action keeps the hopper up for all 100 steps
  # (returns 98.8, then 74.1, 42.4, 39.0; stochastically 25.5, 53.3, 53.5, 41.8), so the test
  # family anchors stochastically (deterministic anchors would have no expert).
  c.anchor_policy = "stochastic" if name == "tiny" else "deterministic"
  c.physics = "auto"
  c.behaviour = config_dict.ConfigDict()
  c.behaviour.algo = "sac_per_task"
  c.behaviour.num_snapshots = sizes["num_snapshots"]
  c.behaviour.sac_per_task = config_dict.ConfigDict(sizes["sac"])
  c.out = "data/offline"
  c.overwrite = False
  c.resume = True
  return c
