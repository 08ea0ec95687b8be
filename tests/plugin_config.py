"""A backbone and an objective defined outside the library, and a training config that uses them.

``python -m experiments.train --config=tests/plugin_config.py:tiny ...`` imports this file, which
registers both plug-ins (no jcomrl file is edited); the config then holds their settings as
``learner.toy_mlp_bc.*`` / ``learner.toy_task_regression.*`` and their hyper-parameters as
``hparams.toy_mlp_bc.*`` / ``hparams.toy_task_regression.*``, overridable with ``--config.``
like any other key. Used by ``tests/test_plugin_cli.py``.
"""

import dataclasses

import jax
import jax.numpy as jnp

from experiments.configs.common import base_config
from jcomrl.algos import backbones, objectives
from jcomrl.algos.backbones.base import Backbone, gradient_step, task_mean
from jcomrl.algos.settings import Settings, hyper
from jcomrl.nets.mlp import MLP

SQUASHES = {"tanh": jnp.tanh, "clip": lambda x: jnp.clip(x, -1.0, 1.0)}


@dataclasses.dataclass(frozen=True)
class MLPBCSettings(Settings):
  width: int = 16
  depth: int = 1
  squash: str = "tanh"

  def validate(self) -> None:
    self._positive("width", "depth")
    self._choice("squash", tuple(SQUASHES))


@hyper
class MLPBCHyper:
  lr: float = 1e-3  # its own Adam rate (not hparams.actor_lr)
  l2: float = 0.0  # weight of the squared parameter norm


@backbones.register
class MLPBC(Backbone):
  """Deterministic behaviour cloning: ``a = squash(MLP([s, z]))`` regresses the data action."""

  name = "toy_mlp_bc"
  Settings = MLPBCSettings
  Hyper = MLPBCHyper
  has_critic = False

  def __init__(self, cfg):
    super().__init__(cfg)
    s = self.settings
    self.net = MLP((s.width,) * s.depth, cfg.action_size)
    self.squash = SQUASHES[s.squash]

  def init(self, keys) -> dict:
    obs, _, z = self.dummy_inputs()
    return {"actor": self.net.init(keys[0], jnp.concatenate([obs, z], -1))}

  def trained_groups(self) -> tuple[str, ...]:
    return ("actor",)

  def _action(self, p, obs, z):
    z = jnp.broadcast_to(z, obs.shape[:-1] + z.shape[-1:])
    return self.squash(self.net.apply(p, jnp.concatenate([obs, z], -1)))

  def update(self, params, opt, rls, z, hp, keys, step, z_grad: bool):
    del step, z_grad
    h = self.hyper(hp)

    def per_task(p, rl, zz, key):
      del key
      mse = jnp.mean((self._action(p, rl.obs, zz) - rl.action) ** 2)
      return mse, {"actor/bc_mse": mse}

    def loss(p):
      value, aux = task_mean(per_task, p, rls[0], z, keys[2])
      l2 = sum(jnp.sum(x ** 2) for x in jax.tree.leaves(p))
      return value + h.l2 * l2, aux

    new, opt_a, metrics = gradient_step(loss, params["actor"], opt["actor"], h.lr)
    return {**params, "actor": new}, {**opt, "actor": opt_a}, metrics, None

  def act(self, params, obs, z, key, deterministic: bool):
    del key, deterministic
    return self._action(params["actor"], obs, z)


@dataclasses.dataclass(frozen=True)
class TaskRegressionSettings(Settings):
  head_width: int = 16

  def validate(self) -> None:
    self._positive("head_width")


@hyper
class TaskRegressionHyper:
  weight: float = 1.0


@objectives.register
class TaskRegression(objectives.Objective):
  """The encoder's code regresses the task parameters through a small head."""

  name = "toy_task_regression"
  Settings = TaskRegressionSettings
  Hyper = TaskRegressionHyper

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    self.head = MLP((self.settings.head_width,), cfg.task_param_size)

  def init(self, key):
    return {"toy_head": self.head.init(key, jnp.zeros((1, self.cfg.latent_size)))}

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    err = jnp.mean((self.head.apply(params["toy_head"], z) - batch.task_params) ** 2)
    return self.hyper(hp).weight * err, {"rep/toy_mse": err}


def get_config(variant: str = "tiny"):
  c = base_config("focal", variant)
  c.algo = "toy"
  c.learner.backbone = MLPBC.name
  c.learner.representation = TaskRegression.name
  return c
