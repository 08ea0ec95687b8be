"""MACAW (Mitchell et al., ICML 2021): offline meta-RL by MAML + advantage-weighted regression.

A learner of its own (no task encoder): MAML over a value function V(s) and a fixed-sigma
Gaussian policy mu(s), one inner gradient step per task with learned per-parameter inner
learning rates. It reuses jcomrl's dataset and sampler, the trainer's host loop and checkpoints
(the train state is :class:`jcomrl.algos.learner.TrainState`) and the evaluation protocols:
``encode(params, context, task_params, key)`` *adapts* to the context (one value step, then one
policy step, as MACAW's evaluation) and returns the adapted policy as its task "code" (the
dense weights of its trunk, a pytree); ``act(params, obs, code, key, deterministic)`` runs it.

    learner = make_macaw(MacawConfig(obs_size=..., action_size=..., task_param_size=...))
    state = learner.init(seed_keys)                       # leading seed axis [S]
    state, metrics = learner.train_chunk(state, dataset, hparams, task_pool)

One update (official code ``eric-mitchell/macaw`` at 3dfd4f9, ``src/macaw.py:632-872``), per
task of a meta-batch (vmapped), inside one ``jax.grad``:

1. inner value step on the task's context (the adaptation data): ``theta_V' = theta_V -
   softplus(l_V) * grad MSE(V(s), G)`` with ``G`` the Monte-Carlo return-to-go (no bootstrap in
   the inner loop: ``config/alg/standard.json:17`` ``no_bootstrap``, ``macaw.py:329``);
2. outer value loss on a random RL batch of the task: MSE to ``G + gamma^(k+1) V_targ(s_end')``
   with ``V_targ = 0.9 theta_V + 0.1 theta_V'`` (``macaw.py:726,742,746``: the target is a copy of
   the pre-adaptation V, soft-updated once towards the adapted one with ``target_vf_alpha`` = 0.9
   weighting the *old* copy, ``macaw.py:414-417``, ``args.py:19``); its gradient flows through
   the inner step into ``theta_V`` and the learned rates ``l_V`` (``higher`` with
   ``copy_initial_weights=False``, ``macaw.py:728``);
3. inner policy step on the context with the AWR loss ``-w log N(a; mu(s), 0.2)`` plus the
   advantage head's ``softplus(c) (head(s, a) - A)^2`` (``macaw.py:359-397``), where
   ``A = G + gamma^(k+1) V'(s_end') - V'(s)`` from the *adapted* V (no gradient into V,
   ``macaw.py:361-368``) and ``w = exp(min(norm(A) / T, log 20))``, ``norm`` = standardised over
   the batch (``macaw.py:372-373``, ``args.py:90,93``);
4. outer policy loss: AWR of the adapted policy on the RL batch (``macaw.py:787``); its gradient
   flows through the inner step into the policy, its rates ``l_pi`` and ``c``.

Adam on every group: value 1e-5, policy 1e-4 (``standard.json:7-8``), the rates and ``c`` at
the lr-of-lr 1e-3 (``standard.json:23``, ``macaw.py:207-211``). The rates are one scalar per
parameter *tensor* (a pytree leaf; ``macaw.py:198-203`` loops over ``parameters()``), kept as
``l`` with ``rate = softplus(l)``, initialised at ``log(1e-3)`` (``macaw.py:198``; rate
``log(1 + 1e-3)`` ~ 1e-3); ``c`` starts at ``log(0.01)`` (``macaw.py:205``).

Returns to go (``chain_returns``) are computed from what a block of transitions holds: a chain
of consecutive stored steps (``next_obs[t] == obs[t + 1]`` and no stored end flag between) is
summed backwards; it ends at a stored end (terminal or timeout: the dataset's flags already follow
the env's ``end_convention``, ``jcomrl.envs.base``) or where the block stops. The bootstrap
factor ``gamma^(k+1)`` is zeroed after a true terminal (MACAW's buffer always bootstraps,
``utils.py:246-261`` with ``macaw.py:305-312``; its envs never terminate). RL batches use the
chains of the whole stored segments, computed on device once per ``train_chunk`` from the
dataset arrays (no new dataset field, so every existing dataset works and the flags are read
where they are stored); contexts use the chains inside the context itself, in training and at
evaluation alike. A one-segment context (the ``iid`` protocol: one stored 200-step episode)
gives exactly MACAW's full-episode returns; a shorter trajectory prefix or random transitions
cut the chains, and there (only) the inner value target bootstraps from the pre-adaptation V.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jcomrl import optim
from jcomrl.algos.config import HParams
from jcomrl.algos.learner import FIRST_NONFINITE, TrainState, seed_sharding
from jcomrl.data.dataset import OfflineDataset
from jcomrl.data.sampler import CONTEXT_MODES, sample_context
from jcomrl.types import Transition

LEARNER_TYPE = "macaw"


@dataclasses.dataclass(frozen=True)
class MacawConfig:
  """Structure of a MACAW learner (static under jit). Defaults: the official settings."""

  obs_size: int
  action_size: int
  task_param_size: int
  hidden: tuple[int, ...] = (100, 100, 100)  # net_depth 3 x net_width 100 (standard.json:16-17)
  wlinear: bool = True  # standard.json:24
  wlinear_dim: int = 100  # nn.py:110 (hard-coded)
  head_hidden: tuple[int, ...] = (32,)  # policy_head = [32, 1] (macaw.py:87)
  advantage_head: bool = True  # advantage_head_coef 0.01 (standard.json:26)
  adv_coef_init: float = 0.01
  action_sigma: float = 0.2  # args.py:30
  inner_lr_init: float = 1e-3  # inner_policy_lr / inner_value_lr (standard.json:9-10)
  target_vf_alpha: float = 0.9  # args.py:19
  exp_advantage_clip: float = 20.0  # args.py:90
  awr_temperature: float = 1.0  # adaptation_temp (args.py:93)
  discount: float = 0.99  # args.py:82 (the buffers' discount_factor, utils.py:190)
  first_order: bool = False  # True: the inner gradient is a constant (first-order MAML)
  meta_batch_size: int = 5  # task_batch_size (standard.json:20)
  task_replace: bool = False  # random.sample (macaw.py:652)
  context_mode: str = "trajectory"
  context_size: int = 200
  rl_batch_size: int = 256  # batch_size (standard.json:11)
  steps_per_chunk: int = 1000

  def __post_init__(self):
    if self.context_mode not in CONTEXT_MODES:
      raise ValueError(f"unknown context_mode {self.context_mode!r}; expected one of "
                       f"{CONTEXT_MODES}")
    for name in ("obs_size", "action_size", "meta_batch_size", "context_size", "rl_batch_size",
                 "steps_per_chunk", "wlinear_dim"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    if not self.hidden or any(h <= 0 for h in self.hidden + self.head_hidden):
      raise ValueError(f"hidden {self.hidden} and head_hidden {self.head_hidden} must be "
                       "positive widths, with at least one hidden layer")
    for name in ("inner_lr_init", "adv_coef_init", "action_sigma", "exp_advantage_clip",
                 "awr_temperature"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
    if not 0.0 <= self.target_vf_alpha <= 1.0 or not 0.0 < self.discount <= 1.0:
      raise ValueError(f"target_vf_alpha ({self.target_vf_alpha}) must lie in [0, 1] and "
                       f"discount ({self.discount}) in (0, 1]")

  @property
  def z_size(self) -> int:
    raise ValueError("MACAW's task code is an adapted policy (a pytree), not a vector: the "
                     "online protocol (z = 0 before inference) does not apply; use iid, ood, "
                     "task_ood or z_shuffle")

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> MacawConfig:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
      raise ValueError(f"unknown macaw config keys {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

  def structure_dict(self) -> dict[str, Any]:
    d = self.to_dict()
    d.pop("steps_per_chunk")
    return d


# ------------------------------------------------------------------------------------ networks


def _torch_uniform(key, shape, fan_in):
  """torch.nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
  bound = 1.0 / math.sqrt(fan_in)
  return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


