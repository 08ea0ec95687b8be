"""Static learner configuration and traced hyper-parameters.

``LearnerConfig`` holds everything that fixes shapes and program structure (network sizes,
meta-batch, context length, which objective and backbone): it is hashable and a change
recompiles. ``HParams`` holds the numbers a sweep varies (learning rates, loss weights, discount):
they are traced pytree leaves, so a sweep over them is a ``vmap`` and never a recompile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import struct

from jcomrl.algos.settings import (
  HYPERS,
  SETTINGS,
  Settings,
  check_range,
  did_you_mean,
  legacy_names,
  parse_terms,
  range_kind,
)
from jcomrl.nets.encoders import ENCODERS
from jcomrl.nets.mlp import INITS as NET_INITS

PRETRAIN_TASKS = ("all", "train")
CONTEXT_MODES = ("trajectory", "transitions")

# The settings every learner reads. A plug-in's own settings are its ``Settings`` subtree in
# ``plugins`` (jcomrl.algos.settings); the others are listed here.
@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """Structure of one learner (static under jit): the fields every learner reads, and the
  settings of the plug-ins it uses (``plugins``)."""

  obs_size: int
  action_size: int
  task_param_size: int
  # unicorn_sup's classifier classes: set from the dataset (its task rows) by jcomrl.run.build.
  num_task_labels: int = 0
  # Representation: objective x encoder.
  representation: str = "focal"
  # Further registered objectives added to the loss, "name:weight,..." (static weights; e.g.
  # "corro:0.5" adds half CORRO's contrastive term to the primary objective's loss).
  extra_objectives: str = ""
  encoder: str = "mean_tanh"
  latent_size: int = 8
  encoder_hidden: tuple[int, ...] = (64, 64)
  use_next_obs: bool = True
  aux_hidden: tuple[int, ...] = (64, 64)  # decoder / classifier / CLUB net / CVAE widths
  # Updates of an objective's pretrain stage at the start of the run (CORRO's CVAE with
  # negatives from the CVAE; an objective without one refuses a non-zero value).
  pretrain_steps: int = 0
  # The tasks the pretrain stage draws from: "all" (every task row of the dataset, train and
  # held-out: CORRO fits its CVAE on every task directory, PKU-RL/CORRO
  # train_generative_model.py:89-92 with relabel_model_config/args_*.py --data-dir) or "train"
  # (the training tasks only, jcomrl's behaviour before the CVAE pool was aligned with CORRO).
  pretrain_tasks: str = "all"
  # Offline-RL backbone.
  backbone: str = "brac"
  rl_hidden: tuple[int, ...] = (64, 64)
  # Initialisation of the policy, Q, value, dual-critic and MLP-encoder networks
  # (jcomrl.nets.mlp.INITS): "lecun_normal" (flax's default) or "rlkit" (the torchkit init of
  # the FOCAL / CSRO / CORRO / UNICORN PyTorch codes: hidden U(+-1/sqrt(out width)), bias 0.1,
  # heads U(+-3e-3) / U(+-1e-3) for the policy; UNICORN-SS's mbrl decoder then takes mbrl's
  # truncated normal, jcomrl.nets.mlp "mbrl").
  net_init: str = "lecun_normal"
  # Meta-batch.
  meta_batch_size: int = 16
  context_size: int = 20
  context_mode: str = "trajectory"
  rl_batch_size: int = 64
  task_replace: bool = True
  # Consecutive updates that share one draw of meta-batch task indices (contexts and RL batches
  # are still fresh every update). UNICORN/CORRO draw the tasks once per iteration of
  # ``rl_updates_per_iter`` = 200 updates (UNICORN train_offline_FOCAL.py:284-289, 328); an
  # iteration starts at every global step that is a multiple of this.
  task_resample_every: int = 1
  # TD targets stop at a stored time-limit end (``timeout``) as at a termination. Off (default):
  # a time limit is not a state of the MDP, so the target bootstraps through it. On: as the
  # FOCAL and CSRO codes, whose loaders mark the last transition of every stored trajectory
  # terminal (FOCAL-ICLR rlkit/core/rl_algorithm.py:153-154, CSRO's :151-152).
  timeout_as_terminal: bool = False
  steps_per_chunk: int = 100
  # ``((name, Settings), ...)`` of the plug-ins in use (the representation, the extra objective
  # terms and the backbone) that declare settings, sorted by name; construction fills the
  # missing ones with their defaults and drops plug-ins not in use. ``to_dict`` writes each as
  # the subtree ``<name>: {...}``.
  plugins: tuple = ()

  def __post_init__(self):
    # The checks of this config alone; the names of the objective terms and the backbone and
    # whether they fit together are checked by the registries' owner,
    # :func:`jcomrl.algos.compose.check` (this module imports no backbone and no objective).
    for name, allowed in (("encoder", ENCODERS), ("net_init", NET_INITS),
                          ("context_mode", CONTEXT_MODES), ("pretrain_tasks", PRETRAIN_TASKS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {allowed}")
    for name in ("meta_batch_size", "context_size", "rl_batch_size", "steps_per_chunk",
                 "latent_size", "task_resample_every"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    if self.pretrain_steps < 0 or self.pretrain_steps % self.steps_per_chunk:
      raise ValueError(f"pretrain_steps ({self.pretrain_steps}) must be a non-negative multiple "
                       f"of steps_per_chunk ({self.steps_per_chunk})")
    object.__setattr__(self, "plugins", self._complete_plugins(self.plugins))

  def plugin_names(self) -> tuple[str, ...]:
    """The plug-ins this config uses: its representation, extra objective terms and backbone."""
    return _plugin_names(self.representation, self.extra_objectives, self.backbone)

  def _complete_plugins(self, given) -> tuple:
    given = dict(given.items() if isinstance(given, Mapping) else given)
    out = {}
    for name in self.plugin_names():
      cls = SETTINGS.get(name)
      value = given.get(name)
      if cls is None:
        if value is not None and not isinstance(value, Mapping):
          out[name] = value  # a plug-in registered after this config's settings were made
        continue
      if value is None:
        value = cls()
      elif isinstance(value, Mapping):
        value = cls.from_dict(value)
      elif isinstance(value, Settings) and not isinstance(value, cls):
        value = cls.from_dict(value.to_dict())  # e.g. the plug-in's base Settings class
      elif not isinstance(value, cls):
        raise TypeError(f"learner.{name} must be {cls.__name__}, got {type(value).__name__}")
      out[name] = value
    return tuple(sorted(out.items()))

  def settings(self, name: str):
    """The settings of plug-in ``name`` (its defaults when this config does not use it)."""
    for n, s in self.plugins:
      if n == name:
        return s
    if name not in SETTINGS:
      raise KeyError(f"plug-in {name!r} declares no settings")
    return SETTINGS[name]()

  @classmethod
  def nest(cls, d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` (flat, nested or mixed) in ``to_dict``'s nested form, holding only what ``d``
    sets: each flat key of the form before plug-ins owned their settings (``brac_penalty``,
    ``dt_embed``...) goes to the plug-ins in use that declare it; a key only unused plug-ins
    declare is dropped (it had no effect), and so are subtrees of registered plug-ins not in
    use. ``ValueError`` for a key nothing declares."""
    core = {f.name for f in dataclasses.fields(cls)} - {"plugins"}
    out = {k: v for k, v in d.items() if k in core}
    used = _plugin_names(out.get("representation", "focal"), out.get("extra_objectives", ""),
                         out.get("backbone", "brac"))
    subtrees: dict[str, dict] = {}
    nested = {}
    for key, value in d.items():
      if key in core:
        continue
      if key == "plugins":
        nested.update(dict(value.items() if isinstance(value, Mapping) else value))
      elif isinstance(value, Mapping) or key in SETTINGS:
        if key not in SETTINGS:
          raise ValueError(f"unknown learner config key {key!r} (no registered plug-in of that "
                           f"name declares settings); {did_you_mean(key, set(SETTINGS) | core)}")
        nested[key] = value
      else:
        owners = [n for n in used if n in SETTINGS and key in legacy_names(SETTINGS[n])]
        for n in owners:
          subtrees.setdefault(n, {})[legacy_names(SETTINGS[n])[key]] = value
        if not owners and not any(key in legacy_names(c) for c in SETTINGS.values()):
          flat = {n for c in SETTINGS.values() for n in legacy_names(c)}
          raise ValueError(f"unknown learner config key {key!r}; "
                           f"{did_you_mean(key, core | set(SETTINGS) | flat)}")
    # A flat key wins over its subtree's value: flat keys come from configs written before
    # subtrees, or from an override of one (the subtree may hold every plug-in's defaults).
    for name, value in nested.items():
      if name in used:
        given = value.to_dict() if isinstance(value, Settings) else dict(value)
        subtrees[name] = {**given, **subtrees.get(name, {})}
    out.update({n: v for n, v in sorted(subtrees.items())})
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

  @classmethod
  def create(cls, **kw) -> LearnerConfig:
    """``from_dict(kw)``: a config from keyword arguments, flat or nested."""
    return cls.from_dict(kw)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> LearnerConfig:
    """A config from ``to_dict``'s form (plug-in settings as ``<name>: {...}`` subtrees), or
    from a flat dict of the form before plug-ins owned their settings (see :meth:`nest`).
    Subtrees of registered plug-ins not in use are ignored, so a run config may carry every
    plug-in's defaults."""
    core = {f.name for f in dataclasses.fields(cls)} - {"plugins"}
    n = cls.nest(d)
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in n.items() if k in core}
    return cls(**kw, plugins={k: v for k, v in n.items() if k not in core})

  def to_dict(self) -> dict[str, Any]:
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "plugins"}
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    for name, s in self.plugins:
      out[name] = s.to_dict()
    return out

  @classmethod
  def canonical_dict(cls, d: Mapping[str, Any]) -> dict[str, Any]:
    """``to_dict`` of the config a saved learner dict stands for (flat or nested, fields added
    since it was written at their defaults, which keep the earlier behaviour), so runs and
    checkpoints of earlier versions compare equal to the same config today; the sizes the
    dataset sets and ``steps_per_chunk`` are left out when ``d`` has none."""
    # placeholders for what the dataset sets and for steps_per_chunk, which structure_dict
    # leaves out (1 divides any pretrain_steps)
    missing = {"obs_size": 1, "action_size": 1, "task_param_size": 1, "steps_per_chunk": 1}
    out = cls.from_dict({**missing, **d}).to_dict()
    return {k: v for k, v in out.items() if k in d or k not in missing}

  def structure_dict(self) -> dict[str, Any]:
    """The fields that fix the train state's structure (what a checkpoint must agree with)."""
    d = self.to_dict()
    d.pop("steps_per_chunk")
    return d


