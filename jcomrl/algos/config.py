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

REPRESENTATIONS = ("focal", "oracle")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """Structure of one learner (static under jit)."""

  obs_size: int
  action_size: int
  task_param_size: int
  representation: str = "focal"
  latent_size: int = 8
  encoder_hidden: tuple[int, ...] = (64, 64)
  use_next_obs: bool = True
  rl_hidden: tuple[int, ...] = (64, 64)
  dual_hidden: tuple[int, ...] = (64, 64)
  meta_batch_size: int = 16
  context_size: int = 20
  context_mode: str = "trajectory"
  rl_batch_size: int = 64
  task_replace: bool = True
  brac: bool = True
  learn_entropy: bool = False
  log_std_max: float = 2.0
  steps_per_chunk: int = 100

  def __post_init__(self):
    if self.representation not in REPRESENTATIONS:
      raise ValueError(f"unknown representation objective {self.representation!r}; "
                       f"expected one of {REPRESENTATIONS}")
    if self.context_mode not in ("trajectory", "transitions"):
      raise ValueError(f"unknown context_mode {self.context_mode!r}")
    for name in ("meta_batch_size", "context_size", "rl_batch_size", "steps_per_chunk",
                 "latent_size"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

  @property
  def z_size(self) -> int:
    return self.task_param_size if self.representation == "oracle" else self.latent_size

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "LearnerConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
      raise ValueError(f"unknown learner config keys {sorted(unknown)}")
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**d)

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

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

  @classmethod
  def create(cls, **kw) -> "HParams":
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
