"""The composition check of a learner config: its objective terms and backbone by name, their
own checks, and whether they fit together.

:class:`~jcomrl.algos.config.LearnerConfig` checks its fields on construction without looking at
the registries (it imports no backbone and no objective, so the registries' modules can import
it without an import circle). :func:`check` is the rest: :func:`jcomrl.algos.learner.make_learner`
and :func:`jcomrl.run.validate_config` call it, and so may anything that builds a learner config
by hand and wants its errors before the learner is built.
"""

from __future__ import annotations

from jcomrl.algos.backbones import BACKBONES
from jcomrl.algos.config import LearnerConfig
from jcomrl.algos.objectives import OBJECTIVES, parse_terms


def check(cfg: LearnerConfig) -> LearnerConfig:
  """``cfg`` if its representation, extra objective terms and backbone are registered, pass
  their own ``validate`` and fit together; else ``ValueError`` naming the setting."""
  if cfg.representation not in OBJECTIVES:
    raise ValueError(f"unknown representation objective {cfg.representation!r}; "
                     f"expected one of {tuple(OBJECTIVES)}")
  for term, _ in parse_terms(cfg.extra_objectives):
    if term not in OBJECTIVES or not OBJECTIVES[term].has_loss:
      raise ValueError(f"unknown extra_objectives term {term!r}; expected objectives with a "
                       f"loss: {tuple(n for n, c in OBJECTIVES.items() if c.has_loss)}")
    if OBJECTIVES[term].has_pretrain(cfg):
      raise ValueError(f"extra_objectives term {term!r} needs a pretrain stage; make it the "
                       f"primary representation instead")
  if cfg.backbone not in BACKBONES:
    raise ValueError(f"unknown backbone {cfg.backbone!r}; expected one of {tuple(BACKBONES)}")
  objective, backbone = OBJECTIVES[cfg.representation], BACKBONES[cfg.backbone]
  for term in {cfg.representation, *(t for t, _ in parse_terms(cfg.extra_objectives))}:
    OBJECTIVES[term].validate(cfg)
  backbone.validate(cfg)
  if objective.code_is_prompt and not backbone.takes_prompt:
    raise ValueError(f"representation {cfg.representation!r} needs a backbone that reads "
                     f"prompts ({', '.join(n for n, b in BACKBONES.items() if b.takes_prompt)}), "
                     f"not {cfg.backbone!r}")
  if objective.critic_trains and not backbone.has_critic:
    raise ValueError(f"representation {cfg.representation!r} trains the encoder through the "
                     f"critic, and backbone {cfg.backbone!r} has none; pick a backbone with "
                     f"a critic")
  if cfg.pretrain_steps and not objective.has_pretrain(cfg):
    raise ValueError(f"pretrain_steps is only used by objectives with a pretrain stage (corro "
                     f"with corro_negative_source='cvae'), not {cfg.representation!r}")
  return cfg