def _plugin_names(representation: str, extra_objectives: str, backbone: str) -> tuple[str, ...]:
  try:
    terms = tuple(t for t, _ in parse_terms(extra_objectives))
  except ValueError:
    terms = ()  # compose.check reports the malformed spec
  return tuple(dict.fromkeys((representation, *terms, backbone)))


@struct.dataclass
class HParams:
  """Traced hyper-parameters (float32 leaves; add a leading axis to vmap a sweep): the ones
  every learner reads, and each registered plug-in's ``Hyper`` subtree in ``plugins``."""

  actor_lr: Any = 3e-4
  critic_lr: Any = 3e-4
  encoder_lr: Any = 3e-4
  alpha_lr: Any = 3e-4
  value_lr: Any = 3e-4  # iql's V(s) and MACAW's value net (implicit_q_learning: 3e-4)
  discount: Any = 0.9
  tau: Any = 0.005
  reward_scale: Any = 1.0
  entropy_alpha: Any = 0.2
  # Actor regularisers ``mean_reg * mean(mu^2) + std_reg * mean(log_sigma^2)`` on the pre-tanh
  # Gaussian (FOCAL sac.py:361-362 and CSRO sac.py:384-385, weights 1e-3 in their default.py).
  policy_mean_reg: Any = 0.0
  policy_std_reg: Any = 0.0
  # MACAW (eric-mitchell/macaw config/alg/standard.json:23 ``lrlr``): Adam rate of its learned
  # inner learning rates and advantage-head weight (outer rates: value_lr, actor_lr).
  inner_lr_lr: Any = 1e-3
  plugins: dict = struct.field(default_factory=dict)

  ranges: ClassVar[dict[str, str]] = {"discount": "unit", "tau": "unit"}

  @classmethod
  def create(cls, **kw) -> HParams:
    """Every registered plug-in's hyper-parameters at their defaults, then ``kw``: core names,
    ``<plug-in>={...}`` subtrees, or the flat names of configs before plug-in subtrees
    (``brac_weight``...; a flat name goes to every plug-in that declares it)."""
    core = {f.name for f in dataclasses.fields(cls)} - {"plugins"}
    sub: dict[str, dict] = {name: {} for name in HYPERS}
    flat, legacy = {}, []
    for key, value in kw.items():
      if key in core:
        flat[key] = value
      elif key == "plugins":
        for name, v in dict(value).items():
          sub.setdefault(name, {}).update(_hyper_items(v))
      elif isinstance(value, Mapping) or _is_hyper(value):
        if key not in HYPERS:
          raise ValueError(f"unknown hyper-parameters [{key!r}] (no registered plug-in of that "
                           f"name declares any); {did_you_mean(key, set(HYPERS) | core)}")
        sub[key].update(_hyper_items(value))
      else:
        owners = [n for n, c in HYPERS.items() if key in legacy_names(c)]
        if not owners:
          raise ValueError(f"unknown hyper-parameters [{key!r}]; "
                           f"{did_you_mean(key, core | set(HYPERS))}")
        legacy += [(n, legacy_names(HYPERS[n])[key], value) for n in owners]
    for name, field, value in legacy:  # a flat name wins over its subtree (LearnerConfig.nest)
      sub[name][field] = value
    plugins = {}
    for name, values in sub.items():
      hcls = HYPERS.get(name)
      if hcls is None:
        raise ValueError(f"unknown hyper-parameters [{name!r}]")
      names = {f.name for f in dataclasses.fields(hcls)}
      for key in values:
        if key not in names:
          raise ValueError(f"unknown hyper-parameter hparams.{name}.{key}; "
                           f"{did_you_mean(key, names)}")
      plugins[name] = hcls(**values)
    return jax_tree_float32(cls(**flat, plugins=plugins))

  @classmethod
  def defaults(cls) -> dict[str, Any]:
    """Every hyper-parameter's default as written (Python floats, before float32), the
    registered plug-ins' as their subtrees: ``create``'s form of ``create()``."""
    fields = lambda c: {f.name: f.default for f in dataclasses.fields(c)
                        if f.default is not dataclasses.MISSING}
    return {**fields(cls), **{n: fields(h) for n, h in sorted(HYPERS.items())}}

  @classmethod
  def nest(cls, d: Mapping[str, Any], plugins) -> dict[str, Any]:
    """``d`` (flat, nested or mixed) in ``to_dict``'s nested form for a learner using
    ``plugins``, holding only what ``d`` sets: a flat name of the form before plug-in subtrees
    goes to the plug-ins in ``plugins`` that declare it and is dropped when only others do;
    subtrees are kept. ``ValueError`` for a name nothing declares."""
    core = {f.name for f in dataclasses.fields(cls)} - {"plugins"}
    out, sub, legacy = {}, {}, []
    for key, value in d.items():
      if key in core:
        out[key] = value
      elif isinstance(value, Mapping):
        sub.setdefault(key, {}).update(value)
      else:
        owners = [n for n in plugins if n in HYPERS and key in legacy_names(HYPERS[n])]
        legacy += [(n, legacy_names(HYPERS[n])[key], value) for n in owners]
        if not owners and not any(key in legacy_names(c) for c in HYPERS.values()):
          raise ValueError(f"unknown hyper-parameters [{key!r}]; "
                           f"{did_you_mean(key, core | set(HYPERS))}")
    for name, field, value in legacy:  # a flat name wins over its subtree
      sub.setdefault(name, {})[field] = value
    return {**out, **dict(sorted(sub.items()))}

  def of(self, name: str):
    """Plug-in ``name``'s hyper-parameters (its defaults if it registered after this was
    made)."""
    got = self.plugins.get(name)
    return got if got is not None else HYPERS[name]()

  def to_dict(self) -> dict[str, Any]:
    out = {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)
           if f.name != "plugins"}
    for name, h in sorted(self.plugins.items()):
      out[name] = {f.name: float(getattr(h, f.name)) for f in dataclasses.fields(h)}
    return out

  @classmethod
  def check_values(cls, d: Mapping[str, Any], where: str = "hparams") -> None:
    """``ValueError`` (one line, naming the key) for a value outside its declared range, in a
    dict of ``create``'s form; unknown keys are ``create``'s to report."""
    core = {f.name for f in dataclasses.fields(cls)}
    for key, value in d.items():
      if isinstance(value, Mapping) and key in HYPERS:
        ranges = getattr(HYPERS[key], "ranges", {})
        for k, v in value.items():
          check_range(f"{where}.{key}", k, v, ranges)
      elif key in core:
        check_range(where, key, value, cls.ranges)
      else:
        for hcls in HYPERS.values():
          field = legacy_names(hcls).get(key)
          if field is not None:
            check_range(where, key, value, {key: range_kind(field, getattr(hcls, "ranges", {}))})


def _is_hyper(value) -> bool:
  return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _hyper_items(value) -> dict:
  if _is_hyper(value):
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
  return dict(value)


def jax_tree_float32(tree):
  import jax
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