def layer_init(key, fan_in: int, fan_out: int, cfg: MacawConfig) -> dict:
  """One layer's parameters.

  WLinear (``src/nn.py:102-128``, our own form): a learned vector ``z [D]`` (D = 100,
  ``N(0, (1 / fan_out)^2)``, ``nn.py:111``) is mapped by a linear layer ``w [D, n], b [n]``
  (torch's default init, ``nn.py:113``) to the layer's ``n = fan_in * fan_out + fan_out``
  weights: ``theta = z w + b``, ``W = theta[:fan_in * fan_out].reshape(fan_in, fan_out)``,
  ``bias = theta[fan_in * fan_out:]`` (``nn.py:123-128``). All three tensors are adapted in
  the inner loop (``MLP.adaptation_parameters`` returns every parameter, ``nn.py:220-221``).
  Without WLinear: a plain dense layer ``{"w", "b"}`` with torch's init.
  """
  kz, kw, kb = jax.random.split(key, 3)
  if not cfg.wlinear:
    return {"w": _torch_uniform(kw, (fan_in, fan_out), fan_in),
            "b": _torch_uniform(kb, (fan_out,), fan_in)}
  n, d = fan_in * fan_out + fan_out, cfg.wlinear_dim
  return {"z": jax.random.normal(kz, (d,)) / fan_out, "w": _torch_uniform(kw, (d, n), d),
          "b": _torch_uniform(kb, (n,), d)}


