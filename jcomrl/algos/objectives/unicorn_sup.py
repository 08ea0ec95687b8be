"""UNICORN-SUP: a task classifier on z; its cross-entropy bounds I(Z; M) from below
(``log C - CE``, :func:`jcomrl.mi.classification_bound`)."""

from __future__ import annotations

import jax.numpy as jnp

from jcomrl import mi
from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.settings import hyper
from jcomrl.nets.mlp import MLP


@hyper
class UnicornSupHyper:
  """``hparams.unicorn_sup.sup_weight``: the classifier cross-entropy's weight."""

  sup_weight: float = 1.0


@register
class UnicornSup(Objective):
  name = "unicorn_sup"
  Hyper = UnicornSupHyper

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    self.classifier = MLP(cfg.aux_hidden, max(cfg.num_task_labels, 2))

  @classmethod
  def validate(cls, cfg):
    if cfg.num_task_labels < 2:
      raise ValueError("unicorn_sup needs num_task_labels >= 2 (the dataset's number of tasks)")

  def init(self, key):
    return {"classifier": self.classifier.init(key, jnp.zeros((1, self.cfg.latent_size)))}

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    logits = self.classifier.apply(params["classifier"], z)
    bound = mi.classification_bound(logits, batch.task_label)
    ce = jnp.log(float(logits.shape[-1])) - bound
    acc = jnp.mean(jnp.argmax(logits, -1) == batch.task_label)
    return self.hyper(hp).sup_weight * ce, {"rep/ce": ce, "rep/accuracy": acc, "rep/mi_bound": bound}
