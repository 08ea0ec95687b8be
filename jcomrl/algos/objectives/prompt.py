"""Prompt-DT's task conditioning: z is a trajectory prompt taken from the context (no encoder).

The prompt is the ``learner.prompt.length``-step window that ends one step before the end of the
context trajectory, with its returns-to-go (divided by the backbone's ``return_scale``,
``learner.dt.return_scale``) and episode timesteps
(:func:`jcomrl.data.sampler.prompt_segment`; Prompt-DT ``prompt_dt/prompt_utils.py:98-159``),
flattened into z (:func:`jcomrl.types.segment_to_vector`) for a backbone that reads prompts
(``takes_prompt``: the decision transformer). It is stochastic through the context: training
draws a random stored trajectory of the task per update (one prompt per task and update; Prompt-DT
draws one per sequence of the batch, ``prompt_utils.py:174``), IID evaluation a random
trajectory of the test task's offline data, OOD evaluation a behaviour rollout. Nothing is
learned here.
"""

from __future__ import annotations

import dataclasses

from jcomrl.algos.objectives.base import Objective, register
from jcomrl.algos.settings import Settings
from jcomrl.data.sampler import prompt_segment
from jcomrl.types import segment_to_vector, segment_vector_size


@dataclasses.dataclass(frozen=True)
class PromptSettings(Settings):
  """``learner.prompt.length``: the prompt's steps (Prompt-DT pdt_main.py:243 prompt length 5;
  before plug-in subtrees ``prompt_length``)."""

  legacy = {"length": "prompt_length"}

  length: int = 5

  def validate(self) -> None:
    self._positive("length")


@register
class Prompt(Objective):
  name = "prompt"
  Settings = PromptSettings
  uses_encoder = False
  has_loss = False
  code_is_prompt = True

  @classmethod
  def validate(cls, cfg) -> None:
    # (that the backbone reads prompts, ``takes_prompt``, is jcomrl.algos.compose.check's)
    if cfg.context_mode != "trajectory":
      raise ValueError("representation 'prompt' takes its prompt from a context trajectory; set "
                       "context_mode='trajectory'")

  @classmethod
  def code_size(cls, cfg) -> int:
    return segment_vector_size(cls.settings_of(cfg).length, cfg.obs_size, cfg.action_size)

  def code(self, context, task_params, key=None):
    del task_params, key
    # The backbone's return scale (compose.check: a backbone that ``takes_prompt``).
    scale = self.cfg.settings(self.cfg.backbone).return_scale
    return segment_to_vector(prompt_segment(context, self.settings.length, scale))