def dense(p: dict, fan_in: int, fan_out: int):
  """``(W [fan_in, fan_out], bias [fan_out])`` of a layer (materialised from WLinear's z)."""
  if "z" not in p:
    return p["w"], p["b"]
  theta = p["z"] @ p["w"] + p["b"]
  return theta[:fan_in * fan_out].reshape(fan_in, fan_out), theta[fan_in * fan_out:]


def _sizes(cfg: MacawConfig, out: int, fan_in: int) -> list[tuple[int, int]]:
  widths = (fan_in,) + tuple(cfg.hidden) + (out,)
  return list(zip(widths[:-1], widths[1:]))


def _head_sizes(cfg: MacawConfig) -> list[tuple[int, int]]:
  widths = (cfg.hidden[-1] + cfg.action_size,) + tuple(cfg.head_hidden) + (1,)
  return list(zip(widths[:-1], widths[1:]))


def _init_mlp(key, sizes, cfg) -> dict:
  keys = jax.random.split(key, len(sizes))
  return {f"l{i}": layer_init(k, a, b, cfg) for i, (k, (a, b)) in enumerate(zip(keys, sizes))}


def _dense_all(p: dict, sizes) -> dict:
  return {f"l{i}": dense(p[f"l{i}"], a, b) for i, (a, b) in enumerate(sizes)}


def mlp(layers: dict, x):
  """ReLU MLP on dense ``layers``; returns ``(output, h)``, ``h`` being the last hidden layer's
  pre-activation (MACAW's ``pre_seq``, ``nn.py:205,226``)."""
  n = len(layers)
  h = x
  for i in range(n):
    w, b = layers[f"l{i}"]
    x = x @ w + b
    if i < n - 1:
      h = x
      x = jax.nn.relu(x)
  return x, h


