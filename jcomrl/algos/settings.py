"""What a plug-in declares next to its code: its static settings and its traced hyper-parameters.

A backbone or an objective (a *plug-in*) may declare two classes as class attributes:

- ``Settings``, a frozen dataclass deriving from :class:`Settings`: what fixes its program's
  structure (widths, sample counts, which variant of a loss). They live in the learner config as
  the plug-in's own subtree, ``LearnerConfig.plugins`` (``learner.<name>.<key>`` in a run
  config); a change recompiles. The class checks its own values (:meth:`Settings.validate`,
  one-line errors naming ``learner.<name>.<key>``).
- ``Hyper``, a :func:`hyper` dataclass: the numbers a sweep varies (loss weights, temperatures,
  rates of its own parameter groups). They live in :class:`~jcomrl.algos.config.HParams` as the
  plug-in's subtree (``hparams.<name>.<key>``), float32 leaves traced under jit, so a sweep over
  them is a ``vmap`` and never a recompile.

The registries (:func:`jcomrl.algos.backbones.register`, :func:`jcomrl.algos.objectives.register`)
record both here under the plug-in's name. This module imports nothing from the learner, so
:mod:`jcomrl.algos.config` reads the declarations without an import circle.

Configs written before plug-ins owned their settings were flat (``brac_penalty``, ``dt_embed``,
``corro_weight``...). Each class maps its fields to those names in ``legacy`` (a field not listed
kept its name), and :meth:`LearnerConfig.from_dict` / :meth:`HParams.create` read them, so
today's presets, run directories and checkpoints keep working.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

from flax import struct

SETTINGS: dict[str, type[Settings]] = {}
HYPERS: dict[str, type] = {}


def declare(name: str, plugin: type) -> None:
  """Records ``plugin.Settings`` and ``plugin.Hyper`` (when it declares them, with at least one
  field) under ``name``, and makes ``name`` the owner its errors name
  (``learner.<name>.<key>``). A ``Settings`` class another plug-in already owns (one inherited
  from a registered parent class) is first subclassed for ``name``."""
  settings = getattr(plugin, "Settings", None)
  if settings is not None and settings.__dict__.get("owner") != name:
    if "owner" not in settings.__dict__ and settings not in SETTINGS.values():
      settings.owner = name
    else:
      settings = type(settings.__name__, (settings,),
                      {"owner": name, "__module__": settings.__module__,
                       "__qualname__": settings.__qualname__})
      plugin.Settings = settings
  for table, cls in ((SETTINGS, settings), (HYPERS, getattr(plugin, "Hyper", None))):
    if cls is not None and dataclasses.fields(cls):
      table[name] = cls
    else:
      table.pop(name, None)


def did_you_mean(key: str, known) -> str:
  close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
  return f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"


def legacy_names(cls) -> dict[str, str]:
  """``{flat name before plug-in subtrees: field}`` of a ``Settings`` or ``Hyper`` class."""
  renamed = getattr(cls, "legacy", {})
  return {renamed.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}


def parse_terms(spec: str) -> tuple[tuple[str, float], ...]:
  """``"focal:1,corro:0.5"`` -> ``(("focal", 1.0), ("corro", 0.5))`` (a bare name weighs 1)."""
  terms = []
  for part in filter(None, (p.strip() for p in spec.split(","))):
    name, _, weight = part.partition(":")
    try:
      terms.append((name.strip(), float(weight) if weight else 1.0))
    except ValueError:
      raise ValueError(f"extra_objectives term {part!r}: the weight must be a number "
                       f"(e.g. 'corro:0.5')") from None
  return tuple(terms)


@dataclasses.dataclass(frozen=True)
class Settings:
  """Base of a plug-in's static settings (subclass it as a frozen dataclass).

  ``owner`` names the plug-in in error messages (``learner.<owner>.<key>``); subclasses
  override :meth:`validate` and call the ``_choice`` / ``_positive`` helpers.
  """

  owner: ClassVar[str] = "plugin"
  legacy: ClassVar[dict[str, str]] = {}

  def __post_init__(self):
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if isinstance(value, list):
        object.__setattr__(self, f.name, tuple(value))
    self.validate()

  def validate(self) -> None:
    """Raises ``ValueError`` (one line, naming the key) for values the plug-in cannot use."""

  def _key(self, name: str) -> str:
    return f"learner.{self.owner}.{name}"

  def _choice(self, name: str, allowed) -> None:
    if getattr(self, name) not in allowed:
      raise ValueError(f"unknown {self._key(name)} {getattr(self, name)!r}; expected one of "
                       f"{tuple(allowed)}")

  def _positive(self, *names: str) -> None:
    for name in names:
      value = getattr(self, name)
      bad = any(v <= 0 for v in value) if isinstance(value, tuple) else value <= 0
      if bad:
        raise ValueError(f"{self._key(name)} must be positive, got {value}")

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> Settings:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in d:
      if key not in names:
        raise ValueError(f"unknown setting learner.{cls.owner}.{key}; {did_you_mean(key, names)}")
    return cls(**dict(d))

  def to_dict(self) -> dict[str, Any]:
    return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)}


def hyper(cls):
  """Class decorator of a plug-in's traced hyper-parameters: a ``flax.struct`` dataclass whose
  fields are float leaves (``HParams.create`` makes them float32). Optional class attributes:
  ``legacy`` (field -> flat name in configs before plug-in subtrees) and ``ranges`` (field ->
  ``"positive"``, ``"unit_open"`` for (0, 1) or ``"unit"`` for (0, 1]; otherwise a field must be
  >= 0, or > 0 when its name ends in ``lr``)."""
  return struct.dataclass(cls)


def range_kind(name: str, ranges: Mapping[str, str]) -> str:
  """The declared range of hyper-parameter ``name`` (see :func:`hyper`)."""
  return ranges.get(name, "positive" if name.endswith("lr") else "nonnegative")


def check_range(where: str, name: str, value: float, ranges: Mapping[str, str]) -> None:
  """``ValueError`` naming ``<where>.<name>`` when ``value`` is outside its declared range."""
  kind = range_kind(name, ranges)
  ok = {"positive": value > 0, "unit_open": 0 < value < 1, "unit": 0 < value <= 1,
        "nonnegative": value >= 0, "any": True}[kind]
  if not ok:
    need = {"positive": "> 0", "unit_open": "in (0, 1)", "unit": "in (0, 1]",
            "nonnegative": ">= 0"}[kind]
    raise ValueError(f"config key {where}.{name} = {value} must be {need}")
