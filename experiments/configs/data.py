"""Dataset generation configs: ``--config=experiments/configs/data.py:<env>``."""

from ml_collections import config_dict

# Behaviour-policy (brax PPO, task-conditioned) settings per env variant.
_BEHAVIOUR = {
    "point_robot": dict(num_timesteps=200_000, num_snapshots=6, num_envs=128, batch_size=128,
                        num_minibatches=4, unroll_length=20, num_updates_per_batch=4,
                        learning_rate=3e-3, entropy_cost=1e-3, discounting=0.9,
                        hidden_sizes=(64, 64)),
}
_BEHAVIOUR["sparse_point_robot"] = _BEHAVIOUR["point_robot"]
_BEHAVIOUR["tiny"] = dict(_BEHAVIOUR["point_robot"], num_timesteps=20_480, num_snapshots=3)


def get_config(variant: str = "point_robot"):
  if variant not in _BEHAVIOUR:
    raise ValueError(f"no data config variant {variant!r}; have {sorted(_BEHAVIOUR)}")
  c = config_dict.ConfigDict()
  c.env = "point_robot" if variant == "tiny" else variant
  c.env_overrides = config_dict.ConfigDict()
  c.quality = "mixed"
  c.seed = 0
  c.episodes_per_snapshot = 10 if variant != "tiny" else 4
  c.behaviour = config_dict.ConfigDict(_BEHAVIOUR[variant])
  c.out = f"data/{c.env}_{c.quality}"
  c.overwrite = False
  return c
