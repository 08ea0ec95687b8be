"""Decision transformer: return-conditioned sequence modelling of the data actions.

The backbone of Prompt-DT (Xu et al., ICML 2022; code mxu34/prompt-dt @5f665e5) and of UNICORN's
DT variants (UNICORN-SS-DT, UNICORN-SUP-DT, FOCAL-DT: the task code embedded as the first token,
paper §3.2 / Table 4; their code is not in betray12138/UNICORN). The network is
:class:`jcomrl.nets.transformer.DecisionTransformer` (GPT ``layers`` x ``heads``, width ``embed``,
dropout ``dropout``, ReLU MLP: the settings ``learner.dt.*``); it trains on ``Segment`` windows of
``K = context_length`` steps (the learner draws them because ``batch_kind = "segments"``) with
the action MSE over the real steps (``prompt_seq_trainer.py:68-75``; kzl ``seq_trainer.py:17-24``).

Optimiser as the official trainers: AdamW (torch's: decoupled decay on every parameter, so
``p <- p - lr (adam(g) + wd p)``) at ``hparams.actor_lr`` (1e-4) with ``weight_decay`` (1e-4),
a linear warm-up ``lr * min((step + 1) / warmup_steps, 1)`` (``pdt_main.py:124-133``) and the
gradient clipped to global norm ``grad_clip`` (0.25, ``prompt_seq_trainer.py:79``). The
warm-up counts learner updates; each of ours trains on the whole meta-batch (Prompt-DT also
steps once per batch of all training tasks, ``prompt_utils.py:162-205``).

Evaluation (``stateful``): the policy keeps the last K ``(R, s, a, t)`` and a mask; it starts
from ``R = target_return / return_scale`` and lowers R by ``reward / return_scale``
after every step (``prompt_evaluate_episodes.py:118-170``); the DT acts deterministically
(no dropout, the key is unused) also where a protocol asks for stochastic actions.
Group: ``actor`` (the whole network).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jcomrl import optim
from jcomrl.algos.backbones.base import Backbone, Policy, register, task_mean
from jcomrl.algos.config import HParams
from jcomrl.algos.objectives import OBJECTIVES, code_size
from jcomrl.algos.settings import Settings
from jcomrl.nets.transformer import DecisionTransformer
from jcomrl.types import Segment


@dataclasses.dataclass(frozen=True)
class DTSettings(Settings):
  """The decision transformer's settings (``learner.dt.*``; before plug-in subtrees
  ``dt_<name>``), as Prompt-DT's defaults (mxu34/prompt-dt pdt_main.py: 243 prompt length, 260 K,
  263-267 GPT size / activation / dropout, 268-270 AdamW and warm-up; 112 timestep table; grad
  clip prompt_dt/prompt_seq_trainer.py:79) and kzl/decision-transformer (gym/experiment.py:
  292-299, training/seq_trainer.py:28). Returns-to-go are divided by ``return_scale`` and
  evaluation starts from ``target_return`` (per env: presets)."""

  legacy = {f: "dt_" + f for f in ("context_length", "embed", "layers", "heads", "dropout",
                                   "max_timestep", "return_scale", "target_return",
                                   "warmup_steps", "weight_decay", "grad_clip")}

  context_length: int = 20
  embed: int = 128
  layers: int = 3
  heads: int = 1
  dropout: float = 0.1
  max_timestep: int = 1000
  return_scale: float = 1000.0
  target_return: float = 0.0
  warmup_steps: int = 10_000
  weight_decay: float = 1e-4
  grad_clip: float = 0.25

  def validate(self) -> None:
    self._positive("context_length", "embed", "layers", "heads", "max_timestep",
                   "return_scale", "warmup_steps", "grad_clip")
    if self.embed % self.heads:
      raise ValueError(f"{self._key('embed')} ({self.embed}) must be a multiple of "
                       f"{self._key('heads')} ({self.heads})")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"{self._key('dropout')} must lie in [0, 1), got {self.dropout}")


@register
class DT(Backbone):
  name = "dt"
  Settings = DTSettings
  has_critic = False
  batch_kind = "segments"
  stateful = True
  takes_prompt = True

  def __init__(self, cfg):
    super().__init__(cfg)
    s = self.settings
    if OBJECTIVES[cfg.representation].code_is_prompt:
      prefix = "prompt"
    else:
      prefix = "code" if code_size(cfg) else "none"
    self.net = DecisionTransformer(
        obs_size=cfg.obs_size, action_size=cfg.action_size, embed=s.embed, layers=s.layers,
        heads=s.heads, dropout=s.dropout, max_timestep=s.max_timestep, prefix=prefix,
        prompt_length=cfg.settings("prompt").length)

  @property
  def segment_length(self) -> int:
    """K, the steps of the ``Segment`` windows the learner draws for this backbone."""
    return self.settings.context_length

  @property
  def return_scale(self) -> float:
    """What returns-to-go are divided by, in its segments and in a prompt."""
    return self.settings.return_scale

  def dummy_segment(self) -> Segment:
    cfg, k = self.cfg, self.settings.context_length
    return Segment(obs=jnp.zeros((k, cfg.obs_size)), action=jnp.zeros((k, cfg.action_size)),
                   rtg=jnp.zeros((k,)), timestep=jnp.zeros((k,), jnp.int32),
                   mask=jnp.ones((k,)))

  def init(self, keys) -> dict:
    return {"actor": self.net.init(keys[0], self.dummy_segment(), jnp.zeros((code_size(self.cfg),)))}

  def trained_groups(self) -> tuple[str, ...]:
    return ("actor",)

  def predict(self, actor_params, seg: Segment, z, key=None):
    """Actions ``[..., K, A]`` for segments ``[..., K]`` of one task (dropout with a key)."""
    if seg.rtg.ndim > 1:
      if key is None:
        return jax.vmap(lambda s: self.predict(actor_params, s, z))(seg)
      keys = jax.random.split(key, seg.rtg.shape[0])
      return jax.vmap(lambda s, k: self.predict(actor_params, s, z, k))(seg, keys)
    if key is None:
      return self.net.apply(actor_params, seg, z, False)
    return self.net.apply(actor_params, seg, z, True, rngs={"dropout": key})

  def actor_loss_fn(self, params, hp: HParams, extra):
    del params, hp, extra

    def loss(p, seg: Segment, zz, key):
      pred = self.predict(p, seg, zz, key)
      mask = seg.mask[..., None]
      value = jnp.sum(mask * (pred - seg.action) ** 2) / (
          jnp.maximum(jnp.sum(seg.mask), 1.0) * self.cfg.action_size)
      return value, {"actor/loss": value}
    return loss

  def critic_loss_fn(self, params, hp: HParams, extra):
    raise ValueError("backbone 'dt' has no critic")

  def update(self, params, opt, rls, z, hp: HParams, keys, step, z_grad: bool):
    if z_grad:
      raise ValueError("backbone 'dt' has no critic to train the encoder through")
    s = self.settings
    per_task = self.actor_loss_fn(params, hp, None)
    (_, aux), grads = jax.value_and_grad(
        lambda p: task_mean(per_task, p, rls[0], z, keys[2]), has_aux=True)(params["actor"])
    grads, norm = optim.clip_by_global_norm(grads, s.grad_clip)
    lr = hp.actor_lr * jnp.minimum((step + 1.0) / s.warmup_steps, 1.0)
    new, opt_a = optim.adamw_step(grads, params["actor"], opt["actor"], lr, s.weight_decay)
    metrics = {**aux, "actor/grad_norm": norm, "actor/lr": lr}
    return {**params, "actor": new}, {**opt, "actor": opt_a}, metrics, None

  def act(self, params, obs, z, key, deterministic: bool):
    return self.policy()(params, obs, z, key, deterministic)  # raises: history-dependent

  def policy(self) -> Policy:
    cfg, s, k = self.cfg, self.settings, self.settings.context_length

    def init(params, z):
      del params
      seg = self.dummy_segment()
      return {"z": z, "seg": seg.replace(mask=jnp.zeros((k,))),
              "rtg": jnp.asarray(s.target_return / s.return_scale, jnp.float32),
              "t": jnp.zeros((), jnp.int32)}

    def step(params, st, obs, reward, key, deterministic):
      del key, deterministic
      t = st["t"]
      rtg = jnp.where(t == 0, st["rtg"], st["rtg"] - reward / s.return_scale)
      push = lambda buf, v: jnp.concatenate([buf[1:], jnp.asarray(v, buf.dtype)[None]])
      seg = st["seg"]
      seg = Segment(obs=push(seg.obs, obs), action=push(seg.action, jnp.zeros(cfg.action_size)),
                    rtg=push(seg.rtg, rtg), timestep=push(seg.timestep, t),
                    mask=push(seg.mask, 1.0))
      action = self.net.apply(params["actor"], seg, st["z"], False)[-1]
      seg = seg.replace(action=seg.action.at[-1].set(action))
      return action, {"z": st["z"], "seg": seg, "rtg": rtg, "t": t + 1}

    return Policy(init=init, step=step)

  def per_task_losses(self, params, rl, z, key, hp: HParams) -> dict:
    return {"actor": self.actor_loss_fn(params, hp, None)(params["actor"], rl, z, key)[0]}
