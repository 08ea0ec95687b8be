"""Prompt-DT's task conditioning: z is a trajectory prompt taken from the context (no encoder).

The prompt is the ``prompt_length``-step window that ends one step before the end of the context
trajectory, with its returns-to-go (divided by ``dt_return_scale``) and episode timesteps
(:func:`jcomrl.data.sampler.prompt_segment`; Prompt-DT ``prompt_dt/prompt_utils.py:98-159``),
flattened into z (:func:`jcomrl.types.segment_to_vector`) for a backbone that reads prompts
(``takes_prompt``: the decision transformer). It is stochastic through the context: training
draws a random stored trajectory of the task per update (one prompt per task and update; Prompt-DT
draws one per sequence of the batch, ``prompt_utils.py:174``), IID evaluation a random
trajectory of the test task's offline data, OOD evaluation a behaviour rollout. Nothing is
learned here.
"""

from __future__ import annotations

from jcomrl.algos.objectives.base import Objective, register
from jcomrl.data.sampler import prompt_segment
from jcomrl.types import segment_to_vector, segment_vector_size


@register
class Prompt(Objective):
  name = "prompt"
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
    return segment_vector_size(cfg.prompt_length, cfg.obs_size, cfg.action_size)

  def code(self, context, task_params, key=None):
    del task_params, key
    return segment_to_vector(prompt_segment(context, self.cfg.prompt_length,
                                            self.cfg.dt_return_scale))