class Nets:
  """MACAW's two networks as pure functions of their parameter dicts.

  * value ``V(s)``: MLP obs -> hidden -> 1 (``macaw.py:108-112``);
  * policy ``mu(s) = tanh(MLP(s))`` (``final_activation=torch.tanh``, ``macaw.py:88-94``) with
    the advantage head ``head(s, a) = MLP_head(relu([h(s), a]))`` on the trunk's last hidden
    pre-activation ``h`` (``nn.py:204-215,225-228``: the head starts with a ReLU, which also
    rectifies the actions; kept as the code has it).
  """

  def __init__(self, cfg: MacawConfig):
    self.cfg = cfg
    self.value_sizes = _sizes(cfg, 1, cfg.obs_size)
    self.trunk_sizes = _sizes(cfg, cfg.action_size, cfg.obs_size)
    self.head_sizes = _head_sizes(cfg)

  def init(self, key) -> dict:
    kv, kp, kh = jax.random.split(key, 3)
    policy = {"trunk": _init_mlp(kp, self.trunk_sizes, self.cfg)}
    if self.cfg.advantage_head:
      policy["head"] = _init_mlp(kh, self.head_sizes, self.cfg)
    return {"value": _init_mlp(kv, self.value_sizes, self.cfg), "policy": policy}

  def value(self, vp: dict, obs):
    return mlp(_dense_all(vp, self.value_sizes), obs)[0][..., 0]

  def code(self, pp: dict) -> dict:
    """The adapted policy's task code: the dense weights of its trunk (what acting needs)."""
    return _dense_all(pp["trunk"], self.trunk_sizes)

  @staticmethod
  def mean_action(code: dict, obs):
    return jnp.tanh(mlp(code, obs)[0])

  def policy(self, pp: dict, obs, action):
    """``(mu [N, A], head [N] or None)``."""
    out, h = mlp(self.code(pp), obs)
    if "head" not in pp:
      return jnp.tanh(out), None
    head_in = jax.nn.relu(jnp.concatenate([h, action], axis=-1))
    adv, _ = mlp(_dense_all(pp["head"], self.head_sizes), head_in)
    return jnp.tanh(out), adv[..., 0]


# ------------------------------------------------------------------------------ returns to go


@struct.dataclass
class Returns:
  """Per-transition Monte-Carlo quantities of a block of transitions (leading axes ``[..., L]``).

  Attributes:
    mc: discounted reward sum from the step to the end of its chain.
    boot: ``gamma^(k+1) (1 - terminal_end)`` for a chain end ``k`` steps later: the weight of
      ``V(next_obs[end])`` in the bootstrapped return.
    end: index of the chain's last step (in the block; global over the task's ``N`` for the
      dataset's segments).
    cut: 1.0 where the chain ends without a stored end flag (cut by the block, not the data).
  """

  mc: jnp.ndarray
  boot: jnp.ndarray
  end: jnp.ndarray
  cut: jnp.ndarray


def chain_returns(tr: Transition, discount) -> Returns:
  """``Returns`` of one ordered block ``tr [L]`` (see the module docstring)."""
  chex.assert_rank(tr.reward, 1)
  length = tr.reward.shape[0]
  stored_end = jnp.maximum(tr.terminal, tr.timeout)
  follows = jnp.all(tr.next_obs[:-1] == tr.obs[1:], axis=-1)
  link = jnp.concatenate([follows, jnp.zeros((1,), bool)]) & (stored_end == 0)

  def back(carry, x):
    mc_n, boot_n, end_n, cut_n = carry
    r, lk, term, send, t = x
    mc = r + jnp.where(lk, discount * mc_n, 0.0)
    boot = discount * jnp.where(lk, boot_n, 1.0 - term)
    end = jnp.where(lk, end_n, t)
    cut = jnp.where(lk, cut_n, 1.0 - send).astype(r.dtype)
    return (mc, boot, end, cut), (mc, boot, end, cut)

  zero = jnp.zeros((), tr.reward.dtype)
  init = (zero, zero, jnp.zeros((), jnp.int32), zero)
  xs = (tr.reward, link, tr.terminal, stored_end, jnp.arange(length, dtype=jnp.int32))
  _, (mc, boot, end, cut) = jax.lax.scan(back, init, xs, reverse=True)
  return Returns(mc=mc, boot=boot, end=end, cut=cut)


