"""The ``macaw`` preset: MACAW's official settings per env of the suite (``jcomrl.algos.macaw``).

``macaw_preset(env, profile, tiny)`` returns ``{"learner": {...}, "hparams": {...},
"num_steps": int}``: :class:`~jcomrl.algos.macaw.MacawConfig` overrides (without the env's
sizes) and :class:`~jcomrl.algos.config.HParams`; ``experiments/configs/macaw.py`` wraps it.
Sources: ``eric-mitchell/macaw`` at 3dfd4f9 (``src/macaw.py``, ``src/nn.py``, ``src/args.py``,
``src/utils.py``, ``config/alg/standard.json``, the file ``scripts/macaw_vel.sh`` runs), and
the MACAW paper (Mitchell et al., ICML 2021).

| setting | ours | official | source | why, if different |
|---|---|---|---|---|
| networks | V and mu: 3 x 100 WLinear, ReLU; mu tanh | same | standard.json:16-17,24; macaw.py:88-112 | |
| WLinear | z [100] ~ N(0, 1/out^2) -> linear -> (W, b) | same | nn.py:102-128 | |
| advantage head | [h, a] -> ReLU -> 32 -> ReLU -> 1, coef softplus(c), c0 = log 0.01 | same | macaw.py:87,205,391-395; standard.json:26 | |
| fixed sigma | 0.2 | same | args.py:30 | |
| inner steps / rates | 1 / softplus(l) per tensor, l0 = log 1e-3 | same | standard.json:9-10,21; macaw.py:198-203 | |
| lr of the rates and c | Adam 1e-3 | same | standard.json:23; macaw.py:207-211 | |
| outer Adam | value 1e-5, policy 1e-4 | same | standard.json:7-8 | |
| tasks per meta-batch | 5, without replacement | same | standard.json:20; macaw.py:652 | |
| RL (outer) batch | 256 random transitions | same | standard.json:11; macaw.py:668 | |
| inner value target | MC return, no bootstrap | same | standard.json:18; macaw.py:329 | |
| outer value target | MC + gamma^(k+1) V_targ(s_end'), V_targ = 0.9 V + 0.1 V' | same | macaw.py:305-312,414-417,726,742,746; args.py:19 | |
| AWR weights | exp(min(standardised A / 1, log 20)) | same | macaw.py:372-373; args.py:90,93 | |
| advantage | MC + gamma^(k+1) V'(s_end') - V'(s), adapted V, no gradient | same | macaw.py:361-368 | |
| outer loss scale | mean over the meta-batch's tasks | sum / number of training tasks | macaw.py:747,792 | a constant factor; Adam is invariant to it up to eps |
| discount | 0.99 (point-robot 0.9) | 0.99 | args.py:82; utils.py:190 | point-robot: the suite's point-robot discount |
| bootstrap after a true terminal | none (1 - terminal) | always bootstraps | utils.py:246-261 | respects the env's end convention; the official envs never terminate |
| adaptation data (train) | one stored trajectory (200 steps) | 256 contiguous buffer rows (every 7th step) | standard.json:12,15,25; macaw.py:666 | the suite's IID context is one trajectory; train = test adaptation data |
| adaptation data (eval) | the protocol's context (iid: one trajectory) | 256 random rows of the test buffer | standard.json:13; macaw.py:499 | the shared IID/OOD protocols |
| returns to go of a context | from the context's own chains; exact for a whole stored episode | precomputed over whole episodes | utils.py:239-261 | a cut chain bootstraps from the pre-adaptation V |
| evaluation action | the mean mu(s) | same (sample_mode) | macaw.py:264-265,524 | |
| training length | 200k updates | 1e6 | args.py:59 | one budget for every preset, as UNICORN's comparison |
| WLinear off (wlinear=False) | plain dense layers | BiasLinear | nn.py:161-176,190-193 | BiasLinear not reproduced (not in standard.json) |

Point-robot (``point_robot``, ``sparse_point_robot``): the suite's small setting (3000 updates,
discount 0.9, Adam 1e-3 for value and policy, RL batch 64) with MACAW's structure at 2 x 64
(the other point-robot presets use 64-wide networks); the official outer rates 1e-5 / 1e-4 do
not move a 3000-update run. ``profile="cpu"`` (MuJoCo envs, ``<env>@cpu``): 3 x 64 WLinear nets,
RL batch 128, 6000 updates, chunks of 500 (the other presets' CPU profile); the rates stay the
paper's, so at 6000 updates the value function is far from trained (not measured yet).
"""

from __future__ import annotations

from jcomrl.algos.presets import (  # noqa: F401  (ENVS, MUJOCO_ENVS, PROFILES: the suite's)
  CPU_NUM_STEPS,
  CPU_RL_BATCH,
  CPU_STEPS_PER_CHUNK,
  CPU_WIDTH,
  ENVS,
  MUJOCO_ENVS,
  PROFILES,
  check_env_profile,
)

_PAPER = dict(
    learner=dict(hidden=(100, 100, 100), wlinear=True, wlinear_dim=100, head_hidden=(32,),
                 advantage_head=True, adv_coef_init=0.01, action_sigma=0.2, inner_lr_init=1e-3,
                 target_vf_alpha=0.9, exp_advantage_clip=20.0, awr_temperature=1.0,
                 discount=0.99, first_order=False, meta_batch_size=5, task_replace=False,
                 context_mode="trajectory", context_size=200, rl_batch_size=256,
                 steps_per_chunk=1000),
    hparams=dict(value_lr=1e-5, actor_lr=1e-4, inner_lr_lr=1e-3),
    num_steps=200_000,
)


def macaw_preset(env: str, *, profile: str = "paper", tiny: bool = False) -> dict:
  """MACAW on ``env`` (``tiny``: test-sized nets and schedule on the point robot)."""
  check_env_profile("macaw", env, profile)
  lrn, hp = dict(_PAPER["learner"]), dict(_PAPER["hparams"])
  num_steps = _PAPER["num_steps"]
  if env in ("point_robot", "sparse_point_robot"):
    lrn.update(hidden=(64, 64), discount=0.9, context_size=20, rl_batch_size=64,
               steps_per_chunk=500)
    hp.update(value_lr=1e-3, actor_lr=1e-3)
    num_steps = 3000
  elif profile == "cpu":
    lrn.update(hidden=(CPU_WIDTH,) * 3, rl_batch_size=CPU_RL_BATCH,
               steps_per_chunk=CPU_STEPS_PER_CHUNK)
    num_steps = CPU_NUM_STEPS
  if tiny:
    lrn.update(hidden=(16, 16), wlinear_dim=8, head_hidden=(8,), meta_batch_size=4,
               rl_batch_size=16, steps_per_chunk=10)
    num_steps = 20
  return {"learner": lrn, "hparams": hp, "num_steps": num_steps}
