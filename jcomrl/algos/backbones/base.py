"""The backbone interface, its registry and the gradient step every parameter group uses.

A backbone is the offline-RL half of a learner: it owns its parameter groups (networks, target
copies, scalars such as a learned temperature), writes its losses for *one task* (``[N]``
transitions and one code ``z``; the learner's meta-batch is a ``vmap`` over tasks), and updates
them in :meth:`Backbone.update`. Parameters and optimiser states are plain dicts of groups that
every stage returns anew (``{**params, "critic": new}``), so what each loss sees is the argument
it is given, never the order of statements. Register a new backbone with ``@register`` in its
own file under ``jcomrl/algos/backbones/`` and import it in ``__init__``; config validation,
presets and the README take their lists from :data:`BACKBONES`.

The extension points a new backbone overrides are listed on :class:`Backbone` and, for the
actor-critic family, on :class:`jcomrl.algos.backbones.sac.SAC` (``pre_update``,
``critic_loss_fn``, ``actor_loss_fn``, ``post_actor``): CQL adds a critic regulariser in
``critic_loss_fn``, IQL/AWR replace ``actor_loss_fn`` with a weighted log-likelihood and add a
value group, MISA adds its I(S; A) term to both and trains its critic in ``pre_update``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jcomrl import optim
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.objectives import code_size
from jcomrl.algos.settings import Settings, declare
from jcomrl.nets.actor_critic import DoubleCritic, TanhGaussianPolicy
from jcomrl.types import Transition

BACKBONES: dict[str, type[Backbone]] = {}



ACTIVATIONS = ("relu", "elu")


def register(cls: type[Backbone]) -> type[Backbone]:
  """Class decorator: makes ``cls`` selectable as ``LearnerConfig.backbone = cls.name``, with its
  ``Settings`` as ``learner.<name>.*`` and its ``Hyper`` as ``hparams.<name>.*``."""
  declare(cls.name, cls)
  BACKBONES[cls.name] = cls
  return cls


@dataclasses.dataclass(frozen=True)
class ActorCriticSettings(Settings):
  """The tanh-Gaussian actor and the twin critic of the actor-critic backbones."""

  log_std_min: float = -20.0
  log_std_max: float = 2.0
  # JaxCQL / MISA policy head (young-geng/JaxCQL model.py, sail-sg/MISA algos/model.py:165-209):
  # log_std = m * raw + o with learnable scalars m, o initialised at 1 and -1, and the pre-tanh
  # mean clipped to +-policy_mean_clip (9 there; 0 = no clip).
  policy_log_std_affine: bool = False
  policy_mean_clip: float = 0.0
  critic_activation: str = "relu"  # MISA's Q networks use ELU (experiments/main.py:67)
  # Data actions are clipped to +-action_logp_clip before their log-likelihood under the
  # tanh-Gaussian (BC, IQL, MISA's BC term; MISA experiments/main.py:128-130 clips at 0.999).
  action_logp_clip: float = 0.999

  def validate(self) -> None:
    self._choice("critic_activation", ACTIVATIONS)
    if not 0.0 < self.action_logp_clip < 1.0:
      raise ValueError(f"{self._key('action_logp_clip')} must lie in (0, 1), got "
                       f"{self.action_logp_clip}")


def make_backbone(cfg: LearnerConfig) -> Backbone:
  if cfg.backbone not in BACKBONES:
    raise ValueError(f"unknown backbone {cfg.backbone!r}; expected one of {tuple(BACKBONES)}")
  return BACKBONES[cfg.backbone](cfg)


def optimiser_init(params) -> Any:
  """The optimiser state of one parameter group (:func:`jcomrl.optim.adam_init`: Adam's
  moments; the traced rate is a plain product in ``apply_gradient``, so a sweep over it is a
  vmap and optax's state stays untouched)."""
  return optim.adam_init(params)


def apply_gradient(grads, params, opt_state, lr):
  """One Adam step at the traced learning rate ``lr`` (:func:`jcomrl.optim.adam_step`); returns
  ``(params, opt_state)``."""
  return optim.adam_step(grads, params, opt_state, lr)


def gradient_step(loss_fn: Callable, params, opt_state, lr):
  """Brax-style update: ``loss_fn(params) -> (loss, aux)``; returns ``(params, opt_state, aux)``."""
  (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  params, opt_state = apply_gradient(grads, params, opt_state, lr)
  return params, opt_state, aux


def task_mean(per_task_loss: Callable, params, rl: Transition, z, key):
  """``per_task_loss(params, rl_i, z_i, key_i)`` vmapped over the meta-batch's tasks; the task
  mean of the loss and of its aux."""
  keys = jax.random.split(key, z.shape[0])
  loss, aux = jax.vmap(lambda b, zz, k: per_task_loss(params, b, zz, k))(rl, z, keys)
  return jnp.mean(loss), jax.tree.map(jnp.mean, aux)


def make_policy(cfg: LearnerConfig, s: ActorCriticSettings) -> TanhGaussianPolicy:
  """The tanh-Gaussian policy of ``cfg`` with an actor-critic backbone's settings ``s``."""
  return TanhGaussianPolicy(cfg.rl_hidden, cfg.action_size, log_std_min=s.log_std_min,
                            log_std_max=s.log_std_max, log_std_affine=s.policy_log_std_affine,
                            mean_clip=s.policy_mean_clip, init_scheme=cfg.net_init)


def make_critic(cfg: LearnerConfig, s: ActorCriticSettings) -> DoubleCritic:
  """The twin Q(s, z, a) of ``cfg`` with an actor-critic backbone's settings ``s``."""
  return DoubleCritic(cfg.rl_hidden, activation=s.critic_activation, init_scheme=cfg.net_init)


class Policy(NamedTuple):
  """An evaluation policy that may carry state across the steps of an episode.

  ``init(params, z) -> pstate`` at the start of an episode (and after every explicit reset of
  a recorded segment); ``step(params, pstate, obs, reward, key, deterministic) -> (action,
  pstate)`` at every step, ``reward`` being the reward of the previous step (0 after a reset).
  Memoryless backbones are :func:`memoryless_policy` of their ``act`` (the state is z itself);
  the decision transformer keeps its last K steps. Calling a ``Policy`` like a memoryless
  ``act`` is an error: evaluate it through :mod:`jcomrl.eval.rollout`.
  """

  init: Callable
  step: Callable

  def __call__(self, params, obs, z, key, deterministic):
    raise TypeError("this policy depends on its history (a sequence-model backbone); evaluate it "
                    "with jcomrl.eval.rollout (Policy.init / Policy.step), not as act(obs, z)")


def memoryless_policy(act: Callable) -> Policy:
  """``act(params, obs, z, key, deterministic)`` as a :class:`Policy` whose state is ``z``:
  the same calls with the same keys, so returns are unchanged."""
  return Policy(init=lambda params, z: z,
                step=lambda params, z, obs, reward, key, det: (act(params, obs, z, key, det), z))


def as_policy(act) -> Policy:
  """``act`` if it is a :class:`Policy`, else :func:`memoryless_policy` of it."""
  return act if isinstance(act, Policy) else memoryless_policy(act)


def tile(z, n):
  """One task's code repeated for its ``n`` transitions."""
  return jnp.broadcast_to(z, (n,) + z.shape)


class Backbone:
  """Interface of an offline-RL backbone (one instance per :class:`LearnerConfig`).

  Attributes:
    name: the registry name (``LearnerConfig.backbone``).
    extra_batches: further RL batches of the same tasks one update trains on (BRAC's dual
      steps); the learner draws them and passes ``rls = [rl, *extra]`` to :meth:`update`.

    batch_kind: ``"transitions"`` (i.i.d. ``Transition [B, N]`` RL batches) or ``"segments"``
      (``Segment [B, N, K]`` trajectory windows, :func:`jcomrl.data.sampler.sample_segments`):
      what the learner draws for :meth:`update`.
    stateful: True when evaluation needs the episode's history: the learner's ``act`` is then
      :meth:`policy` (a :class:`Policy`), else the memoryless :meth:`act`.
    takes_prompt: True when the backbone can read a prompt code (objective ``prompt``); its
      ``return_scale`` then divides the prompt's returns-to-go.
    segment_length, return_scale: for ``batch_kind = "segments"``, the window length K and what
      returns-to-go are divided by.

  Subclasses implement:
    init(keys [3]) -> params: a dict of groups (keys for the actor, the critic, auxiliary nets).
    trained_groups(): the groups that have an optimiser state.
    critic_loss_fn(params, hp, extra) -> per-task ``(critic_params, rl, z, key) -> (loss, m)``:
      exposed so that objectives training the encoder through the critic can differentiate it.
    update(params, opt, rls, z, hp, keys [3], step, z_grad) -> (params, opt, metrics, dz):
      ``z`` is the detached ``[B, Z]`` meta-batch code; with ``z_grad`` it also returns the
      gradient of the critic loss with respect to ``z`` (the learner back-propagates it into the
      encoder leaves the objective lets the critic train), else None.
    act(params, obs, z, key, deterministic) -> action; ``stateful`` backbones also
      ``policy() -> Policy``.
    per_task_losses(params, rl, z, key, hp) -> {name: loss} of one task (tests).
  """

  name: ClassVar[str]
  # The backbone's static settings (a frozen jcomrl.algos.settings.Settings dataclass: its
  # subtree learner.<name>.*, read as ``self.settings``) and traced hyper-parameters (a
  # jcomrl.algos.settings.hyper class: hparams.<name>.*, read as ``hp.of(name)``); None: none.
  Settings: ClassVar[type | None] = None
  Hyper: ClassVar[type | None] = None
  extra_batches: int = 0
  # False for backbones without a Q critic (BC): objectives that train the encoder through the
  # critic cannot use them.
  has_critic: ClassVar[bool] = True
  batch_kind: ClassVar[str] = "transitions"
  stateful: ClassVar[bool] = False
  takes_prompt: ClassVar[bool] = False

  def __init__(self, cfg: LearnerConfig):
    self.cfg = cfg
    self.settings = cfg.settings(self.name) if self.Settings is not None else None

  def hyper(self, hp: HParams):
    """This backbone's hyper-parameters in ``hp`` (its ``Hyper``, ``hparams.<name>.*``)."""
    return hp.of(self.name)

  @classmethod
  def validate(cls, cfg: LearnerConfig) -> None:
    """Raises ValueError for settings this backbone cannot train with (its ``Settings`` check
    their own values; this is for checks across them and the learner config)."""

  def critic_step(self, params: dict, opt: dict, rl: Transition, z, hp: HParams, key, extra,
                  z_grad: bool):
    """One critic step on the task-mean loss; ``dz`` as in :meth:`update`."""
    per_task = self.critic_loss_fn(params, hp, extra)
    loss = lambda pc, zz: task_mean(per_task, pc, rl, zz, key)
    argnums = (0, 1) if z_grad else 0
    (_, aux), grads = jax.value_and_grad(loss, argnums=argnums, has_aux=True)(params["critic"], z)
    g_critic, dz = grads if z_grad else (grads, None)
    new, opt_c = apply_gradient(g_critic, params["critic"], opt["critic"], hp.critic_lr)
    return {**params, "critic": new}, {**opt, "critic": opt_c}, aux, dz

  def group_step(self, group: str, per_task_loss: Callable, params: dict, opt: dict,
                 rl: Transition, z, key, lr):
    """One optimiser step of ``group`` on the task-mean of ``per_task_loss``."""
    new, opt_g, aux = gradient_step(lambda p: task_mean(per_task_loss, p, rl, z, key),
                                    params[group], opt[group], lr)
    return {**params, group: new}, {**opt, group: opt_g}, aux

  def dummy_inputs(self):
    """``(obs, action, z)`` zeros of batch 1, for initialising networks."""
    cfg = self.cfg
    return tuple(jnp.zeros((1, n)) for n in (cfg.obs_size, cfg.action_size, code_size(cfg)))

  def policy(self) -> Policy:
    """The evaluation policy: :meth:`act` as a memoryless :class:`Policy` (``stateful``
    backbones override it with one that carries the episode's history)."""
    return memoryless_policy(self.act)

  def per_task_losses(self, params, rl: Transition, z, key, hp: HParams) -> dict:
    k_critic, k_actor, _ = jax.random.split(key, 3)
    return {"critic": self.critic_loss_fn(params, hp, None)(params["critic"], rl, z, k_critic)[0],
            "actor": self.actor_loss_fn(params, hp, None)(params["actor"], rl, z, k_actor)[0]}
