"""Shared pieces of the training configs (learner structure, hyper-parameters, schedule)."""

from ml_collections import config_dict

# Point-robot settings shared by every preset: small networks, FOCAL's discount 0.9.
POINT_ROBOT = dict(
    learner=dict(latent_size=8, encoder_hidden=(64, 64), rl_hidden=(64, 64),
                 dual_hidden=(64, 64), meta_batch_size=16, context_mode="transitions",
                 context_size=64, rl_batch_size=64, use_next_obs=True, brac=True,
                 steps_per_chunk=500),
    hparams=dict(actor_lr=1e-3, critic_lr=1e-3, encoder_lr=1e-3, discount=0.9, tau=0.02,
                 brac_weight=0.1, entropy_alpha=0.2, focal_weight=10.0),
    num_steps=3000,
)


def base_config(representation: str, variant: str):
  if variant not in ("point_robot", "tiny"):
    raise ValueError(f"no variant {variant!r} for {representation}; have point_robot, tiny")
  c = config_dict.ConfigDict()
  c.algo = representation
  c.env = "point_robot"
  c.dataset = "data/point_robot_mixed"
  c.seed = 0
  c.num_seeds = 1
  c.learner = config_dict.ConfigDict(dict(POINT_ROBOT["learner"], representation=representation))
  c.hparams = config_dict.ConfigDict(POINT_ROBOT["hparams"])
  c.num_steps = POINT_ROBOT["num_steps"]
  c.checkpoint_every = 1000
  c.eval_every = 1000
  c.eval = config_dict.ConfigDict(dict(num_episodes=4, seed=123))
  if variant == "tiny":  # for tests: tiny networks, a few hundred steps
    c.learner.update(encoder_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,),
                     meta_batch_size=4, context_size=8, rl_batch_size=8, steps_per_chunk=10)
    c.num_steps, c.checkpoint_every, c.eval_every = 20, 10, 20
    c.eval.num_episodes = 1
  return c