def dataset_returns(data: OfflineDataset, discount) -> Returns:
  """``Returns [T, N]`` of every stored transition: chains inside each stored segment."""
  seg, t, n = data.segment_length, data.num_tasks, data.num_transitions
  blocks = jax.tree.map(lambda x: x.reshape((t, n // seg, seg) + x.shape[2:]), data.transitions)
  r = jax.vmap(jax.vmap(lambda b: chain_returns(b, discount)))(blocks)
  offset = (jnp.arange(n // seg, dtype=jnp.int32) * seg)[None, :, None]
  r = r.replace(end=r.end + offset)
  return jax.tree.map(lambda x: x.reshape((t, n)), r)


# -------------------------------------------------------------------------------- the losses


def _sg(x):
  return jax.lax.stop_gradient(x)


def _mse(a, b):
  return jnp.mean(jnp.square(a - b))


class Macaw:
  """MACAW's per-task adaptation and losses (pure functions; ``cfg`` is static)."""

  def __init__(self, cfg: MacawConfig):
    self.cfg = cfg
    self.nets = Nets(cfg)

  # -- parameters
  def init(self, key) -> dict:
    params = self.nets.init(key)
    l0 = float(np.log(self.cfg.inner_lr_init))
    f32 = lambda v: jnp.full((), v, jnp.float32)  # strongly typed: no retrace after a step
    params["value_lrs"] = jax.tree.map(lambda _: f32(l0), params["value"])
    params["policy_lrs"] = jax.tree.map(lambda _: f32(l0), params["policy"])
    params["adv_coef"] = f32(float(np.log(self.cfg.adv_coef_init)))
    return params

  def _step(self, params, lrs, grads):
    """One SGD step with per-tensor rates ``softplus(l)``."""
    if self.cfg.first_order:
      grads = _sg(grads)
    return jax.tree.map(lambda p, g, l: p - jax.nn.softplus(l) * g, params, grads, lrs)

  # -- value
  def inner_value_loss(self, vp, obs, target):
    return _mse(self.nets.value(vp, obs), target)

  def adapt_value(self, vp, v_lrs, ctx: Transition, ret: Returns):
    """One inner value step on the context: MC targets (bootstrapped from the pre-adaptation V
    only at chains the context cut)."""
    v_end = self.nets.value(vp, ctx.next_obs[ret.end])
    target = _sg(ret.mc + ret.cut * ret.boot * v_end)
    grads = jax.grad(self.inner_value_loss)(vp, ctx.obs, target)
    return self._step(vp, v_lrs, grads)

  def outer_value_loss(self, vp, vp_adapted, rl: Transition, ret: Returns, end_obs):
    alpha = self.cfg.target_vf_alpha
    target_p = _sg(jax.tree.map(lambda a, b: alpha * a + (1.0 - alpha) * b, vp, vp_adapted))
    target = _sg(ret.mc + ret.boot * self.nets.value(target_p, end_obs))
    return _mse(self.nets.value(vp_adapted, rl.obs), target)

  # -- policy
  def advantages(self, vp_adapted, tr: Transition, ret: Returns, end_obs):
    q = ret.mc + ret.boot * self.nets.value(vp_adapted, end_obs)
    return _sg(q - self.nets.value(vp_adapted, tr.obs))

  def awr_weights(self, adv):
    n = adv.shape[0]
    std = jnp.sqrt(jnp.sum(jnp.square(adv - adv.mean())) / max(n - 1, 1))  # torch .std()
    norm = (adv - adv.mean()) / (std + 1e-8) / self.cfg.awr_temperature
    return jnp.exp(jnp.minimum(norm, np.log(self.cfg.exp_advantage_clip)))

  def log_prob(self, mu, action):
    s = self.cfg.action_sigma
    return jnp.sum(-0.5 * jnp.square((action - mu) / s) - np.log(s) - 0.5 * np.log(2 * np.pi),
                   axis=-1)

  def policy_loss(self, pp, adv_coef, tr: Transition, adv, inner: bool):
    mu, head = self.nets.policy(pp, tr.obs, tr.action)
    loss = -self.log_prob(mu, tr.action) * self.awr_weights(adv)
    if inner and head is not None:
      loss = loss + jax.nn.softplus(adv_coef) * jnp.square(head - adv)
    return jnp.mean(loss)

  def adapt_policy(self, pp, p_lrs, adv_coef, ctx: Transition, adv):
    grads = jax.grad(self.policy_loss)(pp, adv_coef, ctx, adv, True)
    return self._step(pp, p_lrs, grads)

  # -- adaptation (the evaluation's encode) and the per-task meta-loss
  def adapt(self, params, ctx: Transition):
    """``(adapted value params, adapted policy params)`` after one step each on ``ctx [K]``."""
    ret = chain_returns(ctx, self.cfg.discount)
    vp = self.adapt_value(params["value"], params["value_lrs"], ctx, ret)
    adv = self.advantages(vp, ctx, ret, ctx.next_obs[ret.end])
    pp = self.adapt_policy(params["policy"], params["policy_lrs"], params["adv_coef"], ctx, adv)
    return vp, pp

  def task_loss(self, params, ctx: Transition, rl: Transition, rl_ret: Returns, end_obs):
    """The outer losses of one task (value + policy; they share no parameters)."""
    vp, pp = self.adapt(params, ctx)
    v_loss = self.outer_value_loss(params["value"], vp, rl, rl_ret, end_obs)
    adv = self.advantages(vp, rl, rl_ret, end_obs)
    p_loss = self.policy_loss(pp, params["adv_coef"], rl, adv, False)
    metrics = {"value/outer_loss": v_loss, "policy/outer_loss": p_loss,
               "policy/adv_mean": jnp.mean(adv), "value/mc_mean": jnp.mean(rl_ret.mc)}
    return v_loss + p_loss, metrics


# -------------------------------------------------------------------------------- the learner

_GROUP_LR = {"value": "value_lr", "policy": "actor_lr", "value_lrs": "inner_lr_lr",
             "policy_lrs": "inner_lr_lr", "adv_coef": "inner_lr_lr"}


@dataclasses.dataclass(frozen=True)
class MacawLearner:
  """The compiled functions of one MACAW configuration (the trainer's and the evaluation's
  ``Learner`` interface: ``cfg``, ``init``, ``train_chunk``, ``encode``, ``act``, ``update``,
  ``trace_count``)."""

  cfg: MacawConfig
  init: Callable
  train_chunk: Callable
  encode: Callable
  act: Callable
  update: Callable
  trace_count: Callable
  macaw: Macaw

  @property
  def z_size(self) -> int:
    return self.cfg.z_size  # raises: MACAW's task code is no vector


def _meta_batch(cfg: MacawConfig, key, data: OfflineDataset, task_pool, returns: Returns):
  """One update's draws: ``(next key, tasks [B], contexts, RL batches [B, N], their returns,
  their bootstrap observations)``, ``B = meta_batch_size`` tasks from ``task_pool``, each with
  its context and ``rl_batch_size`` random transitions of the dataset."""
  key, k_task, k_ctx, k_rl = jax.random.split(key, 4)
  pick = jax.random.choice(k_task, task_pool.shape[0], (cfg.meta_batch_size,),
                           replace=cfg.task_replace)
  tasks = task_pool[pick]
  ctx = sample_context(k_ctx, data, tasks, size=cfg.context_size, mode=cfg.context_mode)
  idx = jax.random.randint(k_rl, (cfg.meta_batch_size, cfg.rl_batch_size), 0,
                           data.num_transitions)
  rows = tasks[:, None]
  rl = jax.tree.map(lambda x: x[rows, idx], data.transitions)
  rl_ret = jax.tree.map(lambda x: x[rows, idx], returns)
  end_obs = data.transitions.next_obs[rows, rl_ret.end]
  chex.assert_shape(rl.obs, (cfg.meta_batch_size, cfg.rl_batch_size, cfg.obs_size))
  chex.assert_shape(ctx.action, (cfg.meta_batch_size, None, cfg.action_size))
  return key, tasks, ctx, rl, rl_ret, end_obs


def _adam_steps(params: dict, opt: dict, grads: dict, hp: HParams) -> tuple[dict, dict]:
  """One Adam step of every parameter group at its traced rate (``_GROUP_LR``)."""
  params, opt = dict(params), dict(opt)
  for group, lr_name in _GROUP_LR.items():
    params[group], opt[group] = optim.adam_step(grads[group], params[group], opt[group],
                                                getattr(hp, lr_name))
  return params, opt


def _rates(params: dict) -> dict:
  """The metrics of the learned inner rates: their means (``softplus(l)``) and the advantage
  head's coefficient."""
  return {"value/inner_lr_mean": jnp.mean(jnp.stack(
              [jax.nn.softplus(x) for x in jax.tree.leaves(params["value_lrs"])])),
          "policy/inner_lr_mean": jnp.mean(jnp.stack(
              [jax.nn.softplus(x) for x in jax.tree.leaves(params["policy_lrs"])])),
          "policy/adv_coef": jax.nn.softplus(params["adv_coef"])}


def make_macaw(cfg: MacawConfig) -> MacawLearner:
  """Builds MACAW's networks, meta-loss and compiled training program for ``cfg``."""
  m = Macaw(cfg)
  traces = {"train_chunk": 0}

  def init_one(key) -> TrainState:
    k_params, k_state = jax.random.split(key)
    params = m.init(k_params)
    return TrainState(params=params, opt={g: optim.adam_init(params[g]) for g in _GROUP_LR},
                      step=jnp.zeros((), jnp.int32), key=jax.random.key_data(k_state),
                      tasks=jnp.zeros((cfg.meta_batch_size,), jnp.int32))

  def update(state: TrainState, data: OfflineDataset, hp: HParams, task_pool,
             returns: Returns | None = None):
    if returns is None:
      returns = dataset_returns(data, cfg.discount)
    key, tasks, ctx, rl, rl_ret, end_obs = _meta_batch(cfg, jax.random.wrap_key_data(state.key),
                                                       data, task_pool, returns)

    def meta_loss(params):
      losses, metrics = jax.vmap(m.task_loss, in_axes=(None, 0, 0, 0, 0))(
          params, ctx, rl, rl_ret, end_obs)
      return jnp.mean(losses), jax.tree.map(jnp.mean, metrics)

    grads, metrics = jax.grad(meta_loss, has_aux=True)(state.params)
    params, opt = _adam_steps(state.params, state.opt, grads, hp)
    return TrainState(params=params, opt=opt, step=state.step + 1,
                      key=jax.random.key_data(key), tasks=tasks), {**metrics, **_rates(params)}

  def run(state, data, hp, task_pool, returns):
    state, metrics = jax.lax.scan(lambda s, _: update(s, data, hp, task_pool, returns), state,
                                  None, length=cfg.steps_per_chunk)
    bad = ~jnp.all(jnp.stack([jnp.isfinite(v) for v in jax.tree.leaves(metrics)]), axis=0)
    first = jnp.where(jnp.any(bad), jnp.argmax(bad), -1).astype(jnp.int32)
    return state, {**jax.tree.map(jnp.mean, metrics), FIRST_NONFINITE: first}

  def chunk(state, data, hp, task_pool):
    traces["train_chunk"] += 1  # runs only while tracing: a retrace detector
    returns = dataset_returns(data, cfg.discount)  # once per chunk, shared by the seeds
    return jax.vmap(run, in_axes=(0, None, 0, None, None))(state, data, hp, task_pool, returns)

  train_chunk = jax.jit(chunk, donate_argnums=(0,))

  @functools.lru_cache(maxsize=8)
  def init_fn(num_seeds: int):
    return jax.jit(jax.vmap(init_one), out_shardings=seed_sharding(num_seeds))

  def init(keys):
    return init_fn(int(keys.shape[0]))(keys)

  def encode(params, context: Transition, task_params=None, key=None):
    """The adapted policy's code for one context ``[K]`` (or a batch ``[..., K]``): one value
    and one policy step with the learned rates (MACAW's ``eval_macaw``, ``macaw.py:499-524``).
    ``task_params`` and ``key`` are unused (the adaptation is deterministic)."""
    del task_params, key
    one = lambda c: m.nets.code(m.adapt(params, c)[1])
    for _ in range(context.reward.ndim - 1):
      one = jax.vmap(one)
    return one(context)

  def act(params, obs, code, key, deterministic):
    """The adapted policy's action: the mean (MACAW evaluates with ``sample_mode=True``,
    ``macaw.py:264-265``) or ``clip(mu + 0.2 eps, -1, 1)`` (``macaw.py:267,270``)."""
    del params
    mu = m.nets.mean_action(code, obs)
    if deterministic:
      return mu
    noise = cfg.action_sigma * jax.random.normal(key, mu.shape)
    return jnp.clip(mu + noise, -1.0, 1.0)

  return MacawLearner(cfg=cfg, init=init, train_chunk=train_chunk, encode=encode, act=act,
                      update=update, trace_count=lambda: traces["train_chunk"], macaw=m)
